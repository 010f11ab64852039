"""Strict checks of query parameters, before pygeoapi sees the request.

pygeoapi silently drops what it does not know and words its errors loosely; a
client here gets a 400 problem document naming the parameter and what to send.

Each parameter is parsed once, here: ``check_items`` returns the checked query
(bbox and filter literals already in CRS84, through ``oup.geodesy``), the app puts it
on the request context (``CHECKED_ITEMS``) and the provider answers from it.
"""
from __future__ import annotations

import json
import math
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from oup.errors import InvalidQuery
from oup.store.geometry import SUPPORTED_CRS, bbox_to_crs84, crs_code, filter_to_crs84
from oup.store.text import words

ITEMS_PARAMS = {"f", "lang", "limit", "offset", "bbox", "bbox-crs", "crs", "datetime",
                "properties", "skipGeometry", "sortby", "filter", "filter-lang", "filter-crs",
                "resulttype", "asof", "q", "scenario"}
ITEM_PARAMS = {"f", "lang", "crs", "properties", "skipGeometry", "asof", "scenario"}

Interval = tuple[datetime | None, datetime | None]


@dataclass(frozen=True)
class ItemsRequest:
    """An items query as checked: parsed once, spatial parts in CRS84."""

    collection: str
    bbox: tuple[float, float, float, float] | None = None
    interval: Interval | None = None
    filter: Any = None  # pygeofilter AST, literals in CRS84
    sortby: list[tuple[str, bool]] = field(default_factory=list)  # (property, ascending)
    properties: list[str] | None = None  # the selected ones; None: all
    equals: dict[str, str] = field(default_factory=dict)
    limit: int = 10
    offset: int = 0
    hits: bool = False  # resulttype=hits: the count, no features
    skip_geometry: bool = False
    crs: str | None = None  # the answer's CRS (a URI); None: CRS84
    asof: datetime | None = None  # as the collection was then (its history); None: now
    q: str | None = None  # free text (``oup.store.text``): the words to find
    scenario: str | None = None  # as this scenario has it (the gate checked who may see it)


@dataclass(frozen=True)
class ItemRequest:
    """A single item's query as checked."""

    collection: str
    crs: str | None = None
    asof: datetime | None = None
    scenario: str | None = None


# The checked items query of the request being answered (None: not an items request,
# or one the checks did not cover). Set for every request by the app, read by providers.
CHECKED_ITEMS: ContextVar[ItemsRequest | None] = ContextVar("oup_checked_items", default=None)
CHECKED_ITEM: ContextVar[ItemRequest | None] = ContextVar("oup_checked_item", default=None)
# the ETag of the item the provider read, read with it (the gate sends it)
ITEM_ETAG: ContextVar[str | None] = ContextVar("oup_item_etag", default=None)


def parse_asof(text: str | None) -> datetime | None:
    """``asof``: one RFC 3339 instant (the Dutch API rules' "peildatum"; tijdreizen)."""
    if text is None:
        return None
    if "/" in text or text.strip() in ("", ".."):
        raise InvalidQuery("asof: one RFC 3339 instant, e.g. 2026-01-01T00:00:00Z", "asof")
    try:
        return parse_datetime(text)[0]
    except InvalidQuery as exc:
        raise InvalidQuery(str(exc).replace("datetime", "asof", 1), "asof") from None


def parse_datetime(text: str | None) -> Interval | None:
    """OGC API ``datetime``: an instant, or an interval with '..' or '' for open ends."""
    if text is None:
        return None

    def one(part: str):
        if part in ("..", ""):
            return None
        try:
            value = datetime.fromisoformat(part.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidQuery(f"datetime: {part!r} is not an RFC 3339 date-time "
                               "(e.g. 2008-11-01T00:00:00Z)", "datetime") from None
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

    if "/" in text:
        start_s, _, end_s = text.partition("/")
        if "/" in end_s:
            raise InvalidQuery("datetime: at most one '/' (start/end)", "datetime")
        start, end = one(start_s), one(end_s)
        if start is None and end is None:
            raise InvalidQuery("datetime: an interval needs at least one end", "datetime")
        if start and end and start > end:
            raise InvalidQuery("datetime: start is after end", "datetime")
        return start, end
    if text == "..":
        raise InvalidQuery("datetime: '..' is only allowed as an interval end", "datetime")
    t = one(text)
    return t, t


def parse_filter(text: str, lang: str | None, crs: str | None = None):
    """CQL2 text or JSON -> pygeofilter AST with its geometry literals in CRS84 (``crs``:
    the filter-crs URI they are given in), or an InvalidQuery saying why."""
    from pygeofilter.parsers.cql2_json import parse as parse_json
    from pygeofilter.parsers.cql2_text import parse as parse_text

    lang = lang or ("cql2-json" if text.lstrip().startswith("{") else "cql2-text")
    try:
        if lang == "cql2-json":
            node = parse_json(_standard_json(json.loads(text)))
        else:
            node = parse_text(text)
    except Exception as exc:  # the parsers raise many types; all mean "bad filter"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidQuery(f"filter is not valid {lang}: {first}", "filter") from None
    return filter_to_crs84(node, crs_code(crs) if crs else "OGC:CRS84")


def _standard_json(node):
    """CQL2 JSON as the standard writes it -> the shape pygeofilter reads
    (``between`` has three arguments in the standard, two in pygeofilter; its bbox
    literal and t_disjoint need help too)."""
    if isinstance(node, list):
        return [_standard_json(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _standard_json(v) for k, v in node.items()}
    if set(node) == {"bbox"} and isinstance(node["bbox"], list) and len(node["bbox"]) in (4, 6):
        # pygeofilter reads [minx, miny, maxx, maxy] in the wrong order: pass a polygon
        b = node["bbox"]
        x0, y0, x1, y1 = (b[0], b[1], b[2], b[3]) if len(b) == 4 else (b[0], b[1], b[3], b[4])
        return {"type": "Polygon",
                "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}
    if node.get("op") == "between" and isinstance(node.get("args"), list) \
            and len(node["args"]) == 3:
        node["args"] = [node["args"][0], node["args"][1:]]
    if node.get("op") == "t_disjoint":  # pygeofilter knows no t_disjoint
        node = {"op": "not", "args": [{"op": "t_intersects", "args": node.get("args")}]}
    return node


def _int(args, name: str, default: int, lo: int, hi: int | None = None) -> int:
    raw = args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidQuery(f"{name} must be an integer, got {raw!r}", name) from None
    if value < lo or (hi is not None and value > hi):
        raise InvalidQuery(f"{name} must be between {lo} and {hi if hi else 'any'}, got {value}",
                           name)
    return value


def _crs(args, name: str) -> str | None:
    value = args.get(name)
    if value is not None and value not in SUPPORTED_CRS:
        raise InvalidQuery(f"{name} {value!r} is not supported; use one of "
                           f"{', '.join(SUPPORTED_CRS)}", name)
    return value


def _known(keys: str | None, fields: set[str], parameter: str) -> list[str]:
    """The comma-separated ``keys`` of ``parameter``, each naming a field (sortby keys
    may start with + or -)."""
    out = []
    for key in filter(None, (keys or "").split(",")):
        name = key.lstrip("+-") if parameter == "sortby" else key
        if name not in fields:
            raise InvalidQuery(f"{parameter}: unknown property {name!r}", parameter)
        out.append(key)
    return out


def check_items(args, fields: set[str], max_limit: int, collection: str = "",
                body: str | None = None, default_limit: int = 10,
                searched: list[str] = ()) -> ItemsRequest:
    """The items query in ``args`` (and a POSTed CQL2 JSON ``body``), checked and
    parsed; InvalidQuery for the first thing wrong with it. ``searched``: the text
    attributes ``q`` looks in (none: ``q`` is refused, not silently ignored)."""
    for name in args:
        if name not in ITEMS_PARAMS and name not in fields:
            raise InvalidQuery(f"unknown query parameter or property {name!r}; the queryables "
                               "and the OpenAPI document list what can be asked", name)
    limit = _int(args, "limit", default_limit, 1, max_limit)
    offset = _int(args, "offset", 0, 0, 2**63 - 1)  # SQL offsets are 64-bit
    bbox_crs = _crs(args, "bbox-crs")
    crs = _crs(args, "crs")
    filter_crs = _crs(args, "filter-crs")
    bbox = None
    if "bbox" in args:
        nums = check_bbox(args["bbox"], bbox_crs)
        half = len(nums) // 2  # a 6-number bbox has heights: the 2D box is x, y of each
        box = bbox_to_crs84([nums[0], nums[1], nums[half], nums[half + 1]],
                            bbox_crs or "OGC:CRS84")
        bbox = (box[0], box[1], box[2], box[3])
    elif bbox_crs is not None:
        raise InvalidQuery("bbox-crs given without bbox", "bbox-crs")
    interval = parse_datetime(args["datetime"]) if "datetime" in args else None
    if args.get("resulttype") not in (None, "results", "hits"):
        raise InvalidQuery("resulttype must be results or hits", "resulttype")
    if args.get("skipGeometry") not in (None, "true", "false"):
        raise InvalidQuery("skipGeometry must be true or false", "skipGeometry")
    properties = _known(args.get("properties"), fields, "properties")
    sortby = [(key.lstrip("+-"), not key.startswith("-"))
              for key in _known(args.get("sortby"), fields, "sortby")]
    lang = args.get("filter-lang")
    if lang not in (None, "cql2-text", "cql2-json"):
        raise InvalidQuery("filter-lang must be cql2-text or cql2-json", "filter-lang")
    node = None
    if "filter" in args:
        node = parse_filter(args["filter"], lang, filter_crs)
    elif lang is not None:
        raise InvalidQuery("filter-lang given without filter", "filter-lang")
    if body is not None:  # a POSTed filter is checked even when the URL has one (which wins)
        posted = parse_filter(body, "cql2-json", filter_crs)
        node = posted if node is None else node
    q = args.get("q")
    if q is not None:
        if not searched:
            raise InvalidQuery(f"q: collection {collection!r} has no text attributes to "
                               "search (its catalogue entry declares none); filter by "
                               "property or with CQL2 instead", "q")
        words(q)  # something to look for, within bounds
    equals = {k: v for k, v in args.items() if k not in ITEMS_PARAMS}
    return ItemsRequest(collection, bbox, interval, node, sortby, properties or None, equals,
                        limit, offset, args.get("resulttype") == "hits",
                        args.get("skipGeometry") == "true", crs, _asof(args), q,
                        args.get("scenario"))


EDR_PARAMS = {"f", "lang", "coords", "datetime", "parameter-name", "z", "crs", "bbox",
              "within", "within-units", "resolution-x", "resolution-y", "resolution-z"}


@dataclass(frozen=True)
class EdrRequest:
    """An EDR query as checked (what its provider would otherwise parse again)."""

    collection: str
    interval: Interval | None = None
    bbox: list[float] | None = None


CHECKED_EDR: ContextVar[EdrRequest | None] = ContextVar("oup_checked_edr", default=None)


def check_edr(args, collection: str) -> EdrRequest:
    """An EDR query (position, area, cube, locations, ...): unknown parameters, the
    datetime, bbox and crs are checked here, once."""
    for name in args:
        if name not in EDR_PARAMS:
            raise InvalidQuery(f"unknown query parameter {name!r} for an EDR query; it takes "
                               f"{', '.join(sorted(EDR_PARAMS))}", name)
    _crs(args, "crs")
    bbox = check_bbox(args["bbox"], None) if "bbox" in args else None
    interval = parse_datetime(args["datetime"]) if "datetime" in args else None
    return EdrRequest(collection, interval, bbox)


def _asof(args) -> datetime | None:
    return parse_asof(args.get("asof"))


def check_item(args, collection: str = "") -> ItemRequest:
    for name in args:
        if name not in ITEM_PARAMS:
            raise InvalidQuery(f"unknown query parameter {name!r} for a single item", name)
    return ItemRequest(collection, _crs(args, "crs"), _asof(args), args.get("scenario"))


def check_queryables(args, fields: set[str]) -> None:
    for name in args:
        if name not in ("f", "lang", "profile", "properties"):
            raise InvalidQuery(f"unknown query parameter {name!r} for queryables", name)
    _known(args.get("properties"), fields, "properties")


def check_bbox(raw: str, bbox_crs: str | None) -> list[float]:
    parts = raw.split(",")
    if len(parts) not in (4, 6):
        raise InvalidQuery("bbox must have 4 numbers (minx,miny,maxx,maxy) or 6 with heights",
                           "bbox")
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        raise InvalidQuery(f"bbox must be numbers, got {raw!r}", "bbox") from None
    if not all(math.isfinite(n) for n in nums):
        raise InvalidQuery("bbox numbers must be finite", "bbox")
    half = len(nums) // 2
    lo, hi = nums[:half], nums[half:]
    if any(a > b for a, b in zip(lo[1:], hi[1:])) or lo[0] > hi[0]:
        raise InvalidQuery("bbox: each minimum must not exceed its maximum", "bbox")
    if bbox_crs in (None, "http://www.opengis.net/def/crs/OGC/1.3/CRS84"):
        if lo[1] < -90 or hi[1] > 90 or lo[0] < -180 or hi[0] > 180:
            raise InvalidQuery("bbox in CRS84 must lie within -180..180, -90..90", "bbox")
    return nums
