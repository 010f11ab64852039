"""glb content for one tile: triangles, normals, per-feature ids (EXT_mesh_features)
and the features' attributes in a typed property table (EXT_structural_metadata).

Written by hand (JSON chunk + binary chunk) to keep full control of what the glTF
validator and the 3D Tiles runtimes check: y-up positions in float32 relative to
the tile's own frame, accessors with min/max, 4-byte aligned buffer views.
"""
from __future__ import annotations

import json
import math
import struct

import numpy as np

FLOAT, UINT32 = 5126, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963


class _Buffer:
    def __init__(self):
        self.parts, self.views, self.length = [], [], 0

    def add(self, data: bytes, target: int | None = None, align: int = 8) -> int:
        pad = (-self.length) % align
        if pad:
            self.parts.append(b"\0" * pad)
            self.length += pad
        view = {"buffer": 0, "byteOffset": self.length, "byteLength": len(data)}
        if target:
            view["target"] = target
        self.parts.append(data)
        self.length += len(data)
        self.views.append(view)
        return len(self.views) - 1

    def bytes(self) -> bytes:
        data = b"".join(self.parts)
        return data + b"\0" * ((-len(data)) % 4)


def _property_type(kinds: set) -> tuple[str, dict]:
    if kinds and kinds <= {bool}:
        # loaders.gl 4 cannot decode BOOLEAN columns: 0/1 in a UINT8 scalar reads everywhere
        return "UINT8", {"type": "SCALAR", "componentType": "UINT8",
                         "description": "boolean: 1 true, 0 false"}
    if kinds and kinds <= {int, float}:
        return "FLOAT64", {"type": "SCALAR", "componentType": "FLOAT64"}
    return "STRING", {"type": "STRING"}


NO_DATA = -1.0e9  # declared as noData where a numeric attribute is missing


def metadata_schema(kinds_seen: dict[str, set], missing: set[str]) -> tuple[dict, dict]:
    """A typed schema for the objects' attributes (and the surface classes), from the
    Python types seen per attribute and the attributes some objects lack."""
    kinds, props = {}, {}
    for name, seen in kinds_seen.items():
        kind, prop = _property_type(seen)
        if kind == "FLOAT64" and name in missing:
            prop["noData"] = NO_DATA
        kinds[name], props[name] = kind, prop
    schema = {"id": "oup_city", "classes": {
        "cityobject": {"name": "City object", "properties": props},
        "surface": {"name": "Semantic surface", "properties": {"type": {"type": "STRING"}}}}}
    return schema, kinds


def _strings(buf: _Buffer, values: list) -> dict:
    encoded = [("" if v is None else str(v)).encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, np.uint32)
    offsets[1:] = np.cumsum([len(e) for e in encoded])
    return {"values": buf.add(b"".join(encoded) or b"\0", align=8),
            "stringOffsets": buf.add(offsets.tobytes(), align=8), "stringOffsetType": "UINT32"}


def _property(buf: _Buffer, kind: str, values: list) -> dict:
    if kind == "FLOAT64":
        arr = np.array([NO_DATA if v is None else float(v) for v in values], "<f8")
        return {"values": buf.add(arr.tobytes(), align=8)}
    if kind == "UINT8":
        return {"values": buf.add(np.array([bool(v) for v in values], np.uint8).tobytes(),
                                  align=8)}
    return _strings(buf, values)


def _accessor(acc: list, view: int, arr: np.ndarray, ctype: int, kind: str,
              minmax: bool = True) -> int:
    a = {"bufferView": view, "componentType": ctype, "count": int(len(arr)), "type": kind}
    if minmax:
        flat = arr.reshape(len(arr), -1)
        a["min"] = [float(x) for x in flat.min(axis=0)]
        a["max"] = [float(x) for x in flat.max(axis=0)]
    acc.append(a)
    return len(acc) - 1


def build_glb(positions: np.ndarray, normals: np.ndarray, indices: np.ndarray,
              feature_ids: np.ndarray, surface_ids: np.ndarray, schema: dict,
              kinds: dict[str, str], rows: list[dict], surface_names: list[str],
              color: tuple = (0.85, 0.83, 0.8)) -> bytes:
    """positions/normals: (n, 3) in the tile's ENU frame (z up); converted to glTF y-up."""
    yup = np.column_stack([positions[:, 0], positions[:, 2], -positions[:, 1]]).astype("<f4")
    nyup = np.column_stack([normals[:, 0], normals[:, 2], -normals[:, 1]]).astype("<f4")
    buf, acc = _Buffer(), []
    a_pos = _accessor(acc, buf.add(yup.tobytes(), ARRAY_BUFFER, 4), yup, FLOAT, "VEC3")
    a_nrm = _accessor(acc, buf.add(nyup.tobytes(), ARRAY_BUFFER, 4), nyup, FLOAT, "VEC3",
                      minmax=False)
    fid = feature_ids.astype("<f4")
    a_fid = _accessor(acc, buf.add(fid.tobytes(), ARRAY_BUFFER, 4), fid, FLOAT, "SCALAR",
                      minmax=False)
    sid = surface_ids.astype("<f4")
    a_sid = _accessor(acc, buf.add(sid.tobytes(), ARRAY_BUFFER, 4), sid, FLOAT, "SCALAR",
                      minmax=False)
    idx = indices.astype("<u4").reshape(-1)
    a_idx = _accessor(acc, buf.add(idx.tobytes(), ELEMENT_ARRAY_BUFFER, 4), idx, UINT32,
                      "SCALAR", minmax=False)
    tables = [{
        "class": "cityobject", "count": len(rows),
        "properties": {name: _property(buf, kinds[name], [r.get(name) for r in rows])
                       for name in kinds},
    }, {
        "class": "surface", "count": len(surface_names),
        "properties": {"type": _strings(buf, surface_names)},
    }]
    binary = buf.bytes()
    gltf = {
        "asset": {"version": "2.0", "generator": "OUP tilers"},
        "extensionsUsed": ["EXT_mesh_features", "EXT_structural_metadata"],
        "extensions": {"EXT_structural_metadata": {"schema": schema, "propertyTables": tables}},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "materials": [{"pbrMetallicRoughness": {"baseColorFactor": [*color, 1.0],
                                                "metallicFactor": 0.0,
                                                "roughnessFactor": 0.9},
                       "doubleSided": True}],
        "meshes": [{"primitives": [{
            "attributes": {"POSITION": a_pos, "NORMAL": a_nrm,
                           "_FEATURE_ID_0": a_fid, "_FEATURE_ID_1": a_sid},
            "indices": a_idx, "material": 0, "mode": 4,
            "extensions": {"EXT_mesh_features": {"featureIds": [
                {"featureCount": len(rows), "attribute": 0, "propertyTable": 0},
                {"featureCount": len(surface_names), "attribute": 1, "propertyTable": 1}]}},
        }]}],
        "accessors": acc,
        "bufferViews": buf.views,
        "buffers": [{"byteLength": len(binary)}],
    }
    return pack_glb(gltf, binary)


def pack_glb(gltf: dict, binary: bytes) -> bytes:
    """The binary glTF container: header, JSON chunk (space-padded), BIN chunk."""
    js = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    js += b" " * ((-len(js)) % 4)
    total = 12 + 8 + len(js) + 8 + len(binary)
    return b"".join([struct.pack("<4sII", b"glTF", 2, total),
                     struct.pack("<I4s", len(js), b"JSON"), js,
                     struct.pack("<I4s", len(binary), b"BIN\0"), binary])


def enu_frame(lon_deg: float, lat_deg: float, ecef: np.ndarray) -> np.ndarray:
    """4x4 ENU-to-ECEF matrix (float64) at ``ecef``."""
    lon, lat = math.radians(lon_deg), math.radians(lat_deg)
    east = np.array([-math.sin(lon), math.cos(lon), 0.0])
    north = np.array([-math.sin(lat) * math.cos(lon), -math.sin(lat) * math.sin(lon),
                      math.cos(lat)])
    up = np.array([math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)])
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = east, north, up, ecef
    return m
