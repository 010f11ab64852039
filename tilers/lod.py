"""Coarse levels of detail: every city object as a block, and which blocks a tile above
the leaves carries.

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


def _area(tri: np.ndarray) -> float:
    """Plan area of triangles given as (n, 3, 2+) arrays."""
    a, b, c = tri[:, 0, :2], tri[:, 1, :2], tri[:, 2, :2]
    return float(np.abs((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) -
                        (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])).sum() / 2)


def blocks_of(meshes: list, ground: int, roof: int) -> list[Block]:
    """The blocks of some objects (``CityObjectMesh``: vertices in the source CRS, a
    surface class per vertex); their hulls are made in one vectorised pass."""
    if not meshes:
        return []
    counts = [len(m.vertices) for m in meshes]
    owner = np.repeat(np.arange(len(meshes)), counts)
    hulls = shapely.convex_hull(shapely.multipoints(
        np.vstack([m.vertices[:, :2] for m in meshes]), indices=owner))
    flat = shapely.get_type_id(hulls) != 3  # all on a line or a point: a sliver around it
    if flat.any():
        hulls[flat] = shapely.buffer(hulls[flat], 0.05, quad_segs=1)
    simple = shapely.simplify(hulls, HULL_TOLERANCE)
    usable = (shapely.get_type_id(simple) == 3) & (shapely.area(simple) > 0)
    shapes = np.where(usable, simple, hulls)
    hull_area, perimeter = shapely.area(hulls), shapely.length(shapes)
    coords, which = shapely.get_coordinates(shapely.get_exterior_ring(shapes), return_index=True)
    rings = np.split(coords, np.cumsum(np.bincount(which, minlength=len(meshes)))[:-1])
    return [_block(m, ring[:-1], float(a), float(p), ground, roof)
            for m, ring, a, p in zip(meshes, rings, hull_area, perimeter)]


def _block(mesh, ring: np.ndarray, hull_area: float, perimeter: float, ground: int,
           roof: int) -> Block:
    x, y = ring[:, 0], ring[:, 1]
    if (x * np.roll(y, -1) - np.roll(x, -1) * y).sum() < 0:  # make it counter-clockwise
        ring = ring[::-1]
    z = mesh.vertices[:, 2]
    extent = float(np.ptp(mesh.vertices[:, :2], axis=0).max())
    if mesh.type == "Terrain":  # a plate at the mean height: walls would stand in the land
        top = float(z.mean())
        return Block(ring, top, top, float(np.abs(z - top).max()) + HULL_TOLERANCE, extent)
    z0, z1 = float(z.min()), float(z.max())
    on_roof = z[mesh.surfaces == roof]
    drop = z1 - float(on_roof.min()) if len(on_roof) else 0.0  # the flat top over the eaves
    tris = mesh.triangles
    floor = tris[(mesh.surfaces[tris] == ground).all(axis=1)]
    if len(floor):  # the hull's extra area, as the width of a strip round the footprint
        extra = max(0.0, hull_area - _area(mesh.vertices[floor]))
        spill = extra / max(perimeter, 1e-9) * 2
    else:
        spill = 0.0
    return Block(ring, z0, z1, max(drop, spill) + HULL_TOLERANCE, max(extent, z1 - z0))


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


def choose(items: np.ndarray, size: np.ndarray, deviation: np.ndarray, nverts: np.ndarray,
           budget: int) -> tuple[np.ndarray, float]:
    """The blocks a coarse tile over ``items`` carries, and its geometric error.

    The largest objects first, as many as ``budget`` vertices of blocks allow: what a
    viewer from afar sees first is what stands out. The error is the larger of the worst
    block's deviation and the size of the largest object left out.
    """
    order = items[np.argsort(-size[items], kind="stable")]
    fits = np.cumsum(nverts[order]) <= budget
    fits[0] = True  # a tile carries at least its largest object
    n = int(np.argmin(fits)) if not fits.all() else len(order)
    chosen, left = order[:n], order[n:]
    error = max(float(deviation[chosen].max()), float(size[left].max()) if len(left) else 0.0)
    return np.sort(chosen), error
