"""glb content for one tile: triangles, normals, per-feature ids (EXT_mesh_features)
and the features' attributes in a typed property table (EXT_structural_metadata), the
mesh compressed with Draco (KHR_draco_mesh_compression).

Written by hand (JSON chunk + binary chunk) to keep full control of what the glTF
validator and the 3D Tiles runtimes check: y-up positions relative to the tile's own
frame, accessors with min/max, 4-byte aligned buffer views. Why Draco and not meshopt:
measured on the largest demo tile (66,935 vertices) Draco is 150 KB and meshopt 378 KB
(both with quantised positions and normals), and size is what a city-wide tileset and
a viewer's first picture pay for; CesiumJS decodes Draco in web workers, loaders.gl with
draco3d, both offline (benchmarks/README.md has the figures).
"""
from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from functools import cache

import numpy as np

UINT8, UINT16, UINT32, FLOAT = 5121, 5123, 5125, 5126
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
ENUM_MAX = 255     # a text attribute with at most this many distinct values is an enum


def _identifier(name: str, taken: dict) -> str:
    """A property id as 3D Metadata requires (letters, digits, _; not a digit first) for
    an attribute name as city models write them ("bouwjaar (oorspronkelijk)", "3d-id")."""
    pid = re.sub(r"[^A-Za-z0-9_]", "_", name) or "_"
    pid = "_" + pid if pid[0].isdigit() else pid
    base, n = pid, 1
    while pid in taken:
        n += 1
        pid = f"{base}_{n}"
    return pid


def metadata_schema(kinds_seen: dict[str, set], missing: set[str],
                    texts: dict[str, set | None] | None = None) -> tuple[dict, dict]:
    """A typed schema for the objects' attributes (and the surface classes), from the
    Python types seen per attribute, the attributes some objects lack, and the distinct
    values of the text attributes (None: too many to list).

    Text that repeats (a status, a survey, a source: a few values over a whole city) is
    an ENUM: one byte an object instead of the text again and again. Decoders (CesiumJS,
    loaders.gl) give back the text.
    """
    kinds, props, enums = {}, {}, {}
    for name, seen in kinds_seen.items():
        kind, prop = _property_type(seen)
        values = (texts or {}).get(name)
        if seen == {str} and values and name not in missing and "" not in values:
            enum_id = f"enum_{len(enums)}"
            ordered = sorted(values)
            enums[enum_id] = {"valueType": "UINT8",
                              "values": [{"name": v, "value": i} for i, v in enumerate(ordered)]}
            kind, prop = {v: i for i, v in enumerate(ordered)}, {"type": "ENUM",
                                                                 "enumType": enum_id}
        if kind == "FLOAT64" and name in missing:
            prop["noData"] = NO_DATA
        pid = _identifier(name, props)
        if pid != name:
            prop["name"] = name  # the attribute as the city model names it
        kinds[name], props[pid] = (pid, kind), prop
    schema = {"id": "oup_city", "classes": {
        "cityobject": {"name": "City object", "properties": props},
        "surface": {"name": "Semantic surface", "properties": {"type": {"type": "STRING"}}}}}
    if enums:
        schema["enums"] = enums
    return schema, kinds


def _strings(buf: _Buffer, values: list, head: bytes = b"",
             head_ends: np.ndarray | None = None) -> dict:
    """A STRING column of ``values``; after ``head`` (the bytes of rows before them, and
    where each of those ends), where a table grows."""
    encoded = [("" if v is None else str(v)).encode("utf-8") for v in values]
    ends = np.concatenate([[] if head_ends is None else head_ends,
                           len(head) + np.cumsum([len(e) for e in encoded])]).astype(np.int64)
    kind = "UINT16" if not len(ends) or ends[-1] <= 65_535 else "UINT32"
    offsets = np.zeros(len(ends) + 1, "<u2" if kind == "UINT16" else "<u4")
    offsets[1:] = ends
    return {"values": buf.add(head + b"".join(encoded) or b"\0", align=8),
            "stringOffsets": buf.add(offsets.tobytes(), align=8), "stringOffsetType": kind}


def _values(kind: str | dict, values: list) -> bytes:
    """The bytes of a column that is not text: an enum's indices, numbers, booleans."""
    if isinstance(kind, dict):  # an enum: the index of each value
        return np.array([kind[str(v)] for v in values], np.uint8).tobytes()
    if kind == "FLOAT64":
        return np.array([NO_DATA if v is None else float(v) for v in values], "<f8").tobytes()
    return np.array([bool(v) for v in values], np.uint8).tobytes()


def _property(buf: _Buffer, kind: str | dict, values: list) -> dict:
    if kind == "STRING":
        return _strings(buf, values)
    return {"values": buf.add(_values(kind, values), align=8)}


def _accessor(acc: list, view: int, arr: np.ndarray, ctype: int, kind: str,
              minmax: bool = True) -> int:
    a = {"bufferView": view, "componentType": ctype, "count": int(len(arr)), "type": kind}
    if minmax:
        flat = arr.reshape(len(arr), -1)
        a["min"] = [float(x) for x in flat.min(axis=0)]
        a["max"] = [float(x) for x in flat.max(axis=0)]
    acc.append(a)
    return len(acc) - 1


@cache
def _draco_ids() -> dict[str, int]:
    """Which Draco attribute id DracoPy gives each of our attributes (asked once, of a
    tiny mesh: the numbering is DracoPy's to choose, and the glb must name it)."""
    import DracoPy

    pts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    blob = DracoPy.encode(pts, np.array([[0, 1, 2]]), normals=np.tile([0.0, 0, 1], (3, 1)),
                          normal_quantization_bits=8,
                          generic_attributes={"_FEATURE_ID_0": np.zeros((3, 1), np.uint16),
                                              "_FEATURE_ID_1": np.zeros((3, 1), np.uint8)})
    ids = {}
    for a in DracoPy.decode(blob).attributes:
        name = a.get("name") or {0: "POSITION", 1: "NORMAL"}.get(a["attribute_type"])
        ids[name] = a["unique_id"]
    return ids


POSITION_STEP = 0.002  # metres: Draco quantises positions to at most this step (1 mm off)
_NAMES = ["POSITION", "NORMAL", "_FEATURE_ID_0", "_FEATURE_ID_1"]


@dataclass(frozen=True)
class Part:
    """One Draco-compressed primitive of a tile: its bytes, its accessors (``_NAMES``,
    then the indices) and how many features (objects) it draws. A tile is one part as
    the tiler makes it; an update adds a part for the buildings added to a leaf."""
    blob: bytes
    accessors: list
    features: int


def draco_part(positions: np.ndarray, normals: np.ndarray, indices: np.ndarray,
               feature_ids: np.ndarray, surface_ids: np.ndarray, features: int,
               step: float = POSITION_STEP) -> Part:
    """positions/normals: (n, 3) in the tile's ENU frame (z up); glTF is y-up. Positions
    are quantised to ``step`` (``POSITION_STEP``) over the part, normals octahedrally to 8
    bits, feature ids stay exact small integers (u16 objects, u8 surface classes);
    indices decode as u16 where the part has at most 65,535 vertices."""
    import DracoPy

    yup = np.column_stack([positions[:, 0], positions[:, 2], -positions[:, 1]])
    nyup = np.column_stack([normals[:, 0], normals[:, 2], -normals[:, 1]])
    tris, fids, sids = indices, feature_ids.astype(np.uint16), surface_ids.astype(np.uint8)
    extent = float(np.ptp(yup, axis=0).max()) if len(yup) else 0.0
    bits = int(min(24, max(12, math.ceil(math.log2(max(extent, 1.0) / step)))))
    blob = DracoPy.encode(yup, tris, quantization_bits=bits, compression_level=7,
                          normals=nyup, normal_quantization_bits=8,
                          # named in Draco's metadata too, so decoders that go by name
                          # (loaders.gl) find them
                          generic_attributes={"_FEATURE_ID_0": fids.reshape(-1, 1),
                                              "_FEATURE_ID_1": sids.reshape(-1, 1)})
    # Draco merges identical vertices and splits non-manifold ones: the accessors declare
    # what it decodes to, so it is asked (about a tenth of the encoding time)
    decoded = DracoPy.decode(blob)
    n, n_indices = len(decoded.points), int(np.asarray(decoded.faces).size)
    acc = [{"componentType": FLOAT, "count": n, "type": "VEC3",
            "min": [float(v) for v in decoded.points.min(axis=0)],
            "max": [float(v) for v in decoded.points.max(axis=0)]},
           {"componentType": FLOAT, "count": n, "type": "VEC3"},
           {"componentType": UINT16, "count": n, "type": "SCALAR"},
           {"componentType": UINT8, "count": n, "type": "SCALAR"},
           {"componentType": UINT16 if n <= 65_535 else UINT32, "count": n_indices,
            "type": "SCALAR"}]
    return Part(blob, acc, features)


def build_glb(positions: np.ndarray, normals: np.ndarray, indices: np.ndarray,
              feature_ids: np.ndarray, surface_ids: np.ndarray, schema: dict,
              kinds: dict[str, tuple], rows: list[dict], surface_names: list[str],
              color: tuple = (0.85, 0.83, 0.8), step: float = POSITION_STEP) -> bytes:
    """A Draco-compressed (KHR_draco_mesh_compression) glb of one tile: one part
    (``draco_part``) and the property tables of its ``rows``."""
    if len(rows) > 65_535:
        raise ValueError("a tile holds at most 65,535 objects (u16 feature ids)")
    part = draco_part(positions, normals, indices, feature_ids, surface_ids, len(rows), step)
    return assemble([part], color, schema, kinds, rows, surface_names)


def assemble(parts: list[Part], color: list | tuple, schema: dict, kinds: dict,
             rows: list[dict], surface_names: list[str]) -> bytes:
    """The glb of Draco meshes (``parts``, a primitive each, their feature ids numbered
    through all of them) and its features' property tables: the Draco bytes first in
    the buffer, the tables after them."""
    return _packed(parts, color, schema, len(rows), surface_names, lambda buf: {
        pid: _property(buf, kind, [r.get(name) for r in rows])
        for name, (pid, kind) in kinds.items()})


def with_part(glb: bytes, part: Part, schema: dict, kinds: dict, rows: list[dict],
          surface_names: list[str]) -> bytes:
    """A glb of ``assemble`` with one part more (``part``, its features numbered after
    the glb's) and their ``rows`` after the glb's own in its property table: the rows
    there are kept as they are, not read again from the records and encoded anew (a
    coarse tile's table holds up to 65,535). ValueError where the glb's schema is not
    ``schema`` (an attribute came, an enum got a value): then the table is made whole."""
    gltf, binary = unpack_glb(glb)
    parts, color = _parts(gltf, binary)
    try:
        metadata = gltf["extensions"]["EXT_structural_metadata"]
        table = metadata["propertyTables"][0]
        before = table["count"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"not a glb of assemble (no {exc})") from None
    if metadata.get("schema") != schema:
        raise ValueError("the glb's schema is not the tileset's now")

    def view(i: int) -> bytes:
        v = gltf["bufferViews"][i]
        at = v.get("byteOffset", 0)
        return binary[at:at + v["byteLength"]]

    def columns(buf: _Buffer) -> dict:
        out = {}
        for name, (pid, kind) in kinds.items():
            old, values = table["properties"][pid], [r.get(name) for r in rows]
            if kind == "STRING":
                width = "<u2" if old["stringOffsetType"] == "UINT16" else "<u4"
                ends = np.frombuffer(view(old["stringOffsets"]), width)[1:before + 1]
                head = view(old["values"])[:int(ends[-1]) if len(ends) else 0]
                out[pid] = _strings(buf, values, head, ends)
            else:  # one byte a row, or eight (FLOAT64)
                size = 8 if kind == "FLOAT64" else 1
                out[pid] = {"values": buf.add(view(old["values"])[:before * size] +
                                              _values(kind, values), align=8)}
        return out

    return _packed([*parts, part], color, schema, before + len(rows), surface_names, columns)


def _packed(parts: list[Part], color: list | tuple, schema: dict, count: int,
            surface_names: list[str], columns) -> bytes:
    """The glb of ``parts`` and a property table of ``count`` features whose columns
    ``columns(buffer)`` adds to the buffer (after the parts' Draco bytes)."""
    buf = _Buffer()
    views = [buf.add(part.blob, align=4) for part in parts]
    tables = [{"class": "cityobject", "count": count, "properties": columns(buf)}, {
        "class": "surface", "count": len(surface_names),
        "properties": {"type": _strings(buf, surface_names)},
    }]
    binary = buf.bytes()
    ids = _draco_ids()
    width = len(_NAMES) + 1  # accessors a part
    primitives = [{
        "attributes": {name: k * width + i for i, name in enumerate(_NAMES)},
        "indices": k * width + len(_NAMES), "material": 0, "mode": 4,
        "extensions": {
            "KHR_draco_mesh_compression": {"bufferView": view,
                                           "attributes": {n: ids[n] for n in _NAMES}},
            "EXT_mesh_features": {"featureIds": [
                {"featureCount": part.features, "attribute": 0, "propertyTable": 0},
                {"featureCount": len(surface_names), "attribute": 1, "propertyTable": 1}]}},
    } for k, (part, view) in enumerate(zip(parts, views))]
    gltf = {
        "asset": {"version": "2.0", "generator": "OUP tilers"},
        "extensionsUsed": ["KHR_draco_mesh_compression", "EXT_mesh_features",
                           "EXT_structural_metadata"],
        "extensionsRequired": ["KHR_draco_mesh_compression"],
        "extensions": {"EXT_structural_metadata": {"schema": schema, "propertyTables": tables}},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "materials": [{"pbrMetallicRoughness": {"baseColorFactor": [*color[:3], 1.0],
                                                "metallicFactor": 0.0,
                                                "roughnessFactor": 0.9},
                       "doubleSided": True}],
        "meshes": [{"primitives": primitives}],
        "accessors": [a for part in parts for a in part.accessors],
        "bufferViews": buf.views,
        "buffers": [{"byteLength": len(binary)}],
    }
    return pack_glb(gltf, binary)


def _parts(gltf: dict, binary: bytes) -> tuple[list[Part], list]:
    """``parts_of`` an unpacked glb."""
    try:
        parts = []
        for prim in gltf["meshes"][0]["primitives"]:
            view = gltf["bufferViews"][prim["extensions"]["KHR_draco_mesh_compression"]
                                       ["bufferView"]]
            at = view.get("byteOffset", 0)
            parts.append(Part(binary[at:at + view["byteLength"]],
                              [gltf["accessors"][prim["attributes"][n]] for n in _NAMES] +
                              [gltf["accessors"][prim["indices"]]],
                              prim["extensions"]["EXT_mesh_features"]["featureIds"][0]
                              ["featureCount"]))
        color = gltf["materials"][0]["pbrMetallicRoughness"]["baseColorFactor"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"not a glb of build_glb (no {exc})") from None
    return parts, color


def parts_of(glb: bytes) -> tuple[list[Part], list]:
    """The parts of a glb of ``assemble`` (their Draco bytes and accessors as they are)
    and its colour; ValueError if it is not one."""
    return _parts(*unpack_glb(glb))


def with_rows(glb: bytes, schema: dict, kinds: dict, rows: list[dict],
              surface_names: list[str]) -> bytes:
    """A glb of ``build_glb`` (or ``assemble``) with new property tables (``rows``, one
    per feature, in feature id order) and the same meshes: their Draco bytes and
    accessors are kept as they are, so an attribute change costs no meshing, placing or
    encoding. The bytes are those ``build_glb`` gives for the same mesh and rows."""
    parts, color = parts_of(glb)
    if sum(p.features for p in parts) != len(rows):
        raise ValueError(f"the glb numbers {sum(p.features for p in parts)} features, "
                         f"{len(rows)} rows given")
    return assemble(parts, color, schema, kinds, rows, surface_names)


def unpack_glb(glb: bytes) -> tuple[dict, bytes]:
    """The JSON and the BIN chunk of a glb (``pack_glb``'s layout); ValueError if it is
    none (or cut short)."""
    try:
        magic, _, _ = struct.unpack_from("<4sII", glb, 0)
        js_len, js_type = struct.unpack_from("<I4s", glb, 12)
        bin_at = 20 + js_len
        bin_len, _ = struct.unpack_from("<I4s", glb, bin_at)
    except struct.error as exc:
        raise ValueError(f"not a whole glb ({exc})") from None
    if magic != b"glTF" or js_type != b"JSON" or len(glb) < bin_at + 8 + bin_len:
        raise ValueError("not a whole glb")
    return json.loads(glb[20:bin_at]), glb[bin_at + 8:bin_at + 8 + bin_len]


def pack_glb(gltf: dict, binary: bytes) -> bytes:
    """The binary glTF container: header, JSON chunk (space-padded), BIN chunk."""
    js = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    js += b" " * ((-len(js)) % 4)
    total = 12 + 8 + len(js) + 8 + len(binary)
    return b"".join([struct.pack("<4sII", b"glTF", 2, total),
                     struct.pack("<I4s", len(js), b"JSON"), js,
                     struct.pack("<I4s", len(binary), b"BIN\0"), binary])
