"""Sensors, observations, time slices and EDR over HTTP, against a brute-force computation
over the stored observations. The data arrives the real way: MQTT -> `oup ingest`."""
from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta, timezone

import pytest
import requests
import shapely
from shapely.geometry import shape

from conftest import SENSORS, IngesterProcess, store_url, wait_for
from iot_ingest.mqtt import Broker
from iot_ingest.simulate import Publisher
from oup.store import open_observation_store
from oup.sensors.observations import iso_us, us_of

SLICE = 15 * 60 * 1_000_000
T0 = datetime(2032, 6, 1, 10, 0, tzinfo=timezone.utc)  # on a slice border
BORDER_TIMES = [T0, T0 + timedelta(minutes=14, seconds=59, microseconds=999_999),
                T0 + timedelta(minutes=15), T0 + timedelta(minutes=29, seconds=30),
                T0 + timedelta(hours=1)]


@pytest.fixture(scope="module")
def stream(imported, broker, server):
    """Readings on slice borders and just inside them, for every sensor, through MQTT."""
    env = dict(imported, OUP_MQTT_URL=broker.url)
    ing = IngesterProcess(env, "api-test").start()
    pub = Publisher(Broker.from_url(broker.url), f"api-test-pub-{env['OUP_TEST_STORE']}")
    n = 0
    for i, f in enumerate(SENSORS):
        p = f["properties"]
        if p["format"] != "flat":
            continue
        for j, t in enumerate(BORDER_TIMES):
            body = {"phenomenonTime": t.isoformat().replace("+00:00", "Z"),
                    "result": round(20 + i + 1.5 * j, 2)}
            pub.publish(f"oup/sensors/{p['sensor_id']}/observations", json.dumps(body).encode())
            n += 1
    pub.close()
    store = open_observation_store(store_url(env))
    wait_for(lambda: store.counters().get(ing.client_id, {}).get("received", 0) >= n, 60,
             f"{n} messages")
    ing.stop()
    return store


def _all(url: str, params: dict) -> list[dict]:
    out, params = [], dict(params, limit=1000)
    for _ in range(1000):
        r = requests.get(url, params=params, timeout=30)
        assert r.status_code == 200, r.text
        doc = r.json()
        out += doc["features"]
        nxt = [lk["href"] for lk in doc["links"] if lk["rel"] == "next"]
        if not nxt:
            return out
        url, params = nxt[0], None
    raise AssertionError("too many pages")


def _brute_slices(rows, a: int | None, b: int | None, latest: bool = False) -> dict:
    """{(sensor, slice start): (mean, min, max, count)} of the slices [s, s+L) meeting [a, b]."""
    if latest:
        s_last = max(t for _, t, _, _ in rows) // SLICE * SLICE
        a = b = s_last
    groups: dict[tuple, list] = {}
    for sid, t, v, _ in rows:
        s = t // SLICE * SLICE
        if (b is None or s <= b) and (a is None or s + SLICE > a):
            groups.setdefault((sid, s), []).append(v)
    return {k: (sum(v) / len(v), min(v), max(v), len(v)) for k, v in groups.items()}


def _api_slices(server, datetime_: str | None) -> dict:
    params = {} if datetime_ is None else {"datetime": datetime_}
    out = {}
    for f in _all(f"{server}/collections/sensor-slices/items", params):
        p = f["properties"]
        key = (p["sensor_id"], us_of(datetime.fromisoformat(p["slice_start"].replace("Z", "+00:00"))))
        assert f["id"] == f"{p['sensor_id']}@{p['slice_start']}"
        assert us_of(datetime.fromisoformat(p["slice_end"].replace("Z", "+00:00"))) - key[1] == SLICE
        out[key] = (p["mean"], p["min"], p["max"], p["count"])
    return out


def _same(api: dict, brute: dict) -> None:
    assert api.keys() == brute.keys()
    for k in brute:
        assert math.isclose(api[k][0], brute[k][0], rel_tol=1e-9)
        assert api[k][1:] == brute[k][1:]


def _z(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("datetime_", [
    _z(T0),  # an instant on a border: the slice starting there
    _z(T0 + timedelta(minutes=14, seconds=59, microseconds=999_999)),  # last instant of a slice
    _z(T0 + timedelta(minutes=15)),
    f"{_z(T0)}/{_z(T0 + timedelta(minutes=15))}",  # the end on a border: that slice is touched
    f"{_z(T0 + timedelta(minutes=1))}/{_z(T0 + timedelta(minutes=14))}",  # inside one slice
    f"../{_z(T0 + timedelta(minutes=20))}",  # open start
    f"{_z(T0 + timedelta(minutes=20))}/..",  # open end
    None,  # the latest slice with data
])
def test_time_slices_equal_brute_force(stream, server, datetime_):
    rows = stream.observations()
    if datetime_ is None:
        brute = _brute_slices(rows, None, None, latest=True)
    else:
        a_s, _, b_s = datetime_.partition("/") if "/" in datetime_ else (datetime_, "", datetime_)
        parse = lambda s: None if s == ".." else us_of(datetime.fromisoformat(s.replace("Z", "+00:00")))  # noqa: E731
        brute = _brute_slices(rows, parse(a_s), parse(b_s))
    api = _api_slices(server, datetime_)
    assert brute  # the case is not vacuous
    _same(api, brute)


def test_a_slice_by_id_and_bbox(stream, server):
    r = requests.get(f"{server}/collections/sensor-slices/items/aq-statenweg-no2@{_z(T0)}",
                     timeout=10)
    assert r.status_code == 200
    brute = _brute_slices(stream.observations("aq-statenweg-no2"), us_of(T0), us_of(T0))
    assert r.json()["properties"]["count"] == brute[("aq-statenweg-no2", us_of(T0))][3] == 2
    box = (4.46, 51.91, 4.48, 51.94)
    inside = {f["properties"]["sensor_id"] for f in SENSORS
              if shapely.box(*box).intersects(shape(f["geometry"]))}
    got = _all(f"{server}/collections/sensor-slices/items",
               {"datetime": _z(T0), "bbox": ",".join(map(str, box))})
    assert got and {f["properties"]["sensor_id"] for f in got} <= inside
    assert requests.get(f"{server}/collections/sensor-slices/items/nosuch@{_z(T0)}",
                        timeout=10).status_code == 404


def test_observations_by_datetime_and_sensor(stream, server):
    got = _all(f"{server}/collections/observations/items",
               {"datetime": f"{_z(T0)}/{_z(T0 + timedelta(minutes=15))}",
                "sensor_id": "aq-pleinweg-no2"})
    brute = [(t, v) for _, t, v, _ in stream.observations("aq-pleinweg-no2")
             if us_of(T0) <= t <= us_of(T0) + SLICE]
    assert [(us_of(datetime.fromisoformat(f["properties"]["phenomenonTime"].replace(
        "Z", "+00:00"))), f["properties"]["result"]) for f in got] == brute
    assert len(brute) == 3
    one = requests.get(f"{server}/collections/observations/items/{got[0]['id']}", timeout=10)
    assert one.status_code == 200 and one.json()["properties"]["unit"] == "ug/m3"


def test_sensors_show_their_latest_value(stream, server):
    f = requests.get(f"{server}/collections/sensors/items/aq-statenweg-no2", timeout=10).json()
    sid, t, v, _ = max(stream.observations("aq-statenweg-no2"), key=lambda r: r[1])
    assert f["properties"]["latest_time"] == iso_us(t) and f["properties"]["latest_result"] == v


def _series(cov: dict) -> dict:
    out = {}
    for c in cov["coverages"]:
        [(name, rng)] = c["ranges"].items()
        times = [us_of(datetime.fromisoformat(t.replace("Z", "+00:00")))
                 for t in c["domain"]["axes"]["t"]["values"]]
        out[c["id"]] = list(zip(times, rng["values"]))
    return out


def _brute_series(store, sensors, a, b) -> dict:
    out = {}
    for sid in sensors:
        vals = [(t, v) for _, t, v, _ in store.observations(sid) if a <= t <= b]
        if vals:
            out[sid] = vals
    return out


def test_edr_cube_area_position_locations_equal_brute_force(stream, server):
    a, b = T0, T0 + timedelta(minutes=30)
    dt = f"{_z(a)}/{_z(b)}"
    box = (4.44, 51.88, 4.50, 51.935)
    chosen = [f["properties"]["sensor_id"] for f in SENSORS
              if f["properties"]["observed_property"] == "NO2"
              and shapely.box(*box).intersects(shape(f["geometry"]))]
    r = requests.get(f"{server}/collections/sensors/cube", timeout=30, params={
        "bbox": ",".join(map(str, box)), "parameter-name": "NO2", "datetime": dt})
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "CoverageCollection" and "NO2" in r.json()["parameters"]
    assert _series(r.json()) == _brute_series(stream, chosen, us_of(a), us_of(b))

    poly = shapely.box(*box).buffer(-0.005)
    inside = [f["properties"]["sensor_id"] for f in SENSORS
              if poly.intersects(shape(f["geometry"]))]
    r = requests.get(f"{server}/collections/sensors/area", timeout=30,
                     params={"coords": poly.wkt, "datetime": dt})
    assert r.status_code == 200, r.text
    assert _series(r.json()) == _brute_series(stream, inside, us_of(a), us_of(b))

    # position: the station nearest the point (Statenweg has NO2 and PM2.5)
    r = requests.get(f"{server}/collections/sensors/position", timeout=30,
                     params={"coords": "POINT(4.4645 51.9320)", "datetime": dt})
    assert r.status_code == 200, r.text
    assert set(_series(r.json())) == {"aq-statenweg-no2", "aq-statenweg-pm25"}
    # a valid query with nothing in it: 204, no body. The collection and the query type
    # exist, so it is not 404; the provider raises pygeoapi's ProviderNoDataError (no
    # station within POSITION_RADIUS_M, oup/sensors/edr.py), which is 204, and the
    # OpenAPI document declares 204 "no observations for this query" (oup/http/openapi.py)
    far = requests.get(f"{server}/collections/sensors/position", timeout=30,
                       params={"coords": "POINT(5.5 52.5)"})
    assert far.status_code == 204, far.text
    assert far.content == b""

    locs = requests.get(f"{server}/collections/sensors/locations", timeout=30).json()
    assert {f["id"] for f in locs["features"]} == {f["properties"]["sensor_id"] for f in SENSORS}
    r = requests.get(f"{server}/collections/sensors/locations/aq-pleinweg-pm10", timeout=30,
                     params={"datetime": dt})
    assert _series(r.json()) == _brute_series(stream, ["aq-pleinweg-pm10"], us_of(a), us_of(b))


@pytest.mark.parametrize("path, params, reason", [
    ("sensor-slices/items", {"datetime": "2032-06-01T10:00:00Z/2032-06-01T09:00:00Z"},
     r"datetime: start is after end"),
    ("sensor-slices/items", {"datetime": "noon"}, r"datetime: 'noon' is not an RFC 3339"),
    ("sensor-slices/items", {"sortby": "mean"}, r"time slices come ordered .*drop sortby"),
    ("observations/items", {"sortby": "owner"}, r"sortby: unknown property 'owner'"),
    # pygeoapi answers this one before the provider can list the parameters there are
    ("sensors/cube", {"bbox": "4.4,51.9,4.5,51.95", "parameter-name": "CO2"},
     r"(?i)invalid parameter-name"),
    ("sensors/position", {"coords": "POLYGON((4 51, 5 51, 5 52, 4 51))"},
     r"position: coords must be a POINT"),
    ("sensors/position", {"coords": "POINT(nonsense)"}, r"invalid coords"),
])
def test_bad_sensor_queries_are_4xx_with_a_reason(stream, server, path, params, reason):
    # A parameter the collection cannot take is the client's fault: 400 Bad Request, as a
    # problem document (RFC 7807, oup/http/responses.py) whose detail names the parameter
    # and what is wrong with it; any text at all would not tell the client what to fix.
    r = requests.get(f"{server}/collections/{path}", params=params, timeout=30)
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.headers["Content-Type"] == "application/problem+json", r.text
    assert re.search(reason, r.json()["detail"]), r.text
