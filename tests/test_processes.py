"""OGC API Processes with jobs (issue 29), end to end on both stores: a real server, real
`oup worker` processes, OWSLib's Processes client; area-statistics against a
brute-force computation (geopandas over the features as the Features API serves them),
the disclosure rules, changes from the feature history, access, errors, and a worker
killed (SIGKILL) in the middle of a job."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import requests

from conftest import ROOT, api_keys, cpu_group_of, serving, wait_for
from oup.job_cpu import GROUP, idle_group

JSON = {"Content-Type": "application/json"}
ASYNC = {**JSON, "Prefer": "respond-async"}
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class WorkerProcess:
    """`oup worker` as a child process."""

    def __init__(self, env: dict):
        self.env, self.proc = env, None
        self.log = Path(env["OUP_DATA_DIR"]) / "worker.log"

    def start(self) -> "WorkerProcess":
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "oup.cli", "worker",
                                          "--threads", "2"], env=self.env, stdout=log,
                                         stderr=log)
        return self

    def describe(self) -> str:
        """Whether it runs, and the end of its log."""
        tail = self.log.read_text(errors="replace").splitlines()[-40:]
        return (f"worker {self.proc.pid}: exit code {self.proc.poll()}; its log ends:\n"
                + "\n".join(tail))

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no clean-up, the job it runs left as it was
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def twin(imported):
    """The server with the processes (and a test process that waits), a worker, and keys:
    a planner, a planner who may also see youth care, a steward, someone with no role."""
    data = Path(imported["OUP_DATA_DIR"])
    keys = data / "processes-keys.yml"
    shutil.copy(imported["OUP_API_KEYS_FILE"], keys)
    processes = data / "processes.yml"
    processes.write_text((ROOT / "config" / "processes.yml").read_text()
                         + "wait:\n  module: waiting_process\n  roles: [planner]\n")
    env = dict(imported, OUP_API_KEYS_FILE=str(keys), OUP_PROCESSES_FILE=str(processes),
               OUP_JOBS_STALE_SECONDS="1", OUP_JOBS_ATTEMPTS="2",
               PYTHONPATH=f"{ROOT / 'tests'}:{ROOT}")
    made = api_keys(env, {"planner": ["planner"], "analyst": ["planner", "youth-care-analyst"],
                          "steward": ["steward"], "visitor": []}, data.name)
    with serving(env) as url:
        worker = WorkerProcess(env).start()
        try:
            yield SimpleNamespace(url=url, env=env, key=made, worker=worker,
                                  audit=data / "audit.log")
        finally:
            worker.stop()


def _done(twin, job_url: str, who: str = "planner", timeout: float = 60) -> dict:
    last = {}

    def finished():
        last["doc"] = requests.get(job_url, headers=twin.key[who], timeout=30).json()
        return last["doc"] if last["doc"]["status"] in ("successful", "failed",
                                                         "dismissed") else None
    try:
        return wait_for(finished, timeout, f"job {job_url}")
    except AssertionError as exc:  # what the job and its worker were doing, to tell why
        raise AssertionError(f"{exc}\n{twin.worker.describe()}\nthe job: {last}") from None


def _features(twin, cid: str, who: str = "planner") -> list[dict]:
    r = requests.get(f"{twin.url}/collections/{cid}/items", params={"limit": 10000},
                     headers=twin.key[who], timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["features"]


def _brute_force(features: list[dict], areas: list[dict], prop: str | None) -> dict:
    """Per area id: count, mean, p90 of the features whose centroid is within it."""
    import geopandas as gpd

    feats = gpd.GeoDataFrame.from_features(features, crs="OGC:CRS84")
    with warnings.catch_warnings():  # centroids in degrees: what the rule says
        warnings.simplefilter("ignore", UserWarning)
        centroids = feats.geometry.centroid
    points = gpd.GeoDataFrame(feats.drop(columns="geometry"), geometry=centroids,
                              crs="OGC:CRS84")
    if prop:
        points = points[points[prop].notna()]
    zones = gpd.GeoDataFrame.from_features(areas, crs="OGC:CRS84")
    zones["area"] = [a["id"] for a in areas]
    joined = gpd.sjoin(points, zones[["area", "geometry"]], predicate="within")
    out = {}
    for a in zones["area"]:
        values = joined.loc[joined["area"] == a, prop] if prop else joined[joined["area"] == a]
        out[a] = {"count": len(values),
                  "mean": float(values.mean()) if prop and len(values) else None,
                  "p90": float(values.quantile(0.9)) if prop and len(values) else None}
    return out


@pytest.fixture
def owslib_headers():
    """OWSLib's clients share one dict of request headers: the tests' key and Prefer
    must not stay in it."""
    from owslib import ogcapi

    saved = dict(ogcapi.REQUEST_HEADERS)
    yield
    ogcapi.REQUEST_HEADERS.clear()
    ogcapi.REQUEST_HEADERS.update(saved)


def test_owslib_lists_describes_and_runs_area_statistics(twin, owslib_headers):
    from owslib.ogcapi.processes import Processes

    p = Processes(twin.url, headers=dict(twin.key["planner"]))
    assert {"area-statistics", "changes"} <= {x["id"] for x in p.processes()}
    described = p.process("area-statistics")
    assert set(described["inputs"]) == {"collection", "areas", "statistics", "property",
                                        "datetime"}
    inputs = {"collection": "buildings", "areas": "neighbourhoods",
              "statistics": ["count", "mean", "p90"], "property": "height"}
    sync = p.execute("area-statistics", inputs, response="raw")
    assert sync["type"] == "FeatureCollection"
    expected = _brute_force(_features(twin, "buildings"), _features(twin, "neighbourhoods"),
                            "height")
    got = {f["id"]: f["properties"] for f in sync["features"]}
    assert set(got) == set(expected)
    assert sum(e["count"] for e in expected.values()) > 800  # the demo's 853, nearly all
    for area, e in expected.items():
        assert got[area]["count"] == e["count"], area
        for name in ("mean", "p90"):
            assert got[area][name] == pytest.approx(e[name], rel=1e-9), (area, name)
        assert got[area]["buurtnaam"]  # the areas' names come along

    status = p.execute("area-statistics", inputs, async_=True)  # -> 201, Location
    location = p.response_headers["Location"]
    assert location.startswith(f"{twin.url}/jobs/") and status["jobID"] in location
    assert _done(twin, location)["status"] == "successful"
    later = requests.get(f"{location}/results", headers=twin.key["planner"], timeout=30)
    assert later.status_code == 200  # OWSLib asks for a document: {output id: value}
    assert {f["id"]: f["properties"] for f in later.json()["result"]["features"]} == got
    p.execute("area-statistics", inputs, response="raw", async_=True)
    raw = requests.get(f"{p.response_headers['Location']}/results",
                       headers=twin.key["planner"], timeout=30)
    if raw.status_code == 404:  # not finished yet
        _done(twin, p.response_headers["Location"])
        raw = requests.get(f"{p.response_headers['Location']}/results",
                           headers=twin.key["planner"], timeout=30)
    assert raw.headers["Content-Type"].startswith("application/geo+json")
    assert raw.json()["features"] == sync["features"]


def test_area_statistics_keeps_the_disclosure_rules(twin):
    """Youth care (restricted, counts below its min_count suppressed) per neighbourhood:
    one record per neighbourhood is below the threshold, so every statistic is suppressed,
    as the published figures are; the public liveability index, one record per
    neighbourhood as well but without rules, is answered."""
    from oup.catalog import load_catalog

    rules = load_catalog(Path(twin.env["OUP_CATALOG_DIR"]))["jeugdzorg"].disclosure.rules
    threshold = max(r.min_count for r in rules if r.min_count)
    areas = _features(twin, "neighbourhoods")
    for cid, prop, who in (("jeugdzorg", "trajecten", "analyst"),
                           ("leefbaarheid", "score", "analyst")):
        fields = _features(twin, cid, who)[0]["properties"]
        if prop not in fields:  # the liveability index's numeric column, whatever its name
            prop = next(k for k, v in fields.items() if isinstance(v, (int, float))
                        and not isinstance(v, bool))
        r = requests.post(f"{twin.url}/processes/area-statistics/execution", headers={
            **JSON, **twin.key[who]}, json={"inputs": {
                "collection": cid, "areas": "neighbourhoods", "property": prop,
                "statistics": ["count", "sum", "mean"]}}, timeout=60)
        assert r.status_code == 200, r.text
        got = {f["id"]: f["properties"] for f in r.json()["features"]}
        expected = _brute_force(_features(twin, cid, who), areas, prop)
        for area, e in expected.items():
            if cid == "jeugdzorg" and e["count"] < threshold:
                assert (got[area]["count"], got[area]["sum"], got[area]["mean"]) == \
                    (None, None, None), area
            else:
                assert got[area]["count"] == e["count"] and got[area]["mean"] == \
                    pytest.approx(e["mean"]), area
        if cid == "jeugdzorg":
            assert all(e["count"] < threshold for e in expected.values())  # all suppressed
        else:
            assert any(g["count"] for g in got.values())
    # the planner who may not see youth care: for them it does not exist
    r = requests.post(f"{twin.url}/processes/area-statistics/execution", headers={
        **JSON, **twin.key["planner"]}, json={"inputs": {
            "collection": "jeugdzorg", "areas": "neighbourhoods", "statistics": ["count"]}},
        timeout=30)
    assert r.status_code == 400 and r.json()["parameter"] == "collection"


def _box(code: str, x0: float, y0: float, x1: float, y1: float) -> dict:
    return {"type": "Feature", "properties": {"name": code, "height": 1.0, "floors": 1,
                                              "code": code},
            "geometry": {"type": "Polygon", "coordinates": [[
                [x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}}


@pytest.fixture
def sensor_areas(twin):
    """Areas around some of the demo's air-quality sensors (the neighbourhoods, in
    Delfshaven, hold none), written as plots by a steward; gone afterwards."""
    plots = f"{twin.url}/collections/plots/items"
    geo = {"Content-Type": "application/geo+json", **twin.key["steward"]}
    codes = []
    for n, box in enumerate(((4.465, 51.91, 4.48, 51.925),     # Schiedamsevest
                             (4.46, 51.928, 4.47, 51.936),     # Statenweg
                             (4.48, 51.88, 4.50, 51.895))):    # Pleinweg, Zwartewaalstraat
        code = f"S{n}-{twin.env['OUP_TEST_STORE']}"
        assert requests.put(f"{plots}/{code}", headers=geo, json=_box(code, *box),
                            timeout=30).status_code in (200, 201)
        codes.append(code)
    yield codes
    for code in codes:
        requests.delete(f"{plots}/{code}", headers=geo, timeout=30)


def test_area_statistics_of_observations_in_a_week(twin, sensor_areas):
    """NO2 readings of the demo's sensors (a week and the days around it, in 2001: no
    other test writes there), per area, against geopandas over the readings written and
    the sensors as the Features API serves them."""
    import geopandas as gpd

    from conftest import store_url
    from oup.sensors.observations import Observation
    from oup.store import open_observation_store

    sensors = _features(twin, "sensors")
    rng = np.random.default_rng(29)
    start = datetime(2001, 3, 5, tzinfo=timezone.utc)
    rows = []
    for s in sensors:
        for t in rng.uniform(-2, 9, 30):  # days from the start: some outside the week
            at = int((start.timestamp() + t * 86400) * 1e6)
            rows.append((s["properties"]["sensor_id"], at, round(float(rng.uniform(0, 80)), 2)))
    store = open_observation_store(store_url(twin.env))
    try:
        store.write_batch("processes-test", [[Observation(sid, at, v, at)] for sid, at, v
                                             in rows])
    finally:
        store.close()
    r = requests.post(f"{twin.url}/processes/area-statistics/execution", headers={
        **JSON, **twin.key["planner"]}, json={"inputs": {
            "collection": "observations", "areas": "plots", "property": "NO2",
            "statistics": ["count", "mean", "max", "p50", "p90"],
            "datetime": "2001-03-05T00:00:00Z/2001-03-12T00:00:00Z"}}, timeout=60)
    assert r.status_code == 200, r.text
    got = {f["id"]: f["properties"] for f in r.json()["features"]}
    areas = _features(twin, "plots")
    where = {s["properties"]["sensor_id"]: s for s in sensors
             if s["properties"]["observed_property"] == "NO2"}
    lo, hi = start.timestamp() * 1e6, start.timestamp() * 1e6 + 7 * 86400e6
    week = [(where[sid], v) for sid, at, v in rows if sid in where and lo <= at <= hi]
    points = gpd.GeoDataFrame({"v": [v for _, v in week]}, geometry=gpd.GeoSeries.from_xy(
        [s["geometry"]["coordinates"][0] for s, _ in week],
        [s["geometry"]["coordinates"][1] for s, _ in week]), crs="OGC:CRS84")
    zones = gpd.GeoDataFrame.from_features(areas, crs="OGC:CRS84")
    zones["area"] = [a["id"] for a in areas]
    joined = gpd.sjoin(points, zones[["area", "geometry"]], predicate="within")
    assert joined["area"].nunique() == 3  # the test means something: areas with sensors
    for area in zones["area"]:
        v = joined.loc[joined["area"] == area, "v"]
        assert got[area]["count"] == len(v), area
        if len(v):
            assert got[area]["mean"] == pytest.approx(v.mean())
            assert got[area]["max"] == pytest.approx(v.max())
            assert got[area]["p50"] == pytest.approx(v.median())
            assert got[area]["p90"] == pytest.approx(v.quantile(0.9))  # linear, as numpy
        else:
            assert got[area]["mean"] is None


def test_changes_from_the_feature_history(twin, owslib_headers):
    from owslib.ogcapi.processes import Processes

    plots = f"{twin.url}/collections/plots/items"
    geo = {"Content-Type": "application/geo+json", **twin.key["steward"]}
    suffix = twin.env["OUP_TEST_STORE"]

    def plot(code: str, x: float, height: float) -> dict:
        return {"type": "Feature", "properties": {"name": code, "height": height,
                                                  "floors": 1, "code": code},
                "geometry": {"type": "Polygon", "coordinates": [[
                    [4.45 + x, 51.9], [4.4501 + x, 51.9], [4.4501 + x, 51.9001],
                    [4.45 + x, 51.9]]]}}

    kept, gone, new = (f"Q{n}-{suffix}" for n in (1, 2, 3))
    for code in (kept, gone):
        assert requests.put(f"{plots}/{code}", headers=geo, json=plot(code, 0.001, 3.0),
                            timeout=30).status_code == 201
    time.sleep(0.05)  # (one machine: the store's clock is this one)
    instant = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    time.sleep(0.05)
    assert requests.patch(f"{plots}/{kept}", headers={**geo, "Content-Type":
                          "application/merge-patch+json"}, json={"properties": {
                              "height": 7.5}}, timeout=30).status_code == 200
    assert requests.delete(f"{plots}/{gone}", headers=geo, timeout=30).status_code == 204
    assert requests.put(f"{plots}/{new}", headers=geo, json=plot(new, 0.002, 4.0),
                        timeout=30).status_code == 201
    try:
        p = Processes(twin.url, headers=dict(twin.key["planner"]))
        answer = p.execute("changes", {"collection": "plots", "from": instant,
                                       "bbox": [4.449, 51.899, 4.453, 51.902]},
                           response="raw")
        by_id = {f["id"]: f["properties"] for f in answer["features"]}
        assert set(by_id) == {kept, gone, new}  # P0..P2 (elsewhere, unchanged) are not
        assert by_id[new]["change"] == "added" and by_id[new]["before"] is None
        assert by_id[new]["after"]["height"] == 4.0
        assert by_id[gone]["change"] == "removed" and by_id[gone]["after"] is None
        assert by_id[gone]["before"]["height"] == 3.0
        assert by_id[kept]["change"] == "changed" and not by_id[kept]["geometry_changed"]
        assert (by_id[kept]["before"]["height"], by_id[kept]["after"]["height"]) == (3.0, 7.5)
        p.execute("changes", {"collection": "plots", "from": instant,
                              "bbox": [4.449, 51.899, 4.453, 51.902]}, async_=True)
        job = p.response_headers["Location"]
        assert _done(twin, job)["status"] == "successful"
        later = requests.get(f"{job}/results", headers=twin.key["planner"], timeout=30).json()
        assert later["result"]["features"] == answer["features"]
    finally:
        for code in (kept, new):
            requests.delete(f"{plots}/{code}", headers=geo, timeout=30)


def test_who_may_run_and_see_jobs(twin):
    execute = f"{twin.url}/processes/wait/execution"
    body = {"inputs": {"seconds": 0}}
    assert requests.post(execute, headers=JSON, json=body, timeout=30).status_code == 401
    r = requests.post(execute, headers={**JSON, **twin.key["visitor"]}, json=body, timeout=30)
    assert r.status_code == 403 and "planner" in r.json()["detail"]
    assert requests.get(f"{twin.url}/jobs", timeout=30).status_code == 401
    r = requests.post(execute, headers={**ASYNC, **twin.key["planner"]}, json=body, timeout=30)
    assert r.status_code == 201
    job = r.headers["Location"]
    assert _done(twin, job)["status"] == "successful"
    for other in ("analyst", "visitor"):  # another caller's job does not exist for them
        for url in (job, f"{job}/results"):
            assert requests.get(url, headers=twin.key[other], timeout=30).status_code == 404
        assert requests.delete(job, headers=twin.key[other], timeout=30).status_code == 404
    mine = requests.get(f"{twin.url}/jobs", headers=twin.key["planner"], timeout=30).json()
    assert job in {j["links"][0]["href"] for j in mine["jobs"]}
    theirs = requests.get(f"{twin.url}/jobs", headers=twin.key["analyst"], timeout=30).json()
    assert job not in {j["links"][0]["href"] for j in theirs["jobs"]}
    job_id = job.rsplit("/", 1)[1]
    audited = [json.loads(line) for line in twin.audit.read_text().splitlines()
               if job_id in line]
    assert {a["action"] for a in audited} >= {"POST /processes/{processId}/execution",
                                             "job wait"}
    assert all(a["who"].startswith("key:planner") for a in audited)


def test_landing_page_conformance_and_openapi_offer_processes(twin):
    links = {link["href"] for link in requests.get(f"{twin.url}/", timeout=30).json()["links"]}
    assert {f"{twin.url}/processes", f"{twin.url}/jobs"} <= links
    conforms = requests.get(f"{twin.url}/conformance", timeout=30).json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core" in conforms
    paths = requests.get(f"{twin.url}/openapi.json", timeout=30).json()["paths"]
    assert {"/processes", "/processes/{processId}/execution", "/jobs/{jobId}",
            "/jobs/{jobId}/results"} <= set(paths)
    assert "delete" in paths["/jobs/{jobId}"]


@pytest.mark.parametrize("inputs, named", [
    ({"areas": "neighbourhoods", "statistics": ["count"]}, "collection"),
    ({"collection": "buildings", "areas": "neighbourhoods", "statistics": ["p101"]},
     "statistics"),
    ({"collection": "buildings", "areas": "neighbourhoods", "statistics": []}, "statistics"),
    ({"collection": "nowhere", "areas": "neighbourhoods", "statistics": ["count"]},
     "collection"),
    ({"collection": "buildings", "areas": "neighbourhoods", "statistics": ["mean"]},
     "property"),
    ({"collection": "buildings", "areas": "neighbourhoods", "statistics": ["mean"],
      "property": "roof"}, "property"),
    ({"collection": "buildings", "areas": "neighbourhoods", "statistics": ["count"],
      "datetime": "last week"}, "datetime"),
    ({"collection": "buildings", "areas": "neighbourhoods", "statistics": ["count"],
      "colour": "red"}, "colour"),
])
def test_bad_inputs_are_400_naming_the_input(twin, inputs, named):
    r = requests.post(f"{twin.url}/processes/area-statistics/execution",
                      headers={**JSON, **twin.key["planner"]}, json={"inputs": inputs},
                      timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["parameter"] == named


def test_bad_requests_to_changes_and_unknown_things(twin):
    h = {**JSON, **twin.key["planner"]}
    r = requests.post(f"{twin.url}/processes/changes/execution", headers=h, json={"inputs": {
        "collection": "plots", "from": "2030-01-01T00:00:00Z",
        "to": "2020-01-01T00:00:00Z"}}, timeout=30)
    assert r.status_code == 400 and r.json()["parameter"] == "from"
    r = requests.post(f"{twin.url}/processes/changes/execution", headers=h, json={"inputs": {
        "collection": "observations", "from": "2020-01-01T00:00:00Z"}}, timeout=30)
    assert r.status_code == 400 and r.json()["parameter"] == "collection"
    r = requests.post(f"{twin.url}/processes/changes/execution", headers=h, data="{not json",
                      timeout=30)
    assert r.status_code == 400
    assert requests.post(f"{twin.url}/processes/nothing/execution", headers=h, json={},
                         timeout=30).status_code == 404
    assert requests.get(f"{twin.url}/jobs/0123abcd", headers=h, timeout=30).status_code == 404


def test_a_failing_job_ends_failed_with_its_reason(twin):
    # buildings' `status` exists but is text: found when the job reads the values
    inputs = {"collection": "buildings", "areas": "neighbourhoods", "statistics": ["sum"],
              "property": "status"}
    r = requests.post(f"{twin.url}/processes/area-statistics/execution",
                      headers={**ASYNC, **twin.key["planner"]}, json={"inputs": inputs},
                      timeout=30)
    job = _done(twin, r.headers["Location"])
    assert job["status"] == "failed" and "not numeric" in job["message"]
    r = requests.get(f"{r.headers['Location']}/results", headers=twin.key["planner"],
                     timeout=30)
    assert r.status_code == 422 and "not numeric" in r.json()["detail"]


def test_progress_and_dismissal_of_a_running_job(twin):
    r = requests.post(f"{twin.url}/processes/wait/execution",
                      headers={**ASYNC, **twin.key["planner"]},
                      json={"inputs": {"seconds": 20}}, timeout=30)
    job = r.headers["Location"]
    wait_for(lambda: requests.get(job, headers=twin.key["planner"], timeout=30).json()
             ["progress"] > 0, 60, "the job to report progress")
    gone = requests.delete(job, headers=twin.key["planner"], timeout=30)
    assert gone.status_code == 200 and gone.json()["status"] == "dismissed"
    assert requests.get(f"{job}/results", headers=twin.key["planner"],
                        timeout=30).status_code == 404
    job_id = job.rsplit("/", 1)[1]
    wait_for(lambda: any(job_id in line and '"dismissed"' in line and "job wait" in line
                         for line in twin.audit.read_text().splitlines()), 30,
             "the worker to stop the dismissed job")


def test_waiting_executes_leave_threads_for_other_requests(twin):
    """A synchronous execute holds one of a server worker's threads while its job runs.
    As many of them as the two workers have threads: each worker waits on at most
    OUP_JOBS_SYNC_WAITING (2) and answers the others 201 at once, as asynchronous
    executes, and a request for the collections is answered while the waiting ones
    still wait (before, every thread waited and so did that request)."""
    from concurrent.futures import ThreadPoolExecutor

    execute, me = f"{twin.url}/processes/wait/execution", twin.key["planner"]
    n, waiting = 2 * 4, 2 * 2  # the threads of both workers (OUP_THREADS); may wait
    with ThreadPoolExecutor(n) as pool:
        answers = [pool.submit(requests.post, execute, headers={**JSON, **me},
                               json={"inputs": {"seconds": 20}}, timeout=90)
                   for _ in range(n)]
        try:
            wait_for(lambda: sum(a.done() for a in answers) >= n - waiting, 30,
                     "the executes that may not wait")
            early = [a for a in answers if a.done()]
            assert all(a.result().status_code == 201 and a.result().headers["Location"]
                       for a in early)
            r = requests.get(f"{twin.url}/collections", timeout=30)
            assert r.status_code == 200 and r.json()["collections"]
            assert sum(a.done() for a in answers) == len(early)  # the others still wait
        finally:  # the jobs dismissed: the waiting executes end, and the worker is free
            for job in requests.get(f"{twin.url}/jobs", headers=me,
                                    timeout=30).json()["jobs"]:
                if job["processID"] == "wait" and job["status"] in ("accepted", "running"):
                    requests.delete(f"{twin.url}/jobs/{job['jobID']}", headers=me,
                                    timeout=30)
    # the waiting ones answer their job: dismissed (404: no results), or done
    assert {a.result().status_code for a in answers if a not in early} <= {200, 404}


def test_a_killed_worker_loses_no_job(twin):
    """SIGKILL the worker in the middle of a job: a new worker takes it back and runs it
    again; killed in its last attempt too, the job fails with that reason."""
    def start(seconds: float) -> str:
        r = requests.post(f"{twin.url}/processes/wait/execution",
                          headers={**ASYNC, **twin.key["planner"]},
                          json={"inputs": {"seconds": seconds}}, timeout=30)
        assert r.status_code == 201
        return r.headers["Location"]

    def running(job: str, before: str | None = None):
        """The job's start (a run of it other than ``before``) once it reports progress."""
        def run():
            doc = requests.get(job, headers=twin.key["planner"], timeout=30).json()
            return doc["started"] if doc["status"] == "running" and doc["progress"] > 0 \
                and doc["started"] != before else None
        return wait_for(run, 60, "the job to run")

    retried = start(3)
    running(retried)
    twin.worker.kill()
    twin.worker.start()
    assert _done(twin, retried)["status"] == "successful"
    job_id = retried.rsplit("/", 1)[1]
    runs = [json.loads(line) for line in twin.audit.read_text().splitlines()
            if job_id in line and "job wait" in line]
    assert [r["attempt"] for r in runs] == [2]  # the first run died with its worker

    lost, run = start(30), None
    for _ in range(2):  # both its attempts
        run = running(lost, run)
        twin.worker.kill()
        twin.worker.start()
    job = _done(twin, lost)
    assert job["status"] == "failed" and "worker stopped" in job["message"]


def _policies(pid: int) -> dict[int, int]:
    """The scheduling policy of each thread of process ``pid`` (field 41 of its stat)."""
    return {int(tid): int(Path(f"/proc/{pid}/task/{tid}/stat").read_text()
                          .rsplit(")", 1)[1].split()[38])
            for tid in os.listdir(f"/proc/{pid}/task")}


def test_a_worker_in_the_idle_class_runs_its_jobs_there_and_nothing_else(twin):
    """OUP_WORKER_IDLE_CLASS and OUP_WORKER_CPUS: the thread that runs a job is in Linux's
    idle scheduling class (SCHED_IDLE), in the idle CPU group where there is one, and on
    the jobs' cores; the worker's other threads, its heartbeat among them, are not, so a
    job that waits for the CPU is not taken back as lost."""
    everywhere = os.sched_getaffinity(0)
    core = max(everywhere)
    twin.worker.stop()
    idle = WorkerProcess(dict(twin.env, OUP_WORKER_IDLE_CLASS="true",
                              OUP_WORKER_CPUS=str(core))).start()
    try:
        r = requests.post(f"{twin.url}/processes/wait/execution",
                          headers={**ASYNC, **twin.key["planner"]},
                          json={"inputs": {"seconds": 3}}, timeout=30)
        assert r.status_code == 201, r.text
        job = r.headers["Location"]
        wait_for(lambda: requests.get(job, headers=twin.key["planner"], timeout=30)
                 .json()["progress"] > 0, 60, "the job to run")
        policies = _policies(idle.proc.pid)
        assert list(policies.values()).count(os.SCHED_IDLE) == 1, policies  # the job's
        assert policies[idle.proc.pid] == os.SCHED_OTHER and len(policies) > 2, policies
        (job_thread,) = [t for t, p in policies.items() if p == os.SCHED_IDLE]
        assert os.sched_getaffinity(job_thread) == {core}
        assert os.sched_getaffinity(idle.proc.pid) == everywhere
        if not isinstance(idle_group(), str):  # (root, cgroup v1's cpu controller)
            groups = {t: cpu_group_of(t) for t in policies}
            assert [t for t, g in groups.items() if g == f"/{GROUP}"] == [job_thread], groups
        assert _done(twin, job)["status"] == "successful"
    finally:
        idle.stop()
        twin.worker.start()


def test_sun_and_shadow_over_the_demo_buildings(twin, owslib_headers):
    """The process end to end on the demo's buildings (the geometry itself is checked
    against references in test_sun_shadow.py): shadows hold the buildings that cast
    them, sun hours lie within the day, and a proposed tower only takes sun away."""
    from owslib.ogcapi.processes import Processes
    from shapely.geometry import box, shape

    building = requests.get(f"{twin.url}/collections/buildings/items",
                            params={"limit": 1, "offset": 40}, timeout=30).json()["features"][0]
    footprint = shape(building["geometry"])
    x0, y0, x1, y1 = footprint.bounds
    area = [x0 - 0.0007, y0 - 0.0005, x1 + 0.0007, y1 + 0.0005]
    cx, cy = (area[0] + area[2]) / 2, area[1] + 0.0001  # a tower at the area's south edge
    tower = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"height": 60},
        "geometry": box(cx - 0.0001, cy - 0.00006, cx + 0.0001, cy).__geo_interface__}]}
    p = Processes(twin.url, headers=dict(twin.key["planner"]))
    assert "sun-and-shadow" in [x["id"] for x in p.processes()]
    result = p.execute("sun-and-shadow", {"area": area, "date": "2026-06-21", "step": 60,
                                          "grid_spacing": 15, "scenario": tower},
                       response="raw")
    assert "shadows" in result, f"{result}\n{twin.worker.describe()}"
    steps = [f for f in result["shadows"]["features"] if not f["properties"]["scenario"]]
    assert len(steps) == 24  # a day at one-hour steps
    sunny = [f for f in steps if f["properties"]["directSun"]]
    assert 14 <= len(sunny) <= 18 and all(f["geometry"] for f in sunny)
    for f in sunny:  # a building is in its own shadow
        assert shape(f["geometry"]).intersection(footprint).area >= 0.99 * footprint.area
    points = result["sunHours"]["features"]
    hours = [f["properties"]["sunHours"] for f in points]
    assert points and all(0 <= h <= len(sunny) for h in hours)
    assert min(hours) < max(hours)  # the buildings shade some of the ground
    difference = [f["properties"]["difference"] for f in points]
    assert min(difference) < 0 and max(difference) <= 1e-9  # a tower takes, never gives
    r = requests.post(f"{twin.url}/processes/sun-and-shadow/execution",
                      headers={**twin.key["planner"], "Content-Type": "application/json"},
                      json={"inputs": {"area": area, "date": "21 June"}}, timeout=30)
    assert r.status_code == 400 and "date" in r.json()["detail"], r.text


def _tiles_over(bbox: list[float], z: int) -> list[tuple[int, int]]:
    """The WebMercatorQuad tiles (row, col) at zoom ``z`` over ``bbox`` (CRS84), by the
    slippy-map formula (independent of OUP's tile matrix sets)."""
    import math

    def col_row(lon: float, lat: float) -> tuple[int, int]:
        n = 2 ** z
        y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
        return int((lon + 180) / 360 * n), int(y)

    c0, r0 = col_row(bbox[0], bbox[3])
    c1, r1 = col_row(bbox[2], bbox[1])
    return [(r, c) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]


def test_area_statistics_result_is_a_temporary_collection(twin):
    """The result of an area-statistics job is also the collection job-<id>: its items
    page through the job's result, its vector tiles hold every area with its statistics,
    its style colours them by the first statistic; it is the caller's alone (404 to
    anyone else) and gone once the job is dismissed."""
    import mapbox_vector_tile

    me = twin.key["planner"]
    r = requests.post(f"{twin.url}/processes/area-statistics/execution", headers={
        **ASYNC, **me}, json={"inputs": {
            "collection": "buildings", "areas": "neighbourhoods", "property": "height",
            "statistics": ["mean", "count", "p90"]}}, timeout=60)
    job = r.headers["Location"]
    status = _done(twin, job)
    assert status["status"] == "successful"
    cid = f"job-{status['jobID']}"
    here = f"{twin.url}/collections/{cid}"
    assert here in {link["href"] for link in status["links"]}
    raw = requests.get(f"{job}/results", headers=me, timeout=30)
    assert f"<{here}>" in raw.headers["Link"]
    result = raw.json()
    assert {f["id"] for f in result["features"]} == \
        {a["id"] for a in _features(twin, "neighbourhoods")}  # the answer as ever

    coll = requests.get(here, headers=me, timeout=30)
    assert coll.status_code == 200 and coll.json()["id"] == cid
    # the items, a page of 7 at a time through the next links: the job's result
    items, url, pages = [], f"{here}/items?limit=7", 0
    while url and pages < 100:
        page = requests.get(url, headers=me, timeout=30).json()
        assert page["numberMatched"] == len(result["features"])
        items += page["features"]
        url = next((x["href"] for x in page["links"] if x["rel"] == "next"), None)
        pages += 1
    assert pages == -(-len(result["features"]) // 7)
    assert items == \
        result["features"]
    one = result["features"][3]
    assert requests.get(f"{here}/items/{one['id']}", headers=me,
                        timeout=30).json()["properties"] == one["properties"]

    # the tiles at z15 over the areas: each area in them with its statistics
    import shapely
    from shapely.geometry import shape

    bbox = list(shapely.total_bounds([shape(f["geometry"]) for f in result["features"]]))
    seen = {}
    for row, col in _tiles_over(bbox, 15):
        t = requests.get(f"{here}/tiles/WebMercatorQuad/15/{row}/{col}", headers=me,
                         timeout=30)
        assert t.status_code in (200, 204), t.text
        if t.status_code == 200:
            assert t.headers["Content-Type"] == "application/vnd.mapbox-vector-tile"
            for f in mapbox_vector_tile.decode(t.content)[cid]["features"]:
                seen[f["properties"]["area"]] = f["properties"]
    expected = {f["properties"]["area"]: f["properties"] for f in result["features"]}
    assert set(seen) == set(expected)
    for area, props in expected.items():  # MVT has no null: a suppressed value is absent
        assert seen[area] == pytest.approx({k: v for k, v in props.items() if v is not None})

    # the style: a graduated fill on the first statistic, with its legend, from the tiles
    style = requests.get(f"{here}/styles/default", headers=me, timeout=30).json()
    fill = next(x for x in style["layers"] if x["type"] == "fill")
    assert fill["source"] == cid and fill["source-layer"] == cid
    step = fill["paint"]["fill-color"][2]  # ["case", ["has", p], ["step", ...], nodata]
    assert step[:2] == ["step", ["to-number", ["get", "mean"]]]
    means = [p["mean"] for p in expected.values() if p["mean"] is not None]
    legend = fill["metadata"]["oup:legend"]
    assert len(legend) >= 3 and all("mean" in e["label"] for e in legend)
    breaks = step[3::2]
    assert min(means) < breaks[0] and breaks[-1] <= max(means)
    assert style["sources"][cid]["tiles"][0].startswith(f"{here}/tiles/WebMercatorQuad/")

    # the map shows it (in Chromium, as the caller): every area, in its classes
    if Path(CHROMIUM).exists():
        res = subprocess.run(["node", "jobmap.mjs", twin.url, cid, me["X-API-Key"]],
                             cwd=ROOT / "tests" / "js", capture_output=True, text=True,
                             timeout=300, env={"CHROMIUM": CHROMIUM, "PATH": "/usr/bin:/bin"})
        shown = json.loads(res.stdout.strip().splitlines()[-1])
        assert shown["error"] is None and shown["ready"], shown
        assert shown["foreign"] == [] and shown["pageErrors"] == [], shown
        assert cid in shown["layers"] and "buildings" in shown["layers"]
        assert shown["legend"] == [e["label"] for e in legend]
        assert set(shown["areas"]) == set(expected)
        b = shown["bounds"]  # framed on the areas
        assert b[0] <= bbox[0] and b[1] <= bbox[1] and b[2] >= bbox[2] and b[3] >= bbox[3]

    # nobody else sees it: another planner, someone without a role, anonymous
    tile = f"{here}/tiles/WebMercatorQuad/15/{_tiles_over(bbox, 15)[0][0]}/" \
           f"{_tiles_over(bbox, 15)[0][1]}"
    for headers in (twin.key["analyst"], twin.key["visitor"], {}):
        for url in (here, f"{here}/items", tile, f"{here}/styles/default"):
            assert requests.get(url, headers=headers, timeout=30).status_code == 404, url
    listed = requests.get(f"{twin.url}/collections", headers=twin.key["analyst"],
                          params={"f": "json"}, timeout=30).json()["collections"]
    assert cid not in {c["id"] for c in listed}

    # dismissed: its results, and the collection with them, are gone
    assert requests.delete(job, headers=me, timeout=30).status_code == 200
    for url in (here, f"{here}/items", tile, f"{here}/styles/default"):
        assert requests.get(url, headers=me, timeout=30).status_code == 404, url
