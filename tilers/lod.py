"""Coarse levels of detail: every city object as a block, and which blocks a tile above
the leaves carries (all of those below it: a city seen from afar is whole).

A ``Block`` is an LoD1-style stand-in for one object: the convex hull of its footprint,
extruded from its lowest to its highest point (terrain: a plate at its mean height). It
keeps the object's id and attributes, so picking a block shows the same properties as
picking the detailed object. The hull is simplified a little (``HULL_TOLERANCE``), so a
block has a handful of corners whatever the building.

Errors are measured, never set: a block's ``deviation`` is how far its surface can lie
from the object it stands for (the roof's drop under the flat top, the area the hull adds
to the footprint, the simplification), and an object left out of a coarse tile costs its
``size`` (its largest dimension). A coarse tile's geometric error is the largest of the
two over what it holds and what it leaves out (see ``choose``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely

HULL_TOLERANCE = 0.5  # metres (source CRS units) a hull corner may be simplified away
# a block is already HULL_TOLERANCE or more from its object: positions quantised to a
# tenth of that (Draco) change nothing one can see, and take a third fewer bytes
BLOCK_STEP = HULL_TOLERANCE / 10
MAX_FEATURES = 65_535  # objects a tile can number (u16 feature ids)


@dataclass
class Block:
    ring: np.ndarray   # (k, 2) hull corners, counter-clockwise, not closed; source CRS
    z0: float          # bottom
    z1: float          # top
    deviation: float   # how far the block can be from the object it stands for
    size: float        # the error of leaving the object out: its largest dimension
    mesh: tuple = ()   # (vertices, triangles, is-roof): made once, drawn at every level

    def __post_init__(self):
        if not self.mesh:
            self.mesh = block_mesh(self)

    @property
    def vertices(self) -> int:
        k = len(self.ring)
        return k + (4 * k if self.z1 > self.z0 else 0)


def blocks_of(meshes: list, ground: int, roof: int) -> list[Block]:
    """The blocks of some objects (``CityObjectMesh``: vertices in the source CRS, a
    surface class per vertex), made in a few vectorised passes over all of them."""
    if not meshes:
        return []
    counts = np.array([len(m.vertices) for m in meshes])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    owner = np.repeat(np.arange(len(meshes)), counts)
    verts = np.vstack([m.vertices for m in meshes])
    kinds = np.concatenate([m.surfaces for m in meshes])
    hulls = shapely.convex_hull(shapely.multipoints(verts[:, :2], indices=owner))
    flat = shapely.get_type_id(hulls) != 3  # all on a line or a point: a sliver around it
    if flat.any():
        hulls[flat] = shapely.buffer(hulls[flat], 0.05, quad_segs=1)
    simple = shapely.simplify(hulls, HULL_TOLERANCE)
    usable = (shapely.get_type_id(simple) == 3) & (shapely.area(simple) > 0)
    shapes = shapely.orient_polygons(np.where(usable, simple, hulls))  # counter-clockwise
    hull_area, perimeter = shapely.area(hulls), shapely.length(shapes)
    coords, which = shapely.get_coordinates(shapely.get_exterior_ring(shapes), return_index=True)
    rings = np.split(coords, np.cumsum(np.bincount(which, minlength=len(meshes)))[:-1])

    z = verts[:, 2]
    z0, z1 = np.minimum.reduceat(z, starts), np.maximum.reduceat(z, starts)
    extent = np.maximum(np.maximum.reduceat(verts[:, 0], starts) -
                        np.minimum.reduceat(verts[:, 0], starts),
                        np.maximum.reduceat(verts[:, 1], starts) -
                        np.minimum.reduceat(verts[:, 1], starts))
    # the flat top's drop to the lowest roof point (no roof surface: no drop)
    roof_low = np.minimum.reduceat(np.where(kinds == roof, z, np.inf), starts)
    drop = np.where(np.isfinite(roof_low), z1 - roof_low, 0.0)
    # the hull's extra area over the footprint (the ground surfaces), as the width of a
    # strip round it (no ground surface: unknown, 0)
    tris = np.vstack([m.triangles.astype(np.int64) + s for m, s in zip(meshes, starts)])
    floor = (kinds[tris] == ground).all(axis=1)
    a, b, c = verts[tris[:, 0], :2], verts[tris[:, 1], :2], verts[tris[:, 2], :2]
    area = np.abs((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) -
                  (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])) / 2
    footprint = np.bincount(owner[tris[:, 0]], weights=np.where(floor, area, 0.0),
                            minlength=len(meshes))
    spill = np.where(footprint > 0, np.maximum(hull_area - footprint, 0.0) /
                     np.maximum(perimeter, 1e-9) * 2, 0.0)
    blocks = []
    for i, m in enumerate(meshes):
        if m.type == "Terrain":  # a plate at the mean height: walls would stand in the land
            top = float(m.vertices[:, 2].mean())
            blocks.append(Block(rings[i][:-1], top, top,
                                float(np.abs(m.vertices[:, 2] - top).max()) + HULL_TOLERANCE,
                                float(extent[i])))
        else:
            blocks.append(Block(rings[i][:-1], float(z0[i]), float(z1[i]),
                                float(max(drop[i], spill[i])) + HULL_TOLERANCE,
                                float(max(extent[i], z1[i] - z0[i]))))
    return blocks


@lru_cache(maxsize=256)
def _template(k: int, walls: bool) -> tuple[np.ndarray, np.ndarray]:
    """Triangles and roof flags of a block with ``k`` corners (the same for every block)."""
    fan = np.column_stack([np.zeros(k - 2, int), np.arange(1, k - 1), np.arange(2, k)])
    tris = [fan]
    if walls:
        base = k + 4 * np.arange(k)[:, None]
        tris += [base + [0, 1, 2], base + [0, 2, 3]]
    roof = np.zeros(k + (4 * k if walls else 0), bool)
    roof[:k] = True
    return np.vstack(tris).astype(np.uint32), roof


def block_mesh(block: Block) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices (n, 3), triangles (k, 3), is-roof (n,)) of a block: a flat top and,
    for a solid, its walls (each wall its own four corners, so its normal is its own);
    no floor (nobody looks from below)."""
    ring, k = block.ring, len(block.ring)
    walls = block.z1 > block.z0
    tris, roof = _template(k, walls)
    verts = np.empty((len(roof), 3))
    verts[:k, :2], verts[:k, 2] = ring, block.z1
    if walls:
        quad = verts[k:].reshape(k, 4, 3)
        nxt = ring[np.r_[1:k, 0]]
        quad[:, 0, :2], quad[:, 1, :2], quad[:, 2, :2], quad[:, 3, :2] = ring, nxt, nxt, ring
        quad[:, :2, 2], quad[:, 2:, 2] = block.z0, block.z1
    return verts, tris, roof


def stacked_blocks(outlines: list[tuple]) -> tuple[np.ndarray, ...]:
    """The meshes of many blocks as one, in a few array passes (a coarse tile holds a
    city's blocks: a Python step a block cost seconds). A point is placed (PROJ) once,
    not once for every face it is a corner of: the distinct points of each block (its
    ring at the top, then at the bottom), which point each vertex of ``block_mesh`` is,
    the triangles (numbering the vertices of all), the roof flags and each block's
    vertex count: ``block_mesh``'s vertices, triangles and flags, block after block.
    ``outlines``: (ring, z0, z1, ...) of each block."""
    k = np.array([len(o[0]) for o in outlines], np.int64)
    z0, z1 = np.array([o[1] for o in outlines], float), np.array([o[2] for o in outlines], float)
    walls = z1 > z0
    rings = np.vstack([o[0] for o in outlines])

    def spread(counts):  # block of each item, the item's number in its block, block starts
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        owner = np.repeat(np.arange(len(counts)), counts)
        return owner, np.arange(int(counts.sum())) - starts[owner], starts

    # points: the ring at the top, then (walls) at the bottom
    owner, at, point_starts = spread(k * (1 + walls))
    bottom = at >= k[owner]
    ring_starts = np.concatenate([[0], np.cumsum(k)[:-1]])
    points = np.column_stack([rings[ring_starts[owner] + at - k[owner] * bottom],
                              np.where(bottom, z0[owner], z1[owner])])
    # vertices: the top's corners, then each wall's four (ring and next at the bottom,
    # next and ring at the top)
    counts = k + 4 * k * walls
    owner, at, vertex_starts = spread(counts)
    kk = k[owner]
    wall, corner = np.divmod(np.maximum(at - kk, 0), 4)
    nxt = (wall + 1) % kk
    roof = at < kk
    corners = np.select([roof, corner == 0, corner == 1, corner == 2],
                        [at, kk + wall, kk + nxt, nxt], wall) + point_starts[owner]
    # triangles: the top's fan, then each wall's first half, then each wall's second
    owner, at, _ = spread(k - 2 + 2 * k * walls)
    kk = k[owner]
    fan = at < kk - 2
    second, wall = np.divmod(np.maximum(at - (kk - 2), 0), kk)
    base = kk + 4 * wall
    tris = np.where(fan[:, None], np.column_stack([np.zeros_like(at), at + 1, at + 2]),
                    np.column_stack([base, base + 1 + second, base + 2 + second]))
    return points, corners, tris + vertex_starts[owner][:, None], roof, counts


def choose(items: np.ndarray, size: np.ndarray, deviation: np.ndarray,
           limit: int | None = None) -> tuple[np.ndarray, float]:
    """The blocks a coarse tile over ``items`` carries, and its geometric error.

    Every object under the tile, so a viewer from afar sees the whole city (no bare
    blocks where small buildings were left out), up to ``limit`` objects (a tile numbers
    its features in 16 bits); past that the largest first, as what stands out is what a
    viewer sees first. The error is the larger of the worst block's deviation and the
    size of the largest object left out.
    """
    limit = MAX_FEATURES if limit is None else limit
    order = items[np.argsort(-size[items], kind="stable")]
    chosen, left = order[:limit], order[limit:]
    error = max(float(deviation[chosen].max()), float(size[left].max()) if len(left) else 0.0)
    return np.sort(chosen), error
