"""Read CityJSON 1.1/2.0 and CityJSONSeq into triangulated city objects.

A ``CityObjectMesh`` is one feature of the tileset: a top-level city object with its
children (BuildingParts join their Building), at one level of detail, as triangles
in the source CRS with the semantic surface class of each triangle.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from .triangulate import triangulate_many

# semantic surface classes, stored per triangle
OTHER, GROUND, WALL, ROOF = 0, 1, 2, 3
SURFACE_NAMES = ["other", "ground", "wall", "roof"]
_SEMANTIC = {"GroundSurface": GROUND, "WallSurface": WALL, "ClosureSurface": WALL,
             "OuterCeilingSurface": WALL, "OuterFloorSurface": GROUND, "RoofSurface": ROOF,
             "Door": WALL, "Window": WALL, "TrafficArea": GROUND, "AuxiliaryTrafficArea": GROUND,
             "WaterSurface": GROUND, "WaterGroundSurface": GROUND}


class CityModelError(ValueError):
    """The input is not a city model this tiler can read; the message says why."""


@dataclass
class CityObjectMesh:
    id: str
    type: str
    attributes: dict
    vertices: np.ndarray   # (n, 3) float64, source CRS
    triangles: np.ndarray  # (k, 3) uint32
    surfaces: np.ndarray   # (n,) uint8 per vertex (vertices are not shared between surfaces)


@dataclass
class ReadReport:
    objects: int = 0
    skipped: Counter = field(default_factory=Counter)
    lods: set = field(default_factory=set)
    warnings: list = field(default_factory=list)


def surfaces(geom: dict):
    """(rings of vertex indices, semantic surface type or None) for each surface."""
    b, t = geom.get("boundaries", []), geom.get("type")
    sem = geom.get("semantics") or {}
    kinds = [s.get("type") for s in sem.get("surfaces", [])]
    values = sem.get("values")

    def kind(idx):
        return kinds[idx] if isinstance(idx, int) and 0 <= idx < len(kinds) else None

    if t in ("MultiSurface", "CompositeSurface"):
        for i, surf in enumerate(b):
            yield surf, kind(values[i] if values else None)
    elif t == "Solid":
        for si, shell in enumerate(b):
            for i, surf in enumerate(shell):
                yield surf, kind(values[si][i] if values else None)
    elif t in ("MultiSolid", "CompositeSolid"):
        for di, solid in enumerate(b):
            for si, shell in enumerate(solid):
                for i, surf in enumerate(shell):
                    yield surf, kind(values[di][si][i] if values else None)


def _guess_class(normal: np.ndarray) -> int:
    if normal[2] >= 0.2:
        return ROOF
    if normal[2] <= -0.2:
        return GROUND
    return WALL


def mesh_objects(doc: dict, verts: np.ndarray, lod: str | None, report: ReadReport,
                 z_offset: str | None = None) -> Iterator[CityObjectMesh]:
    objs = doc.get("CityObjects", {})
    for oid, obj in objs.items():
        if obj.get("parents"):
            continue
        members = [obj] + [objs[c] for c in obj.get("children", []) if c in objs]
        geoms = [g for m in members for g in m.get("geometry", []) if "boundaries" in g]
        lods = {str(g.get("lod")) for g in geoms}
        report.lods |= lods
        if not geoms:
            report.skipped["no geometry"] += 1
            continue
        want = lod or max(lods, key=lod_key)
        chosen = [g for g in geoms if str(g.get("lod")) == want]
        if not chosen:
            report.skipped[f"no LoD {want}"] += 1
            continue
        vs, ts, ss, base = [], [], [], 0
        faces = [item for g in chosen for item in surfaces(g)]
        try:
            results = triangulate_many([rings for rings, _ in faces], verts)
        except IndexError:
            report.skipped["vertex index out of range"] += 1
            continue
        for (_, kind), res in zip(faces, results):
            if res is None:
                report.skipped["degenerate surface (no area)"] += 1
                continue
            v, t, n = res
            cls = _SEMANTIC.get(kind, _guess_class(n)) if kind else _guess_class(n)
            vs.append(v)
            ts.append(t + base)
            ss.append(np.full(len(v), cls, np.uint8))
            base += len(v)
        if not ts:
            report.skipped["no surface left after cleaning"] += 1
            continue
        attrs = {k: v for k, v in (obj.get("attributes") or {}).items()
                 if isinstance(v, (str, int, float, bool)) or v is None}
        vertices = np.vstack(vs)
        if z_offset:
            lift = attrs.get(z_offset)
            if isinstance(lift, (int, float)) and not isinstance(lift, bool):
                vertices[:, 2] += lift
            else:
                note = f"objects without a numeric {z_offset} are left at z as drawn"
                if note not in report.warnings:
                    report.warnings.append(note)
        report.objects += 1
        yield CityObjectMesh(oid, obj.get("type", "GenericCityObject"), attrs, vertices,
                             np.vstack(ts).astype(np.uint32), np.concatenate(ss))


def lod_key(lod: str):
    try:
        return tuple(int(p) for p in lod.split("."))
    except ValueError:
        return (-1,)


def vertices_of(doc: dict, transform: dict | None) -> np.ndarray:
    v = np.asarray(doc.get("vertices", []), dtype=float).reshape(-1, 3)
    if transform:
        v = v * np.asarray(transform["scale"]) + np.asarray(transform["translate"])
    return v


def epsg_of(meta: dict | None) -> str | None:
    ref = (meta or {}).get("referenceSystem")
    if not ref:
        return None
    code = ref.rstrip("/").split("/")[-1]
    if not code.isdigit():
        raise CityModelError(f"referenceSystem {ref!r} is not an EPSG CRS")
    return f"EPSG:{code}"


def open_city_model(path: Path, crs: str | None):
    """(CRS, iterator of units of work: ``SeqLines`` or ``Part``) for a CityJSON or
    CityJSONSeq file. A unit's ``documents()`` gives (doc, vertices) pairs."""
    if path.is_dir():
        raise CityModelError(f"{path} is a directory; give CityJSON (.city.json) or "
                             "CityJSONSeq (.city.jsonl) files")
    if path.stat().st_size == 0:
        raise CityModelError(f"{path.name} is empty")
    if path.name.endswith((".jsonl", ".city.jsonl")):
        fh = path.open(encoding="utf-8")
        try:
            header = json.loads(fh.readline())
        except json.JSONDecodeError as exc:
            raise CityModelError(f"{path.name}: the first line is not JSON ({exc})") from None
        _check_version(header, path)
        src = epsg_of(header.get("metadata")) or crs

        def seq():
            with fh:
                batch, first = [], 2
                for n, line in enumerate(fh, start=2):
                    if line.strip():
                        batch.append(line)
                    if len(batch) >= SEQ_BATCH:
                        yield SeqLines(path.name, header.get("transform"), first, batch)
                        batch, first = [], n + 1
                if batch:
                    yield SeqLines(path.name, header.get("transform"), first, batch)
        return _need_crs(src, path), seq()
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CityModelError(f"{path.name} is not valid JSON ({exc})") from None
    _check_version(doc, path)
    src = epsg_of(doc.get("metadata")) or crs
    if doc.get("appearance", {}).get("textures"):
        missing = [t["image"] for t in doc["appearance"]["textures"]
                   if not (path.parent / t.get("image", "")).exists()]
        if missing:
            doc["_oup_warning"] = (f"{len(missing)} texture images referenced by {path.name} "
                                   "are missing: tiled untextured")
    verts = vertices_of(doc, doc.get("transform"))
    return _need_crs(src, path), (Part(doc.get("_oup_warning"), chunk, verts)
                                  for chunk in _chunks(doc.get("CityObjects", {})))


SEQ_BATCH = 256     # CityJSONSeq lines per unit of work
DOC_CHUNK = 256     # top-level objects of a CityJSON document per unit of work


@dataclass
class SeqLines:
    """A batch of CityJSONSeq lines, parsed where it is meshed (possibly another process)."""
    name: str
    transform: dict | None
    first_line: int
    lines: list

    def documents(self):
        for n, line in enumerate(self.lines, start=self.first_line):
            try:
                feat = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CityModelError(f"{self.name}: a line near {n} is not JSON ({exc})") from None
            yield feat, vertices_of(feat, self.transform)


@dataclass
class Part:
    """Some top-level objects (with their children) of a CityJSON document."""
    warning: str | None
    objects: dict
    vertices: np.ndarray

    def documents(self):
        yield {"CityObjects": self.objects}, self.vertices


def _chunks(objs: dict):
    top = [k for k, o in objs.items() if not o.get("parents")]
    for i in range(0, len(top), DOC_CHUNK):
        chunk = {}
        for k in top[i:i + DOC_CHUNK]:
            chunk[k] = objs[k]
            for c in objs[k].get("children", []):
                if c in objs:
                    chunk[c] = objs[c]
        yield chunk


def _check_version(doc, path):
    if not isinstance(doc, dict) or doc.get("type") != "CityJSON":
        raise CityModelError(f"{path.name}: not a CityJSON document (type "
                             f"{doc.get('type') if isinstance(doc, dict) else None!r})")
    if str(doc.get("version")) not in ("1.1", "2.0"):
        raise CityModelError(f"{path.name}: CityJSON version {doc.get('version')!r} is not "
                             "supported; use 1.1 or 2.0 (cjio upgrade converts older files)")


def _need_crs(src, path):
    if not src:
        raise CityModelError(f"{path.name} declares no referenceSystem: give --crs "
                             "(e.g. --crs EPSG:7415 for RD New + NAP)")
    return src
