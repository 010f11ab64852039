"""SensorThings API 1.1 on a real server, both stores, with a real client (frost-sta-client):
Things with their Datastreams expanded, observations created and found again by time and
result, paging by nextLink; a created observation in the observations collection, its
time slice and the event stream; who may create (401, 403, 404); errors are 400s that
name what is wrong."""
from __future__ import annotations

import json
import random
import threading
from datetime import datetime, timedelta, timezone

import pytest
import requests
import yaml

from conftest import ROOT, SENSORS
from test_writes import _token

pytestmark = pytest.mark.slow
UNITS = {k: v["unit"] for k, v in yaml.safe_load(
    (ROOT / "collections" / "sensors" / "collection.yml").read_text())["stream"]["properties"].items()}


def _service(server: str, headers: dict | None = None):
    from frost_sta_client import SensorThingsService
    from frost_sta_client.service.auth_handler import AuthHandler

    class Bearer(AuthHandler):  # the client sends what add_auth_header gives to requests
        def add_auth_header(self):
            def auth(r):
                r.headers.update(headers or {})
                return r
            return auth

    return SensorThingsService(f"{server}/sta/v1.1", auth_handler=Bearer())


@pytest.fixture(scope="module")
def writer(credentials) -> dict:
    return {"Authorization": "Bearer " + _token(credentials, "w-1", ["sensor-writer"])}


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_things_with_their_datastreams_expanded(server):
    service = _service(server)
    things = service.things().query().expand("Datastreams").top(5).list()
    seen = {}
    for thing in things:  # the client follows @iot.nextLink: 21 sensors in pages of 5
        seen[thing.id] = thing
    sensors = {f["properties"]["sensor_id"]: f for f in SENSORS}
    assert set(seen) == set(sensors)
    for sid, thing in seen.items():
        props = sensors[sid]["properties"]
        assert thing.name == props["name"]
        [ds] = thing.datastreams.entities
        assert ds.id == sid
        assert ds.unit_of_measurement.symbol == UNITS[props["observed_property"]]


def test_create_then_filter_by_time_and_result_page_by_next_link(server, writer, env):
    from frost_sta_client import Datastream, Observation

    service = _service(server, writer)
    sensor = "aq-statenweg-no2"
    rng = random.Random(f"sta-{env['OUP_TEST_STORE']}")
    start = datetime(2031, 3, 1, tzinfo=timezone.utc) + timedelta(minutes=rng.randrange(10**5))
    sent = []
    for i in range(9):
        t = start + timedelta(minutes=i)
        value = float(rng.randrange(0, 200))
        obs = Observation(result=value, phenomenon_time=_iso(t),
                          datastream=Datastream(id=sensor))
        service.create(obs)
        assert isinstance(obs.id, int)
        sent.append((obs.id, t, value))
    # found again: by id, and by a time window and a result bound, two at a time
    found = service.observations().find(sent[3][0])
    assert found.result == sent[3][2]
    lo, hi, bound = start + timedelta(minutes=2), start + timedelta(minutes=7), 50.0
    ds = service.datastreams().find(sensor)
    page = ds.get_observations().query().filter(
        f"phenomenonTime ge {_iso(lo)} and phenomenonTime lt {_iso(hi)} and result ge {bound}"
    ).orderby("phenomenonTime", "ASC").top(2).list()
    got = [(o.id, o.result) for o in page]
    expected = [(i, v) for i, t, v in sent if lo <= t < hi and v >= bound]
    assert got == expected
    r = requests.get(f"{server}/sta/v1.1/Datastreams('{sensor}')/Observations", params={
        "$filter": f"phenomenonTime ge {_iso(start)}", "$top": "4", "$count": "true"},
        timeout=30).json()
    assert "@iot.nextLink" in r and r["@iot.count"] >= len(sent)


def test_a_created_observation_is_everywhere_the_sensors_are(server, writer, env):
    sensor = "aq-pleinweg-no2"
    t = datetime(2032, 5, 1, 12, 7, tzinfo=timezone.utc) + timedelta(
        seconds=1 if env["OUP_TEST_STORE"] == "postgis" else 0)
    events: list[str] = []
    listening = threading.Event()

    def listen():
        with requests.get(f"{server}/collections/sensors/events", stream=True,
                          timeout=(5, 30)) as r:
            listening.set()
            for line in r.iter_lines():
                if line.startswith(b"data: "):
                    events.append(line[6:].decode())
                    if sensor in events[-1] and _iso(t) in events[-1]:
                        return

    reader = threading.Thread(target=listen, daemon=True)
    reader.start()
    assert listening.wait(10)
    r = requests.post(f"{server}/sta/v1.1/Observations", json={
        "phenomenonTime": _iso(t), "result": 42.5, "Datastream": {"@iot.id": sensor}},
        headers=writer, timeout=30)
    assert r.status_code == 201, r.text
    oid = r.json()["@iot.id"]
    assert r.headers["Location"] == f"{server}/sta/v1.1/Observations({oid})"
    items = requests.get(f"{server}/collections/observations/items", params={
        "datetime": _iso(t), "sensor_id": sensor}, timeout=30).json()["features"]
    assert [(f["properties"]["result"], f["id"]) for f in items] == [(42.5, oid)]
    slices = requests.get(f"{server}/collections/sensor-slices/items", params={
        "datetime": _iso(t), "sensor_id": sensor}, timeout=30).json()["features"]
    assert [(s["properties"]["count"], s["properties"]["mean"]) for s in slices] == [(1, 42.5)]
    reader.join(30)
    assert any(sensor in e and _iso(t) in e for e in events), events[-3:]
    # the same reading again is a repeat, not a second observation
    again = requests.post(f"{server}/sta/v1.1/Datastreams('{sensor}')/Observations", json={
        "phenomenonTime": _iso(t), "result": 42.5}, headers=writer, timeout=30)
    assert again.status_code == 409, again.text
    # a newer resultTime corrects it: the same observation, the new value
    fixed = requests.post(f"{server}/sta/v1.1/Datastreams('{sensor}')/Observations", json={
        "phenomenonTime": _iso(t), "resultTime": _iso(t + timedelta(hours=1)),
        "result": 43.0}, headers=writer, timeout=30)
    assert fixed.status_code == 200 and fixed.json()["@iot.id"] == oid, fixed.text
    assert requests.get(f"{server}/sta/v1.1/Observations({oid})/result/$value",
                        timeout=30).text == "43.0"


def test_data_arrays_answer_a_link_or_error_per_reading(server, writer):
    sensor = "aq-statenweg-pm25"
    t = datetime(2033, 1, 2, tzinfo=timezone.utc)
    body = [{"Datastream": {"@iot.id": sensor}, "components": ["phenomenonTime", "result"],
             "dataArray@iot.count": 3,
             "dataArray": [[_iso(t), 11.0], [_iso(t + timedelta(minutes=1)), 5000.0],
                           [_iso(t + timedelta(minutes=2)), 13.0]]}]
    r = requests.post(f"{server}/sta/v1.1/CreateObservations", json=body, headers=writer,
                      timeout=30)
    assert r.status_code == 201, r.text
    links = r.json()
    assert links[1] == "error"  # PM2.5 5000 is outside the declared range
    got = [requests.get(u, timeout=30).json()["result"] for u in (links[0], links[2])]
    assert got == [11.0, 13.0]


def test_who_may_create(server, writer, credentials):
    url = f"{server}/sta/v1.1/Observations"
    body = {"result": 1.0, "phenomenonTime": "2034-01-01T00:00:00Z",
            "Datastream": {"@iot.id": "aq-statenweg-no2"}}
    assert requests.post(url, json=body, timeout=30).status_code == 401
    analyst = {"Authorization": "Bearer " + _token(credentials, "a-1", ["analyst"])}
    assert requests.post(url, json=body, headers=analyst, timeout=30).status_code == 403
    unknown = dict(body, Datastream={"@iot.id": "no-such-sensor"})
    r = requests.post(url, json=unknown, headers=writer, timeout=30)
    assert r.status_code == 404 and "no-such-sensor" in r.json()["detail"]
    for method in ("post", "patch", "delete"):
        target = f"{server}/sta/v1.1/Things" + ("('aq-statenweg-no2')" if method != "post"
                                                 else "")
        r = getattr(requests, method)(target, json={}, headers=writer, timeout=30)
        assert r.status_code == 405 and "catalogue" in r.json()["detail"]


@pytest.mark.parametrize("query, says", [
    ({"$filter": "result gt"}, "expected a property"),
    ({"$filter": "nosuch eq 1"}, "no property 'nosuch'"),
    ({"$filter": "result eq 'x'"}, "cannot compare number with string"),
    ({"$filter": "frobnicate(result)"}, "unknown or unsupported function"),
    ({"$filter": "(result gt 1"}, "expected ')'"),
    ({"$orderby": "result sideways"}, "expected the end"),
    ({"$top": "-1"}, "$top must be a whole number"),
    ({"$expand": "Nothing"}, "has no link 'Nothing'"),
    ({"$select": "nosuch"}, "no property 'nosuch'"),
    ({"$count": "yes"}, "$count must be true or false"),
    ({"$filter": "phenomenonTime gt 2026-13-45T00:00:00Z"}, "not an RFC 3339 time"),
])
def test_bad_options_are_400_naming_what_is_wrong(server, query, says):
    r = requests.get(f"{server}/sta/v1.1/Observations", params=query, timeout=30)
    assert r.status_code == 400, r.text
    assert says in r.json()["detail"]


@pytest.mark.parametrize("path, status", [
    ("Things('no-such-sensor')", 404), ("Observations(999999999)", 404), ("Nothing", 404),
    ("Things('aq-statenweg-no2')/Nothing", 404), ("Observations('x')", 404),
    ("Things(0)", 404), ("Datastreams(7)/Observations", 404),
    ("Things/Datastreams", 400)])
def test_bad_paths(server, path, status):
    r = requests.get(f"{server}/sta/v1.1/{path}", timeout=30)
    assert r.status_code == status, r.text


def test_bad_bodies_are_400(server, writer):
    url = f"{server}/sta/v1.1/Observations"
    ds = {"@iot.id": "aq-statenweg-no2"}
    for body, says in (("not json", "not JSON"), ("[" * 100_000, "not JSON"),
                       ([], "one Observation"),
                       ({"result": 1, "Datastream": ds, "colour": "red"}, "colour"),
                       ({"Datastream": ds}, "result is required"),
                       ({"result": "high", "Datastream": ds, "phenomenonTime":
                         "2035-01-01T00:00:00Z"}, "result must be a number"),
                       ({"result": 1}, "Datastream must be")):
        data = body if isinstance(body, str) else json.dumps(body)
        r = requests.post(url, data=data, headers={**writer, "Content-Type": "application/json"},
                          timeout=30)
        assert r.status_code == 400 and says in r.json()["detail"], (body, r.text)


def test_the_service_root_and_the_openapi_document(server):
    root = requests.get(f"{server}/sta/v1.1", timeout=30).json()
    assert {v["name"] for v in root["value"]} == {
        "Things", "Locations", "HistoricalLocations", "Datastreams", "Sensors",
        "ObservedProperties", "Observations", "FeaturesOfInterest"}
    assert "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data" in \
        root["serverSettings"]["conformance"]
    paths = requests.get(f"{server}/openapi?f=json", timeout=30).json()["paths"]
    assert "/sta/v1.1/Things" in paths and "post" in paths["/sta/v1.1/CreateObservations"]


def test_navigation_properties_refs_and_expanded_pages(server, writer):
    sensor = "aq-statenweg-no2"
    base = f"{server}/sta/v1.1"
    t = datetime(2034, 6, 1, tzinfo=timezone.utc)
    body = [{"Datastream": {"@iot.id": sensor}, "components": ["phenomenonTime", "result"],
             "dataArray": [[_iso(t + timedelta(minutes=i)), float(i)] for i in range(5)]}]
    links = requests.post(f"{base}/CreateObservations", json=body, headers=writer,
                          timeout=30).json()
    oid = int(links[2][links[2].rindex("(") + 1:-1])
    get = lambda path, **q: requests.get(f"{base}/{path}", params=q, timeout=30)  # noqa: E731
    name = next(f["properties"]["name"] for f in SENSORS
                if f["properties"]["sensor_id"] == sensor)
    assert get(f"Observations({oid})/Datastream/Thing/name/$value").text == name
    assert get(f"Things('{sensor}')/name").json() == {"name": name}
    assert get(f"Datastreams('{sensor}')/ObservedProperty").json()["@iot.id"] == "NO2"
    refs = get("ObservedProperties('NO2')/Datastreams/$ref").json()["value"]
    no2 = sorted(f["properties"]["sensor_id"] for f in SENSORS
                 if f["properties"]["observed_property"] == "NO2")
    assert sorted(r["@iot.selfLink"] for r in refs) == [
        f"{base}/Datastreams('{s}')" for s in no2]
    # an expansion pages by its own nextLink, keeping its filter
    window = f"phenomenonTime ge {_iso(t)} and phenomenonTime lt {_iso(t + timedelta(hours=1))}"
    thing = get(f"Things('{sensor}')", **{"$expand": f"Datastreams($expand=Observations("
                                          f"$filter={window};$orderby=result desc;$top=2))"}
                ).json()
    assert "Datastreams" in thing, thing
    [ds] = thing["Datastreams"]
    results = [o["result"] for o in ds["Observations"]]
    nxt = requests.get(ds["Observations@iot.nextLink"], timeout=30).json()
    results += [o["result"] for o in nxt["value"]]
    assert results == [4.0, 3.0, 2.0, 1.0]
    # literals in functions (PostgreSQL must know their type)
    q = ("length('abc') eq 3 and tolower('X') eq 'x' and concat('a', name) eq 'a' + name "
         .replace("'a' + name", f"'a{name}'") + f"and substring(name, 1) eq '{name[1:]}'")
    assert [v["@iot.id"] for v in get("Things", **{"$filter": q + f" and id eq '{sensor}'"}
                                      ).json()["value"]] == [sensor]


def test_a_refused_reading_is_a_dead_letter_with_its_reason(server, writer, env):
    from conftest import store_url
    from oup.store import open_observation_store

    r = requests.post(f"{server}/sta/v1.1/Observations", json={
        "phenomenonTime": "2035-05-05T05:05:05Z", "result": -7.0,
        "Datastream": {"@iot.id": "aq-statenweg-pm25"}}, headers=writer, timeout=30)
    assert r.status_code == 400 and "outside" in r.json()["detail"], r.text
    dead = open_observation_store(store_url(env)).dead_letters(limit=100_000)
    assert any(d["topic"] == "ingest/v1.1/Datastreams('aq-statenweg-pm25')/Observations"
               and "outside" in d["reason"] and b"2035-05-05T05:05:05Z" in bytes(d["payload"])
               for d in dead)


def _listing(url: str, params: dict | None) -> list[dict]:
    """Every page of a listing, by @iot.nextLink (bounded)."""
    pages = []
    for _ in range(50):
        r = requests.get(url, params=params, timeout=30)
        assert r.status_code == 200, r.text
        pages.append(r.json())
        url, params = pages[-1].get("@iot.nextLink"), None
        if url is None:
            return pages
    raise AssertionError("more than 50 pages")


def _from_arrays(pages: list[dict]) -> list[tuple[str, dict]]:
    """The observations of data array pages as (datastream link, {component: value})."""
    out = []
    for page in pages:
        for group in page["value"]:
            assert group["dataArray@iot.count"] == len(group["dataArray"])
            out += [(group["Datastream@iot.navigationLink"], dict(zip(group["components"], row)))
                    for row in group["dataArray"]]
    return out


def test_data_arrays_read_back_as_the_listing_reads(server, writer):
    base = f"{server}/sta/v1.1"
    sensors = ["aq-statenweg-no2", "aq-pleinweg-no2", "aq-schiedamsevest-pm10"]
    t = datetime(2043, 4, 1, tzinfo=timezone.utc)  # (a year no other test writes)
    body = [{"Datastream": {"@iot.id": s}, "components": ["phenomenonTime", "result"],
             "dataArray": [[_iso(t + timedelta(minutes=3 * i + k)), float(10 * k + i)]
                           for i in range(4)]} for k, s in enumerate(sensors)]
    r = requests.post(f"{base}/CreateObservations", json=body, headers=writer, timeout=30)
    assert r.status_code == 201 and "error" not in r.json(), r.text
    window = f"phenomenonTime ge {_iso(t)} and phenomenonTime lt {_iso(t + timedelta(days=1))}"
    # all three datastreams, interleaved by time, three a page: grouped per datastream
    # within a page, the same observations in the same order as the JSON listing
    for path, q in (("Observations", {"$orderby": "phenomenonTime"}),
                    (f"Datastreams('{sensors[1]}')/Observations",
                     {"$orderby": "result desc"}),
                    ("Observations", {"$orderby": "result", "$select": "result,id"})):
        q = {"$filter": window, "$top": "3", "$count": "true", **q}
        arrays = _listing(f"{base}/{path}", {**q, "$resultFormat": "dataArray"})
        # the JSON listing, each observation with its datastream (expanded)
        plain = _listing(f"{base}/{path}", {**q, "$expand": "Datastream($select=id)"})
        assert len(arrays) == len(plain) > 1
        assert [p["@iot.count"] for p in arrays] == [p["@iot.count"] for p in plain] == [
            12 if path == "Observations" else 4] * len(plain)
        fields = q.get("$select", "id,phenomenonTime,result,resultTime").split(",")
        expected = []
        for page in plain:  # a page's observations grouped by datastream, first come first
            groups: dict = {}
            for o in page["value"]:
                groups.setdefault(o["Datastream"]["@iot.id"], []).append(
                    {f: o["@iot.id" if f == "id" else f] for f in fields})
            expected += [(f"{base}/Datastreams('{d}')", row) for d, rows in groups.items()
                         for row in rows]
        assert _from_arrays(arrays) == expected
    assert any(c.endswith("/data-array/data-array") for c in requests.get(
        base, timeout=30).json()["serverSettings"]["conformance"])


@pytest.mark.parametrize("path, query, says", [
    ("Things", {"$resultFormat": "dataArray"}, "set of Observations"),
    ("Datastreams('aq-statenweg-no2')", {"$resultFormat": "dataArray"}, "set of Observations"),
    ("Observations", {"$resultFormat": "csv"}, "$resultFormat takes dataArray"),
    ("Observations", {"$resultFormat": "dataArray", "$expand": "Datastream"}, "$expand does"),
    ("Observations", {"$resultFormat": "dataArray", "$select": "Datastream"}, "not Datastream"),
    ("Observations", {"$expand": "Datastream($resultFormat=dataArray)"}, "unknown query"),
])
def test_result_format_is_for_sets_of_observations(server, path, query, says):
    r = requests.get(f"{server}/sta/v1.1/{path}", params=query, timeout=30)
    assert r.status_code == 400 and says in r.json()["detail"], r.text
