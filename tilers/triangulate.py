"""Planar polygons with holes -> triangles, robust to the real world's slightly
non-planar and degenerate rings."""
from __future__ import annotations

import math

import numpy as np
from mapbox_earcut import triangulate_float64


class DegenerateRing(ValueError):
    """A ring with no area (fewer than 3 distinct points, or all on one line)."""


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross product; np.cross costs ~40 us a call on small arrays."""
    return np.column_stack([a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1],
                            a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2],
                            a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]])


def newell_normal(ring: np.ndarray) -> np.ndarray:
    """Area-weighted normal of a (possibly non-planar) ring; length = 2 x area."""
    nxt = np.concatenate((ring[1:], ring[:1]))  # np.roll costs several times more
    d, s = ring - nxt, ring + nxt
    return (d[:, [1, 2, 0]] * s[:, [2, 0, 1]]).sum(axis=0)


def _clean(ring: np.ndarray) -> np.ndarray:
    """Drop repeated consecutive points and a closing point equal to the first."""
    keep = np.ones(len(ring), bool)
    keep[1:] = np.any(np.abs(np.diff(ring, axis=0)) > 1e-9, axis=1)
    ring = ring[keep]
    if len(ring) > 1 and np.all(np.abs(ring[0] - ring[-1]) <= 1e-9):
        ring = ring[:-1]
    return ring


def triangulate(rings: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triangulate one surface (outer ring, then holes; each an (n, 3) array).

    Returns (vertices (m, 3), triangles (k, 3) indices into vertices, unit normal).
    Triangles wind counter-clockwise seen from the normal's side.
    """
    outer = _clean(np.asarray(rings[0], dtype=float))
    if len(outer) < 3:
        raise DegenerateRing("fewer than 3 distinct points")
    normal = newell_normal(outer - outer.mean(axis=0))
    length = math.sqrt(normal @ normal)
    extent = (outer.max(axis=0) - outer.min(axis=0)).max()
    if length <= 1e-12 * max(extent, 1.0) ** 2 or length < 1e-10:
        raise DegenerateRing("no area")
    normal = normal / length
    if len(rings) == 1 and len(outer) == 3:  # already a triangle: wind it with the normal
        return outer, np.array([[0, 1, 2]], np.uint32), normal
    # a 2D basis in the best-fit plane
    nx, ny, nz = normal
    u = np.array([0.0, nz, -ny]) if abs(nx) < 0.9 else np.array([-nz, 0.0, nx])  # n x helper
    u /= np.sqrt(u @ u)
    v = np.array([ny * u[2] - nz * u[1], nz * u[0] - nx * u[2], nx * u[1] - ny * u[0]])
    parts = [outer] + [h for h in (_clean(np.asarray(r, dtype=float)) for r in rings[1:])
                       if len(h) >= 3]
    verts = np.vstack(parts) if len(parts) > 1 else outer
    flat = (verts - outer[0]) @ np.column_stack([u, v])
    ends = np.cumsum([len(p) for p in parts]).astype(np.uint32)
    tris = np.asarray(triangulate_float64(flat, ends), dtype=np.uint32).reshape(-1, 3)
    if len(tris) == 0:
        raise DegenerateRing("no triangles")
    # make every triangle face the way the surface faces: (u, v, normal) is right-handed,
    # so counter-clockwise in the plane's (u, v) is facing the normal
    a, b, c = flat[tris[:, 0]], flat[tris[:, 1]], flat[tris[:, 2]]
    flip = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]) < 0
    tris[flip] = tris[flip][:, [0, 2, 1]]
    return verts, tris, normal


_FAN = {3: np.array([[0, 1, 2]], np.uint32), 4: np.array([[0, 1, 2], [0, 2, 3]], np.uint32)}


def _try(rings):
    try:
        return triangulate(rings)
    except DegenerateRing:
        return None


def triangulate_many(surfaces: list[list], verts: np.ndarray) -> list:
    """Triangulate many surfaces (each a list of rings of indices into ``verts``).

    Returns, per surface, (vertices, triangles, normal) or None for a degenerate one.
    Triangles and convex quads without holes (nine in ten LoD2 surfaces) are done in
    a few vectorised steps; everything else goes through ``triangulate``.
    """
    out: list = [None] * len(surfaces)
    by_size: dict[int, list[int]] = {3: [], 4: []}
    for i, rings in enumerate(surfaces):
        if len(rings) == 1 and len(rings[0]) in by_size:
            by_size[len(rings[0])].append(i)
        else:
            out[i] = _try([verts[np.asarray(r, dtype=np.int64)] for r in rings])
    for k, ids in by_size.items():
        if not ids:
            continue
        pts = verts[np.asarray([surfaces[i][0] for i in ids], dtype=np.int64)]  # (m, k, 3)
        edges = np.roll(pts, -1, axis=1) - pts
        repeated = (np.abs(edges).max(axis=2) <= 1e-9).any(axis=1)
        c = pts - pts.mean(axis=1, keepdims=True)
        cn = np.roll(c, -1, axis=1)
        normals = np.column_stack([
            ((c[..., 1] - cn[..., 1]) * (c[..., 2] + cn[..., 2])).sum(axis=1),
            ((c[..., 2] - cn[..., 2]) * (c[..., 0] + cn[..., 0])).sum(axis=1),
            ((c[..., 0] - cn[..., 0]) * (c[..., 1] + cn[..., 1])).sum(axis=1)])
        length = np.sqrt((normals ** 2).sum(axis=1))
        flat = length < 1e-10
        unit = normals / np.where(flat, 1.0, length)[:, None]
        if k == 4:  # a fan is right only for a convex quad
            turn = np.stack([_cross(edges[:, j], edges[:, (j + 1) % 4]) for j in range(4)], 1)
            convex = ((turn * unit[:, None, :]).sum(axis=2) >= -1e-12).all(axis=1)
        else:
            convex = np.ones(len(ids), bool)
        for j, i in enumerate(ids):
            if repeated[j] or not convex[j]:
                out[i] = _try([verts[np.asarray(surfaces[i][0], dtype=np.int64)]])
            elif not flat[j]:
                out[i] = (pts[j], _FAN[k], unit[j])
    return out
