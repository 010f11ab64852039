"""Change events in-process: the event log of the embedded store (one event per sensor
per batch, in the batch's transaction, numbered in commit order, kept for a while),
catalogue changes, the subscribers' filters, the AsyncAPI document against the AsyncAPI
3.0 schema, and the broker's ACL derived from the catalogue."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest
import yaml

from iot_ingest.broker import acl_for
from oup import events as ev
from oup.events.asyncapi import document
from oup.catalog import load_catalog
from oup.events.filter import EventFilter
from oup.sensors.observations import DeadLetter, Observation, SensorHome, us_of
from oup.settings import ROOT
from oup.store.base import Field, InvalidQuery
from oup.store.observations import GeoPackageObservationStore

T0 = us_of(datetime(2031, 1, 1, tzinfo=timezone.utc))
HOMES = {"a": SensorHome("sensors", "sensor_id", {"observed_property": "NO2"}),
         "b": SensorHome("sensors", "sensor_id", {"observed_property": "PM10"})}


@pytest.fixture
def log(tmp_path) -> GeoPackageObservationStore:
    store = GeoPackageObservationStore(tmp_path / "oup.gpkg")
    # the sensors' table, where their latest values go (an import makes it)
    store.execute("CREATE TABLE sensors (sensor_id TEXT, latest_time TEXT, latest_result REAL)")
    store._executemany("INSERT INTO sensors (sensor_id) VALUES (?)", [("a",), ("b",)])
    return store


def _obs(sensor, minute, value, result_time=None):
    return Observation(sensor, T0 + minute * 60_000_000, value, result_time)


def test_a_batch_logs_one_event_per_sensor_with_its_latest_value(log):
    log.write_batch("t", [[_obs("a", 1, 10.0)], [_obs("a", 3, 30.0)], [_obs("a", 2, 20.0)],
                          [_obs("b", 1, 5.0)], DeadLetter("x", b"?", "bad"),
                          [_obs("unknown", 1, 1.0)]], HOMES)
    events = log.events_after(0)
    assert [(e.subject, e.type) for e in events] == [("a", ev.OBSERVATIONS_STORED),
                                                    ("b", ev.OBSERVATIONS_STORED)]
    a = events[0]
    # the latest by phenomenon time, not the last to arrive
    assert a.data["properties"] == {"sensor_id": "a", "observed_property": "NO2",
                                    "latest_time": "2031-01-01T00:03:00Z", "latest_result": 30.0}
    assert a.data["observations"] == {"stored": 3, "corrected": 0}
    ce = a.cloudevent("http://oup.test")
    assert ce["specversion"] == "1.0" and ce["id"] == str(a.seq)
    assert ce["source"] == "http://oup.test/collections/sensors" and ce["subject"] == "a"
    assert events[1].seq > a.seq == log.last_event() - 1


def test_repeats_log_nothing_and_corrections_say_so(log):
    log.write_batch("t", [[_obs("a", 1, 10.0, result_time=1)]], HOMES)
    first = log.last_event()
    log.write_batch("t", [[_obs("a", 1, 10.0, result_time=1)]], HOMES)  # a repeat
    assert log.last_event() == first
    log.write_batch("t", [[_obs("a", 1, 11.0, result_time=2)]], HOMES)  # a correction
    (fix,) = log.events_after(first)
    assert fix.type == ev.OBSERVATIONS_CORRECTED
    assert fix.data["observations"] == {"stored": 0, "corrected": 1}
    assert fix.data["properties"]["latest_result"] == 11.0


def test_a_batch_that_fails_logs_no_event(log):
    class Boom(Exception):
        pass

    def fail(*a):
        raise Boom

    log._add_counters = fail  # the batch's transaction fails after its observations
    with pytest.raises(Boom):
        log.write_batch("t", [[_obs("a", 1, 10.0)]], HOMES)
    assert log.last_event() == 0 and log.count() == 0


def test_events_expire_after_the_retention(log):
    old = ev.ChangeEvent("x", ev.COLLECTION_IMPORTED, "x", {}, time=T0)
    log.append_events([old])
    log.event_retention_us = 3_600_000_000
    log._pruned_at = 0.0
    log.append_events([ev.ChangeEvent("x", ev.COLLECTION_IMPORTED, "x", {},
                                      time=T0 + 2 * 3_600_000_000)])
    assert [e.time for e in log.events_after(0)] == [T0 + 2 * 3_600_000_000]
    assert log.last_event() == 2  # numbers are never given out again


def test_a_resume_from_before_what_the_log_keeps_is_told_what_expired(log):
    """A stream resuming after an id whose successors have expired learns the oldest id
    the log still holds (the stream then sends an `oup.events.missed` event before any
    other); one resuming within what the log keeps is told nothing."""
    import asyncio

    from oup.events.stream import Hub

    log.append_events([ev.ChangeEvent("x", ev.COLLECTION_IMPORTED, "x", {}, time=T0 + i)
                       for i in range(4)])
    log.execute("DELETE FROM oup_events WHERE seq <= 2")  # as the retention does
    assert log.first_event() == 3

    async def resume_from(*ids):
        hub = Hub(lambda: log, "http://127.0.0.1")
        await hub.start()
        try:
            return [await hub.expired_after(i) for i in ids]
        finally:
            hub.close()
            hub._task.cancel()

    assert asyncio.run(resume_from(0, 1, 2, 3, 4)) == [3, 3, None, None, None]


def test_catalogue_changes_become_events(log):
    before = {"a": {"title": "A", "classification": "public"},
              "b": {"title": "B", "classification": "public"}}
    assert log.record_catalogue(before) == []  # the first record: nothing to compare with
    after = {"a": {"title": "A", "classification": "restricted"},
             "c": {"title": "C", "classification": "internal"}}
    made = log.record_catalogue(after)
    assert [(e.type, e.collection) for e in made] == [
        (ev.COLLECTION_ADDED, "c"), (ev.COLLECTION_REMOVED, "b"), (ev.COLLECTION_CHANGED, "a")]
    assert [(e.type, e.collection) for e in log.events_after(0)] == \
        [(e.type, e.collection) for e in made]
    assert log.record_catalogue(after) == []
    removed = log.events_after(0)[1]
    # a removed collection's event is public only if the collection was
    assert removed.is_public(set(), set()) and not ev.ChangeEvent(
        "z", ev.COLLECTION_REMOVED, "z", {"classification": "internal"}).is_public(set(), set())


@pytest.mark.parametrize("expression, matches", [
    ("latest_result > 40", True),
    ("latest_result BETWEEN 1 AND 40", False),
    ("observed_property IN ('NO2', 'PM10')", True),
    ("sensor_id LIKE 'NL%'", True),
    ("latest_result IS NULL", False),
    ("latest_time > TIMESTAMP('2030-12-31T00:00:00Z')", True),
    ("type = 'oup.observations.stored' AND NOT latest_result < 10", True),
    ('{"op": "<", "args": [{"property": "latest_result"}, 50]}', True),
])
def test_cql2_filters_over_an_events_properties(expression, matches):
    e = ev.observations_event("sensors", "sensor_id", "NL01", T0, 42.5, 3, 0,
                              {"observed_property": "NO2"})
    names = {"sensor_id", "observed_property", "latest_time", "latest_result"}
    assert EventFilter(cql2=expression, properties=names).matches(e) is matches


@pytest.mark.parametrize("expression, says", [
    ("nope > 1", "no property 'nope'"),
    ("S_INTERSECTS(geometry, POINT(4 52))", "not supported on events"),
    ("latest_result >", "not valid cql2-text"),
])
def test_a_bad_filter_says_what_is_wrong(expression, says):
    with pytest.raises(InvalidQuery, match=says):
        EventFilter(cql2=expression, properties={"latest_result", "geometry"})


def test_sensor_and_type_filters():
    e = ev.observations_event("sensors", "sensor_id", "NL01", T0, 1.0, 1, 0)
    assert EventFilter(sensors=["NL01", "x"]).matches(e)
    assert not EventFilter(sensors=["x"]).matches(e)
    assert not EventFilter(types=[ev.COLLECTION_IMPORTED]).matches(e)


def _asyncapi_schema() -> dict:
    import pygeoapi

    path = Path(pygeoapi.__file__).parent / "resources/schemas/asyncapi/asyncapi-3.0.0.json"
    return json.loads(path.read_text())


def test_the_asyncapi_document_is_valid_and_shows_only_what_the_caller_may_see():
    cat = load_catalog(ROOT / "collections")
    fields = {"sensors": [Field("sensor_id", "string"), Field("latest_result", "number"),
                          Field("latest_time", "date-time")]}
    public = {c.id for c in cat if c.classification.value == "public"}
    anonymous = document(cat, lambda cid: fields.get(cid, []), public, "http://oup.test",
                         "mqtt://broker.test:1883", "ws://broker.test:9001")
    jsonschema.validate(anonymous, _asyncapi_schema())
    assert "jeugdzorg-sse" not in anonymous["channels"] and "sensors-sse" in anonymous["channels"]
    assert anonymous["channels"]["sensors-mqtt"]["address"] == \
        "oup/events/collections/sensors/{kind}"
    data = anonymous["components"]["messages"]["sensors-observations"]["payload"][
        "properties"]["data"]["properties"]["properties"]["properties"]
    assert data["latest_result"]["type"] == ["number", "null"]  # the collection's own types
    assert set(anonymous["servers"]) == {"sse", "mqtt", "mqtt-ws"}
    # the notice of expired events is the streams', never the broker's
    channels = anonymous["channels"]
    assert "events-missed" in channels["sensors-sse"]["messages"]
    assert "events-missed" in channels["all-sse"]["messages"]
    assert "events-missed" not in channels["sensors-mqtt"]["messages"]
    everyone = document(cat, lambda cid: [], set(cat.collections), "http://oup.test",
                        "mqtt://broker.test:1883", None)
    jsonschema.validate(everyone, _asyncapi_schema())
    # a restricted collection has its SSE channel for those who may see it, never MQTT
    assert "jeugdzorg-sse" in everyone["channels"]
    assert "jeugdzorg-mqtt" not in everyone["channels"]
    assert yaml.safe_load(yaml.safe_dump(everyone)) == everyone
    # writes through the API: the types, and the properties as the collection has them
    # (buildings); a collection whose writers see only their own tells the id alone
    fields = {"buildings": [Field("identificatie", "string"), Field("height", "number")]}
    steward = document(cat, lambda cid: fields.get(cid, []), set(cat.collections),
                       "http://oup.test", "mqtt://broker.test:1883", None)
    jsonschema.validate(steward, _asyncapi_schema())
    messages, channels = steward["components"]["messages"], steward["channels"]
    features = messages["buildings-features"]["payload"]["properties"]
    assert features["type"]["enum"] == ["oup.feature.created", "oup.feature.replaced",
                                        "oup.feature.updated", "oup.feature.deleted"]
    assert features["data"]["properties"]["properties"]["properties"]["height"]["type"] \
        == ["number", "null"]
    assert "properties" not in messages["meldingen-features"]["payload"]["properties"][
        "data"]["properties"]
    assert {"buildings-features", "buildings-tiles3d"} <= set(
        channels["buildings-sse"]["messages"]) and "neighbourhoods-features" not in messages
    assert "buildings-features" in channels["buildings-mqtt"]["messages"]
    # a scenario's writes: its own stream only
    assert "scenario-changed" in channels["scenario-sse"]["messages"]
    assert all("scenario-changed" not in c["messages"] for n, c in channels.items()
               if n != "scenario-sse")


def test_the_brokers_acl_follows_the_catalogue():
    cat = load_catalog(ROOT / "collections")
    topics = [t.topic for c in cat if c.stream for t in c.stream.topics]
    # config/mosquitto.acl (docker-compose) is what the launchers generate
    assert (ROOT / "config" / "mosquitto.acl").read_text() == acl_for(topics)
    acl = acl_for(topics).split("\nuser ")
    assert "pattern read oup/events/#" in acl[0] and "readwrite oup/events" not in acl[0]
    assert all(f"pattern readwrite {t}" in acl[0] for t in topics)
    assert acl[1].startswith("oup-relay\ntopic write oup/events/#")


def test_a_feature_event_carries_what_changed_and_goes_to_the_features_topic():
    from oup.events import FEATURE_UPDATED, feature_event

    before = {"properties": {"name": "a", "floors": 2, "note": "x", "secret": "s1"}}
    after = {"properties": {"name": "a", "floors": 3, "secret": "s2"}}
    e = feature_event("plots", "updated", "P1", before, after, private={"secret"})
    assert e.type == FEATURE_UPDATED and e.subject == "P1"
    assert e.data == {"collection": "plots", "id": "P1", "properties": {"floors": 3},
                      "removed": ["note"]}
    assert e.topic() == "oup/events/collections/plots/features"
    bare = feature_event("meldingen", "created", 7, None, after, bare=True)
    assert bare.data == {"collection": "meldingen", "id": 7}
    gone = feature_event("plots", "deleted", "P1", before, None)
    assert gone.data == {"collection": "plots", "id": "P1"}


def test_a_scenario_event_names_its_scenario_and_is_never_public():
    from oup.events import SCENARIO_CHANGED, feature_event, scenario_event

    feature = {"type": "Feature", "id": "P1", "geometry": None,
               "properties": {"name": "proposed", "oup:change": "changed"}}
    e = scenario_event("plots", "s-1", "updated", "P1", feature)
    assert e.type == SCENARIO_CHANGED and e.subject == "P1" and e.scenario == "s-1"
    assert e.data == {"scenario": "s-1", "collection": "plots", "id": "P1", "kind": "updated",
                      "feature": feature}
    assert not e.is_public({"plots"}, {"plots"})  # a public collection: still not (MQTT)
    # the city's own events are no scenario's, whatever their properties are called
    city = feature_event("plots", "updated", "P1", None, {"properties": {"scenario": "s-1"}})
    assert city.scenario is None and city.is_public({"plots"}, {"plots"})
    # as the log gives it back (the data as stored)
    again = ev.ChangeEvent(e.collection, e.type, e.subject, json.loads(json.dumps(e.data)))
    assert again.scenario == "s-1" and not again.is_public({"plots"}, {"plots"})
