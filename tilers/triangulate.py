"""Planar polygons with holes -> triangles, robust to the real world's slightly
non-planar and degenerate rings."""
from __future__ import annotations

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
    nxt = np.roll(ring, -1, axis=0)
    return np.array([
        np.sum((ring[:, 1] - nxt[:, 1]) * (ring[:, 2] + nxt[:, 2])),
        np.sum((ring[:, 2] - nxt[:, 2]) * (ring[:, 0] + nxt[:, 0])),
        np.sum((ring[:, 0] - nxt[:, 0]) * (ring[:, 1] + nxt[:, 1])),
    ])


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
    length = np.linalg.norm(normal)
    extent = np.ptp(outer, axis=0).max()
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
    verts = np.vstack(parts)
    origin = outer[0]
    flat = np.column_stack([(verts - origin) @ u, (verts - origin) @ v])
    ends = np.cumsum([len(p) for p in parts]).astype(np.uint32)
    tris = np.asarray(triangulate_float64(flat, ends), dtype=np.uint32).reshape(-1, 3)
    if len(tris) == 0:
        raise DegenerateRing("no triangles")
    # make every triangle face the way the surface faces
    a, b, c = verts[tris[:, 0]], verts[tris[:, 1]], verts[tris[:, 2]]
    facing = _cross(b - a, c - a) @ normal
    flip = facing < 0
    tris[flip] = tris[flip][:, [0, 2, 1]]
    return verts, tris, normal
