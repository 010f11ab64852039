"""``oup simulate``: Rotterdam's sensors streaming, for the demo and for load.

Every sensor of the catalogue's stream collections publishes in the payload format its
feature states (``format``: flat JSON, SensorThings, SenML or a The Things Stack uplink),
with values that look like the city: NO2 peaking in the rush hours, particulate matter,
traffic counts per five minutes, street noise, and the tide on the Nieuwe Maas. A chosen
share of the messages is malformed or repeated, so the dead letters and the duplicate
counter have something to show.
"""
from __future__ import annotations

import heapq
import itertools
import json
import math
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import paho.mqtt.client as mqtt

from oup.sensors.observations import sta_ingest_topic

from .mqtt import Broker

TIDE_PERIOD = 12.42 * 3600  # seconds: the M2 tide


class PublishError(RuntimeError):
    """The broker did not take a message (after waiting and retrying)."""


NO_MATCHING_SUBSCRIBERS = 0x10  # MQTT 5 PUBACK reason: taken, matched nobody, dropped


class Publisher:
    """QoS 1 publishing that knows what the broker took, as a store-and-forward gateway.

    * paho's ``publish`` does not raise when its queue is full (it returns
      MQTT_ERR_QUEUE_SIZE): the return code is checked and the call waits and retries.
    * A message is kept until its PUBACK. An MQTT 5 broker acknowledges a message that
      matched no subscription with reason 0x10 and drops it. That happens after a Mosquitto
      2.0 restart until the ingesters have subscribed again: Mosquitto 2.0 restores plain
      subscriptions from its persistence file, but not shared ones (``$share/...``). Such a
      message is sent again after ``retry`` seconds, doubling up to 30 s while nobody
      subscribes; at most ``max_unrouted`` wait, then ``publish`` blocks (is ``oup ingest``
      running?).
    * ``flush`` waits for every PUBACK that routed its message.
    """

    def __init__(self, broker: Broker, client_id: str, max_inflight: int = 1000,
                 retry: float = 1.0, max_unrouted: int = 10_000):
        self.client = broker.client(client_id)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(10 * max_inflight)
        self.client.reconnect_delay_set(1, 5)
        self.retry, self.max_unrouted = retry, max_unrouted
        # mid -> (topic, payload, its next retry delay) awaiting its PUBACK; a PUBACK can
        # beat publish() returning its mid
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[str, bytes, float]] = {}
        self._early: dict[int, int] = {}
        self._unrouted: list[tuple[float, int, str, bytes, float]] = []  # heap by due time
        self._seq = itertools.count()
        self._connected = threading.Event()
        # publish() also counts what paho only queued while the broker was away; these say
        # what the broker itself has seen: connections made and PUBACKs of any reason
        self.connections = 0
        self.acknowledged = 0
        self.sent = 0
        self.unrouted = 0  # 0x10 answers, each followed by a resend
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self._connected.clear()
        self.client.on_publish = self._on_publish
        self.client.connect(broker.host, broker.port, keepalive=30,
                            **broker.connect_args(3600))
        self.client.loop_start()
        if not self._connected.wait(10):
            raise PublishError(f"no connection to {broker.host}:{broker.port}")

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if not reason_code.is_failure:
            self.connections += 1
            self._connected.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self._lock:
            self.acknowledged += 1
            reason = getattr(reason_code, "value", reason_code)
            message = self._pending.pop(mid, None)
            if message is None:
                self._early[mid] = reason
            else:
                self._settle(message, reason)

    def _settle(self, message: tuple[str, bytes, float], reason: int) -> None:
        """Called under the lock with a message's PUBACK reason."""
        if reason == NO_MATCHING_SUBSCRIBERS:
            self.unrouted += 1
            topic, payload, delay = message
            heapq.heappush(self._unrouted, (time.monotonic() + delay, next(self._seq), topic,
                                            payload, min(2 * delay, 30.0)))

    def publish(self, topic: str, payload: bytes, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        self._resend_due()
        while self.waiting_for_subscriber() >= self.max_unrouted:
            if time.monotonic() > deadline:
                raise PublishError(f"{self.waiting_for_subscriber()} messages found no "
                                   f"subscriber for {timeout:.0f} s: is `oup ingest` running?")
            time.sleep(0.05)
            self._resend_due()
        self._send(topic, payload, self.retry, deadline)
        self.sent += 1

    def _send(self, topic: str, payload: bytes, delay: float, deadline: float) -> None:
        while True:
            info = self.client.publish(topic, payload, qos=1)
            # NO_CONN at QoS 1: paho keeps the message and sends it after reconnecting
            if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                break
            if info.rc != mqtt.MQTT_ERR_QUEUE_SIZE or time.monotonic() > deadline:
                raise PublishError(f"publish on {topic} failed: {mqtt.error_string(info.rc)}")
            time.sleep(0.01)  # the queue is full: wait, never drop
        with self._lock:
            if info.mid in self._early:
                self._settle((topic, payload, delay), self._early.pop(info.mid))
            else:
                self._pending[info.mid] = (topic, payload, delay)

    def _resend_due(self, timeout: float = 60.0) -> None:
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._unrouted or self._unrouted[0][0] > now:
                    return
                _, _, topic, payload, delay = heapq.heappop(self._unrouted)
            self._send(topic, payload, delay, now + timeout)

    def waiting_for_subscriber(self) -> int:
        with self._lock:
            return len(self._unrouted)

    def unacknowledged(self) -> int:
        """Messages not yet taken and routed by the broker."""
        with self._lock:
            return len(self._pending) + len(self._unrouted)

    def flush(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.unacknowledged():
            if time.monotonic() > deadline:
                unrouted = self.waiting_for_subscriber()
                raise PublishError(f"the broker did not acknowledge {self.unacknowledged()} "
                                   f"messages in {timeout:.0f} s" + (
                                       f" ({unrouted} found no subscriber: is `oup ingest` "
                                       "running?)" if unrouted else ""))
            self._resend_due()
            time.sleep(0.02)

    def close(self, timeout: float = 120.0) -> None:
        try:
            self.flush(timeout)
        finally:
            self.client.disconnect()
            try:
                self.client.loop_stop()
            except AttributeError:
                # paho's loop_stop reads its network thread twice; after disconnect() the
                # thread may end and clear it in between (None.join): it has stopped,
                # which is all this asked (seen once in 30,000 messages under load)
                pass


@dataclass(frozen=True)
class SimSensor:
    id: str
    observed_property: str
    format: str


def value(prop: str, t: datetime, rng: random.Random) -> float:
    """A plausible reading of ``prop`` at ``t`` (UTC; Rotterdam is UTC+1 in winter)."""
    hour = (t.hour + 1 + t.minute / 60) % 24
    rush = math.exp(-((hour - 8.5) ** 2) / 3) + math.exp(-((hour - 17.5) ** 2) / 4)
    if prop == "NO2":
        return round(max(0.0, 18 + 30 * rush + rng.gauss(0, 4)), 1)
    if prop == "PM10":
        return round(max(0.0, 17 + 8 * rush + rng.gauss(0, 3)), 1)
    if prop == "PM25":
        return round(max(0.0, 9 + 5 * rush + rng.gauss(0, 2)), 1)
    if prop == "traffic_count":
        day = math.exp(-((hour - 13) ** 2) / 40)
        return float(max(0, round(40 + 250 * rush + 120 * day + rng.gauss(0, 15))))
    if prop == "noise_level":
        return round(48 + 14 * rush + 6 * (7 < hour < 23) + rng.gauss(0, 2), 1)
    if prop == "water_level":  # cm above NAP: the tide at Rotterdam is about 1.7 m
        phase = 2 * math.pi * (t.timestamp() % TIDE_PERIOD) / TIDE_PERIOD
        return round(30 + 85 * math.sin(phase) + rng.gauss(0, 2), 1)
    return round(rng.uniform(0, 10), 2)


def _rfc3339(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message(sensor: SimSensor, t: datetime, v: float, f_cnt: int,
            session: str = "sim") -> tuple[str, bytes]:
    """The topic and payload a real device of this kind would send."""
    if sensor.format == "sensorthings":
        return (sta_ingest_topic(sensor.id),
                json.dumps({"phenomenonTime": _rfc3339(t), "result": v}).encode())
    if sensor.format == "senml":
        base, _, name = sensor.id.rpartition(":")
        return (f"senml/{base.rsplit(':', 1)[-1]}",
                json.dumps([{"bn": base + ":", "bt": round(t.timestamp(), 3), "n": name,
                             "v": v, "u": "dB"}]).encode())
    if sensor.format == "tts":
        eui, _, field = sensor.id.partition(":")
        device = f"maas-{eui[-4:].lower()}"
        return (f"v3/oup-rotterdam@ttn/devices/{device}/up", json.dumps({
            "end_device_ids": {"device_id": device, "dev_eui": eui},
            "received_at": _rfc3339(t),
            "uplink_message": {"f_cnt": f_cnt, "f_port": 2, "received_at": _rfc3339(t),
                               "session_key_id": session,
                               "decoded_payload": {field: v}}}).encode())
    return (f"oup/sensors/{sensor.id}/observations",
            json.dumps({"phenomenonTime": _rfc3339(t), "result": v}).encode())


MALFORMED = [
    lambda rng: ("oup/sensors/aq-statenweg-no2/observations", b'{"phenomenonTime": "2026-'),
    lambda rng: ("oup/sensors/aq-statenweg-no2/observations",
                 b'{"phenomenonTime": "2026-11-28T10:00:00Z", "result": "high"}'),
    lambda rng: ("oup/sensors/no-such-sensor/observations",
                 json.dumps({"phenomenonTime": _rfc3339(datetime.now(timezone.utc)),
                             "result": 1.0}).encode()),
    lambda rng: ("oup/sensors/aq-pleinweg-no2/observations",
                 json.dumps({"phenomenonTime": _rfc3339(datetime.now(timezone.utc)),
                             "result": 1e12}).encode()),
    lambda rng: ("oup/sensors/aq-pleinweg-no2/observations", b"[" * 5000 + b"]" * 5000),
    lambda rng: ("oup/sensors/aq-pleinweg-no2/observations", b"\xff" * rng.randint(1, 300)),
    lambda rng: ("oup/sensors/aq-pleinweg-no2/observations", b"x" * 70_000),
]


def simulate(broker: Broker, sensors: list[SimSensor], rate: float, count: int | None = None,
             duration: float | None = None, bad: float = 0.01, duplicates: float = 0.01,
             start: datetime | None = None, step: float = 60.0, seed: int = 1,
             stop: threading.Event | None = None, progress=None) -> dict:
    """Publish until ``count`` messages or ``duration`` seconds (or ``stop``).

    Live (no ``start``): readings are stamped now. With ``start``: a simulated clock from
    there, each sensor reading every ``step`` seconds (fast back-fill of history).
    """
    if not sensors:
        raise ValueError("no sensors to simulate: import the sensors collection first")
    rng = random.Random(seed)
    pub = Publisher(broker, f"oup-simulate-{seed}")
    stop = stop or threading.Event()
    sent = {"readings": 0, "malformed": 0, "duplicates": 0}
    f_cnt: dict[str, int] = {}
    session = f"{rng.getrandbits(64):016x}{time.time_ns():x}"  # a LoRaWAN session per run
    t0 = time.monotonic()
    n, last = 0, None
    try:
        while not stop.is_set():
            if count is not None and n >= count:
                break
            if duration is not None and time.monotonic() - t0 >= duration:
                break
            if rate > 0:  # pace the stream
                ahead = n / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            r = rng.random()
            if r < bad:
                topic, payload = rng.choice(MALFORMED)(rng)
                sent["malformed"] += 1
            elif r < bad + duplicates and last is not None:
                topic, payload = last
                sent["duplicates"] += 1
            else:
                i = sent["readings"]
                sensor = sensors[i % len(sensors)]
                when = (start + timedelta(seconds=step * (i // len(sensors))) if start
                        else datetime.now(timezone.utc))
                f_cnt[sensor.id] = f_cnt.get(sensor.id, 0) + 1
                topic, payload = message(sensor, when, value(sensor.observed_property, when, rng),
                                         f_cnt[sensor.id], session)
                last = (topic, payload)
                sent["readings"] += 1
            pub.publish(topic, payload)
            n += 1
            if progress:
                progress(1)
    finally:
        pub.close()
    sent["messages"] = n
    return sent
