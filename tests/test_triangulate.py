"""The batch triangulator of the tiler: areas, facing and what it drops, on polygons whose
answer shapely gives independently (drawn in 2D, then tilted into 3D)."""
from __future__ import annotations

import numpy as np
import pytest
import shapely

from tilers.triangulate import triangulate_surfaces

SQUARE = [(0, 0), (4, 0), (4, 4), (0, 4)]
L_SHAPE = [(0, 0), (6, 0), (6, 2), (2, 2), (2, 5), (0, 5)]          # concave
HOLE = [(1, 1), (1, 3), (3, 3), (3, 1)]                            # clockwise
STAR = [(np.cos(a), np.sin(a)) for a in np.radians(90 + 144 * np.arange(5))]  # turns twice
HEXAGON = [(np.cos(a) * 3, np.sin(a) * 3) for a in np.radians(60 * np.arange(6))]


def _tilt(seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q if np.linalg.det(q) > 0 else -q


def _surfaces(polygons: list[list[list]], rotation: np.ndarray, offset):
    """Rings in 3D (tilted, shifted to RD-like coordinates) as index lists into one array."""
    verts, surfaces = [], []
    for rings in polygons:
        surface = []
        for ring in rings:
            start = len(verts)
            verts += [rotation @ np.array([x, y, 0.0]) + offset for x, y in ring]
            surface.append(list(range(start, len(verts))))
        surfaces.append(surface)
    return surfaces, np.array(verts)


def _areas(tri, normal_of):
    """Per surface: its triangles' total area, and the smallest facing (dot with normal)."""
    v, t = tri.vertices, tri.triangles
    c = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    at = np.concatenate([[0], np.cumsum(tri.triangle_counts)])
    out = []
    for s in range(len(tri.triangle_counts)):
        cs = c[at[s]:at[s + 1]]
        out.append((np.linalg.norm(cs, axis=1).sum() / 2,
                    (cs @ normal_of(s)).min() if len(cs) else None))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_areas_and_facing_match_the_polygons(seed):
    rot = _tilt(seed)
    polys = [[SQUARE], [L_SHAPE], [L_SHAPE[::-1]], [SQUARE, HOLE], [HEXAGON], [STAR]]
    surfaces, verts = _surfaces(polys, rot, (92_000.0, 437_000.0, 5.0))
    tri = triangulate_surfaces(surfaces, verts)
    assert tri.kept.all() and not tri.bad_index.any()
    for s, rings in enumerate(polys):
        shape = shapely.Polygon(rings[0], rings[1:])
        facing = np.sign(shapely.Polygon(rings[0]).exterior.is_ccw - 0.5)  # +1: counter-clockwise
        expected_normal = rot @ np.array([0, 0, facing])
        assert np.allclose(tri.normals[s], expected_normal, atol=1e-6), s
        area, facing_min = _areas(tri, lambda i: tri.normals[i])[s]
        if rings[0] is not STAR:  # a self-intersecting ring has no area to compare with
            assert area == pytest.approx(shape.area, rel=1e-6), s
        assert facing_min > 0, f"surface {s} has a triangle facing away"
    # the vertices of each surface are its own (not shared), in order
    assert list(tri.vertex_counts) == [4, 6, 6, 4 + 4, 6, 5]


def test_cleaning_and_what_is_dropped():
    rot = _tilt(7)
    repeated = [SQUARE[0], SQUARE[0], *SQUARE[1:], SQUARE[0]]       # repeat + closing point
    line = [(0, 0), (1, 1), (2, 2)]                                 # no area
    two = [(0, 0), (1, 0), (1, 0)]                                  # 2 distinct points
    tiny_hole = [(1, 1), (1, 2)]                                    # a hole of 2: dropped
    polys = [[repeated], [line], [two], [SQUARE, tiny_hole]]
    surfaces, verts = _surfaces(polys, rot, (0.0, 0.0, 0.0))
    tri = triangulate_surfaces(surfaces, verts)
    assert list(tri.kept) == [True, False, False, True]
    assert list(tri.vertex_counts) == [4, 0, 0, 4]
    assert list(tri.triangle_counts) == [2, 0, 0, 2]
    areas = _areas(tri, lambda i: tri.normals[i])
    assert areas[0][0] == pytest.approx(16) and areas[3][0] == pytest.approx(16)
    # each vertex knows where it came from
    assert np.allclose(verts[tri.source], tri.vertices)


def test_indices_out_of_range_are_flagged_per_document():
    # two documents' vertices in one array: the second surface may use only its own 4
    rot = np.eye(3)
    surfaces, verts = _surfaces([[SQUARE], [SQUARE]], rot, (0.0, 0.0, 0.0))
    local = [[[0, 1, 2, 3]], [[0, 1, 2, 3]], [[0, 1, 2, 4]], [[0, -1, 2, 3]]]
    tri = triangulate_surfaces(local, verts, base=[0, 4, 4, 4], limit=[4, 4, 4, 4])
    assert list(tri.bad_index) == [False, False, True, True]
    assert list(tri.kept) == [True, True, False, False]
    assert np.allclose(tri.vertices, verts)
