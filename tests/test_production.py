"""The production shape: docker-compose.yml checked against the Compose Specification, and
its topology run natively (PostgreSQL + PostGIS and Mosquitto from Debian packages, API
workers and two ingesters on one shared subscription), as the suite's PostGIS half does."""
from __future__ import annotations

import json
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest
import requests
import yaml

from conftest import (IngesterProcess, flat_messages, oup, publish_in_background, store_url,
                      wait_for)
from oup.store import open_observation_store
from oup.sensors.observations import us_of

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
WHEEL = ROOT / "tests" / ".cache" / "docker_compose-1.29.2-py2.py3-none-any.whl"


@pytest.mark.slow  # needs the Compose Specification schema that `make services` fetches
def test_compose_file_follows_the_compose_specification():
    import copy

    with zipfile.ZipFile(WHEEL) as z:  # `make test` fetches it from PyPI
        schema = json.loads(z.read("compose/config/compose_spec.json"))
    validator = jsonschema.Draft7Validator(schema)
    assert not [e.message for e in validator.iter_errors(COMPOSE)]
    broken = copy.deepcopy(COMPOSE)  # the check does bite
    broken["services"]["api"]["healthcheck"]["intervall"] = "10s"
    broken["services"]["ingest-1"]["depends_on"]["setup"]["condition"] = "service_done"
    assert len(list(validator.iter_errors(broken))) >= 2


def test_compose_topology_is_the_production_shape():
    s = COMPOSE["services"]
    assert {"postgis", "mosquitto", "setup", "api", "ingest-1", "ingest-2"} <= s.keys()
    for name in ("postgis", "mosquitto", "api"):
        assert s[name]["healthcheck"]["test"], name
    ingesters = [s["ingest-1"]["environment"], s["ingest-2"]["environment"]]
    assert ingesters[0]["OUP_INGEST_GROUP"] == ingesters[1]["OUP_INGEST_GROUP"]
    assert ingesters[0]["OUP_INGEST_CLIENT_ID"] != ingesters[1]["OUP_INGEST_CLIENT_ID"]
    for env in ingesters + [s["api"]["environment"]]:
        assert env["OUP_DATABASE_URL"].startswith("postgresql://")
        assert env["OUP_MQTT_URL"].startswith("mqtt://mosquitto")
    assert s["setup"]["depends_on"]["postgis"]["condition"] == "service_healthy"
    assert s["api"]["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    assert any(v.startswith("./config/mosquitto.conf:") for v in s["mosquitto"]["volumes"])
    # change events: one relay, however many API servers; the broker's ACL and WebSocket
    assert any(v.startswith("./config/mosquitto.acl:") for v in s["mosquitto"]["volumes"])
    assert "9001:9001" in s["mosquitto"]["ports"]
    assert s["relay"]["command"] == ["oup", "events", "relay"]
    assert s["relay"]["environment"]["OUP_EVENTS_MQTT_URL"].startswith("mqtt://oup-relay:")
    assert s["api"]["environment"]["OUP_EVENTS_RELAY"] == "false"
    assert {"pg-data", "mqtt-data", "oup-data"} <= COMPOSE["volumes"].keys()
    dockerfile = (ROOT / "Dockerfile").read_text()
    for folder in ("oup", "tilers", "iot_ingest", "config", "collections", "docs"):
        assert f"COPY {folder} {folder}" in dockerfile


def _compose_env(service: str, env: dict) -> dict:
    """The service's environment from docker-compose.yml, pointed at the native services."""
    mine = dict(COMPOSE["services"][service]["environment"])
    mine.pop("OUP_DATABASE_URL")
    mine.pop("OUP_MQTT_URL")
    mine.pop("OUP_DATA_DIR")
    return dict(env, **mine)


def test_two_ingesters_split_one_shared_subscription_one_killed(imported, broker):
    """40,000 messages over ingest-1 and ingest-2 (their compose settings, one group):
    both take a share; ingest-1 is SIGKILLed halfway while ingest-2 carries on storing;
    ingest-1 comes back (compose restarts it) and takes what the broker kept for it.
    0 lost, 0 stored twice."""
    base = dict(imported, OUP_MQTT_URL=broker.url)
    group = f"split-{imported['OUP_TEST_STORE']}"  # one group per store half of the suite
    one = IngesterProcess(_compose_env("ingest-1", base),
                          "split-1", group=group).start()
    two = IngesterProcess(_compose_env("ingest-2", base),
                          "split-2", group=group).start()
    t0, t1 = datetime(2033, 1, 1, tzinfo=timezone.utc), datetime(2033, 2, 1, tzinfo=timezone.utc)
    messages = flat_messages(40_000, t0)
    store = open_observation_store(store_url(imported))

    def stored() -> int:
        return store.execute("SELECT COUNT(*) FROM oup_observations WHERE phenomenon_time "
                             ">= ? AND phenomenon_time < ?", (us_of(t0), us_of(t1)))[0][0]

    pub, done, errors = publish_in_background(
        broker.url, messages, f"split-pub-{imported['OUP_TEST_STORE']}")
    wait_for(lambda: stored() >= 20_000, 240, "20,000 rows")
    one.kill()
    at_kill = stored()
    assert done.wait(300) and not errors, errors
    # ingest-2 carries on alone: its share keeps arriving and being stored
    wait_for(lambda: stored() >= at_kill + 4_000, 120, "ingest-2 storing on its own")
    one.start()  # back: the broker delivers what it queued for ingest-1's session
    wait_for(lambda: stored() >= 40_000, 240, "all 40,000 rows")
    one.stop()
    two.stop()
    rows = store.execute("SELECT sensor_id, phenomenon_time FROM oup_observations WHERE "
                         "phenomenon_time >= ? AND phenomenon_time < ?", (us_of(t0), us_of(t1)))
    assert len(rows) == 40_000 == len({tuple(r) for r in rows})
    c = store.counters()
    shares = [c[one.client_id]["stored"], c[two.client_id]["stored"]]
    assert sum(shares) == 40_000 and min(shares) > 4_000  # both did their part


def test_a_retired_ingester_hands_over_its_share(imported, broker):
    """Scaling a group down: ingest-1 is gone (SIGKILL) while its share keeps queueing in
    its session; `oup ingest --retire` under its id stores that share and ends the
    session, after which ingest-2 alone gets everything. 0 lost, 0 stored twice."""
    base = dict(imported, OUP_MQTT_URL=broker.url)
    one = IngesterProcess(base, "retire-1", group="retire").start()
    two = IngesterProcess(base, "retire-2", group="retire").start()
    t0, t1 = datetime(2033, 6, 1, tzinfo=timezone.utc), datetime(2033, 7, 1, tzinfo=timezone.utc)
    messages = flat_messages(22_000, t0)
    first, later = messages[:20_000], messages[20_000:]
    store = open_observation_store(store_url(imported))

    def rows() -> list[tuple]:
        return [tuple(r) for r in store.execute(
            "SELECT sensor_id, phenomenon_time FROM oup_observations WHERE phenomenon_time "
            ">= ? AND phenomenon_time < ?", (us_of(t0), us_of(t1)))]

    pub, done, errors = publish_in_background(
        broker.url, first, f"retire-pub-{imported['OUP_TEST_STORE']}", rate=4_000)
    wait_for(lambda: len(rows()) >= 4_000, 120, "4,000 rows")
    one.kill()  # gone for good; the broker keeps handing it its share
    assert done.wait(300) and not errors, errors

    def settled():
        n = len(rows())
        time.sleep(1.5)
        return len(rows()) == n and n
    assert wait_for(settled, 60, "ingest-2 done with its share") < 20_000  # ingest-1's waits
    retired = oup(one.env, "ingest", "--retire")
    assert "retired, session ended" in retired.stdout, retired.stdout + retired.stderr
    expected = sorted(key for _, _, key in first)
    wait_for(lambda: sorted(rows()) == expected, 60, "all 20,000 rows")
    before = store.counters()[two.client_id]["stored"]
    pub, done, errors = publish_in_background(
        broker.url, later, f"retire-pub-2-{imported['OUP_TEST_STORE']}")
    assert done.wait(120) and not errors, errors
    wait_for(lambda: store.counters()[two.client_id]["stored"] == before + 2_000, 60,
             "ingest-2 storing every later message")
    two.stop()
    assert len(rows()) == 22_000 == len(set(rows()))
    assert store.counters()[one.client_id]["stored"] + store.counters()[two.client_id][
        "stored"] == 22_000


def test_two_api_workers_answer_consistently_while_ingest_runs(imported, broker, server):
    """While readings stream in, sequential reads (whichever worker answers) never see the
    count of observations go back, and at rest every worker gives the store's count."""
    base = dict(imported, OUP_MQTT_URL=broker.url)
    ing = IngesterProcess(base, "consistency").start()
    messages = flat_messages(20_000, datetime(2034, 1, 1, tzinfo=timezone.utc))
    pub, done, errors = publish_in_background(
        broker.url, messages, f"consistency-pub-{imported['OUP_TEST_STORE']}")
    session = requests.Session()
    url = f"{server}/collections/observations/items"
    seen, workers, last = [], set(), -1
    deadline = time.monotonic() + 120
    while not done.is_set() and time.monotonic() < deadline:
        r = session.get(url, params={"limit": 1}, timeout=30)
        assert r.status_code == 200, r.text
        n = r.json()["numberMatched"]
        assert n >= last, (n, last)  # committed batches only ever add rows
        last = n
        seen.append(n)
        workers.add(session.get(f"{server}/health", timeout=10).json()["worker"])
    assert not errors, errors
    assert len(set(seen)) > 2  # it really read while rows arrived
    store = open_observation_store(store_url(imported))
    wait_for(lambda: store.counters().get(ing.client_id, {}).get("received", 0) >= 20_000,
             120, "20,000 messages")
    ing.stop()
    total = store.count()
    answers = set()
    for _ in range(20):  # both workers, at rest: the same answer, the store's
        answers.add(requests.get(url, params={"limit": 1}, timeout=30).json()["numberMatched"])
        workers.add(requests.get(f"{server}/health", timeout=10).json()["worker"])
    assert answers == {total}
    assert len(workers) == 2
