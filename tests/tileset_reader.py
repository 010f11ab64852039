"""Reading our own tilesets back, independently of the tiler: glb geometry (plain or
Draco, decoded by DracoPy), every content tile with its world transform (3D Tiles
composes a tile's transform with its parents'), and the ECEF points of the leaves."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np


def read_gltf(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    jlen = struct.unpack_from("<I", data, 12)[0]
    return json.loads(data[20:20 + jlen]), data[20 + jlen + 8:]


def read_glb(path: Path) -> np.ndarray:
    """The positions of the glb's mesh (all its primitives), z-up (as the tile's frame
    has them)."""
    gltf, binary = read_gltf(path)
    parts = []
    for prim in gltf["meshes"][0]["primitives"]:
        draco = prim.get("extensions", {}).get("KHR_draco_mesh_compression")
        if draco:
            import DracoPy

            view = gltf["bufferViews"][draco["bufferView"]]
            at = view.get("byteOffset", 0)
            parts.append(np.asarray(DracoPy.decode(binary[at:at + view["byteLength"]]).points,
                                    float))
        else:
            acc = gltf["accessors"][prim["attributes"]["POSITION"]]
            view = gltf["bufferViews"][acc["bufferView"]]
            parts.append(np.frombuffer(binary, "<f4", acc["count"] * 3,
                                       view["byteOffset"]).reshape(-1, 3))
    yup = np.vstack(parts)
    return np.column_stack([yup[:, 0], -yup[:, 2], yup[:, 1]]).astype(float)  # back to z-up


def content_tiles(folder: Path):
    """(tile, world 4x4 matrix, depth) for every tile with content, root first."""
    ts = json.loads((folder / "tileset.json").read_text())

    def walk(t, world, depth):
        if "transform" in t:
            world = world @ np.array(t["transform"]).reshape(4, 4).T
        if "content" in t:
            yield t, world, depth
        for c in t.get("children", []):
            yield from walk(c, world, depth + 1)
    yield from walk(ts["root"], np.eye(4), 0)


def ecef_of(folder: Path, tile: dict, world: np.ndarray) -> np.ndarray:
    enu = read_glb(folder / tile["content"]["uri"])
    return enu @ world[:3, :3].T + world[:3, 3]


def leaf_points(folder: Path) -> np.ndarray:
    """ECEF of every vertex of every leaf (the detailed content)."""
    return np.vstack([ecef_of(folder, t, w) for t, w, _ in content_tiles(folder)
                      if not t.get("children")])


def feature_ids(path: Path) -> list[str]:
    """The ``id`` of every object in a glb's property table (EXT_structural_metadata: the
    string values and their offsets), as a viewer reads it when one is picked."""
    gltf, binary = read_gltf(path)
    ext = gltf["extensions"]["EXT_structural_metadata"]
    table = next(t for t in ext["propertyTables"] if t["class"] == "cityobject")
    column = table["properties"]["id"]
    views = gltf["bufferViews"]

    def view(i: int) -> bytes:
        v = views[i]
        return binary[v.get("byteOffset", 0):v.get("byteOffset", 0) + v["byteLength"]]
    prop = ext["schema"]["classes"]["cityobject"]["properties"]["id"]
    if prop["type"] == "ENUM":  # a few ids (a small city): each one's value, by its name
        names = {v["value"]: v["name"] for v in ext["schema"]["enums"][prop["enumType"]]["values"]}
        return [names[v] for v in view(column["values"])[:table["count"]]]
    kind = "<u2" if column.get("stringOffsetType", "UINT32") == "UINT16" else "<u4"
    offsets = np.frombuffer(view(column["stringOffsets"]), kind)[:table["count"] + 1]
    text = view(column["values"])
    return [text[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])]
