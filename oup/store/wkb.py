"""GeoJSON geometries read straight from the WKB the stores hold, by a compiled loop.

A page of features answered the long way (WKB to shapely geometries, to their
coordinates, to nested lists) spent a third of its CPU in a dozen vectorised calls
whose fixed cost outweighs the work for the 20 to 100 features of a page (43
buildings: 0.46 ms). ``read`` walks the WKB of all of them once and hands back the
coordinates and, at each level (geometry, part, ring), how many of the next it holds;
numpy and list slicing nest them (0.06 ms).

It reads the six plain types in little-endian WKB, 2D or with Z (ISO or extended
flags), which is what the stores write. Anything else (a geometry collection, M
values, an empty geometry or part, big-endian) is marked unread, for shapely.
"""
from __future__ import annotations

import numpy as np
from numba import njit

NAMES = {1: "Point", 2: "LineString", 3: "Polygon", 4: "MultiPoint",
         5: "MultiLineString", 6: "MultiPolygon"}


@njit(cache=True, nogil=True)
def _u32(data, at):
    return np.int64(data[at]) | (np.int64(data[at + 1]) << 8) | \
        (np.int64(data[at + 2]) << 16) | (np.int64(data[at + 3]) << 24)


@njit(cache=True, nogil=True)
def _head(data, at, end):
    """(type 1-6, dimensions) of the geometry whose header is at ``at``; (0, 0) if it is
    not one this reader reads."""
    if end - at < 5 or data[at] != 1:  # little-endian only
        return 0, 0
    code = _u32(data, at + 1)
    if code & 0x80000000 and not code & 0x60000000:  # extended WKB: Z, no M, no SRID
        code, dims = code & 0xFF, 3
    elif 1000 < code < 1007:  # ISO WKB with Z
        code, dims = code - 1000, 3
    else:
        dims = 2
    if code < 1 or code > 6:
        return 0, 0
    return code, dims


@njit(cache=True, nogil=True)
def read(data, starts):
    """Read the geometries ``data[starts[g]:starts[g + 1]]``. Returns (per geometry its
    type (0: not read) and dimensions; all coordinates, flat; per geometry read its
    parts; per part its rings (lines, points: one); per ring its points)."""
    n = len(starts) - 1
    kind = np.zeros(n, np.int64)
    dims = np.zeros(n, np.int64)
    coords = np.empty(len(data) // 8 + 1, np.float64)
    raw = coords.view(np.uint8)  # coordinates are copied in as the bytes they are
    parts = np.zeros(n, np.int64)
    rings = np.empty(len(data) // 9 + 1, np.int64)
    points = np.empty(len(data) // 4 + 1, np.int64)
    nc = nr = npt = 0
    for g in range(n):
        at, end = starts[g], starts[g + 1]
        code, d = _head(data, at, end)
        if code == 0:
            continue
        c0, r0, p0 = nc, nr, npt  # where to go back to if it cannot be read after all
        multi = code > 3
        count = 1
        if multi:
            if end - at < 9:
                continue
            count = _u32(data, at + 5)
            at += 9
        ok = count > 0
        for _ in range(count):
            if not ok:
                break
            if multi:
                part, pd = _head(data, at, end)
                if part != code - 3 or pd != d:
                    ok = False
                    break
            at += 5
            if code == 1 or code == 4:  # a point: its coordinates (NaN: an empty one)
                if end - at < 8 * d or np.isnan(data[at:at + 8].view(np.float64)[0]):
                    ok = False
                    break
                raw[8 * nc:8 * (nc + d)] = data[at:at + 8 * d]
                nc += d
                at += 8 * d
                rings[nr] = 1
                points[npt] = 1
                nr += 1
                npt += 1
                continue
            n_rings = 1
            if code == 3 or code == 6:
                if end - at < 4:
                    ok = False
                    break
                n_rings = _u32(data, at)
                at += 4
                if n_rings == 0:
                    ok = False
                    break
            rings[nr] = n_rings
            nr += 1
            for _ in range(n_rings):
                if end - at < 4:
                    ok = False
                    break
                m = _u32(data, at)
                at += 4
                size = 8 * d * m
                if m == 0 or end - at < size:
                    ok = False
                    break
                raw[8 * nc:8 * nc + size] = data[at:at + size]
                nc += d * m
                at += size
                points[npt] = m
                npt += 1
        if ok:
            kind[g], dims[g], parts[g] = code, d, count
        else:
            nc, nr, npt = c0, r0, p0
    return kind, dims, coords[:nc], parts, rings[:nr], points[:npt]


def geojson(wkbs: list, transform=None) -> list:
    """GeoJSON geometry objects (dicts) of ``wkbs`` (None where there is none), as
    shapely would write them; ``transform(x, y) -> (x, y)`` (arrays) moves the
    coordinates first. A geometry this reader does not read is ``False``: the caller
    asks shapely for it."""
    lens = np.fromiter((0 if w is None else len(w) for w in wkbs), np.int64, len(wkbs))
    starts = np.zeros(len(wkbs) + 1, np.int64)
    np.cumsum(lens, out=starts[1:])
    data = np.frombuffer(b"".join(w for w in wkbs if w is not None), np.uint8)
    kind, dims, coords, parts, rings, points = read(data, starts)
    out: list = [None if w is None else False for w in wkbs]
    done = np.flatnonzero(kind)
    if len(done) == 0:
        return out
    if (dims[done] != dims[done[0]]).any():  # 2D and 3D together: rare, shapely's
        return out
    xy = coords.reshape(-1, int(dims[done[0]]))
    if transform is not None and len(xy):
        xy = xy.copy()
        xy[:, 0], xy[:, 1] = transform(xy[:, 0], xy[:, 1])
    nested = xy.tolist()
    for counts in (points, rings, parts[done]):  # points into rings, into parts, into geometries
        ends = np.cumsum(counts).tolist()
        nested = [nested[a:b] for a, b in zip([0] + ends[:-1], ends)]
    for g, k, c in zip(done.tolist(), kind[done].tolist(), nested):
        if k == 1:
            c = c[0][0][0]
        elif k == 2:
            c = c[0][0]
        elif k == 3:
            c = c[0]
        elif k == 4:
            c = [p[0][0] for p in c]
        elif k == 5:
            c = [p[0] for p in c]
        out[g] = {"type": NAMES[k], "coordinates": c}
    return out
