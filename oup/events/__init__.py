"""Change events: what happened to published data, told after the commit that did it.

Three things change published data: an ingest batch (a sensor's observations stored or
corrected), ``oup import`` (a collection re-imported, a new version) and ``oup catalog
reload`` (collections added, removed, or given another access class). Each is a
``ChangeEvent`` in the store's event log, numbered by one sequence that grows in commit
order: a subscriber that saw event ``n`` asks for what came after ``n`` and misses
nothing, for as long as the log keeps events (``OUP_EVENTS_RETENTION_HOURS``).

On the wire an event is a CloudEvents 1.0 JSON event (structured mode), as the OGC API -
Publish-Subscribe draft asks: ``id`` is the sequence number, ``source`` the collection's
URL, ``subject`` the item (a sensor) or the collection.

A write into a scenario is told too, as a ``oup.scenario.changed`` event carrying the
scenario's id: the scenario is private to its owner and the roles it is shared with, so
such an event is never public (no MQTT) and goes out on the scenario's own stream only
(``/scenarios/{id}/events``), never on ``/events`` or a collection's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from oup.sensors.observations import iso_us, us_of

# CloudEvents types (the spec asks for a prefix naming the producer)
OBSERVATIONS_STORED = "oup.observations.stored"
OBSERVATIONS_CORRECTED = "oup.observations.corrected"
COLLECTION_IMPORTED = "oup.collection.imported"
COLLECTION_ADDED = "oup.collection.added"
COLLECTION_REMOVED = "oup.collection.removed"
COLLECTION_CHANGED = "oup.collection.changed"  # its access class or title changed
CATALOGUE_TYPES = (COLLECTION_ADDED, COLLECTION_REMOVED, COLLECTION_CHANGED)
FEATURE_CREATED = "oup.feature.created"
FEATURE_REPLACED = "oup.feature.replaced"
FEATURE_UPDATED = "oup.feature.updated"
FEATURE_DELETED = "oup.feature.deleted"
TILES3D_UPDATED = "oup.tiles3d.updated"
SCENARIO_CHANGED = "oup.scenario.changed"
FEATURE_TYPES = {"created": FEATURE_CREATED, "replaced": FEATURE_REPLACED,
                 "updated": FEATURE_UPDATED, "deleted": FEATURE_DELETED}
TYPES = {
    OBSERVATIONS_STORED: "a sensor's new observations were stored (one event per sensor "
                         "per ingest batch); data: the sensor's latest value",
    OBSERVATIONS_CORRECTED: "a sensor's observations were corrected (same time, newer "
                            "result time) and none were new",
    COLLECTION_IMPORTED: "the collection was imported again: a new version, with counts",
    COLLECTION_ADDED: "`oup catalog reload` published a new collection",
    COLLECTION_REMOVED: "`oup catalog reload` took the collection away",
    COLLECTION_CHANGED: "`oup catalog reload` changed the collection's access class or title",
    FEATURE_CREATED: "a feature was created through the API (POST, or PUT to a new id); "
                     "data: its id and properties",
    FEATURE_REPLACED: "a feature was replaced through the API (PUT); data: its id and the "
                      "properties that changed",
    FEATURE_UPDATED: "a feature was updated through the API (PATCH); data: its id and the "
                     "properties that changed",
    FEATURE_DELETED: "a feature was deleted through the API (DELETE); data: its id",
    TILES3D_UPDATED: "the 3D Tiles of a collection follow a write: data: the tiles made "
                     "again (content URIs), after they were replaced; the changed "
                     "buildings' leaves come first, the coarse tiles above them in a "
                     "later event",
}
# The scenario streams' own (not in TYPES: /events never carries them)
SCENARIO_TYPES = {
    SCENARIO_CHANGED: "a write into the scenario (POST, PUT, PATCH or DELETE with "
                      "?scenario=); data: the collection, the feature's id, the kind of "
                      "write, and the feature as /scenarios/{id}/changes now has it (null "
                      "when the scenario no longer changes it)",
}
# MQTT topic level per type: oup/events/collections/{id}/{kind}
TOPIC_KINDS = {OBSERVATIONS_STORED: "observations", OBSERVATIONS_CORRECTED: "observations",
               COLLECTION_IMPORTED: "versions", COLLECTION_ADDED: "catalogue",
               COLLECTION_REMOVED: "catalogue", COLLECTION_CHANGED: "catalogue",
               **{t: "features" for t in FEATURE_TYPES.values()},
               TILES3D_UPDATED: "tiles3d"}
MQTT_PREFIX = "oup/events/collections"
# Not a change event: the SSE event type a stream sends first when it resumes from further
# back than the log keeps (no id; data: {"after", "first", "detail"})
EVENTS_MISSED = "oup.events.missed"
SPEC_VERSION = "1.0"


@dataclass(frozen=True)
class ChangeEvent:
    """One change, as the log keeps it. ``seq`` is 0 until the log has numbered it."""

    collection: str
    type: str
    subject: str
    data: dict
    time: int = field(default_factory=lambda: us_of(datetime.now(timezone.utc)))  # µs
    seq: int = 0

    @property
    def properties(self) -> dict:
        """What a subscriber's filter (CQL2) reads: the item's properties, plus the
        event's own ``type``, ``subject`` and ``collection``."""
        return {**self.data.get("properties", {}), "type": self.type,
                "subject": self.subject, "collection": self.collection}

    @property
    def scenario(self) -> str | None:
        """The scenario the event tells of a write into (None: the city's own events)."""
        return self.data.get("scenario") if self.type == SCENARIO_CHANGED else None

    def is_public(self, public: set[str], catalogue: set[str]) -> bool:
        """Public now, or (a removed collection) public when it was removed; a
        scenario's, never."""
        if self.type == SCENARIO_CHANGED:
            return False
        if self.collection in catalogue:
            return self.collection in public
        return self.data.get("classification") == "public"

    def cloudevent(self, base_url: str) -> dict:
        return {"specversion": SPEC_VERSION, "id": str(self.seq), "type": self.type,
                "source": f"{base_url}/collections/{self.collection}",
                "subject": self.subject, "time": iso_us(self.time),
                "datacontenttype": "application/json", "data": self.data}

    def topic(self) -> str:
        return f"{MQTT_PREFIX}/{self.collection}/{TOPIC_KINDS.get(self.type, 'other')}"


def observations_event(collection: str, id_field: str, sensor: str, latest_time: int,
                       latest_result: float, stored: int, corrected: int,
                       extra: dict | None = None, new: list | None = None) -> ChangeEvent:
    """A sensor's batch: its item's changed properties, how many were written, and the
    new observations (``new``: [(id, Observation)]) as SensorThings Observations, which
    the relay tells each of on the SensorThings topic."""
    props = {id_field: sensor, **(extra or {}), "latest_time": iso_us(latest_time),
             "latest_result": latest_result}
    data = {"collection": collection, "id": sensor, "properties": props,
            "observations": {"stored": stored, "corrected": corrected}}
    if new:
        data["new"] = [{"@iot.id": oid, "phenomenonTime": iso_us(o.phenomenon_time),
                        "resultTime": iso_us(o.result_time), "result": o.result}
                       for oid, o in new]
    return ChangeEvent(collection, OBSERVATIONS_STORED if stored else OBSERVATIONS_CORRECTED,
                       sensor, data)


def imported_event(collection: str, features: int, notes: list[str]) -> ChangeEvent:
    now = us_of(datetime.now(timezone.utc))
    return ChangeEvent(collection, COLLECTION_IMPORTED, collection,
                       {"collection": collection, "version": iso_us(now),
                        "features": features, "notes": notes}, time=now)


def feature_event(collection: str, kind: str, fid: str, before: dict | None,
                  after: dict | None, private: set[str] = frozenset(),
                  bare: bool = False) -> ChangeEvent:
    """A write through the API: the feature's id and the properties it changed (all of
    them when it was created). ``private``: properties no event may carry (personal
    data); ``bare``: the event says only the id and the kind of change."""
    old = (before or {}).get("properties") or {}
    new = (after or {}).get("properties") or {}
    changed = {k: v for k, v in new.items() if old.get(k, object()) != v and k not in private}
    removed = sorted(k for k in old.keys() - new.keys() if k not in private)
    data = {"collection": collection, "id": fid}
    if not bare and kind != "deleted":
        data["properties"] = changed
        if removed:
            data["removed"] = removed
    return ChangeEvent(collection, FEATURE_TYPES[kind], str(fid), data)


def scenario_event(collection: str, scenario: str, kind: str, fid,
                   change: dict | None) -> ChangeEvent:
    """A write into ``scenario`` (``kind``: created, replaced, updated, deleted): what it
    now proposes for feature ``fid`` (``change``, a feature of
    ``/scenarios/{id}/changes``), or None when it leaves the feature as the city has it."""
    return ChangeEvent(collection, SCENARIO_CHANGED, str(fid),
                       {"scenario": scenario, "collection": collection, "id": fid,
                        "kind": kind, "feature": change})


def tiles3d_event(collection: str, rewritten: list[str], removed: list[str]) -> ChangeEvent:
    return ChangeEvent(collection, TILES3D_UPDATED, collection,
                       {"collection": collection, "rewritten": rewritten, "removed": removed})


def catalogue_events(before: dict[str, dict], after: dict[str, dict]) -> list[ChangeEvent]:
    """What a catalogue reload changed: ``before``/``after`` map each published collection
    to ``{"title", "classification"}``."""
    events = []
    for cid in sorted(after.keys() - before.keys()):
        events.append(ChangeEvent(cid, COLLECTION_ADDED, cid, {"collection": cid, **after[cid]}))
    for cid in sorted(before.keys() - after.keys()):
        events.append(ChangeEvent(cid, COLLECTION_REMOVED, cid,
                                  {"collection": cid, **before[cid]}))
    for cid in sorted(before.keys() & after.keys()):
        if before[cid] != after[cid]:
            events.append(ChangeEvent(cid, COLLECTION_CHANGED, cid,
                                      {"collection": cid, **after[cid],
                                       "before": before[cid]}))
    return events


def published(catalog) -> dict[str, dict]:
    """The catalogue as ``catalogue_events`` compares it."""
    return {c.id: {"title": c.title, "classification": c.classification.value}
            for c in catalog}
