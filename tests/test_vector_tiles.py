"""Vector tiles (OGC API Tiles, MVT) against the features they are cut from, on both
stores: the same features (ids) as ``items?bbox=``, the same geometry to within a pixel,
in WebMercatorQuad and NetherlandsRDNewQuad; the catalogue's rules; access and
disclosure as on every other path; errors as problem documents."""
from __future__ import annotations

import random
from pathlib import Path

import mapbox_vector_tile
import numpy as np
import pytest
import requests
import shapely
from shapely.geometry import shape

from conftest import declare_collection
from oup.tiles import matrix_sets as grids
from oup.catalog import CatalogError, load_collection
from oup.store import Feature, Field, Query
from oup.store.gpkg import GeoPackageStore
from oup.store.mvt import BUFFER, EXTENT, TileQuery, tile_layer

MVT = "application/vnd.mapbox-vector-tile"
CRS = {"WebMercatorQuad": "EPSG:3857", "NetherlandsRDNewQuad": "EPSG:28992"}
HIDDEN = ("internal-figures", "restricted-care")


# -- the grids and the catalogue (in-process) ----------------------------------------------

def test_the_dutch_grid_is_pdoks():
    tms = grids.get("NetherlandsRDNewQuad")
    assert grids.srid(tms) == 28992
    top = grids.Tile.parse("NetherlandsRDNewQuad", "0", "0", "0")
    assert top.bounds == pytest.approx((-285401.92, 22598.08, 595401.92, 903401.92))
    deep = grids.Tile.parse("NetherlandsRDNewQuad", "12", "2175", "1749")
    assert deep.pixel == pytest.approx(3440.64 / 2**12)
    x0, y0, x1, y1 = deep.bounds  # a tile of Delfshaven (RD ~ 90,400 / 436,500)
    assert 85_000 < x0 < x1 < 95_000 and 432_000 < y0 < y1 < 440_000


@pytest.mark.parametrize("address, parameter", [
    (("x", "0", "0"), "tileMatrix"), (("3", "-1", "0"), "tileRow"),
    (("3", "0", "8"), "tileCol"), (("25", "0", "0"), "tileMatrix"),
    (("3", "1e3", "0"), "tileRow"), (("3", "0", "99999999999"), "tileCol")])
def test_a_tile_outside_the_grid_is_refused_naming_the_parameter(address, parameter):
    with pytest.raises(grids.BadTileAddress) as err:
        grids.Tile.parse("WebMercatorQuad", *address)
    assert err.value.parameter == parameter


def test_an_unknown_grid_is_unknown():
    with pytest.raises(grids.UnknownTileMatrixSet):
        grids.Tile.parse("GoogleMapsCompatible", "1", "0", "0")


def test_zoom_ranges_carry_over_by_scale():
    rd = grids.get("NetherlandsRDNewQuad")
    # web z12 at 52 degrees north is ~23.5 m a pixel; RD level 7 is 26.9 m
    assert grids.zoom_in(rd, 12, 52.0) == 7
    assert grids.zoom_in(grids.get("WebMercatorQuad"), 12, 52.0) == 12


def test_a_wrong_zoom_range_fails_naming_file_and_field(tmp_path):
    yml = declare_collection(tmp_path, "tiles: {minzoom: 15, maxzoom: 12}")
    with pytest.raises(CatalogError) as err:
        load_collection(yml)
    assert err.value.field == "tiles" and str(yml) in str(err.value)


# -- the GeoPackage's tiles, in-process: what goes in and what is left out -------------------

def _blocks_store(path) -> GeoPackageStore:
    return _write_blocks(GeoPackageStore(path))


def _write_blocks(store):
    """Four features near Delfshaven in CRS84: a block, a speck, a point, and a block
    whose statistic is suppressed (NULL)."""
    lon, lat = 4.455, 51.906

    def feat(geom, **props):
        return Feature(geom, geom, props)

    block = shapely.box(lon, lat, lon + 0.001, lat + 0.0006)
    speck = shapely.box(lon + 0.002, lat, lon + 0.002 + 1e-6, lat + 1e-6)
    store.write_collection("blocks", "EPSG:4326", [Field("name", "string"), Field("count", "integer")], [
        feat(block, name="block", count=12), feat(speck, name="speck", count=1),
        feat(shapely.Point(lon + 0.0005, lat - 0.0002), name="point", count=3),
        feat(shapely.box(lon - 0.001, lat, lon - 0.0002, lat + 0.0005), name="secret",
             count=None)])
    return store


def _decode(data: bytes) -> dict:
    return mapbox_vector_tile.decode(data, default_options={"y_coord_down": True}) if data else {}


def test_geopackage_tiles_keep_ids_drop_specks_and_nulls(tmp_path):
    store = _blocks_store(tmp_path / "blocks.gpkg")
    tms = grids.get("WebMercatorQuad")
    t = tms.tile(4.4555, 51.9062, 15)
    tile = grids.Tile("WebMercatorQuad", 15, t.y, t.x)
    data = tile_layer(store, TileQuery("blocks", ("name", "count"), tile.bounds, tile.srid,
                                       tile.crs, tile.crs84_envelope))
    feats = {f["properties"]["name"]: f for f in _decode(data)["blocks"]["features"]}
    assert set(feats) == {"block", "point", "secret"}  # the 7 cm speck is below a pixel
    assert feats["block"]["id"] == 1 and feats["point"]["id"] == 3
    assert feats["block"]["properties"] == {"name": "block", "count": 12}
    assert feats["secret"]["properties"] == {"name": "secret"}  # no value, not a null
    far = tms.tile(5.5, 52.5, 15)  # nothing there
    empty = grids.Tile("WebMercatorQuad", 15, far.y, far.x)
    assert tile_layer(store, TileQuery("blocks", ("name",), empty.bounds, empty.srid,
                                       empty.crs, empty.crs84_envelope)) == b""


def test_web_mercator_is_projs_to_a_micrometre():
    """The GeoPackage's tiles compute EPSG:3857 in numpy: PROJ's metres, to the
    Mercator grid's edge at 85.05 degrees."""
    from oup.store.geometry import crs84_transformer
    from oup.store.mvt import web_mercator

    lon, lat = (a.ravel() for a in np.meshgrid(np.linspace(-180, 180, 37),
                                               np.linspace(-85.0511, 85.0511, 41)))
    px, py = crs84_transformer("EPSG:3857").transform(lon, lat)
    x, y = web_mercator(lon, lat)
    assert np.abs(x - px).max() < 1e-6 and np.abs(y - py).max() < 1e-6


def test_a_feature_cut_at_the_buffer_is_valid_on_the_grid_and_of_its_own_kind():
    """A feature crossing the buffer's edge is cut there, on the grid and valid; a polygon
    touching the edge from outside leaves no line along it (MVT has no geometry
    collections), as ST_AsMVTGeom keeps it; a feature wholly past the buffer keeps
    nothing."""
    from oup.store.mvt import _own_kind, _tile_geometry

    edge = EXTENT + BUFFER
    # in a grid whose units are tile units (y up in the CRS, down in the tile)
    q = TileQuery("t", (), (0.0, 0.0, float(EXTENT), float(EXTENT)), 28992, "EPSG:28992",
                  (0.0, 0.0, 1.0, 1.0))
    crossing = shapely.box(edge - 100.3, 1000.2, edge + 50.6, 1200.7)
    touching = shapely.box(edge, 2000, edge + 40, 2100)  # meets the buffer along its edge
    feature = shapely.MultiPolygon([crossing, touching])
    picked, geoms = _tile_geometry(np.array([feature, shapely.box(0, 0, 100, 100)]), q, True)
    assert picked.tolist() == [0, 1]
    cut = geoms[0]
    assert cut.geom_type in ("Polygon", "MultiPolygon") and cut.is_valid
    coords = shapely.get_coordinates(cut)
    assert (coords == np.rint(coords)).all() and coords[:, 0].max() == edge
    expected = shapely.box(edge - 100.3, EXTENT - 1200.7, edge, EXTENT - 1000.2)
    assert shapely.hausdorff_distance(cut, expected) <= 1
    # a building from the benchmark city (in tile units, y down) whose cut by rectangle
    # is invalid (its two pieces cross on the grid): GEOS's overlay cuts it again
    courtyard = shapely.from_wkt(
        "POLYGON ((2418 51, 2417 52, 2397 5, 2443 -15, 2466 39, 2479 34, 2478 32, 2481 33, "
        "2507 20, 2510 21, 2524 13, 2552 3, 2552 0, 2549 -5, 2547 -4, 2546 -6, 2548 -6, "
        "2541 -19, 2538 -30, 2537 -29, 2537 -32, 2532 -42, 2531 -41, 2530 -43, 2532 -44, "
        "2525 -56, 2522 -67, 2520 -66, 2521 -69, 2515 -79, 2515 -81, 2517 -81, 2512 -89, "
        "2499 -83, 2500 -82, 2498 -81, 2497 -83, 2485 -77, 2484 -75, 2483 -77, 2470 -71, "
        "2469 -69, 2468 -70, 2455 -64, 2456 -63, 2453 -64, 2441 -58, 2440 -56, 2439 -57, "
        "2433 -55, 2433 -53, 2432 -54, 2419 -49, 2418 -47, 2396 -98, 2550 -165, 2559 -143, "
        "2577 -148, 2584 -132, 2568 -122, 2572 -113, 2571 -112, 2557 -107, 2560 -100, "
        "2562 -101, 2595 -25, 2593 -24, 2595 -19, 2604 -22, 2610 -26, 2633 26, 2443 109, "
        "2419 57, 2418 51))")
    box = (-BUFFER, -BUFFER, EXTENT + BUFFER, EXTENT + BUFFER)
    assert not shapely.set_precision(shapely.clip_by_rect(courtyard, *box), 1.0,
                                     mode="pointwise").is_valid
    in_crs = shapely.transform(courtyard, lambda c: np.column_stack([c[:, 0], EXTENT - c[:, 1]]))
    picked, geoms = _tile_geometry(np.array([in_crs]), q, True)
    cut = geoms[0]
    assert picked.tolist() == [0] and cut.is_valid
    coords = shapely.get_coordinates(cut)
    assert (coords == np.rint(coords)).all() and coords[:, 1].min() == -BUFFER
    assert shapely.hausdorff_distance(cut, shapely.clip_by_rect(courtyard, *box)) <= 1.5
    # the overlay's cut of the first feature: a polygon and the touching part's line
    mixed = shapely.intersection(shapely.MultiPolygon([crossing, touching]), shapely.box(*box))
    assert mixed.geom_type == "GeometryCollection"
    kept = _own_kind(np.array([mixed]), np.array([2]))[0]
    assert kept.geom_type == "MultiPolygon" and kept.equals(shapely.clip_by_rect(crossing, *box))
    beyond = shapely.box(edge + 10, 0, edge + 500, 800)
    picked, _ = _tile_geometry(np.array([beyond]), q, True)
    assert picked.tolist() == []


def _random_rings(rng, n: int) -> list[shapely.Polygon]:
    """Polygons of one ring in tile units, most a few units across: stars (simple, until
    rounding pinches them), random walks (often crossing themselves), boxes with a
    vertex on the line of their neighbours (the ring's start may go), and spikes."""
    rings = []
    for i in range(n):
        cx, cy = rng.uniform(100, 3900, 2)
        k = int(rng.integers(3, 40))
        if i % 4 == 0:
            angle = np.sort(rng.uniform(0, 2 * np.pi, k))
            r = rng.uniform(0.5, 3 if i % 8 else 60, k)
            xy = np.column_stack([cx + r * np.cos(angle), cy + r * np.sin(angle)])
        elif i % 4 == 1:
            xy = np.cumsum(rng.normal(0, rng.choice([0.7, 3, 20]), (k, 2)), axis=0) + (cx, cy)
        elif i % 4 == 2:
            w, h = rng.uniform(1, 80, 2)
            xy = np.array([(cx + w / 2, cy), (cx + w, cy), (cx + w, cy + h), (cx, cy + h),
                           (cx, cy)]) + rng.normal(0, 0.3, (5, 2))
        else:
            w = rng.uniform(2, 50)
            xy = np.array([(cx, cy), (cx + w, cy), (cx + w, cy + w), (cx + w / 2, cy + w),
                           (cx + w / 2, cy + w + rng.uniform(0, 3)), (cx + w / 2 + 0.4, cy + w),
                           (cx, cy + w)])
        rings.append(shapely.Polygon(xy))
    return rings


def test_compiled_loops_cut_one_ring_polygons_exactly_as_geos():
    """Nearly every feature of a tile (a polygon of one ring inside the buffer) is
    rounded, checked, simplified and wound by compiled loops instead of GEOS: what they
    give is GEOS's result vertex for vertex, and what they cannot vouch for (pinched,
    crossing, collapsed) takes GEOS's way."""
    from oup.store.mvt import _geos_way, _tile_geometry

    rng = np.random.default_rng(7)
    polygons = _random_rings(rng, 4000)
    geoms = np.array([shapely.MultiPolygon([p]) if i % 2 else p
                      for i, p in enumerate(polygons)], dtype=object)
    # a grid whose units are tile units, y up (the tile's y runs down)
    q = TileQuery("t", (), (0.0, 0.0, float(EXTENT), float(EXTENT)), 28992, "EPSG:28992",
                  (0.0, 0.0, 1.0, 1.0))
    picked, got = _tile_geometry(geoms, q, True)
    xy, at = shapely.get_coordinates(geoms[picked], return_index=True)
    tile_xy = np.column_stack([xy[:, 0], EXTENT - xy[:, 1]])
    placed = shapely.set_coordinates(geoms[picked].copy(), tile_xy)
    expected = _geos_way(placed, np.arange(len(picked)), np.zeros(len(picked), bool),
                         lambda which: placed[which], np.rint(tile_xy))
    both = ~shapely.is_empty(expected)
    assert shapely.equals_exact(got[both], expected[both], tolerance=0).all()
    assert (shapely.is_empty(got) == ~both).all()
    # both ways taken, each many times (else this compares GEOS with itself)
    compiled = shapely.get_type_id(got) == 3  # GEOS's way keeps a multipolygon one
    multi = shapely.get_type_id(geoms[picked]) == 6
    assert (compiled & multi).sum() > 500 and (~compiled & multi & both).sum() > 100


def test_geopackage_tiles_give_the_values_numbered_at_import_and_edits_as_edited(tmp_path):
    """The GeoPackage numbers every property value at import, as its rows hold them: its
    tiles are the very tiles read from the properties (every type, NULLs, a number given
    as an integer). A row another program edits afterwards is read as it is now."""
    import sqlite3
    from datetime import datetime, timezone

    store = GeoPackageStore(tmp_path / "grid.gpkg")
    fields = [Field("name", "string"), Field("kind", "string"), Field("height", "number"),
              Field("floors", "integer"), Field("listed", "boolean"),
              Field("built", "date-time")]
    lon, lat, step = 4.455, 51.906, 0.0004
    feats = [Feature(g, g, {"name": f"b{i}", "kind": ["house", "shed", None][i % 3],
                            "height": [3, 4.5, None][i % 3], "floors": i % 4,
                            "listed": [True, False, None][i % 3],
                            "built": datetime(1910 + i % 90, 5, i % 9 + 1, tzinfo=timezone.utc)})
             for i in range(400)
             for g in [shapely.box(lon + (i % 20) * step, lat + (i // 20) * step,
                                   lon + (i % 20 + 0.6) * step, lat + (i // 20 + 0.7) * step)]]
    store.write_collection("grid", "EPSG:4326", fields, feats)
    props = tuple(f.name for f in fields)
    tms = grids.get("WebMercatorQuad")

    def tiles(numbered: bool) -> list[bytes]:
        own = store.tile_values
        store.tile_values = own if numbered else (lambda cid: None)
        try:
            out = []
            for z in range(13, 18):
                for dx in (0.001, 0.004, 0.0075):
                    t = tms.tile(lon + dx, lat + dx, z)
                    tile = grids.Tile("WebMercatorQuad", z, t.y, t.x)
                    out.append(tile_layer(store, TileQuery("grid", props, tile.bounds,
                                                           tile.srid, tile.crs,
                                                           tile.crs84_envelope)))
            return out
        finally:
            store.tile_values = own

    assert store.tile_values("grid") is not None
    numbered = tiles(True)
    assert numbered == tiles(False) and all(numbered)
    first = _decode(numbered[0])["grid"]["features"][0]
    source = feats[first["id"] - 1].properties  # row numbers count from 1
    assert first["properties"] == {
        k: float(v) if k == "height" else f"{v:%Y-%m-%dT%H:%M:%SZ}" if k == "built" else v
        for k, v in source.items() if v is not None}
    assert {type(f["properties"]["listed"]) for data in numbered
            for f in _decode(data)["grid"]["features"] if "listed" in f["properties"]} == {bool}
    with sqlite3.connect(store.path) as con:  # as QGIS would edit the file
        con.execute('UPDATE grid SET name = ?, height = NULL WHERE "_oup_fid" = ?',
                    ("edited", first["id"]))
    edited = tiles(True)
    assert edited == tiles(False) and edited != numbered
    again = {f["id"]: f for f in _decode(edited[0])["grid"]["features"]}[first["id"]]
    assert again["properties"]["name"] == "edited" and "height" not in again["properties"]
    with sqlite3.connect(store.path) as con:  # the values removed by hand: rows are read
        con.execute("DELETE FROM oup_tile_values")
    store = GeoPackageStore(store.path)
    assert store.tile_values("grid") is None and tiles(True) == edited


@pytest.mark.parametrize("z", [6, 12, 14])  # beyond, a pixel nears the index's precision
def test_the_index_leaves_out_specks_but_never_a_feature_of_a_pixel(tmp_path, z):
    """The R*Tree leaves out features under a pixel both ways before their rows are read,
    with a degree counted as the fewest web mercator units it can be over the tile: a
    feature a hair over a pixel tall at the tile's poleward edge (where a degree is the
    most units) is kept, one a hair under a pixel is not drawn, and a speck well under a
    pixel is not even read."""
    from pyproj import Transformer

    from oup.store.mvt_gpkg import _rtree_specks

    tms = grids.get("WebMercatorQuad")
    t = tms.tile(4.47, 51.92, z)
    tile = grids.Tile("WebMercatorQuad", z, t.y, t.x)
    x0, y0, x1, y1 = tile.bounds
    px = (x1 - x0) / 256
    back = Transformer.from_crs("EPSG:3857", "OGC:CRS84", always_xy=True)

    def box84(ax, ay, bx, by):  # a box in web mercator metres, as CRS84
        (lon0, lon1), (lat0, lat1) = back.transform([ax, bx], [ay, by])
        return shapely.box(lon0, lat0, lon1, lat1)

    narrow = 0.2 * px
    top, bottom = y1 - 1e-3 * px, y0 + 1e-3 * px  # just inside the tile
    sizes = {"over at the top": (top - 1.0002 * px, top),
             "under at the top": (top - 0.9998 * px, top),
             "over at the bottom": (bottom, bottom + 1.0002 * px),
             "under at the bottom": (bottom, bottom + 0.9998 * px),
             "speck": (bottom, bottom + 0.3 * px)}
    feats = [Feature(g, g, {"name": name}) for i, (name, (a, b)) in enumerate(sizes.items())
             for g in [box84(x0 + (i + 1) * px, a, x0 + (i + 1) * px + narrow, b)]]
    store = GeoPackageStore(tmp_path / "edges.gpkg")
    store.write_collection("edges", "EPSG:4326", [Field("name", "string")], feats,
                           geometry_type="POLYGON")
    q = TileQuery("edges", ("name",), tile.bounds, tile.srid, tile.crs, tile.crs84_envelope)
    condition, params = _rtree_specks(store.layer("edges"), q, False)
    assert condition  # the index does leave specks out here
    drawn = {f["properties"]["name"] for f in _decode(tile_layer(store, q))["edges"]["features"]}
    assert drawn == {"over at the top", "over at the bottom"}
    read = {r[0] for r in store.execute(
        'SELECT f.name FROM "rtree_edges__oup_geom84" r JOIN edges f ON f."_oup_fid" = r.id '
        f"WHERE 1{condition}", params)}
    assert read >= drawn and "speck" not in read  # its row is never read


def test_a_tiles_declaration_naming_a_missing_attribute_fails_start_up(tmp_path):
    from oup.catalog import Catalog
    from oup.tiles.vector_tiles import layers

    store = _blocks_store(tmp_path / "blocks.gpkg")
    yml = declare_collection(tmp_path, "tiles: {properties: [name, colour]}")
    with pytest.raises(CatalogError) as err:
        layers(Catalog([load_collection(yml)], tmp_path), store)
    assert err.value.field == "tiles.properties" and "colour" in err.value.message


# -- against a real server, on both stores -----------------------------------------------------

def _tms_doc(server, tms_id):
    doc = requests.get(f"{server}/tileMatrixSets/{tms_id}").json()
    return {m["id"]: m for m in doc["tileMatrices"]}


def _bounds(matrix: dict, row: int, col: int):
    """A tile's bounds from the tile matrix set document (top-left origin)."""
    x0, y0 = matrix["pointOfOrigin"]
    size = matrix["cellSize"] * matrix["tileWidth"]
    return x0 + col * size, y0 - (row + 1) * size, x0 + (col + 1) * size, y0 - row * size


def _tile_geometries(data: bytes, layer: str, bounds) -> dict:
    """Decoded features of ``layer`` by id, geometry back in the grid's CRS."""
    x0, y0, x1, y1 = bounds
    scale = (x1 - x0) / EXTENT
    out = {}
    for f in _decode(data).get(layer, {}).get("features", []):
        g = shapely.transform(shape(f["geometry"]),
                              lambda c: c * [scale, -scale] + [x0, y1])
        out[f["id"]] = (shapely.make_valid(g), f["properties"])
    return out


def _random_tiles(server, tms_id, levels, n, seed):
    """``n`` random tiles per level within the buildings' limits."""
    tileset = requests.get(f"{server}/collections/buildings/tiles/{tms_id}").json()
    limits = {lim["tileMatrix"]: lim for lim in tileset["tileMatrixSetLimits"]}
    rng = random.Random(seed)
    for z in levels:
        lim = limits[str(z)]
        for _ in range(n):
            yield z, rng.randint(lim["minTileRow"], lim["maxTileRow"]), \
                rng.randint(lim["minTileCol"], lim["maxTileCol"])


@pytest.mark.parametrize("tms_id, levels", [("WebMercatorQuad", range(12, 18)),
                                            ("NetherlandsRDNewQuad", range(7, 13))])
def test_tiles_hold_the_features_of_items_to_within_a_pixel(server, tms_id, levels):
    matrices, crs = _tms_doc(server, tms_id), CRS[tms_id]
    checked_ids = checked_shapes = 0
    for z, row, col in _random_tiles(server, tms_id, levels, 3, seed=12):
        bounds = _bounds(matrices[str(z)], row, col)
        pixel = (bounds[2] - bounds[0]) / 256
        r = requests.get(f"{server}/collections/buildings/tiles/{tms_id}/{z}/{row}/{col}")
        items = requests.get(f"{server}/collections/buildings/items", params={
            "bbox": ",".join(map(str, bounds)), "bbox-crs": f"http://www.opengis.net/def/crs/EPSG/0/{crs[5:]}",
            "crs": f"http://www.opengis.net/def/crs/EPSG/0/{crs[5:]}", "limit": 5000}).json()
        box = shapely.box(*bounds)
        # the bbox in CRS84 holds the tile; the tile holds what meets it exactly
        features = {f["id"]: shape(f["geometry"]) for f in items["features"]
                    if shape(f["geometry"]).intersects(box)}
        sizes = [max(x1 - x0, y1 - y0) / pixel
                 for x0, y0, x1, y1 in (g.bounds for g in features.values())]
        # A tile with a feature in it is 200; an empty one is 204 with no body (OGC API
        # Tiles allows 204 for an empty tile; oup/tiles/vector_tiles.py answers it so, and
        # the tileset's link says "204 where it would be empty"). A speck (under a pixel)
        # is left out, so a tile that meets only specks is empty; near a pixel, either.
        if any(size >= 1.01 for size in sizes):
            assert r.status_code == 200, (tms_id, z, row, col, r.status_code)
        elif all(size < 0.99 for size in sizes):
            assert r.status_code == 204, (tms_id, z, row, col, r.status_code, r.text)
        else:
            assert r.status_code in (200, 204), (tms_id, z, row, col, r.status_code, r.text)
        if r.status_code == 204:
            assert r.content == b""
        got = _tile_geometries(r.content, "buildings", bounds) if r.status_code == 200 else {}
        assert (r.status_code == 200) == bool(got), (tms_id, z, row, col)  # 200 is never empty
        for fid, geom in features.items():
            x0, y0, x1, y1 = geom.bounds
            size = max(x1 - x0, y1 - y0) / pixel
            if size >= 1.01:  # a pixel or more: it must be there
                assert fid in got, (tms_id, z, row, col, fid, size)
            elif size < 0.99:  # a speck: left out
                assert fid not in got, (tms_id, z, row, col, fid, size)
        assert set(got) <= set(features), (tms_id, z, row, col)
        checked_ids += len(features)
        margin = BUFFER / EXTENT * (bounds[2] - bounds[0])
        clip = shapely.box(bounds[0] - margin, bounds[1] - margin, bounds[2] + margin,
                           bounds[3] + margin)
        for fid, (geom, _) in got.items():
            expected = features[fid].intersection(clip)
            assert shapely.hausdorff_distance(geom, expected) <= pixel, (tms_id, z, fid)
            checked_shapes += 1
    assert checked_ids > 100 and checked_shapes > 100  # not an empty corner of the grid


def test_dataset_tiles_hold_every_visible_collection_as_a_layer(server, credentials):
    bounds_tile = grids.get("WebMercatorQuad").tile(4.456, 51.906, 14)
    path = f"/tiles/WebMercatorQuad/14/{bounds_tile.y}/{bounds_tile.x}"
    anonymous = _decode(requests.get(server + path).content)
    assert {"buildings", "neighbourhoods", "kerncijfers", "leefbaarheid"} <= set(anonymous)
    assert not set(HIDDEN) & set(anonymous)
    seen = _decode(requests.get(server + path,
                                headers={"X-API-Key": credentials["api_key"]}).content)
    assert set(HIDDEN) <= set(seen)
    tilesets = requests.get(f"{server}/tiles/WebMercatorQuad").json()
    assert {layer["id"] for layer in tilesets["layers"]} & set(HIDDEN) == set()


def test_hidden_collections_are_404_on_every_tiles_path(server, credentials):
    t = grids.get("WebMercatorQuad").tile(4.456, 51.906, 14)
    for cid in HIDDEN:
        paths = [f"/collections/{cid}/tiles", f"/collections/{cid}/tiles/WebMercatorQuad",
                 f"/collections/{cid}/tiles/WebMercatorQuad?f=tilejson",
                 f"/collections/{cid}/tiles/NetherlandsRDNewQuad",
                 f"/collections/{cid}/tiles/WebMercatorQuad/14/{t.y}/{t.x}",
                 f"/collections/{cid}/tiles/Nonsense/1/2/3"]
        for path in paths:
            r = requests.get(server + path)
            assert r.status_code == 404, (path, r.status_code)
            assert "secret title" not in r.text
        ok = requests.get(server + paths[4], headers={"X-API-Key": credentials["api_key"]})
        assert ok.status_code == 200 and ok.headers["Cache-Control"] == "no-store"


def test_suppressed_statistics_are_absent_from_tiles(server):
    items = requests.get(f"{server}/collections/kerncijfers/items?limit=100").json()["features"]
    suppressed = 0
    t = grids.get("WebMercatorQuad").tile(4.456, 51.906, 12)  # the whole district
    data = requests.get(f"{server}/collections/kerncijfers/tiles/WebMercatorQuad/12/"
                        f"{t.y}/{t.x}").content
    tiled = {f["id"]: f["properties"] for f in _decode(data)["kerncijfers"]["features"]}
    assert set(tiled) == {f["id"] for f in items}
    for f in items:
        for name, value in f["properties"].items():
            if value is None:
                assert name not in tiled[f["id"]], (f["id"], name)
                suppressed += 1
            elif isinstance(value, float):
                assert tiled[f["id"]][name] == pytest.approx(value), (f["id"], name)
            else:
                assert tiled[f["id"]][name] == value, (f["id"], name)
    assert suppressed > 0  # the demo's figures do hold suppressed cells


@pytest.mark.parametrize("path, status, parameter", [
    ("/collections/buildings/tiles/WebMercatorQuad/x/0/0", 400, "tileMatrix"),
    ("/collections/buildings/tiles/WebMercatorQuad/3/8/0", 400, "tileRow"),
    ("/collections/buildings/tiles/WebMercatorQuad/30/0/0", 400, "tileMatrix"),
    ("/collections/buildings/tiles/WebMercatorQuad/14/1/1?foo=1", 400, "foo"),
    ("/collections/buildings/tiles/WebMercatorQuad/14/1/1?f=png", 400, "f"),
    ("/collections/buildings/tiles/Nonsense/3/0/0", 404, None),
    ("/collections/buildings/tiles/Nonsense", 404, None),
    ("/tileMatrixSets/Nonsense", 404, None),
    ("/collections/buildings/tiles/WebMercatorQuad/2/1/2", 404, None),  # below minzoom
    ("/collections/observations/tiles", 404, None),  # live: no tiles
    ("/collections/nothing-here/tiles/WebMercatorQuad/14/1/1", 404, None),
])
def test_bad_tile_requests_are_problem_documents(server, path, status, parameter):
    r = requests.get(server + path)
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.json().get("parameter") == parameter


def test_tiles_are_cached_right_and_shared(server):
    t = grids.get("WebMercatorQuad").tile(4.456, 51.906, 15)
    url = f"{server}/collections/buildings/tiles/WebMercatorQuad/15/{t.y}/{t.x}"
    r = requests.get(url, headers={"Origin": "http://example.org"})
    assert r.status_code == 200 and r.headers["Content-Type"] == MVT
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "max-age" in r.headers["Cache-Control"]
    again = requests.get(url, headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304 and not again.content
    assert len(r.content) < 500_000
    far = grids.get("WebMercatorQuad").tile(5.9, 53.4, 15)  # the Wadden Sea: empty
    empty = requests.get(f"{server}/collections/buildings/tiles/WebMercatorQuad/15/"
                         f"{far.y}/{far.x}")
    assert empty.status_code == 204 and not empty.content
    assert requests.post(url).status_code == 405


def test_tile_documents_describe_and_link(server):
    sets = requests.get(f"{server}/tileMatrixSets").json()["tileMatrixSets"]
    assert {"WebMercatorQuad", "NetherlandsRDNewQuad", "WorldCRS84Quad"} == {s["id"] for s in sets}
    coll = requests.get(f"{server}/collections/buildings?f=json").json()
    link = next(x for x in coll["links"]
                if x["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector")
    tilesets = requests.get(link["href"]).json()["tilesets"]
    rd = next(t for t in tilesets if t["tileMatrixSetId"] == "NetherlandsRDNewQuad")
    doc = requests.get(next(x["href"] for x in rd["links"] if x["rel"] == "self")).json()
    assert doc["dataType"] == "vector" and doc["crs"].endswith("/EPSG/0/28992")
    layer = doc["layers"][0]
    assert layer["id"] == "buildings"
    assert layer["propertiesSchema"]["properties"]["height"] == {"type": "number"}
    item = next(x for x in doc["links"] if x["rel"] == "item")
    assert item["type"] == MVT and "{tileMatrix}/{tileRow}/{tileCol}" in item["href"]
    tilejson = requests.get(f"{server}/collections/buildings/tiles/WebMercatorQuad?f=tilejson")
    tj = tilejson.json()
    assert tj["tilejson"] == "3.0.0" and tj["tiles"][0].endswith("/{z}/{y}/{x}")
    assert tj["vector_layers"][0]["id"] == "buildings" and tj["minzoom"] >= 10
    z, x, y = 15, *grids.get("WebMercatorQuad").tile(4.456, 51.906, 15)[:2]
    url = tj["tiles"][0].replace("{z}", str(z)).replace("{x}", str(x)).replace("{y}", str(y))
    assert requests.get(url).headers["Content-Type"] == MVT
    conformance = requests.get(f"{server}/conformance?f=json").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt" in conformance
    landing = requests.get(f"{server}/?f=json").json()
    assert any(x["href"].endswith("/tileMatrixSets") for x in landing["links"])


@pytest.fixture(params=["gpkg", pytest.param("postgis", marks=pytest.mark.slow)])
def blocks_store(request, tmp_path):
    """The blocks in a fresh store of each kind."""
    if request.param == "gpkg":
        return _blocks_store(tmp_path / "blocks.gpkg")
    import uuid

    from oup.store.postgis import PostGISStore

    db = request.getfixturevalue("postgis")  # the suite's cluster; a database of our own
    return _write_blocks(PostGISStore(db.create(f"blocks_{uuid.uuid4().hex[:8]}")))


def test_a_tile_over_the_budget_leaves_out_its_smallest_features_first(blocks_store,
                                                                       monkeypatch):
    """Bars 3, 6, 12 and 24 display pixels long (and a point) in one z15 tile: under a
    budget just below the whole tile's bytes, the 3-pixel bar goes (the speck size doubles
    to 4 pixels), the rest stays; a point is never left out. Both stores alike."""
    from oup.store import mvt

    t = grids.get("WebMercatorQuad").tile(4.4555, 51.9062, 15)
    tile = grids.Tile("WebMercatorQuad", 15, t.y, t.x)
    x0, y0, x1, y1 = tile.crs84_envelope
    px = (x1 - x0) / 256  # a display pixel, in degrees of longitude
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    bars = [Feature(g, g, {"length": n}) for n, g in (
        (n, shapely.box(cx - 40 * px, cy + k * 5 * px, cx - 40 * px + n * px,
                        cy + k * 5 * px + 0.2 * px)) for k, n in enumerate((3, 6, 12, 24)))]
    point = shapely.Point(cx, cy - 20 * px)
    blocks_store.write_collection("bars", "EPSG:4326", [Field("length", "integer")],
                                  bars + [Feature(point, point, {"length": 0})])
    q = TileQuery("bars", ("length",), tile.bounds, tile.srid, tile.crs, tile.crs84_envelope)

    def lengths(data: bytes) -> set[int]:
        return {f["properties"]["length"] for f in _decode(data)["bars"]["features"]}

    whole = tile_layer(blocks_store, q)
    assert lengths(whole) == {0, 3, 6, 12, 24}
    monkeypatch.setattr(mvt, "MAX_TILE_BYTES", len(whole) - 1)
    thinned = tile_layer(blocks_store, q)
    assert lengths(thinned) == {0, 6, 12, 24} and len(thinned) < len(whole)
    monkeypatch.setattr(mvt, "MAX_TILE_BYTES", 1)  # out of reach: thinned as far as it goes
    assert lengths(tile_layer(blocks_store, q)) == {0}


def test_the_tile_cache_keeps_a_tile_until_the_collection_is_imported_again(tmp_path,
                                                                             blocks_store):
    from oup.catalog import Catalog
    from oup.tiles.cache import TileCache
    from oup.tiles.vector_tiles import VectorTiles

    def served(extra: str = "", folder: str = "v1") -> tuple[VectorTiles, grids.Tile, list]:
        """The tiles as a worker starting with this catalogue serves them."""
        (tmp_path / folder).mkdir()
        catalog = Catalog([load_collection(declare_collection(tmp_path / folder, extra))],
                          tmp_path)
        tiles = VectorTiles(catalog, blocks_store, "http://127.0.0.1",
                            TileCache(tmp_path / "cache"))
        t = grids.get("WebMercatorQuad").tile(4.4555, 51.9062, 15)
        return tiles, grids.Tile("WebMercatorQuad", 15, t.y, t.x), [tiles.layers["blocks"]]

    tiles, tile, chosen = served()
    first = tiles.tile(tile, chosen, single=True)
    assert len(_decode(first)["blocks"]["features"]) == 3
    kept = list((tmp_path / "cache").rglob("*.mvt"))
    assert len(kept) == 1 and kept[0].read_bytes() == first
    kept[0].write_bytes(b"kept")  # what is on disk is what is answered: not cut again
    assert tiles.tile(tile, chosen, single=True) == b"kept"
    _write_blocks(blocks_store)  # imported again: the old tiles go
    assert tiles.tile(tile, chosen, single=True) == first
    assert [p.read_bytes() for p in (tmp_path / "cache").rglob("*.mvt")] == [first]

    # `oup catalog reload`: a new title and style keep the tiles (they are still right)
    tiles, tile, chosen = served("style: {fill: '#ff0000'}", "v2")
    assert tiles.tile(tile, chosen, single=True) == first
    # other attributes in the tiles: cut anew, and the old ones go
    tiles, tile, chosen = served("tiles: {properties: [count]}", "v3")
    fewer = tiles.tile(tile, chosen, single=True)
    assert {tuple(f["properties"]) for f in _decode(fewer)["blocks"]["features"]} == {
        ("count",), ()}  # (the suppressed block has no count)
    assert [p.read_bytes() for p in (tmp_path / "cache").rglob("*.mvt")] == [fewer]
    # a collection no longer published: its tiles go when the workers start without it
    VectorTiles(Catalog([], tmp_path), blocks_store, "http://127.0.0.1",
                TileCache(tmp_path / "cache"))
    assert not list((tmp_path / "cache").rglob("*.mvt"))


def test_a_served_tile_cache_follows_oup_import_and_catalog_reload(workdir):
    """A server with OUP_TILE_CACHE=true, and a steward's commands while it runs: after
    `oup import` its tiles hold the new data, after an `oup catalog reload` that changes
    the attributes in the tiles they hold those, and one generation stays on disk."""
    import os

    from conftest import make_probes, oup, serving, wait_for

    cat, data = workdir / "cache-catalogue", workdir / "cache-data"
    make_probes(cat / "probes")
    env = dict(os.environ, OUP_DATA_DIR=str(data), OUP_CATALOG_DIR=str(cat),
               OUP_TILE_CACHE="true", OUP_LOG_LEVEL="WARNING")
    env.pop("OUP_DATABASE_URL", None)
    oup(env, "import", "--quiet")
    t = grids.get("WebMercatorQuad").tile(4.46, 51.91, 12)
    kept = data / "tile-cache" / "probes"

    def features(url: str) -> dict[int, dict]:
        r = requests.get(f"{url}/collections/probes/tiles/WebMercatorQuad/12/{t.y}/{t.x}",
                         timeout=60)
        assert r.status_code == 200, r.text
        return {f["properties"].get("serial", f["id"]): f["properties"]
                for f in _decode(r.content)["probes"]["features"]}

    with serving(env) as url:
        first = features(url)
        assert len(first) > 50 and list(kept.rglob("*.mvt"))
        assert features(url) == first  # (from the disk now)
        new = {f["properties"]["serial"]: f["properties"]["name"]
               for f in make_probes(cat / "probes", seed=8)}
        oup(env, "import", "probes", "--quiet")
        second = features(url)
        assert second != first
        assert {serial: p["name"] for serial, p in second.items()} == {
            serial: new[serial] for serial in second}
        with open(cat / "probes" / "collection.yml", "a") as yml:
            yml.write("tiles: {properties: [count]}\n")
        oup(env, "catalog", "reload")
        wait_for(lambda: all(set(p) <= {"count"} for p in features(url).values()), 60,
                 "tiles with the reloaded attributes")
        assert len(features(url)) == len(second)
        assert len([g for g in kept.iterdir() if g.is_dir()]) == 1


@pytest.mark.slow
def test_both_stores_cut_the_same_features(tmp_path, postgis):
    """The demo's buildings imported into a GeoPackage and into PostGIS: tiles of a few
    levels of both grids decode to the same features (ids), the same properties of the
    same types, and the same geometry to within a pixel (the stores snap and simplify
    alike, not vertex for vertex). The GeoPackage's tiles are OUP's own encoder's;
    PostGIS's are ST_AsMVT's."""
    import shutil
    import uuid

    from conftest import GRID_CACHE, ROOT
    from oup.geodesy import install_grids
    from oup.catalog.importers import import_collection
    from oup.store.postgis import PostGISStore

    (tmp_path / "proj").mkdir()
    for grid in GRID_CACHE.glob("*.tif"):
        shutil.copy(grid, tmp_path / "proj" / grid.name)
    install_grids(tmp_path)
    coll = load_collection(ROOT / "collections" / "buildings" / "collection.yml")
    gpkg = GeoPackageStore(tmp_path / "buildings.gpkg")
    pg = PostGISStore(postgis.create(f"same_{uuid.uuid4().hex[:8]}"))
    for store in (gpkg, pg):
        import_collection(coll, store, progress=False)
    props = tuple(n for n, _ in gpkg.layer("buildings")["fields"])
    rng, compared = random.Random(5), 0
    for tms_id, levels in (("WebMercatorQuad", range(12, 18)),
                           ("NetherlandsRDNewQuad", range(7, 13))):
        for z in levels:
            for _ in range(3):
                lon, lat = rng.uniform(4.444, 4.462), rng.uniform(51.903, 51.915)
                t = grids.get(tms_id).tile(lon, lat, z)
                tile = grids.Tile(tms_id, z, t.y, t.x)
                q = TileQuery("buildings", props, tile.bounds, tile.srid, tile.crs,
                              tile.crs84_envelope)
                a, b = (sorted(_decode(tile_layer(s, q)).get("buildings", {})
                               .get("features", []), key=lambda f: f["id"])
                        for s in (gpkg, pg))
                assert [f["id"] for f in a] == [f["id"] for f in b], (tms_id, z)
                for fa, fb in zip(a, b):
                    assert fa["properties"] == fb["properties"]
                    assert {k: type(v) for k, v in fa["properties"].items()} == \
                        {k: type(v) for k, v in fb["properties"].items()}
                    ga, gb = (shapely.make_valid(shape(f["geometry"])) for f in (fa, fb))
                    assert shapely.hausdorff_distance(ga, gb) <= EXTENT / 256, (tms_id, z)
                    compared += 1
    assert compared > 1000
    # PostGIS keeps each feature in web mercator as it is written: the tiles cut from that
    # column are the very tiles of a transform at each request (tables written before it)
    meta = pg.layer("buildings")
    assert meta["web_mercator"] is True
    lon, lat = shapely.box(*meta["bbox"]).centroid.coords[0]
    for z in range(12, 18):
        t = grids.get("WebMercatorQuad").tile(lon, lat, z)
        tile = grids.Tile("WebMercatorQuad", z, t.y, t.x)
        q = TileQuery("buildings", props, tile.bounds, tile.srid, tile.crs, tile.crs84_envelope)
        stored = tile_layer(pg, q)
        meta["web_mercator"] = False  # as a table written before the column
        try:
            assert tile_layer(pg, q) == stored, z
        finally:
            meta["web_mercator"] = True
        assert _decode(stored)["buildings"]["features"], z


@pytest.mark.slow
def test_postgis_keeps_what_a_web_mercator_map_can_draw_of_polar_features(postgis):
    """Web mercator ends at 85.05 degrees: a feature up to the pole is still written
    (its CRS84 geometry whole), and its tiles hold the part a web mercator map draws."""
    import uuid

    from oup.store.postgis import PostGISStore

    store = PostGISStore(postgis.create(f"polar_{uuid.uuid4().hex[:8]}"))
    ice = shapely.box(10, 84, 11, 90)  # from 84 degrees north to the pole
    store.write_collection("ice", "EPSG:4326", [Field("name", "string")],
                           [Feature(ice, ice, {"name": "ice"}),
                            Feature(shapely.Point(10.5, 90), shapely.Point(10.5, 90),
                                    {"name": "pole"})])
    page = store.query("ice", Query(bbox=(10, 86, 11, 90)))
    assert sorted(f["properties"]["name"] for f in page.features) == ["ice", "pole"]
    tms = grids.get("WebMercatorQuad")
    t = tms.tile(10.5, 84.5, 3)  # the top row of z3: up to 85.05 degrees
    tile = grids.Tile("WebMercatorQuad", 3, t.y, t.x)
    assert t.y == 0
    data = tile_layer(store, TileQuery("ice", ("name",), tile.bounds, tile.srid, tile.crs,
                                       tile.crs84_envelope))
    feats = _decode(data)["ice"]["features"]
    assert [f["properties"]["name"] for f in feats] == ["ice"]  # the point is off the map
    top = min(y for ring in feats[0]["geometry"]["coordinates"] for _, y in ring)
    assert top <= 0  # reaches the top edge (y down): drawn up to the map's end


def test_gdal_reads_the_vector_tiles_through_its_ogcapi_driver(server):
    """GDAL's OGCAPI driver, as current GDAL has it (the one inside pyogrio, 3.12), finds
    the tilesets, the grid and the tiles from the collection's URL alone and reads the
    buildings with their attributes. (Debian 12's ogrinfo, GDAL 3.6.2, stops after
    reading the grid without a message: that build has the vector-tile half of the
    driver compiled out, OSGeo/gdal#7993, fixed in 3.7.1.)"""
    import pyogrio

    url = f"OGCAPI:{server}/collections/buildings"
    # a layer per zoom of the grid GDAL prefers, WorldCRS84Quad (asked for WebMercatorQuad,
    # GDAL 3.12 compares the collection's CRS84 extent with the grid's metres and finds
    # no tile in any level)
    tiles = pyogrio.read_dataframe(url, layer="Zoom level 16", API="TILES")
    items = requests.get(f"{server}/collections/buildings/items", params={"limit": 5000}).json()
    by_object = {f["properties"]["cityobject_id"]: f for f in items["features"]}
    seen = set(tiles["cityobject_id"])
    assert seen <= set(by_object) and len(seen) >= 0.95 * len(by_object)
    for _, row in tiles.head(200).iterrows():  # a building cut by a tile's edge: its part
        want = by_object[row["cityobject_id"]]
        assert row["height"] == pytest.approx(want["properties"]["height"])
        assert shape(want["geometry"]).buffer(1e-5).contains(row.geometry)  # ~1 m


QGIS_PYTHON = "/usr/bin/python3"  # Debian's, with python3-qgis (make services installs it)


def test_qgis_adds_and_draws_the_vector_tiles_with_their_attributes(server, tmp_path):
    """QGIS itself (PyQGIS, headless) adds `buildings` from the README's XYZ template and
    draws the city. Styled to draw in red only the building whose `cityobject_id` is one
    chosen here (so QGIS must read the attributes from the tiles), it draws that building
    where the features put it, and no other."""
    import json
    import subprocess

    from PIL import Image

    items = requests.get(f"{server}/collections/buildings/items", params={
        "limit": 5000, "crs": "http://www.opengis.net/def/crs/EPSG/0/3857"}).json()["features"]
    shapes = {f["properties"]["cityobject_id"]: shape(f["geometry"]) for f in items}
    chosen = max(shapes, key=lambda k: shapes[k].area)
    run = subprocess.run([QGIS_PYTHON, str(Path(__file__).parent / "qgis_client.py"), server,
                          "buildings", "cityobject_id", chosen, str(tmp_path)],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["valid"] and (got["zmin"], got["zmax"]) == (10, 22) and not got["errors"], got
    x0, y0, x1, y1 = got["extent"]

    def pixel(point):  # map (EPSG:3857) -> picture (800 x 600, y down)
        return int((point.x - x0) / (x1 - x0) * 800), int((y1 - point.y) / (y1 - y0) * 600)

    everything = Image.open(tmp_path / "all.png").convert("RGB")
    drawn = sum(1 for p in everything.get_flattened_data() if p != (255, 255, 255)) / (800 * 600)
    assert drawn > 0.05, drawn  # the city, not a blank picture
    one = Image.open(tmp_path / "one.png").convert("RGB")

    def red(point) -> bool:
        r, g, b = one.getpixel(pixel(point))
        return r > 200 and g < 80 and b < 80

    # well inside the chosen footprint (2 m in: a pixel here is ~1.6 m), and elsewhere
    inside = shapes[chosen].buffer(-2.0)
    assert red(inside.representative_point()), chosen
    near = shapes[chosen].buffer(4.0)
    others = [g.buffer(-2.0) for k, g in shapes.items() if k != chosen and not g.intersects(near)]
    others = [g.representative_point() for g in others if not g.is_empty]
    assert len(others) > 100 and not any(red(p) for p in others)


def test_drop_area_drops_the_tiles_a_box_touches_and_their_neighbours_only(tmp_path):
    """After a write: the tiles of the old and new geometry go, with the neighbours whose
    buffer may hold an edge of it; every other cached tile stays."""
    from oup.tiles.cache import TileCache

    cache = TileCache(tmp_path)
    tms = grids.get("WebMercatorQuad")
    centre = tms.tile(4.4500, 51.9100, 16)
    kept = {}
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            cache.layer("plots", "stamp", ("name",), "WebMercatorQuad", 16, centre.y + dy,
                        centre.x + dx, lambda: b"tile")
    files = {p.relative_to(tmp_path) for p in tmp_path.rglob("*.mvt")}
    assert len(files) == 49
    west, south, east, north = tms.bounds(centre)  # a box inside the centre tile
    box = [west + (east - west) / 4, south + (north - south) / 4,
           east - (east - west) / 4, north - (north - south) / 4]
    assert cache.drop_area("plots", box) == 9
    left = {p.relative_to(tmp_path) for p in tmp_path.rglob("*.mvt")}
    gone = {(int(p.parent.name), int(p.stem)) for p in files - left}
    assert gone == {(centre.y + dy, centre.x + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    assert cache.drop_area("other", box) == 0 and len(left) == 40
