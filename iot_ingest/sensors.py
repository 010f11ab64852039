"""The sensors the catalogue declares: who may send, what they measure, what is plausible.

A message becomes observations only if every observation names a known sensor and its
value lies in the declared range of the sensor's observed property; otherwise the whole
message is a dead letter with the reason (replayable once the catalogue knows better).
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

from oup.catalog import Catalog, ObservedProperty
from oup.store import FeatureStore, Query, StoreError

from oup.sensors.observations import DeadLetter, Observation, SensorHome

from .payloads import PayloadError, decode, single

RELOAD_INTERVAL = 5.0  # seconds between re-reads when an unknown sensor appears


@dataclass(frozen=True)
class Sensor:
    id: str
    collection: str
    id_field: str
    observed_property: str
    spec: ObservedProperty


def topic_matches(filter_: str, topic: str) -> bool:
    """MQTT topic filter matching ('+' one level, '#' the rest)."""
    f, t = filter_.split("/"), topic.split("/")
    for i, level in enumerate(f):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(f) == len(t)


class SensorRegistry:
    def __init__(self, catalog: Catalog, store: FeatureStore):
        self.catalog, self.store = catalog, store
        self.streams = [c for c in catalog if c.stream]
        self.topics = [(t.topic, t.format) for c in self.streams for t in c.stream.topics]
        self._lock = threading.Lock()
        self._sensors: dict[str, Sensor] = {}
        self._loaded_at = 0.0
        self.reload()

    def reload(self) -> None:
        sensors = {}
        for coll in self.streams:
            field = coll.stream.property_field
            try:
                page = self.store.query(coll.id, Query(limit=10_000_000, skip_geometry=True,
                                                       select=[coll.id_field, field],
                                                       count=False))
            except StoreError:
                continue  # not imported yet: its sensors are unknown until it is
            for f in page.features:
                prop = f["properties"][field]
                if prop in coll.stream.properties:
                    sid = str(f["properties"][coll.id_field])
                    sensors[sid] = Sensor(sid, coll.id, coll.id_field, prop,
                                          coll.stream.properties[prop])
        with self._lock:
            self._sensors, self._loaded_at = sensors, time.monotonic()

    def __len__(self) -> int:
        return len(self._sensors)

    def get(self, sensor_id: str) -> Sensor | None:
        s = self._sensors.get(sensor_id)
        if s is None and time.monotonic() - self._loaded_at > RELOAD_INTERVAL:
            self.reload()  # a sensor added to the catalogue (and imported) since we started
            s = self._sensors.get(sensor_id)
        return s

    def format_for(self, topic: str) -> str | None:
        return next((fmt for f, fmt in self.topics if topic_matches(f, topic)), None)

    def check(self, observations: list[Observation]) -> str | None:
        """Why these observations cannot be stored, or None."""
        for o in observations:
            s = self.get(o.sensor_id)
            if s is None:
                return f"unknown sensor {o.sensor_id[:80]!r} (not in the catalogue)"
            if not s.spec.min <= o.result <= s.spec.max:
                return (f"{o.sensor_id[:80]}: {s.observed_property} {o.result:g} is outside "
                        f"[{s.spec.min:g}, {s.spec.max:g}] {s.spec.unit}")
        return None

    def decode(self, topic: str, payload: bytes) -> list[Observation] | DeadLetter:
        """A message as observations of known sensors within their range, or as a dead
        letter that says why not (the ingester and the dead-letter replay alike)."""
        try:
            obs = decode(topic, payload, self.format_for(topic))
        except PayloadError as exc:
            return DeadLetter(topic, payload, str(exc))
        why = self.check(obs)
        return obs if why is None else DeadLetter(topic, payload, why)

    def decode_reading(self, topic: str, sensor_id: str, doc) -> list[Observation] | DeadLetter:
        """A reading of ``sensor_id`` parsed already (from an HTTP body), checked as
        ``decode`` checks the message on ``topic`` that would carry it; a dead letter
        keeps it as that message's payload."""
        try:
            obs = [single(doc, sensor_id)]
        except PayloadError as exc:
            return DeadLetter(topic, json.dumps(doc).encode(), str(exc))
        why = self.check(obs)
        return obs if why is None else DeadLetter(topic, json.dumps(doc).encode(), why)

    def tables(self, sensor_ids) -> dict[str, SensorHome]:
        """Where each sensor's latest value goes, and what its change events carry."""
        out = {}
        for sid in sensor_ids:
            s = self._sensors.get(sid)
            if s is not None:
                field = self.catalog.collections[s.collection].stream.property_field
                out[sid] = SensorHome(s.collection, s.id_field, {field: s.observed_property})
        return out
