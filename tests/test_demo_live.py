"""The live half of the first README command: `oup serve --live` starts a broker,
`oup ingest` and `oup simulate` beside the API, and a newcomer sees the city's sensors
move. Both brokers it may pick: Mosquitto (when installed) and the embedded demo one."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from conftest import ROOT, free_port, metric, oup, wait_for


def _get(url: str, **params) -> dict | None:
    try:
        r = requests.get(url, params=params, timeout=10)
    except requests.ConnectionError:  # not up yet
        return None
    assert r.status_code == 200, r.text
    return r.json() if "json" in r.headers.get("content-type", "") else {"text": r.text}


@pytest.mark.parametrize("kind", ["mosquitto", "embedded"])
def test_serve_live_shows_the_sensors_moving(workdir, kind):
    cat, data = workdir / f"live-catalogue-{kind}", workdir / f"live-data-{kind}"
    for cid in ("sensors", "observations", "sensor-slices"):
        shutil.copytree(ROOT / "collections" / cid, cat / cid)
    port, broker_port = free_port(), free_port()
    env = dict(os.environ, OUP_DATA_DIR=str(data), OUP_CATALOG_DIR=str(cat),
               OUP_LIVE_BROKER=kind, OUP_LIVE_BROKER_PORT=str(broker_port),
               OUP_LOG_LEVEL="WARNING")
    for key in ("OUP_DATABASE_URL", "OUP_MQTT_URL", "OUP_INGEST_GROUP"):
        env.pop(key, None)  # the embedded default, as a newcomer has it
    oup(env, "import", "--quiet")
    started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    url = f"http://127.0.0.1:{port}"
    log = open(data / "live.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "oup.cli", "serve", "--port", str(port),
                             "--workers", "1", "--live"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # every payload format of the catalogue arrives: each has a sensor with a fresh value
        def fresh_formats():
            doc = _get(f"{url}/collections/sensors/items", limit=100)
            assert proc.poll() is None, (data / "live.log").read_text()[-3000:]
            if not doc:
                return None
            formats = {f["properties"]["format"] for f in doc["features"]}
            fresh = {f["properties"]["format"] for f in doc["features"]
                     if (f["properties"].get("latest_time") or "") >= started}
            return fresh == formats and formats
        formats = wait_for(fresh_formats, 120, "a fresh value from every payload format")
        assert formats == {"flat", "sensorthings", "senml", "tts"}

        obs = _get(f"{url}/collections/observations/items", datetime=f"{started}/..")
        assert obs["features"] and all(f["properties"]["phenomenonTime"] >= started
                                       for f in obs["features"])
        slices = _get(f"{url}/collections/sensor-slices/items", limit=100)["features"]
        assert slices and all(f["properties"]["count"] >= 1 for f in slices)

        # the simulator's malformed and repeated messages show, and the counters balance
        def counted():
            m = _get(f"{url}/metrics")["text"]
            dead = metric(m, 'oup_ingest_messages_total{outcome="dead_lettered"}')
            dup = metric(m, 'oup_ingest_messages_total{outcome="duplicates"}')
            return dead > 0 and dup > 0 and m
        metrics = wait_for(counted, 120, "dead letters and duplicates in /metrics")
        parts = sum(metric(metrics, f'oup_ingest_messages_total{{outcome="{o}"}}')
                    for o in ("stored", "duplicates", "dead_lettered"))
        assert metric(metrics, "oup_ingest_received_total") == (
            parts + metric(metrics, "oup_ingest_in_flight"))
        listed = oup(env, "deadletters").stdout.strip().splitlines()
        assert listed[-1].endswith("dead letters shown") and int(listed[-1].split()[0]) >= 1
        children = [int(pid) for pid in Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
                    .read_text().split()]
        assert len(children) == 6  # broker, ingester, job worker, simulator, relay, API
        # the sensors' change events stream too (what /viewer and /map listen to)
        with requests.get(f"{url}/collections/sensors/events", stream=True,
                          timeout=(10, 30)) as r:
            event = next(json.loads(line[6:]) for line in r.iter_lines()
                         if line.startswith(b"data: "))
        assert event["type"] == "oup.observations.stored"
        assert "relaying public collections' events" in (data / "live.log").read_text()
    finally:
        # stops the API, the simulator, the ingester, the broker; a second signal (an
        # impatient Ctrl-C) must not cut that short
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)  # into the clean-up
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            log.close()
    for p in (port, broker_port):  # nothing left running
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", p), timeout=1).close()
    for pid in children:
        assert not Path(f"/proc/{pid}").exists(), f"child {pid} outlived `oup serve --live`"


def test_messages_sent_before_anyone_subscribes_are_sent_again(broker):
    """`make demo` starts the simulator and the ingester together: what the simulator sends
    before the ingester has subscribed matches no subscription. The broker answers 0x10
    and drops it; the Publisher sends it again until someone takes it."""
    import threading

    from iot_ingest.mqtt import Broker
    from iot_ingest.simulate import Publisher

    b = Broker.from_url(broker.url)
    pub = Publisher(b, "early-publisher", retry=0.2)
    # a sensor topic (the broker's ACL lets anonymous clients publish only those) of a
    # sensor nobody listens to yet
    topic = "oup/sensors/early-test/observations"
    payloads = [f"early-{i}".encode() for i in range(50)]
    for p in payloads:
        pub.publish(topic, p)
    wait_for(lambda: pub.unrouted >= 50, 30, "50 answers 'No matching subscribers'")
    got, subscribed = [], threading.Event()
    sub = b.client("early-subscriber")
    sub.on_message = lambda c, u, m: got.append(m.payload)
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
    sub.connect(b.host, b.port)
    sub.loop_start()
    try:
        assert subscribed.wait(10)
        pub.close(timeout=60)  # returns once the broker routed every message
        wait_for(lambda: len(set(got)) == 50, 30, "all 50 messages at the subscriber")
    finally:
        sub.disconnect()
        sub.loop_stop()
    assert set(got) == set(payloads)


def test_a_taken_broker_port_is_said_not_silently_shared(workdir):
    """A system Mosquitto already on the port would take our clients, with its stock
    configuration (no persistence, 1,000-message queues): the launcher refuses."""
    from iot_ingest.broker import BrokerError, BrokerProcess

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BrokerError, match="is taken.*OUP_MQTT_URL"):
            BrokerProcess(workdir / "taken-broker", port, kind="mosquitto").start()
