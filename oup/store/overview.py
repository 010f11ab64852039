"""Overviews: what a dense collection of polygons looks like at low zooms, made once.

At zoom 12 and below a vector tile of a city covers tens of thousands of buildings, and
cutting it from the buildings themselves reads every one of them to draw a few thousand
pixels. The overview is a second collection in the store, ``<id>__overview``, made at
import: the polygons of each cell (a WebMercatorQuad tile at ``CELL_ZOOM``, a feature's
cell the one of its box's centre), in web mercator, merged where they touch or nearly
(closer than a tile unit at ``OVERVIEW_ZOOM``), simplified to that unit, and without the
specks a tile at ``OVERVIEW_ZOOM`` would leave out anyway (under a pixel both ways).
Each merged block is one feature (its id ``<cell>_<n>``, with its cell), without the
collection's properties: what a low zoom draws is the city's shape, not one building's
attributes. A block a row, not a cell a multipolygon: the tiles' rules then work per
block (the index leaves out what is a speck at a coarser zoom before it is read, and
nearly every block is a polygon of one ring, which the GeoPackage cuts fastest).

Tiles whose pixel is at least ``OVERVIEW_ZOOM``'s (``mvt.tile_layer`` asks ``use``) are
cut from the overview by the same rule as any tile, if it was made at the collection's
last import (an import that makes none, or a tile cut while it is being made, cuts the
low zooms from the features themselves). A feature written through the API
(OGC API Features Part 4) redoes the cells its old and new geometry touch (``refresh``),
beside the write's answer (``oup.writes.after.overview_updater``: a cell of a dense city
holds thousands of buildings, too many to read again in every write's request), and then
the cached low-zoom tiles of those cells are dropped, so the next tile cut there is right.
The next import makes the whole overview again.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import shapely

from oup.store.base import Change, Feature, Field, Query, UnknownCollection
from oup.store.mercator import RADIUS, crs84, web_mercator

SUFFIX = "__overview"
OVERVIEW_ZOOM = 12  # the deepest zoom drawn from the overview
CELL_ZOOM = 14      # a cell: small enough that redoing one after a write is quick
_PIXEL = 2 * math.pi * RADIUS / 2 ** OVERVIEW_ZOOM / 256  # metres, web mercator
_UNIT = _PIXEL / 16  # a tile unit: a tile is 256 pixels, 4,096 units (``mvt.EXTENT``)
_CELL = 2 * math.pi * RADIUS / 2 ** CELL_ZOOM
_HALF = math.pi * RADIUS
_FIELDS = [Field("block", "string"), Field("cell", "string")]
POLYGONS = ("POLYGON", "MULTIPOLYGON")
_PAGE = 10_000


def name(cid: str) -> str:
    return cid + SUFFIX


def use(store, cid: str, envelope84: tuple) -> str | None:
    """The overview to cut a tile covering ``envelope84`` (CRS84) from: one there is,
    for a tile whose pixel is at least one of ``OVERVIEW_ZOOM``; else None."""
    if (envelope84[2] - envelope84[0]) * 2 ** OVERVIEW_ZOOM < 360 * (1 - 1e-6):
        return None
    try:
        made, source = store.layer(name(cid)), store.layer(cid)
    except UnknownCollection:
        return None
    # made at the collection's last import (after it), not at an earlier one
    return name(cid) if made["imported"] >= source["imported"] else None


def write(store, cid: str, geoms84: list) -> int:
    """Make the overview of collection ``cid`` (its polygons' CRS84 geometries, as just
    imported) anew; the number of blocks drawn."""
    xy = _mercator(np.array([g for g in geoms84 if g is not None], dtype=object))
    cells = _cells(xy)
    features = [f for key in np.unique(cells) for f in _cell_blocks(key, xy[cells == key])]
    store.write_collection(name(cid), "EPSG:3857", _FIELDS, features,
                           geometry_type="POLYGON", id_field="block",
                           description=f"the low zooms of {cid}")
    return len(features)


def refresh(store, cid: str, boxes84: list[list[float]]) -> list[list[float]]:
    """Redo the cells of the overview of ``cid`` that ``boxes84`` (features written,
    before and after) touch, each once, from the features there now; the CRS84 boxes of
    the cells redone (none if ``cid`` has no overview)."""
    try:
        store.layer(name(cid))
    except UnknownCollection:
        return []
    cells = set()
    for box in boxes84:
        x0, y0 = web_mercator(np.array([box[0]]), np.array([box[1]]))
        x1, y1 = web_mercator(np.array([box[2]]), np.array([box[3]]))
        cells.update((col, row)
                     for col in range(int((x0[0] + _HALF) // _CELL), int((x1[0] + _HALF) // _CELL) + 1)
                     for row in range(int((_HALF - y1[0]) // _CELL), int((_HALF - y0[0]) // _CELL) + 1))
    for col, row in sorted(cells):
        _redo_cell(store, cid, col, row)
    # a cell's blocks reach out of it by up to half a cell (a block's cell is its centre's)
    return [list(_cell_box84(col, row, margin=0.5)) for col, row in sorted(cells)]


def _everything(store, cid: str, q: Query) -> list[dict]:
    found = []
    while True:  # bounded: each page moves on by its length, and pages end
        page = store.query(cid, replace(q, limit=_PAGE, offset=len(found), count=False))
        found += page.features
        if len(page.features) < _PAGE:
            return found


def _redo_cell(store, cid: str, col: int, row: int) -> None:
    key = f"{col}_{row}"
    # the features whose box's centre is in the cell lie within a box of the cell plus
    # their own half size: read those about the cell, keep the cell's own
    box = _cell_box84(col, row, margin=0.5)
    found = [shapely.geometry.shape(f["geometry"]) for f in
             _everything(store, cid, Query(bbox=box, select=[])) if f.get("geometry")]
    xy = _mercator(np.array(found, dtype=object))
    blocks = _cell_blocks(key, xy[_cells(xy) == key]) if len(xy) else []
    ov = name(cid)
    had = {f["properties"]["block"] for f in _everything(
        store, ov, Query(equals={"cell": key}, skip_geometry=True))}
    # the cell's blocks again, under their numbers: replaced, added, the rest deleted
    for block in blocks:
        bid = block.properties["block"]
        store.write_feature(ov, Change("replaced" if bid in had else "created", bid, block))
    for bid in had - {b.properties["block"] for b in blocks}:
        store.write_feature(ov, Change("deleted", bid, None))


def _mercator(geoms: np.ndarray) -> np.ndarray:
    """CRS84 polygons in web mercator metres."""
    if not len(geoms):
        return geoms
    flat = shapely.force_2d(geoms)
    xy = shapely.get_coordinates(flat)
    x, y = web_mercator(xy[:, 0], xy[:, 1])
    return shapely.set_coordinates(flat, np.column_stack([x, y]))


def _cells(xy: np.ndarray) -> np.ndarray:
    """The cell of each (web mercator) geometry: that of its box's centre, as 'col_row'."""
    if not len(xy):
        return np.array([], str)
    b = shapely.bounds(xy)
    col = ((b[:, 0] + b[:, 2]) / 2 + _HALF) // _CELL
    row = (_HALF - (b[:, 1] + b[:, 3]) / 2) // _CELL
    return np.char.add(np.char.add(col.astype(np.int64).astype(str), "_"),
                       row.astype(np.int64).astype(str))


def _cell_blocks(key: str, xy: np.ndarray) -> list[Feature]:
    """One cell's polygons merged where less than a tile unit apart (grown by half a unit,
    joined, shrunk back), simplified to a unit, specks left out: a feature a block."""
    polys = xy[np.isin(shapely.get_type_id(xy), (3, 6))]
    if not len(polys):
        return []
    grown = shapely.buffer(polys, _UNIT / 2, quad_segs=1, join_style="mitre")
    merged = shapely.buffer(shapely.union_all(grown), -_UNIT / 2, quad_segs=1,
                            join_style="mitre")
    parts = shapely.get_parts(shapely.make_valid(shapely.simplify(merged, _UNIT)))
    parts = parts[shapely.get_type_id(parts) == 3] if len(parts) else parts
    b = shapely.bounds(parts) if len(parts) else np.empty((0, 4))
    keep = parts[((b[:, 2] - b[:, 0]) >= _PIXEL) | ((b[:, 3] - b[:, 1]) >= _PIXEL)]
    return [Feature(p, _crs84(p), {"block": f"{key}_{n}", "cell": key})
            for n, p in enumerate(keep)]


def _crs84(geom):
    """A web mercator geometry in CRS84."""
    xy = shapely.get_coordinates(geom)
    return shapely.set_coordinates(geom, np.column_stack(crs84(xy[:, 0], xy[:, 1])))


def _cell_box84(col: int, row: int, margin: float) -> tuple:
    """The CRS84 box of a cell, ``margin`` cells wider every way."""
    x0, x1 = (col - margin) * _CELL - _HALF, (col + 1 + margin) * _CELL - _HALF
    y1, y0 = _HALF - (row - margin) * _CELL, _HALF - (row + 1 + margin) * _CELL
    (lon0, lon1), (lat0, lat1) = crs84(np.array([x0, x1]), np.array([y0, y1]))
    return (float(lon0), float(lat0), float(lon1), float(lat1))
