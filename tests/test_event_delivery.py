"""Change events end to end, both stores: a real Mosquitto, a real `oup ingest`, the server
with its relay (`oup serve` with OUP_MQTT_URL), and subscribers over SSE and over MQTT
(paho on TCP, paho on WebSocket). Every ingest batch of 10,000 readings is told, to each
subscriber, in order, once; a subscriber killed mid-stream comes back with Last-Event-ID
and misses nothing; a restricted collection's events reach nobody who may not see it,
while that collection is being re-imported."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import requests

from conftest import (IngesterProcess, flat_messages, oup, publish_in_background, serving,
                      store_url, wait_for)
from oup.store import open_observation_store
from oup.sensors.observations import us_of

READINGS = 10_000
RESTRICTED = "jeugdzorg"

# A subscriber in a process of its own, so that it can be killed: it prints each event's
# id and CloudEvents type as it reads them (flushed), from the first byte of the stream.
SSE_READER = r"""
import json, os, sys, requests
url, last = sys.argv[1], sys.argv[2]
headers = json.loads(os.environ.get("SSE_HEADERS", "{}"))  # credentials stay out of argv
if last:
    headers["Last-Event-ID"] = last
with requests.get(url, headers=headers, stream=True, timeout=(10, 120)) as r:
    r.raise_for_status()
    print("connected", flush=True)
    event_id = None
    for line in r.iter_lines():
        if line.startswith(b"id: "):
            event_id = line[4:].decode()
        elif line.startswith(b"data: "):
            doc = json.loads(line[6:])
            print(event_id, doc["type"], doc["source"].rsplit("/", 1)[-1], flush=True)
"""


class SseSubscriber:
    """``python -c SSE_READER``: its lines are (id, type, collection) as they arrive."""

    def __init__(self, url: str, last: str = "", headers: dict | None = None):
        self.proc = subprocess.Popen([sys.executable, "-c", SSE_READER, url, last],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, SSE_HEADERS=json.dumps(headers or {})))
        self.events: list[tuple[int, str, str]] = []
        self.connected = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("connected"):
                self.connected.set()
            elif line.endswith("\n"):
                seq, kind, cid = line.split()
                self.events.append((int(seq), kind, cid))

    def state(self) -> str:
        """Running, or how it ended (for a failing test's message)."""
        if self.proc.poll() is None:
            return "running"
        return f"exited {self.proc.returncode}: {self.proc.stderr.read()[-600:]}"

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


class MqttSubscriber:
    def __init__(self, host: str, port: int, transport: str):
        self.events: list[tuple[int, str, str]] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  transport=transport)
        self.client.on_connect = lambda c, *a: c.subscribe("oup/events/#", qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._message
        self.client.connect(host, port)
        self.client.loop_start()

    def _message(self, client, userdata, msg):
        doc = json.loads(msg.payload)
        self.events.append((int(doc["id"]), doc["type"], msg.topic.split("/")[3]))

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


def _log_after(env, seq: int) -> list:
    log, out = open_observation_store(store_url(env)), []
    while batch := log.events_after(seq, 5000):
        out += batch
        seq = batch[-1].seq
    return out


def _ids(events, keep=lambda cid: True) -> list[int]:
    return [seq for seq, _, cid in events if keep(cid)]


@pytest.fixture
def live(imported, broker):
    env = dict(imported, OUP_MQTT_URL=broker.url, OUP_EVENTS_MQTT_URL=broker.relay_url,
               OUP_MQTT_WS_PUBLIC_URL=broker.ws_url)
    with serving(env) as url:
        log = open_observation_store(store_url(env))
        wait_for(lambda: log.event_state("relay:mqtt") is not None, 60, "the relay to start")
        yield env, url


def test_every_batch_reaches_every_subscriber_in_order_once(live, broker, credentials):
    env, url = live
    store = env["OUP_TEST_STORE"]
    start = datetime(2031, 1 if store == "gpkg" else 2, 1, tzinfo=timezone.utc)
    ing = IngesterProcess(env, "events-test").start()
    log = open_observation_store(store_url(env))
    first = log.last_event()
    sse_all = SseSubscriber(f"{url}/events")
    sse_sensors = SseSubscriber(f"{url}/collections/sensors/events")
    killed = SseSubscriber(f"{url}/collections/sensors/events")
    # signed in with the restricted collection's role: it sees what the others may not
    signed_in = SseSubscriber(f"{url}/events", headers={"X-API-Key": credentials["api_key"]})
    tcp = MqttSubscriber("127.0.0.1", broker.port, "tcp")
    ws = MqttSubscriber("127.0.0.1", broker.ws_port, "websockets")
    for sub in (sse_all, sse_sensors, killed, signed_in):
        assert sub.connected.wait(30), sub.proc.stderr.read() if sub.proc.poll() else "no stream"
    assert tcp.subscribed.wait(10) and ws.subscribed.wait(10)
    try:
        messages = flat_messages(READINGS, start)
        half = len(messages) // 2
        pub, done, errors = publish_in_background(broker.url, messages[:half],
                                                  f"events-test-pub-{store}", rate=2_000)
        # meanwhile the restricted collection changes: re-imported twice, and its events
        # stay out of sight of anonymous callers, on SSE and on MQTT
        for _ in range(2):
            oup(env, "import", RESTRICTED, "--quiet")
            r = requests.get(f"{url}/collections/{RESTRICTED}/events", timeout=10)
            assert r.status_code == 404 and r.headers["Content-Type"] == "application/problem+json"
        wait_for(lambda: len(killed.events) >= 200, 120, "200 events on the doomed stream")
        killed.kill()  # mid-stream
        seen = killed.events[-1][0]
        resumed = SseSubscriber(f"{url}/collections/sensors/events", str(seen))
        assert resumed.connected.wait(30), resumed.state()
        assert done.wait(300) and not errors, errors
        # The second half only now: the stream is killed mid-stream, and the resumed one
        # has events to catch up on, however slowly the first half was told (on a busy
        # machine the doomed stream could otherwise see all but the last event first).
        pub, done, errors = publish_in_background(broker.url, messages[half:],
                                                  f"events-test-pub2-{store}", rate=2_000)
        assert done.wait(300) and not errors, errors
        end = datetime(start.year, start.month + 1, 1, tzinfo=timezone.utc)
        wait_for(lambda: log.execute(
            "SELECT COUNT(*) FROM oup_observations WHERE phenomenon_time >= ? AND "
            "phenomenon_time < ?", (us_of(start), us_of(end)))[0][0] >= READINGS, 180,
            "every reading stored")
        ing.stop()
        told = _log_after(env, first)
        public = [(e.seq, e.type, e.collection) for e in told if e.collection != RESTRICTED]
        last = told[-1].seq

        bounds = {"sse /events": (sse_all, public[-1][0]),
                  "sse resumed": (resumed, _ids(public, lambda c: c == "sensors")[-1]),
                  "mqtt tcp": (tcp, public[-1][0]), "mqtt ws": (ws, public[-1][0]),
                  "sse signed in": (signed_in, last)}

        def behind() -> dict:
            return {name: (sub.events[-1][0] if sub.events else None, bound, len(sub.events),
                           sub.state() if isinstance(sub, SseSubscriber) else "")
                    for name, (sub, bound) in bounds.items()
                    if not sub.events or sub.events[-1][0] < bound}
        try:
            wait_for(lambda: not behind(), 180, "every subscriber to catch up")
        except AssertionError:  # who is behind: (last id seen, last id due, events, state)
            raise AssertionError(f"behind: {behind()}; relay: "
                                 f"{log.event_state('relay:mqtt')}") from None
    finally:
        for sub in (sse_all, sse_sensors, signed_in, tcp, ws):
            sub.stop()
    # every reading is in exactly one event's count: each batch was told, per sensor
    ours = [e for e in told if e.collection == "sensors"
            and start.isoformat()[:7] == e.data["properties"]["latest_time"][:7]]
    assert sum(e.data["observations"]["stored"] for e in ours) == READINGS
    assert {e.subject for e in ours} == {m[2][0] for m in messages}
    imports = [e for e in told if e.collection == RESTRICTED]
    assert len(imports) == 2 and imports[0].data["features"] > 0
    # SSE: exactly the log, in order, once; the anonymous streams never see the restricted
    assert sse_all.events == public
    assert _ids(sse_sensors.events) == _ids(public, lambda c: c == "sensors")
    assert signed_in.events == [(e.seq, e.type, e.collection) for e in told]
    # killed and resumed: together exactly the stream, nothing missed, nothing twice
    assert killed.events + resumed.events == [p for p in public if p[2] == "sensors"]
    resumed.stop()
    # MQTT (TCP and WebSocket): public events only; in order per collection, each once
    for sub in (tcp, ws):
        got = [e for e in sub.events if e[0] > first]
        assert sorted(got) == public and len(set(got)) == len(got)
        for cid in {c for _, _, c in got}:
            ids = _ids(got, lambda c, cid=cid: c == cid)
            assert ids == sorted(ids)
        assert not [e for e in sub.events if e[2] == RESTRICTED]


def _first_events(url: str, n: int, **kw) -> list[dict]:
    """The first ``n`` events a stream gives (60 s at most)."""
    out, deadline = [], time.monotonic() + 60
    with requests.get(url, stream=True, timeout=(10, 60), **kw) as r:
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith(b"data: "):
                out.append(json.loads(line[6:]))
            if len(out) >= n or time.monotonic() > deadline:
                return out
    return out


def test_a_stream_from_the_start_reads_the_log_and_bad_requests_say_why(server, credentials):
    # `oup import` told of each collection's new version; a stream from id 0 has them all,
    # read from the store's log (older than anything the worker holds in memory)
    imported = _first_events(f"{server}/events?after=0&type=oup.collection.imported", 3)
    assert [e["type"] for e in imported] == ["oup.collection.imported"] * 3
    assert int(imported[0]["id"]) < int(imported[1]["id"]) < int(imported[2]["id"])
    assert all(e["source"] == f"{server}/collections/{e['subject']}" for e in imported)
    # a restricted collection's events: only for whom may see it; filters apply
    key = {"X-API-Key": credentials["api_key"]}
    (restricted,) = _first_events(f"{server}/collections/{RESTRICTED}/events?after=0", 1,
                                  headers=key)
    assert restricted["subject"] == RESTRICTED and restricted["data"]["features"] > 0
    (derived,) = _first_events(f"{server}/collections/observations/events?after=0&filter="
                               "collection='sensors'", 1)
    assert derived["subject"] == "sensors"  # a derived collection tells its source's events
    for path, status, parameter in [
            ("/events?after=abc", 400, "after"), ("/events?since=3", 400, "since"),
            ("/events?type=oup.nothing", 400, "type"), ("/events?f=json", 400, "f"),
            ("/events?filter=latest_result%20%3E", 400, "filter"),
            ("/events?filter=no_such_property=1", 400, "filter"),
            (f"/collections/{RESTRICTED}/events", 404, None),
            ("/collections/no-such-thing/events", 404, None)]:
        r = requests.get(server + path, timeout=10)
        assert r.status_code == status, (path, r.text)
        assert r.headers["Content-Type"] == "application/problem+json"
        assert r.json().get("parameter") == parameter, (path, r.json())
    assert requests.post(f"{server}/events", timeout=10).status_code == 405
    r = requests.get(f"{server}/events", headers={"X-API-Key": "wrong"}, timeout=10)
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers
