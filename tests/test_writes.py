"""OGC API Features Part 4 on a real server, both stores: OWSLib and plain HTTP create,
replace, update and delete; who may (401, 403, 404); schema checks (400, 422); no lost
updates (ETag, If-Match, 412, a race); history and asof; change events."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import jsonschema
import pytest
import requests

from conftest import wait_for
from test_access import token

pytestmark = pytest.mark.slow
GEOJSON = {"Content-Type": "application/geo+json"}


@pytest.fixture(scope="module")
def who(credentials):
    """Authorization headers: a steward, two residents, someone with neither role."""
    def bearer(sub: str, *roles: str) -> dict:
        return {"Authorization": "Bearer " + _token(credentials, sub, roles)}

    return {"steward": bearer("s-1", "steward"), "anna": bearer("r-anna", "resident"),
            "bob": bearer("r-bob", "resident"), "nobody": bearer("n-1", "analyst")}


def _token(creds, sub: str, roles) -> str:
    import jwt

    now = int(time.time())
    claims = {"iss": creds["issuer"], "aud": creds["audience"], "sub": sub, "iat": now,
              "exp": now + 3600, "roles": list(roles)}
    return jwt.encode(claims, creds["rsa"], algorithm="RS256", headers={"kid": "rsa-1"})


def _report(category="afval", text="Zwerfvuil op de stoep", lon=4.4470, lat=51.9150) -> dict:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"category": category, "description": text}}


def _plot(name="new plot", height=7.25, floors=2, x=91200) -> dict:
    return {"type": "Feature", "properties": {"name": name, "height": height, "floors": floors},
            "geometry": {"type": "Polygon", "coordinates": [[
                [4.4450, 51.9140], [4.4455, 51.9140], [4.4455, 51.9143], [4.4450, 51.9143],
                [4.4450, 51.9140]]]}}


def _create(server, cid, feature, headers) -> requests.Response:
    r = requests.post(f"{server}/collections/{cid}/items", data=json.dumps(feature),
                      headers={**GEOJSON, **headers}, timeout=30)
    assert r.status_code == 201, r.text
    return r


def test_a_resident_reports_and_the_report_is_theirs(server, who):
    r = _create(server, "meldingen", _report(), who["anna"])
    url = r.headers["Location"]
    assert url.startswith(f"{server}/collections/meldingen/items/")
    got = requests.get(url, headers=who["anna"], timeout=30)
    assert got.status_code == 200
    props = got.json()["properties"]
    assert props["category"] == "afval" and props["description"] == "Zwerfvuil op de stoep"
    # where it was reported (longitude first, as sent and as the imported reports are)
    assert got.json()["geometry"]["coordinates"] == pytest.approx([4.4470, 51.9150])
    assert props["time"]  # set by the server: the report said none
    assert props["reporter"].startswith("jwt:")  # the server says who, pseudonymously
    assert got.headers["ETag"] == r.headers["ETag"]
    # another resident and an anonymous caller: it does not exist for them
    assert requests.get(url, headers=who["bob"], timeout=30).status_code == 404
    assert requests.patch(url, data=json.dumps({"properties": {"category": "groen"}}),
                          headers={**who["bob"], "Content-Type": "application/merge-patch+json"},
                          timeout=30).status_code == 404
    assert requests.get(url, timeout=30).status_code == 404
    # a steward sees every report; the resident's own list holds only theirs
    assert requests.get(url, headers=who["steward"], timeout=30).status_code == 200
    mine = requests.get(f"{server}/collections/meldingen/items?limit=1000", headers=who["bob"],
                        timeout=30).json()["features"]
    assert all(f["properties"]["reporter"] != props["reporter"] for f in mine)
    # the resident corrects their own report
    fixed = requests.patch(url, data=json.dumps({"properties": {"category": "groen"}}),
                           headers={**who["anna"],
                                    "Content-Type": "application/merge-patch+json"},
                           timeout=30)
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["properties"]["category"] == "groen"
    assert fixed.json()["properties"]["description"] == "Zwerfvuil op de stoep"


def test_the_public_sees_report_counts_per_neighbourhood_and_no_small_one(server, who,
                                                                         imported):
    """Reports are restricted; how many lie in each neighbourhood is public, counted
    again after every report, and a count under 5 is not published (disclosure). One
    server process counts at a time (a lock file beside the store): while another
    counts, a report waits to be counted, and is counted once it may."""
    import fcntl

    import shapely
    from shapely.geometry import shape

    def published() -> dict:
        r = requests.get(f"{server}/collections/meldingen-per-buurt/items?limit=100",
                         timeout=30)
        assert r.status_code == 200, r.text
        feats = r.json()["features"]
        assert all(set(f["properties"]) <= {"buurtcode", "buurtnaam", "count"} for f in feats)
        return {f["id"]: f["properties"].get("count") for f in feats}

    def expected() -> dict:
        """Counted here: the steward's reports in each neighbourhood polygon."""
        areas = requests.get(f"{server}/collections/neighbourhoods/items?limit=100",
                             timeout=30).json()["features"]
        reports = requests.get(f"{server}/collections/meldingen/items?limit=10000",
                               headers=who["steward"], timeout=30).json()["features"]
        points = [shape(f["geometry"]) for f in reports]
        out = {}
        for a in areas:
            n = sum(shape(a["geometry"]).intersects(p) for p in points)
            out[a["properties"]["buurtcode"]] = n if n >= 5 else None
        return out

    def settled(deadline: float = 30.0) -> dict:
        end = time.monotonic() + deadline
        while True:
            got, want = published(), expected()
            if got == want or time.monotonic() > end:
                assert got == want
                return got
            time.sleep(0.3)

    assert requests.get(f"{server}/collections/meldingen/items", timeout=30).status_code == 404
    counts = settled()
    assert any(v is None for v in counts.values()) and any(v for v in counts.values())
    # reports made in a neighbourhood whose count is not published, until it is
    small = next(k for k, v in counts.items() if v is None)
    area = next(a for a in requests.get(f"{server}/collections/neighbourhoods/items?limit=100",
                                        timeout=30).json()["features"]
                if a["properties"]["buurtcode"] == small)
    inside = shapely.Point(shape(area["geometry"]).representative_point())
    for _ in range(5):
        _create(server, "meldingen", _report(lon=inside.x, lat=inside.y), who["anna"])
    now = settled()[small]
    assert now >= 5
    with open(Path(imported["OUP_DATA_DIR"]) / ".counts.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # as another process counting would
        _create(server, "meldingen", _report(lon=inside.x, lat=inside.y), who["anna"])
        time.sleep(3)  # (unheld, the count comes in well under a second: above)
        assert published()[small] == now
    assert settled()[small] == now + 1


def test_who_may_write(server, who):
    plot = _plot()
    # anonymous: 401 on a public collection; a role the collection does not name: 403
    for headers, status in (({}, 401), (who["nobody"], 403), (who["anna"], 403)):
        r = requests.post(f"{server}/collections/plots/items", data=json.dumps(plot),
                          headers={**GEOJSON, **headers}, timeout=30)
        assert r.status_code == status, r.text
        assert r.headers["Content-Type"] == "application/problem+json"
    assert "WWW-Authenticate" in requests.delete(f"{server}/collections/plots/items/P0",
                                                 timeout=30).headers
    # a collection one may not see is 404 for every method
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        path = "items" if method == "POST" else "items/1"
        r = requests.request(method, f"{server}/collections/meldingen/{path}",
                             data=json.dumps(_report()), headers=GEOJSON, timeout=30)
        assert r.status_code == 404, (method, r.text)
    # a collection nobody may write: 405, and it says what it takes
    r = requests.delete(f"{server}/collections/neighbourhoods/items/1", headers=who["steward"],
                        timeout=30)
    assert r.status_code == 405 and "GET" in r.headers["Allow"]


@pytest.mark.parametrize("body, status, parameter", [
    ({"type": "Feature", "properties": {"colour": "red"}, "geometry": None}, 422, "colour"),
    ({"type": "Feature", "properties": {"floors": 2.5}, "geometry": None}, 422, "floors"),
    ({"type": "Feature", "properties": {"height": "tall"}, "geometry": None}, 422, "height"),
    ({"type": "Feature", "properties": {}, "geometry": {"type": "LineString", "coordinates": [
        [4.44, 51.91], [4.45, 51.92]]}}, 422, "geometry"),
    ({"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[
        [4.44, 51.91], [4.45, 51.92], [4.45, 51.91], [4.44, 51.92], [4.44, 51.91]]]}},
     422, "geometry"),  # a bow tie
    ({"type": "FeatureCollection", "features": []}, 400, "type"),
])
def test_what_the_collection_does_not_take_is_refused_and_named(server, who, body, status,
                                                                 parameter):
    r = requests.post(f"{server}/collections/plots/items", data=json.dumps(body),
                      headers={**GEOJSON, **who["steward"]}, timeout=30)
    assert r.status_code == status, r.text
    assert r.json()["parameter"] == parameter, r.json()


def test_bad_bodies_and_crs_are_400_and_a_category_off_the_list_is_422(server, who):
    h = {**GEOJSON, **who["steward"]}
    r = requests.post(f"{server}/collections/plots/items", data="{not json", headers=h,
                      timeout=30)
    assert r.status_code == 400 and r.json()["parameter"] == "body"
    r = requests.post(f"{server}/collections/plots/items", data=json.dumps(_plot()),
                      headers={**h, "Content-Crs": "<http://www.opengis.net/def/crs/EPSG/0/9999>"},
                      timeout=30)
    assert r.status_code == 400 and r.json()["parameter"] == "Content-Crs"
    r = requests.post(f"{server}/collections/meldingen/items", data=json.dumps(
        _report(category="vuurwerk")), headers=h, timeout=30)
    assert r.status_code == 422 and r.json()["parameter"] == "category"
    assert "afval" in r.json()["detail"]


def test_content_crs_writes_rd_coordinates_where_they_belong(server, who):
    rd = {"type": "Feature", "properties": {"name": "in RD", "height": 4.0, "floors": 1},
          "geometry": {"type": "Polygon", "coordinates": [[
              [91400, 437000], [91420, 437000], [91420, 437020], [91400, 437020],
              [91400, 437000]]]}}
    r = _create(server, "plots", rd, {**who["steward"], "Content-Crs":
                                      "<http://www.opengis.net/def/crs/EPSG/0/28992>"})
    back = requests.get(r.headers["Location"], params={
        "crs": "http://www.opengis.net/def/crs/EPSG/0/28992"}, timeout=30).json()
    xs = [x for x, _ in back["geometry"]["coordinates"][0]]
    assert min(xs) == pytest.approx(91400, abs=0.01) and max(xs) == pytest.approx(91420, abs=0.01)
    lon = requests.get(r.headers["Location"], timeout=30).json()["geometry"]["coordinates"][0][0][0]
    assert 4.4 < lon < 4.5  # and in CRS84 by default


def test_put_replaces_and_creates_at_a_client_id_and_delete_deletes(server, who):
    h = {**GEOJSON, **who["steward"]}
    url = f"{server}/collections/plots/items/P-client-1"
    made = requests.put(url, data=json.dumps(_plot("client's")), headers=h, timeout=30)
    assert made.status_code == 201, made.text
    again = requests.put(url, data=json.dumps(_plot("client's, taller", height=9.0)), headers=h,
                         timeout=30)
    assert again.status_code == 200 and again.headers["ETag"] != made.headers["ETag"]
    got = requests.get(url, timeout=30).json()
    assert got["properties"]["name"] == "client's, taller" and got["properties"]["height"] == 9.0
    gone = requests.delete(url, headers=who["steward"], timeout=30)
    assert gone.status_code == 204
    assert requests.get(url, timeout=30).status_code == 404
    assert requests.delete(url, headers=who["steward"], timeout=30).status_code == 404


def test_no_lost_update_if_match_and_a_race(server, who):
    h = {**who["steward"], "Content-Type": "application/merge-patch+json"}
    url = _create(server, "plots", _plot("raced"), who["steward"]).headers["Location"]
    tag = requests.get(url, timeout=30).headers["ETag"]
    stale = requests.patch(url, data=json.dumps({"properties": {"floors": 3}}),
                           headers={**h, "If-Match": '"not-the-tag"'}, timeout=30)
    assert stale.status_code == 412 and stale.json()["parameter"] == "If-Match"
    # two clients change the same version at once: exactly one wins
    answers: list[int] = []
    barrier = threading.Barrier(2)

    def change(floors: int):
        barrier.wait()
        answers.append(requests.patch(url, data=json.dumps({"properties": {"floors": floors}}),
                                      headers={**h, "If-Match": tag}, timeout=30).status_code)

    threads = [threading.Thread(target=change, args=(n,)) for n in (4, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(answers) == [200, 412]
    assert requests.get(url, timeout=30).json()["properties"]["floors"] in (4, 5)
    # without If-Match the last writer wins (QGIS and OWSLib send none)
    assert requests.patch(url, data=json.dumps({"properties": {"floors": 6}}), headers=h,
                          timeout=30).status_code == 200
    assert requests.get(url, timeout=30).json()["properties"]["floors"] == 6


def test_patches_without_if_match_at_once_each_apply_to_the_one_before(server, who):
    """Clients that send no If-Match (QGIS, OWSLib) and patch one feature at once are each
    answered 200 (none is told to try again), and each patch is made to the version the
    one before it wrote: no version undoes another's change."""
    h = {**who["steward"], "Content-Type": "application/merge-patch+json"}
    url = _create(server, "plots", _plot("patched at once", height=5.0, floors=1),
                  who["steward"]).headers["Location"]
    patches = [{"name": f"name {i}"} if i % 3 == 0 else {"height": 10.0 + i} if i % 3 == 1
               else {"floors": 10 + i} for i in range(9)]
    answers: list[int] = []
    barrier = threading.Barrier(len(patches))

    def change(patch: dict):
        barrier.wait()
        answers.append(requests.patch(url, data=json.dumps({"properties": patch}),
                                      headers=h, timeout=60).status_code)

    threads = [threading.Thread(target=change, args=(p,)) for p in patches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert answers == [200] * len(patches)
    versions = requests.get(f"{url}/history", timeout=30).json()["features"][::-1]
    assert [v["properties"]["oup:change"] for v in versions] == ["created"] + ["updated"] * 9
    names = ("name", "height", "floors")
    made = []
    for older, newer in zip(versions, versions[1:]):
        changed = {n: newer["properties"][n] for n in names
                   if newer["properties"][n] != older["properties"][n]}
        assert changed in patches, (older["properties"], newer["properties"])
        made.append(changed)
    assert sorted(map(json.dumps, made)) == sorted(map(json.dumps, patches))


def test_history_and_asof(server, who):
    h = {**who["steward"], "Content-Type": "application/merge-patch+json"}
    before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2))
    url = _create(server, "plots", _plot("versioned", height=5.0), who["steward"]).headers[
        "Location"]
    time.sleep(1.1)
    middle = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    time.sleep(1.1)
    assert requests.patch(url, data=json.dumps({"properties": {"height": 6.0}}), headers=h,
                          timeout=30).status_code == 200
    assert requests.patch(url, data=json.dumps({"properties": {"height": 7.0}}), headers=h,
                          timeout=30).status_code == 200
    versions = requests.get(f"{url}/history", timeout=30).json()["features"]
    assert [v["properties"]["height"] for v in versions] == [7.0, 6.0, 5.0]
    assert [v["properties"]["oup:change"] for v in versions] == ["updated", "updated",
                                                                  "created"]
    assert versions[0]["properties"]["oup:validTo"] is None
    assert requests.get(url, params={"asof": middle}, timeout=30).json()[
        "properties"]["height"] == 5.0
    assert requests.get(url, timeout=30).json()["properties"]["height"] == 7.0
    assert requests.get(url, params={"asof": before}, timeout=30).status_code == 404
    page = requests.get(f"{server}/collections/plots/items", params={
        "asof": middle, "name": "versioned"}, timeout=30).json()
    assert [f["properties"]["height"] for f in page["features"]] == [5.0]
    bad = requests.get(url, params={"asof": "yesterday"}, timeout=30)
    assert bad.status_code == 400 and bad.json()["parameter"] == "asof"


def test_a_write_is_an_event_of_its_kind_and_reports_carry_no_text(server, who):
    got: list[dict] = []
    stop = threading.Event()

    def listen(cid: str):
        with requests.get(f"{server}/collections/{cid}/events", headers=who["steward"],
                          stream=True, timeout=30) as r:
            for line in r.iter_lines(decode_unicode=True):
                if line.startswith("data:"):
                    got.append(json.loads(line[5:]))
                if stop.is_set():
                    return

    for cid in ("plots", "meldingen"):
        threading.Thread(target=listen, args=(cid,), daemon=True).start()
    time.sleep(1.0)
    url = _create(server, "plots", _plot("evented"), who["steward"]).headers["Location"]
    requests.patch(url, data=json.dumps({"properties": {"floors": 9}}), headers={
        **who["steward"], "Content-Type": "application/merge-patch+json"}, timeout=30)
    requests.delete(url, headers=who["steward"], timeout=30)
    _create(server, "meldingen", _report(text="Geheime tekst"), who["anna"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(got) < 4:
        time.sleep(0.1)
    stop.set()
    kinds = [(e["type"], e["source"].rsplit("/", 1)[-1]) for e in got]
    assert ("oup.feature.created", "plots") in kinds and ("oup.feature.updated", "plots") in kinds
    assert ("oup.feature.deleted", "plots") in kinds and ("oup.feature.created", "meldingen") in kinds
    updated = next(e for e in got if e["type"] == "oup.feature.updated")
    assert updated["data"]["properties"] == {"floors": 9}  # what changed, nothing else
    report = next(e for e in got if e["source"].endswith("/meldingen"))
    assert set(report["data"]) == {"collection", "id"}  # only the id and the kind
    assert "Geheime" not in json.dumps(got)
    # each is the event the AsyncAPI document describes: its collection's own message
    messages = requests.get(f"{server}/asyncapi", headers=who["steward"], timeout=30).json()[
        "components"]["messages"]
    assert "properties" not in messages["meldingen-features"]["payload"]["properties"][
        "data"]["properties"]
    for event in got:
        if event["type"].startswith("oup.feature."):
            cid = event["source"].rsplit("/", 1)[-1]
            jsonschema.validate(event, messages[f"{cid}-features"]["payload"])


def test_owslib_creates_updates_and_deletes(server, who):
    from owslib.ogcapi.features import Features

    api = Features(server, headers=dict(who["steward"]))
    plot = _plot("from owslib")
    assert api.collection_item_create("plots", plot)  # a dict: OWSLib says geo+json
    found = [f for f in api.collection_items("plots", limit=100)["features"]
             if f["properties"]["name"] == "from owslib"]
    assert len(found) == 1
    fid = found[0]["id"]
    plot["properties"]["name"] = "from owslib, changed"
    assert api.collection_item_update("plots", fid, json.dumps(plot))
    assert api.collection_item("plots", fid)["properties"]["name"] == "from owslib, changed"
    assert api.collection_item_delete("plots", fid)
    assert requests.get(f"{server}/collections/plots/items/{fid}", timeout=30).status_code == 404


def test_editing_is_advertised_as_clients_look_for_it(server):
    conformance = requests.get(f"{server}/conformance", timeout=30).json()["conformsTo"]
    assert ("http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete"
            in conformance)
    paths = requests.get(f"{server}/openapi.json", timeout=30).json()["paths"]
    items, item = paths["/collections/plots/items"], paths["/collections/plots/items/{featureId}"]
    assert "application/geo+json" in items["post"]["requestBody"]["content"]
    assert "application/query-cql-json" in items["post"]["requestBody"]["content"]  # search
    assert {"get", "put", "patch", "delete"} <= set(item)
    assert "put" not in paths.get("/collections/neighbourhoods/items/{featureId}", {})


def test_a_patch_of_a_building_redoes_its_3d_tile_and_the_tiles_above_only(server, imported,
                                                                          who):
    from test_tiles3d_update import ancestors, check_valid, files, leaves, where

    folder = Path(imported["OUP_DATA_DIR"]) / "3dtiles" / "buildings"
    feature = requests.get(f"{server}/collections/buildings/items", params={"limit": 1},
                           timeout=30).json()["features"][0]
    oid, url = feature["properties"]["cityobject_id"], \
        f"{server}/collections/buildings/items/{feature['id']}"
    [leaf] = [m["uri"] for m in where(folder, oid) if m["uri"] in leaves(folder)]
    served = requests.get(f"{server}/collections/buildings/3dtiles/{leaf}", timeout=30)
    old = files(folder)
    r = requests.patch(url, data=json.dumps({"properties": {"bron_geo": "survey of 2026"}}),
                       headers={**who["steward"], "Content-Type": "application/merge-patch+json"},
                       timeout=30)
    assert r.status_code == 200, r.text
    # the leaf comes first, the tiles above it after (each draws the building)
    wait_for(lambda: all(files(folder).get(u) != old[u]
                         for u in [leaf, *ancestors(folder, leaf)]), 30, "the 3D tiles")
    new = files(folder)
    changed = {k for k in old if old[k] != new[k]}
    # the leaf is made again; above it only the tiles that draw the building can change
    assert leaf in changed and changed <= {leaf, *ancestors(folder, leaf)}, changed
    assert set(new) == set(old)
    for m in where(folder, oid):  # at every level it is drawn
        assert m["props"]["bron_geo"] == "survey of 2026"
    again = requests.get(f"{server}/collections/buildings/3dtiles/{leaf}", timeout=30)
    assert again.headers["ETag"] != served.headers["ETag"] and again.content != served.content
    check_valid(folder)


def _environ(proc: Path) -> dict[str, str]:
    """The environment a process (``/proc/<pid>``) started with."""
    return dict(v.split("=", 1) for v in
                (proc / "environ").read_bytes().decode(errors="replace").split("\0")
                if "=" in v)


def _aside_processes(data_dir: str) -> set[int]:
    """The pids of the processes beside the workers of the server on ``data_dir`` that
    make the 3D tiles (`oup aside tiles3d`)."""
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            env = _environ(proc)
        except (OSError, ValueError):  # not a process, or gone meanwhile
            continue
        if cmd[-4:-1] == [b"oup.cli", b"aside", b"tiles3d"] and env.get("OUP_DATA_DIR") == data_dir:
            found.add(int(proc.name))
    return found


def test_a_write_s_3d_tiles_are_made_beside_the_worker_even_when_that_process_dies_with_it(
        server, imported, who):
    """The 3D tiles a write sets going are made in a process beside the server's worker
    (not on its request threads), in a scheduling group of its own. When that process
    dies with the job unfinished (here: still in its pipe, unread), another is started at
    once and makes it, with no other write to set it going."""
    from concurrent.futures import ThreadPoolExecutor

    from test_tiles3d_update import leaves, where

    data = imported["OUP_DATA_DIR"]
    folder = Path(data) / "3dtiles" / "buildings"
    feature = requests.get(f"{server}/collections/buildings/items", params={"limit": 1,
                           "offset": 7}, timeout=30).json()["features"][0]
    oid, url = feature["properties"]["cityobject_id"], \
        f"{server}/collections/buildings/items/{feature['id']}"
    [leaf] = [m["uri"] for m in where(folder, oid) if m["uri"] in leaves(folder)]

    def patch(value: str) -> None:
        r = requests.patch(url, data=json.dumps({"properties": {"bron_geo": value}}),
                           headers={**who["steward"],
                                    "Content-Type": "application/merge-patch+json"}, timeout=30)
        assert r.status_code == 200, r.text

    def seen(value: str) -> None:
        wait_for(lambda: any(m["uri"] == leaf and m["props"]["bron_geo"] == value
                             for m in where(folder, oid)), 60, f"the leaf with {value}")

    patch("beside the worker")
    seen("beside the worker")
    assert _aside_processes(data), "no process beside the workers made the tile"
    for round_ in range(10):  # writes at once until each of the 2 workers has started its own
        if len(_aside_processes(data)) == 2:
            break
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(patch, [f"round {round_} writer {i}" for i in range(4)]))
    first = _aside_processes(data)
    assert len(first) == 2, first
    # each in a scheduling group of its own, at the updater's nice (once it has started:
    # one of them may have just been)
    wait_for(lambda: all(os.getsid(pid) == pid for pid in first), 60, "sessions of their own")
    for pid in first:
        group = Path(f"/proc/{pid}/autogroup")
        if group.exists():  # (a kernel with autogroup)
            assert group.read_text().split()[-1] == \
                _environ(Path(f"/proc/{pid}"))["OUP_TILES3D_NICE"]
    for pid in first:
        os.kill(pid, signal.SIGSTOP)
    patch("while it was stopped")  # its job waits in the pipe of a process that reads none
    for pid in first:
        os.kill(pid, signal.SIGKILL)
    seen("while it was stopped")
    assert _aside_processes(data) - first


# the other end of ``Aside``'s pipes, standing in for `oup aside`: it notes each start and
# each job it did, and ends its process at a job "poison"
STAND_IN_ASIDE = """
import json, os, sys
from pathlib import Path

out = Path(sys.argv[1])
with open(out / "starts", "a") as f:
    f.write(f"{os.getpid()}\\n")
for line in sys.stdin:
    job = json.loads(line)
    if job["item"] == "poison":
        os._exit(9)
    with open(out / "done", "a") as f:
        f.write(job["item"] + "\\n")
    print(json.dumps({"done": [job["n"]]}), flush=True)
"""


def test_a_job_that_ends_the_process_beside_the_worker_is_sent_once_more_then_dropped(
        tmp_path, caplog):
    """The job a dead process beside the worker left goes to the next one, started at
    once; a job it dies of a second time is dropped, and said so, and the jobs after it
    are done."""
    import logging
    import sys

    from oup.writes.after import Aside

    def lines(name: str) -> list[str]:
        path = tmp_path / name
        return path.read_text().split() if path.exists() else []

    caplog.set_level(logging.WARNING, logger="oup.writes.after")
    aside = Aside([sys.executable, "-c", STAND_IN_ASIDE, str(tmp_path)], dict(os.environ),
                  announce=lambda event: None)
    aside.add("tiles3d", "city", "first")
    wait_for(lambda: lines("done") == ["first"], 30, "the first job")
    aside.add("tiles3d", "city", "poison")
    wait_for(lambda: any("dropped" in r.getMessage() for r in caplog.records), 30,
             "the poison dropped")
    aside.add("tiles3d", "city", "after")
    wait_for(lambda: lines("done") == ["first", "after"], 30, "the job after it")
    assert len(lines("starts")) == 3  # the first, and one after each death
    os.kill(int(lines("starts")[-1]), signal.SIGTERM)


CITY_MODEL = Path(__file__).resolve().parent.parent / "collections" / "buildings" / \
    "rotterdam-delfshaven.city.json"
CITY = {"Content-Type": "application/city+json"}


def _city_feature(oid: str, roof_up: int = 0) -> dict:
    """City object ``oid`` of the demo model (with its parts) as a CityJSONFeature, its
    vertices above its lowest ``roof_up`` units higher (millimetres)."""
    model = json.loads(CITY_MODEL.read_text())
    objs = {oid: model["CityObjects"][oid]}
    objs.update({c: model["CityObjects"][c] for c in objs[oid].get("children", [])})
    used: dict[int, int] = {}

    def renumber(b):
        if isinstance(b, list):
            return [renumber(x) for x in b]
        return used.setdefault(b, len(used))

    for o in objs.values():
        for g in o.get("geometry", []):
            g["boundaries"] = renumber(g["boundaries"])
            g.pop("texture", None), g.pop("material", None)
    verts = [list(model["vertices"][i]) for i in used]
    low = min(v[2] for v in verts)
    for v in verts:
        v[2] += roof_up if v[2] > low else 0
    return {"type": "CityJSONFeature", "id": oid, "CityObjects": objs, "vertices": verts,
            "transform": model["transform"]}


def test_a_cityjson_feature_carries_a_building_s_full_3d_shape(server, imported, who):
    from shapely.geometry import shape
    from test_tiles3d_update import ancestors, check_valid, files, leaves, where

    folder = Path(imported["OUP_DATA_DIR"]) / "3dtiles" / "buildings"
    feature = requests.get(f"{server}/collections/buildings/items",
                           params={"limit": 1, "offset": 5}, timeout=30).json()["features"][0]
    oid, url = feature["properties"]["cityobject_id"], \
        f"{server}/collections/buildings/items/{feature['id']}"
    [leaf] = [m for m in where(folder, oid) if m["uri"] in leaves(folder)]
    old = files(folder)
    h = {**who["steward"], **CITY}
    r = requests.put(url, data=json.dumps(_city_feature(oid, roof_up=5000)), headers=h,
                     timeout=30)
    assert r.status_code == 200, r.text
    props, was = r.json()["properties"], feature["properties"]
    # what the import derives from the 3D shape, derived from the one sent
    assert props["roof_level"] == pytest.approx(was["roof_level"] + 5, abs=0.002)
    assert props["ground_level"] == pytest.approx(was["ground_level"], abs=0.002)
    sent, had = shape(r.json()["geometry"]), shape(feature["geometry"])  # the same footprint
    assert sent.symmetric_difference(had).area < 1e-6 * had.area
    wait_for(lambda: all(files(folder).get(u) != old[u]  # its leaf, then the tiles above
                         for u in [leaf["uri"], *ancestors(folder, leaf["uri"])]), 30,
             "the 3D tiles")
    [now] = [m for m in where(folder, oid) if m["uri"] == leaf["uri"]]
    # its own surfaces, raised: as many vertices as before (an LoD1 block has far fewer)
    assert now["vertices"] == leaf["vertices"] and files(folder) != old
    check_valid(folder)

    # what a CityJSONFeature write refuses, and why
    one = _city_feature(oid)
    for body, status, named in (
            ({**one, "transform": None}, 400, "transform"),
            ({**one, "type": "Feature"}, 400, "type"),
            ({**one, "CityObjects": {**one["CityObjects"],
                                     "other": {"type": "Building", "geometry": []}}},
             422, "CityObjects"),
            ({**one, "vertices": [["x", 1, 2]]}, 422, "CityObjects")):
        r = requests.put(url, data=json.dumps(body), headers=h, timeout=30)
        assert r.status_code == status and r.json()["parameter"] == named, r.text
    other = requests.get(f"{server}/collections/buildings/items",
                         params={"limit": 1, "offset": 6}, timeout=30).json()["features"][0]
    r = requests.put(f"{server}/collections/buildings/items/{other['id']}",
                     data=json.dumps(one), headers=h, timeout=30)
    assert r.status_code == 422 and oid in r.json()["detail"], r.text
    r = requests.post(f"{server}/collections/meldingen/items", data=json.dumps(one),
                      headers={**who["steward"], **CITY}, timeout=30)
    assert r.status_code == 415, r.text


def test_withdrawing_a_report_erases_its_text_from_every_version(server, who, imported):
    h = {**who["anna"], "Content-Type": "application/merge-patch+json"}
    url = _create(server, "meldingen", _report(text="Mijn eerste tekst"), who["anna"]).headers[
        "Location"]
    assert requests.patch(url, data=json.dumps({"properties": {"description": "Mijn tweede"}}),
                          headers=h, timeout=30).status_code == 200
    versions = requests.get(f"{url}/history", headers=who["steward"], timeout=30).json()
    assert {v["properties"]["description"] for v in versions["features"]} == {
        "Mijn eerste tekst", "Mijn tweede"}
    assert requests.delete(url, headers=who["anna"], timeout=30).status_code == 204
    after = requests.get(f"{url}/history", headers=who["steward"], timeout=30).json()
    text = json.dumps(after)
    assert "Mijn eerste tekst" not in text and "Mijn tweede" not in text
    assert [v["properties"]["oup:change"] for v in after["features"]][0] == "deleted"
    audit = (Path(imported["OUP_DATA_DIR"]) / "audit.log").read_text()
    assert "Mijn" not in audit  # the audit log never holds personal data


def test_oup_erase_blanks_a_data_subjects_text_and_says_so(server, who, imported):
    from conftest import oup

    url = _create(server, "meldingen", _report(text="Bob zijn tekst"), who["bob"]).headers[
        "Location"]
    reporter = requests.get(url, headers=who["bob"], timeout=30).json()["properties"]["reporter"]
    done = oup(imported, "erase", "meldingen", "--owner", reporter)
    assert "blanked in" in done.stdout
    got = requests.get(url, headers=who["bob"], timeout=30).json()["properties"]
    assert got["description"] is None and got["category"] == "afval"  # the rest stays
    history = requests.get(f"{url}/history", headers=who["steward"], timeout=30).text
    assert "Bob zijn tekst" not in history
    log = (Path(imported["OUP_DATA_DIR"]) / "audit.log").read_text().splitlines()
    [erased] = [line for line in log if '"action":"ERASE personal data"' in line
                and reporter in line]
    assert "Bob zijn" not in "\n".join(log)
    assert oup(imported, "erase", "meldingen", check=False).returncode != 0  # whose?


def test_a_write_drops_the_cached_tiles_it_touches_and_only_those(workdir):
    """A server with OUP_TILE_CACHE=true: after a PATCH the tile of the feature is cut
    again with the new value; a tile far from it is kept on disk as it was."""
    import hashlib
    import os

    from conftest import make_plots, oup, serving
    from oup.tiles import matrix_sets as grids
    from test_vector_tiles import _decode

    cat, data = workdir / "write-cache-catalogue", workdir / "write-cache-data"
    make_plots(cat / "plots")
    key = "oup-test-steward-" + "0" * 16
    keys = workdir / "write-cache-keys.yml"
    keys.write_text(f"- name: steward\n  sha256: {hashlib.sha256(key.encode()).hexdigest()}\n"
                    "  roles: [steward]\n")
    env = dict(os.environ, OUP_DATA_DIR=str(data), OUP_CATALOG_DIR=str(cat),
               OUP_TILE_CACHE="true", OUP_LOG_LEVEL="WARNING", OUP_API_KEYS_FILE=str(keys))
    env.pop("OUP_DATABASE_URL", None)
    oup(env, "import", "--quiet")
    with serving(env) as url:
        plots = requests.get(f"{url}/collections/plots/items", timeout=30).json()["features"]
        first, last = plots[0], plots[-1]
        tms = grids.get("WebMercatorQuad")

        def tile_of(feature):
            lon, lat = feature["geometry"]["coordinates"][0][0]
            t = tms.tile(lon + 1e-6, lat + 1e-6, 21)
            return f"{url}/collections/plots/tiles/WebMercatorQuad/21/{t.y}/{t.x}", t

        (near, t0), (far, t1) = tile_of(first), tile_of(last)
        assert (t0.x, t0.y) != (t1.x, t1.y) and abs(t0.x - t1.x) > 2
        names = lambda u: {f["properties"]["name"] for f in _decode(  # noqa: E731
            requests.get(u, timeout=30).content)["plots"]["features"]}
        assert first["properties"]["name"] in names(near)
        assert last["properties"]["name"] in names(far)
        far_file = next((data / "tile-cache" / "plots").rglob(f"21/{t1.y}/{t1.x}.mvt"))
        kept = far_file.stat().st_mtime_ns
        r = requests.patch(f"{url}/collections/plots/items/{first['id']}",
                           data=json.dumps({"properties": {"name": "renamed plot"}}),
                           headers={"X-API-Key": key,
                                    "Content-Type": "application/merge-patch+json"}, timeout=30)
        assert r.status_code == 200, r.text
        assert "renamed plot" in names(near)  # cut again, not served from the disk
        assert far_file.stat().st_mtime_ns == kept  # untouched


def _page_around_a_write(write, script: str, *args: str) -> dict:
    """Run browser ``script`` (tests/js) with ``args``; once it says the page is ready,
    ``write()``; what it printed at the end (no error, no page error: asserted)."""
    import queue
    import shutil
    import subprocess

    from conftest import ROOT

    node = subprocess.Popen(["node", script, *args], cwd=ROOT / "tests" / "js",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={"CHROMIUM": shutil.which("chromium") or "/usr/bin/chromium",
                                 "PATH": "/usr/bin:/bin"})
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in node.stdout], daemon=True).start()
    try:
        assert json.loads(lines.get(timeout=300)) == {"ready": True}
        write()
        node.wait(timeout=200)
        out = json.loads(lines.get(timeout=10))
    finally:
        if node.poll() is None:
            node.kill()
    assert out["error"] is None and out["pageErrors"] == [], (out, node.stderr.read())
    return out


def test_a_new_building_is_a_part_of_its_leaf_and_cesium_draws_and_picks_it(
        server, imported, who, one_store):
    """A building POSTed as GeoJSON (a footprint, its ground and roof) comes to its leaf
    as a primitive of its own beside the leaf's mesh (tilers.update), and CesiumJS in
    /viewer, which loads the tileset again after the write, draws it and picks it there,
    with its attributes."""
    import shapely
    from shapely.geometry import mapping, shape

    from test_tiles3d_update import leaves, where

    folder = Path(imported["OUP_DATA_DIR"]) / "3dtiles" / "buildings"
    items = requests.get(f"{server}/collections/buildings/items", params={"limit": 10_000},
                         timeout=60).json()["features"]
    footprints = shapely.union_all([shape(f["geometry"]) for f in items])
    x0, y0, x1, y1 = footprints.bounds
    spot = next(p for p in (shapely.Point(x0 + (x1 - x0) * i / 20, y0 + (y1 - y0) * j / 20)
                            for i in range(2, 18) for j in range(2, 18))
                if p.distance(footprints) > 0.0009)  # about 60 m from any building
    oid = f"viewer-new-{time.time_ns()}"

    def post() -> None:
        square = shapely.box(spot.x - 0.0002, spot.y - 0.00013, spot.x + 0.0002,
                             spot.y + 0.00013)  # about 28 m
        r = requests.post(f"{server}/collections/buildings/items", timeout=30,
                          headers={**who["steward"], "Content-Type": "application/geo+json"},
                          data=json.dumps({"type": "Feature", "geometry": mapping(square),
                                           "properties": {"cityobject_id": oid,
                                                          "bron_geo": "a new one",
                                                          "ground_level": 0.0,
                                                          "roof_level": 40.0}}))
        assert r.status_code == 201, r.text

    out = _page_around_a_write(post, "pickone.mjs", f"{server}/viewer?at={spot.x},{spot.y},400",
                               str(spot.x), str(spot.y), "20", "120", oid, "150")
    # the tileset loaded again after the server redid the building's tiles, no reload
    assert out["lastEdit"]["type"] == "oup.tiles3d.updated", out
    assert out["lastEdit"]["data"]["collection"] == "buildings"
    assert out["picked"] and out["picked"]["id"] == oid, out
    assert out["picked"]["bron_geo"] == "a new one" and out["picked"]["type"] == "Building"
    [there] = [m for m in where(folder, oid) if m["uri"] in leaves(folder)]
    assert there["parts"] >= 2 and there["inPart"] >= 1 and there["vertices"] > 0, there


def test_the_map_shows_a_write_without_a_reload(server, who):
    """(The viewer: test_a_new_building_is_a_part_of_its_leaf_and_cesium_draws_and_picks_it)"""
    feature = requests.get(f"{server}/collections/buildings/items", params={"limit": 1,
                           "offset": 7}, timeout=30).json()["features"][0]
    lon, lat = feature["geometry"]["coordinates"][0][0][0][:2]
    value = f"seen on the map {time.time():.0f}"

    def patch() -> None:
        r = requests.patch(f"{server}/collections/buildings/items/{feature['id']}",
                           data=json.dumps({"properties": {"bron_geo": value}}),
                           headers={**who["steward"],
                                    "Content-Type": "application/merge-patch+json"},
                           timeout=30)
        assert r.status_code == 200, r.text

    out = _page_around_a_write(patch, "edits.mjs", f"{server}/map?at={lon},{lat},17",
                               "bron_geo", value, "90")
    assert out["edits"] >= 1, out
    assert out["found"] == value, out  # the tile drawn again holds the new value
    assert out["lastEdit"]["type"] == "oup.feature.updated"
