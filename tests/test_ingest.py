"""Delivery guarantees of `oup ingest` with a real Mosquitto (config/mosquitto.conf):
nothing lost, nothing stored twice, whatever happens to the ingester, the broker or the
database; every bad message a dead letter with a reason; the counters always balance."""
from __future__ import annotations

import contextlib
import itertools
import random
import subprocess
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from conftest import (IngesterProcess, flat_messages, metric, oup, publish_in_background,
                      store_url, wait_for)
from iot_ingest.mqtt import Broker
from iot_ingest.simulate import Publisher
from oup.store import open_observation_store
from oup.sensors.observations import us_of

pytestmark = pytest.mark.usefixtures("imported")


def _store(env):
    return open_observation_store(store_url(env))


def _keys(env, start: datetime, end: datetime) -> list[tuple]:
    return [tuple(r) for r in _store(env).execute(
        "SELECT sensor_id, phenomenon_time FROM oup_observations "
        "WHERE phenomenon_time >= ? AND phenomenon_time < ?", (us_of(start), us_of(end)))]


@contextlib.contextmanager
def _writer_blocked(env):
    """Hold the lock the ingester's batch needs, as a long backup or migration would."""
    if env.get("OUP_DATABASE_URL"):
        import psycopg
        with psycopg.connect(env["OUP_DATABASE_URL"]) as con:
            con.execute("LOCK TABLE oup_ingest_counters IN EXCLUSIVE MODE")
            yield
            con.rollback()
    else:
        con = sqlite3.connect(Path(env["OUP_DATA_DIR"]) / "oup.gpkg", isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            con.execute("ROLLBACK")
            con.close()


def _env(imported, broker) -> dict:
    return dict(imported, OUP_MQTT_URL=broker.url)


def _balanced(counters: dict) -> bool:
    return counters["received"] == (counters["stored"] + counters["duplicates"]
                                    + counters["dead_lettered"])


def test_sigkill_three_times_loses_nothing_and_stores_nothing_twice(imported, broker):
    env = _env(imported, broker)
    start, end = datetime(2030, 1, 1, tzinfo=timezone.utc), datetime(2030, 2, 1, tzinfo=timezone.utc)
    messages = flat_messages(40_000, start)
    ing = IngesterProcess(env, "kill-test").start()
    pub, done, errors = publish_in_background(broker.url, messages, f"kill-test-pub-{env['OUP_TEST_STORE']}")
    rng = random.Random(4)
    kills = sorted(rng.sample(range(2_000, 38_000), 3))
    for at in kills:  # a random moment while the stream is being stored
        wait_for(lambda: len(_keys(env, start, end)) >= at, 240, f"{at} rows stored")
        ing.kill()
        threading.Event().wait(rng.uniform(0.1, 1.0))
        ing.start()
    assert done.wait(300) and not errors, errors
    wait_for(lambda: len(_keys(env, start, end)) >= 40_000, 300, "all 40,000 rows")
    ing.stop()
    rows = _keys(env, start, end)
    assert len(rows) == 40_000 == len(set(rows))  # 0 lost, 0 twice
    assert set(rows) == {key for _, _, key in messages}
    c = _store(env).counters()[ing.client_id]
    # every distinct message was stored once; redeliveries after a kill are duplicates
    assert c["stored"] == 40_000 and c["dead_lettered"] == 0 and _balanced(c)


def _missing(env, messages, start, end, pub, ing, broker) -> str:
    """Which sent messages are not stored (as runs of their index in the stream), written
    next to the store, and where the logs are that say why."""
    stored = set(_keys(env, start, end))
    lost = [i for i, (_, _, key) in enumerate(messages) if key not in stored]
    runs = []
    for _, run in itertools.groupby(enumerate(lost), lambda p: p[1] - p[0]):
        run = [i for _, i in run]
        runs.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    report = Path(env["OUP_DATA_DIR"]) / f"missing-{ing.client_id}.txt"
    report.write_text("".join(f"{i} {messages[i][0]} {messages[i][1].decode()}\n" for i in lost))
    return (f"{len(lost)} of {len(messages)} not stored, indexes {', '.join(runs[:20])}"
            f"{' ...' if len(runs) > 20 else ''} (all in {report}); publisher: sent "
            f"{pub.sent}, acknowledged {pub.acknowledged}, unacknowledged "
            f"{pub.unacknowledged()}, unrouted {pub.unrouted}, connections {pub.connections}; "
            f"ingester: {ing.status()}; logs: {ing.log}, {broker.data_dir}/mosquitto/mosquitto.log")


@pytest.mark.parametrize("group", [None, "restart"], ids=["plain", "shared"])
def test_broker_restart_mid_stream_loses_nothing(imported, broker, group):
    """Mosquitto stopped (SIGTERM: it writes its persistence file) and started mid-stream,
    and the publisher back before the ingester, the order that loses messages if anything
    does. A plain subscription is restored with the session: no message needs sending
    again. A shared one is not (Mosquitto 2.0): until the ingester has subscribed again the
    broker answers 0x10, "No matching subscribers", and the Publisher sends again.
    Each kind of subscription once, on a store of its own: what a restart tests is the
    broker's and the ingester's part, the same whatever store the messages go to."""
    if (group is None) != (imported["OUP_TEST_STORE"] == "gpkg"):
        pytest.skip("the plain subscription on the GeoPackage, the shared one on PostGIS")
    env = _env(imported, broker)
    month = 3 if group is None else 4  # each case its own readings
    start = datetime(2030, month, 1, tzinfo=timezone.utc)
    end = datetime(2030, month + 1, 1, tzinfo=timezone.utc)
    messages = flat_messages(30_000, start)
    ing = IngesterProcess(env, "restart-test", group=group).start()
    pub, done, errors = publish_in_background(
        broker.url, messages, f"restart-test-pub-{env['OUP_TEST_STORE']}", rate=2_000)
    wait_for(lambda: len(_keys(env, start, end)) >= 8_000, 120, "8,000 rows")
    connections = pub.connections
    ing.freeze()
    broker.stop()
    broker.start()
    assert pub.sent <= 27_000  # the stream goes on after the restart
    try:
        # The publisher back first means the new broker has answered it, not that publish()
        # returned: paho takes up to 10,000 messages while it is still reconnecting, and
        # counting those let the ingester resubscribe first (seen with CPU burners).
        wait_for(lambda: pub.connections > connections, 60, "the publisher connected again")
        answered = pub.acknowledged
        wait_for(lambda: pub.acknowledged >= answered + 3_000, 60,
                 "3,000 messages answered by the restarted broker")
        ing.thaw()
        assert done.wait(300) and not errors, errors
        wait_for(lambda: len(_keys(env, start, end)) >= 30_000, 180, "all 30,000 rows")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_missing(env, messages, start, end, pub, ing, broker)}")
    status = ing.status()
    ing.stop()
    rows = _keys(env, start, end)
    assert len(rows) == 30_000 and set(rows) == {key for _, _, key in messages}
    assert status["connections"] >= 2  # it did lose the broker, and came back
    if group is None:
        assert pub.unrouted == 0  # the broker kept the subscription across its restart
    else:
        assert pub.unrouted > 0, ("Mosquitto restored the shared subscription: the README's "
                                  "note on broker restarts and shared groups is outdated")


def test_blocked_writer_pushes_back_and_loses_nothing(imported, broker, server):
    env = _env(imported, broker)
    start, end = datetime(2030, 5, 1, tzinfo=timezone.utc), datetime(2030, 6, 1, tzinfo=timezone.utc)
    messages = flat_messages(20_000, start)
    ing = IngesterProcess(env, "block-test").start()
    pub, done, errors = publish_in_background(broker.url, messages, f"block-test-pub-{env['OUP_TEST_STORE']}")
    wait_for(lambda: len(_keys(env, start, end)) >= 1_000, 120, "1,000 rows")
    with _writer_blocked(env):  # the database writer is blocked from here
        stored_at_block = len(_keys(env, start, end))
        # the broker takes every message while the ingester holds at most Receive Maximum
        assert done.wait(120) and not errors, errors
        threading.Event().wait(3)
        status = ing.status()
        assert 0 < status["in_flight"] <= 2000
        assert len(_keys(env, start, end)) == stored_at_block  # really blocked
    wait_for(lambda: len(_keys(env, start, end)) >= 20_000, 180, "all 20,000 rows")
    metrics = wait_for(lambda: (m := requests.get(f"{server}/metrics", timeout=10).text)
                       and metric(m, "oup_ingest_store_busy_seconds_total") > 0 and m,
                       15, "busy time in /metrics")
    assert metric(metrics, "oup_ingest_backpressure_seconds_total") > 0
    assert metric(metrics, "oup_ingest_running") >= 1
    ing.stop()
    rows = _keys(env, start, end)
    assert len(rows) == 20_000 and set(rows) == {key for _, _, key in messages}


def _hostile(i: int, rng: random.Random) -> tuple[str, bytes, str]:
    """(topic, payload, the words its dead letter's reason must contain)."""
    flat = "oup/sensors/aq-statenweg-no2/observations"
    ok_time = '"phenomenonTime": "2031-01-01T00:00:00Z"'
    kinds = [
        (flat, b'{"phenomenonTime": "2031-01-01T00:00', "not JSON"),
        (flat, ("{" + ok_time + ', "result": "12"}').encode(), "must be a number"),
        (flat, ("{" + ok_time + ', "result": [1]}').encode(), "must be a number"),
        (flat, ("{" + ok_time + ', "result": 1e300}').encode(), "outside"),
        (flat, ("{" + ok_time + ', "result": -5}').encode(), "outside"),
        (f"oup/sensors/nobody-{i}/observations", ("{" + ok_time + ', "result": 5}').encode(),
         "unknown sensor"),
        (flat, b"[" * 200 + b"]" * 200, "nested deeper"),
        (flat, b"\xc3\x28" * rng.randint(1, 50), "UTF-8"),
        (flat, b"", "not JSON"),
        (flat, b'{"result": 5}', "required"),
        (flat, ('{"phenomenonTime": "noon", "result": 5}').encode(), "RFC 3339"),
        ("ingest/v1.1/Datastreams(x)/Observations", ("{" + ok_time + ', "result": 5}').encode(),
         "unknown sensor"),
        ("senml/x", b'[{"bn": "a", "t": 10, "v": 1}]', "relative"),
        ("v3/a/devices/b/up", b'{"end_device_ids": {}}', "TTS uplink"),
    ]
    if i % 100 == 0:  # oversized: fewer, they are big
        return flat, b"9" * 70_000, "exceeds"
    return kinds[i % len(kinds)]


def test_ten_thousand_hostile_payloads_become_dead_letters(imported, broker):
    env = _env(imported, broker)
    start, end = datetime(2030, 7, 1, tzinfo=timezone.utc), datetime(2030, 8, 1, tzinfo=timezone.utc)
    good = flat_messages(10_000, start)
    rng = random.Random(11)
    bad = [_hostile(i, rng) for i in range(10_000)]
    stream = [(t, p, None) for t, p, _ in good] + [(t, p, None) for t, p, _ in bad]
    rng.shuffle(stream)
    store = _store(env)
    before = store.execute("SELECT COALESCE(MAX(id), 0) FROM oup_dead_letters")[0][0]
    ing = IngesterProcess(env, "hostile-test").start()
    pub, done, errors = publish_in_background(broker.url, stream, f"hostile-test-pub-{env['OUP_TEST_STORE']}")
    assert done.wait(300) and not errors, errors
    wait_for(lambda: store.counters().get(ing.client_id, {}).get("received", 0) >= 20_000,
             180, "20,000 messages counted")
    assert ing.proc.poll() is None  # it never stopped
    stats = oup(env, "ingest", "--stats")
    assert "holds" in stats.stdout
    ing.stop()
    c = store.counters()[ing.client_id]
    assert c["received"] == 20_000 and c["dead_lettered"] == 10_000 and c["stored"] == 10_000
    assert _balanced(c)
    rows = store.execute("SELECT topic, reason, payload, payload_size FROM oup_dead_letters "
                         "WHERE id > ? ORDER BY id", (before,))
    assert len(rows) == 10_000
    expected: dict[tuple, int] = {}
    for topic, payload, words in bad:
        expected[(topic, words)] = expected.get((topic, words), 0) + 1
    seen: dict[tuple, int] = {}
    for topic, reason, payload, size in rows:
        words = next(w for (t, w) in expected if t == topic and w in reason)
        seen[(topic, words)] = seen.get((topic, words), 0) + 1
        assert len(payload) <= 65_536 and size >= len(payload)
    assert seen == expected
    assert len(_keys(env, start, end)) == 10_000


def test_dead_letters_are_listed_and_replayed_after_the_catalogue_learns(broker, workdir, env,
                                                                        request):
    """An unknown sensor's readings wait as dead letters; once the sensor is declared and
    imported, `oup deadletters --replay` stores them."""
    import json
    import os
    import shutil

    backend = env["OUP_TEST_STORE"]
    cat = workdir / f"replay-catalogue-{backend}"
    shutil.copytree(Path(__file__).parent.parent / "collections" / "sensors", cat / "sensors")
    data = workdir / f"replay-data-{backend}"
    env = dict(os.environ, OUP_DATA_DIR=str(data), OUP_CATALOG_DIR=str(cat),
               OUP_MQTT_URL=broker.url, OUP_LOG_LEVEL="WARNING", OUP_TEST_STORE=backend)
    env.pop("OUP_DATABASE_URL", None)
    if backend == "postgis":
        env["OUP_DATABASE_URL"] = request.getfixturevalue("postgis").create("replay")
    oup(env, "import", "--quiet")
    ing = IngesterProcess(env, "replay-test").start()
    pub = Publisher(Broker.from_url(broker.url), f"replay-test-pub-{backend}")
    for minute in range(3):
        pub.publish("oup/sensors/aq-new-station-no2/observations", json.dumps(
            {"phenomenonTime": f"2031-02-01T10:0{minute}:00Z", "result": 30 + minute}).encode())
    pub.close()
    store = open_observation_store(store_url(env))
    wait_for(lambda: store.counters().get(ing.client_id, {}).get("dead_lettered") == 3, 60,
             "3 dead letters")
    ing.stop()
    listed = oup(env, "deadletters").stdout
    assert listed.count("unknown sensor 'aq-new-station-no2'") == 3
    assert "replayed 0 of 3" in oup(env, "deadletters", "--replay").stdout  # still unknown
    assert store.count() == 0
    geo = json.loads((cat / "sensors" / "sensors.geojson").read_text())
    geo["features"].append({"type": "Feature", "geometry": {"type": "Point",
                                                            "coordinates": [4.47, 51.92]},
                            "properties": {"sensor_id": "aq-new-station-no2", "name": "New",
                                           "observed_property": "NO2", "owner": "DCMR",
                                           "format": "flat"}})
    (cat / "sensors" / "sensors.geojson").write_text(json.dumps(geo))
    oup(env, "import", "sensors", "--quiet")
    out = oup(env, "deadletters", "--replay").stdout
    assert "replayed 3 of 3" in out
    assert [r[2] for r in store.observations("aq-new-station-no2")] == [30.0, 31.0, 32.0]
    assert "0 dead letters shown" in oup(env, "deadletters").stdout


def test_a_burst_of_stop_signals_still_stops_the_ingester(imported, broker):
    """An impatient Ctrl-C, or `make demo`'s terminal and its clean-up both signalling:
    many SIGTERM/SIGINT at once. The ingester still stops within seconds (a signal handler
    that takes a lock can deadlock on a second signal)."""
    import signal

    ing = IngesterProcess(_env(imported, broker), "signal-test").start()
    for i in range(200):
        ing.proc.send_signal(signal.SIGTERM if i % 2 else signal.SIGINT)
    try:
        ing.proc.wait(30)
    except subprocess.TimeoutExpired:
        raise AssertionError("the ingester hangs after a burst of stop signals") from None
    assert ing.proc.returncode == 0
