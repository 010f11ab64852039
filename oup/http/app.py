"""The OUP web application: pygeoapi, configured from the catalogue, with the parts
a production service needs around it: strict parameters (``request_checks``), access
(``security``), problem documents and headers (``responses``), /health, /metrics,
/openapi.json. This module wires them together.

``create_app()`` is a factory (gunicorn: ``oup.http.app:create_app()``), one app per process:
pygeoapi reads its configuration once, at import (``oup.http.pygeoapi_adapter``).
"""
from __future__ import annotations

import functools
import gc
import json
import logging
import os
import re
import time

from types import SimpleNamespace

from oup.events import asyncapi

from oup.tiles import glyphs

from oup.http import pages

from oup.tiles import styles

from oup.tiles import tiles3d

from oup.tiles import vector_tiles
from oup.catalog import load_catalog
from oup.http.metrics import Metrics, server_folder
from oup.http.params import CHECKED_ITEMS
from oup.http.pygeoapi_adapter import flask_app
from oup.http.pygeoapi_config import RECORDS_ID, catalogue_records, write_config
from oup.http.request_checks import Queryables, check_request
from oup.http.responses import (COLLECTIONS, CONFORMANCE, OPENAPI_JSON, OPENAPI_PATHS,
                        add_common_headers, as_problem, plain_items_links, problem,
                        visible_openapi, with_records, without_spatial_extent)
from oup.security import (INVALID_CREDENTIALS, VISIBLE, AuditLog, AuthError, Authenticator,
                       new_request_id, visible_collections)
from oup.settings import Settings, get_settings
from oup.store import StoreError, open_store
from oup.tiles.cache import TileCache

LOG = logging.getLogger(__name__)
_COLLECTION_PATH = re.compile(r"^/collections/([^/]+)")


def create_app(settings: Settings | None = None):
    settings = settings or get_settings()
    logging.basicConfig(level=settings.log_level)
    # pygeoapi warns on every request without `offset`; that is not news
    logging.getLogger("pygeoapi.api.itemtypes").setLevel(logging.ERROR)
    from oup.geodesy import install_grids

    install_grids(settings.data_dir)
    catalog = load_catalog(settings.catalog_dir)
    store = open_store(settings.store_url)
    cfg_path, oas_path = write_config(catalog, store, settings)
    # pygeoapi lists, describes and serves only what the current request may see
    app = flask_app(cfg_path, oas_path, set(catalog.collections))
    from flask import Response, g, request

    auth = Authenticator(settings.jwks_file, settings.jwt_issuer, settings.jwt_audience,
                         settings.keys_file)
    audit = AuditLog(settings.audit_log or settings.data_dir / "audit.log")
    public = catalog.public
    records = catalogue_records(catalog, store)
    no_geometry = {cid for cid, record in records.items() if record["geometry"] is None}
    # per start-up: counters begin at zero when the service (re)starts
    metrics = Metrics(server_folder(settings.data_dir / "metrics", os.getppid()))
    openapi_doc = oas_path.read_text()
    queryables = Queryables(catalog, store)
    tiles = vector_tiles.VectorTiles(
        catalog, store, settings.public_url,
        TileCache(settings.data_dir / "tile-cache") if settings.tile_cache else None)
    map_styles = styles.Styles(catalog, tiles.layers, settings.public_url)
    @functools.cache
    def fields_of(cid: str) -> list:
        """A collection's fields, read from the store when first asked (not at start-up)."""
        try:
            return store.fields(cid)
        except StoreError:  # not imported (or derived): its events carry no item properties
            return []
    mqtt_public = asyncapi.public_broker(settings.mqtt_public_url or settings.broker_url)

    def event_properties(ids: set[str]) -> set[str]:
        """The property names the events of these collections carry (filter checks)."""
        return {f.name for cid in ids for f in fields_of(cid)} | {
            "latest_time", "latest_result", "features", "version", "title", "classification"}

    # what the ASGI part (oup.http.asgi: the event streams) shares with this app
    app.extensions["oup"] = SimpleNamespace(catalog=catalog, auth=auth, audit=audit,
                                            event_properties=event_properties, hub=None)

    @app.before_request
    def _check():
        g.started = time.perf_counter()
        g.request_id = request.headers.get("X-Request-ID", "")[:64] or new_request_id()
        g.identity, g.cid = None, None
        VISIBLE.set(frozenset(public))
        CHECKED_ITEMS.set(None)
        if request.method == "OPTIONS":
            return "", 204
        path = request.path
        try:
            g.identity = auth.identify(request.headers)
        except AuthError as exc:
            # a look at non-public data with bad credentials is audited too
            m = _COLLECTION_PATH.match(path)
            g.identity = INVALID_CREDENTIALS
            g.cid = m.group(1) if m and m.group(1) in catalog.collections else None
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
        if (answer := vector_tiles.respond(tiles, problem, g.visible)) is not None:
            return answer
        if (answer := styles.respond(map_styles, problem, g.visible)) is not None:
            return answer
        if path == "/map":
            return pages.serve_map(problem)
        if path == "/asyncapi":
            return serve_asyncapi()
        if m := glyphs.RANGE_PATH.match(path):
            return serve_glyphs(m)
        if path.startswith("/assets/"):
            return pages.serve_asset(problem, path.removeprefix("/assets/"))
        if path == "/viewer" or path.startswith("/viewer/"):
            return tiles3d.serve_viewer(problem, path.removeprefix("/viewer").lstrip("/"))
        return check_request(request, queryables, settings.max_page_limit)

    @app.after_request
    def _headers(resp: Response):
        resp = as_problem(resp, request, Response)
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
        add_common_headers(resp.headers)
        resp.headers["Content-Security-Policy"] = pages.CONTENT_SECURITY_POLICY
        metrics.observe(route, resp.status_code,
                        time.perf_counter() - g.get("started", time.perf_counter()))
        return resp

    def _rewrite_for(path: str):
        """How OUP amends pygeoapi's JSON at ``path``, if it does (only these few paths)."""
        if path in OPENAPI_PATHS:
            hidden = set(catalog.collections) - set(g.get("visible", public))
            return lambda doc: visible_openapi(doc, hidden)
        if path == f"/collections/{RECORDS_ID}/items":
            return lambda doc: with_records(doc, records, g.get("visible", public) - public)
        if path == "/conformance":
            return lambda doc: {"conformsTo": CONFORMANCE + vector_tiles.CONFORMANCE
                                + styles.CONFORMANCE + asyncapi.CONFORMANCE}
        if path == "/":
            return lambda doc: asyncapi.landing_links(
                vector_tiles.landing_links(doc, settings.public_url), settings.public_url,
                mqtt_public)
        if COLLECTIONS.match(path):
            return lambda doc: asyncapi.collection_links(vector_tiles.add_links(
                tiles3d.add_links(without_spatial_extent(plain_items_links(doc), no_geometry),
                                  settings.public_url, settings.data_dir),
                settings.public_url, set(tiles.layers)), settings.public_url, mqtt_public,
                public)
        return None

    def serve_glyphs(m):
        from urllib.parse import unquote

        try:
            data = glyphs.glyph_range(unquote(m["stack"]), int(m["start"]), int(m["end"]))
        except glyphs.NoGlyphs as exc:
            return problem(404, str(exc), request.path, "NotFound")
        return Response(data, content_type="application/x-protobuf",
                        headers={"Cache-Control": "public, max-age=86400"})

    def serve_asyncapi():
        if request.method not in ("GET", "HEAD"):
            return problem(405, "the AsyncAPI document is read with GET", request.path)
        unknown = set(request.args) - {"f"}
        if unknown:
            return problem(400, f"unknown parameter(s) {', '.join(sorted(unknown))}; "
                           "/asyncapi takes f=json|yaml", request.path,
                           "InvalidParameterValue", sorted(unknown)[0])
        f = request.args.get("f")
        if f not in (None, "", "json", "yaml"):
            return problem(400, "f: json or yaml", request.path, "InvalidParameterValue", "f")
        as_yaml = f == "yaml" or (not f and request.accept_mimetypes.best_match(
            [asyncapi.MEDIA_TYPE, "application/json", asyncapi.YAML_TYPE,
             "application/yaml", "text/yaml"]) in (asyncapi.YAML_TYPE, "application/yaml",
                                                   "text/yaml"))
        doc = asyncapi.document(catalog, fields_of, g.visible,
                                settings.public_url, mqtt_public, settings.mqtt_ws_public_url)
        body, media_type = asyncapi.render(doc, as_yaml)
        return Response(body, content_type=media_type)

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
            from oup.store import open_observation_store

            observations.append(open_observation_store(settings.store_url))
        return observations[0]

    @app.get("/metrics")
    def metrics_endpoint():
        text = metrics.render()
        hub = app.extensions["oup"].hub  # the event streams of this worker (oup.http.asgi)
        if hub is not None:
            text += ("# HELP oup_event_subscribers Open change-event streams (this worker)\n"
                     "# TYPE oup_event_subscribers gauge\n"
                     f"oup_event_subscribers {hub.subscribers}\n"
                     "# HELP oup_event_last_id The newest change event this worker has read\n"
                     "# TYPE oup_event_last_id gauge\n"
                     f"oup_event_last_id {hub.last}\n")
        if any(c.stream for c in catalog):  # the ingesters' counters, from the store
            from oup.sensors.stats import ingest_stats, prometheus

            text += prometheus(ingest_stats(observation_store(), settings.data_dir))
        return Response(text, mimetype="text/plain; version=0.0.4")

    @app.get("/openapi.json")
    @app.get("/api")
    def openapi_json():
        return Response(openapi_doc, content_type=OPENAPI_JSON)

    metrics.open([rule.rule for rule in app.url_map.iter_rules()])
    # The store's compiled loops, loaded (from numba's cache) as the worker starts: the
    # first page or tile of each worker would otherwise wait for it (~0.25 s, measured)
    from oup.store.compiled import compile_all

    compile_all()
    # Everything loaded so far lives as long as the worker: keep the garbage collector
    # from walking it on every full collection (tail latency).
    gc.collect()
    gc.freeze()
    return app
