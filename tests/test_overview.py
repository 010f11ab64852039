"""Overviews of dense polygon collections (``oup.store.overview``), on both stores: the
vector tiles at zoom 12 and below are cut from the buildings merged a cell at a time,
still decodable MVT drawing what the buildings cover; deeper tiles are the buildings
themselves; and a write through the API shows in the low zooms at once."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid

import mapbox_vector_tile
import numpy as np
import pytest
import requests
import shapely
import shapely.affinity
import yaml
from shapely.geometry import shape

from conftest import ROOT, oup, serving, wait_for
from oup.catalog import load_collection
from oup.store import Query
from oup.store.mvt import EXTENT, TileQuery, tile_layer, web_mercator
from oup.tiles import matrix_sets as grids

WEB = grids.get("WebMercatorQuad")


@pytest.fixture
def overviews(monkeypatch):
    """Every polygon collection imported gets an overview (the demo's are small)."""
    from oup.settings import get_settings

    monkeypatch.setenv("OUP_TILE_OVERVIEW_FROM", "0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(params=["gpkg", pytest.param("postgis", marks=pytest.mark.slow)])
def store(request, tmp_path, overviews):
    """The demo's 853 buildings, imported into a fresh store of each kind."""
    from oup.catalog.importers import import_collection

    if request.param == "gpkg":
        from oup.store.gpkg import GeoPackageStore

        s = GeoPackageStore(tmp_path / "buildings.gpkg")
    else:
        from oup.store.postgis import PostGISStore

        db = request.getfixturevalue("postgis")
        s = PostGISStore(db.create(f"overview_{uuid.uuid4().hex[:8]}"))
    coll = load_collection(ROOT / "collections" / "buildings" / "collection.yml")
    assert import_collection(coll, s, progress=False).count == 853
    return s


def _decode(data: bytes) -> dict:
    return mapbox_vector_tile.decode(data, default_options={"y_coord_down": True}) if data \
        else {}


def _in_tile_units(geoms: list, tile: grids.Tile):
    """CRS84 geometries in the tile's units (y down), as the tile's geometry is."""
    x0, _, x1, y1 = tile.bounds
    out = []
    for g in geoms:
        flat = shapely.force_2d(g)
        xy = shapely.get_coordinates(flat)
        x, y = web_mercator(xy[:, 0], xy[:, 1])
        k = EXTENT / (x1 - x0)
        out.append(shapely.set_coordinates(flat, np.column_stack([(x - x0) * k, (y1 - y) * k])))
    return shapely.union_all(out)


def test_low_zooms_are_cut_from_the_merged_buildings_and_draw_what_they_cover(store):
    fields = tuple(f.name for f in store.fields("buildings"))
    buildings = [shape(f["geometry"]) for f in
                 store.query("buildings", Query(limit=1000)).features]
    bbox = store.extent("buildings")["bbox"]
    for z in (10, 11, 12):
        [t] = list(WEB.tiles(*bbox, [z]))  # the district fits one tile at these zooms
        tile = grids.Tile("WebMercatorQuad", z, t.y, t.x)
        q = TileQuery("buildings", fields, tile.bounds, tile.srid, tile.crs,
                      tile.crs84_envelope)
        features = _decode(tile_layer(store, q))["buildings"]["features"]
        # blocks of touching buildings, far fewer than the buildings, without attributes
        assert 10 < len(features) < len(buildings) / 5, (z, len(features))
        assert all(f["properties"] == {} for f in features)
        drawn = shapely.union_all([shapely.make_valid(shape(f["geometry"]))
                                   for f in features])
        covered = _in_tile_units(buildings, tile)  # what the buildings cover, independently
        # nothing drawn where no building stands: all but 2% of what is drawn is on the
        # buildings or within a quarter pixel of zoom 12 (4 of its tile units) of them
        band = covered.boundary.buffer(EXTENT / 256 / 4 / 2 ** (12 - z))
        assert drawn.difference(covered).difference(band).area < 0.02 * drawn.area, z
        # and most of what they cover is drawn: all but the blocks under a pixel at this
        # zoom (which every tile leaves out) and what simplifying moves
        assert drawn.area > (0.9 if z == 12 else 0.6) * covered.area, z
    # deeper, the buildings themselves with their attributes
    t = WEB.tile(4.4555, 51.9062, 14)
    tile = grids.Tile("WebMercatorQuad", 14, t.y, t.x)
    q = TileQuery("buildings", fields, tile.bounds, tile.srid, tile.crs, tile.crs84_envelope)
    deep = _decode(tile_layer(store, q))["buildings"]["features"]
    assert len(deep) > 100 and all("cityobject_id" in f["properties"] for f in deep)


def test_a_write_redraws_only_its_blocks_and_they_match_a_redraw_of_the_whole(store, tmp_path):
    """Buildings written (one deleted in a row of houses, one added in an empty spot, one
    moved onto its neighbour): ``refresh`` redraws the blocks about the old and new
    geometry only, and the overview then draws what the overview made anew from every
    building draws (``overview.write``, the import's, into a second store)."""
    from oup.store import overview
    from oup.store.base import Change
    from oup.store.gpkg import GeoPackageStore
    from oup.writes.features import feature_record

    meta, fields = store.layer("buildings"), store.fields("buildings")
    ov = overview.name("buildings")

    def blocks(s) -> dict:
        return {f["id"]: shape(f["geometry"]) for f in
                s.query(ov, Query(limit=100_000)).features}

    before = blocks(store)
    feats = store.query("buildings", Query(limit=1000)).features
    by_area = sorted(feats, key=lambda f: shape(f["geometry"]).area)
    gone, moved = by_area[len(by_area) // 2], by_area[len(by_area) // 3]
    footprints = shapely.union_all([shape(f["geometry"]) for f in feats])
    x0, y0, x1, y1 = footprints.bounds
    spot = next(p for p in (shapely.Point(x0 + (x1 - x0) * i / 20, y0 + (y1 - y0) * j / 20)
                            for i in range(2, 18) for j in range(2, 18))
                if p.distance(footprints) > 0.0009)
    new = shapely.box(spot.x - 0.0004, spot.y - 0.00025, spot.x + 0.0004, spot.y + 0.00025)
    at = shape(gone["geometry"]).centroid
    shifted = shapely.affinity.translate(shape(moved["geometry"]), at.x - shape(
        moved["geometry"]).centroid.x, at.y - shape(moved["geometry"]).centroid.y)

    def record(geom):
        doc = {"type": "Feature", "properties": {},
               "geometry": shapely.geometry.mapping(shapely.force_2d(geom))}
        return feature_record(doc, fields, meta, "http://www.opengis.net/def/crs/OGC/1.3/CRS84")

    boxes = [list(shape(gone["geometry"]).bounds), list(new.bounds),
             list(shape(moved["geometry"]).bounds), list(shifted.bounds)]
    store.write_feature("buildings", Change("deleted", str(gone["id"]), None))
    store.write_feature("buildings", Change("created", None, record(new)))
    store.write_feature("buildings", Change("replaced", str(moved["id"]), record(shifted)))
    redrawn = overview.refresh(store, "buildings", boxes)
    # the ground drawn again holds every box written (those whose blocks meet drawn as one)
    assert 1 <= len(redrawn) <= 4
    assert all(any(r[0] <= b[0] and r[1] <= b[1] and b[2] <= r[2] and b[3] <= r[3]
                   for r in redrawn) for b in boxes)

    after = blocks(store)
    whole = GeoPackageStore(tmp_path / "whole.gpkg")
    now = [shape(f["geometry"]) for f in store.query("buildings", Query(limit=2000)).features]
    overview.write(whole, "buildings", now)
    reference = blocks(whole)
    # the same drawing: the same number of blocks, covering the same ground
    assert len(after) == len(reference)
    drawn, expected = shapely.union_all(list(after.values())), shapely.union_all(
        list(reference.values()))
    assert drawn.symmetric_difference(expected).area < 1e-4 * expected.area
    assert drawn.contains(new.centroid) and not shapely.union_all(
        list(before.values())).contains(new.centroid)
    # and only the blocks about the three buildings were drawn again: the rest kept
    kept = [b for b, g in before.items() if b in after and after[b].equals(g)]
    assert len(kept) >= len(before) - 12, (len(kept), len(before))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["gpkg", "postgis"])
def test_a_building_written_through_the_api_shows_in_the_low_zooms(workdir, backend,
                                                                   request):
    """A real server with the tile cache on: a z12 tile is cut and cached; a steward
    creates a large building in an empty spot of the district and deletes another; the
    same z12 tile, asked again within seconds (the overview is redrawn beside the write's
    answer), draws the new one and no longer the deleted one."""
    cat, data = workdir / f"overview-{backend}" / "catalogue", workdir / f"overview-{backend}" / "data"
    shutil.copytree(ROOT / "collections" / "buildings", cat / "buildings")
    doc = yaml.safe_load((cat / "buildings" / "collection.yml").read_text())
    doc.pop("tiles3d")  # the 2D tiles are what this is about
    (cat / "buildings" / "collection.yml").write_text(yaml.safe_dump(doc))
    key = "oup-test-steward-" + "1" * 16
    keys = workdir / f"overview-{backend}" / "keys.yml"
    keys.write_text(f"- name: steward\n  sha256: {hashlib.sha256(key.encode()).hexdigest()}\n"
                    "  roles: [steward]\n")
    env = dict(os.environ, OUP_DATA_DIR=str(data), OUP_CATALOG_DIR=str(cat),
               OUP_TILE_CACHE="true", OUP_LOG_LEVEL="WARNING", OUP_API_KEYS_FILE=str(keys),
               OUP_TILE_OVERVIEW_FROM="0")
    env.pop("OUP_DATABASE_URL", None)
    if backend == "postgis":
        env["OUP_DATABASE_URL"] = request.getfixturevalue("postgis").create(
            f"ov_{uuid.uuid4().hex[:8]}")
    oup(env, "import", "--quiet")
    with serving(env) as url:
        bbox = requests.get(f"{url}/collections/buildings", timeout=30).json()[
            "extent"]["spatial"]["bbox"][0]
        [t] = list(WEB.tiles(*bbox, [12]))
        tile = grids.Tile("WebMercatorQuad", 12, t.y, t.x)
        tile_url = f"{url}/collections/buildings/tiles/WebMercatorQuad/12/{t.y}/{t.x}"

        def drawn():
            r = requests.get(tile_url, timeout=60)
            assert r.status_code == 200
            return shapely.union_all([shapely.make_valid(shape(f["geometry"])) for f in
                                      _decode(r.content)["buildings"]["features"]])

        before = drawn()
        # an empty spot in the district: 60 m from any building
        items = requests.get(f"{url}/collections/buildings/items", params={"limit": 1000},
                             timeout=60).json()["features"]
        footprints = shapely.union_all([shape(f["geometry"]) for f in items])
        spot = next(p for p in (shapely.Point(bbox[0] + (bbox[2] - bbox[0]) * i / 20,
                                              bbox[1] + (bbox[3] - bbox[1]) * j / 20)
                                for i in range(2, 18) for j in range(2, 18))
                    if p.distance(footprints) > 0.0009 and
                    _in_tile_units([p], tile).distance(before) > 20)
        square = shapely.box(spot.x - 0.0004, spot.y - 0.00025, spot.x + 0.0004,
                             spot.y + 0.00025)  # about 55 m square
        largest = max(items, key=lambda f: shape(f["geometry"]).area)
        h = {"X-API-Key": key, "Content-Type": "application/geo+json"}
        r = requests.post(f"{url}/collections/buildings/items", headers=h, timeout=60,
                          data=json.dumps({"type": "Feature", "properties": {},
                                           "geometry": shapely.geometry.mapping(square)}))
        assert r.status_code == 201, r.text
        gone = shape(largest["geometry"])
        r = requests.delete(f"{url}/collections/buildings/items/{largest['id']}",
                            headers={"X-API-Key": key}, timeout=60)
        assert r.status_code == 200 or r.status_code == 204, r.text
        new = _in_tile_units([square], tile)
        gone_area = _in_tile_units([gone], tile).area
        assert gone_area > 10  # tile units: well over the simplification's error
        assert not before.intersects(new.centroid)
        # the new one drawn, and the deleted one gone: the ground shrinks by about its size
        after = wait_for(lambda: (a := drawn()).contains(new.centroid) and
                         a.area < before.union(new).area - 0.5 * gone_area and a,
                         30, "the z12 tile with the new building and without the deleted one")
        assert after.contains(new.centroid)


def _assert_on_grid(store, level: int) -> None:
    """Every block of a level of the buildings' overview is valid and on its zoom's grid:
    its vertices whole tile units from the world's corner."""
    from oup.store import overview

    unit = 2 * np.pi * 6378137 / 2 ** level / 4096
    blocks = [_metres(shape(f["geometry"])) for f in store.query(
        overview.name("buildings", level), Query(limit=10_000)).features]
    units = (shapely.get_coordinates(blocks) + np.pi * 6378137) / unit
    assert np.abs(units - np.rint(units)).max() < 1e-4, level
    on_grid = shapely.set_coordinates(np.array(blocks, dtype=object), np.rint(units))
    assert shapely.is_valid(on_grid).all(), level


def _metres(geom):
    """A CRS84 geometry in web mercator metres."""
    return shapely.transform(geom, lambda xy: np.column_stack(web_mercator(xy[:, 0], xy[:, 1])))


def _level_by_cell(store, level: int) -> dict:
    """One level of the buildings' overview: what its blocks cover, cell by cell."""
    from oup.store import overview

    blocks = store.query(overview.name("buildings", level), Query(limit=10_000)).features
    cells: dict = {}
    for f in blocks:
        cells.setdefault(f["properties"]["cell"], []).append(shape(f["geometry"]))
    return {cell: shapely.union_all(parts) for cell, parts in cells.items()}


def test_a_refresh_redoes_every_level_as_an_import_would(store):
    """A building deleted, the overview refreshed about it (as a write through the API
    does): every level of the cells it touched changed, and each is what making the
    whole overview anew from the buildings there now makes (an independent path: all
    cells, from every feature)."""
    from oup.store import overview
    from oup.store.base import Change

    assert overview.LEVELS == (12, 11, 10)
    before = {level: _level_by_cell(store, level) for level in overview.LEVELS}
    features = store.query("buildings", Query(limit=1000)).features
    largest = max(features, key=lambda f: shape(f["geometry"]).area)
    box = list(shape(largest["geometry"]).bounds)
    store.write_feature("buildings", Change("deleted", largest["id"], None))
    assert len(overview.refresh(store, "buildings", [box])) == 1
    refreshed = {level: _level_by_cell(store, level) for level in overview.LEVELS}
    for level in overview.LEVELS:  # the blocks drawn again on the grid too
        _assert_on_grid(store, level)
    left = [shape(f["geometry"]) for f in store.query("buildings", Query(limit=1000)).features]
    assert len(left) == len(features) - 1
    made = overview.write(store, "buildings", left)
    assert made[12] > made[11] > made[10] > 0  # each level coarser: fewer blocks
    anew = {level: _level_by_cell(store, level) for level in overview.LEVELS}
    for level in overview.LEVELS:
        assert refreshed[level].keys() == anew[level].keys(), level
        changed = [c for c in anew[level] if c not in before[level] or
                   before[level][c].symmetric_difference(anew[level][c]).area > 1e-12]
        assert changed, level  # the deletion shows at this level
        # the same ground, but for what simplifying and snapping to the level's grid move
        # (where a ring of a merge begins differs when the blocks about a write are
        # merged, not the whole cell, and a gap under a unit wide may close in one and
        # not the other): within a tile unit of the level of either's outline, and
        # beyond it not 1 % of a pixel
        unit = 2 * np.pi * 6378137 / 2 ** level / 256 / 16
        for cell, drawn in anew[level].items():
            off = _metres(drawn.symmetric_difference(refreshed[level][cell]))
            outlines = shapely.union_all([_metres(drawn).boundary,
                                          _metres(refreshed[level][cell]).boundary])
            far = off.difference(outlines.buffer(unit))
            assert far.area < (16 * unit) ** 2 / 100, (level, cell, far.area)  # a pixel's 1%



def test_each_level_is_on_its_grid_and_its_tiles_hold_valid_polygons_as_a_cut_does(store):
    """Every level's blocks are stored on the grid of its zoom's tile units, each valid
    there, so that a tile of that zoom moves a block inside it instead of clipping and
    repairing it: the polygons of such a tile decode valid, wound as MVT wants, and draw
    what the tile cut from the same blocks the costly way draws (GEOS / ST_AsMVTGeom
    clipping, rounding and repairing every block: an independent path)."""
    from dataclasses import replace

    from oup.store import overview

    fields = tuple(f.name for f in store.fields("buildings"))
    bbox = store.extent("buildings")["bbox"]
    for level in overview.LEVELS:
        _assert_on_grid(store, level)
        [t] = list(WEB.tiles(*bbox, [level]))
        tile = grids.Tile("WebMercatorQuad", level, t.y, t.x)
        q = TileQuery("buildings", fields, tile.bounds, tile.srid, tile.crs,
                      tile.crs84_envelope)
        moved = _decode(tile_layer(store, q))["buildings"]["features"]
        cut = _decode(store.cut_tile(replace(q, table=overview.name("buildings", level),
                                             properties=())))["buildings"]["features"]
        assert len(moved) > 10, level
        # the same blocks (a cut may leave out one that its rounding thinned to nothing)
        assert {f["id"] for f in cut} <= {f["id"] for f in moved}, level
        assert len(moved) - len(cut) <= len(moved) / 100, level
        for f in moved:
            g = shape(f["geometry"])
            assert g.is_valid and g.area > 0, (level, f["id"], shapely.is_valid_reason(g))
        by_id = {f["id"]: shape(f["geometry"]) for f in moved}
        for f in cut:
            ref, g = shape(f["geometry"]), by_id[f["id"]]
            # wound alike: the exterior ring's turn as the cut's (MVT's winding)
            first = (lambda p: p.geoms[0] if hasattr(p, "geoms") else p)
            assert first(g).exterior.is_ccw == first(ref).exterior.is_ccw, (level, f["id"])
            # the same ground, to within a unit about the outline
            assert g.symmetric_difference(ref).area <= ref.boundary.length + 1, \
                (level, f["id"], g.symmetric_difference(ref).area)


def test_a_change_of_attributes_alone_leaves_the_overview(store, monkeypatch, tmp_path):
    """The overview is the buildings' shapes alone: a write that changes attributes
    redraws nothing (the writes after it do not wait for that); one that moves a
    building redraws about its old and its new place."""
    import time

    from oup.store import overview
    from oup.store.base import Change, Feature
    from oup.writes.after import Coalesced, overview_redraws, overview_updater

    coll = load_collection(ROOT / "collections" / "buildings" / "collection.yml")
    redrawn: list = []
    refresh = overview.refresh

    def recorded(store_, cid, boxes):
        redrawn.extend(boxes)
        return refresh(store_, cid, boxes)

    monkeypatch.setattr(overview, "refresh", recorded)
    update = overview_updater(Coalesced("t", overview_redraws(
        store, None, tmp_path / "overview.lock")).add)
    f = store.query("buildings", Query(limit=1)).features[0]
    name = next(fl.name for fl in store.fields("buildings") if fl.type == "string")
    same = store.write_feature("buildings", Change("updated", f["id"], Feature(
        None, None, {name: "renamed"})))
    update(coll, "updated", same)
    moved = shapely.affinity.translate(shape(f["geometry"]), 0.001)
    was = store.write_feature("buildings", Change("updated", f["id"], Feature(
        moved, moved, {})))
    update(coll, "updated", was)
    deadline = time.monotonic() + 60
    while len(redrawn) < 2 and time.monotonic() < deadline:  # (one job after the other)
        time.sleep(0.05)
    assert sorted(redrawn) == sorted([list(shape(f["geometry"]).bounds),
                                      list(moved.bounds)])


def test_two_processes_redraw_one_at_a_time(store, tmp_path, caplog):
    """The server's workers each redraw about their own writes; buildings moved side by
    side, half through one updater and half through another (as two workers), with one
    lock between them: no redraw fails on a block the other replaced meanwhile, and the
    low zooms draw every building where it went."""
    import logging
    import threading
    import time

    from oup.store import overview
    from oup.store.base import Change, Feature
    from oup.writes.after import Coalesced, overview_redraws, overview_updater

    coll = load_collection(ROOT / "collections" / "buildings" / "collection.yml")
    done, lock = [], threading.Lock()
    refresh = overview.refresh

    def counted(store_, cid, boxes):
        try:
            return refresh(store_, cid, boxes)
        finally:
            with lock:
                done.extend(boxes)

    write_features = store.write_features

    def slowly(cid, changes, **kw):  # a redraw takes a while: the other one comes meanwhile
        time.sleep(0.2)
        return write_features(cid, changes, **kw)

    caplog.set_level(logging.ERROR, logger="oup.writes.after")
    updaters = [overview_updater(Coalesced("t", overview_redraws(
        store, None, tmp_path / "overview.lock")).add) for _ in range(2)]
    store_features = store.query("buildings", Query(limit=1000)).features
    middle = sorted(store_features, key=lambda f: shape(f["geometry"]).centroid.x)
    moved = middle[len(middle) // 2: len(middle) // 2 + 12]  # side by side in the city
    boxes = 0
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(overview, "refresh", counted)
        mp.setattr(store, "write_features", slowly)
        for i, f in enumerate(moved):
            g = shapely.affinity.translate(shape(f["geometry"]), 0.00015, 0.0001)
            was = store.write_feature("buildings", Change("updated", f["id"], Feature(g, g, {})))
            updaters[i % 2](coll, "updated", was)
            boxes += 2
        deadline = time.monotonic() + 120
        while len(done) < boxes and time.monotonic() < deadline:  # bounded
            time.sleep(0.05)
    assert len(done) == boxes
    assert not [r for r in caplog.records if "not redone" in r.getMessage()]

    ground = shapely.union_all([shape(f["geometry"]) for f in store.query(
        overview.name("buildings"), Query(limit=100_000)).features])
    for f in moved:
        now = shape(store.get("buildings", f["id"])["geometry"])
        assert ground.contains(now.representative_point()), f["id"]
        assert not shape(f["geometry"]).equals(now)


def test_under_a_burst_of_writes_the_overview_waits_and_draws_once_after_it():
    """The overview's jobs settle (``Coalesced`` with ``quiet``): boxes that keep coming
    wait, and are drawn together, once, when no box came for ``quiet`` seconds; under
    writes that do not pause, they are drawn all the same after ``at_most``."""
    import threading
    import time

    from oup.writes.after import Coalesced

    def recording():
        jobs, done = [], threading.Event()
        return jobs, done, lambda _cid, items: (jobs.append(list(items)), done.set())

    jobs, done, work = recording()
    burst = Coalesced("t", work, quiet=2.0, at_most=60.0)
    for i in range(30):  # a box every 50 ms: never 2 s without one
        burst.add("buildings", i)
        time.sleep(0.05)
    assert jobs == []  # still settling
    assert done.wait(30)
    burst.close()
    assert jobs == [list(range(30))]

    jobs, done, work = recording()
    storm = Coalesced("t", work, quiet=60.0, at_most=0.5)
    deadline, n = time.monotonic() + 30, 0
    while not jobs and time.monotonic() < deadline:  # bounded: the storm goes on
        storm.add("buildings", n)
        n += 1
        time.sleep(0.02)
    assert jobs, "the boxes waited past at_most"
    storm.add("buildings", n)
    storm.close()  # what waits is drawn as it closes, without waiting more
    assert [i for job in jobs for i in job] == list(range(n + 1))
