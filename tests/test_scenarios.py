"""Named scenarios (issue 29) end to end on both stores, on a real server with a real
worker: a planner makes one, writes into it through the collection's write path,
reads the collection as the scenario has it (checked against the city as it is with
the changes applied here, in Python), and the city itself does not change (its items,
history and change events); who may (401, 403, 404 on every path); sun-and-shadow with
a scenario id answers as with the same buildings given inline; and in real Chromium,
/viewer and /map show the scenario's building with ?scenario= and not without."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
import shapely
from shapely.geometry import box, mapping, shape

from conftest import ROOT, api_keys, serving, store_url
from test_processes import WorkerProcess
from test_viewer import CHROMIUM

pytestmark = pytest.mark.slow
JSON = {"Content-Type": "application/json"}
GEOJSON = {"Content-Type": "application/geo+json"}
ITEMS = "/collections/buildings/items"


@pytest.fixture(scope="module")
def city(imported):
    """The server, a worker, and keys: two planners, a designer (a role a scenario is
    shared with, not a planner), a visitor with no role; a scenario of the first planner
    that adds a tower on open ground, raises a building and removes another."""
    data = Path(imported["OUP_DATA_DIR"])
    keys = data / "scenario-keys.yml"
    shutil.copy(imported["OUP_API_KEYS_FILE"], keys)
    env = dict(imported, OUP_API_KEYS_FILE=str(keys),
               OUP_PROCESSES_FILE=str(ROOT / "config" / "processes.yml"))
    key = api_keys(env, {"planner": ["planner"], "other": ["planner"],
                         "designer": ["urban-design"], "visitor": []}, f"scenarios-{data.name}")
    with serving(env) as url:
        worker = WorkerProcess(env).start()
        try:
            live = requests.get(f"{url}{ITEMS}", params={"limit": 10000}, timeout=60).json()
            yield SimpleNamespace(url=url, env=env, key=key, audit=data / "audit.log",
                                  live=live["features"])
        finally:
            worker.stop()


def _open_ground(features: list[dict], size: float = 0.00015) -> shapely.Polygon:
    """A square of open ground among the buildings (none within 20 m of it)."""
    shapes = shapely.STRtree([shape(f["geometry"]) for f in features])
    x0, y0, x1, y1 = shapely.total_bounds([shape(f["geometry"]) for f in features])
    for i in range(60):
        for j in range(60):
            x, y = x0 + (x1 - x0) * (i + 0.5) / 60, y0 + (y1 - y0) * (j + 0.5) / 60
            square = box(x, y, x + size, y + size)
            if not len(shapes.query(square.buffer(0.0003))) and len(
                    shapes.query(square.buffer(0.0012))):  # open, yet among buildings
                return square
    raise AssertionError("no open ground among the buildings")


@pytest.fixture(scope="module")
def proposal(city):
    """The scenario made and written into, with what it did."""
    r = requests.post(f"{city.url}/scenarios", headers={**JSON, **city.key["planner"]},
                      json={"title": "Tower at the square", "collections": ["buildings"],
                            "shared_with": ["urban-design"]}, timeout=30)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert r.headers["Location"] == f"{city.url}/scenarios/{sid}"
    by_height = sorted((f for f in city.live if f["properties"].get("height")),
                       key=lambda f: f["properties"]["height"])
    raised, removed = by_height[len(by_height) // 2], by_height[-1]
    writer = {**city.key["planner"]}
    history = requests.get(f"{city.url}{ITEMS}/{raised['id']}/history", timeout=30).json()
    tower = {"type": "Feature", "geometry": mapping(_open_ground(city.live)),
             "properties": {**raised["properties"], "cityobject_id": "proposed-tower",
                            "height": 61.5, "roof_level": 61.5}}
    made = requests.post(f"{city.url}{ITEMS}", params={"scenario": sid}, data=json.dumps(tower),
                         headers={**GEOJSON, **writer}, timeout=30)
    assert made.status_code == 201, made.text
    tower_id = made.json()["id"]
    assert made.headers["Location"] == f"{city.url}{ITEMS}/{tower_id}?scenario={sid}"
    item = f"{city.url}{ITEMS}/{raised['id']}"
    tag = requests.get(item, params={"scenario": sid}, headers=writer, timeout=30).headers["ETag"]
    assert tag == requests.get(item, timeout=30).headers["ETag"]  # untouched yet: the city's
    patch = {"properties": {"height": raised["properties"]["height"] + 30}}
    r = requests.patch(item, params={"scenario": sid}, data=json.dumps(patch), timeout=30,
                       headers={**writer, "Content-Type": "application/merge-patch+json",
                                "If-Match": tag})
    assert r.status_code == 200, r.text
    stale = requests.patch(item, params={"scenario": sid}, data=json.dumps(patch), timeout=30,
                           headers={**writer, "Content-Type": "application/merge-patch+json",
                                    "If-Match": tag})
    assert stale.status_code == 412, stale.text  # no lost update inside a scenario either
    r = requests.delete(f"{city.url}{ITEMS}/{removed['id']}", params={"scenario": sid},
                        headers=writer, timeout=30)
    assert r.status_code == 204, r.text
    return SimpleNamespace(id=sid, tower=tower, tower_id=tower_id, raised=raised,
                           removed=removed, raised_to=patch["properties"]["height"],
                           history=history)


def _expected(city, proposal) -> list[dict]:
    """The city as it is, with the scenario's changes applied here."""
    out = []
    for f in city.live:
        if f["id"] == proposal.removed["id"]:
            continue
        if f["id"] == proposal.raised["id"]:
            f = {**f, "properties": {**f["properties"], "height": proposal.raised_to}}
        out.append(f)
    return out + [{**proposal.tower, "id": proposal.tower_id}]


def test_the_scenario_layers_its_changes_over_the_city_and_the_city_stays(city, proposal):
    from oup.store import open_observation_store

    events = open_observation_store(store_url(city.env), schema=False)
    last_event = events.last_event()
    planner = city.key["planner"]
    seen = requests.get(f"{city.url}{ITEMS}", params={"scenario": proposal.id, "limit": 10000},
                        headers=planner, timeout=60).json()
    expected = _expected(city, proposal)
    assert seen["numberMatched"] == len(expected) == len(city.live)
    assert {f["id"] for f in seen["features"]} == {f["id"] for f in expected}
    got = {f["id"]: f for f in seen["features"]}
    assert got[proposal.raised["id"]]["properties"]["height"] == proposal.raised_to
    assert shape(got[proposal.tower_id]["geometry"]).hausdorff_distance(
        shape(proposal.tower["geometry"])) < 1e-7  # (stored as the collection's type)
    # a filter, a sort and pages, in SQL over the two layers: as computed here
    floor = sorted(f["properties"]["height"] for f in expected
                   if f["properties"].get("height"))[-12]
    want = sorted((f for f in expected if (f["properties"].get("height") or 0) > floor),
                  key=lambda f: (-f["properties"]["height"], f["id"]))
    pages = []
    for offset in (0, 5, 10):
        page = requests.get(f"{city.url}{ITEMS}", headers=planner, timeout=30, params={
            "scenario": proposal.id, "filter": f"height > {floor}", "sortby": "-height",
            "limit": 5, "offset": offset}).json()
        assert page["numberMatched"] == len(want)
        pages += [f["id"] for f in page["features"]]
    assert pages == [f["id"] for f in want]
    # a box around the tower finds it (and what else stands there, as computed here)
    bx = shape(proposal.tower["geometry"]).buffer(0.0005).bounds
    near = requests.get(f"{city.url}{ITEMS}", headers=planner, timeout=30, params={
        "scenario": proposal.id, "bbox": ",".join(map(str, bx)), "limit": 1000}).json()
    assert {f["id"] for f in near["features"]} == {
        f["id"] for f in expected if shape(f["geometry"]).intersects(box(*bx))}
    assert requests.get(f"{city.url}{ITEMS}/{proposal.removed['id']}", timeout=30, headers=planner,
                        params={"scenario": proposal.id}).status_code == 404
    # the city as it is: the same items, history and change events as before
    now = requests.get(f"{city.url}{ITEMS}", params={"limit": 10000}, timeout=60).json()
    assert now["features"] == city.live
    assert requests.get(f"{city.url}{ITEMS}/{proposal.tower_id}", timeout=30).status_code == 404
    history = requests.get(f"{city.url}{ITEMS}/{proposal.raised['id']}/history",
                           timeout=30).json()
    assert history == proposal.history
    assert events.last_event() == last_event
    # every write audited, with its scenario
    audited = [json.loads(line) for line in city.audit.read_text().splitlines()]
    mine = [a for a in audited if a.get("scenario") == proposal.id]
    assert [a["action"].split()[0] for a in mine] == ["POST", "POST", "PATCH", "DELETE"]
    assert all(a["who"].startswith("key:planner-scenarios") for a in mine)
    # what it proposes, for maps and viewers: heights above the ellipsoid ~43 m over NAP
    changes = requests.get(f"{city.url}/scenarios/{proposal.id}/changes", headers=planner,
                           timeout=30).json()["features"]
    kinds = {f["id"]: f["properties"]["oup:change"] for f in changes}
    assert kinds == {proposal.tower_id: "added", proposal.raised["id"]: "changed",
                     proposal.removed["id"]: "removed"}
    top = next(f for f in changes if f["id"] == proposal.tower_id)["properties"]
    assert top["oup:top"] - top["oup:base"] == pytest.approx(61.5)
    assert 40 < top["oup:base"] - (proposal.tower["properties"]["TerrainHeight"] or 0) < 46


def test_who_may_see_and_change_a_scenario(city, proposal):
    url, sid, key = city.url, proposal.id, city.key
    item = f"{url}{ITEMS}/{proposal.raised['id']}"
    paths = [f"/scenarios/{sid}", f"/scenarios/{sid}/changes", f"{ITEMS}?scenario={sid}",
             f"{ITEMS}/{proposal.raised['id']}?scenario={sid}", f"/map?scenario={sid}",
             f"/viewer?scenario={sid}"]
    for path in paths:
        assert requests.get(url + path, timeout=30).status_code == 401, path
        for who in ("other", "visitor"):  # not theirs, not shared with them: not there
            r = requests.get(url + path, headers=key[who], timeout=30)
            assert r.status_code == 404, (path, who, r.text)
        for who in ("planner", "designer"):
            assert requests.get(url + path, headers=key[who], timeout=30).status_code == 200
    assert sid in [s["id"] for s in requests.get(f"{url}/scenarios", headers=key["designer"],
                                                  timeout=30).json()["scenarios"]]
    assert sid not in [s["id"] for s in requests.get(f"{url}/scenarios", headers=key["other"],
                                                      timeout=30).json()["scenarios"]]
    assert requests.get(f"{url}/scenarios", timeout=30).status_code == 401
    patch = dict(data=json.dumps({"properties": {"height": 1}}), params={"scenario": sid},
                 timeout=30)
    merge = {"Content-Type": "application/merge-patch+json"}
    assert requests.patch(item, headers=merge, **patch).status_code == 401
    assert requests.patch(item, headers={**merge, **key["other"]}, **patch).status_code == 404
    # shared with the designer, who may look but holds no role that proposes changes
    r = requests.patch(item, headers={**merge, **key["designer"]}, **patch)
    assert r.status_code == 403 and "planner" in r.json()["detail"], r.text
    # making one: anonymous 401, no role 403, bad input 400 naming it
    made = dict(json={"title": "x", "collections": ["buildings"]}, timeout=30)
    assert requests.post(f"{url}/scenarios", headers=JSON, **made).status_code == 401
    r = requests.post(f"{url}/scenarios", headers={**JSON, **key["visitor"]}, **made)
    assert r.status_code == 403, r.text
    for body, field in (({"collections": ["buildings"]}, "title"),
                        ({"title": "x", "collections": ["sensors"]}, "collections"),
                        ({"title": "x", "collections": "buildings"}, "collections"),
                        ({"title": "x", "collections": ["buildings"], "colour": 1}, "colour")):
        r = requests.post(f"{url}/scenarios", headers={**JSON, **key["planner"]}, json=body,
                          timeout=30)
        assert r.status_code == 400 and r.json().get("parameter", field) == field, r.text
        assert field in r.json()["detail"], r.text
    # sun-and-shadow with a scenario not theirs: 404 as everywhere
    r = requests.post(f"{url}/processes/sun-and-shadow/execution",
                      headers={**JSON, **key["other"]}, timeout=30, json={"inputs": {
                          "area": [4.44, 51.91, 4.45, 51.92], "date": "2026-06-21",
                          "scenario": sid}})
    assert r.status_code == 404, r.text
    # dropped by its owner only; then it is gone, and the city is as it was
    spare = requests.post(f"{url}/scenarios", headers={**JSON, **key["planner"]}, timeout=30,
                          json={"title": "spare", "collections": ["buildings"],
                                "shared_with": ["urban-design"]}).json()["id"]
    assert requests.delete(f"{url}/scenarios/{spare}", headers=key["designer"],
                           timeout=30).status_code == 403
    assert requests.delete(f"{url}/scenarios/{spare}", headers=key["planner"],
                           timeout=30).status_code == 204
    assert requests.get(f"{url}/scenarios/{spare}", headers=key["planner"],
                        timeout=30).status_code == 404


def test_sun_and_shadow_reads_a_named_scenario_as_the_caller_sees_it(city, proposal):
    """The same proposed buildings, given inline and named by the scenario: the same
    answer."""
    tower = shape(proposal.tower["geometry"])
    x0, y0, x1, y1 = tower.bounds
    area = [x0 - 0.0006, y0 - 0.0004, x1 + 0.0006, y1 + 0.0004]
    changes = requests.get(f"{city.url}/scenarios/{proposal.id}/changes",
                           headers=city.key["planner"], timeout=30).json()["features"]
    inline = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": f["id"], "geometry": f["geometry"], "properties": {
            "height": 0 if f["properties"]["oup:change"] == "removed"
            else f["properties"]["height"]}} for f in changes]}
    answers = []
    for scenario in (inline, proposal.id):
        r = requests.post(f"{city.url}/processes/sun-and-shadow/execution",
                          headers={**JSON, **city.key["planner"]}, timeout=120, json={
                              "inputs": {"area": area, "date": "2026-06-21", "step": 60,
                                         "grid_spacing": 15, "shadows": False,
                                         "scenario": scenario}})
        assert r.status_code == 200, r.text
        answers.append(r.json()["sunHours"]["features"])
    assert answers[0] == answers[1]
    difference = [f["properties"]["difference"] for f in answers[1]]
    assert min(difference) < 0  # the tower takes sun from the ground around it


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed "
                    "(make test installs it)")
def test_viewer_and_map_show_the_scenario_with_it_and_not_without(one_store, city, proposal):
    # (the pages read /scenarios/{id}/changes and the tiles: the store's part, items and
    # changes through a scenario, is tested on both stores above)
    changes = requests.get(f"{city.url}/scenarios/{proposal.id}/changes",
                           headers=city.key["planner"], timeout=30).json()["features"]
    places = []
    for f in changes:
        spot = shape(f["geometry"]).representative_point()
        places.append({"name": f["properties"]["oup:change"], "lon": spot.x, "lat": spot.y,
                       "top": f["properties"]["oup:top"]})
    res = subprocess.run(["node", "scenario.mjs", city.url, city.key["planner"]["X-API-Key"],
                          proposal.id, json.dumps(places)], cwd=ROOT / "tests" / "js",
                         capture_output=True, text=True, timeout=600,
                         env={"CHROMIUM": CHROMIUM, "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["error"] is None and out["pageErrors"] == [], out
    removed_id = proposal.removed["properties"]["cityobject_id"]
    raised_id = proposal.raised["properties"]["cityobject_id"]
    with_, without = out["viewer"]["with"], out["viewer"]["without"]
    # 3D: the tower and the raised building are the scenario's blocks; the removed one
    # is gone; without the scenario, the city as it is
    assert with_["added"] == {"entity": f"scenario/buildings/{proposal.tower_id}"}, out
    assert with_["changed"] == {"entity": f"scenario/buildings/{proposal.raised['id']}"}, out
    drawn = lambda hit: set(hit or {}) & {"entity", "building"}  # noqa: E731 (not ground)
    assert not drawn(with_["removed"]), out
    assert not drawn(without["added"]), out
    assert without["changed"] == {"building": raised_id}, out
    assert without["removed"] == {"building": removed_id}, out
    assert sorted(out["scenario"]["hidden"]["buildings"]) == sorted([raised_id, removed_id])
    # 2D: the scenario's own layers on top; the city's buildings it changes left out
    layers = lambda hits: {h["layer"] for h in hits}  # noqa: E731
    m_with, m_without = out["map"]["with"], out["map"]["without"]
    assert "scenario-fill" in layers(m_with["added"]) and "buildings-fill" not in layers(
        m_with["added"]), out["map"]
    assert "scenario-removed" not in layers(m_with["added"])
    assert {"id": proposal.removed["id"], "layer": "buildings-fill"} not in m_with["removed"]
    assert {"id": proposal.removed["id"], "layer": "buildings-fill"} in m_without["removed"]
    assert not layers(m_without["added"]) & {"scenario-fill", "buildings-fill"}


def test_the_guides_example_runs_as_written(city):
    """The service developer's guide's scenario example, run by bash with real curl
    against this server: what each answer holds."""
    import sys

    guide = ROOT / "docs" / "guides" / "service-developer.md"
    section = guide.read_text().split("### Scenarios", 1)[1]
    script = section.split("```sh\n", 1)[1].split("```", 1)[0]
    prelude = f'set -e\noup() {{ "{sys.executable}" -m oup.cli "$@"; }}\n'
    res = subprocess.run(["bash", "-c", prelude + script.replace("http://127.0.0.1:5000",
                                                                 city.url)],
                         env={**city.env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    answers, text, decoder = [], res.stdout.strip(), json.JSONDecoder()
    while text:  # the answers, one after another (not each on a line of its own)
        doc, end = decoder.raw_decode(text)
        answers.append(doc)
        text = text[end:].strip()
    made, tall, sun = answers[0], answers[1], answers[-1]
    assert made["properties"]["cityobject_id"] == "tower" and made["id"] < 0
    assert [f["properties"]["cityobject_id"] for f in tall["features"]] == ["tower"]
    assert {"scenarioSunHours", "difference"} <= set(sun["sunHours"]["features"][0]["properties"])
    # the city itself has no building over 50 m: the tower is the scenario's alone
    city_tall = requests.get(f"{city.url}{ITEMS}", params={"filter": "height > 50"},
                             timeout=30).json()
    assert city_tall["numberMatched"] == 0
