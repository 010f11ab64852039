"""The GeoPackage's vector tiles: the R*Tree, then shapely and numpy (``mvt``'s rule).

The tile's features are read from the R*Tree of the column cut (the source CRS when the
grid is in it, else CRS84), leaving out specks before their rows are read; their
geometry is made by ``mvt._tile_geometry``; ``mvt_encode`` encodes them, with the
property values the import encoded once (``GeoPackageStore.tile_values``).
"""
from __future__ import annotations

import math
import threading

import numpy as np
import shapely

from oup.store.base import FID, GEOM, GEOM84, VALUES
from oup.store.cql import quote
from oup.store.geometry import gpb_wkb
from oup.store.mvt import (_MERCATOR_RADIUS, EXTENT, TileQuery, _grid_geometry, _tile_geometry,
                           native_grid)
from oup.store.mvt_encode import CodedProperties, encode_layer

# One GeoPackage tile at a time in a process. Cutting one is CPU work that lets go of
# Python's lock (the GIL) hundreds of times, in every GEOS, numpy and SQLite call: with
# four threads cutting at once, handing it over cost 65% more CPU a tile than it won
# (measured in-process, 200,000 buildings, z14-16: 31 against 19 ms, and 42 against 53
# tiles/s). The workers, a process each, still cut side by side.
_CUTTING = threading.Lock()


def cut(store, q: TileQuery) -> bytes:
    """Layer ``q.layer`` of one tile from the GeoPackage ``store`` (its ``cut_tile``)."""
    with _CUTTING:
        return _cut(store, q)


def _cut(store, q: TileQuery) -> bytes:
    meta = store.layer(q.source)
    types = dict(meta["fields"])
    native = native_grid(meta, q)
    t = quote(q.source)
    rtree = quote(f"rtree_{q.source}_{GEOM if native else GEOM84}")
    minx, miny, maxx, maxy = q.bounds if native else q.envelope84
    specks, params = _rtree_specks(meta, q, native)

    def read(columns: str) -> list[tuple]:
        return store.execute(
            f"SELECT f.{FID}, f.{GEOM if native else GEOM84}{columns} FROM {rtree} r "
            f"JOIN {t} f ON f.{FID} = r.id "
            f"WHERE r.minx <= ? AND r.maxx >= ? AND r.miny <= ? AND r.maxy >= ?{specks}",
            [maxx, minx, maxy, miny, *params])

    # the properties as numbers into the collection's tile values, made at import; a
    # row without them (imported before them, or edited since) has its values read
    table = store.tile_values(q.layer) if q.properties else None
    rows = read(f", f.{VALUES}") if table is not None else None
    if rows is None or any(r[2] is None for r in rows):
        table, rows = None, read("".join(f", f.{quote(n)}" for n in q.properties))
    if not rows:
        return b""
    wkbs = np.array([None if r[1] is None else bytes(gpb_wkb(r[1]) if native else r[1])
                     for r in rows], dtype=object)
    picked, geoms = (_grid_geometry if q.grid else _tile_geometry)(shapely.from_wkb(wkbs), q,
                                                                  native)
    if len(picked) == 0:
        return b""
    ids = np.fromiter((rows[i][0] for i in picked), np.int64, len(picked))
    if table is not None:
        names = [n for n, _ in meta["fields"]]
        codes = np.frombuffer(b"".join(rows[i][2] for i in picked), "<i4")
        codes = codes.reshape(len(picked), len(names))[:, [names.index(n) for n in q.properties]]
        props = CodedProperties(list(q.properties), codes, table)
    else:  # the features' columns as they came
        columns = list(zip(*(rows[i] for i in picked)))[2:]
        props = {n: tile_column(col, types[n]) for n, col in zip(q.properties, columns)}
    return encode_layer(q.layer, geoms, ids=ids, properties=props, extent=EXTENT)


# geometry types whose every feature has an extent (a point has none, and is never a speck)
_EXTENDED = {"POLYGON", "MULTIPOLYGON", "LINESTRING", "MULTILINESTRING"}


def _rtree_specks(meta: dict, q: TileQuery, native: bool) -> tuple[str, list[float]]:
    """A condition on the R*Tree that leaves out features under a pixel both ways before
    their rows are read: at an overview zoom nearly every building is such a speck, and
    reading its row would cost more than all the rest of the tile. It never leaves out a
    feature the exact test keeps: the R*Tree rounds its boxes outwards, and a degree is
    counted as the most grid units it can be over the tile (web mercator stretches
    latitude most at the poleward edge). Grids other than the source's, web mercator and
    CRS84 take half a pixel over the tile's average, loosely."""
    if (meta.get("geometry_type") or "").upper() not in _EXTENDED:
        return "", []
    e, share = q.envelope84, 1.0
    if native or q.crs == "OGC:CRS84":
        per_x = per_y = 1.0  # the index is in the grid's units
    elif q.crs == "EPSG:3857":
        # the poleward edge, one tile's height further for features across it
        lat = min(90.0, max(abs(e[1]), abs(e[3])) + e[3] - e[1])
        per_x = 180 / (math.pi * _MERCATOR_RADIUS)  # degrees per metre along a parallel
        per_y = per_x * math.cos(math.radians(lat))
    else:  # the index is in CRS84: degrees per grid unit, over this tile
        if e[3] - e[1] > 10:  # a tile this tall: the scale varies too much across it
            return "", []
        per_x = (e[2] - e[0]) / (q.bounds[2] - q.bounds[0])
        per_y = (e[3] - e[1]) / (q.bounds[3] - q.bounds[1])
        share = 0.5
    share *= 1 - 1e-9  # for the rounding of the test in tile units
    return " AND (r.maxx - r.minx >= ? OR r.maxy - r.miny >= ?)", \
        [share * q.speck_size * per_x, share * q.speck_size * per_y]


def tile_column(values, field_type: str) -> list:
    """A column as a tile says it: a GeoPackage's booleans are integers, a tile's are
    true and false."""
    if field_type == "boolean":
        return [None if v is None else bool(v) for v in values]
    return list(values)
