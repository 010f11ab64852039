"""Strict checks of query parameters, before pygeoapi sees the request.

pygeoapi silently drops what it does not know and words its errors loosely; a
client here gets a 400 problem document naming the parameter and what to send.
"""
from __future__ import annotations

import json
import math

from .provider import parse_datetime
from .store import InvalidQuery
from .store.geometry import SUPPORTED_CRS

ITEMS_PARAMS = {"f", "lang", "limit", "offset", "bbox", "bbox-crs", "crs", "datetime",
                "properties", "skipGeometry", "sortby", "filter", "filter-lang", "filter-crs",
                "resulttype"}
ITEM_PARAMS = {"f", "lang", "crs", "properties", "skipGeometry"}


def parse_filter(text: str, lang: str | None):
    """CQL2 text or JSON -> pygeofilter AST, or an InvalidQuery saying why."""
    from pygeofilter.parsers.cql2_json import parse as parse_json
    from pygeofilter.parsers.cql2_text import parse as parse_text

    lang = lang or ("cql2-json" if text.lstrip().startswith("{") else "cql2-text")
    try:
        if lang == "cql2-json":
            return parse_json(_standard_json(json.loads(text)))
        return parse_text(text)
    except Exception as exc:  # the parsers raise many types; all mean "bad filter"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidQuery(f"filter is not valid {lang}: {first}", "filter") from None


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


def check_items(args, fields: set[str], max_limit: int) -> None:
    """Raise InvalidQuery for the first thing wrong with an items query."""
    for name in args:
        if name not in ITEMS_PARAMS and name not in fields:
            raise InvalidQuery(f"unknown query parameter or property {name!r}; the queryables "
                               "and the OpenAPI document list what can be asked", name)
    _int(args, "limit", 10, 1, max_limit)
    _int(args, "offset", 0, 0, 2**63 - 1)  # SQL offsets are 64-bit
    bbox_crs = _crs(args, "bbox-crs")
    _crs(args, "crs")
    _crs(args, "filter-crs")
    if "bbox" in args:
        check_bbox(args["bbox"], bbox_crs)
    elif bbox_crs is not None:
        raise InvalidQuery("bbox-crs given without bbox", "bbox-crs")
    if "datetime" in args:
        parse_datetime(args["datetime"])
    if args.get("resulttype") not in (None, "results", "hits"):
        raise InvalidQuery("resulttype must be results or hits", "resulttype")
    if args.get("skipGeometry") not in (None, "true", "false"):
        raise InvalidQuery("skipGeometry must be true or false", "skipGeometry")
    for name in filter(None, (args.get("properties") or "").split(",")):
        if name not in fields:
            raise InvalidQuery(f"properties: unknown property {name!r}", "properties")
    for key in filter(None, (args.get("sortby") or "").split(",")):
        name = key.lstrip("+-")
        if name not in fields:
            raise InvalidQuery(f"sortby: unknown property {name!r}", "sortby")
    lang = args.get("filter-lang")
    if lang not in (None, "cql2-text", "cql2-json"):
        raise InvalidQuery("filter-lang must be cql2-text or cql2-json", "filter-lang")
    if "filter" in args:
        parse_filter(args["filter"], lang)
    elif lang is not None:
        raise InvalidQuery("filter-lang given without filter", "filter-lang")


def check_item(args) -> None:
    for name in args:
        if name not in ITEM_PARAMS:
            raise InvalidQuery(f"unknown query parameter {name!r} for a single item", name)
    _crs(args, "crs")


def check_queryables(args, fields: set[str]) -> None:
    for name in args:
        if name not in ("f", "lang", "profile", "properties"):
            raise InvalidQuery(f"unknown query parameter {name!r} for queryables", name)
    for name in filter(None, (args.get("properties") or "").split(",")):
        if name not in fields:
            raise InvalidQuery(f"properties: unknown property {name!r}", "properties")


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
