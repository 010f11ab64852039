"""OUP's own endpoints, each declared once.

An ``Endpoint`` says its path (an OpenAPI path template), methods, parameters (typed,
with their allowed values), formats (``f`` and ``Accept``), access check and handler.
From that one declaration come:

- the routing (``Routes.resolve``), matched before pygeoapi's routing: pygeoapi has
  rules of its own for some of these paths (``/collections/<path:...>``, tiles) that
  would otherwise take the request;
- the method check (405 with ``Allow``), the unknown-parameter check and the typed
  checks of each parameter (400 naming it), the ``f`` check;
- the choice of format: ``f`` if given, else the best of ``Accept``, else the first;
- the endpoint's part of the OpenAPI document (``Routes.openapi_paths``).

A handler gets a ``Call``: the parsed path and query parameters, the chosen format, the
framework's request and what the caller may see. It answers, or raises an ``OUPError``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from oup.errors import InvalidQuery, MethodNotAllowed, NotFound

STRING = {"type": "string"}
COLLECTION = "collectionId"


@dataclass(frozen=True)
class Format:
    """One answer format: the value of ``f`` and its media type (``also``: other media
    types an ``Accept`` header may name for it)."""

    key: str
    media_type: str
    also: tuple[str, ...] = ()


@dataclass(frozen=True)
class Param:
    """A path or query parameter, typed by a JSON Schema (``type``: string, integer,
    number or boolean; ``enum``, ``minimum``, ``maximum``, ``pattern``)."""

    name: str
    description: str
    schema: dict = field(default_factory=lambda: dict(STRING))
    where: str = "query"
    spans: bool = False  # a path parameter that may hold '/' (a file below a folder)

    def parse(self, raw: str) -> Any:
        kind, s = self.schema.get("type", "string"), self.schema
        value: Any = raw
        if kind in ("integer", "number"):
            try:  # int() would take " 1", "+1" and "1_0": a whole number is digits
                if kind == "integer" and not re.fullmatch(r"-?\d{1,18}", raw):
                    raise ValueError(raw)
                value = int(raw) if kind == "integer" else float(raw)
            except ValueError:
                raise InvalidQuery(f"{self.name} must be {'an integer' if kind == 'integer'
                                   else 'a number'}, got {raw!r}", self.name) from None
            if not math.isfinite(value) or value < s.get("minimum", -math.inf) \
                    or value > s.get("maximum", math.inf):
                raise InvalidQuery(f"{self.name} must be between {s.get('minimum', '-inf')} "
                                   f"and {s.get('maximum', 'inf')}, got {raw!r}", self.name)
        elif kind == "boolean":
            if raw not in ("true", "false"):
                raise InvalidQuery(f"{self.name} must be true or false, got {raw!r}",
                                   self.name)
            value = raw == "true"
        if "enum" in s and value not in s["enum"]:
            if self.where == "path":  # a path names a thing: one not offered is not here
                raise NotFound(f"no {self.name} {raw!r}; offered: "
                               f"{', '.join(map(str, s['enum']))}")
            raise InvalidQuery(f"{self.name} must be one of {', '.join(map(str, s['enum']))}, "
                               f"got {raw!r}", self.name)
        if "pattern" in s and not re.fullmatch(s["pattern"], raw):
            if self.where == "path":
                raise NotFound(f"no {self.name} {raw!r} here")
            raise InvalidQuery(f"{self.name}: {raw!r} is not of the form "
                               f"{s.get('description', s['pattern'])}", self.name)
        return value

    def openapi(self) -> dict:
        return {"name": self.name, "in": self.where, "required": self.where == "path",
                "description": self.description, "schema": self.schema}


# as pygeoapi takes it on its own paths: a language offered picks it, another one the default
LANG = Param("lang", "the language of the answer: en or nl (default: by Accept-Language, "
             "else en)", {"type": "string", "pattern": "^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$",
                          "description": "a language tag such as nl or en-GB"})


@dataclass(frozen=True)
class Call:
    """One request to an endpoint, checked: what its handler needs."""

    endpoint: Endpoint
    path: dict[str, Any]
    query: dict[str, Any]
    format: Format | None
    visible: frozenset[str]
    request: Any = None  # Flask's request, for what only a handler reads (If-None-Match)
    identity: Any = None  # who is asking (oup.security.Identity)
    request_id: str = ""

    @property
    def collection(self) -> str | None:
        return self.path.get(COLLECTION)


@dataclass(frozen=True)
class Endpoint:
    """One of OUP's own endpoints (see the module's text)."""

    path: str
    summary: str
    handler: Callable[[Call], Any] | None  # None: answered by the ASGI part (streams)
    tag: str
    operation: str
    methods: tuple[str, ...] = ("GET",)
    params: tuple[Param, ...] = ()
    formats: tuple[Format, ...] = ()
    # with {collectionId}: the collections that have this endpoint (the OpenAPI document
    # lists it once for each, so a caller's copy can leave out what they may not see)
    collections: Callable[[], Iterable[str]] | None = None
    # who may call it, beyond seeing the collection (a collection one may not see is a
    # 404 on every path, before any endpoint is asked): raises Unauthorized or Forbidden
    access: Callable[[Call], None] | None = None
    # the collection whose rows it answers, when its path does not name it (the sensors
    # behind /sta): one who may not see it gets a 404 on every path and method, before
    # anything else is checked, as at /collections/{collectionId}
    shows: str | None = None
    any_query: bool = False  # static files: a query string (cache busting) is ignored
    # the media types of the body it takes (POST, PUT, PATCH); another one is a 415
    consumes: tuple[str, ...] = ()
    # pygeoapi answers the other methods at this path (GET items), and the requests whose
    # body this one does not take (POST items with a CQL2 JSON search)
    beside: bool = False
    responses: dict[str, dict] = field(default_factory=dict)  # more statuses to document
    description: str = ""

    def __post_init__(self):
        declared = {p.name for p in self.params if p.where == "path"}
        named = re.findall(r"{(\w+)}", self.path)
        missing = set(named) - declared - {COLLECTION}
        if missing:
            raise ValueError(f"{self.path}: path parameter(s) {missing} are not declared")

    @property
    def query_params(self) -> dict[str, Param]:
        own = {p.name: p for p in self.params if p.where == "query"}
        if len(self.formats) > 1 or (self.formats and "f" not in own):
            own["f"] = Param("f", "the format of the answer (default: by Accept, else "
                             f"{self.formats[0].key})",
                             {"type": "string", "enum": [f.key for f in self.formats]})
        if self.formats and "lang" not in own:  # a document: in the reader's language
            own["lang"] = LANG
        return own

    def pattern(self) -> re.Pattern:
        def group(m: re.Match) -> str:
            name = m.group(1)
            spans = any(p.name == name and p.spans for p in self.params)
            return f"(?P<{name}>{'.+' if spans else '[^/]+?'})"

        parts = re.split(r"({\w+})", self.path)
        regex = "".join(re.sub(r"{(\w+)}", group, p) if p.startswith("{") else re.escape(p)
                        for p in parts)
        return re.compile(f"^{regex}/?$")


class Routes:
    """The endpoints, matched in the order declared (a literal path before a template
    that would also match it: declare ``/tiles/x`` before ``/tiles/{id}``)."""

    def __init__(self, endpoints: Iterable[Endpoint]):
        self.endpoints = list(endpoints)
        self._paths: list[tuple[re.Pattern, dict[str, Endpoint]]] = []
        by_path: dict[str, dict[str, Endpoint]] = {}
        for e in self.endpoints:
            methods = by_path.setdefault(e.path, {})
            for m in e.methods:
                if m in methods:
                    raise ValueError(f"{m} {e.path} is declared twice")
                methods[m] = e
            if len(methods) == len(e.methods):  # first at this path
                self._paths.append((e.pattern(), methods))

    def match(self, path: str) -> tuple[dict[str, Endpoint], dict[str, str]] | None:
        for regex, methods in self._paths:
            if m := regex.match(path):
                return methods, m.groupdict()
        return None

    def shown(self, path: str) -> str | None:
        """The collection the endpoints at ``path`` answer from, if they declare one."""
        found = self.match(path)
        return next((e.shows for e in found[0].values() if e.shows), None) if found else None

    def streamed(self, path: str) -> bool:
        """Whether ``path`` is an endpoint the ASGI part answers itself (a stream)."""
        found = self.match(path)
        return found is not None and any(e.handler is None for e in found[0].values())

    def resolve(self, method: str, path: str, args, accept: str | None,
                visible: frozenset[str], request=None, identity=None,
                request_id: str = "") -> Call | None:
        """The checked call for this request, None when no endpoint of OUP's has this
        path (pygeoapi's then), or an OUPError for what is wrong with it."""
        found = self.match(path)
        if found is None:
            return None
        methods, raw_path = found
        endpoint = methods.get("GET" if method == "HEAD" else method)
        if endpoint is None and all(e.beside for e in methods.values()):
            return None
        if endpoint is not None and endpoint.beside and endpoint.consumes and request \
                is not None and request.mimetype not in endpoint.consumes:
            return None
        if endpoint is None:
            allowed = sorted(set(methods) | ({"HEAD"} if "GET" in methods else set()))
            raise MethodNotAllowed(f"{method} is not offered on {path}; it takes "
                                   f"{', '.join(allowed)}", allowed)
        by_name = {p.name: p for p in endpoint.params}
        path_args = {k: by_name[k].parse(v) if k in by_name else v
                     for k, v in raw_path.items()}
        query = _query(endpoint, args, path)
        call = Call(endpoint, path_args, query, _format(endpoint, query.get("f"), accept),
                    visible, request, identity, request_id)
        if endpoint.access is not None:
            endpoint.access(call)
        return call

    def openapi_paths(self) -> dict:
        """The endpoints' part of the OpenAPI document."""
        out: dict[str, dict] = {}
        for e in self.endpoints:
            targets = [(e.path, "")]
            if "{" + COLLECTION + "}" in e.path and e.collections is not None:
                targets = [(e.path.replace("{" + COLLECTION + "}", c), "_" + c.replace("-", "_"))
                           for c in sorted(e.collections())]
            for path, suffix in targets:
                for method in e.methods:
                    out.setdefault(path, {})[method.lower()] = _operation(e, method, suffix)
        return out


def _query(endpoint: Endpoint, args, path: str) -> dict[str, Any]:
    known = endpoint.query_params
    out: dict[str, Any] = {}
    for name in args:
        param = known.get(name)
        if param is None:
            if endpoint.any_query:
                continue
            takes = ", ".join(sorted(known)) or "no parameters"
            raise InvalidQuery(f"unknown query parameter {name!r}; {path} takes {takes}", name)
        raw = args.get(name)
        if name == "f" and raw == "":
            continue  # an empty f: as if absent (forms send it so)
        out[name] = param.parse(raw)
    return out


def _format(endpoint: Endpoint, f: str | None, accept: str | None) -> Format | None:
    if not endpoint.formats:
        return None
    if f is not None:
        return next(x for x in endpoint.formats if x.key == f)
    if accept:
        offered = {m: x for x in endpoint.formats for m in (x.media_type, *x.also)}
        best = parse_accept_header(accept, MIMEAccept).best_match(list(offered))
        if best is not None:
            return offered[best]
    return endpoint.formats[0]


def _operation(e: Endpoint, method: str, suffix: str) -> dict:
    params = [p.openapi() for p in e.params if p.where != "query"]
    params += [p.openapi() for p in e.query_params.values()]
    content = {f.media_type: {"schema": _schema_of(f.media_type)} for f in e.formats}
    ok = {"description": e.summary, **({"content": content} if content else {})}
    op = {"summary": e.summary, "operationId": f"{e.operation}{suffix}"
          + ("" if method == "GET" else f"_{method.lower()}"), "tags": [e.tag],
          "parameters": params, "responses": {
              "200": ok, **e.responses,
              # a collection one may not see, or a file that is not there, on any of them
              "404": {"$ref": "#/components/responses/404"}}}
    if e.description:
        op["description"] = e.description
    if e.consumes:
        op["requestBody"] = {"required": True, "content": {
            m: {"schema": {"type": "object"}} for m in e.consumes if m}}
    return op


def _schema_of(media_type: str) -> dict:
    if "json" in media_type or "yaml" in media_type:
        return {"type": "object"}
    if media_type.startswith("text/"):
        return {"type": "string"}
    return {"type": "string", "format": "binary"}
