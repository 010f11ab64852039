"""Named scenarios (issue 29) end to end on both stores, on a real server with a real
worker: a planner makes one, writes into it through the collection's write path,
reads the collection as the scenario has it (checked against the city as it is with
the changes applied here, in Python), and the city itself does not change (its items,
history and change events); who may (401, 403, 404 on every path); each write into a
scenario is an event on its own stream, for its readers alone (never on the city's
streams); sun-and-shadow with a scenario id answers as with the same buildings given
inline; and in real Chromium, /viewer and /map show the scenario's building with
?scenario= and not without, follow writes into it without a reload, and leave out the
city's feature a scenario changes in a collection with an id field."""
from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
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
                         "designer": ["urban-design"], "visitor": [], "steward": ["steward"]},
                   f"scenarios-{data.name}")
    with serving(env) as url:
        worker = WorkerProcess(env).start()
        try:
            live = requests.get(f"{url}{ITEMS}", params={"limit": 10000}, timeout=60).json()
            yield SimpleNamespace(url=url, env=env, key=key, audit=data / "audit.log",
                                  live=live["features"])
        finally:
            worker.stop()


def _open_ground(features: list[dict], size: float = 0.00015, nth: int = 0) -> shapely.Polygon:
    """A square of open ground among the buildings (none within 20 m of it); the
    ``nth`` found, none of them within 50 m of another."""
    shapes = shapely.STRtree([shape(f["geometry"]) for f in features])
    x0, y0, x1, y1 = shapely.total_bounds([shape(f["geometry"]) for f in features])
    found: list[shapely.Polygon] = []
    for i in range(60):
        for j in range(60):
            x, y = x0 + (x1 - x0) * (i + 0.5) / 60, y0 + (y1 - y0) * (j + 0.5) / 60
            square = box(x, y, x + size, y + size)
            if not len(shapes.query(square.buffer(0.0003))) and len(
                    shapes.query(square.buffer(0.0012))) and not any(  # open, among buildings
                    square.distance(f) < 0.0007 for f in found):
                if len(found) == nth:
                    return square
                found.append(square)
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


def _scenario(city, title: str, collections: list[str]) -> str:
    """A scenario of the planner's, shared with the designer's role: its id."""
    r = requests.post(f"{city.url}/scenarios", headers={**JSON, **city.key["planner"]},
                      json={"title": title, "collections": collections,
                            "shared_with": ["urban-design"]}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _events(url: str, headers: dict, after: int, last=lambda e, got: False) -> list[dict]:
    """The events (CloudEvents) a stream gives after event ``after``, up to the one
    ``last(event, those so far)`` says is the last (60 s at most)."""
    got, deadline = [], time.monotonic() + 60
    with requests.get(url, params={"after": after}, headers=headers, stream=True,
                      timeout=(10, 30)) as r:
        assert r.status_code == 200, (url, r.text)
        for line in r.iter_lines():
            if line.startswith(b"data: "):
                got.append(json.loads(line[6:]))
                if last(got[-1], got):
                    return got
            if time.monotonic() > deadline:
                break
    raise AssertionError(f"{url}: the stream ended, or took over 60 s, after {got}")


def _tile_id(city, cid: str, code: str, lon: float, lat: float) -> int:
    """The id the vector tile at (lon, lat) gives collection ``cid``'s feature whose
    ``code`` is ``code``, decoded here (mapbox-vector-tile)."""
    import mapbox_vector_tile

    from oup.tiles import matrix_sets as grids

    t = grids.get("WebMercatorQuad").tile(lon, lat, 17)
    data = requests.get(f"{city.url}/collections/{cid}/tiles/WebMercatorQuad/17/{t.y}/{t.x}",
                        timeout=30).content
    layer = mapbox_vector_tile.decode(data)[cid]["features"]
    return next(f["id"] for f in layer if f["properties"]["code"] == code)


def _a_plot(city) -> dict:
    """A plot of the generated collection (an id field: ``code``), as it is."""
    plots = requests.get(f"{city.url}/collections/plots/items", timeout=30).json()["features"]
    return next(f for f in plots if f["properties"]["name"].startswith("plot "))


def test_writes_into_a_scenario_are_events_for_its_readers_alone(city):
    """Each write into a scenario is an event on /scenarios/{id}/events, carrying the
    feature as /scenarios/{id}/changes has it, for the planner and the role it is shared
    with; to others the stream is not there (401, 404), and none of these events is on
    the city's streams (read up to a public event that came after them) or another
    scenario's."""
    from oup.store import open_observation_store

    url, key, planner = city.url, city.key, city.key["planner"]
    after = open_observation_store(store_url(city.env), schema=False).last_event()
    sid, spare = _scenario(city, "Live plan", ["buildings", "plots"]), \
        _scenario(city, "Another plan", ["buildings"])
    block = {"type": "Feature", "geometry": mapping(_open_ground(city.live, nth=1)),
             "properties": {"cityobject_id": "live-block", "height": 20.0, "ground_level": 0}}
    made = requests.post(f"{url}{ITEMS}", params={"scenario": sid}, data=json.dumps(block),
                         headers={**GEOJSON, **planner}, timeout=30)
    assert made.status_code == 201, made.text
    plot = _a_plot(city)
    r = requests.patch(f"{url}/collections/plots/items/{plot['id']}", params={"scenario": sid},
                       data=json.dumps({"properties": {"name": "plot, proposed"}}), timeout=30,
                       headers={**planner, "Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    r = requests.delete(f"{url}{ITEMS}/{made.json()['id']}", params={"scenario": sid},
                        headers=planner, timeout=30)
    assert r.status_code == 204, r.text
    r = requests.post(f"{url}{ITEMS}", params={"scenario": spare}, data=json.dumps(block),
                      headers={**GEOJSON, **planner}, timeout=30)
    assert r.status_code == 201, r.text
    # then a public event: a steward's plot, made and taken away again
    marker = f"{url}/collections/plots/items/P-scenario-marker"
    r = requests.put(marker, headers={**GEOJSON, **key["steward"]}, timeout=30, data=json.dumps(
        {"type": "Feature", "geometry": mapping(box(4.43, 51.93, 4.4301, 51.9301)),
         "properties": {"name": "marker", "code": "P-scenario-marker"}}))
    assert r.status_code == 201, r.text
    assert requests.delete(marker, headers=key["steward"], timeout=30).status_code == 204

    stream = f"{url}/scenarios/{sid}/events"
    three = lambda e, got: len(got) == 3  # noqa: E731
    mine = _events(stream, planner, after, three)
    assert _events(stream, key["designer"], after, three) == mine  # shared with their role
    assert {e["type"] for e in mine} == {"oup.scenario.changed"}
    assert [(e["data"]["kind"], e["data"]["id"], e["data"]["scenario"]) for e in mine] == [
        ("created", made.json()["id"], sid), ("updated", plot["id"], sid),
        ("deleted", made.json()["id"], sid)]
    added, changed, gone = (e["data"]["feature"] for e in mine)
    assert added["id"] == made.json()["id"] and added["properties"]["oup:change"] == "added"
    assert shape(added["geometry"]).hausdorff_distance(shape(block["geometry"])) < 1e-7
    assert added["properties"]["oup:top"] - added["properties"]["oup:base"] == \
        pytest.approx(20.0)
    assert "oup:tileId" not in added["properties"]  # (in no tile of the city's)
    assert gone is None  # one it added, taken away: it no longer changes anything there
    now = requests.get(f"{url}/scenarios/{sid}/changes", headers=planner,
                       timeout=30).json()["features"]
    assert now == [changed]  # what the events said is what the changes are
    assert changed["properties"]["name"] == "plot, proposed"
    # the plot's id in the city's vector tiles, decoded here: not its id (the code)
    spot = shape(plot["geometry"]).representative_point()
    assert changed["properties"]["oup:tileId"] == _tile_id(city, "plots", plot["id"],
                                                           spot.x, spot.y) != plot["id"]
    # another scenario's stream has its own write only
    theirs = _events(f"{url}/scenarios/{spare}/events", planner, after, lambda e, got: True)
    assert [e["data"]["scenario"] for e in theirs] == [spare]
    # not there for others
    for who, status in ((None, 401), ("other", 404), ("visitor", 404)):
        r = requests.get(stream, headers=key[who] if who else {}, timeout=30)
        assert r.status_code == status and r.headers["Content-Type"].startswith(
            "application/problem+json"), (who, r.text)
    # the city's streams, up to the marker's deletion (after every write above): no
    # event of a scenario's, for the planner or anyone
    marked = lambda e, got: e["type"] == "oup.feature.deleted" and \
        e["subject"] == "P-scenario-marker"  # noqa: E731
    for path, who in (("/events", {}), ("/events", planner),
                      ("/collections/plots/events", planner)):
        seen = _events(url + path, who, after, marked)
        assert ("oup.feature.created", "P-scenario-marker") in [
            (e["type"], e["subject"]) for e in seen]  # (the stream is the city's, read)
        assert not [e for e in seen if e["type"] == "oup.scenario.changed"
                    or sid in json.dumps(e) or spare in json.dumps(e)], seen


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
def test_viewer_and_map_show_the_scenario_follow_it_live_and_not_without(one_store, city,
                                                                         proposal):
    # (the pages read /scenarios/{id}/changes, its events and the tiles: the store's
    # part, items, changes and events of a scenario, is tested on both stores above)
    planner = city.key["planner"]
    changes = requests.get(f"{city.url}/scenarios/{proposal.id}/changes", headers=planner,
                           timeout=30).json()["features"]
    places = []
    for f in changes:
        spot = shape(f["geometry"]).representative_point()
        places.append({"name": f["properties"]["oup:change"], "lon": spot.x, "lat": spot.y,
                       "top": f["properties"]["oup:top"]})
    # a scenario that changes a plot (a collection with an id field), before the pages
    # open; then, with them open, adds two buildings, drops one of them again and raises
    # one of the city's: four writes, four events
    live = _scenario(city, "Live on the pages", ["buildings", "plots"])
    plot = _a_plot(city)
    r = requests.patch(f"{city.url}/collections/plots/items/{plot['id']}",
                       params={"scenario": live}, timeout=30,
                       data=json.dumps({"properties": {"name": "plot, on the pages"}}),
                       headers={**planner, "Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    plot_spot = shape(plot["geometry"]).representative_point()
    places.append({"name": "plot", "lon": plot_spot.x, "lat": plot_spot.y, "top": 45.0})
    kept, dropped = _open_ground(city.live, nth=2), _open_ground(city.live, nth=3)
    tall = sorted((f for f in city.live if f["properties"].get("height")),
                  key=lambda f: f["properties"]["height"])
    raised = tall[len(tall) // 4]
    assert raised["id"] not in (proposal.raised["id"], proposal.removed["id"])
    live_places = [{"name": name, "lon": at.x, "lat": at.y} for name, at in (
        ("kept", kept.centroid), ("dropped", dropped.centroid),
        ("raised", shape(raised["geometry"]).representative_point()), ("plot", plot_spot))]
    steps = Path(city.env["OUP_DATA_DIR"]) / "scenario-browser.log"  # (its steps, timed)
    with steps.open("w") as log:
        node = subprocess.Popen(["node", "scenario.mjs", city.url, planner["X-API-Key"],
                                 proposal.id, json.dumps(places), live,
                                 json.dumps(live_places), "4"], cwd=ROOT / "tests" / "js",
                                stdout=subprocess.PIPE, stderr=log, text=True,
                                env={"CHROMIUM": CHROMIUM, "PATH": "/usr/bin:/bin"})
    watchdog = threading.Timer(600, node.kill)  # (its own waits are bounded: a backstop)
    watchdog.start()
    try:
        lines = []
        for line in node.stdout:  # until the pages are open on the live scenario
            lines.append(line)
            if line.startswith('{"ready":'):
                break
        if lines and lines[-1].startswith('{"ready":'):
            items = f"{city.url}{ITEMS}"
            writes = [requests.post(items, params={"scenario": live}, timeout=30,
                                    headers={**GEOJSON, **planner}, data=json.dumps(
                                        {"type": "Feature", "geometry": mapping(square),
                                         "properties": {"cityobject_id": name, "height": 25.0}}))
                      for name, square in (("kept", kept), ("dropped", dropped))]
            assert [w.status_code for w in writes] == [201, 201], [w.text for w in writes]
            kept_id, dropped_id = (w.json()["id"] for w in writes)
            assert requests.delete(f"{items}/{dropped_id}", params={"scenario": live},
                                   headers=planner, timeout=30).status_code == 204
            r = requests.patch(f"{items}/{raised['id']}", params={"scenario": live},
                               timeout=30, headers={**planner, "Content-Type":
                                                    "application/merge-patch+json"},
                               data=json.dumps({"properties": {
                                   "height": raised["properties"]["height"] + 10}}))
            assert r.status_code == 200, r.text
        lines += node.stdout.readlines()
        node.wait(timeout=300)
    finally:
        watchdog.cancel()
        node.kill()
    assert node.returncode == 0, (lines, steps.read_text())
    out = json.loads(lines[-1])
    assert out["error"] is None and out["pageErrors"] == [], (json.dumps(out),
                                                               steps.read_text())
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
    assert "plots-fill" in layers(m_without["plot"]), out["map"]  # the plot, as it is
    # live: every write shown on both open pages, without a reload
    before, after = out["live"]["before"], out["live"]["map"]
    assert out["live"]["events"] == {"viewer": 4, "map": 4}, out["live"]
    # the changed plot (id field: code) drawn once, the scenario's, from the start
    assert "scenario-fill" in layers(before["plot"]) and "plots-fill" not in layers(
        before["plot"]), before
    assert not layers(before["kept"]) & {"scenario-fill", "buildings-fill"}, before
    assert "buildings-fill" in layers(before["raised"]), before
    assert "scenario-fill" in layers(after["kept"]), after
    assert "scenario-fill" not in layers(after["dropped"]), after
    assert "scenario-fill" in layers(after["raised"]) and "buildings-fill" not in layers(
        after["raised"]), after
    assert "plots-fill" not in layers(after["plot"]), after
    viewer = out["live"]["viewer"]
    assert sorted(viewer["shown"]) == sorted(f"scenario/buildings/{i}" for i in (kept_id,
                                                                                 raised["id"]))
    assert viewer["hidden"] == {"buildings": [raised["properties"]["cityobject_id"]]}


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
