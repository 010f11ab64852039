"""Mapbox Vector Tiles, computed in the store.

One rule for both stores, so a tile is the same whichever answers:
- a feature is in a tile when its geometry intersects the tile (exactly, as
  ``items?bbox=`` selects), and it is clipped to the tile plus a buffer;
- geometry is simplified to the tile's resolution (one unit of its 4096, a sixteenth
  of a display pixel), so low zooms carry what can be drawn, not every vertex; no more,
  as a coarser tolerance folds thin buildings into slivers the encoding then drops;
- a line or polygon smaller than a pixel both ways is dropped (a city at z10 would
  otherwise be 200,000 specks and megabytes); points are always kept;
- a tile that still comes out over ``MAX_TILE_BYTES`` is cut again leaving out what is
  smaller than 2 pixels both ways, then 4, and so on (the smallest features go first, as
  tippecanoe's "drop the smallest as needed" does): a dense city's z12-z13 tiles;
- the feature id is the store's row number; the chosen properties go with it, NULL
  ones (e.g. statistics suppressed by disclosure control) left out, as MVT has no null.

Each store cuts a tile its own way (``TileSource.cut_tile``); this module keeps the
budget and the geometry both Python-side cutters share. PostGIS does it in one
statement (ST_AsMVTGeom, ST_AsMVT; ``postgis.py``); a feature stored on the tile's own
grid (an overview level, ``TileQuery.grid``) is only moved there, by both stores. The
GeoPackage answers the R*Tree (``mvt_gpkg``); compiled loops (``mvt_kernels``) round,
check, simplify and wind the polygons of one ring inside the buffer (nearly every
building), as GEOS would and vertex for vertex the same; shapely 2 (GEOS, vectorised)
does the rest (``_tile_geometry`` here); and ``mvt_encode`` encodes all the tile's
features at once, taking the property values the import encoded once.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import shapely

from oup.store.mercator import RADIUS as _MERCATOR_RADIUS, web_mercator  # noqa: F401

if TYPE_CHECKING:
    from oup.store.protocols import TileSource

EXTENT = 4096  # tile units across a tile
MAX_TILE_BYTES = 500_000  # the promise: no tile beyond this
_MAX_SPECK = 64  # display pixels: thinning stops there (a quarter of the tile)
BUFFER = 64  # units beyond the edge: lines and outlines join up across tiles


@dataclass(frozen=True)
class TileQuery:
    """What a store needs to cut one layer of one tile."""

    layer: str  # the collection id, and the layer's name in the tile
    properties: tuple[str, ...]  # the fields that go in the tile
    bounds: tuple[float, float, float, float]  # the tile, in the grid's CRS
    srid: int  # the grid's CRS as an SRID (4326 for CRS84)
    crs: str  # the grid's CRS as PROJ knows it (EPSG:n, OGC:CRS84)
    envelope84: tuple[float, float, float, float]  # a CRS84 box holding the tile
    speck: float = 1.0  # display pixels: a line or polygon smaller both ways is left out
    table: str = ""  # the collection the features are read from ('': the layer's own)
    # the features are stored on the tile's grid of units, valid there and wound (a level
    # of an overview made for the tile's zoom): one inside the buffer is only moved
    grid: bool = False

    @property
    def source(self) -> str:
        """The collection the tile's features are read from (its overview at low zooms)."""
        return self.table or self.layer

    @property
    def pixel(self) -> float:
        """A display pixel (a tile is 256 wide) in the grid's CRS units."""
        return (self.bounds[2] - self.bounds[0]) / 256

    @property
    def speck_size(self) -> float:
        """The size, both ways, under which a line or polygon is left out (grid units)."""
        return self.pixel * self.speck

    @property
    def unit(self) -> float:
        """A tile unit (a tile is 4096 wide) in the grid's CRS units."""
        return (self.bounds[2] - self.bounds[0]) / EXTENT


def tile_layer(store: TileSource, q: TileQuery) -> bytes:
    """The layer ``q.layer`` of one tile from ``store``, MVT-encoded ('' when empty), at
    most ``MAX_TILE_BYTES`` where leaving out features up to ``_MAX_SPECK`` gets it there.
    A low zoom of a collection with an overview is cut from that (``overview``)."""
    from oup.store import overview

    low = overview.use(store, q.layer, q.envelope84)
    if low:
        q = replace(q, table=low, properties=(), grid=overview.on_grid(store, low, q))
    data = store.cut_tile(q)
    while len(data) > MAX_TILE_BYTES and q.speck < _MAX_SPECK:
        q = replace(q, speck=q.speck * 2)
        data = store.cut_tile(q)
    return data


def import_stamp(store: TileSource, cid: str) -> str:
    """What changes whenever collection ``cid`` is written again (imported), as the store
    says now: tiles cut before it changed are out of date."""
    return store.import_stamp(cid)


def native_grid(meta: dict, q: TileQuery) -> bool:
    """Whether the grid is in the collection's source CRS: then its stored geometry is
    cut as it is (exact, no transform). CRS84 grids read the CRS84 column."""
    return meta["source_srid"] == q.srid and q.crs != "OGC:CRS84"


# -- the geometry of a tile in Python (the GeoPackage's tiles: ``mvt_gpkg``) --------------

def _tile_geometry(geoms: np.ndarray, q: TileQuery, native: bool):
    """(the indices of the features drawn in the tile, their geometry there): in tile units
    (y down), on the tile's grid (whole units), valid, simplified to a unit, clipped to
    the buffer and wound as MVT wants (exterior rings clockwise on screen), so that the
    encoder writes it as it gets it.

    Each GEOS operation costs a few microseconds a feature, and a z14 tile has thousands:
    what can be told from the coordinates in numpy is, and GEOS sees only the features
    that need it (a feature inside the tile meets it; one inside the buffer needs no
    clipping; a polygon of one ring there is done by compiled loops)."""
    xy, at = shapely.get_coordinates(geoms, return_index=True)
    xy = _to_tile_units(xy, q, native)
    count, lo, hi = _extents(xy, at, len(geoms))
    has = count > 0

    def unrounded(which: np.ndarray) -> np.ndarray:  # features (ascending indices), as floats
        return shapely.set_coordinates(geoms[which], xy[np.isin(at, which)])

    # in the tile (exactly, as items?bbox= selects) and no speck: under a pixel both ways
    # (points have no size and are always kept)
    px = EXTENT / 256 * q.speck
    drawn = has & ((shapely.get_dimensions(geoms) == 0) | (hi - lo >= px).any(axis=1))
    inside = (lo >= 0).all(axis=1) & (hi <= EXTENT).all(axis=1)
    edge = np.flatnonzero(drawn & ~inside)
    drawn[edge] = shapely.intersects(unrounded(edge), shapely.box(0, 0, EXTENT, EXTENT))
    picked = np.flatnonzero(drawn)
    if len(picked) == 0:
        return picked, geoms[:0]
    # what lies beyond the buffer is cut off (GEOS's way, below)
    out = (lo[picked] < -BUFFER).any(axis=1) | (hi[picked] > EXTENT + BUFFER).any(axis=1)
    # A polygon of one ring inside the buffer (nearly every building) is rounded,
    # checked, simplified and wound by compiled loops that give what GEOS's way gives;
    # what they cannot vouch for takes GEOS's way.
    from oup.store.mvt_kernels import simplified_rings

    one = picked[~out & _one_ring(geoms[picked])]
    ring_xy, ring_off, done = simplified_rings(np.rint(xy[np.isin(at, one)]),
                                               np.r_[0, np.cumsum(count[one])], 1.0)
    compiled = np.isin(picked, one[done])
    result = np.empty(len(picked), dtype=object)
    result[compiled] = shapely.from_ragged_array(  # a ring left to GEOS has no vertices
        shapely.GeometryType.POLYGON, ring_xy, (np.r_[0, ring_off[1:][done]],
                                                np.arange(done.sum() + 1)))
    rest = picked[~compiled]
    result[~compiled] = _geos_way(geoms, rest, out[~compiled], unrounded,
                                  np.rint(xy[np.isin(at, rest)]))
    return picked, result


def _grid_geometry(geoms: np.ndarray, q: TileQuery, native: bool):
    """``_tile_geometry`` of features stored on the tile's grid, valid and wound
    (``TileQuery.grid``): one inside the buffer is only moved into the tile's units; the
    others (across the buffer's edge) are cut as any feature is."""
    xy, at = shapely.get_coordinates(geoms, return_index=True)
    xy = np.rint(_to_tile_units(xy, q, native))  # whole units, less the metres' rounding
    count, lo, hi = _extents(xy, at, len(geoms))
    within = (count > 0) & (lo >= -BUFFER).all(axis=1) & (hi <= EXTENT + BUFFER).all(axis=1)
    # in the tile (as _tile_geometry tells it) and no speck; none of them is a point
    drawn = within & (hi - lo >= EXTENT / 256 * q.speck).any(axis=1)
    edge = np.flatnonzero(drawn & ~((lo >= 0).all(axis=1) & (hi <= EXTENT).all(axis=1)))
    moved = shapely.set_coordinates(geoms[within], xy[within[at]])
    drawn[edge] = shapely.intersects(moved[np.isin(np.flatnonzero(within), edge)],
                                     shapely.box(0, 0, EXTENT, EXTENT))
    across = np.flatnonzero(~within)
    cut, shaped = _tile_geometry(geoms[across], q, native)
    picked = np.concatenate([np.flatnonzero(drawn), across[cut]])
    result = np.concatenate([moved[drawn[within]], shaped])
    order = np.argsort(picked, kind="stable")
    return picked[order], result[order]


def _extents(xy: np.ndarray, at: np.ndarray, n: int):
    """Of each of ``n`` features whose vertices are ``xy`` (``at``: whose each is): how
    many vertices, and the lowest and highest x and y (inf, -inf for none)."""
    count = np.bincount(at, minlength=n)
    has = count > 0
    lo, hi = np.full((n, 2), np.inf), np.full((n, 2), -np.inf)
    if has.any():
        starts = (np.cumsum(count) - count)[has]
        lo[has], hi[has] = np.minimum.reduceat(xy, starts), np.maximum.reduceat(xy, starts)
    return count, lo, hi


def _one_ring(geoms: np.ndarray) -> np.ndarray:
    """Which geometries are a polygon of one ring (a multipolygon of one such too)."""
    kind = shapely.get_type_id(geoms)
    first = shapely.get_geometry(geoms, 0)
    return ((kind == 3) | ((kind == 6) & (shapely.get_num_geometries(geoms) == 1))) & \
        (shapely.get_num_interior_rings(first) == 0)


def _geos_way(geoms: np.ndarray, which: np.ndarray, out: np.ndarray, unrounded,
              rounded: np.ndarray) -> np.ndarray:
    """The features ``which`` of ``geoms`` (``out``: those reaching beyond the buffer;
    ``rounded``: their vertices in tile units, rounded) on the tile's grid, valid,
    simplified, clipped and wound, by GEOS."""
    if len(which) == 0:
        return geoms[:0]
    # Each vertex rounded to the grid first, as ST_AsMVTGeom does. Where that made a
    # feature invalid (a narrow pinch crossed over), it is simplified as it was and then
    # snap-rounded by GEOS instead: snap rounding keeps both sides of a pinch, where the
    # simplifier's repair would drop one.
    grid = shapely.set_coordinates(geoms[which], rounded)
    bad = ~shapely.is_valid(grid)
    grid[bad] = shapely.set_precision(_simplified(unrounded(which[bad])), 1.0)
    grid = _simplified(grid)
    # Cut at the buffer (as ST_AsMVTGeom, by rectangle: the new vertices rounded). What
    # that left invalid is cut again by GEOS's overlay on the grid, which is robust but
    # costs several times more.
    edge = (-BUFFER, -BUFFER, EXTENT + BUFFER, EXTENT + BUFFER)
    cut = shapely.set_precision(shapely.clip_by_rect(grid[out], *edge), 1.0, mode="pointwise")
    bad = ~shapely.is_valid(cut) & ~shapely.is_empty(cut)
    cut[bad] = _own_kind(shapely.intersection(grid[out][bad], shapely.box(*edge),
                                              grid_size=1.0),
                         shapely.get_dimensions(grid[out][bad]))
    grid[out] = cut
    gxy, gat = shapely.get_coordinates(grid, return_index=True)
    off = np.unique(gat[(gxy != np.rint(gxy)).any(axis=1)])
    grid[off] = shapely.set_precision(grid[off], 1.0)
    return shapely.orient_polygons(grid, exterior_cw=False)


def _simplified(geoms: np.ndarray) -> np.ndarray:
    """Douglas-Peucker to a tile unit, as PostGIS's ST_Simplify. GEOS repairs a polygon
    this leaves invalid, which may put vertices off the grid (_tile_geometry rounds them)."""
    return shapely.simplify(geoms, 1.0, preserve_topology=False)


def _to_tile_units(xy: np.ndarray, q: TileQuery, native: bool) -> np.ndarray:
    """Coordinates (CRS84, or the grid's own CRS when ``native``) in tile units, y down,
    in one pass: the grid's CRS and the tile's scale at once."""
    from oup.store.geometry import crs84_transformer

    x, y = xy[:, 0], xy[:, 1]
    if q.crs == "EPSG:3857" and not native:
        x, y = web_mercator(x, y)
    elif not native and q.crs != "OGC:CRS84":
        x, y = crs84_transformer(q.crs).transform(x, y)
    scale, x0, y1 = EXTENT / (q.bounds[2] - q.bounds[0]), q.bounds[0], q.bounds[3]
    return np.column_stack([(x - x0) * scale, (y1 - y) * scale])


_MULTI = {0: shapely.multipoints, 1: shapely.multilinestrings, 2: shapely.multipolygons}


def _own_kind(geoms: np.ndarray, dims: np.ndarray) -> np.ndarray:
    """What a cut left of each feature in its own dimension, as ST_AsMVTGeom keeps it: a
    polygon cut along the buffer's edge may come back with a line or a point there too,
    in a geometry collection, which MVT cannot say (None when nothing of it is left)."""
    for i in np.flatnonzero(shapely.get_type_id(geoms) == 7):  # rare: a loop over them
        parts = shapely.get_parts(geoms[i])
        parts = parts[shapely.get_dimensions(parts) == dims[i]]
        geoms[i] = _MULTI[int(dims[i])](parts) if len(parts) else None
    return geoms


def cut_geometries(q: TileQuery, geoms: np.ndarray, properties: dict[str, list]) -> bytes:
    """Layer ``q.layer`` of one tile cut from CRS84 geometries held in memory (a job's
    result, not a table): by the rule above, the feature id the index in ``geoms``,
    ``properties`` a column per name ('' when the tile holds none of them)."""
    from oup.store.mvt_encode import encode_layer

    x0, y0, x1, y1 = q.envelope84
    lo, hi = shapely.bounds(geoms)[:, :2], shapely.bounds(geoms)[:, 2:]
    near = np.flatnonzero((lo[:, 0] <= x1) & (hi[:, 0] >= x0) & (lo[:, 1] <= y1)
                          & (hi[:, 1] >= y0))
    if len(near) == 0:
        return b""
    picked, shaped = _tile_geometry(geoms[near], q, native=False)
    if len(picked) == 0:
        return b""
    chosen = near[picked]
    return encode_layer(q.layer, shaped, ids=chosen, extent=EXTENT, properties={
        name: [column[i] for i in chosen] for name, column in properties.items()})
