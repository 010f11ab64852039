"""OUP's own endpoints, added to the OpenAPI document pygeoapi generates."""
from __future__ import annotations

PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["title", "status"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"},
        "status": {"type": "integer"}, "detail": {"type": "string"},
        "instance": {"type": "string"}, "code": {"type": "string"},
        "parameter": {"type": "string"},
    },
}


def _problem_response(description: str) -> dict:
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref":
                        "#/components/schemas/Problem"}},
                        "text/html": {"schema": {"type": "string"}}}}  # for f=html


_ANY = {"type": "object"}
_FEATURES = {"application/geo+json": {"schema": _ANY}, "application/json": {"schema": _ANY}, "application/ld+json": {"schema": _ANY},
             "text/html": {"schema": {"type": "string"}}, "text/csv": {"schema": {"type": "string"}}}
_DOC = {"application/json": {"schema": _ANY}, "text/html": {"schema": {"type": "string"}},
        "application/ld+json": {"schema": _ANY}}
# Local stand-ins for the OGC documents pygeoapi refers to by URL: the document must
# resolve offline (clients, validators and this machine have no internet).
_LOCAL = {
    "parameters/featureId": {"name": "featureId", "in": "path", "required": True,
                             "description": "identifier of a feature",
                             "schema": {"type": "string"}},
    "parameters/datetime": {"name": "datetime", "in": "query", "required": False,
                            "description": "an instant or an interval (open ends '..' or empty), "
                                           "RFC 3339", "schema": {"type": "string"},
                            "style": "form", "explode": False},
    "parameters/sortby": {"name": "sortby", "in": "query", "required": False,
                          "description": "comma-separated properties, '-' for descending",
                          "schema": {"type": "string"}, "style": "form", "explode": False},
    "parameters/q": {"name": "q", "in": "query", "required": False,
                     "description": "free-text search terms", "style": "form", "explode": False,
                     "schema": {"type": "string"}},
    # OGC API EDR (the sensors)
    "parameters/positionCoords": {"name": "coords", "in": "query", "required": True,
                                  "description": "WKT POINT(x y) in CRS84",
                                  "schema": {"type": "string"}},
    "parameters/areaCoords": {"name": "coords", "in": "query", "required": True,
                              "description": "WKT POLYGON in CRS84", "schema": {"type": "string"}},
    "parameters/bbox": {"name": "bbox", "in": "query", "required": False,
                        "description": "minx,miny,maxx,maxy in CRS84", "style": "form",
                        "explode": False, "schema": {"type": "string"}},
    "parameters/parameter-name": {"name": "parameter-name", "in": "query", "required": False,
                                  "description": "comma-separated parameters (observed "
                                                 "properties)", "style": "form",
                                  "explode": False, "schema": {"type": "string"}},
    "parameters/z": {"name": "z", "in": "query", "required": False,
                     "description": "vertical level (sensors have none: ignored)",
                     "schema": {"type": "string"}},
    "parameters/locationId": {"name": "locId", "in": "path", "required": True,
                              "description": "a location (sensor) id",
                              "schema": {"type": "string"}},
    "parameters/instanceId": {"name": "instanceId", "in": "path", "required": True,
                              "description": "an instance id", "schema": {"type": "string"}},
    "responses/LandingPage": {"description": "the landing page", "content": _DOC},
    "responses/Collection": {"description": "a collection", "content": _DOC},
    "responses/Collections": {"description": "the collections", "content": _DOC},
    "responses/Features": {"description": "a page of features", "content": _FEATURES},
    "responses/Feature": {"description": "one feature", "content": _FEATURES},
    "responses/InvalidParameter": None,  # -> the problem responses below
    "responses/NotFound": None,
    "responses/ServerError": None,
}
_EDR_QUERIES = ("position", "area", "cube", "radius", "trajectory", "corridor", "locations")
_PROBLEM_REFS = {"responses/InvalidParameter": "400", "responses/NotFound": "404",
                 "responses/ServerError": "500"}


def _localise(node, comps: dict):
    """Replace every external $ref by a local component (or an open schema)."""
    if isinstance(node, list):
        return [_localise(n, comps) for n in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and not ref.startswith("#"):
        for key, value in _LOCAL.items():
            if ref.endswith(key) or ref.endswith(key.split("/")[1] + ".yaml"):
                if key in _PROBLEM_REFS:
                    return {"$ref": f"#/components/responses/{_PROBLEM_REFS[key]}"}
                kind, name = key.split("/")
                comps.setdefault(kind, {})[f"oup-{name}"] = value
                return {"$ref": f"#/components/{kind}/oup-{name}"}
        return {}  # an external schema (GeoJSON, CQL2, links): accept any value
    return {k: _localise(v, comps) for k, v in node.items()}


SCENARIO_PARAMETER = {
    "name": "scenario", "in": "query", "required": False, "schema": {"type": "string"},
    "description": "the collection as this scenario (its id, see /scenarios) has it: its "
                   "proposed changes layered over the collection; sign in (401), and a "
                   "scenario not yours nor shared with your roles is a 404"}


def extend_openapi(oas: dict, own_paths: dict, unsearched: set[str] = frozenset(),
                   searched: dict[str, list[str]] | None = None,
                   scenarios: set[str] = frozenset()) -> dict:
    """pygeoapi's OpenAPI document, made whole offline, with OUP's own endpoints
    (``own_paths``: from their declarations, ``oup.http.routes``) and its problem answers.
    ``unsearched``: the collections OUP's store answers that declare no text attributes,
    whose items take no ``q``; ``searched``: the others, with the attributes ``q``
    looks in; ``scenarios``: the collections whose items may be read through a scenario
    (``scenario``)."""
    comps = oas.setdefault("components", {})
    oas["paths"] = _localise(oas.get("paths", {}), comps)
    oas["components"] = comps = _localise(comps, comps)
    comps.setdefault("schemas", {})["Problem"] = PROBLEM
    responses = comps.setdefault("responses", {})
    for code, text in (("400", "Bad request: the problem document names the parameter"),
                       ("401", "Sign in: no credentials, or credentials that are not valid"),
                       ("403", "Signed in, but without a role this takes"),
                       ("404", "Not found"),
                       ("405", "A method this path does not take (Allow says which)"),
                       ("409", "Clashes with what is there (a repeat of a stored reading)"),
                       ("412", "If-Match names a version that is no longer current"),
                       ("415", "A body of a media type this does not take"),
                       ("422", "A feature the collection does not take: the problem document "
                               "names the property"),
                       ("500", "Server error"),
                       ("503", "A part the answer needs is busy or away: send again "
                               "(Retry-After)")):
        responses[code] = _problem_response(text)
    paths = oas.setdefault("paths", {})
    for cid in unsearched:  # free-text search is not offered on them: do not say it is
        op = paths.get(f"/collections/{cid}/items", {}).get("get")
        if op is not None:
            op["parameters"] = [p for p in op.get("parameters", []) if not _is_q(p)]
    for cid, names in (searched or {}).items():  # say where q looks, and how
        op = paths.get(f"/collections/{cid}/items", {}).get("get")
        if op is not None:
            op["parameters"] = [p for p in op.get("parameters", []) if not _is_q(p)] + [{
                **_LOCAL["parameters/q"], "description": (
                    f"free text: the items whose {', '.join(names)} hold every word given "
                    "(each as the start of a word), best match first")}]
    for cid in scenarios:  # read as a scenario has them (its owner's, or shared)
        for path in (f"/collections/{cid}/items", f"/collections/{cid}/items/{{featureId}}"):
            op = paths.get(path, {}).get("get")
            if op is not None:
                op.setdefault("parameters", []).append(SCENARIO_PARAMETER)
                op.setdefault("responses", {})["401"] = {"$ref": "#/components/responses/401"}
    for name, path in paths.items():
        if name.endswith(("/schema", "/queryables")) and "get" in path:
            path["get"]["responses"]["200"] = {
                "description": "a JSON Schema of the features' properties",
                "content": {"application/schema+json": {"schema": _ANY},
                            "text/html": {"schema": {"type": "string"}}}}
        if name.endswith("/items") and "post" in path:
            path["post"]["summary"] = "Search the items with a CQL2 JSON filter in the body"
            path["post"]["requestBody"] = {"required": True, "content": {
                "application/query-cql-json": {"schema": _ANY},
                "application/json": {"schema": _ANY}}}
            path["post"]["responses"] = {
                "200": {"description": "the matching features", "content": _FEATURES},
                "415": _problem_response("the body is not CQL2 JSON")}
            path["post"].pop("parameters", None)
    for path, ops in own_paths.items():  # beside pygeoapi's at the same path (items)
        _merge(paths.setdefault(path, {}), ops)
    for name, path in paths.items():  # EDR queries: CoverageJSON, or nothing to say
        if name.rsplit("/", 1)[-1] in _EDR_QUERIES or "/locations/" in name:
            op = path.get("get", {})
            listing = name.endswith("/locations")
            op["responses"]["200"] = {
                "description": "the locations (GeoJSON)" if listing else
                               "the observations as CoverageJSON",
                "content": {"application/vnd.cov+json": {"schema": _ANY},
                            "application/geo+json": {"schema": _ANY},
                            "application/json": {"schema": _ANY},
                            "text/html": {"schema": {"type": "string"}}}}
            op["responses"]["204"] = {"description": "no observations for this query"}
            op["responses"].setdefault("404", {"$ref": "#/components/responses/404"})
    # every operation may answer with a problem document
    for path in paths.values():
        if "options" in path:  # CORS preflight
            path["options"]["responses"]["204"] = {"description": "CORS preflight answered"}
        for op in path.values():
            if isinstance(op, dict) and "responses" in op:
                op["responses"].setdefault("400", {"$ref": "#/components/responses/400"})
                op["responses"].setdefault("500", {"$ref": "#/components/responses/500"})
    return oas


def _is_q(param: dict) -> bool:
    return param.get("$ref", "").rsplit("/", 1)[-1] in ("q", "oup-q") or param.get("name") == "q"


def _merge(item: dict, own: dict) -> None:
    """OUP's operations into pygeoapi's path item. A POST on items is both pygeoapi's
    search (a CQL2 JSON body) and OUP's create (a GeoJSON body): one operation with both
    bodies and both answers."""
    for method, op in own.items():
        theirs = item.get(method)
        if theirs is not None and "requestBody" in theirs and "requestBody" in op:
            op["requestBody"]["content"] = {**theirs["requestBody"]["content"],
                                            **op["requestBody"]["content"]}
            op["responses"] = {**theirs.get("responses", {}), **op["responses"]}
            op["summary"] += "; or " + theirs.get("summary", "search").lower()
        item[method] = op
