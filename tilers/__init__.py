"""Producers of 3D Tiles 1.1 for the city's 3D collections.

``tile(inputs, out)`` turns CityJSON / CityJSONSeq files (any version OUP reads, see
``oup.cityjson``), a DEM GeoTIFF (terrain mesh tiles) or a LAS/LAZ point cloud into a
tileset folder (``tileset.json`` + ``tiles/*.glb``): a quadtree whose leaves hold the
detail and whose upper tiles hold coarse blocks (``tileset``, ``lod``), Draco-compressed
glb (``gltf``). Where the input holds several levels of detail and none is asked for,
each gets its own tileset (``lod-<L>/``) and the top ``tileset.json`` points at the
highest.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from oup.cityjson import open_city_model

from .cityjson import CityModelError, ReadReport, lod_key, mesh_documents
from .pointcloud import write_point_tileset
from .terrain import open_dem
from .tileset import EmptyTileset, Parked, atomic_dir, park, tileset_json, write_tileset

__all__ = ["tile", "TilingReport", "CityModelError"]
PARALLEL_FROM_BYTES = 8_000_000


@dataclass
class TilingReport:
    objects: int = 0
    tilesets: dict = field(default_factory=dict)  # lod -> stats
    skipped: Counter = field(default_factory=Counter)
    warnings: list = field(default_factory=list)

    def __str__(self) -> str:
        parts = [f"{self.objects} objects"]
        for lod, st in self.tilesets.items():
            v = st["vertices_per_tile"]
            parts.append(f"LoD {lod}: {st['tiles']} tiles, {st['bytes'] / 1e6:.1f} MB, "
                         f"{min(v)}-{max(v)} vertices per tile")
        if self.skipped:
            parts.append("skipped " + ", ".join(f"{n} ({w})" for w, n in self.skipped.items()))
        return "; ".join(parts) + "".join(f"\nwarning: {w}" for w in self.warnings)


def _mesh_unit(task):
    """Mesh one unit of work and park it in the tileset folder (runs in a worker process
    for big inputs); return what was parked and the report."""
    unit, lod, z_offset, folder = task
    report = ReadReport()
    meshes = mesh_documents(unit.documents(), lod, report, z_offset)
    return park(meshes, folder), report  # with their blocks, made here in parallel


DEM_SUFFIXES = (".tif", ".tiff")


def _objects(inputs: list[Path], crs: str | None, lod: str | None, report: ReadReport,
             workers: int, folder: Path, z_offset: str | None = None):
    if inputs[0].suffix.lower() in DEM_SUFFIXES:
        src, chunks = open_dem(inputs[0], crs)

        def terrain():
            for mesh in chunks:
                report.objects += 1
                yield mesh
        return src, terrain()
    # (CRS, a stream of the objects of every input). Files are opened one by one; with
    # ``workers`` > 1 the units of work are meshed by that many processes, in order.
    first = open_city_model(inputs[0], crs)

    def units():
        for i, path in enumerate(inputs):
            model = first if i == 0 else open_city_model(path, crs)
            if model.crs != first.crs:
                raise CityModelError(f"{path}: CRS {model.crs} differs from {first.crs}")
            report.warnings += [w for w in model.warnings if w not in report.warnings]
            for unit in model.units:
                yield unit, lod, z_offset, folder

    def stream():
        if workers > 1:
            ctx = multiprocessing.get_context("spawn")  # no fork of a threaded parent
            with ctx.Pool(workers) as pool:
                yield from _merge(pool.imap(_mesh_unit, units(), chunksize=1), report)
        else:
            yield from _merge(map(_mesh_unit, units()), report)
    return first.crs, stream()


def _merge(results, report: ReadReport):
    for meshes, part in results:
        report.objects += part.objects
        report.skipped.update(part.skipped)
        report.lods |= part.lods
        report.warnings += [w for w in part.warnings if w not in report.warnings]
        yield meshes


def _default_workers(inputs: list[Path]) -> int:
    # processes pay off from a few MB of city model; small files stay in-process
    size = sum(p.stat().st_size for p in inputs)
    return min(os.cpu_count() or 1, 8) if size > PARALLEL_FROM_BYTES else 1


def _counted(items, bar):
    for item in items:
        bar.update(len(item) if isinstance(item, Parked) else 1)
        yield item


def tile(inputs: list[Path], out: Path, crs: str | None = None, lod: str | None = None,
         vertex_budget: int = 50_000, progress: bool = True,
         workers: int | None = None, z_offset_attribute: str | None = None) -> TilingReport:
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise CityModelError("no input files")
    for p in inputs:
        if p.is_dir():
            found = sorted(list(p.glob("*.city.json")) + list(p.glob("*.city.jsonl")))
            if not found:
                raise CityModelError(f"{p} holds no city model (*.city.json, *.city.jsonl)")
    inputs = [f for p in inputs for f in (sorted(list(p.glob("*.city.json")) +
                                                 list(p.glob("*.city.jsonl")))
                                          if p.is_dir() else [p])]
    dems = [p for p in inputs if p.suffix.lower() in DEM_SUFFIXES]
    if dems and len(inputs) > 1:
        raise CityModelError("tile a DEM on its own (one GeoTIFF), not with other inputs")
    clouds = [p for p in inputs if p.suffix.lower() in (".las", ".laz")]
    if clouds:
        if len(inputs) > 1:
            raise CityModelError("tile a point cloud on its own (one LAS/LAZ file)")
        report = TilingReport()
        with atomic_dir(out) as tmp:
            stats = write_point_tileset(clouds[0], crs, tmp, vertex_budget)
        report.objects = stats["objects"]
        report.tilesets["points"] = stats
        return report
    report = TilingReport()
    with atomic_dir(out) as tmp:
        ones = ["terrain"] if dems else [lod]  # None: each object at its highest LoD
        read = _tile_one(inputs, crs, ones[0], tmp, report, vertex_budget, progress, workers,
                         z_offset_attribute)
        found = sorted(read.lods, key=lod_key)
        if ones == [None] and len(found) > 1:
            # the input holds several LoDs: a tileset each (a file holds one LoD mostly,
            # so finding out while meshing beats reading every file once more first)
            ones = found
            report.tilesets.clear()
            report.skipped.clear()
            shutil.rmtree(tmp)
            tmp.mkdir()
            for one in ones:
                _tile_one(inputs, crs, one, tmp / f"lod-{one}", report, vertex_budget,
                          progress, workers, z_offset_attribute)
        if len(ones) > 1:
            top = json.loads((tmp / f"lod-{ones[-1]}" / "tileset.json").read_text())
            index = {"asset": {"version": "1.1", "generator": "OUP tilers"},
                     "geometricError": top["geometricError"],
                     "root": {"boundingVolume": top["root"]["boundingVolume"],
                              "geometricError": top["geometricError"], "refine": "REPLACE",
                              "content": {"uri": f"lod-{ones[-1]}/tileset.json"}},
                     "extras": {"lods": {one: f"lod-{one}/tileset.json" for one in ones}}}
            (tmp / "tileset.json").write_bytes(tileset_json(index))  # as an update writes it
    return report


def _tile_one(inputs: list[Path], crs: str | None, lod: str | None, target: Path,
              report: TilingReport, vertex_budget: int, progress: bool, workers: int | None,
              z_offset: str | None) -> ReadReport:
    """One tileset in ``target``, at ``lod`` (None: each object's highest); its statistics
    go into ``report`` under its LoD."""
    from tqdm import tqdm

    read = ReadReport()
    workers = workers or _default_workers(inputs)
    src_crs, meshes = _objects(inputs, crs, lod, read, workers, target, z_offset)
    bar = tqdm(desc=f"tiling LoD {lod or 'highest'}", unit=" objects", disable=not progress)
    try:
        # a city model keeps its index for updates building by building (tilers.update)
        index = None if lod == "terrain" else {"lod": lod, "z_offset": z_offset}
        stats = write_tileset(_counted(meshes, bar), src_crs, target, vertex_budget,
                              workers=workers, index=index)
    except EmptyTileset as exc:
        raise CityModelError("nothing to tile: " + (", ".join(
            f"{n} {w}" for w, n in read.skipped.items()) or str(exc))) from None
    finally:
        bar.close()
    key = lod or (max(read.lods, key=lod_key) if read.lods else "terrain")
    report.tilesets[key] = stats
    report.objects = max(report.objects, read.objects)
    report.skipped.update(read.skipped)
    report.warnings = list(dict.fromkeys(report.warnings + read.warnings))
    return read
