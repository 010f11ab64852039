"""City objects -> a 3D Tiles 1.1 tileset on disk, with levels of detail.

An adaptive quadtree over the objects' positions splits until each leaf holds at most
``vertex_budget`` vertices. Leaves carry the objects in full detail. Every tile above
them carries a coarse version of everything below it (``lod``: an LoD1 block per
object, a few dozen bytes each, with the object's id and attributes, so picking works at
every level) and is refined by REPLACE, so a viewer that frames the whole tileset draws
the whole city from the root at once (no bare blocks where small buildings were) and
loads detail only where it comes close. Geometric errors are measured from the content
(``lod.choose``): leaves 0, a coarse tile the largest deviation of what it draws (or the
size of what it leaves out, past the 65,535 objects a tile can number). Bounding volumes are geodetic regions computed from the content itself.

``atomic_dir`` lets a caller write into a temporary folder that is moved into place only
when complete. With ``index`` the objects' records and the tree are kept beside the
tileset (``tilers.index``), so ``tilers.update`` can redo the tiles of a changed object
without tiling the city again. Every file is written whole to a temporary name and
moved into place, so a reader never sees half a tile.
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import orjson

from .cityjson import GROUND, ROOF, SURFACE_NAMES, WALL
from .gltf import ENUM_MAX, POSITION_STEP, Part, build_glb, draco_part, metadata_schema
from .lod import BLOCK_STEP, blocks_of, choose, stacked_blocks
from .placement import (Geodesy, as_transform, local_frame, region_error, region_of,
                        relative, union)
from .spill import block_record, mesh_record, read_outline, read_record
from .triangulate import cross


class EmptyTileset(ValueError):
    """Nothing was left to tile."""


@dataclass
class Node:
    items: np.ndarray  # indices of the objects in this node
    bounds: tuple      # source CRS x0, y0, x1, y1
    level: int
    id: str
    children: list = field(default_factory=list)


def _split(node: Node, xy: np.ndarray, nverts: np.ndarray, budget: int,
           max_level: int = 16) -> Node:
    """Split by the objects' centres until each leaf holds at most ``budget`` vertices."""
    if nverts[node.items].sum() <= budget or len(node.items) <= 1 or node.level >= max_level:
        return node
    x0, y0, x1, y1 = node.bounds
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    pts = xy[node.items]
    quad = (pts[:, 0] >= mx).astype(int) + 2 * (pts[:, 1] >= my)
    boxes = [(x0, y0, mx, my), (mx, y0, x1, my), (x0, my, mx, y1), (mx, my, x1, y1)]
    for q in range(4):
        items = node.items[quad == q]
        if len(items):
            node.children.append(_split(Node(items, boxes[q], node.level + 1, f"{node.id}{q}"),
                                        xy, nverts, budget, max_level))
    return node


@dataclass
class Attributes:
    """What the metadata schema needs to know of some objects' attributes: the types of
    each, which some object lacks (or has null), and the distinct texts of each (None
    past ``ENUM_MAX``: no ENUM). Workers sum up their own objects; the sums merge."""
    kinds: dict = field(default_factory=dict)     # name -> set of Python types
    missing: set = field(default_factory=set)
    texts: dict = field(default_factory=dict)     # name -> set of texts, or None
    objects: int = 0

    @classmethod
    def of(cls, rows: list[dict]) -> "Attributes":
        out, seen = cls(objects=len(rows)), {}
        for row in rows:
            for name, value in row.items():
                seen[name] = seen.get(name, 0) + 1
                types = out.kinds.setdefault(name, set())
                texts = out.texts.setdefault(name, set())
                if value is None:
                    out.missing.add(name)
                    continue
                types.add(type(value))
                if texts is not None and isinstance(value, str):
                    texts.add(value)
                    if len(texts) > ENUM_MAX:
                        out.texts[name] = None
        out.missing |= {name for name, n in seen.items() if n < len(rows)}
        return out

    def merge(self, other: "Attributes") -> None:
        if self.objects and other.objects:  # a name only one side has is missing somewhere
            self.missing |= self.kinds.keys() ^ other.kinds.keys()
        self.missing |= other.missing
        for name, types in other.kinds.items():
            self.kinds.setdefault(name, set()).update(types)
        for name, texts in other.texts.items():
            mine = self.texts.get(name, set())
            both = None if mine is None or texts is None else mine | texts
            self.texts[name] = both if both is None or len(both) <= ENUM_MAX else None
        self.objects += other.objects


@dataclass
class Parked:
    """Some objects parked on disk by one process: where each one's mesh and block are,
    and what the tree and the schema need to know of them without reading them back."""
    mesh_file: str
    block_file: str
    mesh_offsets: list
    block_offsets: list
    xy: np.ndarray           # (m, 2) centres, source CRS
    nverts: np.ndarray
    size: np.ndarray
    deviation: np.ndarray
    block_nverts: np.ndarray
    attributes: Attributes
    ids: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.mesh_offsets)


_PARKING: dict = {}  # folder -> this process's two open spill files in it


def park(meshes: list, folder: Path) -> Parked:
    """Write objects and their blocks (made here, vectorised) to this process's spill
    files in ``folder``.

    Worker processes park what they mesh themselves, so the objects never travel
    through the parent (pickling them there twice was a third of the parent's time),
    and sum up their attributes, so the parent only merges.
    """
    key = str(folder)
    if key not in _PARKING:
        stem = Path(folder) / f".spill-{os.getpid()}"
        _PARKING[key] = (open(f"{stem}.objects", "ab"), open(f"{stem}.blocks", "ab"))
    objects, blocks = _PARKING[key]
    made = blocks_of(meshes, GROUND, ROOF)  # coarse stand-ins
    rows = [{"id": m.id, "type": m.type, **m.attributes} for m in meshes]
    mesh_offsets, block_offsets = [], []
    for mesh, block, row in zip(meshes, made, rows):
        mesh_offsets.append(objects.tell())
        objects.write(mesh_record(mesh))
        block_offsets.append(blocks.tell())
        blocks.write(block_record(block, row))
    objects.flush()
    blocks.flush()
    return Parked(objects.name, blocks.name, mesh_offsets, block_offsets,
                  np.array([m.points[:, :2].mean(axis=0) for m in meshes]).reshape(-1, 2),
                  np.array([len(m.surfaces) for m in meshes], np.int64),
                  np.array([b.size for b in made]), np.array([b.deviation for b in made]),
                  np.array([b.vertices for b in made], np.int64), Attributes.of(rows),
                  [m.id for m in meshes])


def unpark(folder: Path) -> None:
    """Close and remove every spill file in ``folder`` (of this process and its workers)."""
    for fh in _PARKING.pop(str(folder), ()):
        fh.close()
    for path in Path(folder).glob(".spill-*"):
        path.unlink(missing_ok=True)


class Spill:
    """The index of the parked objects: a few numbers per object (about 70 bytes; the
    objects themselves are on disk), so memory holds one tile's objects at a time, not
    the whole city. Batches come in as workers park them; ``columns`` joins them."""

    COLUMNS = ("mesh_file", "block_file", "mesh_offset", "block_offset", "xy", "nverts",
               "size", "deviation", "block_nverts")

    def __init__(self):
        self.files: list[str] = []                   # spill files, by number
        self._numbers: dict[str, int] = {}
        self._batches: list[tuple] = []
        self.attributes = Attributes()
        self.ids: list[str] = []

    def __len__(self) -> int:
        return self.attributes.objects

    def _file(self, name: str) -> int:
        if name not in self._numbers:
            self._numbers[name] = len(self.files)
            self.files.append(name)
        return self._numbers[name]

    def add(self, parked: Parked) -> None:
        n = len(parked)
        self._batches.append((
            np.full(n, self._file(parked.mesh_file), np.uint16),
            np.full(n, self._file(parked.block_file), np.uint16),
            np.asarray(parked.mesh_offsets, np.int64), np.asarray(parked.block_offsets, np.int64),
            parked.xy, parked.nverts, parked.size, parked.deviation, parked.block_nverts))
        self.attributes.merge(parked.attributes)
        self.ids.extend(parked.ids)

    def columns(self) -> dict[str, np.ndarray]:
        return {name: np.concatenate([b[i] for b in self._batches])
                for i, name in enumerate(self.COLUMNS)}


def _vertex_normals(pos: np.ndarray, tris: np.ndarray) -> np.ndarray:
    a, b, c = pos[tris[:, 0]], pos[tris[:, 1]], pos[tris[:, 2]]
    fn = np.repeat(cross(b - a, c - a), 3, axis=0)  # each triangle's, for its 3 corners
    at = tris.reshape(-1)
    vn = np.column_stack([np.bincount(at, fn[:, k], len(pos)) for k in range(3)])
    length = np.linalg.norm(vn, axis=1, keepdims=True)
    return np.where(length > 0, vn / np.maximum(length, 1e-30), [0.0, 0.0, 1.0])


# -- one tile's content (runs in a worker process for big tilesets) ------------------------

@dataclass
class Job:
    kind: str          # "leaf": the objects in detail; "coarse": their blocks
    places: list       # (spill file, offset) of each
    src_crs: str
    schema: dict
    kinds: dict
    out: str
    name: str
    grid_dirs: list
    frame: list | None = None  # the tile's ENU frame to keep (an update); None: its own


_GEO: dict = {}


def load_records(places: list, read=read_record) -> list:
    """``read`` (``spill.read_record``, ``spill.read_row``) at each (spill file, offset)."""
    files = {}
    try:
        return [read(files.get(path) or files.setdefault(path, open(path, "rb")), offset)
                for path, offset in places]
    finally:
        for fh in files.values():
            fh.close()


def _geodesy(job: Job) -> Geodesy:
    from oup.geodesy import install_grids

    for d in job.grid_dirs:  # a spawned worker finds the RDNAPTRANS grids where the parent did
        install_grids(Path(d).parent)
    return _GEO.get(job.src_crs) or _GEO.setdefault(job.src_crs, Geodesy(job.src_crs))


def run_job(job: Job) -> dict:
    rows, terrain, mesh = _meshed(job)
    return _content(*mesh, rows, job, _geodesy(job), terrain)


def _meshed(job: Job) -> tuple[list, bool, tuple]:
    """The rows of a job's objects, whether all are terrain, and their mesh as one
    (``_stacked``'s form): the objects in detail for a leaf, their blocks for a coarse
    tile."""
    if job.kind == "leaf":
        items = load_records(job.places, read_record)
        rows = [{"id": m.id, "type": m.type, **m.attributes} for m in items]
        return rows, all(m.type == "Terrain" for m in items), _stacked(items)
    items = load_records(job.places, read_outline)
    rows = [row for _, _, _, row in items]
    points, corners, tris, roof, counts = stacked_blocks(items)
    return rows, all(r["type"] == "Terrain" for r in rows), \
        (points, corners, tris, counts, np.where(roof, ROOF, WALL).astype(np.uint8))


def _stacked(meshes: list) -> tuple[np.ndarray, ...]:
    """Objects' meshes (``CityObjectMesh``: points, corners or None, triangles, surface
    class per vertex) as one: (points, the point of each vertex, triangles over all
    vertices, vertices per object, surface classes)."""
    parts = [(m.points, m.corners, m.triangles, m.surfaces) for m in meshes]
    points = [p for p, _, _, _ in parts]
    corners = [np.arange(len(p)) if c is None else c.astype(np.int64) for p, c, _, _ in parts]
    p_starts = np.cumsum([0] + [len(p) for p in points[:-1]])
    counts = np.array([len(c) for c in corners], np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return (np.vstack(points), np.concatenate([c + s for c, s in zip(corners, p_starts)]),
            np.vstack([t.astype(np.int64) + b for (_, _, t, _), b in zip(parts, starts)]),
            counts, np.concatenate([s for _, _, _, s in parts]))


def _content(points: np.ndarray, corners: np.ndarray, tris_all: np.ndarray,
             counts: np.ndarray, sids: np.ndarray, rows: list, job: Job, geo: Geodesy,
             terrain: bool) -> dict:
    """Write one glb; return its frame, region and vertex count. ``points``: the
    distinct points of the objects (source CRS), ``corners``: the point of each vertex,
    ``tris_all``: triangles over the vertices, ``counts``: each object's vertices,
    ``sids``: each vertex's surface class."""
    llh, frame, enu = _placed(points, corners, job, geo)
    fids = _feature_ids(counts)
    # buildings and blocks share no vertex between faces: these are the faces' flat
    # normals (terrain shares them: a smooth surface)
    step = _step(job)
    glb = build_glb(enu, _vertex_normals(enu, tris_all), tris_all, fids, sids,
                    job.schema, job.kinds, rows, SURFACE_NAMES,
                    color=(0.62, 0.68, 0.58) if terrain else (0.85, 0.83, 0.8), step=step)
    uri = f"tiles/{job.name}.glb"
    # a vertex quantised to ``step`` moves up to half of it along each axis
    return {"frame": frame, "region": region_of(llh, step * 0.87), "uri": uri,
            "vertices": int(len(enu)),
            "bytes": len(glb), "written": replace_file(Path(job.out) / uri, glb)}


def _step(job: Job) -> float:
    """The step a tile's positions are quantised to: a block is already a stand-in."""
    return BLOCK_STEP if job.kind == "coarse" else POSITION_STEP


def _feature_ids(counts: np.ndarray, first: int = 0) -> np.ndarray:
    """Each vertex's feature id: objects numbered from ``first``, ``counts`` vertices each."""
    return np.repeat(np.arange(first, first + len(counts), dtype=np.uint32), counts)


def _placed(points: np.ndarray, corners: np.ndarray, job: Job, geo: Geodesy):
    """The points' geodetic coordinates, the tile's ENU frame, and each vertex in it."""
    llh = geo.geodetic(points)  # one PROJ call a tile, each point once
    if job.frame is None:
        frame, enu_points = local_frame(geo, llh)
    else:  # an updated tile keeps its frame: its transform and its children's stay as they are
        frame = np.array(job.frame, float).reshape(4, 4)
        enu_points = (geo.ecef(llh) - frame[:3, 3]) @ frame[:3, :3]
    return llh, frame, enu_points[corners]


def added_part(job: Job, first: int) -> tuple[Part, list]:
    """The part of a tile (``job``: its kind, name and frame) that draws objects added
    to it (``job.places``, their records: details for a leaf, blocks for a coarse tile),
    their feature ids from ``first`` on (after the tile's own); and the region that
    holds them. The tile's other parts keep their bytes: meshing and compressing a leaf
    of a few hundred buildings again costs about 60 ms, a coarse tile of thousands of
    blocks seconds, this part about a millisecond a building."""
    _, _, (points, corners, tris, counts, sids) = _meshed(job)
    llh, _, enu = _placed(points, corners, job, _geodesy(job))
    step = _step(job)
    part = draco_part(enu, _vertex_normals(enu, tris), tris, _feature_ids(counts, first), sids,
                      len(counts), step)
    return part, region_of(llh, step * 0.87)


def replace_file(path: Path, data: bytes) -> bool:
    """Put ``data`` at ``path`` whole (a temporary file in the same folder, then
    ``os.replace``), unless the file already holds exactly these bytes: an unchanged
    tile keeps its mtime and so its ETag. Whether it was written."""
    path = Path(path)
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


# -- the tree ------------------------------------------------------------------------------

def _nodes(node: Node):
    yield node
    for c in node.children:
        yield from _nodes(c)


def _tile_json(node: Node, contents: dict, errors: dict, stats: dict,
               parent_world: np.ndarray | None = None) -> dict:
    own = contents[node.id]
    stats["tiles"] += 1
    stats["vertices_per_tile"].append(own["vertices"])
    level = stats["levels"].setdefault(node.level, {"tiles": 0, "bytes": 0})
    level["tiles"] += 1
    level["bytes"] += own["bytes"]
    kids = [_tile_json(c, contents, errors, stats, own["frame"]) for c in node.children]
    tile = {"boundingVolume": {"region": union([own["region"]] +
                                               [k["boundingVolume"]["region"] for k in kids])},
            "geometricError": errors[node.id],
            "refine": "REPLACE",
            "transform": as_transform(relative(parent_world, own["frame"])),
            "content": {"uri": own["uri"]}}
    if kids:
        tile["children"] = kids
    return tile


def write_tileset_json(out: Path, root_tile: dict, extra: dict | None = None) -> None:
    """tileset.json; the tileset's own error is that of drawing nothing of it."""
    error = max(region_error(root_tile["boundingVolume"]["region"]), root_tile["geometricError"])
    tileset = {"asset": {"version": "1.1", "generator": "OUP tilers"},
               "geometricError": error, "root": root_tile, **({"extras": extra} if extra else {})}
    replace_file(Path(out) / "tileset.json", tileset_json(tileset))


def tileset_json(tileset: dict) -> bytes:
    """The bytes of a tileset.json, compact (the tiler's and an update's alike: an update
    rewrites it only where a tile changed)."""
    return orjson.dumps(tileset, option=orjson.OPT_SERIALIZE_NUMPY)


@contextmanager
def atomic_dir(out: Path):
    """Yield a fresh folder that replaces ``out`` only if the block completes."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
        os.replace(tmp, out)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_tileset(meshes: Iterable, src_crs: str, out: Path,
                  vertex_budget: int = 50_000, progress=lambda n: None,
                  extra: dict | None = None, workers: int = 1,
                  index: dict | None = None) -> dict:
    """Write a tileset into the (new) folder ``out`` from a stream of objects
    (``CityObjectMesh``, or ``Parked`` batches where workers parked them in ``out``).

    Objects are parked on disk as they come; only their centres, sizes and attribute
    types stay in memory (``Spill``) to build the quadtree. Returns statistics.
    ``index``: keep the parked objects and the tree beside the tileset for updates
    (``tilers.index``), with these facts of how it was made (``lod``, ``z_offset``).
    """
    out = Path(out)
    (out / "tiles").mkdir(parents=True)
    spill = Spill()
    try:
        for item in meshes:
            spill.add(item if isinstance(item, Parked) else park([item], out))
        if not len(spill):
            raise EmptyTileset("no city objects to tile")
        Geodesy(src_crs)  # an unknown CRS fails here, before any tile is made
        found = spill.attributes
        schema, kinds = metadata_schema(found.kinds, found.missing, found.texts)
        col = spill.columns()
        xy, nverts, size = col["xy"], col["nverts"], col["size"]
        # a leaf's objects are numbered by u16 feature ids: at most 65,535 of them
        budget = max(1, vertex_budget)
        bounds = (xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max() + 1e-6, xy[:, 1].max() + 1e-6)
        root = _split(Node(np.arange(len(xy)), bounds, 0, "r"), xy, nverts, budget)
        from oup.geodesy import installed_grid_dirs

        grids, jobs, errors = installed_grid_dirs(), [], {}
        for node in _nodes(root):
            if node.children:
                chosen, errors[node.id] = choose(node.items, size, col["deviation"])
                jobs.append(Job("coarse", _places(spill.files, col["block_file"],
                                                  col["block_offset"], chosen),
                                src_crs, schema, kinds, str(out), node.id, grids))
            else:
                errors[node.id] = 0.0
                jobs.append(Job("leaf", _places(spill.files, col["mesh_file"],
                                                col["mesh_offset"], np.sort(node.items)),
                                src_crs, schema, kinds, str(out), node.id, grids))
        own_errors = dict(errors)
        _monotone(root, errors)
        contents = {}
        if workers > 1 and len(jobs) > 1:
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(min(workers, len(jobs))) as pool:
                for job, content in zip(jobs, pool.imap(run_job, jobs)):
                    contents[job.name] = content
                    progress(len(job.places) if job.kind == "leaf" else 0)
        else:
            for job in jobs:
                contents[job.name] = run_job(job)
                progress(len(job.places) if job.kind == "leaf" else 0)
        stats = {"tiles": 0, "vertices_per_tile": [], "objects": len(xy), "levels": {}}
        root_tile = _tile_json(root, contents, errors, stats)
        if index is not None:
            from .index import keep_index

            keep_index(out, spill, col, list(_nodes(root)), contents, own_errors,
                       dict(index, src_crs=src_crs, vertex_budget=budget))
    finally:
        unpark(out)
    write_tileset_json(out, root_tile, extra)
    stats["bytes"] = sum(f.stat().st_size for f in out.rglob("*")  # what clients fetch
                         if f.is_file() and ".oup-index" not in f.relative_to(out).parts)
    stats["leaf_bytes"] = sum(contents[n.id]["bytes"] for n in _nodes(root) if not n.children)
    return stats


def _places(files: list[str], numbers: np.ndarray, offsets: np.ndarray,
            items: np.ndarray) -> list[tuple[str, int]]:
    """(spill file, offset) of each of ``items``."""
    return [(files[f], int(o)) for f, o in zip(numbers[items], offsets[items])]


def _monotone(node: Node, errors: dict) -> float:
    """A tile's error is at least its children's: refining never makes the picture worse."""
    for c in node.children:
        errors[node.id] = max(errors[node.id], _monotone(c, errors))
    return errors[node.id]
