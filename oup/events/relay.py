"""``oup events relay``: the events of public collections, from the event log to MQTT.

One relay per broker reads the log in order and publishes each public event, QoS 1, to
``oup/events/collections/{id}/{kind}``, and each new observation it tells of as a
SensorThings Observation to ``v1.1/Datastreams('{sensor}')/Observations`` (the broker's
ACL lets only the relay publish on either; sensors send readings below ``ingest/``). It moves its cursor (kept in the store) only after
the broker acknowledged everything before it, so a relay that stops, or a broker that
restarts, sends again from the cursor: at least once, in order, and a subscriber can
tell a repeat by the event's id. Non-public collections are never published: their
events are read and passed over. Which collections are public is the catalogue's say,
read again whenever the log tells of a catalogue change.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import orjson

from oup.events import CATALOGUE_TYPES, ChangeEvent
from oup.sensors.observations import sta_topic

LOG = logging.getLogger(__name__)
CURSOR = "relay:mqtt"  # the state name of the last event the broker acknowledged
BATCH = 500


class RelayError(RuntimeError):
    """The relay cannot reach its broker."""


class EventRelay:
    def __init__(self, client, log, load_catalogue: Callable, base_url: str,
                 poll: float = 0.05, ack_timeout: float = 30.0):
        """``client``: a paho client (credentials set, not connected); ``log``: the store's
        event log; ``load_catalogue()``: the current catalogue."""
        self.client, self.log, self.load_catalogue = client, log, load_catalogue
        self.base_url, self.poll, self.ack_timeout = base_url, poll, ack_timeout
        self._stop = threading.Event()
        self._connected = threading.Event()
        self.published = self.passed_over = 0
        client.on_connect = lambda c, u, f, rc, p=None: (
            self._connected.set() if not getattr(rc, "is_failure", False) else None)
        client.on_disconnect = lambda *a: self._connected.clear()
        self._acked: set[int] = set()  # mids the broker acknowledged (PUBACK)
        self._puback = threading.Condition()
        client.on_publish = self._on_publish
        client.max_inflight_messages_set(1000)
        self._read_catalogue()

    def _on_publish(self, client, userdata, mid, reason_code=None, properties=None):
        with self._puback:
            self._acked.add(mid)
            self._puback.notify()

    def _read_catalogue(self) -> None:
        cat = self.load_catalogue()
        self.all = set(cat.collections)
        self.public = cat.public

    def stop(self) -> None:
        """Safe in a signal handler."""
        self._stop.set()

    def run(self, host: str, port: int, connect_args: dict) -> None:
        self.client.reconnect_delay_set(1, 5)
        self.client.connect_async(host, port, keepalive=30, **connect_args)
        self.client.loop_start()
        try:
            if not self._connected.wait(15):
                raise RelayError(f"no connection to the broker at {host}:{port} (or its "
                                 "credentials were refused)")
            saved = self.log.event_state(CURSOR)
            # first start: from now on (the log's past was never promised to MQTT)
            cursor = int(saved) if saved is not None else self.log.last_event()
            self.log.set_event_state(CURSOR, str(cursor))  # where it starts, for all to see
            while not self._stop.is_set():
                events = self.log.events_after(cursor, BATCH)
                if not events:
                    self._stop.wait(self.poll)
                    continue
                if self._publish(events):
                    cursor = events[-1].seq
                    self.log.set_event_state(CURSOR, str(cursor))
        finally:
            self.client.disconnect()
            self.client.loop_stop()

    def _publish(self, events: list[ChangeEvent]) -> bool:
        """Publish a batch and wait for every acknowledgement; False (the batch is sent
        again) if the broker went away first."""
        sent = []
        for e in events:
            if e.type in CATALOGUE_TYPES:
                self._read_catalogue()  # before deciding on this event and those after
            if not e.is_public(self.public, self.all):
                self.passed_over += 1
                continue
            # queued by paho even while it is disconnected (QoS 1), sent on reconnection
            sent.append(self.client.publish(e.topic(), orjson.dumps(
                e.cloudevent(self.base_url)), qos=1).mid)
            for obs in e.data.get("new", ()):
                link = f"{self.base_url}/sta/v1.1/Observations({obs['@iot.id']})"
                sent.append(self.client.publish(sta_topic(e.subject), orjson.dumps(
                    {**obs, "@iot.selfLink": link}), qos=1).mid)
        deadline = time.monotonic() + self.ack_timeout
        with self._puback:
            while waiting := [m for m in sent if m not in self._acked]:
                left = deadline - time.monotonic()
                if self._stop.is_set() or left <= 0:
                    LOG.warning("the broker acknowledged %d of %d events; sending the batch "
                                "again", len(sent) - len(waiting), len(sent))
                    return False
                self._puback.wait(min(left, 0.5))
            self._acked.difference_update(sent)
        self.published += len(sent)
        return True
