"""OUP's own endpoints, added to the OpenAPI document pygeoapi generates."""
from __future__ import annotations

PROBLEM = {
    "type": "object",
    "description": "RFC 7807 problem details",
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
                        "#/components/schemas/Problem"}}}}


def extend_openapi(oas: dict, cfg: dict) -> dict:
    comps = oas.setdefault("components", {})
    comps.setdefault("schemas", {})["Problem"] = PROBLEM
    responses = comps.setdefault("responses", {})
    for code, text in (("400", "Bad request: the problem document names the parameter"),
                       ("404", "Not found"), ("500", "Server error")):
        responses[code] = _problem_response(text)
    paths = oas.setdefault("paths", {})
    paths["/health"] = {"get": {
        "summary": "Health of the service and its store", "operationId": "getHealth",
        "tags": ["server"],
        "responses": {"200": {"description": "healthy", "content": {"application/json": {
            "schema": {"type": "object"}}}},
            "503": {"description": "the store is not answering", "content": {
                "application/json": {"schema": {"type": "object"}}}}}}}
    paths["/metrics"] = {"get": {
        "summary": "Prometheus metrics (text exposition format)", "operationId": "getMetrics",
        "tags": ["server"],
        "responses": {"200": {"description": "metrics", "content": {
            "text/plain": {"schema": {"type": "string"}}}}}}}
    paths["/openapi.json"] = {"get": {
        "summary": "This OpenAPI document", "operationId": "getOpenAPIJson", "tags": ["server"],
        "responses": {"200": {"description": "the OpenAPI 3.0 document", "content": {
            "application/vnd.oai.openapi+json;version=3.0": {"schema": {"type": "object"}}}}}}}
    # every operation may answer with a problem document
    for path in paths.values():
        for op in path.values():
            if isinstance(op, dict) and "responses" in op:
                op["responses"].setdefault("400", {"$ref": "#/components/responses/400"})
                op["responses"].setdefault("500", {"$ref": "#/components/responses/500"})
    return oas
