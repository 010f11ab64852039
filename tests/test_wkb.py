"""GeoJSON read straight from WKB by a compiled loop (oup.store.wkb) against shapely's
way (parse, take the coordinates, nest them), in-process: the same objects for every
geometry type, 2D and 3D, either WKB flavour, moved to another CRS or not; what the
loop does not read (collections, empties, big-endian) is left to shapely."""
from __future__ import annotations

import numpy as np
import pytest
import shapely

from oup.store import wkb
from oup.store.geometry import _geojson, from_crs84, geojson_geometries


def _shapelys_way(wkbs: list, crs: str) -> list:
    geoms = shapely.from_wkb(np.array(wkbs, dtype=object))
    return geojson_geometries(from_crs84(geoms, crs))


def _random_geometries(rng, n: int, z: bool) -> list:
    def pts(k):
        xy = np.column_stack([rng.uniform(3.9, 4.7, k), rng.uniform(51.7, 52.1, k)])
        return np.column_stack([xy, rng.uniform(-5, 80, k)]) if z else xy

    def ring(k):
        c = pts(1)[0]
        a = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = rng.uniform(1e-4, 1e-3, k)
        xy = np.column_stack([c[0] + r * np.cos(a), c[1] + r * np.sin(a)])
        if z:
            xy = np.column_stack([xy, np.full(k, c[2])])
        return np.vstack([xy, xy[:1]])

    def polygon():
        holes = [ring(4) * 0 + ring(4)] if rng.random() < 0.2 else []
        return shapely.Polygon(ring(int(rng.integers(3, 30))), holes)

    makers = [
        lambda: shapely.Point(pts(1)[0]),
        lambda: shapely.LineString(pts(int(rng.integers(2, 20)))),
        polygon,
        lambda: shapely.MultiPoint(pts(int(rng.integers(1, 6)))),
        lambda: shapely.MultiLineString([pts(int(rng.integers(2, 8)))
                                         for _ in range(int(rng.integers(1, 4)))]),
        lambda: shapely.MultiPolygon([polygon() for _ in range(int(rng.integers(1, 4)))]),
    ]
    return [makers[i % 6]() for i in range(n)]


ODD = [None, shapely.Point(), shapely.Polygon(), shapely.MultiPolygon(),
       shapely.GeometryCollection([shapely.Point(4.4, 51.9)]),
       shapely.from_wkt("MULTIPOINT ((4.4 51.9), EMPTY)")]


@pytest.mark.parametrize("crs", ["OGC:CRS84", "EPSG:3857"])
@pytest.mark.parametrize("z", [False, True])
def test_geojson_read_from_wkb_is_shapelys(crs, z):
    rng = np.random.default_rng(11)
    geoms = _random_geometries(rng, 600, z) + ODD
    for flavor in ("extended", "iso"):
        wkbs = [None if g is None else shapely.to_wkb(g, flavor=flavor) for g in geoms]
        assert _geojson(wkbs, crs) == _shapelys_way(wkbs, crs)
        # the loop read every plain one and left the odd ones to shapely (else this
        # compares shapely with itself)
        read = wkb.geojson(wkbs, None)
        assert all(isinstance(g, dict) for g in read[:600])
        assert [g for g in read[600:]] == [None] + [False] * (len(ODD) - 1)
    big = [shapely.to_wkb(g, byte_order=0) for g in geoms[:50]]
    assert wkb.geojson(big) == [False] * 50 and _geojson(big, crs) == _shapelys_way(big, crs)


def test_a_page_of_2d_and_3d_together_is_shapelys():
    rng = np.random.default_rng(12)
    geoms = _random_geometries(rng, 30, False) + _random_geometries(rng, 30, True)
    wkbs = [shapely.to_wkb(g) for g in geoms]
    assert _geojson(wkbs, "OGC:CRS84") == _shapelys_way(wkbs, "OGC:CRS84")


def test_truncated_wkb_is_left_to_shapely():
    whole = shapely.to_wkb(shapely.Polygon([(0, 0), (1, 0), (1, 1), (0, 0)]))
    for cut in (3, 9, 14, len(whole) - 1):
        assert wkb.geojson([whole[:cut], whole]) == [False, wkb.geojson([whole])[0]]


def test_heights_stay_when_features_are_asked_for_in_another_crs():
    """Found by this comparison: a 3D feature asked for in a CRS other than CRS84 lost its
    heights (shapely.transform makes 2D geometries unless told otherwise)."""
    wkbs = [shapely.to_wkb(shapely.Point(4.47, 51.92, 12.5)),
            shapely.to_wkb(shapely.GeometryCollection([shapely.Point(4.47, 51.92, 7.0)]))]
    point, collection = _geojson(wkbs, "EPSG:3857")
    assert point["coordinates"][2] == 12.5
    assert collection["geometries"][0]["coordinates"][2] == 7.0
