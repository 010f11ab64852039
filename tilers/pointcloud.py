"""LAS/LAZ point clouds -> 3D Tiles 1.1 with glb point content.

Read with laspy; tiled with the same quadtree, RDNAPTRANS(TM)2018 geodesy and per-tile
ENU frames as the city model. The glb is written here rather than by py3dtiles,
whose glb points fail the glTF validator (colours not normalised, z-up positions):
POSITION in float32 metres, y-up; COLOR_0 as normalised unsigned bytes.
"""
from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np

from .cityjson import CityModelError
from .gltf import FLOAT, ARRAY_BUFFER, _accessor, _Buffer, enu_frame
from .tileset import Geodesy, Node, _split

UNSIGNED_BYTE = 5121


def read_las(path: Path, crs: str | None):
    """(CRS, xyz (n, 3) float64, rgb (n, 3) uint8 or None)."""
    import laspy

    try:
        las = laspy.read(path)
    except Exception as exc:  # laspy raises several kinds for a broken file
        raise CityModelError(f"{path.name} is not a readable LAS/LAZ file ({exc})") from None
    if crs is None:
        parsed = las.header.parse_crs()
        if parsed is None:
            raise CityModelError(f"{path.name} declares no CRS: give --crs (e.g. EPSG:7415)")
        epsg = parsed.to_epsg() or (parsed.sub_crs_list[0].to_epsg() if parsed.is_compound
                                    else None)
        crs = "EPSG:7415" if epsg in (28992, 7415) else f"EPSG:{epsg}"
    xyz = np.column_stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)])
    rgb = None
    if {"red", "green", "blue"} <= set(las.point_format.dimension_names):
        rgb16 = np.column_stack([las.red, las.green, las.blue]).astype(np.uint32)
        rgb = (rgb16 >> 8 if rgb16.max() > 255 else rgb16).astype(np.uint8)
    return crs, xyz, rgb


def _points_glb(enu: np.ndarray, rgb: np.ndarray | None) -> bytes:
    yup = np.column_stack([enu[:, 0], enu[:, 2], -enu[:, 1]]).astype("<f4")
    buf, acc = _Buffer(), []
    attrs = {"POSITION": _accessor(acc, buf.add(yup.tobytes(), ARRAY_BUFFER, 4), yup, FLOAT,
                                   "VEC3")}
    if rgb is not None:
        # 4-byte aligned elements: pad RGB to RGBA
        rgba = np.column_stack([rgb, np.full(len(rgb), 255, np.uint8)])
        attrs["COLOR_0"] = _accessor(acc, buf.add(rgba.tobytes(), ARRAY_BUFFER, 4), rgba,
                                     UNSIGNED_BYTE, "VEC4", minmax=False)
        acc[-1]["normalized"] = True
    binary = buf.bytes()
    gltf = {"asset": {"version": "2.0", "generator": "OUP tilers"},
            "extensionsUsed": ["KHR_materials_unlit"],
            "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
            "materials": [{"pbrMetallicRoughness": {"baseColorFactor": [1, 1, 1, 1],
                                                    "metallicFactor": 0, "roughnessFactor": 1},
                           "extensions": {"KHR_materials_unlit": {}}}],
            "meshes": [{"primitives": [{"attributes": attrs, "mode": 0, "material": 0}]}],
            "accessors": acc, "bufferViews": buf.views,
            "buffers": [{"byteLength": len(binary)}]}
    js = json.dumps(gltf, separators=(",", ":")).encode()
    js += b" " * ((-len(js)) % 4)
    total = 12 + 8 + len(js) + 8 + len(binary)
    return b"".join([struct.pack("<4sII", b"glTF", 2, total), struct.pack("<I4s", len(js), b"JSON"),
                     js, struct.pack("<I4s", len(binary), b"BIN\0"), binary])


def write_point_tileset(path: Path, crs: str | None, out: Path, budget: int = 100_000,
                        progress=lambda n: None) -> dict:
    src, xyz, rgb = read_las(path, crs)
    if not len(xyz):
        raise CityModelError(f"{path.name} holds no points")
    geo = Geodesy(src)
    bounds = (xyz[:, 0].min(), xyz[:, 1].min(), xyz[:, 0].max() + 1e-6, xyz[:, 1].max() + 1e-6)
    root = _split(Node(np.arange(len(xyz)), bounds, 0, "r"), xyz[:, :2], np.ones(len(xyz), int),
                  budget)
    (out / "tiles").mkdir(parents=True)
    stats = {"tiles": 0, "vertices_per_tile": [], "objects": int(len(xyz))}

    def build(node: Node) -> dict:
        if node.children:
            kids = [build(c) for c in node.children]
            regions = np.array([k["boundingVolume"]["region"] for k in kids])
            region = [regions[:, 0].min(), regions[:, 1].min(), regions[:, 2].max(),
                      regions[:, 3].max(), regions[:, 4].min(), regions[:, 5].max()]
            size = math.hypot((region[2] - region[0]) * 6_378_137 * math.cos(region[1]),
                              (region[3] - region[1]) * 6_378_137)
            return {"boundingVolume": {"region": [float(v) for v in region]},
                    "geometricError": max(1.0, size / 2), "refine": "ADD", "children": kids}
        idx = np.sort(node.items)
        llh = geo.geodetic(xyz[idx])
        lon0 = (llh[:, 0].min() + llh[:, 0].max()) / 2
        lat0 = (llh[:, 1].min() + llh[:, 1].max()) / 2
        anchor = geo.ecef(np.array([[lon0, lat0, llh[:, 2].min()]]))[0]
        frame = enu_frame(lon0, lat0, anchor)
        enu = (geo.ecef(llh) - anchor) @ frame[:3, :3]
        name = f"tiles/{node.id}.glb"
        (out / name).write_bytes(_points_glb(enu, None if rgb is None else rgb[idx]))
        stats["tiles"] += 1
        stats["vertices_per_tile"].append(int(len(idx)))
        progress(len(idx))
        return {"boundingVolume": {"region": [
                    math.radians(llh[:, 0].min()), math.radians(llh[:, 1].min()),
                    math.radians(llh[:, 0].max()), math.radians(llh[:, 1].max()),
                    float(llh[:, 2].min()), float(llh[:, 2].max())]},
                "geometricError": 0.0, "refine": "ADD",
                "transform": [float(v) for v in frame.T.reshape(-1)],
                "content": {"uri": name}}

    root_tile = build(root)
    if "content" in root_tile:
        root_tile = {"boundingVolume": root_tile["boundingVolume"], "geometricError": 50.0,
                     "refine": "ADD", "children": [root_tile]}
    (out / "tileset.json").write_text(json.dumps({
        "asset": {"version": "1.1", "generator": "OUP tilers"},
        "geometricError": root_tile["geometricError"] * 2, "root": root_tile},
        separators=(",", ":")))
    stats["bytes"] = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return stats
