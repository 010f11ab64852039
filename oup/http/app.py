"""The OUP web application, composed: pygeoapi configured from the catalogue, OUP's own
endpoints (each declared once, in the module of its concern: ``oup.http.routes``), and
what every request passes through (``oup.http.gate``).

``create_app()`` is a factory (gunicorn: ``oup.http.asgi:create_app()``), one app per
process: pygeoapi reads its configuration once, at import (``oup.http.pygeoapi_adapter``).
"""
from __future__ import annotations

import functools
import gc
import json
import logging
import os
import sys
from types import SimpleNamespace

from oup import docsite
from oup.catalog import load_catalog
from oup.events import asyncapi
from oup.events import stream as event_stream
from oup.geodesy import install_grids
from oup.http import pages, service
from oup.http.gate import Gate
from oup.http.metrics import Metrics, server_folder
from oup.http.problems import Problems
from oup.http.pygeoapi_adapter import flask_app
from oup.http.pygeoapi_config import catalogue_records, openapi_file, write_config
from oup.http.request_checks import Queryables
from oup.http.rewrites import Rewrites
from oup.http.routes import Routes
from oup.http.search import Search
from oup.languages import LANGUAGES
from oup.scenarios import covering, readable
from oup.scenarios.endpoints import Scenarios
from oup.security import AuditLog, Authenticator
from oup.settings import Settings, get_settings
from oup.store import StoreError, open_store
from oup.tiles import glyphs, styles, tiles3d, vector_tiles
from oup.tiles.cache import TileCache
from oup.writes import after
from oup.writes.endpoints import Writes
from oup.sta.endpoints import SensorThings


def create_app(settings: Settings | None = None):
    settings = settings or get_settings()
    logging.basicConfig(level=settings.log_level)
    # pygeoapi warns on every request without `offset`; that is not news
    logging.getLogger("pygeoapi.api.itemtypes").setLevel(logging.ERROR)
    install_grids(settings.data_dir)
    catalog = load_catalog(settings.catalog_dir)
    store = open_store(settings.store_url)
    base = settings.public_url
    # per start-up: counters begin at zero when the service (re)starts
    metrics = Metrics(server_folder(settings.data_dir / "metrics", os.getppid()))
    fields_of = functools.cache(lambda cid: _fields(store, cid))
    shared = SimpleNamespace(catalog=catalog, hub=None, problems=Problems(base),
                             fields_of=fields_of,
                             auth=Authenticator(settings.jwks_file, settings.jwt_issuer,
                                                settings.jwt_audience, settings.keys_file),
                             audit=AuditLog(settings.audit_log or settings.data_dir / "audit.log"),
                             event_properties=lambda ids: _event_properties(fields_of, ids),
                             scenario_of=functools.partial(readable, store))
    own = own_endpoints(settings, catalog, store, shared, metrics,
                        lambda language: openapi_docs[language])
    tiles, writes, processes, mqtt_public = own.tiles, own.writes, own.processes, own.mqtt_public
    own = Routes(own.endpoints)
    cfg_path, oas_path = write_config(catalog, store, settings, own.openapi_paths())
    openapi_docs = {lang: openapi_file(oas_path.parent, lang).read_text() for lang in LANGUAGES}
    # pygeoapi lists, describes and serves only what the current request may see
    app = flask_app(cfg_path, oas_path, set(catalog.collections))
    shared.routes = own  # what the ASGI part (oup.http.asgi: the event streams) shares
    app.extensions["oup"] = shared
    rewrites = Rewrites(catalog, catalogue_records(catalog, store), base, settings.data_dir,
                        set(tiles.layers), mqtt_public, bool(processes),
                        lambda language: json.loads(openapi_docs[language]))
    Gate(catalog, shared.auth, shared.audit, own, shared.problems, Queryables(catalog, store),
         settings.max_page_limit, settings.page_limit, metrics, rewrites.rewrite_for,
         writes.etag_for, lambda identity, sid, cid: covering(store, identity, sid, cid)
         if cid else readable(store, identity, sid)).install(app)
    metrics.open([e.path for e in own.endpoints] + [r.rule for r in app.url_map.iter_rules()])
    # The store's compiled loops, loaded (from numba's cache) as the worker starts: the
    # first page or tile of each worker would otherwise wait for it (~0.25 s, measured)
    from oup.store.compiled import compile_all

    compile_all()
    # Everything loaded so far lives as long as the worker: keep the garbage collector
    # from walking it on every full collection (tail latency).
    gc.collect()
    gc.freeze()
    return app


def _aside_environment(settings: Settings) -> dict:
    """The environment of the process beside a server process (``oup aside``):
    the settings it reads, as this app has them (a test's app has its own)."""
    return dict(os.environ, OUP_DATA_DIR=str(settings.data_dir),
                OUP_DATABASE_URL=settings.store_url,
                OUP_TILE_CACHE=str(settings.tile_cache).lower(),
                OUP_TILES3D_NICE=str(settings.tiles3d_nice),
                OUP_TILES3D_COARSE_WAIT=str(settings.tiles3d_coarse_wait),
                OUP_OVERVIEW_NICE=str(settings.overview_nice),
                OUP_OVERVIEW_QUIET=str(settings.overview_quiet),
                OUP_OVERVIEW_WAIT=str(settings.overview_wait),
                OUP_LOG_LEVEL=settings.log_level)


def own_endpoints(settings: Settings, catalog, store, shared, metrics,
                  openapi_doc) -> SimpleNamespace:
    """OUP's own endpoints, as each module declares them (``endpoints``), with the parts
    the gate and the rewrites also need (``tiles``, ``writes``, ``processes``). The
    reference of the documentation lists the same declarations (``oup.docsite``)."""
    base = settings.public_url
    cache = TileCache(settings.data_dir / "tile-cache") if settings.tile_cache else None
    tiles = vector_tiles.VectorTiles(catalog, store, base, cache)
    mqtt_public = asyncapi.public_broker(settings.mqtt_public_url or settings.broker_url)
    writes = Writes(catalog, store, base, shared.audit, lambda: _event_log(shared, settings),
                    cache)
    aside = {kind: after.Aside([sys.executable, "-m", "oup.cli", "aside", kind],
                               _aside_environment(settings), writes.announce)
             for kind in after.JOBS}
    writes.on_change = after.both(
        after.tileset_updater(settings.data_dir,
                              functools.partial(aside["tiles3d"].add, "tiles3d")),
        after.overview_updater(functools.partial(aside["overview"].add, "overview")),
        after.counts_updater(catalog, store, writes.announce,
                             settings.data_dir / ".counts.lock"))
    processes = _processes(settings, catalog, store, base, shared.audit)
    endpoints = [
        # a job's result as a collection: before the catalogue's paths that would take it
        *(processes.collections.endpoints() if processes else []),
        *vector_tiles.endpoints(tiles),
        *styles.endpoints(styles.Styles(catalog, tiles.layers, base)),
        *tiles3d.endpoints(settings.data_dir, catalog), *pages.endpoints(), *glyphs.endpoints(),
        *docsite.endpoints(settings.data_dir),
        *asyncapi.endpoints(catalog, shared.fields_of, base, mqtt_public,
                            settings.mqtt_ws_public_url),
        *event_stream.endpoints(catalog),
        *writes.endpoints(),
        *Scenarios(catalog, store, base, shared.audit).endpoints(),
        *Search(catalog, store, shared.audit, base).endpoints(),
        *SensorThings(catalog, store, base, lambda: _event_log(shared, settings),
                      _sensor_registry(catalog, store)).endpoints(),
        *(processes.endpoints() if processes else []),
        # (the OpenAPI document is made from these declarations, so it is read late)
        *service.endpoints(store, metrics, openapi_doc,
                           lambda: _stream_metrics(shared, settings)),
    ]
    return SimpleNamespace(endpoints=endpoints, tiles=tiles, writes=writes,
                           processes=processes, mqtt_public=mqtt_public)


def _sensor_registry(catalog, store):
    """The ingester's registry of sensors (made on first use): an observation created over
    HTTP is decoded and checked as an MQTT reading is."""
    made = []

    def registry():
        if not made:
            from iot_ingest.sensors import SensorRegistry

            made.append(SensorRegistry(catalog, store))
        return made[0]

    return registry


def _processes(settings: Settings, catalog, store, base: str, audit):
    """OGC API Processes, when the processes file offers any: their jobs are queued for
    ``oup worker`` (``oup.processes``)."""
    from oup.processes import load_processes
    from oup.processes.endpoints import Processes
    from oup.processes.worker import open_jobs

    offered = load_processes(settings.processes_file)
    if not offered:
        return None
    # one thread at least is left to the other requests, however few there are
    waiting = min(settings.jobs_sync_waiting, settings.threads - 1)
    return Processes(offered, open_jobs(settings), catalog, store, base, audit,
                     settings.jobs_sync_seconds, waiting)


def _fields(store, cid: str) -> list:
    """A collection's fields, read from the store when first asked (not at start-up)."""
    try:
        return store.fields(cid)
    except StoreError:  # not imported (or derived): its events carry no item properties
        return []


def _event_properties(fields_of, ids: set[str]) -> set[str]:
    """The property names the events of these collections carry (filter checks)."""
    return {f.name for cid in ids for f in fields_of(cid)} | {
        "latest_time", "latest_result", "features", "version", "title", "classification"}


def _stream_metrics(shared, settings: Settings) -> str:
    """What /metrics adds to the request counters: this worker's event streams
    (``oup.http.asgi``) and the ingesters' counters, from the store."""
    text = ""
    if shared.hub is not None:
        text += ("# HELP oup_event_subscribers Open change-event streams (this worker)\n"
                 "# TYPE oup_event_subscribers gauge\n"
                 f"oup_event_subscribers {shared.hub.subscribers}\n"
                 "# HELP oup_event_last_id The newest change event this worker has read\n"
                 "# TYPE oup_event_last_id gauge\n"
                 f"oup_event_last_id {shared.hub.last}\n")
    if any(c.stream for c in shared.catalog):
        from oup.sensors.stats import ingest_stats, prometheus

        text += prometheus(ingest_stats(_event_log(shared, settings), settings.data_dir))
    return text


def _event_log(shared, settings: Settings):
    """The observation store, which holds the change events: one connection per worker,
    opened on first use."""
    if not hasattr(shared, "observations"):
        from oup.store import open_observation_store

        shared.observations = open_observation_store(settings.store_url)
    return shared.observations
