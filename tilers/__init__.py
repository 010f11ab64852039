"""Producers of 3D Tiles 1.1 for the city's 3D collections.

``tile(inputs, out)`` turns CityJSON / CityJSONSeq files into a tileset folder
(``tileset.json`` + ``tiles/*.glb``). Where the input holds several levels of detail
and none is asked for, each gets its own tileset (``lod-<L>/``) and the top
``tileset.json`` points at the highest.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .cityjson import CityModelError, ReadReport, _lod_key, mesh_objects, open_city_model
from .tileset import atomic_dir, write_tileset

__all__ = ["tile", "TilingReport", "CityModelError"]


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


def _read(inputs: list[Path], crs: str | None, lod: str | None, report: ReadReport):
    src_crs, meshes = None, []
    for path in inputs:
        file_crs, docs = open_city_model(Path(path), crs)
        if src_crs and file_crs != src_crs:
            raise CityModelError(f"{path}: CRS {file_crs} differs from {src_crs}")
        src_crs = file_crs
        for doc, verts in docs:
            if doc.get("_oup_warning"):
                report.warnings.append(doc["_oup_warning"])
            meshes.extend(mesh_objects(doc, verts, lod, report))
    return src_crs, meshes


def tile(inputs: list[Path], out: Path, crs: str | None = None, lod: str | None = None,
         vertex_budget: int = 100_000, progress: bool = True) -> TilingReport:
    from tqdm import tqdm

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
    read = ReadReport()
    src_crs, meshes = _read(inputs, crs, lod, read)
    report = TilingReport(objects=len(meshes), skipped=read.skipped, warnings=read.warnings)
    if not meshes:
        raise CityModelError("nothing to tile: " + (", ".join(
            f"{n} {w}" for w, n in read.skipped.items()) or "no city objects"))
    lods = sorted(read.lods, key=_lod_key)
    with atomic_dir(out) as tmp:
        if lod or len(lods) <= 1:
            bar = tqdm(total=len(meshes), desc="tiling", unit=" objects", disable=not progress)
            report.tilesets[lod or lods[-1]] = write_tileset(
                meshes, src_crs, tmp / "main", vertex_budget, bar.update)
            bar.close()
            for item in (tmp / "main").iterdir():
                item.rename(tmp / item.name)
            (tmp / "main").rmdir()
        else:
            for one in lods:
                sub = ReadReport()
                _, lod_meshes = _read(inputs, crs, one, sub)
                bar = tqdm(total=len(lod_meshes), desc=f"tiling LoD {one}", unit=" objects",
                           disable=not progress)
                report.tilesets[one] = write_tileset(lod_meshes, src_crs, tmp / f"lod-{one}",
                                                     vertex_budget, bar.update)
                bar.close()
            top = json.loads((tmp / f"lod-{lods[-1]}" / "tileset.json").read_text())
            index = {"asset": {"version": "1.1", "generator": "OUP tilers"},
                     "geometricError": top["geometricError"],
                     "root": {"boundingVolume": top["root"]["boundingVolume"],
                              "geometricError": top["geometricError"], "refine": "REPLACE",
                              "content": {"uri": f"lod-{lods[-1]}/tileset.json"}},
                     "extras": {"lods": {one: f"lod-{one}/tileset.json" for one in lods}}}
            (tmp / "tileset.json").write_text(json.dumps(index))
    return report
