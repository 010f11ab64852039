"""A reading published over MQTT shows on its sensor's label in /viewer and /map, live: a
real Mosquitto, a real `oup ingest`, the server's change events (SSE) and headless
Chromium. The time from publish to the label is measured and written to tests/out (a
test asserts what is shown, never how fast: the machine may be busy).

One clock: this process reads the wall clock (time.time()) just before it hands each
reading to the MQTT client; the page reads the wall clock (Date.now()) as it sets the
label (tests/js/live.mjs). Both run on this machine, so they read the same clock."""
from __future__ import annotations

import json
import math
import queue
import shutil
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from conftest import ROOT, SENSORS, IngesterProcess, oup, serving, store_url
from iot_ingest.mqtt import Broker
from iot_ingest.simulate import Publisher
from oup.store import open_observation_store

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "out"
# the sensor the readings are for: an NO2 one, whose range (0..2000) holds the values
SENSOR = next(f["properties"]["sensor_id"] for f in SENSORS
              if f["properties"]["format"] == "flat"
              and f["properties"]["observed_property"] == "NO2")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is "
                                "not installed (make test installs it)")


def _lines(stream) -> queue.Queue:
    q: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [q.put(line) for line in stream], daemon=True).start()
    return q


def _p(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    return sorted_ms[max(0, math.ceil(q * len(sorted_ms)) - 1)]


def _publish_to_page(env, broker, server, page: str, values: list[float], spacing: float,
                     before=None) -> tuple[dict, dict]:
    """Open ``page``; once it shows the sensors, run ``before()`` (if any), then publish
    ``values`` for SENSOR one at a time, ``spacing`` seconds apart. What the page saw
    (tests/js/live.mjs), and when each value was published (ms since the epoch).

    The page shows what the server tells: an event per ingest batch and sensor, with the
    batch's latest value. Readings that fall into one batch (a busy machine) are one
    event, so the page must show exactly the values of the events told, in order, ending
    on the last one published."""
    log = open_observation_store(store_url(env))
    since = log.last_event()
    item = requests.get(f"{server}/collections/sensors/items/{SENSOR}", params={"f": "json"},
                        timeout=30).json()
    # newer than whatever an earlier test stored for it, so each reading becomes its latest
    start = datetime.now(timezone.utc).replace(microsecond=0)
    if item["properties"].get("latest_time"):
        start = max(start, datetime.fromisoformat(item["properties"]["latest_time"])
                    + timedelta(seconds=1))
    ing = IngesterProcess(dict(env, OUP_MQTT_URL=broker.url), "live-labels").start()
    pub = Publisher(Broker.from_url(broker.url), f"live-labels-pub-{env['OUP_TEST_STORE']}")
    url = f"{server}/viewer" if page == "viewer" else f"{server}/map?at=4.4535,51.9065,13"
    wait = len(values) * spacing + 60
    node = subprocess.Popen(
        ["node", "live.mjs", url, page, f"sensors/{SENSOR}", str(values[-1]), str(wait)],
        cwd=ROOT / "tests" / "js", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"CHROMIUM": CHROMIUM, "PATH": "/usr/bin:/bin"})
    published = {}
    try:
        lines = _lines(node.stdout)
        first = json.loads(lines.get(timeout=300))  # the page is loaded, the labels shown
        assert first.get("shown"), first
        if before:
            before()
        for i, value in enumerate(values):
            body = {"phenomenonTime": (start + timedelta(seconds=i)).isoformat()
                    .replace("+00:00", "Z"), "result": value}
            published[str(value)] = time.time() * 1000
            pub.publish(f"oup/sensors/{SENSOR}/observations", json.dumps(body).encode())
            time.sleep(spacing)
        node.wait(timeout=wait + 60)
        out = json.loads(lines.get(timeout=10))
    finally:
        if node.poll() is None:
            node.kill()
        pub.close(timeout=30)
        ing.stop()
    assert out["error"] is None and out["pageErrors"] == [], (out, node.stderr.read())
    assert out["consoleErrors"] == [], (out["failedRequests"], _server_log_errors(env))
    told, seq = [], since
    while batch := log.events_after(seq, 1000):
        told += [str(e.data["properties"]["latest_result"]) for e in batch
                 if e.collection == "sensors" and e.subject == SENSOR]
        seq = batch[-1].seq
    assert told and told[-1] == str(values[-1]), told
    assert told == [v for v in published if v in told], told  # in the order published
    # every value told, once, in order: nothing missed, nothing twice
    assert [v for v, _, _ in out["seen"] if v in published] == told, (out, told)
    return out, published


def _server_log_errors(env) -> list[str]:
    """What the server logged as going wrong (for a failing test's message)."""
    log = Path(env["OUP_DATA_DIR"]) / "server.log"
    return [line[:300] for line in log.read_text(errors="replace").splitlines()
            if any(w in line for w in ("Error", "Exception", "Cancel", "Traceback"))][-20:]


def _latencies(out: dict, published: dict, name: str, env: dict) -> dict:
    """Publish -> label, and its two legs: publish -> the event's time (the ingester wrote
    the batch) and the event's time -> label (the commit, SSE, the page)."""
    seen = [(published[v], at, told) for v, at, told in out["seen"] if v in published]
    ms = sorted(at - sent for sent, at, _ in seen)
    ingest = sorted(told - sent for sent, _, told in seen)
    shown = sorted(at - told for _, at, told in seen)
    report = {"page": name, "store": env["OUP_TEST_STORE"], "n": len(ms),
              "p50_ms": round(_p(ms, 0.5)), "p95_ms": round(_p(ms, 0.95)),
              "max_ms": round(ms[-1]), "min_ms": round(ms[0]),
              "ingest_p50_ms": round(_p(ingest, 0.5)), "ingest_p95_ms": round(_p(ingest, 0.95)),
              "shown_p50_ms": round(_p(shown, 0.5)), "shown_p95_ms": round(_p(shown, 0.95))}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"live-labels-{name}-{env['OUP_TEST_STORE']}.json").write_text(
        json.dumps(report))
    print(report)
    assert ms[0] > 0, report  # shown after it was published: one clock
    return report


@pytest.mark.parametrize("page", ["viewer", "map"])
def test_a_published_reading_shows_on_its_label_live(imported, broker, server, page, request):
    if page == "viewer":  # the store's part is the map's too, on both stores
        request.getfixturevalue("one_store")
    # 10 readings 0.5 s apart: each its own ingest batch, its own event; values no label
    # showed before (each page its own), exact in binary so both languages print them alike
    values = [(1000.25 if page == "viewer" else 1500.25) + i for i in range(10)]
    out, published = _publish_to_page(imported, broker, server, page, values, 0.5)
    _latencies(out, published, page, imported)  # (written to tests/out: not asserted)
    # the event that brought the last value is the page's last, and the page is live
    assert out["lastEvent"]["sensor"] == f"sensors/{SENSOR}", out
    assert int(out["lastEvent"]["id"]) > 0 and "live" in out["status"], out
    if page == "map":
        assert out["stale"] == [False], out  # drawn as fresh
        _labels_sit_on_their_sensors(out)


def _labels_sit_on_their_sensors(out: dict) -> None:
    """After the live updates each label on /map is still a marker (absolutely placed)
    about as wide as its text, not a bar across the map: an update that replaced the
    element's classes dropped MapLibre's, and the label became a full-width block."""
    labels = out["labels"]
    assert any(lb["text"] == out["last"] for lb in labels), out  # the updated one is there
    for lb in labels:
        assert lb["position"] == "absolute", lb
        # the text plus the label's padding (3 px a side) and a pixel of rounding
        assert 0 < lb["width"] <= lb["textWidth"] + 8 and lb["width"] < 400, lb


def test_after_a_reconnect_the_map_misses_no_reading(imported, broker, one_store):
    """`oup catalog reload` restarts the server's workers, which ends every event stream;
    the page says it is reconnecting, the browser resumes from the last event it saw
    (Last-Event-ID), and the readings published meanwhile all show, in order. (A resume
    from each store's event log: test_event_delivery, on both.)"""
    values = [1700.25 + i for i in range(40)]  # over 10 s: the restart falls among them
    # a server of its own: `catalog reload` signals the server that started last on this
    # data folder, which the session's shared server need not be by now
    with serving(imported) as server:
        out, published = _publish_to_page(imported, broker, server, "map", values, 0.25,
                                          before=lambda: oup(imported, "catalog", "reload"))
    assert any("reconnecting" in s for s in out["statuses"]), out["statuses"]
    assert "live" in out["status"], out
    _latencies(out, published, "map-reconnect", imported)
