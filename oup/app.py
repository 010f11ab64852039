"""The OUP web application: pygeoapi, configured from the catalogue, with the parts
a production service needs around it (problem documents, strict parameters,
CORS, security and version headers, /health, /metrics, /openapi.json).

``create_app()`` is a factory (gunicorn: ``oup.app:create_app()``). pygeoapi reads
its configuration once, at import, from the files ``write_config`` generates.
"""
from __future__ import annotations

import gc
import json
import logging
import os
import re
import time
from http import HTTPStatus

from . import tiles3d
from .catalog import load_catalog
from .metrics import Metrics, server_folder
from .params import check_item, check_items, check_queryables, parse_filter
from .pygeoapi_config import RECORD_PROPERTIES, RECORDS_ID, catalogue_records, write_config
from .security import (VISIBLE, AuditLog, AuthError, Authenticator, VisibleResources,
                       new_request_id, visible_collections)
from .settings import Settings, get_settings
from .store import InvalidQuery, StoreError, open_store
from .store.geometry import CRS84

LOG = logging.getLogger(__name__)
API_VERSION = "1.0.0"
PROBLEM_JSON = "application/problem+json"
OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.0"
# What really works here (pygeoapi's defaults claim e.g. Part 4 transactions).
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
_COLLECTION_PATH = re.compile(r"^/collections/([^/]+)")
_OPENAPI_PATHS = ("/openapi", "/openapi.json", "/api")
_COLLECTIONS = re.compile(r"^/collections(/[^/]+)?/?$")
_QUERYABLES = re.compile(r"^/collections/([^/]+)/(queryables|schema)/?$")
_ITEMS = re.compile(r"^/collections/([^/]+)/items/?$")
_ITEM = re.compile(r"^/collections/([^/]+)/items/([^/]+)$")


def problem(status: int, detail: str, instance: str, code: str | None = None,
            parameter: str | None = None) -> tuple[str, int, dict]:
    phrase = HTTPStatus(status).phrase
    body = {"type": f"https://oup.example.org/problems/{(code or phrase).replace(' ', '')}",
            "title": phrase, "status": status, "detail": detail, "instance": instance}
    if code:
        body["code"] = code
    if parameter:
        body["parameter"] = parameter
    return json.dumps(body), status, {"Content-Type": PROBLEM_JSON}


def _visible_openapi(doc: dict, hidden: set[str]) -> dict:
    """The OpenAPI document without the collections the caller may not see."""
    doc["paths"] = {p: v for p, v in doc.get("paths", {}).items()
                    if not any(p == f"/collections/{c}" or p.startswith(f"/collections/{c}/")
                               for c in hidden)}
    doc["tags"] = [t for t in doc.get("tags", []) if t.get("name") not in hidden]
    return doc


def _with_records(doc: dict, records: dict, extra: set[str]) -> dict:
    """Add the records of the non-public collections the caller may see."""
    if "features" in doc:
        doc["features"] += [records[c] for c in sorted(extra) if c in records]
        doc["numberReturned"] = len(doc["features"])
        if "numberMatched" in doc:
            doc["numberMatched"] += len([c for c in extra if c in records])
    return doc


def _plain_items_links(doc: dict) -> dict:
    """Items links without ``?f=json``: GeoJSON is the default, and clients such as
    GDAL append ``/{featureId}`` to the items link, which a query string breaks."""
    for coll in doc.get("collections", [doc]):
        for link in coll.get("links", []):
            if link.get("rel") == "items" and link.get("href", "").endswith("/items?f=json"):
                link["href"] = link["href"].removesuffix("?f=json")
    return doc


def _adjust_pygeoapi() -> None:
    """Narrow corrections to pygeoapi's items handler, all after ``params`` checked the
    request: a ``filter`` may be CQL2 JSON in a GET too, and is parsed as the CQL2
    standard writes it; a well-formed ``datetime`` outside the collection's extent
    matches nothing (200, empty) instead of pygeoapi's 400; and ``bbox-crs`` goes
    through RDNAPTRANS(TM)2018, while a CRS84 bbox is not "transformed" at all
    (pygeoapi spends ~15 ms a request building pyproj objects for that)."""
    import pygeoapi.api.itemtypes as itemtypes

    from .store.geometry import bbox_to_crs84

    def transform_bbox(bbox, from_crs, to_crs, always_xy=False):
        if to_crs != CRS84:  # every OUP provider declares CRS84 storage
            raise RuntimeError(f"unexpected storage CRS {to_crs}")
        return bbox_to_crs84(bbox, from_crs)

    itemtypes.transform_bbox = transform_bbox

    itemtypes.parse_cql2_text = lambda text: parse_filter(text, None)
    itemtypes.parse_cql2_json = lambda text: parse_filter(text, "cql2-json")
    itemtypes.validate_datetime = lambda extents, datetime_=None: datetime_


def create_app(settings: Settings | None = None):
    settings = settings or get_settings()
    logging.basicConfig(level=settings.log_level)
    # pygeoapi warns on every request without `offset`; that is not news
    logging.getLogger("pygeoapi.api.itemtypes").setLevel(logging.ERROR)
    from .geodesy import install_grids

    install_grids(settings.data_dir)
    catalog = load_catalog(settings.catalog_dir)
    store = open_store(settings.store_url)
    cfg_path, oas_path = write_config(catalog, store, settings)
    os.environ["PYGEOAPI_CONFIG"] = str(cfg_path)
    os.environ["PYGEOAPI_OPENAPI"] = str(oas_path)
    _adjust_pygeoapi()
    from flask import Response, g, request
    from pygeoapi.flask_app import APP, BLUEPRINT, api_

    if "pygeoapi" not in APP.blueprints:
        APP.register_blueprint(BLUEPRINT)
    app = APP
    auth = Authenticator(settings.jwks_file, settings.jwt_issuer, settings.jwt_audience,
                         settings.api_keys_file)
    audit = AuditLog(settings.audit_log or settings.data_dir / "audit.log")
    public = {c.id for c in catalog if c.classification.value == "public"}
    # pygeoapi lists, describes and serves only what the current request may see
    api_.config["resources"] = VisibleResources(api_.config["resources"],
                                                set(catalog.collections))
    records = catalogue_records(catalog, store)
    # per start-up: counters begin at zero when the service (re)starts
    metrics = Metrics(server_folder(settings.data_dir / "metrics", os.getppid()))
    openapi_doc = oas_path.read_text()
    fields_cache: dict[str, set[str]] = {}

    def fields_of(cid: str) -> set[str] | None:
        if cid not in fields_cache:
            coll = catalog.collections.get(cid)
            if coll is not None and coll.derived_from:  # observations, time slices
                from .store.timeseries import OBSERVATION_FIELDS, SLICE_FIELDS

                sensors = catalog[coll.derived_from]
                own = OBSERVATION_FIELDS if coll.observations_of else SLICE_FIELDS
                fields_cache[cid] = {sensors.id_field, sensors.stream.property_field, "unit",
                                     *(name for name, _ in own)}
                return fields_cache[cid]
            try:
                fields_cache[cid] = {f.name for f in store.fields(cid)}
            except StoreError:
                return None
        return fields_cache[cid]

    @app.before_request
    def _check():
        g.started = time.perf_counter()
        g.request_id = request.headers.get("X-Request-ID", "")[:64] or new_request_id()
        g.identity, g.cid = None, None
        VISIBLE.set(frozenset(public))
        if request.method == "OPTIONS":
            return "", 204
        path = request.path
        try:
            g.identity = auth.identify(request.headers)
        except AuthError as exc:
            body, status, headers = problem(401, str(exc), path, "Unauthorized")
            headers["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{exc}"'
            return body, status, headers
        g.visible = frozenset(visible_collections(g.identity, catalog))
        VISIBLE.set(g.visible)
        if (m := _COLLECTION_PATH.match(path)) and m.group(1) in catalog.collections:
            g.cid = m.group(1)
            if g.cid not in g.visible:  # invisible, not forbidden: it does not exist here
                return problem(404, f"no collection {g.cid!r}", path, "NotFound")
        if m := tiles3d.TILES_PATH.match(path):
            if request.method not in ("GET", "HEAD"):
                return problem(405, "3D Tiles are read-only", path)
            return tiles3d.serve(settings.data_dir, problem, m.group(1), m.group(2))
        if path == "/viewer" or path.startswith("/viewer/"):
            return tiles3d.serve_viewer(problem, path.removeprefix("/viewer").lstrip("/"))
        try:
            if request.method not in ("GET", "HEAD", "POST"):
                return problem(405, f"{request.method} is not offered: the API is read-only",
                               path)
            if m := _ITEMS.match(path):
                fields = fields_of(m.group(1))
                if fields is not None:
                    check_items(request.args, fields, settings.max_page_limit)
                if request.method == "POST":
                    if request.mimetype not in ("application/query-cql-json", "application/json"):
                        return problem(415, "POST a CQL2 JSON filter as "
                                       "application/query-cql-json", path)
                    parse_filter(request.get_data(as_text=True), "cql2-json")
            elif request.method == "POST":
                return problem(405, "POST is only offered on .../items (CQL2 JSON search)", path)
            elif m := _ITEM.match(path):
                check_item(request.args)
            elif m := _QUERYABLES.match(path):
                cid = m.group(1)
                known = set(RECORD_PROPERTIES) if cid == RECORDS_ID else fields_of(cid)
                check_queryables(request.args, known or set())
        except InvalidQuery as exc:
            return problem(400, str(exc), request.full_path.rstrip("?"), "InvalidParameterValue",
                           exc.parameter)
        return None

    @app.after_request
    def _headers(resp: Response):
        resp = _as_problem(resp)
        identity = g.get("identity")
        cid = g.get("cid")
        route = request.url_rule.rule if request.url_rule else "(unmatched)"
        if cid and cid not in public:
            audit.write(identity.who if identity else "anonymous", cid,
                        f"{request.method} {route}", resp.status_code, g.request_id)
        if (identity and identity.authenticated) or (cid and cid not in public):
            resp.headers["Cache-Control"] = "no-store"  # answers that depend on who asks
        if request.is_secure or request.headers.get("X-Forwarded-Proto") == "https":
            resp.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        resp.headers["X-Request-ID"] = g.get("request_id", "")
        rewrite = _rewrite_for(request.path)
        if rewrite and resp.status_code == 200 and resp.get_data()[:1] == b"{":
            resp.set_data(json.dumps(rewrite(json.loads(resp.get_data()))))
        h = resp.headers
        h["API-Version"] = API_VERSION
        h["Access-Control-Allow-Origin"] = "*"
        h["Access-Control-Allow-Methods"] = "GET, HEAD, OPTIONS"
        h["Access-Control-Allow-Headers"] = "Accept, Content-Type, Authorization"
        h["Access-Control-Expose-Headers"] = "Content-Crs, API-Version, ETag"
        h["X-Content-Type-Options"] = "nosniff"
        h["X-Frame-Options"] = "DENY"
        metrics.observe(route, resp.status_code,
                        time.perf_counter() - g.get("started", time.perf_counter()))
        return resp

    def _rewrite_for(path: str):
        """How OUP amends pygeoapi's JSON at ``path``, if it does (only these few paths)."""
        if path in _OPENAPI_PATHS:
            hidden = set(catalog.collections) - set(g.get("visible", public))
            return lambda doc: _visible_openapi(doc, hidden)
        if path == f"/collections/{RECORDS_ID}/items":
            return lambda doc: _with_records(doc, records, g.get("visible", public) - public)
        if path == "/conformance":
            return lambda doc: {"conformsTo": CONFORMANCE}
        if _COLLECTIONS.match(path):
            return lambda doc: tiles3d.add_links(_plain_items_links(doc), settings.public_url,
                                                 settings.data_dir)
        return None

    def _as_problem(resp: Response) -> Response:
        if resp.status_code < 400 or resp.mimetype == PROBLEM_JSON:
            return resp
        if request.args.get("f") == "html" or (resp.mimetype or "").startswith("text/html"):
            return resp  # a person in a browser gets pygeoapi's HTML error page
        detail = HTTPStatus(resp.status_code).description
        code = None
        if not resp.is_streamed and resp.get_data()[:1] == b"{":
            try:
                body = json.loads(resp.get_data())
                detail = body.get("description") or body.get("detail") or detail
                code = body.get("code")
            except (ValueError, AttributeError):
                pass
        body, status, headers = problem(resp.status_code, detail, request.full_path.rstrip("?"),
                                        code)
        new = Response(body, status=status, headers=headers)
        for key in ("Content-Crs", "Content-Language"):
            if key in resp.headers:
                new.headers[key] = resp.headers[key]
        return new

    @app.errorhandler(404)
    @app.errorhandler(405)
    def _http_error(err):
        return problem(err.code, err.description, request.path)

    @app.errorhandler(Exception)
    def _server_error(err):
        if hasattr(err, "code") and isinstance(err.code, int) and 400 <= err.code < 600:
            return problem(err.code, getattr(err, "description", str(err)), request.path)
        LOG.exception("unhandled error on %s", request.full_path)
        return problem(500, "internal error; it has been logged", request.path)

    @app.get("/health")
    def health():
        state = dict(store.health(), worker=os.getpid())  # which worker answered
        return state, 200 if state["status"] == "ok" else 503

    observations: list = []  # one connection per worker, opened on first use

    def observation_store():
        if not observations:
            from .store import open_observation_store

            observations.append(open_observation_store(settings.store_url))
        return observations[0]

    @app.get("/metrics")
    def metrics_endpoint():
        text = metrics.render()
        if any(c.stream for c in catalog):  # the ingesters' counters, from the store
            from iot_ingest.stats import ingest_stats, prometheus

            text += prometheus(ingest_stats(observation_store(), settings.data_dir))
        return Response(text, mimetype="text/plain; version=0.0.4")

    @app.get("/openapi.json")
    @app.get("/api")
    def openapi_json():
        return Response(openapi_doc, content_type=OPENAPI_JSON)

    # Everything loaded so far lives as long as the worker: keep the garbage collector
    # from walking it on every full collection (tail latency).
    gc.collect()
    gc.freeze()
    return app
