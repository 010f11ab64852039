"""Change events: how soon a subscriber hears of a commit, and what 1,000 open streams cost.

Same run, same machine, the demo catalogue on the embedded store (or OUP_DATABASE_URL),
Mosquitto, `oup ingest`, `oup serve` (2 workers) with its relay:

1. Latency at 1,000 msg/s ingest: one SSE subscriber (`/collections/sensors/events`) and
   one MQTT subscriber (`oup/events/#`, through the relay). For every event: commit ->
   arrival (the event's time is taken in the batch's transaction, just before its
   commit: an upper bound) and publish -> arrival (the reading's phenomenonTime is its
   publish time). Beside it, the way it was done before: a client polling
   `/collections/sensors/items` once a second: how many changes it sees, and how old.
2. 1,000 concurrent SSE subscribers from one bounded asyncio client on loopback, while
   wrk runs the features bbox load (2 threads, 8 connections): its rate with the
   subscribers against its rate without, with no readings flowing, 1 a second and 20 a
   second (each told to all 1,000: 20,000 deliveries a second, whose cost the client on
   the same two cores shares); the server's memory per subscriber (RSS of the workers).

    .venv/bin/python benchmarks/events.py [--rate 1000] [--seconds 30] [--subscribers 1000]

Needs `wrk` and Mosquitto. Prints a table; writes benchmarks/out/events.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import paho.mqtt.client as mqtt
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from features import COOLDOWN, bbox_paths, wrk  # noqa: E402
from iot_ingest.broker import BrokerProcess  # noqa: E402
from iot_ingest.mqtt import Broker  # noqa: E402
from iot_ingest.simulate import Publisher  # noqa: E402
from oup.ports import free_port  # noqa: E402

OUT = HERE / "out"


def _t(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


class SseLatency(threading.Thread):
    """One SSE subscriber: (commit -> arrival, publish -> arrival) per event, seconds."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.samples, self.stop = url, [], threading.Event()

    def run(self):
        with requests.get(self.url, stream=True, timeout=(10, 60)) as r:
            for line in r.iter_lines():
                if self.stop.is_set():
                    return
                if line.startswith(b"data: "):
                    now, e = time.time(), json.loads(line[6:])
                    p = e["data"].get("properties", {})
                    if p.get("latest_time"):
                        self.samples.append((now - _t(e["time"]), now - _t(p["latest_time"])))


class MqttLatency:
    def __init__(self, port: int):
        self.samples = []
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.c.on_connect = lambda c, *a: c.subscribe("oup/events/#", qos=1)
        self.c.on_message = self._message
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def _message(self, c, u, msg):
        now, e = time.time(), json.loads(msg.payload)
        p = e["data"].get("properties", {})
        if p.get("latest_time"):
            self.samples.append((now - _t(e["time"]), now - _t(p["latest_time"])))

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


class Poller(threading.Thread):
    """The old way: read the sensors' latest values once a second."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.samples, self.stop, self.seen = url, [], threading.Event(), {}

    def run(self):
        while not self.stop.wait(1.0):
            now = time.time()
            doc = requests.get(self.url, params={"limit": 1000, "f": "json"}, timeout=30).json()
            for f in doc["features"]:
                t = f["properties"].get("latest_time")
                if t and self.seen.get(f["id"]) != t:
                    self.seen[f["id"]] = t
                    self.samples.append(now - _t(t))


def publish(broker: Broker, sensors: list[str], rate: int, seconds: float, name: str) -> int:
    """Readings at ``rate`` per second, each stamped with the moment it is published."""
    pub = Publisher(broker, name)
    n, t0 = int(rate * seconds), time.perf_counter()
    for i in range(n):
        ahead = i / rate - (time.perf_counter() - t0)
        if ahead > 0:
            time.sleep(ahead)
        now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        pub.publish(f"oup/sensors/{sensors[i % len(sensors)]}/observations",
                    json.dumps({"phenomenonTime": now, "result": 1.0 + i % 50}).encode())
    pub.close()
    return n


# -- 1,000 subscribers -------------------------------------------------------------------

async def _subscriber(port: int, path: str, counts: list[int], i: int):
    """One stream, read until cancelled. Each read takes what has come (up to 64 KiB) and
    counts its events: the client's own cost per round stays as small as it can, since it
    shares the two cores with the server it measures."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
                 .encode())
    await writer.drain()
    status = await reader.readline()
    assert b" 200 " in status, status
    try:
        while chunk := await reader.read(65536):
            counts[i] += chunk.count(b"\ndata: ")
    finally:
        writer.close()


def hold_subscribers(port: int, n: int, ready: threading.Event, stop: threading.Event,
                     counts: list[int]) -> None:
    """``n`` streams from one event loop, until ``stop``."""
    async def main():
        tasks = []
        for i in range(n):  # connect a few at a time: a burst of 1,000 SYNs is not the point
            tasks.append(asyncio.create_task(_subscriber(port, "/collections/sensors/events",
                                                         counts, i)))
            if i % 50 == 49:
                await asyncio.sleep(0.2)
        await asyncio.sleep(2)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.2)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    asyncio.run(main())


def workers_rss_mb(server_pid: int) -> float:
    """Resident memory of the server's worker processes (children of gunicorn's master)."""
    total = 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if b"gunicorn" in cmd and int(stat[1]) != 1 and _is_descendant(int(d.name), server_pid):
            total += int((d / "statm").read_text().split()[1]) * resource.getpagesize()
    return total / 2**20


def _is_descendant(pid: int, ancestor: int) -> bool:
    for _ in range(8):
        if pid == ancestor:
            return True
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            return False
    return False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--load-seconds", type=int, default=20)
    args = ap.parse_args()
    work = OUT / "events-work"
    shutil.rmtree(work, ignore_errors=True)
    (work / "data").mkdir(parents=True)
    env = dict(os.environ, OUP_DATA_DIR=str(work / "data"), OUP_LOG_LEVEL="ERROR")
    subprocess.run([sys.executable, "-m", "oup.cli", "import", "--quiet"], env=env, check=True)
    sensors = [f["properties"]["sensor_id"] for f in json.loads(
        (ROOT / "collections/sensors/sensors.geojson").read_text())["features"]
        if f["properties"].get("format", "flat") == "flat"]
    results = {"machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
               "store": "PostGIS" if env.get("OUP_DATABASE_URL") else "GeoPackage",
               "rate": args.rate, "seconds": args.seconds}
    with BrokerProcess(work / "broker", free_port(), "mosquitto") as bp:
        env.update(OUP_MQTT_URL=bp.url, OUP_EVENTS_MQTT_URL=bp.relay_url)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-m", "oup.cli", "serve", "--port", str(port),
                                   "--workers", "2"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=open(work / "server.log", "w"))
        ingester = subprocess.Popen([sys.executable, "-m", "oup.cli", "ingest"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=open(work / "ingest.log", "w"))
        try:
            for _ in range(240):
                try:
                    if requests.get(f"{url}/health", timeout=2).ok:
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.5)
            time.sleep(3)  # the relay and the ingester subscribe
            broker = Broker.from_url(bp.url)
            # -- 1. latency ------------------------------------------------------------
            sse, poller = SseLatency(f"{url}/collections/sensors/events"), \
                Poller(f"{url}/collections/sensors/items")
            sse.start()
            poller.start()
            via_mqtt = MqttLatency(bp.port)
            time.sleep(1)
            sent = publish(broker, sensors, args.rate, args.seconds, "bench-events-pub")
            time.sleep(3)
            sse.stop.set()
            poller.stop.set()
            via_mqtt.close()
            for name, samples in (("sse", sse.samples), ("mqtt", via_mqtt.samples)):
                commit = [c for c, _ in samples]
                publish_ = [p for _, p in samples]
                results[name] = {"events": len(samples),
                                 "commit_p50_ms": pct(commit, .5) * 1000,
                                 "commit_p99_ms": pct(commit, .99) * 1000,
                                 "publish_p50_ms": pct(publish_, .5) * 1000,
                                 "publish_p99_ms": pct(publish_, .99) * 1000}
            results["polling_1s"] = {"updates": len(poller.samples),
                                     "publish_p50_ms": pct(poller.samples, .5) * 1000,
                                     "publish_p99_ms": pct(poller.samples, .99) * 1000}
            results["readings"] = sent
            # -- 2. 1,000 subscribers beside the bbox load -----------------------------
            bounds = requests.get(f"{url}/collections/buildings", params={"f": "json"},
                                  timeout=30).json()["extent"]["spatial"]["bbox"][0]
            paths = bbox_paths(bounds, coll="buildings")
            pid = server.pid
            # a first round unmeasured: it warms the caches, and lets the store settle
            # after the readings of part 1
            wrk(url, paths, 10, work, "bbox-warm-up", pid)
            quiet = wrk(url, paths, args.load_seconds, work, "bbox-alone", pid)
            rss0 = workers_rss_mb(pid)
            ready, stop, counts = threading.Event(), threading.Event(), [0] * args.subscribers
            holder = threading.Thread(target=hold_subscribers, daemon=True,
                                      args=(port, args.subscribers, ready, stop, counts))
            holder.start()
            assert ready.wait(300), "the subscribers did not connect"
            rss1 = workers_rss_mb(pid)
            held = {"n": args.subscribers, "bbox_req_s_alone": quiet["req_s"],
                    "bbox_p99_ms_alone": quiet["p99_ms"], "rss_mb_before": rss0,
                    "rss_mb_with": rss1, "kb_per_subscriber": (rss1 - rss0) * 1024 / args.subscribers,
                    "rates": {}}
            for rate in (0, 1, 20):  # readings a second while the load runs
                got = sum(counts)
                if rate:
                    threading.Thread(target=publish, daemon=True, args=(
                        broker, sensors, rate, args.load_seconds + COOLDOWN + 5,
                        f"bench-trickle-{rate}")).start()
                busy = wrk(url, paths, args.load_seconds, work, f"bbox-with-{rate}", pid)
                held["rates"][rate] = {
                    "bbox_req_s": busy["req_s"], "bbox_p99_ms": busy["p99_ms"],
                    "ratio": busy["req_s"] / quiet["req_s"] if quiet["req_s"] else None,
                    "events_delivered": sum(counts) - got,
                    "receiving": sum(1 for c in counts if c)}
                time.sleep(6)  # the trickle ends
            stop.set()
            holder.join(60)
            # the rate alone once more, after: the ratios are to the mean of before and
            # after, so a machine that drifts during the run does not pass as a cost
            again = wrk(url, paths, args.load_seconds, work, "bbox-alone-after", pid)
            held["bbox_req_s_alone_after"] = again["req_s"]
            baseline = (quiet["req_s"] + again["req_s"]) / 2
            for x in held["rates"].values():
                x["ratio"] = x["bbox_req_s"] / baseline if baseline else None
            results["subscribers"] = held
        finally:
            for p in (server, ingester):
                p.terminate()
                p.wait(30)
    OUT.mkdir(exist_ok=True)
    (OUT / "events.json").write_text(json.dumps(results, indent=1))
    report(results)


def report(r: dict) -> None:
    print(f"\nchange events, {r['store']}, {r['readings']} readings at {r['rate']}/s "
          f"({r['machine']})")
    print(f"{'':<22}{'events':>8}{'commit p50':>12}{'commit p99':>12}{'publish p50':>13}"
          f"{'publish p99':>13}")
    for name in ("sse", "mqtt"):
        x = r[name]
        print(f"{name.upper():<22}{x['events']:>8}{x['commit_p50_ms']:>10.0f}ms"
              f"{x['commit_p99_ms']:>10.0f}ms{x['publish_p50_ms']:>11.0f}ms"
              f"{x['publish_p99_ms']:>11.0f}ms")
    p = r["polling_1s"]
    print(f"{'polling every 1 s':<22}{p['updates']:>8}{'':>24}{p['publish_p50_ms']:>11.0f}ms"
          f"{p['publish_p99_ms']:>11.0f}ms")
    print(f"SSE p99 commit -> client: {r['sse']['commit_p99_ms']:.0f} ms (goal < 250 ms); "
          f"changes seen, SSE / polling: {r['sse']['events'] / max(1, p['updates']):.1f}x "
          "(a poll sees a sensor's latest value, not the ones between)")
    s = r["subscribers"]
    print(f"\n{s['n']} SSE subscribers held: {s['kb_per_subscriber']:.0f} KiB each (workers "
          f"{s['rss_mb_before']:.0f} -> {s['rss_mb_with']:.0f} MiB); features bbox load "
          f"alone: {s['bbox_req_s_alone']:.0f} req/s before the subscribers and "
          f"{s['bbox_req_s_alone_after']:.0f} after (ratios to their mean), p99 "
          f"{s['bbox_p99_ms_alone']:.0f} ms")
    for rate, x in s["rates"].items():
        print(f"  readings {rate:>2}/s ({x['events_delivered']:>7} events delivered): bbox "
              f"{x['bbox_req_s']:.0f} req/s = {x['ratio']:.2f}x alone (goal >= 0.90), "
              f"p99 {x['bbox_p99_ms']:.0f} ms")


if __name__ == "__main__":
    main()
