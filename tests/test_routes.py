"""Each endpoint declared once (``oup.http.routes``): the OpenAPI document and the server
agree. Every link the API hands out leads to a path the document describes, and no
parameter the document lists is refused as unknown."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import requests

pytestmark = pytest.mark.slow

# a value of the right kind for the parameters whose name says more than their schema
SAMPLES = {"bbox": "4.40,51.90,4.50,51.95", "datetime": "2020-01-01T00:00:00Z",
           "coords": "POINT(4.45 51.91)", "filter": "1=1", "sortby": "id",
           "properties": "id", "fontstack": "OUP Sans", "range": "0-255",
           "resource": "tileset.json", "asset": "oup/map.js", "parameter-name": "NO2",
           "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
           "bbox-crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}


def _sample(param: dict) -> str:
    schema = param.get("schema") or {}
    if param["name"] in SAMPLES:
        return SAMPLES[param["name"]]
    if schema.get("enum"):
        return str(schema["enum"][0])
    if schema.get("type") in ("integer", "number"):
        return str(max(schema.get("minimum", 1), 1) if param["in"] == "query" else 0)
    if schema.get("type") == "boolean":
        return "true"
    return "x"


def _templates(doc: dict) -> list[re.Pattern]:
    return [re.compile("^" + re.sub(r"\\{\w+\\}", "[^/]+", re.escape(p)) + "/?$")
            for p in doc["paths"]]


def test_every_link_the_api_gives_leads_to_a_path_the_document_describes(server):
    doc = requests.get(f"{server}/openapi.json", timeout=30).json()
    templates = _templates(doc)
    pages = [f"{server}/", f"{server}/collections", f"{server}/tiles",
             f"{server}/styles"]
    pages += [f"{server}/collections/{c['id']}" for c in
              requests.get(f"{server}/collections?f=json", timeout=30).json()["collections"]]
    hrefs = set()
    for page in pages:
        body = requests.get(page, params={"f": "json"} if "/tiles" not in page
                            and "/styles" not in page else None, timeout=30).json()
        hrefs |= {link["href"] for link in _links(body)}
    ours = {urlsplit(h).path.replace("%7B", "{").replace("%7D", "}") or "/" for h in hrefs
            if h.startswith(server)}
    # the links name these kinds of endpoint, so the check covers OUP's own and pygeoapi's
    for kind in ("/tiles", "/styles", "/3dtiles/", "/events", "/asyncapi", "/items",
                 "/queryables", "/tileMatrixSets", "/map", "/viewer"):
        assert any(kind in p for p in ours), kind
    missing = sorted(p for p in ours
                     if "{" not in p and not any(t.match(p) for t in templates))
    assert missing == []


def _links(node):
    if isinstance(node, dict):
        if isinstance(node.get("href"), str) and "rel" in node:
            yield node
        for value in node.values():
            yield from _links(value)
    elif isinstance(node, list):
        for value in node:
            yield from _links(value)


def test_no_parameter_the_document_lists_is_refused_as_unknown(server):
    doc = requests.get(f"{server}/openapi.json", timeout=30).json()
    refused, asked = [], 0
    session = requests.Session()
    for template, item in doc["paths"].items():
        op = item.get("get")
        if op is None:
            continue
        params = [p for p in op.get("parameters", []) if "$ref" not in p]
        params += [_resolve(doc, p["$ref"]) for p in op.get("parameters", []) if "$ref" in p]
        broken = [p for p in params if "in" not in p or "name" not in p]
        assert broken == [], f"{template}: parameters without name or place"
        path = template
        for p in params:
            if p["in"] == "path":
                path = path.replace("{" + p["name"] + "}", _sample(p))
        for p in params:
            if p["in"] != "query" or (p.get("schema") or {}).get("type") == "object":
                continue  # (an object in a form: free-form property=value pairs)
            asked += 1
            r = session.get(f"{server}{path}", params={p["name"]: _sample(p)}, timeout=30,
                            stream=True)  # an event stream answers and stays open
            problem = r.json() if r.headers.get("Content-Type", "").startswith(
                "application/problem+json") else {}
            r.close()
            if r.status_code == 400 and problem.get("parameter") == p["name"] \
                    and "unknown query parameter" in problem.get("detail", ""):
                refused.append(f"{template} ?{p['name']}: {problem['detail']}")
    assert asked > 100  # the document was read and its parameters tried
    assert refused == []


def _resolve(doc: dict, ref: str) -> dict:
    node = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node
