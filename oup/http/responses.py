"""Shaping the answers: the headers every answer carries, and the few corrections OUP
makes to pygeoapi's JSON (what is conformed to, what the caller may see in the OpenAPI
document and the Records catalogue, plain items links). Problem documents are made in
one place, ``oup.http.problems``."""
from __future__ import annotations

import re

API_VERSION = "1.0.0"
OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.0"
# What really works here (pygeoapi's defaults claim e.g. Part 4 transactions, which OUP
# claims itself only when a collection is editable: EDITING).
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/landing-page",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/ogcapi-features-5/1.0/conf/schemas",
    "http://www.opengis.net/spec/ogcapi-features-5/1.0/conf/core-roles-features",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/json",
]
EDITING = [f"http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/{c}"
           for c in ("create-replace-delete", "update", "features")]
OPENAPI_PATHS = ("/openapi", "/openapi.json", "/api")
COLLECTIONS = re.compile(r"^/collections(/[^/]+)?/?$")
_COMMON_HEADERS = {
    "API-Version": API_VERSION,
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE",
    "Access-Control-Allow-Headers": "Accept, Content-Type, Content-Crs, Authorization, "
                                    "If-Match",
    "Access-Control-Expose-Headers": "Content-Crs, API-Version, ETag, Location",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def visible_openapi(doc: dict, hidden: set[str]) -> dict:
    """The OpenAPI document without the collections the caller may not see."""
    doc["paths"] = {p: v for p, v in doc.get("paths", {}).items()
                    if not any(p == f"/collections/{c}" or p.startswith(f"/collections/{c}/")
                               for c in hidden)}
    doc["tags"] = [t for t in doc.get("tags", []) if t.get("name") not in hidden]
    return doc


def with_records(doc: dict, records: dict, extra: set[str]) -> dict:
    """Add the records of the non-public collections the caller may see."""
    if "features" in doc:
        doc["features"] += [records[c] for c in sorted(extra) if c in records]
        doc["numberReturned"] = len(doc["features"])
        if "numberMatched" in doc:
            doc["numberMatched"] += len([c for c in extra if c in records])
    return doc


def plain_items_links(doc: dict) -> dict:
    """Items links without ``?f=json``: GeoJSON is the default, and clients such as
    GDAL append ``/{featureId}`` to the items link, which a query string breaks."""
    for coll in doc.get("collections", [doc]):
        for link in coll.get("links", []):
            if link.get("rel") == "items" and link.get("href", "").endswith("/items?f=json"):
                link["href"] = link["href"].removesuffix("?f=json")
    return doc


def without_spatial_extent(doc: dict, ids: set[str]) -> dict:
    """No bbox for the collections that have no geometry (pygeoapi's configuration must
    give every collection one; OGC API Features does not ask for it)."""
    for coll in doc.get("collections", [doc]):
        if coll.get("id") in ids and "extent" in coll:
            coll["extent"].pop("spatial", None)
            if not coll["extent"]:
                del coll["extent"]
    return doc


def add_common_headers(headers) -> None:
    """API version, CORS (reads only) and the security headers every answer carries."""
    headers.update(_COMMON_HEADERS)
