"""Feature writes in the store, in-process, on both stores: a write is one transaction
that keeps the version it replaces (history, asof), checks the ETag it was given, and
leaves the tiles and reads as an import of the new data would."""
from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import mapbox_vector_tile
import pytest
import shapely

from conftest import ROOT
from oup.store import Field, Query
from oup.store.base import (Change, Feature, FeatureExists, FeatureNotFound, StaleVersion,
                            Unprocessable)
from oup.store.gpkg import GeoPackageStore
from oup.store.mvt import TileQuery, tile_layer
from oup.tiles import matrix_sets as grids

LON, LAT = 4.455, 51.906
FIELDS = [Field("name", "string"), Field("count", "integer"), Field("reporter", "string")]
_numbers = itertools.count()


# the PostGIS half starts a cluster: the slow layer (conftest marks by fixture name, and
# this one asks for it only when it runs)
@pytest.fixture(params=["gpkg", pytest.param("postgis", marks=pytest.mark.slow)])
def store(request, tmp_path):
    if request.param == "gpkg":
        yield GeoPackageStore(tmp_path / "writes.gpkg")
        return
    from oup.store.postgis import PostGISStore

    s = PostGISStore(request.getfixturevalue("postgis").create(f"writes{next(_numbers)}"),
                     pool_size=4)
    yield s
    s.close()


def _block(dx: float = 0.0) -> shapely.Polygon:
    return shapely.box(LON + dx, LAT, LON + dx + 0.001, LAT + 0.0006)


def _feature(geom=None, **props) -> Feature:
    geom = _block() if geom is None else geom
    return Feature(geom, geom, props)


def _import(store, id_field: str | None = None, fields=FIELDS) -> None:
    """Two blocks (ids 1 and 2: row numbers, or the id field's values)."""
    feats = [_feature(_block(0), name="one", count=1, reporter="ann"),
             _feature(_block(0.002), name="two", count=2, reporter="bob")]
    if id_field == "code":
        for f, code in zip(feats, ("a", "b")):
            f.properties["code"] = code
    store.write_collection("blocks", "EPSG:4326", fields, feats, id_field=id_field)


def _names(store, **query) -> dict:
    return {f["id"]: f["properties"]["name"]
            for f in store.query("blocks", Query(limit=100, **query)).features}


def _history_rows(store) -> int:
    return store.execute('SELECT COUNT(*) FROM "blocks__history"')[0][0]


def _tile(store, lon=LON + 0.0005, lat=LAT + 0.0003) -> dict:
    """The tile (WebMercatorQuad z15) at (lon, lat): its features' ids -> properties."""
    t = grids.get("WebMercatorQuad").tile(lon, lat, 15)
    tile = grids.Tile("WebMercatorQuad", 15, t.y, t.x)
    data = tile_layer(store, TileQuery("blocks", ("name", "count"), tile.bounds, tile.srid,
                                       tile.crs, tile.crs84_envelope))
    layer = mapbox_vector_tile.decode(data).get("blocks", {"features": []}) if data else \
        {"features": []}
    return {f["id"]: f["properties"] for f in layer["features"]}


def test_create_replace_update_delete_read_back(store):
    _import(store)
    created = store.write_feature("blocks", Change(
        "created", None, _feature(_block(0.004), name="three", count=3), actor="key:alice"))
    assert created.fid == 3 and created.before is None  # the next row number
    assert created.after["properties"] == {"name": "three", "count": 3, "reporter": None}
    assert created.after["geometry"]["type"] == "Polygon"
    assert store.get("blocks", 3)["properties"]["name"] == "three"

    moved = _block(0.006)
    replaced = store.write_feature("blocks", Change(
        "replaced", 1, _feature(moved, name="uno"), actor="key:alice"))
    assert replaced.before["properties"] == {"name": "one", "count": 1, "reporter": "ann"}
    assert replaced.after["properties"] == {"name": "uno", "count": None, "reporter": None}
    assert shapely.geometry.shape(replaced.after["geometry"]).equals(moved)

    # a merge patch: only the properties named change, the geometry stays
    updated = store.write_feature("blocks", Change(
        "updated", 2, Feature(None, None, {"count": 20, "reporter": None}), actor="key:bob"))
    assert updated.after["properties"] == {"name": "two", "count": 20, "reporter": None}
    assert updated.after["geometry"] == updated.before["geometry"]

    deleted = store.write_feature("blocks", Change("deleted", 3, None, actor="key:bob"))
    assert deleted.etag is None and deleted.after is None
    assert deleted.before["properties"]["name"] == "three"
    assert store.get("blocks", 3) is None
    assert _names(store) == {1: "uno", 2: "two"}
    assert store.extent("blocks")["count"] == 2
    # the bbox grew to hold the moved block (a bbox query finds it where it went)
    assert _names(store, bbox=moved.bounds) == {1: "uno"}
    assert store.extent("blocks")["bbox"][2] >= moved.bounds[2]
    with pytest.raises(FeatureNotFound):
        store.write_feature("blocks", Change("deleted", 3, None, actor="key:bob"))
    # a feature without geometry, and one given geometry again
    bare = store.write_feature("blocks", Change("created", None, Feature(None, None,
                                                                        {"name": "bare"})))
    assert store.get("blocks", bare.fid)["geometry"] is None
    assert _names(store, bbox=(4, 51, 5, 52)) == {1: "uno", 2: "two"}
    store.write_feature("blocks", Change("replaced", bare.fid, _feature(name="placed")))
    assert _names(store, bbox=_block().bounds) == {bare.fid: "placed"}
    with pytest.raises(FeatureNotFound):
        store.write_feature("blocks", Change("replaced", 99, _feature(name="x")))


def test_tiles_cut_after_a_write_draw_the_new_geometry_and_not_the_deleted(store):
    _import(store)
    assert set(_tile(store)) == {1, 2}
    # two z15 tiles east; a new value ("three") the import never numbered
    far, there = _block(0.02), LON + 0.0205
    assert _tile(store, there) == {}
    store.write_feature("blocks", Change("created", None, _feature(far, name="three", count=7)))
    assert _tile(store, there) == {3: {"name": "three", "count": 7}}
    store.write_feature("blocks", Change("replaced", 1, _feature(far, name="moved", count=1)))
    assert set(_tile(store)) == {2}  # gone from where it was ...
    assert _tile(store, there)[1] == {"name": "moved", "count": 1}  # ... drawn here
    store.write_feature("blocks", Change("deleted", 3, None))
    assert set(_tile(store, there)) == {1}
    if isinstance(store, GeoPackageStore):  # tiles use the numbered values, not the rows
        assert store.execute('SELECT COUNT(*) FROM "blocks" WHERE _oup_values IS NULL') \
            == [(0,)]
        assert store.execute('SELECT COUNT(*) FROM "rtree_blocks__oup_geom84"') == [(2,)]


def test_gpkg_values_a_write_adds_are_appended_and_read_by_another_process(tmp_path):
    """The import's value table is kept as it is; a value a write brings is added once,
    numbered after it, and a reader that already holds the table (another process: a
    store object of its own) takes in the added values and draws them."""
    writer, reader = GeoPackageStore(tmp_path / "v.gpkg"), None
    _import(writer)
    reader = GeoPackageStore(tmp_path / "v.gpkg")
    table = writer.execute("SELECT value_bytes FROM oup_tile_values WHERE table_name = 'blocks'")
    assert _tile(reader)[1] == {"name": "one", "count": 1}  # the reader holds the table now
    for n, name in enumerate(["alpha", "beta", "alpha"]):
        writer.write_feature("blocks", Change("updated", 1, Feature(None, None,
                                                                    {"name": name, "count": 40 + n})))
        assert _tile(reader)[1] == {"name": name, "count": 40 + n}
    assert writer.execute("SELECT value_bytes FROM oup_tile_values "
                          "WHERE table_name = 'blocks'") == table
    added = writer.execute("SELECT n, value FROM oup_tile_values_added ORDER BY n")
    imported = len(reader.tile_values("blocks").lens) - len(added)
    assert [n for n, _ in added] == list(range(imported, imported + len(added)))
    # "alpha" once though written twice; 40, 41, 42 each once: five values added
    assert len(added) == len({v for _, v in added}) == 5


FORKED_TURNS = """
import multiprocessing, sys, time
from oup.store.base import Change, Feature
from oup.store.gpkg import GeoPackageStore
from oup.store.gpkg_writes import write_turn

def write(path):
    GeoPackageStore(path).write_feature("blocks", Change(
        "updated", 1, Feature(None, None, {"name": "child", "count": 7})))

if __name__ == "__main__":
    store = GeoPackageStore(sys.argv[1])
    name = lambda: store.get("blocks", 1)["properties"]["name"]
    child = multiprocessing.get_context("fork").Process(target=write, args=(store.path,),
                                                        daemon=True)
    with write_turn(store.path):  # this process's locks, taken before the fork
        child.start()
        time.sleep(1.5)
        waited = child.is_alive() and name() == "one"
    child.join(30)
    print(waited, child.exitcode, name())
"""


def test_gpkg_writes_of_forked_processes_take_turns(tmp_path):
    """The server's workers are processes forked from one. A write in one waits while
    another holds the file's turn, then lands: each process takes turns through locks of
    its own (through the parent's lock file descriptor, or its thread lock copied while
    held, the child would get in at once, or never). In a fresh interpreter: a fork
    from the test run, with its threads, could copy a lock another thread holds."""
    store = GeoPackageStore(tmp_path / "t.gpkg")
    _import(store)
    script = tmp_path / "forked_turns.py"
    script.write_text(FORKED_TURNS)
    done = subprocess.run([sys.executable, str(script), store.path], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "0", "child"]  # waited, then wrote


def test_the_etag_changes_on_every_write_and_on_every_import(store):
    _import(store)
    seen = {store.etag("blocks", 1)}
    for i in range(3):
        w = store.write_feature("blocks", Change("updated", 1, _feature(None, count=i)))
        assert w.etag == store.etag("blocks", 1) and w.etag not in seen
        seen.add(w.etag)
    # read with the feature, in one statement: the same ETag
    feature, tag = store.get_tagged("blocks", 1)
    assert tag == store.etag("blocks", 1) and feature == store.get("blocks", 1)
    assert store.get_tagged("blocks", 99) == (None, None)
    assert store.get_tagged("blocks", ")`t") == (None, None)  # not a row number (found by fuzzing)
    _import(store)  # the same data again: versions restart, the ETag does not repeat
    assert store.etag("blocks", 1) not in seen
    assert store.etag("blocks", 99) is None and store.etag("blocks", "x") is None


def test_a_stale_etag_is_refused_and_writes_nothing(store):
    _import(store)
    old = store.etag("blocks", 1)
    store.write_feature("blocks", Change("updated", 1, Feature(None, None, {"count": 5}),
                                         expected=old))
    for kind, feature in (("replaced", _feature(name="late")),
                          ("updated", Feature(None, None, {"name": "late"})),
                          ("deleted", None)):
        with pytest.raises(StaleVersion) as err:
            store.write_feature("blocks", Change(kind, 1, feature, expected=old))
        assert err.value.status == 412
    assert store.get("blocks", 1)["properties"]["count"] == 5
    assert len(store.history("blocks", 1)) == 2


def test_two_writers_with_one_etag_exactly_one_wins(store):
    _import(store)
    for round_ in range(3):
        etag = store.etag("blocks", 1)
        start, outcomes = threading.Barrier(2), []

        def write(name):
            start.wait()
            try:
                outcomes.append(store.write_feature("blocks", Change(
                    "updated", 1, Feature(None, None, {"name": name}), expected=etag,
                    actor=f"key:{name}")))
            except StaleVersion as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=write, args=(f"w{round_}{i}",)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        won = [o for o in outcomes if not isinstance(o, Exception)]
        assert len(won) == 1 and len(outcomes) == 2
        assert store.get("blocks", 1)["properties"]["name"] == won[0].after["properties"]["name"]
    assert len(store.history("blocks", 1)) == 4  # the import and one write a round


def test_many_writers_at_once_lose_nothing(store):
    """Creations, updates and deletions side by side: every one counted, every version
    kept, the extent grown by every new feature (PostgreSQL runs them concurrently)."""
    _import(store)
    errors = []

    def create(k):
        for i in range(5):
            store.write_feature("blocks", Change("created", None, _feature(
                _block(0.01 * (k + 1) + 0.002 * i), name=f"c{k}{i}")))

    def update(k):
        for i in range(5):
            store.write_feature("blocks", Change("updated", 1 + k % 2, Feature(
                None, None, {"count": 100 * k + i})))

    def run(work, k):
        try:
            work(k)
        except Exception as exc:  # noqa: BLE001 (the test reports whatever went wrong)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w, k)) for k in range(4)
               for w in (create, update)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert store.extent("blocks")["count"] == 2 + 20
    assert len(store.query("blocks", Query(limit=100)).features) == 22
    box = store.extent("blocks")["bbox"]
    assert box[2] == pytest.approx(LON + 0.04 + 0.008 + 0.001)  # the easternmost creation
    assert len(store.history("blocks", 1)) == len(store.history("blocks", 2)) == 1 + 10
    ids = {f["id"] for f in store.query("blocks", Query(limit=100)).features}
    deleted = sorted(ids - {1, 2})[:6]
    threads = [threading.Thread(target=run, args=(
        lambda fid: store.write_feature("blocks", Change("deleted", fid, None)), fid))
        for fid in deleted]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert store.extent("blocks")["count"] == 22 - 6


def test_history_lists_versions_newest_first_with_kinds_and_actors(store):
    _import(store, id_field="code", fields=FIELDS + [Field("code", "string")])
    store.write_feature("blocks", Change("updated", "a", Feature(None, None, {"count": 10}),
                                         actor="key:alice"))
    store.write_feature("blocks", Change("replaced", "a", _feature(name="A", count=11),
                                         actor="key:bob"))
    store.write_feature("blocks", Change("deleted", "a", None, actor="key:carol"))
    versions = store.history("blocks", "a")
    assert [(v["kind"], v["actor"], v["version"]) for v in versions] == [
        ("deleted", "key:carol", 4), ("replaced", "key:bob", 3),
        ("updated", "key:alice", 2), ("imported", None, 1)]
    assert versions[0]["feature"] is None and versions[0]["valid_to"] is None
    assert [v["feature"]["properties"]["count"] for v in versions[1:]] == [11, 10, 1]
    for newer, older in zip(versions, versions[1:]):
        assert older["valid_to"] == newer["valid_from"] > older["valid_from"]
    # created again under the same id: its versions go on, the deletion ends
    again = store.write_feature("blocks", Change("created", "a", _feature(name="again"),
                                                 actor="key:dave"))
    versions = store.history("blocks", "a")
    assert again.etag.endswith("-5") and versions[0]["kind"] == "created"
    assert versions[1]["kind"] == "deleted" and versions[1]["valid_to"] is not None
    assert store.history("blocks", "zz") == []


def _reimport(store, codes: dict[str, int], fields=FIELDS + [Field("code", "string")]):
    """The blocks again, by code: each with its count (its block's place and name as
    ``_import`` gave them)."""
    places = {"a": 0.0, "b": 0.002, "c": 0.004}
    names = {"a": "one", "b": "two", "c": "three"}
    reporters = {"a": "ann", "b": "bob", "c": "cy"}
    store.write_collection("blocks", "EPSG:4326", fields, [
        _feature(_block(places[c]), name=names[c], count=n, reporter=reporters[c], code=c)
        for c, n in codes.items()], id_field="code")


def _instant() -> datetime:
    time.sleep(0.01)
    now = datetime.now(timezone.utc)
    time.sleep(0.01)
    return now


def test_a_reimport_keeps_the_history_of_features_with_an_id(store):
    _import(store, id_field="code", fields=FIELDS + [Field("code", "string")])
    a_tag = store.etag("blocks", "a")
    for count in (20, 21):
        store.write_feature("blocks", Change("updated", "b", Feature(None, None,
                                                                     {"count": count}),
                                             actor="key:alice"))
    store.write_feature("blocks", Change("created", "c", _feature(
        _block(0.004), name="three", count=30, reporter="cy"), owner="owner-c"))
    before = _instant()
    # a as it was, b as the source has it (not as written), c as the source has it
    _reimport(store, {"a": 1, "b": 2, "c": 3})
    a = store.history("blocks", "a")
    assert [(v["kind"], v["version"]) for v in a] == [("imported", 1)]
    # unchanged: the same version (the ETag's import part is new: no ETag repeats)
    assert store.etag("blocks", "a").split("-")[1] == a_tag.split("-")[1] == "1"
    assert store.etag("blocks", "a") != a_tag
    b = store.history("blocks", "b")
    assert [(v["kind"], v["version"], v["feature"]["properties"]["count"]) for v in b] == [
        ("imported", 4, 2), ("updated", 3, 21), ("updated", 2, 20), ("imported", 1, 2)]
    for newer, older in zip(b, b[1:]):
        assert older["valid_to"] == newer["valid_from"] > older["valid_from"]
    assert store.get("blocks", "b", asof=before)["properties"]["count"] == 21
    assert store.get("blocks", "b")["properties"]["count"] == 2
    assert _names(store, owner="owner-c") == {"c": "three"}  # the owner stays with it
    assert [(v["kind"], v["version"]) for v in store.history("blocks", "c")] == [
        ("imported", 2), ("created", 1)]
    assert store.get("blocks", "c", asof=before)["properties"]["count"] == 30

    # gone from the source: deleted as of the import; back again: its versions go on
    before_gone = _instant()
    _reimport(store, {"b": 2, "c": 3})
    assert store.get("blocks", "a") is None
    assert store.get("blocks", "a", asof=before_gone)["properties"]["name"] == "one"
    a = store.history("blocks", "a")
    assert [(v["kind"], v["version"]) for v in a] == [("deleted", 2), ("imported", 1)]
    assert a[0]["valid_to"] is None and a[1]["valid_to"] == a[0]["valid_from"]
    assert [v["version"] for v in store.history("blocks", "b")] == [4, 3, 2, 1]
    _reimport(store, {"a": 1, "b": 2, "c": 3})
    assert [v["version"] for v in store.history("blocks", "b")] == [4, 3, 2, 1]
    a = store.history("blocks", "a")
    assert [(v["kind"], v["version"]) for v in a] == [("imported", 3), ("deleted", 2),
                                                      ("imported", 1)]
    assert a[1]["valid_to"] == a[0]["valid_from"]
    assert _names(store, asof=before) == {"a": "one", "b": "two", "c": "three"}
    assert _names(store, asof=before_gone) == {"a": "one", "b": "two", "c": "three"}


def test_another_process_sees_the_count_and_extent_a_write_grew(store):
    """Each process keeps the layer metadata it read; a write in another one shows in
    it (the PostGIS store trusts what it read for ``META_SECONDS``: here none)."""
    _import(store)
    other = type(store)(getattr(store, "url", None) or store.path)
    other.META_SECONDS = 0.0
    assert other.extent("blocks")["count"] == 2
    far = shapely.box(LON + 0.05, LAT + 0.05, LON + 0.051, LAT + 0.0506)
    store.write_feature("blocks", Change("created", None, _feature(far, name="far")))
    assert other.extent("blocks")["count"] == 3
    assert other.extent("blocks")["bbox"][2] == pytest.approx(LON + 0.051)
    if hasattr(other, "close"):
        other.close()


def test_the_feature_a_write_gives_back_is_the_one_stored(store):
    """The written feature (the answer, the audit, the event) is the row as the column
    types keep it: a whole number sent for a number is 5.0, as a read gives it (SQLite's
    RETURNING gives values as sent)."""
    fields = [Field("x", "number"), Field("ok", "boolean"), Field("n", "integer")]
    store.write_collection("kinds", "EPSG:4326", fields, [_feature(x=2.5, ok=False, n=1)])
    made = store.write_feature("kinds", Change("created", None, _feature(x=5, ok=True, n=3)))
    changed = store.write_feature("kinds", Change("updated", made.fid, Feature(
        None, None, {"x": 7})))
    assert json.dumps(made.after["properties"]) == json.dumps({"x": 5.0, "ok": True, "n": 3})
    assert json.dumps(changed.after["properties"]) == json.dumps(
        store.get("kinds", made.fid)["properties"]) == json.dumps({"x": 7.0, "ok": True, "n": 3})


def test_postgis_growth_rows_are_folded_and_dropped_by_a_reimport(postgis, monkeypatch):
    """PostGIS: creations side by side each add a row of growth instead of locking the
    layer's metadata row; a reader folds them in past ``FOLD_ROWS``, and the count and
    extent stay those of the rows written (counted here from the table itself)."""
    from oup.store import pg_growth
    from oup.store.postgis import PostGISStore

    monkeypatch.setattr(pg_growth, "FOLD_ROWS", 3)
    store = PostGISStore(postgis.create(f"writes{next(_numbers)}"), pool_size=4)
    store.META_SECONDS = 0.0
    try:
        _import(store)
        errors = []

        def create(k):
            try:
                for i in range(4):
                    store.write_feature("blocks", Change("created", None, _feature(
                        _block(0.01 * (k + 1) + 0.002 * i), name=f"c{k}{i}")))
                    store.extent("blocks")  # a reader folds now and then
            except Exception as exc:  # noqa: BLE001 (reported below)
                errors.append(exc)

        threads = [threading.Thread(target=create, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        rows, east = store.execute('SELECT COUNT(*), MAX(ST_XMax(_oup_geom84)) FROM "blocks"')[0]
        left = store.execute("SELECT COUNT(*) FROM oup_layer_growth")[0][0]
        assert rows == 18 and left <= 4  # folded: at most FOLD_ROWS + 1 rows stay
        assert store.extent("blocks")["count"] == rows
        assert store.extent("blocks")["bbox"][2] == pytest.approx(east)
        stored = store.execute("SELECT (meta->>'count')::int FROM oup_layers")[0][0]
        assert 2 < stored <= rows  # some folded into the metadata row itself
        _import(store)  # the table replaced: its growth goes with it
        assert store.execute("SELECT COUNT(*) FROM oup_layer_growth")[0][0] == 0
        assert store.extent("blocks")["count"] == 2
    finally:
        store.close()


def test_without_an_id_field_a_reimport_starts_the_history_again(store):
    _import(store)
    store.write_feature("blocks", Change("updated", 1, Feature(None, None, {"count": 9})))
    _import(store)
    assert [(v["kind"], v["version"]) for v in store.history("blocks", 1)] == [("imported", 1)]


def test_asof_answers_as_the_collection_was(store):
    _import(store)
    time.sleep(0.01)
    before_create = datetime.now(timezone.utc)
    time.sleep(0.01)
    store.write_feature("blocks", Change("created", None, _feature(name="three")))
    store.write_feature("blocks", Change("updated", 1, Feature(None, None, {"name": "uno"})))
    time.sleep(0.01)
    before_delete = datetime.now(timezone.utc)
    time.sleep(0.01)
    store.write_feature("blocks", Change("deleted", 2, None))
    assert _names(store) == {1: "uno", 3: "three"}
    assert _names(store, asof=before_create) == {1: "one", 2: "two"}
    assert _names(store, asof=before_delete) == {1: "uno", 2: "two", 3: "three"}
    assert store.get("blocks", 3, asof=before_create) is None
    assert store.get("blocks", 2, asof=before_delete)["properties"]["name"] == "two"
    assert store.get("blocks", 2) is None
    # the filters and the count work on the versions too
    page = store.query("blocks", Query(asof=before_delete, bbox=_block(0.002).bounds,
                                       equals={"name": "two"}))
    assert [f["id"] for f in page.features] == [2] and page.number_matched == 1
    assert store.query("blocks", Query(asof=before_delete, limit=1)).number_matched == 3
    assert _names(store, asof=datetime(2000, 1, 1, tzinfo=timezone.utc)) == {}


def test_owner_filter_and_owned_writes(store):
    _import(store)
    mine = store.write_feature("blocks", Change("created", None, _feature(name="mine"),
                                                actor="key:r1", owner="resident-1"))
    store.write_feature("blocks", Change("created", None, _feature(name="theirs"),
                                         actor="key:r2", owner="resident-2"))
    assert _names(store, owner="resident-1") == {mine.fid: "mine"}
    assert store.get("blocks", mine.fid, owner="resident-2") is None
    assert store.get("blocks", mine.fid, owner="resident-1")["properties"]["name"] == "mine"
    with pytest.raises(FeatureNotFound):  # another's feature is not there for a resident
        store.write_feature("blocks", Change("deleted", mine.fid, None, owner="resident-2"))
    store.write_feature("blocks", Change("updated", mine.fid, Feature(None, None, {"count": 1}),
                                         owner="resident-1"))
    assert _names(store, owner="resident-1") == {mine.fid: "mine"}  # the owner stays


def test_server_made_ids(store):
    fields = FIELDS + [Field("code", "string")]
    _import(store, id_field="code", fields=fields)
    made = store.write_feature("blocks", Change("created", None, _feature(name="x")))
    assert len(made.fid) == 36 and store.get("blocks", made.fid)["properties"]["code"] == made.fid
    with pytest.raises(FeatureExists) as err:
        store.write_feature("blocks", Change("created", "a", _feature(name="dup")))
    assert err.value.status == 409
    with pytest.raises(Unprocessable):  # the id cannot change
        store.write_feature("blocks", Change("replaced", "a", _feature(code="c")))
    # an integer id field: the next integer, never one a deleted feature had
    store.write_collection("numbered", "EPSG:4326", [Field("n", "integer")],
                           [_feature(n=5), _feature(n=9)], id_field="n")
    store.write_feature("numbered", Change("deleted", 9, None))
    assert store.write_feature("numbered", Change("created", None, _feature())).fid == 10


def test_a_failed_write_leaves_no_trace(store, monkeypatch):
    _import(store)
    etag, history, names = store.etag("blocks", 1), _history_rows(store), _names(store)
    extent = store.extent("blocks")

    def fail(*args):
        raise RuntimeError("the disk is full")

    # after the version was copied to the history and the row written
    monkeypatch.setattr(type(store), "_row_written", fail)
    monkeypatch.setattr(type(store), "_row_deleted", fail)
    for change in (Change("replaced", 1, _feature(_block(0.01), name="lost")),
                   Change("created", None, _feature(name="lost")),
                   Change("deleted", 1, None)):
        with pytest.raises(RuntimeError):
            store.write_feature("blocks", change)
    monkeypatch.undo()
    with pytest.raises(Unprocessable):  # a property the collection has not
        store.write_feature("blocks", Change("replaced", 1, _feature(name="x", colour="red")))
    store.forget_layers()
    assert (store.etag("blocks", 1), _history_rows(store), _names(store)) == \
        (etag, history, names)
    assert store.extent("blocks") == extent
    assert set(_tile(store)) == {1, 2}
    # and the next write goes through as if nothing had happened (PostgreSQL's sequences
    # do not roll back: a row number may be skipped)
    w = store.write_feature("blocks", Change("created", None, _feature(name="three")))
    assert w.fid > 2 and _names(store) == {**names, w.fid: "three"}


def test_several_changes_in_one_transaction_all_or_none_versions_optional(store):
    """``write_features``: the changes in order, as one transaction (a failing one
    leaves none of them), and without versions where the data is made again from other
    data (an overview's blocks): the rows change, the history does not."""
    _import(store)
    history = _history_rows(store)
    written = store.write_features("blocks", [
        Change("replaced", 1, _feature(_block(0.01), name="uno")),
        Change("created", None, _feature(name="three")),
        Change("deleted", 2, None)], versions=False)
    assert [w.after is None for w in written] == [False, False, True]
    assert _names(store) == {1: "uno", written[1].fid: "three"}
    assert _history_rows(store) == history and store.extent("blocks")["count"] == 2
    assert set(_tile(store)) == {written[1].fid}  # 1 moved out of the tile, 2 gone
    # the same with versions kept: each replaced or deleted version in the history
    store.write_features("blocks", [Change("updated", 1, Feature(None, None, {"count": 7})),
                                    Change("deleted", written[1].fid, None)])
    assert _history_rows(store) == history + 3
    # not answered (the overview's blocks): the same writes, their ids and ETags, no features
    quiet = store.write_features("blocks", [
        Change("updated", 1, Feature(None, None, {"name": "eins"})),
        Change("created", None, _feature(name="vier"))], versions=False, answered=False)
    assert [(w.before, w.after) for w in quiet] == [(None, None)] * 2
    assert quiet[0].fid == 1 and quiet[0].etag == store.etag("blocks", 1)
    assert _names(store) == {1: "eins", quiet[1].fid: "vier"}
    assert quiet[1].etag == store.etag("blocks", quiet[1].fid)
    store.write_features("blocks", [Change("deleted", quiet[1].fid, None)], versions=False,
                         answered=False)
    assert _names(store) == {1: "eins"} and _history_rows(store) == history + 3
    # a change that fails (no feature 99) undoes the ones before it in the list
    with pytest.raises(FeatureNotFound):
        store.write_features("blocks", [Change("replaced", 1, _feature(name="lost")),
                                        Change("deleted", 99, None)], versions=False)
    assert _names(store) == {1: "eins"} and _history_rows(store) == history + 3


def test_prune_drops_old_versions_and_blanks_old_personal_data(store):
    _import(store)
    for reporter in ("cas", "dan"):
        store.write_feature("blocks", Change("updated", 1, Feature(None, None,
                                                                   {"reporter": reporter})))
        time.sleep(0.01)
    store.write_feature("blocks", Change("deleted", 2, None))
    versions = store.history("blocks", 1)
    assert [v["feature"]["properties"]["reporter"] for v in versions] == ["dan", "cas", "ann"]
    # keep what was replaced after the first write; blank the personal data of what was
    # replaced before the second
    first_replaced = versions[2]["valid_to"]
    second_replaced = versions[1]["valid_to"]
    changed = store.prune_history("blocks", keep_before=first_replaced + timedelta(microseconds=1),
                                  personal=["reporter"],
                                  personal_before=second_replaced + timedelta(microseconds=1))
    after = store.history("blocks", 1)
    assert [(v["version"], v["feature"]["properties"]["reporter"]) for v in after] == \
        [(3, "dan"), (2, None)]
    assert after[1]["feature"]["properties"]["name"] == "one"  # only the personal property
    assert changed == 2  # one version dropped, one blanked
    # again: nothing left to drop or blank; no retention: nothing dropped
    assert store.prune_history("blocks", first_replaced + timedelta(microseconds=1),
                               ["reporter"], second_replaced + timedelta(microseconds=1)) == 0
    assert store.prune_history("blocks", None, [], second_replaced) == 0
    assert len(store.history("blocks", 2)) == 2
    # feature 2's deletion is newer than the retention: kept, with the version it ended
    assert [v["kind"] for v in store.history("blocks", 2)] == ["deleted", "imported"]
    later = datetime.now(timezone.utc) + timedelta(seconds=1)
    store.prune_history("blocks", keep_before=later, personal=[], personal_before=later)
    assert store.history("blocks", 2) == []
    assert [v["version"] for v in store.history("blocks", 1)] == [3]  # the current stays


def test_erase_blanks_personal_data_in_every_version(store):
    _import(store)
    store.write_feature("blocks", Change("updated", 1, Feature(None, None, {"reporter": "cas"})))
    mine = store.write_feature("blocks", Change("created", None, _feature(name="m",
                                                reporter="eve"), owner="eve"))
    store.write_feature("blocks", Change("updated", mine.fid, Feature(None, None,
                                         {"reporter": "eve2"}), owner="eve"))
    etag = store.etag("blocks", 1)
    assert store.erase("blocks", ["reporter"], fid=1) == 2  # current and one past version
    assert [v["feature"]["properties"]["reporter"] for v in store.history("blocks", 1)] == \
        [None, None]
    assert store.get("blocks", 1)["properties"] == {"name": "one", "count": 1, "reporter": None}
    assert store.etag("blocks", 1) != etag  # what it answers changed
    assert store.erase("blocks", ["reporter"], owner="eve") == 2
    assert store.erase("blocks", ["reporter"], owner="eve") == 0  # nothing left
    assert [v["feature"]["properties"]["reporter"] for v in store.history("blocks", mine.fid)] \
        == [None, None]
    # nobody else's
    assert store.get("blocks", 2)["properties"]["reporter"] == "bob"
    assert set(_tile(store)) == {1, 2, mine.fid}


def test_a_collection_imported_before_versions_says_to_import_it_again(store):
    import json

    from oup.store.base import NotVersioned

    _import(store)
    meta = store.execute("SELECT meta FROM oup_layers WHERE table_name = 'blocks'")[0][0]
    meta = meta if isinstance(meta, dict) else json.loads(meta)
    del meta["import_id"]  # as an import by an OUP before writes left it
    store.execute("UPDATE oup_layers SET meta = ? WHERE table_name = 'blocks'",
                  (json.dumps(meta),))
    store.forget_layers()
    assert _names(store) == {1: "one", 2: "two"}  # today's reads go on
    for attempt in (lambda: store.write_feature("blocks", Change("deleted", 1, None)),
                    lambda: store.history("blocks", 1),
                    lambda: store.query("blocks", Query(owner="x")),
                    lambda: store.get("blocks", 1, asof=datetime.now(timezone.utc))):
        with pytest.raises(NotVersioned) as err:
            attempt()
        assert err.value.status == 503 and "oup import blocks" in err.value.detail
    assert store.etag("blocks", 1) is None


def test_a_scenario_is_layered_over_a_collection_and_survives_a_reimport(store):
    """A scenario of a collection with an id field: it adds (an id made for it), changes
    and removes; the collection, its tiles and history stay; a re-import that brings a
    new field leaves the scenario readable, the field empty in what it proposes."""
    _import(store, "code", FIELDS + [Field("code", "string")])
    made = store.create_scenario("a plan", "key:planner", ["blocks"], ["designer"])
    sid = made["id"]
    assert store.scenarios("key:planner", set()) == [made]
    assert store.scenarios("key:other", {"designer"}) == [made]
    assert store.scenarios("key:other", {"steward"}) == []
    tile = _tile(store)
    new = store.write_scenario_feature("blocks", sid, Change(
        "created", None, _feature(_block(0.004), name="three", count=3), actor="key:planner"))
    assert new.fid not in ("a", "b") and new.after["properties"]["code"] == new.fid
    with pytest.raises(FeatureExists):  # an id the collection has
        store.write_scenario_feature("blocks", sid, Change(
            "created", "a", _feature(name="again", code="a")))
    changed = store.write_scenario_feature("blocks", sid, Change(
        "updated", "a", Feature(None, None, {"count": 10}), store.etag("blocks", "a")))
    assert changed.after["properties"] == {"name": "one", "count": 10, "reporter": "ann",
                                           "code": "a"}
    with pytest.raises(StaleVersion):  # the collection's ETag is no longer the scenario's
        store.write_scenario_feature("blocks", sid, Change(
            "updated", "a", Feature(None, None, {"count": 11}), store.etag("blocks", "a")))
    store.write_scenario_feature("blocks", sid, Change("deleted", "b", None))
    with pytest.raises(FeatureNotFound):
        store.write_scenario_feature("blocks", sid, Change("deleted", "b", None))
    assert _names(store, scenario=sid) == {"a": "one", new.fid: "three"}
    assert store.get("blocks", "a", scenario=sid)["properties"]["count"] == 10
    assert _names(store, scenario=sid, equals={"count": "10"}) == {"a": "one"}
    assert _names(store, scenario=sid, bbox=(LON + 0.0039, LAT, LON + 0.0041, LAT + 0.0001)) \
        == {new.fid: "three"}
    assert [(f["id"], f["properties"]["oup:change"]) for f in sorted(
        store.scenario_changes("blocks", sid), key=lambda f: str(f["id"]))] == sorted(
        [("a", "changed"), ("b", "removed"), (new.fid, "added")], key=lambda c: str(c[0]))
    # a map leaves out the collection's own copy by the id its tiles give it (decoded
    # here): the row number, not the id field's value
    in_tile = {props["name"]: tile_id for tile_id, props in tile.items()}
    assert {f["id"]: f["properties"].get("oup:tileId") for f in store.scenario_changes(
        "blocks", sid)} == {"a": in_tile["one"], "b": in_tile["two"], new.fid: None}
    assert [f["id"] for f in store.scenario_changes("blocks", sid, fid="a")] == ["a"]
    # the collection: as it was
    assert _names(store) == {"a": "one", "b": "two"} and _tile(store) == tile
    assert [v["kind"] for v in store.history("blocks", "a")] == ["imported"]
    # imported again with a field more, a feature more and in another order (every row
    # numbered anew): the scenario still reads, by the features' ids, the field empty in it
    fields = FIELDS + [Field("code", "string"), Field("colour", "string")]
    feats = [_feature(_block(0.006), name="four", count=4, reporter="cy", code="c",
                      colour="green"),
             _feature(_block(0.002), name="two", count=2, reporter="bob", code="b",
                      colour="blue"),
             _feature(_block(0), name="one", count=1, reporter="ann", code="a", colour="red")]
    store.write_collection("blocks", "EPSG:4326", fields, feats, id_field="code")
    got = {f["id"]: f["properties"] for f in store.query(
        "blocks", Query(limit=100, scenario=sid)).features}
    assert got == {"a": {"name": "one", "count": 10, "reporter": "ann", "code": "a",
                         "colour": None},
                   new.fid: {"name": "three", "count": 3, "reporter": None, "code": new.fid,
                             "colour": None},
                   "c": {"name": "four", "count": 4, "reporter": "cy", "code": "c",
                         "colour": "green"}}
    in_tile = {props["name"]: tile_id for tile_id, props in _tile(store).items()}
    assert {f["id"]: f["properties"].get("oup:tileId") for f in store.scenario_changes(
        "blocks", sid)} == {"a": in_tile["one"], "b": in_tile["two"], new.fid: None}
    store.delete_scenario(sid)
    assert store.scenario(sid) is None and store.scenario_changes("blocks", sid) == []


@pytest.mark.parametrize("id_field", [None, "code"])
def test_shapes_are_the_features_query_finds_as_wkb(store, id_field):
    """``shapes`` (what the overview redraws from) finds what ``query`` finds, by the
    same ids, with the same CRS84 geometry: for a bbox, a page, an equals and ``asof``."""
    fields = FIELDS + ([Field("code", "string")] if id_field else [])
    _import(store, id_field, fields)
    before = datetime.now(timezone.utc)
    time.sleep(0.01)
    second = "b" if id_field else 2
    store.write_feature("blocks", Change("replaced", second, _feature(_block(0.004),
                                                                    name="moved")))

    def both(**q) -> tuple[dict, dict]:
        found = {f["id"]: shapely.geometry.shape(f["geometry"])
                 for f in store.query("blocks", Query(**{"limit": 100, **q})).features}
        return found, {fid: shapely.from_wkb(wkb)
                       for fid, wkb in store.shapes("blocks", Query(**{"limit": 100, **q}))}

    for q in ({}, {"bbox": (LON - 0.001, LAT - 0.001, LON + 0.0035, LAT + 0.001)},
              {"equals": {"name": "moved"}}, {"asof": before}, {"limit": 1, "offset": 1}):
        found, shapes = both(**q)
        assert found.keys() == shapes.keys() and found, q
        assert all(shapes[k].equals_exact(found[k], 1e-9) for k in found), q
    assert both(bbox=(LON - 0.001, LAT - 0.001, LON + 0.0035, LAT + 0.001))[1].keys() == \
        {"a" if id_field else 1}  # the second moved out of it
    assert both(asof=before)[1][second].equals_exact(_block(0.002), 1e-9)  # where it was
    with pytest.raises(ValueError):
        store.shapes("blocks", Query(text="one"))
