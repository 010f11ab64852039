"""SensorThings API: query latency over a city's worth of observations, and creating
observations by data arrays against the MQTT ingest of the same readings.

    python benchmarks/sta.py [--sensors 1000] [--observations 10000000] [--postgis]

1. 1,000 sensors and 10 million observations (one a minute each), loaded into the store;
   over HTTP (`oup serve`), p50/p99 and the server's CPU time a request (its processes'
   user + system time: on a shared machine the figure a wait does not change) of
   - ``Datastreams(id)/Observations?$filter=<a two-hour window>&$orderby=phenomenonTime
     &$top=100``, random sensor and window;
   - ``Things?$expand=Datastreams($expand=Observations($top=1;$orderby=phenomenonTime
     desc))`` (the first 100 things, each with its latest observation).
2. Creating: readings per second through ``POST CreateObservations`` (data arrays of
   1,000 readings, one client) against ``oup ingest`` draining the same number of queued
   MQTT messages (benchmarks/sensors.py's measure), newer than the created ones so that
   either way updates the sensors' latest values; the ratio is printed in readings a
   second and in readings a CPU second (the server's or the ingester's processes with
   PostgreSQL's: what a reading costs, whatever the machine's load), with the load
   average while each ran.
``--postgis`` runs it all on a throwaway PostgreSQL cluster (oup.store.localdb).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from oup.ports import free_port  # noqa: E402
from sensors import MINUTE, T0, catalogue, load_gpkg, oup, oup_rate, preload, readings, \
    subscribe_session  # noqa: E402


def load_postgis(url: str, n_sensors: int, per: int) -> None:
    import psycopg

    from oup.store.pg_observations import PostGISObservationStore

    PostGISObservationStore(url)  # the schema
    end = T0 + per * MINUTE
    with psycopg.connect(url, autocommit=True) as con:
        # the months the readings fall in (the store makes a month as its first reading
        # arrives; here they arrive by COPY)
        t = T0
        while t < end:
            d = datetime.fromtimestamp(t / 1e6, timezone.utc)
            start = datetime(d.year, d.month, 1, tzinfo=timezone.utc)
            nxt = datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=timezone.utc)
            lo, hi = int(start.timestamp() * 1e6), int(nxt.timestamp() * 1e6)
            con.execute(f"CREATE TABLE IF NOT EXISTS oup_observations_{d.year * 100 + d.month} "
                        f"PARTITION OF oup_observations FOR VALUES FROM ({lo}) TO ({hi})")
            t = hi
        with con.cursor().copy("COPY oup_observations (sensor_id, phenomenon_time, result, "
                               "stored_at) FROM STDIN") as copy:
            for k in range(0, per, 100):
                for r in readings(n_sensors, per, k):
                    copy.write_row(r)
        # vacuumed too: autovacuum would do it later, in the CPU measured of the creates
        con.execute("VACUUM ANALYZE oup_observations")


def load() -> str:
    """The machine's load average (1, 5, 15 minutes): the figures' weather."""
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) of a process and of the processes it started (the
    server's workers): on a shared machine, what a request costs, whatever the wait."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):  # ended meanwhile
            continue
    return total


def idle(server: int, limit: float = 60) -> None:
    """Until the server's processes are idle (its workers have finished starting: their
    start-up is not a request's CPU), at most ``limit`` seconds."""
    deadline = time.monotonic() + limit
    last = cpu_seconds(server)
    while time.monotonic() < deadline:
        time.sleep(1)
        now = cpu_seconds(server)
        if now - last < 0.05:
            return
        last = now


def timed(url: str, queries: list[dict], path_of, server: int) -> tuple[float, float, float]:
    """p50 and p99 (ms) of the queries, and the server's CPU ms per query."""
    s = requests.Session()
    for q in queries[:20]:  # warm the workers
        s.get(path_of(q), params=q["params"], timeout=60).raise_for_status()
    took = []
    idle(server)
    cpu = cpu_seconds(server)
    for q in queries:
        t = time.perf_counter()
        r = s.get(path_of(q), params=q["params"], timeout=60)
        took.append(time.perf_counter() - t)
        r.raise_for_status()
    cpu = (cpu_seconds(server) - cpu) / len(queries) * 1e3
    took.sort()
    return took[len(took) // 2] * 1e3, took[int(len(took) * 0.99)] * 1e3, cpu


BATCH = 1000  # readings a CreateObservations request
CREATED_FROM = T0 - 10 ** 12  # before the loaded readings: all new


def create_rate(url: str, key: str, n_sensors: int, n: int,
                cpu) -> tuple[float, float]:
    """Readings a second through CreateObservations, and the CPU seconds ``cpu()`` grew by
    meanwhile; the bodies are made before the clock starts (as the MQTT messages are
    queued before the ingester's)."""
    s = requests.Session()
    s.headers.update({"X-API-Key": key, "Content-Type": "application/json"})
    bodies = []
    for first in range(0, n, BATCH):
        batch: dict[str, list] = {}
        for j in range(first, min(n, first + BATCH)):
            stamp = datetime.fromtimestamp((CREATED_FROM + (j // n_sensors) * MINUTE) / 1e6,
                                           timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            batch.setdefault(f"s{j % n_sensors:04d}", []).append([stamp, 10.0 + j % 50])
        bodies.append(json.dumps([{"Datastream": {"@iot.id": sid}, "components": [
            "phenomenonTime", "result"], "dataArray": rows_} for sid, rows_ in batch.items()]))
    t, used = time.perf_counter(), cpu()
    for body in bodies:
        r = s.post(f"{url}/sta/v1.1/CreateObservations", data=body, timeout=120)
        r.raise_for_status()
        assert "error" not in r.json(), r.text[:300]
    return n / (time.perf_counter() - t), cpu() - used


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sensors", type=int, default=1000)
    ap.add_argument("--observations", type=int, default=10_000_000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--create", type=int, default=100_000, help="readings created per way")
    ap.add_argument("--postgis", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="oup-bench-sta-"))
    work.chmod(0o755)
    db = None
    try:
        cat = catalogue(work / "catalogue", args.sensors, ("observations",))
        env = dict(os.environ, OUP_DATA_DIR=str(work / "data"), OUP_CATALOG_DIR=str(cat),
                   OUP_LOG_LEVEL="WARNING", OUP_API_KEYS_FILE=str(work / "keys.yml"))
        env.pop("OUP_DATABASE_URL", None)
        if args.postgis:
            from oup.store.localdb import LocalPostGIS

            db = LocalPostGIS(work / "cluster", durable=False).start()
            env["OUP_DATABASE_URL"] = db.create("oup")
        postmaster = db and int((db.dir / "data" / "postmaster.pid").read_text().split()[0])

        def database_cpu() -> float:
            return cpu_seconds(postmaster) if postmaster else 0.0

        oup(env, "import", "--quiet")
        key = oup(env, "keys", "add", "bench", "--role", "sensor-writer").stdout.strip()
        per = args.observations // args.sensors
        t = time.perf_counter()
        if args.postgis:
            load_postgis(env["OUP_DATABASE_URL"], args.sensors, per)
        else:
            load_gpkg(work / "data" / "oup.gpkg", args.sensors, per)
        store = "PostGIS" if args.postgis else "GeoPackage"
        print(f"{store}: {args.sensors:,} sensors, {per * args.sensors:,} observations "
              f"loaded in {time.perf_counter() - t:.0f} s")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-m", "oup.cli", "serve", "--port",
                                   str(port)], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if requests.get(f"{url}/health", timeout=2).ok:
                        break
                except (requests.ConnectionError, requests.Timeout):  # still starting
                    time.sleep(0.3)
            rng = random.Random(5)
            window = []
            for _ in range(args.queries):
                start = T0 + rng.randrange(per - 60) * MINUTE
                iso = lambda us: datetime.fromtimestamp(us / 1e6, timezone.utc).strftime(  # noqa
                    "%Y-%m-%dT%H:%M:%SZ")
                window.append({"sid": f"s{rng.randrange(args.sensors):04d}", "params": {
                    "$filter": f"phenomenonTime ge {iso(start)} and phenomenonTime lt "
                               f"{iso(start + 120 * MINUTE)}", "$orderby": "phenomenonTime",
                    "$top": "100"}})
            p50, p99, cpu = timed(url, window, lambda q: f"{url}/sta/v1.1/Datastreams("
                                  f"'{q['sid']}')/Observations", server.pid)
            print(f"Datastreams(id)/Observations, a time window, $orderby=phenomenonTime, "
                  f"$top=100: p50 {p50:.1f} ms, p99 {p99:.1f} ms; server CPU {cpu:.2f} ms "
                  f"a request; load {load()}")
            latest = [{"params": {"$expand": "Datastreams($expand=Observations($top=1;"
                                             "$orderby=phenomenonTime desc))"}}] * max(
                50, args.queries // 5)
            p50, p99, cpu = timed(url, latest, lambda q: f"{url}/sta/v1.1/Things", server.pid)
            print(f"Things?$expand=Datastreams($expand=Observations($top=1;$orderby="
                  f"phenomenonTime desc)) (100 things): p50 {p50:.1f} ms, p99 {p99:.1f} ms; "
                  f"server CPU {cpu:.2f} ms a request")
            idle(server.pid)
            http, http_cpu = create_rate(url, key, args.sensors, args.create,
                                         lambda: cpu_seconds(server.pid) + database_cpu())
        finally:
            server.terminate()
            server.wait(30)
        print(f"CreateObservations (data arrays of {BATCH:,}): {http:,.0f} readings/s, "
              f"CPU {http_cpu / args.create * 1e6:.0f} ms a 1,000 (server + database); "
              f"load {load()}")
        from iot_ingest.broker import BrokerProcess
        from iot_ingest.mqtt import Broker
        from oup.store import open_observation_store

        broker_proc = BrokerProcess(work / "broker", free_port(), kind="mosquitto").start()
        try:
            broker = Broker.from_url(broker_proc.url)
            benv = dict(env, OUP_MQTT_URL=broker_proc.url)
            subscribe_session(broker, "bench-sta-ingest", "oup/sensors/+/observations")
            # after the created readings: each batch brings its sensors a newer reading,
            # as the created ones did, so both ways keep the latest values current
            # (older ones leave the sensors' rows alone, which is cheaper)
            preload(broker, args.create, [f"s{i:04d}" for i in range(args.sensors)],
                    CREATED_FROM + (args.create // args.sensors + 1) * MINUTE)
            obs_store = open_observation_store(benv.get("OUP_DATABASE_URL")
                                               or f"gpkg://{work / 'data' / 'oup.gpkg'}")
            mqtt, mqtt_cpu = oup_rate(benv, obs_store, args.create, "bench-sta-ingest",
                                      lambda pid: cpu_seconds(pid) + database_cpu())
        finally:
            broker_proc.stop()
        print(f"oup ingest (MQTT, same readings): {mqtt:,.0f} readings/s, "
              f"CPU {mqtt_cpu * 1e6:.0f} ms a 1,000 (ingester + database); "
              f"data arrays / MQTT = {http / mqtt:.2f}x, in readings a CPU second "
              f"{mqtt_cpu * args.create / http_cpu:.2f}x; load {load()}")
    finally:
        if db is not None:
            db.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
