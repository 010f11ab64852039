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

The overview has a level per zoom of ``LEVELS``: ``<id>__overview`` for zoom 12, and
``<id>__overview_z11``, ``<id>__overview_z10``, each made from the finer level's blocks
of a cell by the same rule at its own zoom (merged closer than its tile unit, simplified
to it, its specks left out): a zoom-10 tile covers 16 times the ground of a zoom-12 one,
and drawn from zoom 12's blocks it read and cut thousands of them that its pixels merge
anyway (it was the slowest tile; ``benchmarks/README.md``). Each level's blocks are
stored on the grid of its zoom's tile units, each valid there and wound as MVT wants
(``_on_grid``): a WebMercatorQuad tile of that zoom then moves a block inside it into
its units instead of clipping and repairing it (``on_grid``, ``mvt.TileQuery.grid``),
which was three quarters of such a tile's CPU.

Tiles whose pixel is at least ``OVERVIEW_ZOOM``'s (``mvt.tile_layer`` asks ``use``) are
cut from the coarsest level made for their zoom, by the same rule as any tile, if it was
made at the collection's last import (an import that makes none, or a tile cut while it
is being made, cuts the low zooms from the features themselves). A feature written
through the API (OGC API Features Part 4) has the blocks about its old and new geometry
drawn again, at every level (``refresh``), beside the write's answer
(``oup.writes.after.overview_updater``), and then the cached low-zoom tiles there are
dropped, so the next tile cut there is right. The next import makes the whole overview
again.
"""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, replace

import numpy as np
import shapely

from oup.store.base import Change, Feature, Field, Query, UnknownCollection
from oup.store.mercator import RADIUS, crs84, web_mercator

SUFFIX = "__overview"
OVERVIEW_ZOOM = 12  # the deepest zoom drawn from the overview
LEVELS = (12, 11, 10)  # the zooms a level is made for, finest first; coarser ones take 10's
CELL_ZOOM = 14      # a cell: what a block belongs to (its merges stay within one)
_CELL = 2 * math.pi * RADIUS / 2 ** CELL_ZOOM
_HALF = math.pi * RADIUS
# "zoom": the zoom whose grid of tile units the block is on (an overview made before the
# blocks were put on it has no such field, and its tiles are cut as any)
_FIELDS = [Field("block", "string"), Field("cell", "string"), Field("zoom", "integer")]
POLYGONS = ("POLYGON", "MULTIPOLYGON")
_PAGE = 10_000
_CLOSURE = 8  # rounds of taking in the blocks a redrawn one may join


def name(cid: str, level: int = OVERVIEW_ZOOM) -> str:
    """The store's collection of one level of the overview of ``cid``."""
    return cid + SUFFIX + ("" if level == OVERVIEW_ZOOM else f"_z{level}")


def _pixel(level: int) -> float:
    """A display pixel at zoom ``level``, in web mercator metres."""
    return 2 * math.pi * RADIUS / 2 ** level / 256


def use(store, cid: str, envelope84: tuple) -> str | None:
    """The overview to cut a tile covering ``envelope84`` (CRS84) from: the coarsest
    level there is whose pixel is at most the tile's, for a tile whose pixel is at least
    one of ``OVERVIEW_ZOOM``; else None."""
    width = envelope84[2] - envelope84[0]
    fits = [level for level in sorted(LEVELS) if width * 2 ** level >= 360 * (1 - 1e-6)]
    if not fits:
        return None
    try:
        source = store.layer(cid)
    except UnknownCollection:
        return None
    for level in fits:  # coarsest first; one an older import did not make: the next
        try:
            made = store.layer(name(cid, level))
        except UnknownCollection:
            continue
        # made at the collection's last import (after it), not at an earlier one
        return name(cid, level) if made["imported"] >= source["imported"] else None
    return None


def on_grid(store, table: str, q) -> bool:
    """Whether the tile ``q`` (a ``mvt.TileQuery``) is on the grid the overview level
    ``table`` is stored on: a WebMercatorQuad tile of the level's own zoom."""
    level = int(table.rpartition("_z")[2]) if table.rpartition("_z")[0].endswith(SUFFIX) \
        else OVERVIEW_ZOOM
    width = q.bounds[2] - q.bounds[0]
    return q.crs == "EPSG:3857" and abs(width * 2 ** level / (2 * _HALF) - 1) < 1e-9 and \
        any(f == "zoom" for f, _ in store.layer(table)["fields"])


def write(store, cid: str, geoms84: list) -> dict[int, int]:
    """Make the overview of collection ``cid`` (its polygons' CRS84 geometries, as just
    imported) anew, every level; the number of blocks of each."""
    xy = _mercator(np.array([g for g in geoms84 if g is not None], dtype=object))
    cells, made = _cells(xy), {}
    for level in LEVELS:  # each from the finer one's blocks (the features', for the finest)
        features = [f for key in np.unique(cells)
                    for f in _cell_blocks(key, xy[cells == key], level)]
        store.write_collection(name(cid, level), "EPSG:3857", _FIELDS, features,
                               geometry_type="POLYGON", id_field="block",
                               description=f"the zoom-{level} overview of {cid}")
        made[level] = len(features)
        xy = np.array([f.geometry for f in features], dtype=object)
        cells = np.array([f.properties["cell"] for f in features], dtype=str)
    return made


def refresh(store, cid: str, boxes84: list[list[float]]) -> list[list[float]]:
    """Draw the blocks of the overview of ``cid`` about ``boxes84`` (features written,
    before and after) again from the features there now, at every level; the CRS84
    boxes of the ground drawn again (none if ``cid`` has no overview).

    Only the blocks a write can change are drawn: in the cell of the box's centre (a
    feature's cell), the blocks within a tile unit of the box, and then those within a
    unit of the features read for them, until no more join; each coarser level so about
    what the finer one drew. A cell of a dense city holds thousands of buildings; a
    write changes one or two of its blocks. Boxes whose blocks meet are drawn together,
    and each level's blocks are written in one transaction (a burst of writes: one
    commit a level, not one a block), before the coarser level is drawn from them."""
    try:
        store.layer(name(cid))
    except UnknownCollection:
        return []
    grounds = []  # (cell, web mercator ground): what is drawn again, together
    for box in boxes84:
        (x0, x1), (y0, y1) = web_mercator(np.array([box[0], box[2]]),
                                          np.array([box[1], box[3]]))
        changed = shapely.box(x0, y0, x1, y1)
        grounds.append((_cells(np.array([changed]))[0], changed))
    source = cid
    for level in LEVELS:  # each from the finer one, as ``write`` makes them
        ov = name(cid, level)
        try:
            store.layer(ov)
        except UnknownCollection:  # a level an older import did not make
            break
        areas = [_about(store, source, ov, key, ground, level) for key, ground in grounds]
        changes: list[Change] = []
        grounds = [_drawn(group, level, changes) for group in _together(areas)]
        if changes:
            store.write_features(ov, changes, versions=False, answered=False)
        source = ov
    return [list(_box84(ground)) for _, ground in grounds]


@dataclass
class _Area:
    """What a write may change at one level: its cell, the ground about it (web
    mercator), the level's blocks there (id -> geometry) and the polygons of the finer
    source they are drawn again from (id -> geometry)."""
    cell: str
    reach: object
    blocks: dict
    own: dict


def _about(store, source: str, ov: str, key: str, changed, level: int) -> _Area:
    """The blocks of cell ``key`` of level ``ov`` a change in ``changed`` (web mercator)
    redraws, and what they are drawn from out of ``source`` (the features, or the finer
    level's blocks); read only."""
    unit = _pixel(level) / 16
    reach = changed.buffer(unit, join_style="mitre")
    blocks: dict = {}
    own: dict = {}
    for n in range(_CLOSURE):  # bounded: each round takes in more of one cell, or stops
        known = len(blocks)
        for bid, g in _read(store, ov, reach, Query(equals={"cell": key})).items():
            if bid not in blocks and g.intersects(reach):
                blocks[bid] = g
        if n and len(blocks) == known:
            break  # every polygon read is in a block already taken in
        near = shapely.union_all([reach, *blocks.values()]).buffer(unit, join_style="mitre")
        own = _polygons(store, source, key, near)
        # a block within a unit of these may join them: the next round takes it in
        reach = shapely.union_all([near, *own.values()]).buffer(unit, join_style="mitre")
    return _Area(key, reach, blocks, own)


def _together(areas: list[_Area]) -> list[list[_Area]]:
    """The areas that share a block or a polygon, in groups (each drawn at once: drawn
    apart, the second would redraw blocks the first has replaced)."""
    groups: list[list[_Area]] = []
    for a in areas:
        joined = [g for g in groups if any(
            b.cell == a.cell and (b.blocks.keys() & a.blocks.keys() or b.own.keys() & a.own.keys())
            for b in g)]
        groups = [g for g in groups if all(g is not j for j in joined)]
        groups.append([a] + [b for g in joined for b in g])
    return groups


def _drawn(group: list[_Area], level: int, changes: list[Change]) -> tuple[str, object]:
    """The blocks of ``group`` drawn again, their changes added to ``changes``; its cell
    and the ground drawn again (web mercator)."""
    key = group[0].cell
    blocks = {bid: g for a in group for bid, g in a.blocks.items()}
    own = list({fid: g for a in group for fid, g in a.own.items()}.values())
    drawn = _cell_blocks(key, np.array(own, dtype=object), level) if own else []
    old = sorted(blocks)  # the blocks again under their old ids while they last
    for n, block in enumerate(drawn):
        bid = old[n] if n < len(old) else f"{key}_{uuid.uuid4().hex[:10]}"
        block.properties["block"] = bid
        changes.append(Change("replaced" if n < len(old) else "created", bid, block))
    changes += [Change("deleted", bid, None) for bid in old[len(drawn):]]
    return key, shapely.union_all([*(a.reach for a in group), *blocks.values(),
                                   *(b.geometry for b in drawn)])


def _polygons(store, source: str, key: str, near) -> dict:
    """The polygons of cell ``key`` of ``source`` within ``near`` (web mercator), by id:
    a feature's cell is its box's centre's, a block's the one it was drawn for."""
    blocks = SUFFIX in source
    found = _read(store, source, near, Query(equals={"cell": key} if blocks else {}))
    if not found:
        return {}
    ids, xy = list(found), np.array(list(found.values()), dtype=object)
    inside = shapely.intersects(xy, near) & (True if blocks else _cells(xy) == key)
    return {fid: g for fid, g, keep in zip(ids, xy, inside) if keep}


def _read(store, cid: str, area, q: Query) -> dict:
    """The features of ``cid`` (matching ``q``) whose boxes meet those of the parts of
    ``area`` (web mercator): their geometries in web mercator, by id. A part a query:
    areas drawn together may lie apart in a cell, and one box about them would read
    most of it."""
    found: dict = {}
    for part in shapely.get_parts(area):
        for fid, wkb in _everything(store, cid, replace(q, bbox=_box84(part))):
            if wkb is not None:
                found.setdefault(fid, wkb)
    if not found:
        return {}
    xy = _mercator(shapely.from_wkb(list(found.values())))
    return dict(zip(found, xy))


def _box84(geom) -> tuple:
    """The CRS84 box of a web mercator geometry."""
    x0, y0, x1, y1 = geom.bounds
    (lon0, lon1), (lat0, lat1) = crs84(np.array([x0, x1]), np.array([y0, y1]))
    return (float(lon0), float(lat0), float(lon1), float(lat1))


def _everything(store, cid: str, q: Query) -> list[tuple]:
    """``(id, CRS84 WKB)`` of every feature ``q`` matches, a page at a time."""
    found = []
    while True:  # bounded: each page moves on by its length, and pages end
        page = store.shapes(cid, replace(q, limit=_PAGE, offset=len(found)))
        found += page
        if len(page) < _PAGE:
            return found


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


def _cell_blocks(key: str, xy: np.ndarray, level: int) -> list[Feature]:
    """One cell's polygons merged where less than a tile unit of zoom ``level`` apart
    (grown by half a unit, joined, shrunk back), simplified to a unit, specks (under a
    pixel both ways) left out: a feature a block."""
    polys = xy[np.isin(shapely.get_type_id(xy), (3, 6))]
    if not len(polys):
        return []
    pixel = _pixel(level)
    unit = pixel / 16  # a tile unit: a tile is 256 pixels, 4,096 units (``mvt.EXTENT``)
    grown = shapely.buffer(polys, unit / 2, quad_segs=1, join_style="mitre")
    merged = shapely.buffer(shapely.union_all(grown), -unit / 2, quad_segs=1,
                            join_style="mitre")
    parts = _on_grid(shapely.make_valid(shapely.simplify(merged, unit)), level)
    b = shapely.bounds(parts) if len(parts) else np.empty((0, 4))
    keep = parts[((b[:, 2] - b[:, 0]) >= pixel) | ((b[:, 3] - b[:, 1]) >= pixel)]
    return [Feature(p, _crs84(p), {"block": f"{key}_{n}", "cell": key, "zoom": level})
            for n, p in enumerate(keep)]


def _on_grid(geom, level: int) -> np.ndarray:
    """The polygons of ``geom`` (web mercator) on the grid of tile units of zoom ``level``,
    each valid there and wound as a tile wants it (its exterior clockwise on a map, y up),
    so that a tile of that zoom only moves a block inside it (``mvt.TileQuery.grid``).

    Snapped one polygon at a time in whole units, by GEOS's snap rounding, which repairs
    what the rounding pinches (two sides meeting, a thin part collapsing) instead of
    leaving it invalid; in web mercator metres the grid's lines are whole multiples of a
    unit too (the world's edge is 2 ** (level + 11) units from its middle), so a tile's
    units are these less its corner, whole numbers again to the metres' rounding."""
    unit = _pixel(level) / 16
    polys = shapely.get_parts(geom)
    polys = polys[shapely.get_type_id(polys) == 3] if len(polys) else polys
    if not len(polys):
        return polys
    xy = shapely.get_coordinates(polys)
    # valid again in units: scaling may leave a near-touch crossed, which GEOS refuses
    units = _snapped(shapely.make_valid(shapely.set_coordinates(polys, (xy + _HALF) / unit)))
    parts = shapely.get_parts(units)
    parts = parts[(shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)] \
        if len(parts) else parts
    parts = shapely.orient_polygons(parts, exterior_cw=True)
    return shapely.set_coordinates(parts, shapely.get_coordinates(parts) * unit - _HALF)


def _snapped(polys: np.ndarray) -> np.ndarray:
    """Polygons snap-rounded to whole units, each valid; all at once, and one by one
    (repaired by a zero buffer first) when GEOS finds a topology it cannot snap."""
    try:
        return shapely.set_precision(polys, 1.0)
    except shapely.errors.GEOSException:
        pass
    out = np.empty(len(polys), dtype=object)
    for i, p in enumerate(polys):  # rare: a loop over one cell's blocks
        try:
            out[i] = shapely.set_precision(p, 1.0)
        except shapely.errors.GEOSException:
            out[i] = shapely.make_valid(shapely.set_precision(p.buffer(0), 1.0))
    return out


def _crs84(geom):
    """A web mercator geometry in CRS84."""
    xy = shapely.get_coordinates(geom)
    return shapely.set_coordinates(geom, np.column_stack(crs84(xy[:, 0], xy[:, 1])))
