"""The tiler's spill files: each object and its block written once, by the process that
meshed it, and read back by the process that makes a tile holding it.

A record is its length, a small pickled header (id, type, attributes, array lengths)
and the raw bytes of its arrays. Pickling the arrays themselves cost about 20 us an
object each way, more than making the object's block.
"""
from __future__ import annotations

import math
import pickle
import struct
from typing import BinaryIO

import numpy as np

from .cityjson import CityObjectMesh
from .lod import Block

_SIZES = struct.Struct("<II")  # the record's length after these 8 bytes, its header's
F8, U4, U1, BOOL = (np.dtype(t) for t in (np.float64, np.uint32, np.uint8, np.bool_))


def _record(header: tuple, arrays: list[np.ndarray]) -> bytes:
    head = pickle.dumps(header, protocol=pickle.HIGHEST_PROTOCOL)
    body = b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)
    return _SIZES.pack(len(head) + len(body), len(head)) + head + body


def _arrays(buf: bytes, at: int, specs: list[tuple]) -> list[np.ndarray]:
    out = []
    for dtype, shape in specs:  # math.prod, not np.prod: ~0.1 us against ~10 a call
        count = math.prod(shape)
        out.append(np.frombuffer(buf, dtype, count, at).reshape(shape))
        at += count * dtype.itemsize
    return out


def mesh_record(mesh: CityObjectMesh) -> bytes:
    corners = mesh.corners is not None
    return _record(("object", mesh.id, mesh.type, mesh.attributes, len(mesh.points), len(mesh.triangles),
                    len(mesh.surfaces), corners),
                   [mesh.points.astype(np.float64), mesh.triangles.astype(np.uint32),
                    mesh.surfaces.astype(np.uint8)] +
                   ([mesh.corners.astype(np.uint32)] if corners else []))


def block_record(block: Block, row: dict) -> bytes:
    verts, tris, roof = block.mesh
    return _record(("block", row, len(block.ring), block.z0, block.z1, block.deviation, block.size,
                    len(verts), len(tris)),
                   [block.ring.astype(np.float64), verts.astype(np.float64),
                    tris.astype(np.uint32), roof.astype(bool)])


def read_row(fh: BinaryIO, offset: int) -> dict:
    """The id, type and attributes of the object or block recorded at ``offset`` (its
    row in a tile's property table), without its arrays."""
    fh.seek(offset)
    _, head_length = _SIZES.unpack(fh.read(_SIZES.size))
    header = pickle.loads(fh.read(head_length))
    if header[0] == "object":
        return {"id": header[1], "type": header[2], **header[3]}
    return header[1]


def read_outline(fh: BinaryIO, offset: int) -> tuple[np.ndarray, float, float, dict]:
    """(ring, bottom, top, row) of the block recorded at ``offset``: what a coarse tile
    makes its mesh from (``lod.stacked_blocks``), without the block's own mesh arrays."""
    fh.seek(offset)
    length, head_length = _SIZES.unpack(fh.read(_SIZES.size))
    buf = fh.read(length)
    _, row, k, z0, z1, *_ = pickle.loads(buf[:head_length])
    return np.frombuffer(buf, F8, 2 * k, head_length).reshape(k, 2), z0, z1, row


def read_record(fh: BinaryIO, offset: int):
    """The object (``CityObjectMesh``) or (``Block``, row) recorded at ``offset``."""
    fh.seek(offset)
    length, head_length = _SIZES.unpack(fh.read(_SIZES.size))
    buf = fh.read(length)
    header = pickle.loads(buf[:head_length])
    if header[0] == "object":
        _, oid, kind, attributes, n_points, n_tris, n_verts, corners = header
        specs = [(F8, (n_points, 3)), (U4, (n_tris, 3)), (U1, (n_verts,))]
        arrays = _arrays(buf, head_length, specs + ([(U4, (n_verts,))] if corners else []))
        return CityObjectMesh(oid, kind, attributes, *arrays)
    _, row, k, z0, z1, deviation, size, n_verts, n_tris = header
    ring, verts, tris, roof = _arrays(buf, head_length, [
        (F8, (k, 2)), (F8, (n_verts, 3)), (U4, (n_tris, 3)), (BOOL, (n_verts,))])
    return Block(ring, z0, z1, deviation, size, (verts, tris, roof)), row
