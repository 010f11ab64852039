"""City objects -> a 3D Tiles 1.1 tileset on disk.

An adaptive quadtree over the objects' positions splits until each leaf holds at
most ``vertex_budget`` vertices; leaves carry glb content in their own ENU frame
(a float64 ``transform`` per tile, float32 offsets of metres inside it), inner tiles
carry none. Bounding volumes are geodetic regions computed from the content itself,
so they contain it whatever the tile transforms are. ``atomic_dir`` lets a caller
write into a temporary folder that is moved into place only when complete.
"""
from __future__ import annotations

import json
import math
import multiprocessing
import os
import pickle
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from .cityjson import SURFACE_NAMES, CityObjectMesh
from .gltf import build_glb, enu_frame, metadata_schema
from .triangulate import _cross


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


class Spill:
    """Triangulated objects parked on disk between reading and tiling, so memory holds
    one tile's objects at a time, not the whole city."""

    def __init__(self, path: Path):
        self.fh = open(path, "w+b")
        self.offsets: list[int] = []
        self.xy: list[tuple[float, float]] = []
        self.nverts: list[int] = []
        self.kinds: dict[str, set] = {}
        self.missing: set[str] = set()

    def add(self, mesh: CityObjectMesh) -> None:
        self.offsets.append(self.fh.tell())
        self.fh.write(pickle.dumps(mesh, protocol=pickle.HIGHEST_PROTOCOL))
        self.xy.append((float(mesh.vertices[:, 0].mean()), float(mesh.vertices[:, 1].mean())))
        self.nverts.append(len(mesh.vertices))
        row = {"id": mesh.id, "type": mesh.type, **mesh.attributes}
        for name in self.kinds.keys() - row.keys():
            self.missing.add(name)
        for name, value in row.items():
            if name not in self.kinds and self.offsets[:-1]:
                self.missing.add(name)  # absent from the objects before this one
            self.kinds.setdefault(name, set())
            if value is None:
                self.missing.add(name)
            else:
                self.kinds[name].add(type(value))

    def get(self, i: int) -> CityObjectMesh:
        self.fh.seek(self.offsets[i])
        return pickle.load(self.fh)

    def close(self) -> None:
        self.fh.close()


class Geodesy:
    """Source CRS -> geodetic (lon, lat, ellipsoidal h) and ECEF, exactly."""

    def __init__(self, src: str):
        import pyproj

        from oup.geodesy import transformer

        # RD New + NAP goes through RDNAPTRANS(TM)2018 (oup.geodesy routes it via ETRS89)
        self.to_geodetic = transformer(src, "EPSG:4979")
        self.to_ecef = pyproj.Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)

    def geodetic(self, xyz: np.ndarray) -> np.ndarray:
        lon, lat, h = self.to_geodetic.transform(xyz[:, 0], xyz[:, 1], xyz[:, 2])
        out = np.column_stack([lon, lat, h])
        if not np.isfinite(out).all():
            raise ValueError("coordinates outside the area the CRS transformation covers")
        return out

    def ecef(self, llh: np.ndarray) -> np.ndarray:
        return np.column_stack(self.to_ecef.transform(llh[:, 0], llh[:, 1], llh[:, 2]))


def _vertex_normals(pos: np.ndarray, tris: np.ndarray) -> np.ndarray:
    a, b, c = pos[tris[:, 0]], pos[tris[:, 1]], pos[tris[:, 2]]
    fn = _cross(b - a, c - a)
    vn = np.zeros_like(pos)
    for k in range(3):
        np.add.at(vn, tris[:, k], fn)
    length = np.linalg.norm(vn, axis=1, keepdims=True)
    return np.where(length > 0, vn / np.maximum(length, 1e-30), [0.0, 0.0, 1.0])


_GEO: dict = {}


def _leaf_job(job) -> dict:
    """Build one leaf tile's glb from the spill (runs in a worker for big tilesets)."""
    spill_path, offsets, src_crs, schema, kinds, out, name, grid_dirs = job
    from oup.geodesy import install_grids

    for d in grid_dirs:  # a spawned worker finds the RDNAPTRANS grids where the parent did
        install_grids(Path(d).parent)
    geo = _GEO.get(src_crs) or _GEO.setdefault(src_crs, Geodesy(src_crs))
    with open(spill_path, "rb") as fh:
        meshes = []
        for off in offsets:
            fh.seek(off)
            meshes.append(pickle.load(fh))
    return _leaf_content(meshes, name, geo, schema, kinds, Path(out))


def local_frame(geo: Geodesy, llh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A tile's ENU frame (anchored at its centre, lowest height) and its vertices in it."""
    lon0, lat0 = (llh[:, 0].min() + llh[:, 0].max()) / 2, (llh[:, 1].min() + llh[:, 1].max()) / 2
    anchor = geo.ecef(np.array([[lon0, lat0, llh[:, 2].min()]]))[0]
    frame = enu_frame(lon0, lat0, anchor)
    return frame, (geo.ecef(llh) - anchor) @ frame[:3, :3]  # rows: ECEF offsets -> E, N, U


def leaf_tile(llh: np.ndarray, frame: np.ndarray, uri: str) -> dict:
    """A content tile: its geodetic region (computed from the content) and transform."""
    region = [math.radians(llh[:, 0].min()), math.radians(llh[:, 1].min()),
              math.radians(llh[:, 0].max()), math.radians(llh[:, 1].max()),
              float(llh[:, 2].min()), float(llh[:, 2].max())]
    return {"boundingVolume": {"region": region}, "geometricError": 0.0,
            "refine": "ADD", "transform": [float(v) for v in frame.T.reshape(-1)],
            "content": {"uri": uri}}


def parent_tile(kids: list[dict]) -> dict:
    """A tile without content over its children: their union, an error to refine from."""
    regions = np.array([k["boundingVolume"]["region"] for k in kids])
    region = [regions[:, 0].min(), regions[:, 1].min(), regions[:, 2].max(),
              regions[:, 3].max(), regions[:, 4].min(), regions[:, 5].max()]
    # a parent's error: half the diagonal of its area, so children load on approach
    width = (region[2] - region[0]) * 6_378_137 * math.cos(region[1])
    height = (region[3] - region[1]) * 6_378_137
    return {"boundingVolume": {"region": [float(v) for v in region]},
            "geometricError": max(1.0, math.hypot(width, height) / 2), "refine": "ADD",
            "children": kids}


def write_tileset_json(out: Path, root_tile: dict, extra: dict | None = None) -> None:
    if "content" in root_tile:  # a single tile: give it an error to refine from
        root_tile = {"boundingVolume": root_tile["boundingVolume"], "geometricError": 50.0,
                     "refine": "ADD", "children": [root_tile]}
    tileset = {"asset": {"version": "1.1", "generator": "OUP tilers"},
               "geometricError": root_tile["geometricError"] * 2,
               "root": root_tile, **({"extras": extra} if extra else {})}
    (out / "tileset.json").write_text(json.dumps(tileset, separators=(",", ":")))


def _leaf_content(meshes: list, node_id: str, geo: Geodesy, schema, kinds, out: Path) -> dict:
    llh_parts, tri_parts, fid_parts, sid_parts, rows, base = [], [], [], [], [], 0
    for i, m in enumerate(meshes):
        llh_parts.append(geo.geodetic(m.vertices))
        tri_parts.append(m.triangles + base)
        fid_parts.append(np.full(len(m.vertices), i, np.uint32))
        sid_parts.append(m.surfaces)
        rows.append({"id": m.id, "type": m.type, **m.attributes})
        base += len(m.vertices)
    llh = np.vstack(llh_parts)
    tris = np.vstack(tri_parts)
    frame, enu = local_frame(geo, llh)
    normals = _vertex_normals(enu, tris)
    terrain = all(m.type == "Terrain" for m in meshes)
    glb = build_glb(enu, normals, tris, np.concatenate(fid_parts), np.concatenate(sid_parts),
                    schema, kinds, rows, SURFACE_NAMES,
                    color=(0.62, 0.68, 0.58) if terrain else (0.85, 0.83, 0.8))
    name = f"tiles/{node_id}.glb"
    (out / name).write_bytes(glb)
    return {**leaf_tile(llh, frame, name), "_vertices": int(len(enu))}


def _leaves(node: Node):
    if not node.children:
        yield node
    for c in node.children:
        yield from _leaves(c)


def _tile(node: Node, contents: dict, stats: dict) -> dict:
    if not node.children:
        tile = dict(contents[node.id])
        stats["tiles"] += 1
        stats["vertices_per_tile"].append(tile.pop("_vertices"))
        return tile
    return parent_tile([_tile(c, contents, stats) for c in node.children])


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


def write_tileset(meshes: Iterable[CityObjectMesh], src_crs: str, out: Path,
                  vertex_budget: int = 100_000, progress=lambda n: None,
                  extra: dict | None = None, workers: int = 1) -> dict:
    """Write a tileset into the (new) folder ``out`` from a stream of objects.

    Objects are parked on disk as they come (``Spill``); only their centres, sizes and
    attribute types stay in memory to build the quadtree. Returns statistics.
    """
    out = Path(out)
    (out / "tiles").mkdir(parents=True)
    spill = Spill(out / ".objects.spill")
    try:
        for mesh in meshes:
            spill.add(mesh)
        if not spill.offsets:
            raise EmptyTileset("no city objects to tile")
        Geodesy(src_crs)  # an unknown CRS fails here, before any tile is made
        schema, kinds = metadata_schema(spill.kinds, spill.missing)
        xy = np.array(spill.xy)
        nverts = np.array(spill.nverts)
        bounds = (xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max() + 1e-6, xy[:, 1].max() + 1e-6)
        root = _split(Node(np.arange(len(xy)), bounds, 0, "r"), xy, nverts, vertex_budget)
        spill.fh.flush()
        from oup.geodesy import installed_grid_dirs

        jobs = [(str(spill.fh.name), [spill.offsets[int(k)] for k in sorted(leaf.items)],
                 src_crs, schema, kinds, str(out), leaf.id, installed_grid_dirs())
                for leaf in _leaves(root)]
        contents = {}
        if workers > 1 and len(jobs) > 1:
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(min(workers, len(jobs))) as pool:
                for job, tile in zip(jobs, pool.imap(_leaf_job, jobs)):
                    contents[job[6]] = tile
                    progress(len(job[1]))
        else:
            for job in jobs:
                contents[job[6]] = _leaf_job(job)
                progress(len(job[1]))
        stats = {"tiles": 0, "vertices_per_tile": [], "objects": len(xy)}
        root_tile = _tile(root, contents, stats)
    finally:
        spill.close()
        (out / ".objects.spill").unlink(missing_ok=True)
    write_tileset_json(out, root_tile, extra)
    stats["bytes"] = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return stats
