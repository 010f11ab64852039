"""LAS/LAZ point clouds -> 3D Tiles 1.1 with glb point content.

Read with laspy; tiled with the same quadtree, RDNAPTRANS(TM)2018 geodesy and per-tile
ENU frames as the city model. The glb is written here rather than by py3dtiles,
whose glb points fail the glTF validator (colours not normalised, z-up positions):
POSITION in float32 metres, y-up; COLOR_0 as normalised unsigned bytes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .cityjson import CityModelError
from .gltf import ARRAY_BUFFER, FLOAT, UINT8, _accessor, _Buffer, pack_glb
from .placement import Geodesy, as_transform, local_frame, region_error, region_of, union
from .tileset import Node, _split, write_tileset_json




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
                                     UINT8, "VEC4", minmax=False)
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
    return pack_glb(gltf, binary)


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
        """Tiles without content over the leaves, refined by ADD: each leaf holds its own
        points (a point cloud has no coarse stand-in to replace)."""
        if node.children:
            kids = [build(c) for c in node.children]
            region = union([k["boundingVolume"]["region"] for k in kids])
            return {"boundingVolume": {"region": region}, "geometricError": region_error(region),
                    "refine": "ADD", "children": kids}
        idx = np.sort(node.items)
        llh = geo.geodetic(xyz[idx])
        frame, enu = local_frame(geo, llh)
        name = f"tiles/{node.id}.glb"
        (out / name).write_bytes(_points_glb(enu, None if rgb is None else rgb[idx]))
        stats["tiles"] += 1
        stats["vertices_per_tile"].append(int(len(idx)))
        progress(len(idx))
        return {"boundingVolume": {"region": region_of(llh)}, "geometricError": 0.0,
                "refine": "ADD", "transform": as_transform(frame),
                "content": {"uri": name}}

    write_tileset_json(out, build(root))
    stats["bytes"] = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return stats
