"""Live sensors: OUP's ingest against the raw ceiling, latency, and time-slice queries.

    python benchmarks/sensors.py [--messages 300000] [--observations 10000000]

1. Throughput. The same Mosquitto (config/mosquitto.conf) holds N queued QoS 1 messages
   for a persistent session; the raw ceiling is a paho subscriber that only counts them
   (auto-acknowledged); OUP is `oup ingest` (decode, validate, store, acknowledge after
   commit). Both drain the same backlog; the ratio is printed.
2. Latency at 1,000 msg/s: readings stamped with their publish time; the store records
   each row's commit time, when it becomes queryable. p50/p99 of the difference.
3. Time slices: 1,000 sensors and 10 million observations; p50/p99 of
   /collections/sensor-slices/items?datetime=<random instant> over HTTP (`oup serve`).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from iot_ingest.broker import BrokerProcess  # noqa: E402
from iot_ingest.mqtt import Broker  # noqa: E402
from iot_ingest.simulate import Publisher  # noqa: E402
from oup.ports import free_port  # noqa: E402


def oup(env, *args, **kw):
    return subprocess.run([sys.executable, "-m", "oup.cli", *args], env=env, check=True,
                          capture_output=True, text=True, **kw)


def subscribe_session(broker: Broker, client_id: str, topic: str) -> None:
    """Create a persistent session with a subscription, then leave: messages queue for it."""
    c = broker.client(client_id)
    done = threading.Event()
    c.on_subscribe = lambda *a: done.set()
    c.on_connect = lambda cl, *a: cl.subscribe(topic, qos=1)
    c.connect(broker.host, broker.port, **broker.connect_args(3600, 2000))
    c.loop_start()
    done.wait(10)
    c.disconnect()
    c.loop_stop()


def preload(broker: Broker, n: int, sensors: list[str], t0_us: int) -> None:
    pub = Publisher(broker, "bench-preload")
    for i in range(n):
        t = t0_us + (i // len(sensors)) * 1_000_000
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 1_000_000)) + "Z"
        pub.publish(f"oup/sensors/{sensors[i % len(sensors)]}/observations",
                    json.dumps({"phenomenonTime": stamp, "result": 10 + i % 50}).encode())
    pub.close()


def raw_ceiling(broker: Broker, n: int) -> float:
    c = broker.client("bench-raw")
    got = [0, None, None]
    done = threading.Event()

    def on_message(cl, ud, msg):
        got[0] += 1
        now = time.perf_counter()
        got[1] = got[1] or now
        got[2] = now
        if got[0] >= n:
            done.set()

    c.on_message = on_message
    c.connect(broker.host, broker.port, **broker.connect_args(3600, 2000))
    c.loop_start()
    done.wait(600)
    c.disconnect()
    c.loop_stop()
    return got[0] / (got[2] - got[1])


def oup_rate(env: dict, store, n: int, client_id: str,
             cpu=lambda pid: 0.0) -> tuple[float, float]:
    """Messages a second `oup ingest` stores of ``n`` queued, and the CPU seconds a message
    (what ``cpu(its pid)`` grew by from its first committed batch to the last)."""
    proc = subprocess.Popen([sys.executable, "-m", "oup.cli", "ingest", "--client-id", client_id,
                             "--group", ""], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    first = last = None
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        rows = store.execute("SELECT received FROM oup_ingest_counters WHERE ingester = ?",
                             (client_id,))
        done = rows[0][0] if rows else 0
        if done and first is None:
            first = (time.perf_counter(), done, cpu(proc.pid))
        if done >= n:
            last = (time.perf_counter(), done, cpu(proc.pid))
            break
        time.sleep(0.05)
    proc.terminate()
    proc.wait(30)
    done = last[1] - first[1]
    return done / (last[0] - first[0]), (last[2] - first[2]) / done


def latency(env: dict, broker: Broker, store, rate: int, seconds: int,
            sensors: list[str]) -> tuple[float, float, int]:
    proc = subprocess.Popen([sys.executable, "-m", "oup.cli", "ingest", "--client-id",
                             "bench-latency", "--group", ""], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(3)
    t_start = int(time.time() * 1e6)
    pub = Publisher(broker, "bench-latency-pub")
    t0 = time.perf_counter()
    for i in range(rate * seconds):
        ahead = i / rate - (time.perf_counter() - t0)
        if ahead > 0:
            time.sleep(ahead)
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
        pub.publish(f"oup/sensors/{sensors[i % len(sensors)]}/observations",
                    json.dumps({"phenomenonTime": stamp, "result": 1.0}).encode())
    pub.close()
    t_end = int(time.time() * 1e6)
    time.sleep(3)
    proc.terminate()
    proc.wait(30)
    lat = sorted(r[0] for r in store.execute(
        "SELECT stored_at - phenomenon_time FROM oup_observations "
        "WHERE phenomenon_time BETWEEN ? AND ?", (t_start, t_end)))
    return lat[len(lat) // 2] / 1e3, lat[int(len(lat) * 0.99)] / 1e3, len(lat)


T0 = 1_893_456_000_000_000  # 2030-01-01, one reading a minute per sensor
MINUTE = 60_000_000


def catalogue(cat: Path, n_sensors: int, beside: tuple[str, ...]) -> Path:
    """A catalogue of ``n_sensors`` made-up sensors (s0000, s0001, ...), with the demo's
    collections ``beside`` them (the observations, the time slices)."""
    for name in ("sensors", *beside):
        shutil.copytree(ROOT / "collections" / name, cat / name)
    rng = random.Random(3)
    props = ["NO2", "PM10", "PM25", "noise_level"]
    feats = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [
        4.35 + rng.random() * 0.25, 51.86 + rng.random() * 0.1]},
        "properties": {"sensor_id": f"s{i:04d}", "name": f"sensor {i}",
                       "observed_property": props[i % 4], "owner": "bench", "format": "flat"}}
        for i in range(n_sensors)]
    (cat / "sensors" / "sensors.geojson").write_text(json.dumps(
        {"type": "FeatureCollection", "features": feats}))
    return cat


def readings(n_sensors: int, per: int, k: int):
    """Minutes k to k + 99 of every sensor, as rows of oup_observations."""
    return ((f"s{i:04d}", T0 + m * MINUTE, (i * 7 + m) % 90 + 0.5, 0)
            for m in range(k, min(per, k + 100)) for i in range(n_sensors))


def load_gpkg(path: Path, n_sensors: int, per: int):
    """``per`` readings of each sensor straight into the GeoPackage's table."""
    from oup.store.observations import GeoPackageObservationStore

    store = GeoPackageObservationStore(path)
    con = store.con
    con.execute("DROP INDEX oup_observations_time")  # built once after loading: faster
    for k in range(0, per, 100):
        con.execute("BEGIN")
        con.executemany("INSERT INTO oup_observations (sensor_id, phenomenon_time, result, "
                        "stored_at) VALUES (?,?,?,?)", readings(n_sensors, per, k))
        con.execute("COMMIT")
    con.execute("CREATE INDEX oup_observations_time ON oup_observations (phenomenon_time)")
    con.execute("ANALYZE")
    return store


def slice_queries(workdir: Path, n_sensors: int, n_obs: int, queries: int) -> tuple[float, float]:
    cat = catalogue(workdir / "catalogue", n_sensors, ("sensor-slices",))
    env = dict(os.environ, OUP_DATA_DIR=str(workdir / "data"), OUP_CATALOG_DIR=str(cat),
               OUP_LOG_LEVEL="WARNING")
    oup(env, "import", "--quiet")
    per = n_obs // n_sensors
    t_load = time.perf_counter()
    store = load_gpkg(workdir / "data" / "oup.gpkg", n_sensors, per)
    rng = random.Random(3)
    print(f"  loaded {store.count():,} observations in {time.perf_counter() - t_load:.0f} s")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "oup.cli", "serve", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/collections/sensor-slices/items"
    try:
        for _ in range(300):
            try:
                requests.get(url, timeout=30)
                break
            except requests.ConnectionError:
                time.sleep(0.3)
        times = []
        session = requests.Session()
        for _ in range(queries):
            t = T0 + rng.randrange(per) * MINUTE
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t // 1_000_000))
            q0 = time.perf_counter()
            r = session.get(url, params={"datetime": stamp, "limit": 1000}, timeout=60)
            times.append(time.perf_counter() - q0)
            assert r.status_code == 200 and r.json()["numberReturned"] == n_sensors, r.text[:300]
        times.sort()
        return statistics.median(times) * 1e3, times[int(len(times) * 0.99)] * 1e3
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=300_000)
    ap.add_argument("--observations", type=int, default=10_000_000)
    ap.add_argument("--sensors", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--parts", default="ingest,slices", help="which parts to run")
    ap.add_argument("--store", default="gpkg", choices=["gpkg", "postgis"],
                    help="where the ingester writes (postgis: a local cluster)")
    args = ap.parse_args()
    parts = args.parts.split(",")
    work = Path(tempfile.mkdtemp(prefix="oup-bench-sensors-"))
    env = dict(os.environ, OUP_DATA_DIR=str(work / "data"), OUP_LOG_LEVEL="WARNING")
    env.pop("OUP_DATABASE_URL", None)
    pg = None
    if args.store == "postgis":
        from oup.store.localdb import LocalPostGIS

        work.chmod(0o755)  # the postgres user reaches its cluster through it
        pg = LocalPostGIS(work / "pg").start()
        env["OUP_DATABASE_URL"] = pg.create("oup")
    oup(env, "import", "sensors", "--quiet")
    from oup.store import open_observation_store

    store = open_observation_store(env.get("OUP_DATABASE_URL")
                                   or f"gpkg://{work / 'data' / 'oup.gpkg'}")
    sensors = [f["properties"]["sensor_id"] for f in json.loads(
        (ROOT / "collections" / "sensors" / "sensors.geojson").read_text())["features"]
        if f["properties"]["observed_property"] in ("NO2", "PM10", "PM25")]
    print(f"machine: {os.cpu_count()} CPUs; {args.messages:,} queued QoS 1 messages; "
          f"store: {args.store}")
    if "ingest" in parts:
        ingest_parts(args, work, env, store, sensors)
    if "slices" in parts:
        p50, p99 = slice_queries(work / "slices", args.sensors, args.observations, args.queries)
        print(f"time slice, {args.sensors:,} sensors / {args.observations:,} observations: "
              f"p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    if pg:
        pg.stop()
    shutil.rmtree(work, ignore_errors=True)


def ingest_parts(args, work, env, store, sensors) -> None:
    with BrokerProcess(work / "broker", free_port(), "mosquitto") as bp:
        broker = Broker.from_url(bp.url)
        env["OUP_MQTT_URL"] = bp.url
        topic = "oup/sensors/+/observations"
        subscribe_session(broker, "bench-raw", topic)
        preload(broker, args.messages, sensors, 1_800_000_000_000_000)
        time.sleep(15)  # this machine throttles sustained load: rest between workloads
        raw = raw_ceiling(broker, args.messages)
        print(f"raw paho subscriber (count only):   {raw:8,.0f} msg/s")
        subscribe_session(broker, "bench-oup", topic)
        preload(broker, args.messages, sensors, 1_900_000_000_000_000)
        time.sleep(15)
        ours, _ = oup_rate(env, store, args.messages, "bench-oup")
        print(f"OUP ingest (stored, acknowledged):  {ours:8,.0f} msg/s   "
              f"= {ours / raw:.2f} x the raw ceiling")
        time.sleep(15)
        p50, p99, n = latency(env, broker, store, 1000, 30, sensors)
        print(f"publish -> queryable at 1,000 msg/s ({n:,} readings): "
              f"p50 {p50:.0f} ms, p99 {p99:.0f} ms")


if __name__ == "__main__":
    main()
