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
