"""SensorThings and the access classes, both stores, on real servers over the test city's
store: the sensors of a restricted stream collection (``care-sensors``, which sorts before
``sensors``) are on no path, in no list, expansion, filter or count of ``/sta/v1.1``, for
anyone; and when the served sensors collection itself is restricted, a caller without its
role gets the same 404 on every path and method, whatever the query, as for a path that
never existed."""
from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from conftest import SENSORS, oup, serving, store_url
from test_writes import _token

pytestmark = pytest.mark.slow
CARE = ["care-1", "care-2"]  # ids no public sensor has (the test looks for them in answers)
T = datetime(2038, 7, 1, tzinfo=timezone.utc)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _catalogue(source: Path, target: Path, care: bool, sensors_restricted: bool) -> Path:
    """The test city's catalogue, with a restricted stream collection of care sensors and
    the sensors collection restricted, or not."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    sensors = (source / "sensors" / "collection.yml").read_text()
    if care:
        folder = target / "care-sensors"
        folder.mkdir()
        yml = sensors.replace("classification: public\n",
                              "classification: restricted\nroles: [care-staff]\n")
        (folder / "collection.yml").write_text(yml.replace("- path: sensors.geojson",
                                                           "- path: care.geojson"))
        feats = [{"type": "Feature",
                  "geometry": {"type": "Point", "coordinates": [4.47, 51.92]},
                  "properties": {"sensor_id": sid, "name": f"care home {sid}",
                                 "observed_property": "NO2", "owner": "care",
                                 "format": "flat"}} for sid in CARE]
        (folder / "care.geojson").write_text(json.dumps({"type": "FeatureCollection",
                                                         "features": feats}))
    if sensors_restricted:
        (target / "sensors" / "collection.yml").write_text(sensors.replace(
            "classification: public\n", "classification: restricted\nroles: [sensor-analyst]\n"))
    return target


@pytest.fixture(scope="module")
def care(imported, workdir):
    """The test city's store with a restricted stream collection imported, and one
    observation of each care sensor (as the ingester writes them)."""
    from oup.sensors.observations import Observation, us_of
    from oup.store import open_observation_store

    cat = _catalogue(Path(imported["OUP_CATALOG_DIR"]),
                     workdir / f"care-{imported['OUP_TEST_STORE']}", True, False)
    env = dict(imported, OUP_CATALOG_DIR=str(cat))
    oup(env, "import", "--quiet", "care-sensors")
    store = open_observation_store(store_url(env))
    try:
        at = us_of(T)
        res = store.write_batch("care-test", [[Observation(s, at, 12.5, at)] for s in CARE])
    finally:
        store.close()
    return env, sorted(res.ids.values())


def _headers(credentials, roles: list[str]) -> dict:
    return {"Authorization": "Bearer " + _token(credentials, "-".join(roles) or "none", roles)}


def test_a_sensor_one_may_not_see_is_on_no_path(care, credentials):
    env, oids = care
    assert len(oids) == 2
    # the writer may create observations; the care staff may see the care sensors, which
    # are still not served here: one stream collection is (the public one)
    callers = {"anonymous": {}, "writer": _headers(credentials, ["sensor-writer"]),
               "care staff": _headers(credentials, ["care-staff", "sensor-writer"])}
    window = f"phenomenonTime ge {_iso(T)} and phenomenonTime lt {_iso(T + timedelta(hours=1))}"
    with serving(env) as url:
        base = f"{url}/sta/v1.1"
        # the care sensors are in the store and readable where their access class says
        items = requests.get(f"{url}/collections/care-sensors/items",
                             headers=callers["care staff"], timeout=30)
        assert sorted(f["id"] for f in items.json()["features"]) == CARE, items.text
        public = sorted(f["properties"]["sensor_id"] for f in SENSORS)
        for who, headers in callers.items():
            get = lambda path, **q: requests.get(f"{base}/{path}", params=q,  # noqa: E731
                                                 headers=headers, timeout=30)
            for sid in CARE:
                for path in (f"Things('{sid}')", f"Datastreams('{sid}')",
                             f"Datastreams('{sid}')/Observations", f"Sensors('{sid}')",
                             f"Locations('{sid}')", f"FeaturesOfInterest('{sid}')/Observations",
                             f"Things('{sid}')/Datastreams", f"Datastreams('{sid}')/Thing/name"):
                    r = get(path)
                    never = get(path.replace(sid, "never-was"))
                    assert r.status_code == never.status_code == 404, (who, path, r.text)
                    # the same answer as for an id that never was: nothing to tell them apart
                    assert r.json()["detail"] == never.json()["detail"].replace(
                        "never-was", sid), (who, path)
            for oid in oids:
                for path in (f"Observations({oid})", f"Observations({oid})/Datastream",
                             f"Observations({oid})/result/$value"):
                    assert get(path).status_code == 404, (who, path)
            for sid in CARE:
                for path, body in ((f"Datastreams('{sid}')/Observations", {"result": 1.0}),
                                   ("Observations", {"result": 1.0,
                                                     "Datastream": {"@iot.id": sid}}),
                                   ("CreateObservations", [{
                                       "Datastream": {"@iot.id": sid}, "components": [
                                           "phenomenonTime", "result"],
                                       "dataArray": [[_iso(T + timedelta(minutes=5)), 1.0]]}])):
                    r = requests.post(f"{base}/{path}", json=body, headers=headers, timeout=30)
                    assert r.status_code in ((401,) if who == "anonymous" else (404,)), \
                        (who, path, r.text)
            # absent from every list, expansion, filter and count
            for path, q in (("Things", {}), ("Datastreams", {}), ("Sensors", {}),
                            ("Locations", {}), ("FeaturesOfInterest", {}),
                            ("HistoricalLocations", {}), ("ObservedProperties('NO2')/Datastreams",
                                                          {}),
                            ("Things", {"$expand": f"Datastreams($expand=Observations("
                                                   f"$filter={window}))"})):
                r = get(path, **{"$top": "1000", "$count": "true", **q})
                assert r.status_code == 200, (who, path, r.text)
                ids = [v["@iot.id"] for v in r.json()["value"]]
                assert set(ids) <= set(public) and r.json()["@iot.count"] == len(ids), (who, path)
                assert "care" not in r.text, (who, path)
            for path, q in (("Observations", {"$filter": window}),
                            ("Observations", {"$filter": "Datastream/id eq 'care-1'"}),
                            ("Observations", {"$filter": f"id eq {oids[0]}"}),
                            ("Observations", {"$filter": window, "$resultFormat": "dataArray"}),
                            ("Things", {"$filter": "startswith(id, 'care')"}),
                            ("Datastreams", {"$filter": "substringof('care', Thing/name)"})):
                r = get(path, **{"$count": "true", **q})
                assert r.status_code == 200, (who, path, r.text)
                assert r.json()["@iot.count"] == 0 and r.json()["value"] == [], (who, q)


def test_a_restricted_sensors_collection_is_a_404_everywhere_whatever_is_asked(
        imported, credentials, workdir):
    cat = _catalogue(Path(imported["OUP_CATALOG_DIR"]),
                     workdir / f"restricted-{imported['OUP_TEST_STORE']}", False, True)
    analyst = _headers(credentials, ["sensor-analyst"])
    others = {"anonymous": {}, "writer": _headers(credentials, ["sensor-writer"]),
              "care staff": _headers(credentials, ["care-staff"])}
    sid = "aq-statenweg-no2"
    asks = [("GET", "", {}), ("GET", "Things", {}), ("GET", f"Things('{sid}')", {}),
            ("GET", f"Datastreams('{sid}')/Observations", {"$count": "true"}),
            ("GET", "Observations", {"$filter": f"Datastream/id eq '{sid}'", "$count": "true"}),
            ("GET", "Things", {"$filter": "not a filter"}),  # a 400 would tell it is here
            ("GET", "Things", {"$resultFormat": "dataArray"}),
            ("GET", "Things", {"nonsense": "1"}), ("GET", "Things", {"f": "xml"}),
            ("GET", "Nothing('x')", {}), ("DELETE", f"Things('{sid}')", {}),
            ("PUT", "", {}), ("POST", f"Datastreams('{sid}')/Observations", {}),
            ("POST", "CreateObservations", {})]
    audit = Path(imported["OUP_DATA_DIR"]) / "audit.log"
    before = len(audit.read_text().splitlines()) if audit.exists() else 0
    with serving(dict(imported, OUP_CATALOG_DIR=str(cat))) as url:
        base = f"{url}/sta/v1.1"
        for who, headers in others.items():
            for method, path, q in asks:
                r = requests.request(method, f"{base}/{path}".rstrip("/"), params=q,
                                     headers=headers, json={"result": 1.0}, timeout=30)
                # the answer of a path that never was: nothing to tell the sensors are here
                assert (r.status_code, r.json()["detail"]) == (
                    404, f"nothing at /sta/v1.1/{path}".rstrip("/")), (who, method, path, q)
        # with the role: there
        r = requests.get(f"{base}/Things('{sid}')", headers=analyst, timeout=30)
        assert r.status_code == 200 and r.json()["@iot.id"] == sid, r.text
        r = requests.get(f"{base}/Things", params={"$count": "true", "$filter":
                         "startswith(id, 'aq-')"}, headers=analyst, timeout=30)
        assert r.status_code == 200 and r.json()["@iot.count"] == len(
            [f for f in SENSORS if f["properties"]["sensor_id"].startswith("aq-")]), r.text
    # the refusals are audited, as a restricted collection's are
    lines = [json.loads(line) for line in audit.read_text().splitlines()[before:]]
    refused = [a for a in lines if a["collection"] == "sensors" and a["result"] == 404]
    assert len(refused) == len(asks) * len(others), lines[-3:]
