"""City objects of a CityJSON model (read by ``oup.cityjson``) as triangles.

A ``CityObjectMesh`` is one feature of the tileset: a top-level city object with its
children (BuildingParts join their Building), at one level of detail, as triangles
in the source CRS with the semantic surface class of each triangle.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
import numpy as np

from oup.cityjson import CityModelError, lod_key, lod_of, surfaces

from .triangulate import triangulate_surfaces

__all__ = ["CityModelError", "CityObjectMesh", "ReadReport", "mesh_documents", "lod_key"]

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
    points: np.ndarray     # (p, 3) float64, source CRS: each distinct corner once
    triangles: np.ndarray  # (k, 3) uint32 indices into the vertices
    surfaces: np.ndarray   # (n,) uint8 per vertex (vertices are not shared between surfaces)
    corners: np.ndarray | None = None  # (n,) the point of each vertex; None: one each

    # A corner is a vertex of three or so surfaces. Keeping each point once lets the
    # tiles' exact geodesy (the costliest step after compression) transform a third.
    @property
    def vertices(self) -> np.ndarray:
        """(n, 3) the vertices of the triangles, surface by surface."""
        return self.points if self.corners is None else self.points[self.corners]


@dataclass
class ReadReport:
    objects: int = 0
    skipped: Counter = field(default_factory=Counter)
    lods: set = field(default_factory=set)
    warnings: list = field(default_factory=list)


def mesh_documents(documents, lod: str | None, report: ReadReport,
                   z_offset: str | None = None) -> list[CityObjectMesh]:
    """The top-level objects of some (doc, vertices) pairs as meshes, at ``lod`` (None:
    each object's highest). All their surfaces are triangulated in one batch."""
    found, faces, kinds = [], [], []   # found: (id, object, first surface, surfaces)
    doc_surfaces, doc_verts = [], []
    for doc, verts in documents:
        objs, before = doc.get("CityObjects", {}), len(faces)
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
            first = len(faces)
            for g in geoms:
                if lod_of(g) == want:
                    for rings, kind in surfaces(g):
                        faces.append(rings)
                        kinds.append(kind)
            if len(faces) == first:
                report.skipped[f"no LoD {want}"] += 1
                continue
            found.append((oid, obj, first, len(faces) - first))
        doc_surfaces.append(len(faces) - before)
        doc_verts.append(verts)
    if not found:
        return []
    counts = np.array([len(v) for v in doc_verts], np.int64)
    per_doc = np.asarray(doc_surfaces, np.int64)
    stacked = np.vstack(doc_verts)
    tri = triangulate_surfaces(faces, stacked,
                               np.repeat(np.cumsum(counts) - counts, per_doc),
                               np.repeat(counts, per_doc))
    # the class of each surface: its semantics, else guessed from which way it faces
    sem = np.fromiter((_SEMANTIC.get(k, -1) if k else -1 for k in kinds), np.int8, len(kinds))
    nz = tri.normals[:, 2]
    guess = np.where(nz >= 0.2, ROOF, np.where(nz <= -0.2, GROUND, WALL))
    classes = np.repeat(np.where(sem >= 0, sem, guess).astype(np.uint8), tri.vertex_counts)
    v_at = np.concatenate([[0], np.cumsum(tri.vertex_counts)])
    t_at = np.concatenate([[0], np.cumsum(tri.triangle_counts)])
    # each object's distinct points, in one sort: (object, source vertex) pairs
    firsts = np.array([f for _, _, f, _ in found])
    ends = firsts + np.array([n for _, _, _, n in found])
    owner = np.repeat(np.arange(len(found)), v_at[ends] - v_at[firsts])
    _, once, corner = np.unique(owner * (len(stacked) + 1) + tri.source, return_index=True,
                                return_inverse=True)
    points = stacked[tri.source[once]]
    p_at = np.concatenate([[0], np.cumsum(np.bincount(owner[once], minlength=len(found)))])
    # per object, in a few array operations rather than a few per object
    local_corner = (corner - p_at[owner]).astype(np.uint32)
    local_tris = (tri.triangles - v_at[firsts][owner[tri.triangles[:, 0]]][:, None]).astype(np.uint32)
    bad = np.add.reduceat(tri.bad_index, firsts).tolist()
    dropped = (ends - firsts - np.add.reduceat(tri.kept, firsts)).tolist()
    v_from, v_to = v_at[firsts].tolist(), v_at[ends].tolist()
    t_from, t_to = t_at[firsts].tolist(), t_at[ends].tolist()
    meshes = []
    for o, (oid, obj, _, _) in enumerate(found):
        if bad[o]:
            report.skipped["vertex index out of range"] += 1
            continue
        if dropped[o]:
            report.skipped["degenerate surface (no area)"] += dropped[o]
        v0, v1 = v_from[o], v_to[o]
        if v0 == v1:
            report.skipped["no surface left after cleaning"] += 1
            continue
        attrs = {k: v for k, v in (obj.get("attributes") or {}).items()
                 if isinstance(v, (str, int, float, bool)) or v is None}
        pts = points[p_at[o]:p_at[o + 1]]
        if z_offset:
            lift = attrs.get(z_offset)
            if isinstance(lift, (int, float)) and not isinstance(lift, bool):
                pts[:, 2] += lift
            else:
                note = f"objects without a numeric {z_offset} are left at z as drawn"
                if note not in report.warnings:
                    report.warnings.append(note)
        report.objects += 1
        meshes.append(CityObjectMesh(oid, obj.get("type", "GenericCityObject"), attrs, pts,
                                     local_tris[t_from[o]:t_to[o]], classes[v0:v1],
                                     local_corner[v0:v1]))
    return meshes
