"""Free-text search on a real server, both stores: ``items?q=`` of each collection that
declares its text attributes (OWSLib and plain HTTP), ``/search`` over every collection
the caller may see, the index kept right by Part 4 writes, and the refusals."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.slow
GEOJSON = {"Content-Type": "application/geo+json"}
# the attributes the catalogue says q looks in (collections/*/collection.yml, conftest)
SEARCHED = {"neighbourhoods": ["buurtnaam", "wijknaam", "buurtcode"],
            "sensors": ["name", "observed_property", "owner", "sensor_id"]}


def _all(server, cid, headers=None) -> list[dict]:
    r = requests.get(f"{server}/collections/{cid}/items", params={"limit": 1000, "f": "json"},
                     headers=headers or {}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["features"]


def _matches(feature: dict, names: list[str], q: str) -> bool:
    """The rule, computed here from all the items: every word of q starts a word of one
    of the searched attributes."""
    text = [w.lower() for n in names for w in re.findall(r"[^\W_]+", str(
        feature["properties"].get(n) or ""))]
    return all(any(t.startswith(w) for t in text) for w in re.findall(r"[^\W_]+", q.lower()))


@pytest.mark.parametrize("cid,q", [("neighbourhoods", "Spangen"), ("neighbourhoods", "oud math"),
                                   ("neighbourhoods", "bu0599"), ("sensors", "delfshaven"),
                                   ("sensors", "Rijnmond no2")])
def test_items_q_finds_what_the_rule_says(server, cid, q):
    from owslib.ogcapi.features import Features

    page = Features(server).collection_items(cid, q=q, limit=100)
    expected = {f["id"] for f in _all(server, cid) if _matches(f, SEARCHED[cid], q)}
    assert expected, q  # the case is worth asking
    assert {f["id"] for f in page["features"]} == expected
    assert page["numberMatched"] == len(expected)


def test_q_spangen_finds_the_neighbourhood_spangen_first(server):
    from owslib.ogcapi.features import Features

    page = Features(server).collection_items("neighbourhoods", q="Spangen")
    assert [f["properties"]["buurtnaam"] for f in page["features"]] == ["Spangen"]
    # q goes with the other parameters: a bbox away from Spangen leaves nothing
    spangen = page["features"][0]
    far = requests.get(f"{server}/collections/neighbourhoods/items", params={
        "q": "Spangen", "bbox": "4.30,51.80,4.31,51.81"}, timeout=30).json()
    assert far["features"] == [] and far["numberMatched"] == 0
    by_code = requests.get(f"{server}/collections/neighbourhoods/items", params={
        "q": "spangen", "buurtcode": spangen["properties"]["buurtcode"]}, timeout=30).json()
    assert [f["id"] for f in by_code["features"]] == [spangen["id"]]


@pytest.mark.parametrize("params,named", [
    ({"q": "Spangen"}, "q"),  # the observations declare no text attributes
    ({"q": "  -- "}, "q"), ({"q": "x " * 20}, "q"), ({"q": "a" * 300}, "q"),
])
def test_q_refused_with_a_reason(server, params, named):
    cid = "observations" if params["q"] == "Spangen" else "neighbourhoods"
    r = requests.get(f"{server}/collections/{cid}/items", params=params, timeout=30)
    assert r.status_code == 400, r.text
    doc = r.json()
    assert doc.get("parameter") == named, doc
    assert "q" in doc["detail"]


def test_q_with_asof_is_refused(server):
    r = requests.get(f"{server}/collections/buildings/items", params={
        "q": "lidar", "asof": "2026-01-01T00:00:00Z"}, timeout=30)
    assert r.status_code == 400 and "asof" in r.json()["detail"], r.text


def test_the_openapi_document_offers_q_where_it_is_answered(server):
    doc = requests.get(f"{server}/openapi.json", timeout=30).json()

    def q_of(cid):
        params = doc["paths"][f"/collections/{cid}/items"]["get"]["parameters"]
        return [p for p in params if p.get("name") == "q"]

    assert "buurtnaam" in q_of("neighbourhoods")[0]["description"]
    assert q_of("register") == []  # declares no text attributes
    search = doc["paths"]["/search"]["get"]
    assert {p["name"] for p in search["parameters"]} >= {"q", "limit", "collections"}


def test_search_finds_spangen_across_collections(server):
    r = requests.get(f"{server}/search", params={"q": "Spangen"}, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith(
        "application/geo+json"), r.text
    doc = r.json()
    first = doc["features"][0]["properties"]
    assert (first["collection"], first["title"]) == ("neighbourhoods", "Spangen")
    ranks = [f["properties"]["rank"] for f in doc["features"]]
    assert ranks == sorted(ranks, reverse=True)
    # the item it names is that feature
    item = requests.get(doc["features"][0]["links"][0]["href"], timeout=30).json()
    assert item["properties"]["buurtnaam"] == "Spangen"
    assert item["geometry"]["type"] == doc["features"][0]["geometry"]["type"]
    # its bbox: where a map goes to show it, from the item's own coordinates
    xs, ys = zip(*_points(item["geometry"]["coordinates"]))
    assert doc["features"][0]["bbox"] == pytest.approx([min(xs), min(ys), max(xs), max(ys)])


def _points(coords):
    return [coords] if isinstance(coords[0], (int, float)) else \
        [p for c in coords for p in _points(c)]


def test_search_limit_and_collections(server):
    # every neighbourhood's code starts with BU0599; the sensors have no such word
    doc = requests.get(f"{server}/search", params={"q": "bu0599", "limit": 4},
                       timeout=30).json()
    assert len(doc["features"]) == 4 == doc["numberReturned"]
    only = requests.get(f"{server}/search", params={"q": "delfshaven",
                                                     "collections": "sensors"}, timeout=30)
    assert {f["properties"]["collection"] for f in only.json()["features"]} == {"sensors"}
    for bad in ({"q": "x", "limit": 0}, {"q": "x", "limit": 101}, {"limit": 3},
                {"q": "x", "collections": "nothere"}, {"q": "x", "colour": "red"}):
        r = requests.get(f"{server}/search", params=bad, timeout=30)
        assert r.status_code == 400, (bad, r.text)


def test_search_never_shows_a_collection_the_caller_may_not_see(server, imported, credentials):
    """restricted-care and internal-figures (conftest: copies of the liveability index,
    which declares buurtcode searchable) hold the same codes as the neighbourhoods."""
    code = next(f["properties"]["buurtcode"] for f in _all(server, "neighbourhoods")
                if f["properties"]["buurtnaam"] == "Spangen")
    anonymous = requests.get(f"{server}/search", params={"q": code, "limit": 100},
                             timeout=30).json()
    seen = {f["properties"]["collection"] for f in anonymous["features"]}
    assert {"neighbourhoods", "leefbaarheid"} <= seen
    assert not seen & {"restricted-care", "internal-figures"}, seen
    assert "restricted-care" not in json.dumps(anonymous)
    # asking for it by name: as absent as a collection that is not there
    hidden = requests.get(f"{server}/search", params={"q": code, "collections":
                                                      "restricted-care"}, timeout=30)
    nothere = requests.get(f"{server}/search", params={"q": code, "collections": "nothere"},
                           timeout=30)
    assert hidden.status_code == nothere.status_code == 400
    assert hidden.json()["detail"].replace("restricted-care", "X") == \
        nothere.json()["detail"].replace("nothere", "X")
    # with the role, it is searched, and the search is audited (each non-public collection)
    log = Path(imported["OUP_DATA_DIR"]) / "audit.log"
    analyst = requests.get(f"{server}/search", params={"q": code, "limit": 100},
                           headers={"X-API-Key": credentials["api_key"],
                                    "X-Request-ID": f"search-{code}"}, timeout=30).json()
    assert {"restricted-care", "internal-figures"} <= {
        f["properties"]["collection"] for f in analyst["features"]}
    audited = [json.loads(line) for line in log.read_text().splitlines()
               if f"search-{code}" in line]
    assert sorted(e["collection"] for e in audited) == ["internal-figures", "restricted-care"]
    assert {(e["who"], e["action"]) for e in audited} == {("key:etl-service", "GET /search")}


def test_search_keeps_to_a_residents_own_reports(server, credentials):
    """The demo's restricted meldingen is not searchable; a resident's search shows no
    one's reports, an anonymous one none at all."""
    from test_writes import _token

    resident = {"Authorization": "Bearer " + _token(credentials, "r-search", ["resident"])}
    for headers in ({}, resident):
        doc = requests.get(f"{server}/search", params={"q": "afval", "limit": 100},
                           headers=headers, timeout=30).json()
        assert "meldingen" not in {f["properties"]["collection"] for f in doc["features"]}


def test_writes_keep_the_index_and_the_first_attribute_weighs_most(server, credentials):
    from test_writes import _plot, _token

    h = {**GEOJSON, "Authorization": "Bearer " + _token(credentials, "s-search", ["steward"])}
    base = f"{server}/collections/plots/items"
    stamp = int(time.time() * 1000) % 100000
    word, named = f"veerhaven{stamp}", f"N-{stamp}"  # new to this store

    def found():
        r = requests.get(base, params={"q": word, "limit": 50}, timeout=30)
        assert r.status_code == 200, r.text
        return [f["id"] for f in r.json()["features"]]

    assert found() == []
    # the word as a plot's name, and as the start of another plot's code
    by_name = requests.put(f"{base}/{named}", data=json.dumps(_plot(word)), headers=h,
                           timeout=30)
    by_code = requests.put(f"{base}/{word}b", data=json.dumps(_plot("kop")), headers=h,
                           timeout=30)
    assert by_name.status_code == by_code.status_code == 201, (by_name.text, by_code.text)
    assert found() == [named, f"{word}b"]  # the name weighs more than the code
    patch = {**h, "Content-Type": "application/merge-patch+json"}
    r = requests.patch(f"{base}/{named}", data=json.dumps({"properties": {"name": "kade"}}),
                       headers=patch, timeout=30)
    assert r.status_code in (200, 204), r.text
    assert found() == [f"{word}b"]
    assert requests.delete(f"{base}/{word}b", headers=h, timeout=30).status_code == 204
    assert found() == []
    hits = requests.get(f"{server}/search", params={"q": "kade", "collections": "plots"},
                        timeout=30).json()["features"]
    assert named in {f["properties"]["id"] for f in hits}
