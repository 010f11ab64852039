"""``oup``: the one command-line face of the platform. Verbs follow the data flows."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from oup.catalog import CatalogError, load_catalog
from oup.settings import get_settings


def _fail(message: str) -> None:
    click.echo(f"oup: {message}", err=True)
    sys.exit(1)


@click.group()
def main():
    """OUP - Open Urban Platform."""


@main.group()
def catalog():
    """Check or reload the catalogue (collections/<id>/collection.yml)."""


@catalog.command("check")
def catalog_check():
    """Validate every collection declaration."""
    try:
        cat = load_catalog(get_settings().catalog_dir)
    except CatalogError as exc:
        _fail(str(exc))
    for coll in cat:
        click.echo(f"ok  {coll.id:<20} {coll.classification.value:<10} {coll.title}")
    click.echo(f"{len(cat)} collections")


@catalog.command("reload")
def catalog_reload():
    """Validate the catalogue and publish it: the running server (if any) restarts its
    workers one by one with the new catalogue, without dropping a request."""
    import signal

    from oup.http.pygeoapi_config import write_config
    from oup.store import open_store

    s = get_settings()
    try:
        cat = load_catalog(s.catalog_dir)
    except CatalogError as exc:
        _fail(str(exc))  # the running server keeps the catalogue it has
    cfg, oas = write_config(cat, open_store(s.store_url), s)
    click.echo(f"wrote {cfg} and {oas}")
    for event in _record_catalogue(s, cat):
        click.echo(f"event {event.type} {event.collection}")
    pid = _running_server(s.data_dir)
    if pid is None:
        click.echo("no server running on this data folder: `oup serve` publishes it")
        return
    os.kill(pid, signal.SIGHUP)  # gunicorn: new workers with a fresh app, old ones finish
    click.echo(f"the server (pid {pid}) is restarting its workers with {len(cat)} collections")


def _record_catalogue(s, cat) -> list:
    """Log what changed in the published catalogue since it was last recorded."""
    from oup.events import published
    from oup.store import open_observation_store

    log = open_observation_store(s.store_url)
    try:
        return log.record_catalogue(published(cat))
    finally:
        log.close()


# `<data dir>/server.pid` names the gunicorn master's run (pid and start time), so a file
# left by a server that has ended never points at an unrelated process with a reused pid
def _record_server(data_dir: Path, pid: int) -> None:
    from oup.http.metrics import process_run

    (data_dir / "server.pid").write_text(f"{process_run(pid) or pid}\n")


def _running_server(data_dir: Path) -> int | None:
    """The pid of the gunicorn master serving this data folder, if it still runs."""
    from oup.http.metrics import process_run

    try:
        run = (data_dir / "server.pid").read_text().strip()
        pid = int(run.split("-", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if process_run(pid) == run else None


@main.command("import")
@click.argument("collections", nargs=-1)
@click.option("--quiet", is_flag=True, help="no progress bars")
def import_(collections, quiet):
    """Import catalogue sources into the store (all collections, or the ones named)."""
    from oup.geodesy import install_grids
    from oup.events import imported_event
    from oup.catalog.importers import ImportError_, import_collection
    from oup.store import StoreError, open_observation_store, open_store

    s = get_settings()
    try:
        cat = load_catalog(s.catalog_dir)
    except CatalogError as exc:
        _fail(str(exc))
    unknown = set(collections) - set(cat.collections)
    if unknown:
        _fail(f"no such collection(s) in the catalogue: {', '.join(sorted(unknown))}")
    install_grids(s.data_dir)
    try:
        store = open_store(s.store_url)
    except StoreError as exc:
        _fail(str(exc))
    log = open_observation_store(s.store_url)  # the event log (and the observations)
    try:
        # joined and counted collections read others: import those first
        for coll in sorted(cat, key=lambda c: bool(c.imported_after)):
            if coll.derived_from or (collections and coll.id not in collections):
                continue  # observations and time slices are read live from the stream
            try:
                report = import_collection(coll, store, progress=not quiet)
            except (ImportError_, OSError, ValueError, StoreError) as exc:
                _fail(f"{coll.id}: {exc}")
            click.echo(report)
            # told after the commit: subscribers hear of the new version once it is there
            log.append_events([imported_event(coll.id, report.count, report.notes)])
            if coll.stream:  # the latest values live in the observations: fill them back in
                log.refresh_latest(coll.id, coll.id_field)
    finally:
        log.close()


@main.group()
def keys():
    """API keys (OUP_API_KEYS_FILE, default <data dir>/api-keys.yml): only hashes are kept."""


@keys.command("add")
@click.argument("name")
@click.option("--role", "roles", multiple=True, help="a role the key carries (repeatable)")
def keys_add(name, roles):
    """Make a key for NAME; it is printed once and stored only as its SHA-256."""
    from oup.security.keys import KeyRingError, KeyRing

    try:
        key = KeyRing(get_settings().keys_file).add(name, list(roles))
    except (KeyRingError, OSError) as exc:
        _fail(str(exc))
    click.echo(key)
    click.echo(f"key {name!r} ({', '.join(roles) or 'no roles: internal data only'}); shown "
               "once, send it as X-API-Key", err=True)


@keys.command("list")
def keys_list():
    """The keys: name, roles, when made (never the keys themselves)."""
    from oup.security.keys import KeyRingError, KeyRing

    try:
        entries = KeyRing(get_settings().keys_file).entries()
    except (KeyRingError, OSError) as exc:
        _fail(str(exc))
    for e in entries:
        click.echo(f"{e.get('name', '?'):<24} {','.join(e.get('roles') or []) or '-':<28} "
                   f"{e.get('created', '')}")


@keys.command("revoke")
@click.argument("name")
def keys_revoke(name):
    """Remove NAME's key; a running server refuses it from its next request on."""
    from oup.security.keys import KeyRingError, KeyRing

    try:
        KeyRing(get_settings().keys_file).revoke(name)
    except (KeyRingError, OSError) as exc:
        _fail(str(exc))
    click.echo(f"revoked {name!r}")


@main.command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="tileset folder (with INPUTS)")
@click.option("--crs", help="CRS of inputs that declare none, e.g. EPSG:7415")
@click.option("--lod", help="level of detail to tile; default the highest, or one tileset each")
@click.option("--collection", "collections", multiple=True,
              help="tile this catalogue collection (default: every one with tiles3d)")
@click.option("--quiet", is_flag=True, help="no progress bars")
@click.option("--update", "changes", type=click.File("r", encoding="utf-8"),
              help="redo only the tiles of the buildings in this JSON Lines file "
                   "(CityJSONSeq, attribute changes, deletions) in --out or --collection")
def tile(inputs, out, crs, lod, collections, quiet, changes):
    """Make 3D Tiles 1.1: from INPUTS (CityJSON, CityJSONSeq, folders) into --out, or from
    the catalogue's 3D collections into <data dir>/3dtiles/<id>."""
    from tilers import CityModelError, tile as make_tiles

    from oup.geodesy import GeodesyError, install_grids

    s = get_settings()
    try:
        install_grids(s.data_dir)
        if changes is not None:
            from tilers.index import NoIndex
            from tilers.update import UpdateError, update_from_lines

            folders = [out] if out else [s.data_dir / "3dtiles" / c for c in collections]
            if len(folders) != 1 or inputs:
                _fail("--update takes one tileset: --out DIR or one --collection, no INPUTS")
            try:
                click.echo(update_from_lines(folders[0], changes))
            except (UpdateError, NoIndex) as exc:
                _fail(str(exc))
            return
        if inputs:
            if not out:
                _fail("give --out DIR for the tileset")
            click.echo(make_tiles(list(inputs), out, crs=crs, lod=lod, progress=not quiet))
            return
        cat = load_catalog(s.catalog_dir)
        todo = [c for c in cat if c.tiles3d and (not collections or c.id in collections)]
        unknown = set(collections) - {c.id for c in todo}
        if unknown:
            _fail(f"not a 3D collection in the catalogue: {', '.join(sorted(unknown))}")
        for coll in todo:
            t3d = coll.tiles3d
            listed = coll.source_for(t3d.source)
            report = make_tiles([coll.folder / t3d.source], s.data_dir / "3dtiles" / coll.id,
                                crs=t3d.crs or (listed.crs if listed else None),
                                lod=t3d.lod or lod, vertex_budget=t3d.vertex_budget,
                                z_offset_attribute=t3d.z_offset_attribute,
                                progress=not quiet)
            click.echo(f"{coll.id}: {report}")
    except (CityModelError, CatalogError, GeodesyError, OSError) as exc:
        _fail(str(exc))


def _sensors():
    """The catalogue, feature store, observation store and sensor registry."""
    from iot_ingest.sensors import SensorRegistry

    from oup.store import StoreError, open_observation_store, open_store

    s = get_settings()
    try:
        cat = load_catalog(s.catalog_dir)
        store = open_store(s.store_url)
    except (CatalogError, StoreError) as exc:
        _fail(str(exc))
    return cat, store, open_observation_store(s.store_url), SensorRegistry(cat, store)


@main.command()
@click.option("--client-id", help="MQTT client id (OUP_INGEST_CLIENT_ID); keep it fixed")
@click.option("--group", help="shared-subscription group (OUP_INGEST_GROUP); '' for none")
@click.option("--batch-size", default=500, show_default=True, help="messages per transaction")
@click.option("--stats", is_flag=True, help="print the counters and exit")
@click.option("--retire", is_flag=True, help="leave for good (scaling down): take nothing new, "
              "store what the broker queued for this client id, end its session, exit")
def ingest(client_id, group, batch_size, stats, retire):
    """Ingest sensor observations from MQTT (OUP_MQTT_URL) until stopped (Ctrl-C, SIGTERM)."""
    import json
    import logging
    import signal

    from iot_ingest.ingester import IngestOptions, Ingester
    from iot_ingest.mqtt import Broker, BrokerURLError
    from oup.sensors.stats import ingest_stats, status_dir

    s = get_settings()
    cat, store, observations, registry = _sensors()
    if stats:
        st = ingest_stats(observations, s.data_dir)
        t = st["total"]
        click.echo(json.dumps(st, indent=1))
        click.echo(f"received {t['received']} = stored {t['stored']} + duplicates "
                   f"{t['duplicates']} + dead-lettered {t['dead_lettered']} + in flight "
                   f"{t['in_flight']}: {'holds' if st['balanced'] else 'DOES NOT HOLD'}")
        sys.exit(0 if st["balanced"] else 1)
    if not registry.topics:
        _fail("no collection in the catalogue declares a stream: nothing to ingest")
    if not len(registry):
        _fail("no sensors in the store: run `oup import` first")
    try:
        broker = Broker.from_url(s.broker_url)
    except BrokerURLError as exc:
        _fail(str(exc))
    logging.basicConfig(level=os.environ.get("OUP_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if retire and not broker.mqtt5:
        _fail("--retire ends the session with an MQTT 5 DISCONNECT: the broker URL says 3.1.1")
    opts = IngestOptions(client_id=client_id or s.ingest_client_id,
                         group=(s.ingest_group if group is None else group) or None,
                         batch_size=batch_size, retire=retire)
    # a short busy timeout: a locked database shows as retries and backpressure in the
    # counters instead of a silent wait inside the database
    from oup.store import open_observation_store

    observations = open_observation_store(s.store_url, busy_timeout=1.0)
    ing = Ingester(broker, registry, observations, opts,
                   status_file=status_dir(s.data_dir) / f"{opts.client_id}.json")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: ing.stop())
    click.echo(f"{'retiring from' if retire else 'ingesting'} {', '.join(ing.subscriptions())} "
               f"from {broker.host}:{broker.port} as {opts.client_id} ({len(registry)} sensors)")
    ing.run()
    t = ing.totals
    click.echo(f"{'retired, session ended' if ing.retired else 'stopped'}: {t.messages} "
               f"messages: {t.stored} stored, {t.duplicates} duplicates, "
               f"{t.dead_lettered} dead letters")
    if retire and not ing.retired:
        sys.exit(1)  # interrupted: the session (and what it holds) is still there


@main.command()
@click.option("--limit", default=20, show_default=True)
@click.option("--all", "all_", is_flag=True, help="include replayed ones")
@click.option("--replay", is_flag=True, help="decode and store them again (after a fix)")
@click.option("--id", "ids", multiple=True, type=int, help="only these dead letters")
def deadletters(limit, all_, replay, ids):
    """List the messages that could not be stored, with the reason; or replay them."""
    from iot_ingest.replay import replay as replay_letters

    from oup.sensors.observations import iso_us

    cat, store, observations, registry = _sensors()
    letters = observations.dead_letters(limit=limit if not replay else 1_000_000,
                                         replayed=all_, ids=list(ids) or None)
    if not replay:
        for d in letters:
            sample = bytes(d["payload"] or b"")[:60]
            click.echo(f"{d['id']:>7} {iso_us(d['received_at'])} {d['topic'][:48]:<48} "
                       f"{d['reason'][:70]}  [{d['payload_size']} B] {sample!r}"
                       f"{'  (replayed)' if d['replayed'] else ''}")
        click.echo(f"{len(letters)} dead letters shown")
        return
    outcomes, res = replay_letters(letters, observations, registry)
    done = sum(1 for why in outcomes.values() if why is None)
    click.echo(f"replayed {done} of {len(outcomes)}: {res.observations_stored} observations "
               f"stored, {res.observations_corrected} corrected, {res.duplicates} "
               f"messages already stored; {len(outcomes) - done} still dead letters")


@main.command()
@click.option("--rate", default=20.0, show_default=True, help="messages per second (0: flat out)")
@click.option("--count", type=int, help="stop after this many messages")
@click.option("--duration", type=float, help="stop after this many seconds")
@click.option("--bad", default=0.01, show_default=True, help="share of malformed messages")
@click.option("--duplicates", default=0.01, show_default=True, help="share of repeated ones")
@click.option("--start", help="simulated clock start (RFC 3339); default: live, now")
@click.option("--step", default=60.0, show_default=True, help="seconds between readings "
              "of one sensor on the simulated clock")
@click.option("--seed", default=1, show_default=True)
@click.option("--quiet", is_flag=True, help="no progress bar")
def simulate(rate, count, duration, bad, duplicates, start, step, seed, quiet):
    """Stream Rotterdam's sensors (air quality, traffic, noise, the Maas) to OUP_MQTT_URL."""
    from datetime import datetime, timezone

    from tqdm import tqdm

    from iot_ingest.mqtt import Broker, BrokerURLError
    from iot_ingest.simulate import PublishError, SimSensor, simulate as run
    from oup.store import Query

    s = get_settings()
    cat, store, _, registry = _sensors()
    sensors = []
    for coll in (c for c in cat if c.stream):
        page = store.query(coll.id, Query(limit=100_000, skip_geometry=True, count=False))
        sensors += [SimSensor(str(f["properties"][coll.id_field]),
                              f["properties"][coll.stream.property_field],
                              f["properties"].get("format") or "flat") for f in page.features]
    try:
        broker = Broker.from_url(s.broker_url)
        t0 = datetime.fromisoformat(start.replace("Z", "+00:00")) if start else None
        if t0 is not None and t0.tzinfo is None:
            t0 = t0.replace(tzinfo=timezone.utc)
        with tqdm(total=count, unit=" msg", disable=quiet, desc="simulate") as bar:
            sent = run(broker, sensors, rate, count=count, duration=duration, bad=bad,
                       duplicates=duplicates, start=t0, step=step, seed=seed,
                       progress=bar.update)
    except (BrokerURLError, PublishError, ValueError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        return
    click.echo(f"sent {sent['messages']} messages: {sent['readings']} readings, "
               f"{sent['malformed']} malformed, {sent['duplicates']} repeated")


@main.command()
@click.argument("collection")
@click.option("--owner", help="every feature this data subject created (as the audit log "
              "and the history name them, e.g. jwt:1a2b3c...)")
@click.option("--id", "fid", help="one feature")
def erase(collection, owner, fid):
    """Erase a data subject's personal data (GDPR): the collection's personal properties
    (history.personal) are blanked in every version of their features, current and past.
    The audit log records that the erasure happened, never what was erased."""
    from oup.security import AuditLog, new_request_id
    from oup.store import StoreError, open_store

    s = get_settings()
    try:
        coll = load_catalog(s.catalog_dir)[collection]
    except CatalogError as exc:
        _fail(str(exc))
    except KeyError:
        _fail(f"no collection {collection!r} in the catalogue")
    if bool(owner) == bool(fid):
        _fail("say whose data to erase: --owner <who> or --id <feature id>")
    if not coll.history.personal:
        _fail(f"{collection} declares no personal properties (history.personal)")
    try:
        n = open_store(s.store_url).erase(collection, coll.history.personal, fid=fid,
                                          owner=owner)
    except StoreError as exc:
        _fail(str(exc))
    AuditLog(s.audit_log or s.data_dir / "audit.log").write(
        "cli:oup-erase", collection, "ERASE personal data", 200, new_request_id(),
        subject=owner or f"feature {fid}", versions=n)
    click.echo(f"{collection}: personal properties ({', '.join(coll.history.personal)}) "
               f"blanked in {n} versions")


@main.command()
@click.option("--host", default=None, help="address to listen on (OUP_HOST)")
@click.option("--port", default=None, type=int, help="port (OUP_PORT)")
@click.option("--workers", default=None, type=int, help="worker processes (OUP_WORKERS)")
@click.option("--live", is_flag=True, help="also run the live sensors: a broker (unless "
              "OUP_MQTT_URL is set: Mosquitto if installed, else the embedded demo broker), "
              "`oup ingest`, `oup simulate` and `oup worker`")
def serve(host, port, workers, live):
    """Serve the OGC APIs (gunicorn, several workers)."""
    for key, value in (("OUP_HOST", host), ("OUP_PORT", port), ("OUP_WORKERS", workers)):
        if value is not None:
            os.environ[key] = str(value)
    get_settings.cache_clear()
    s = get_settings()
    try:
        cat = load_catalog(s.catalog_dir)
    except CatalogError as exc:
        _fail(str(exc))
    click.echo(f"OUP serving on http://{s.host}:{s.port} ({s.workers} workers)")
    s.data_dir.mkdir(parents=True, exist_ok=True)
    for event in _record_catalogue(s, cat):  # changed since it was last published
        click.echo(f"event {event.type} {event.collection}")
    # asynchronous workers: the event streams are tasks, the OGC API app has its threads
    args = [sys.executable, "-m", "gunicorn", "--bind", f"{s.host}:{s.port}",
            "--workers", str(s.workers), "--worker-class", "oup.http.asgi.Worker",
            "--access-logfile", "-", "--log-level", "warning", "oup.http.asgi:create_app()"]
    if not live and not (s.mqtt_url and s.events_relay):  # no events to relay here
        _record_server(s.data_dir, os.getpid())  # exec keeps the pid: gunicorn's master
        os.execv(sys.executable, args)
    from iot_ingest.broker import BrokerError, BrokerProcess

    from oup.live import LiveError, serve_live

    def start_broker():
        try:
            return BrokerProcess(s.data_dir / "broker", s.live_broker_port,
                                 s.live_broker).start()
        except BrokerError as exc:
            raise LiveError(f"no broker: {exc}") from exc

    try:
        serve_live(s, args, lambda pid: _record_server(s.data_dir, pid), start_broker,
                   click.echo, live=live)
    except LiveError as exc:
        _fail(str(exc))


@main.command()
@click.option("--threads", default=None, type=int,
              help="jobs run at once (OUP_WORKER_THREADS)")
def worker(threads):
    """Run the jobs of OGC API Processes (as many workers as the load needs)."""
    from oup.processes import ProcessError
    from oup.processes.worker import run_worker

    s = get_settings()
    try:
        run_worker(s, threads or s.worker_threads)
    except (ProcessError, CatalogError) as exc:
        _fail(str(exc))


@main.group()
def events():
    """Change events (SSE on the API; MQTT through the relay)."""


@events.command("relay")
def events_relay():
    """Publish the events of public collections to the broker (OUP_EVENTS_MQTT_URL, else
    OUP_MQTT_URL), QoS 1, under oup/events/collections/; run one per broker."""
    import logging
    import signal

    from iot_ingest.mqtt import Broker, BrokerURLError

    from oup.events.relay import EventRelay, RelayError
    from oup.store import StoreError, open_observation_store

    s = get_settings()
    logging.basicConfig(level=s.log_level)
    try:
        broker = Broker.from_url(s.events_mqtt_url or s.broker_url)
        load_catalog(s.catalog_dir)
        log = open_observation_store(s.store_url)
    except (BrokerURLError, CatalogError, StoreError) as exc:
        _fail(str(exc))
    relay = EventRelay(broker.client("oup-events-relay"), log,
                       lambda: load_catalog(s.catalog_dir), s.public_url)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: relay.stop())
    click.echo(f"relaying public collections' events to {broker.host}:{broker.port}")
    try:
        relay.run(broker.host, broker.port, broker.connect_args(3600))
    except RelayError as exc:
        _fail(str(exc))
    click.echo(f"stopped: {relay.published} events published, {relay.passed_over} of "
               "non-public collections passed over")


@main.command()
@click.argument("kind", type=click.Choice(["tiles3d", "overview"]))  # after.JOBS
def aside(kind):
    """One kind of what a server worker's writes set going (3D tiles, overview), beside it.

    Each worker of `oup serve` starts one of each itself, with its settings in the
    environment, and talks to them over stdin and stdout (oup/writes/aside.py); it is
    not run by hand."""
    from tilers.update import update_tileset

    from oup.writes.aside import run_aside

    run_aside(kind, update_tileset)


if __name__ == "__main__":
    main()
