"""SensorThings over MQTT, both stores, with a real Mosquitto, a real `oup ingest` and the
server's relay: a subscriber to ``v1.1/Datastreams(id)/Observations`` hears of each new
observation once, whether it came over HTTP or from a sensor (which sends below
``ingest/``); nobody but the relay may publish on the SensorThings topics."""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone

import paho.mqtt.client as mqtt
import pytest
import requests

from conftest import IngesterProcess, serving, store_url, wait_for
from oup.store import open_observation_store
from test_writes import _token

pytestmark = pytest.mark.slow
SENSOR = "aq-statenweg-no2"
TOPIC = f"v1.1/Datastreams('{SENSOR}')/Observations"


@pytest.fixture
def live(imported, broker):
    env = dict(imported, OUP_MQTT_URL=broker.url, OUP_EVENTS_MQTT_URL=broker.relay_url)
    log = open_observation_store(store_url(env))
    # The relay resumes where an earlier server's relay left off: what the tests before
    # this one wrote since (100,000 readings, some of them) is not this test's to wait for.
    log.set_event_state("relay:mqtt", str(log.last_event()))
    with serving(env) as url:
        yield env, url


class Client:
    """A paho client on the test broker: what it hears on ``v1.1/#``, what PUBACKs said."""

    def __init__(self, port: int, name: str):
        self.heard: list[tuple[str, dict]] = []
        self.acks: dict[int, int] = {}
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name,
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *a: c.subscribe("v1.1/#", qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = lambda c, u, m: self.heard.append(
            (m.topic, json.loads(m.payload)))
        self.client.on_publish = lambda c, u, mid, rc, p: self.acks.__setitem__(mid, rc.value)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, topic: str, doc: dict) -> int:
        """The PUBACK reason code (0: taken; 135: not authorised)."""
        mid = self.client.publish(topic, json.dumps(doc), qos=1).mid
        wait_for(lambda: mid in self.acks, 10, "a PUBACK")
        return self.acks[mid]

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


def test_each_new_observation_is_told_once_however_it_came(live, broker, credentials):
    env, url = live
    year = 2037 if env["OUP_TEST_STORE"] == "gpkg" else 2038
    t_http = datetime(year, 1, 1, 8, tzinfo=timezone.utc)
    t_mqtt = datetime(year, 1, 1, 9, tzinfo=timezone.utc)
    ing = IngesterProcess(env, f"sta-mqtt-{env['OUP_TEST_STORE']}").start()
    sub = Client(broker.port, f"sta-sub-{env['OUP_TEST_STORE']}")
    sensor = Client(broker.port, f"sta-sensor-{env['OUP_TEST_STORE']}")
    try:
        assert sub.subscribed.wait(10)
        writer = {"Authorization": "Bearer " + _token(credentials, "w-3", ["sensor-writer"])}
        r = requests.post(f"{url}/sta/v1.1/Datastreams('{SENSOR}')/Observations", json={
            "phenomenonTime": t_http.strftime("%Y-%m-%dT%H:%M:%SZ"), "result": 17.0},
            headers=writer, timeout=30)
        assert r.status_code == 201, r.text
        by_http = r.json()["@iot.id"]
        # a sensor sends its reading below ingest/; the SensorThings topic is not its to use
        assert sensor.publish(f"ingest/{TOPIC}", {
            "phenomenonTime": t_mqtt.strftime("%Y-%m-%dT%H:%M:%SZ"), "result": 18.0}) == 0
        assert sensor.publish(TOPIC, {"phenomenonTime": "2039-01-01T00:00:00Z",
                                      "result": 99.0}) == 135
        mine = lambda: [d for topic, d in sub.heard if topic == TOPIC  # noqa: E731
                        and d["phenomenonTime"].startswith(str(year))]
        wait_for(lambda: len(mine()) >= 2, 60, "both observations told")
        found = requests.get(f"{url}/sta/v1.1/Datastreams('{SENSOR}')/Observations", params={
            "$filter": f"phenomenonTime ge {year}-01-01T00:00:00Z and "
                       f"phenomenonTime lt {year + 1}-01-01T00:00:00Z",
            "$orderby": "phenomenonTime"}, timeout=30).json()["value"]
        assert [(o["@iot.id"], o["result"]) for o in found][0] == (by_http, 17.0)
        time.sleep(1.0)  # time for a repeat to show, if there were one
        told = sorted((d["@iot.id"], d["result"], d["@iot.selfLink"]) for d in mine())
        assert told == sorted((o["@iot.id"], o["result"], o["@iot.selfLink"]) for o in found)
        # the refused publish reached nobody and was never stored
        assert not [d for _, d in sub.heard if d.get("result") == 99.0]
        assert not requests.get(f"{url}/sta/v1.1/Observations", params={
            "$filter": "phenomenonTime eq 2039-01-01T00:00:00Z"}, timeout=30).json()["value"]
    finally:
        sub.stop()
        sensor.stop()
        ing.stop()
