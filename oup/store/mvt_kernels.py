"""The loops of the MVT encoder, compiled (numba): a tile's geometry commands, the
numbering of its property values, and the protobuf framing of its features.

Each walks a tile's vertices or cells once. As numpy array operations the same work took
some forty passes over them and was a third of a GeoPackage tile's CPU time; compiled, it
is a few percent. Compiled once per machine (numba's cache, beside this file), then
loaded in a fraction of a second; imported only when a tile is encoded.

The rules they apply are ``mvt_encode``'s (its docstring); these functions only say how.
"""
from __future__ import annotations

import numpy as np
from numba import njit

POINT, LINESTRING, RING = 1, 2, 4  # an arc's kind (mvt_encode: _RING)
MOVE_TO, LINE_TO, CLOSE_PATH = 1, 2, 7


@njit(cache=True, nogil=True)
def _put(out, pos, v):
    """A base-128 varint of ``v`` (>= 0) at ``out[pos]``; the position after it."""
    while v >= 0x80:
        out[pos] = (v & 0x7F) | 0x80
        v >>= 7
        pos += 1
    out[pos] = v
    return pos + 1


@njit(cache=True, nogil=True)
def _size(v):
    """The bytes a varint of ``v`` (>= 0) takes."""
    n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


@njit(cache=True, nogil=True)
def _delta(out, pos, x, y, cx, cy):
    """The zigzag step from the cursor (cx, cy) to (x, y), as two varints."""
    dx, dy = x - cx, y - cy
    if abs(dx) >= 2**31 or abs(dy) >= 2**31:
        raise ValueError("a coordinate step beyond MVT's 32-bit parameters")
    pos = _put(out, pos, ((dx << 1) ^ (dx >> 63)) & 0xFFFFFFFF)
    return _put(out, pos, ((dy << 1) ^ (dy >> 63)) & 0xFFFFFFFF)


@njit(cache=True, nogil=True)
def geometry_commands(xy, arc_off, arc_kind, arc_exterior, feat_arc_off):
    """Every feature's geometry commands (the packed varints of its geometry field), as
    a ragged array (bytes, a length per feature; 0: nothing of it is left to draw).

    ``xy``: the vertices (whole units, int64) of all arcs one after the other; arc ``a``
    is ``xy[arc_off[a]:arc_off[a + 1]]``, of kind ``arc_kind[a]`` (a point, a line or a
    ring), ``arc_exterior[a]`` when it is a polygon's first ring; feature ``f``'s arcs are
    ``feat_arc_off[f]`` to ``feat_arc_off[f + 1]``."""
    n_feat = len(feat_arc_off) - 1
    out = np.empty(10 * len(xy) + 15 * len(arc_kind) + 1, np.uint8)
    lens = np.zeros(n_feat, np.int64)
    keep = np.empty(len(xy), np.int64)  # the vertices of one arc that are written
    pos = 0
    for f in range(n_feat):
        start, cx, cy = pos, 0, 0  # the cursor starts at (0, 0) in each feature
        exterior_kept = False
        a, end = feat_arc_off[f], feat_arc_off[f + 1]
        while a < end:
            kind = arc_kind[a]
            if kind == POINT:  # all the feature's points: one MoveTo
                b = a
                while b < end and arc_kind[b] == POINT:
                    b += 1
                v0, v1 = arc_off[a], arc_off[b]
                if v1 > v0:
                    pos = _put(out, pos, MOVE_TO | ((v1 - v0) << 3))
                    for v in range(v0, v1):
                        pos = _delta(out, pos, xy[v, 0], xy[v, 1], cx, cy)
                        cx, cy = xy[v, 0], xy[v, 1]
                a = b
                continue
            v0, v1 = arc_off[a], arc_off[a + 1]
            if kind == RING:
                v1 -= 1  # the closing coordinate: ClosePath says it
            n = 0
            for v in range(v0, v1):  # not a repeat of the vertex before
                if v == v0 or xy[v, 0] != xy[v - 1, 0] or xy[v, 1] != xy[v - 1, 1]:
                    keep[n] = v
                    n += 1
            if kind == RING and n > 1 and xy[keep[n - 1], 0] == xy[keep[0], 0] \
                    and xy[keep[n - 1], 1] == xy[keep[0], 1]:
                n -= 1  # a doubled closing coordinate
            ok = n >= (3 if kind == RING else 2)
            if kind == RING:
                if arc_exterior[a]:
                    exterior_kept = ok
                elif not exterior_kept:  # a hole of a polygon that is left out
                    ok = False
            if ok:
                pos = _put(out, pos, MOVE_TO | (1 << 3))
                for j in range(n):
                    if j == 1:
                        pos = _put(out, pos, LINE_TO | ((n - 1) << 3))
                    x, y = xy[keep[j], 0], xy[keep[j], 1]
                    pos = _delta(out, pos, x, y, cx, cy)
                    cx, cy = x, y
                if kind == RING:
                    pos = _put(out, pos, CLOSE_PATH | (1 << 3))
            a += 1
        lens[f] = pos - start
    return out[:pos], lens


@njit(cache=True, nogil=True)
def number_values(codes, table_size):
    """The values the cells ``codes`` (features x keys, indices into a value table of
    ``table_size``, -1 for none) use: (the values in the order they are written, and
    each cell's index among them, -1 for none). First seen (key by key, feature by
    feature), then the most used first."""
    n_feat, n_keys = codes.shape
    place = np.full(table_size, -1, np.int64)  # a value's place in the order first seen
    seen = np.empty(n_feat * n_keys, np.int64)
    uses = np.zeros(n_feat * n_keys, np.int64)
    n = 0
    for k in range(n_keys):
        for f in range(n_feat):
            c = codes[f, k]
            if c >= 0:
                if place[c] < 0:
                    place[c] = n
                    seen[n] = c
                    n += 1
                uses[place[c]] += 1
    by_use = np.argsort(-uses[:n], kind="mergesort")  # stable: ties stay first seen
    rank = np.empty(n, np.int64)
    for r in range(n):
        rank[by_use[r]] = r
    index = np.full((n_feat, n_keys), -1, np.int64)
    for f in range(n_feat):
        for k in range(n_keys):
            c = codes[f, k]
            if c >= 0:
                index[f, k] = rank[place[c]]
    return seen[:n][by_use], index


@njit(cache=True, nogil=True)
def write_features(ids, kinds, geometry, geometry_lens, key_of_column, index):
    """The layer's features fields (field 2, each a Feature message), one after the
    other: id (1, when >= 0), tags (2, packed key and value indices; none, none
    written), type (3) and geometry (4, packed). ``key_of_column`` is each property
    column's key index (-1: no feature has it); ``index`` the cells' value indices."""
    n_feat, n_cols = index.shape
    size = len(geometry)
    for f in range(n_feat):
        size += 40 + 20 * n_cols
    out = np.empty(size, np.uint8)
    pos, g = 0, 0
    for f in range(n_feat):
        tags = 0
        for c in range(n_cols):
            if index[f, c] >= 0:
                tags += _size(key_of_column[c]) + _size(index[f, c])
        glen = geometry_lens[f]
        body = 2 + 1 + _size(glen) + glen
        if ids[f] >= 0:
            body += 1 + _size(ids[f])
        if tags:
            body += 1 + _size(tags) + tags
        out[pos] = (2 << 3) | 2
        pos = _put(out, pos + 1, body)
        if ids[f] >= 0:
            out[pos] = (1 << 3) | 0
            pos = _put(out, pos + 1, ids[f])
        if tags:
            out[pos] = (2 << 3) | 2
            pos = _put(out, pos + 1, tags)
            for c in range(n_cols):
                if index[f, c] >= 0:
                    pos = _put(out, pos, key_of_column[c])
                    pos = _put(out, pos, index[f, c])
        out[pos] = (3 << 3) | 0
        out[pos + 1] = kinds[f]
        out[pos + 2] = (4 << 3) | 2
        pos = _put(out, pos + 3, glen)
        out[pos:pos + glen] = geometry[g:g + glen]
        pos += glen
        g += glen
    return out[:pos]


# -- polygons of one ring: simplified and checked without GEOS ----------------------------
# Nearly every building in a tile is one ring, well inside the tile's buffer. GEOS would
# check it (rounded), simplify it, check it again and orient it: four calls, ~9 µs a
# feature. These loops do the same, exactly, and say which rings they could not vouch
# for, which then take GEOS's way.

@njit(cache=True, nogil=True)
def _to_segment(px, py, ax, ay, bx, by):
    """The distance from (px, py) to the segment a-b, computed as GEOS computes it
    (Distance::pointToSegment), operation for operation: Douglas-Peucker's choices at
    exactly the tolerance come out as GEOS's."""
    if ax == bx and ay == by:
        return np.sqrt((px - ax) * (px - ax) + (py - ay) * (py - ay))
    len2 = (bx - ax) * (bx - ax) + (by - ay) * (by - ay)
    r = ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / len2
    if r <= 0.0:
        return np.sqrt((px - ax) * (px - ax) + (py - ay) * (py - ay))
    if r >= 1.0:
        return np.sqrt((px - bx) * (px - bx) + (py - by) * (py - by))
    s = ((ay - py) * (bx - ax) - (ax - px) * (by - ay)) / len2
    return abs(s) * np.sqrt(len2)


@njit(cache=True, nogil=True)
def _douglas_peucker(x, y, tolerance, use, stack):
    """Douglas-Peucker on a closed ring, as GEOS's simplifier does it for a polygon's
    ring: ``use`` marks the vertices kept (``stack``: room for the sections to do)."""
    n = len(x)
    use[:n] = True
    stack[0, 0], stack[0, 1], top = 0, n - 1, 1
    while top:
        top -= 1
        i, j = stack[top, 0], stack[top, 1]
        if i + 1 == j:
            continue
        far, at = -1.0, i
        for k in range(i + 1, j):
            d = _to_segment(x[k], y[k], x[i], y[i], x[j], y[j])
            if d > far:
                far, at = d, k
        if far <= tolerance:
            use[i + 1:j] = False
        else:
            stack[top, 0], stack[top, 1] = i, at
            stack[top + 1, 0], stack[top + 1, 1] = at, j
            top += 2


@njit(cache=True, nogil=True)
def _orientation(ax, ay, bx, by, cx, cy):
    """The sign of the turn a-b-c (whole numbers: exact)."""
    d = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    return (d > 0) - (d < 0)


@njit(cache=True, nogil=True)
def _on(ax, ay, bx, by, px, py):
    """Whether p, on the line a-b, lies on the segment a-b."""
    return min(ax, bx) <= px <= max(ax, bx) and min(ay, by) <= py <= max(ay, by)


@njit(cache=True, nogil=True)
def _meet(ax, ay, bx, by, cx, cy, dx, dy):
    """Whether the segments a-b and c-d have a point in common."""
    if max(ax, bx) < min(cx, dx) or max(cx, dx) < min(ax, bx) or \
            max(ay, by) < min(cy, dy) or max(cy, dy) < min(ay, by):
        return False  # their boxes are apart: most pairs, at once
    o1, o2 = _orientation(ax, ay, bx, by, cx, cy), _orientation(ax, ay, bx, by, dx, dy)
    o3, o4 = _orientation(cx, cy, dx, dy, ax, ay), _orientation(cx, cy, dx, dy, bx, by)
    if o1 * o2 < 0 and o3 * o4 < 0:
        return True  # they cross
    return (o1 == 0 and _on(ax, ay, bx, by, cx, cy)) or \
        (o2 == 0 and _on(ax, ay, bx, by, dx, dy)) or \
        (o3 == 0 and _on(cx, cy, dx, dy, ax, ay)) or \
        (o4 == 0 and _on(cx, cy, dx, dy, bx, by))


@njit(cache=True, nogil=True)
def _valid_ring(x, y, px, py):
    """Whether a closed ring of whole numbers (repeats allowed) is a valid polygon's
    shell, as GEOS's IsValidOp says: 3 distinct vertices or more, and no two edges
    meet but neighbours at their shared vertex (no crossing, touching or doubling
    back). None beyond 256 vertices: the test takes the square of their number.
    (``px``, ``py``: room for the vertices.)"""
    n = len(x)
    m = 0
    for i in range(n - 1):  # without repeats and without the closing vertex
        xi, yi = np.int64(x[i]), np.int64(y[i])
        if m == 0 or xi != px[m - 1] or yi != py[m - 1]:
            px[m], py[m] = xi, yi
            m += 1
    while m > 1 and px[m - 1] == px[0] and py[m - 1] == py[0]:
        m -= 1
    if m < 3 or m > 256:
        return False
    for i in range(m):
        ax, ay, bx, by = px[i], py[i], px[(i + 1) % m], py[(i + 1) % m]
        for j in range(i + 1, m):
            cx, cy, dx, dy = px[j], py[j], px[(j + 1) % m], py[(j + 1) % m]
            if j == i + 1 or (i == 0 and j == m - 1):
                # neighbours: they share a vertex, and must not fold back over each other
                if j == i + 1:
                    sx, sy, ux, uy, vx, vy = bx, by, ax, ay, dx, dy
                else:
                    sx, sy, ux, uy, vx, vy = ax, ay, bx, by, cx, cy
                if _orientation(sx, sy, ux, uy, vx, vy) == 0 and \
                        (ux - sx) * (vx - sx) + (uy - sy) * (vy - sy) > 0:
                    return False
            elif _meet(ax, ay, bx, by, cx, cy, dx, dy):
                return False
    return True


@njit(cache=True, nogil=True)
def simplified_rings(xy, ring_off, tolerance):
    """Polygons of one ring on the tile's grid (``xy``: whole numbers as floats; ring
    ``r`` is ``xy[ring_off[r]:ring_off[r + 1]]``, closed), each checked, simplified to
    ``tolerance``, checked again and wound counter-clockwise, as GEOS would give them
    back (``mvt._tile_geometry``). Returns (the rings' vertices, their offsets, and per
    ring whether it is done: a ring not done, valid or not, is left to GEOS)."""
    n_rings = len(ring_off) - 1
    out = np.empty((len(xy), 2), np.float64)
    off = np.zeros(n_rings + 1, np.int64)
    done = np.zeros(n_rings, np.bool_)
    use = np.empty(len(xy), np.bool_)  # room the loops below work in
    stack = np.empty((len(xy), 2), np.int64)
    px, py = np.empty(len(xy), np.int64), np.empty(len(xy), np.int64)
    pos = 0
    for r in range(n_rings):
        x, y = xy[ring_off[r]:ring_off[r + 1], 0], xy[ring_off[r]:ring_off[r + 1], 1]
        n = len(x)
        if n < 4 or not _valid_ring(x, y, px, py):
            off[r + 1] = pos
            continue
        _douglas_peucker(x, y, tolerance, use, stack)
        start = pos
        for k in range(n):
            if use[k]:
                out[pos, 0], out[pos, 1] = x[k], y[k]
                pos += 1
        kept = pos - start
        # the ring's start goes too when it lies on the line of its neighbours (GEOS 3.14:
        # even from a triangle, which then collapses)
        if kept > 3 and _to_segment(out[start, 0], out[start, 1], out[pos - 2, 0],
                                    out[pos - 2, 1], out[start + 1, 0],
                                    out[start + 1, 1]) <= tolerance:
            for k in range(start, pos - 2):
                out[k, 0], out[k, 1] = out[k + 1, 0], out[k + 1, 1]
            out[pos - 2, 0], out[pos - 2, 1] = out[start, 0], out[start, 1]
            pos -= 1
            kept -= 1
        rx, ry = out[start:pos, 0], out[start:pos, 1]
        if kept < 4 or not _valid_ring(rx, ry, px, py):
            pos = start
            off[r + 1] = pos
            continue
        area = 0.0
        for k in range(kept - 1):
            area += rx[k] * ry[k + 1] - rx[k + 1] * ry[k]
        if area < 0:
            for k in range(kept // 2):
                a, b = start + k, pos - 1 - k
                out[a, 0], out[b, 0] = out[b, 0], out[a, 0]
                out[a, 1], out[b, 1] = out[b, 1], out[a, 1]
        done[r] = True
        off[r + 1] = pos
    return out[:pos], off, done
