"""City objects of a CityJSON model (read by ``oup.cityjson``) as triangles.

A ``CityObjectMesh`` is one feature of the tileset: a top-level city object with its
children (BuildingParts join their Building), at one level of detail, as triangles
in the source CRS with the semantic surface class of each triangle.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from oup.cityjson import CityModelError, lod_key, lod_of, surfaces

from .triangulate import triangulate_many

__all__ = ["CityModelError", "CityObjectMesh", "ReadReport", "mesh_objects", "lod_key"]

# semantic surface classes, stored per triangle
OTHER, GROUND, WALL, ROOF = 0, 1, 2, 3
SURFACE_NAMES = ["other", "ground", "wall", "roof"]
_SEMANTIC = {"GroundSurface": GROUND, "WallSurface": WALL, "ClosureSurface": WALL,
             "OuterCeilingSurface": WALL, "OuterFloorSurface": GROUND, "RoofSurface": ROOF,
             "Door": WALL, "Window": WALL, "TrafficArea": GROUND, "AuxiliaryTrafficArea": GROUND,
             "WaterSurface": GROUND, "WaterGroundSurface": GROUND}


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
        lods = {lod_of(g) for g in geoms}
        report.lods |= lods
        if not geoms:
            report.skipped["no geometry"] += 1
            continue
        want = lod or max(lods, key=lod_key)
        chosen = [g for g in geoms if lod_of(g) == want]
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
