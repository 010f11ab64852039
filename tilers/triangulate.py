"""Planar polygons with holes -> triangles, robust to the real world's slightly
non-planar and degenerate rings, many surfaces at a time.

All surfaces of a unit of work (a few hundred buildings, tens of thousands of
surfaces) go through one pass of array operations: cleaning, the best-fit plane of
each, the 2D coordinates in it, and a fan for every convex ring without holes (nearly
all LoD2 walls and roof faces). Only concave rings and rings with holes are handed to
earcut one by one. Per-surface NumPy calls cost tens of microseconds each; at city
scale they were the tiler's largest cost.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np
from mapbox_earcut import triangulate_float64

SAME = 1e-9  # coordinates closer than this are one point


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross product; np.cross costs ~40 us a call on small arrays."""
    return np.column_stack([a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1],
                            a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2],
                            a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]])


@dataclass
class Triangulated:
    """Triangles of many surfaces. Vertices are not shared between surfaces and come
    surface by surface (outer ring, then holes), so the vertices and the triangles of
    consecutive surfaces are consecutive slices."""
    vertices: np.ndarray         # (n, 3)
    source: np.ndarray           # (n,) index in ``verts`` of each vertex
    triangles: np.ndarray        # (k, 3) int64 indices into vertices, ordered by surface
    normals: np.ndarray          # (s, 3) unit normal of each surface (0 where dropped)
    vertex_counts: np.ndarray    # (s,) 0 where the surface was dropped
    triangle_counts: np.ndarray  # (s,)
    bad_index: np.ndarray        # (s,) bool: refers to a vertex that does not exist

    @property
    def kept(self) -> np.ndarray:
        return self.vertex_counts > 0


def _group_starts(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def triangulate_surfaces(surfaces: list, verts: np.ndarray, base: np.ndarray | None = None,
                         limit: np.ndarray | None = None) -> Triangulated:
    """Triangulate surfaces, each a list of rings (outer, then holes) of vertex indices.

    Index ``i`` of surface ``s`` is ``verts[base[s] + i]`` and must be below ``limit[s]``
    (several documents' vertices in one array); a surface that breaks this is dropped and
    flagged in ``bad_index``. So is a surface with no area (fewer than 3 distinct points,
    all on a line). Triangles wind counter-clockwise seen from the surface's normal.
    """
    ns = len(surfaces)
    base = np.zeros(ns, np.int64) if base is None else np.asarray(base, np.int64)
    limit = np.full(ns, len(verts), np.int64) if limit is None else np.asarray(limit, np.int64)
    rings_per = np.fromiter((len(s) for s in surfaces), np.int64, ns)
    rings = list(chain.from_iterable(surfaces))
    ring_len = np.fromiter((len(r) for r in rings), np.int64, len(rings))
    idx = np.fromiter(chain.from_iterable(rings), np.int64, int(ring_len.sum()))
    ring_of = np.repeat(np.arange(len(rings)), ring_len)
    surf_of_ring = np.repeat(np.arange(ns), rings_per)
    surf_of = surf_of_ring[ring_of]
    outer_ring = np.full(ns, -1, np.int64)
    outer_ring[rings_per > 0] = _group_starts(rings_per)[rings_per > 0]

    wrong = (idx < 0) | (idx >= limit[surf_of])
    bad_index = np.bincount(surf_of[wrong], minlength=ns) > 0
    source = np.where(wrong, 0, idx + base[surf_of])
    pts = verts[source]

    # cleaning: drop a point equal to the one before it, then a closing point equal to
    # the first of its ring
    ring_start = _group_starts(ring_len)
    keep = np.ones(len(pts), bool)
    keep[1:] = np.abs(np.diff(pts, axis=0)).max(axis=1) > SAME
    keep[ring_start[ring_len > 0]] = True
    kept_per_ring = np.bincount(ring_of[keep], minlength=len(rings))
    last = np.flatnonzero(keep)[np.cumsum(kept_per_ring)[kept_per_ring > 1] - 1]
    closing = np.abs(pts[last] - pts[ring_start[ring_of[last]]]).max(axis=1) <= SAME
    keep[last[closing]] = False
    kept_per_ring = np.bincount(ring_of[keep], minlength=len(rings))

    # a surface needs an outer ring of 3 points; a hole of fewer is dropped
    ok = (outer_ring >= 0) & ~bad_index
    ok[ok] = kept_per_ring[outer_ring[ok]] >= 3
    keep &= (kept_per_ring >= 3)[ring_of] & ok[surf_of]

    # the best-fit plane of each surface's outer ring (Newell's normal; length 2 x area)
    on_outer = keep & (ring_of == outer_ring[surf_of])
    p, s = pts[on_outer], surf_of[on_outer]
    n_out = np.bincount(s, minlength=ns)
    centre = np.column_stack([np.bincount(s, p[:, k], ns) for k in range(3)]) / \
        np.maximum(n_out, 1)[:, None]
    c = p - centre[s]
    nxt = np.arange(1, len(c) + 1)
    ends = np.cumsum(n_out[ok]) - 1            # last point of each surface's outer ring
    nxt[ends] = ends - n_out[ok] + 1           # ... wraps to its first
    cn = c[nxt] if len(c) else c
    normals = np.column_stack([np.bincount(s, (c[:, a] - cn[:, a]) * (c[:, b] + cn[:, b]), ns)
                               for a, b in ((1, 2), (2, 0), (0, 1))])
    length = np.sqrt((normals ** 2).sum(axis=1))
    extent = np.zeros(ns)
    if ok.any():  # the outer rings' points come surface by surface
        first = _group_starts(n_out[ok])
        extent[ok] = (np.maximum.reduceat(p, first) - np.minimum.reduceat(p, first)).max(axis=1)
    ok &= (length > 1e-12 * np.maximum(extent, 1.0) ** 2) & (length >= 1e-10)
    keep &= ok[surf_of]
    normals = np.where(ok[:, None], normals / np.where(length > 0, length, 1.0)[:, None], 0.0)

    # 2D coordinates in the plane: (u, v, normal) right-handed, so a ring that winds
    # counter-clockwise about the normal winds counter-clockwise in (u, v)
    nx, ny, nz = normals.T
    zero = np.zeros(ns)
    u = np.where((np.abs(nx) < 0.9)[:, None], np.column_stack([zero, nz, -ny]),
                 np.column_stack([-nz, zero, nx]))
    u /= np.maximum(np.sqrt((u ** 2).sum(axis=1)), 1e-300)[:, None]
    v = cross(normals, u)
    out, source = pts[keep], source[keep]
    so = surf_of[keep]
    origin = np.zeros((ns, 3))
    first = np.flatnonzero(np.diff(so, prepend=-1) != 0)
    origin[so[first]] = out[first]  # each surface's first point
    d = out - origin[so]
    flat = np.column_stack([(d * u[so]).sum(axis=1), (d * v[so]).sum(axis=1)])

    triangles = _fans_and_ears(flat, so, ring_of[keep], ns)
    # earcut found nothing in a few slivers: drop them too
    got = np.bincount(so[triangles[:, 0]], minlength=ns)
    empty = ok & (got == 0)
    if empty.any():
        ok &= ~empty
        still = ~empty[so]
        renumber = np.cumsum(still) - 1
        out, source, so, flat = out[still], source[still], so[still], flat[still]
        triangles = renumber[triangles]
    # every triangle faces the way its surface faces
    a, b, c2 = flat[triangles[:, 0]], flat[triangles[:, 1]], flat[triangles[:, 2]]
    flip = (b[:, 0] - a[:, 0]) * (c2[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c2[:, 0] - a[:, 0]) < 0
    triangles[flip] = triangles[flip][:, [0, 2, 1]]
    per_triangle = so[triangles[:, 0]]
    return Triangulated(out, source, triangles, np.where(ok[:, None], normals, 0.0),
                        np.bincount(so, minlength=ns), np.bincount(per_triangle, minlength=ns),
                        bad_index)


def _fans_and_ears(flat: np.ndarray, surf: np.ndarray, ring: np.ndarray, ns: int) -> np.ndarray:
    """Triangles (indices into ``flat``, ordered by surface) of surfaces given as points
    in their planes, grouped by surface (``surf``) and ring (``ring``)."""
    if not len(flat):
        return np.zeros((0, 3), np.int64)
    count = np.bincount(surf, minlength=ns)
    start = _group_starts(count)
    rings = np.bincount(surf, (np.diff(ring, prepend=-1) != 0).astype(float), ns)
    # convex without holes: every turn to the left, and once round (a star turns twice)
    nxt = np.arange(1, len(flat) + 1)
    has = count > 0
    ends = start[has] + count[has] - 1
    nxt[ends] = start[has]
    e = flat[nxt] - flat
    e2 = e[nxt]
    turn = e[:, 0] * e2[:, 1] - e[:, 1] * e2[:, 0]
    angle = np.arctan2(turn, (e * e2).sum(axis=1))
    scale = np.maximum((e ** 2).sum(axis=1), (e2 ** 2).sum(axis=1))
    left = np.bincount(surf, (turn < -1e-9 * scale).astype(float), ns) == 0
    once = np.bincount(surf, angle, ns) < 3 * np.pi
    fan = has & (rings == 1) & left & once
    # fans: (0, j, j + 1) for j in 1 .. k - 2, at each surface's first vertex
    k = np.where(fan, count, 0)
    per = np.maximum(k - 2, 0)
    owner = np.repeat(np.flatnonzero(per), per[per > 0])
    j = np.arange(len(owner)) - _group_starts(per)[owner] + 1
    fans = np.column_stack([start[owner], start[owner] + j, start[owner] + j + 1])
    # the rest by earcut, one call each: (its points, where each of its rings ends)
    ears = np.flatnonzero(has & ~fan)
    ring_ends = np.flatnonzero(np.diff(ring, append=-1) != 0) + 1
    first_end = np.searchsorted(ring_ends, start[ears], side="right")
    last_end = np.searchsorted(ring_ends, start[ears] + count[ears], side="right")
    parts, made = [fans.astype(np.uint32)], []
    for sid, e0, e1 in zip(ears, first_end, last_end):
        lo = start[sid]
        t = triangulate_float64(flat[lo:lo + count[sid]], (ring_ends[e0:e1] - lo).astype(np.uint32))
        parts.append(t.reshape(-1, 3) + np.uint32(lo))
        made.append(len(t) // 3)
    who = np.concatenate([owner, np.repeat(ears, made)])
    tris = np.vstack(parts).astype(np.int64)
    return tris[np.argsort(who, kind="stable")]
