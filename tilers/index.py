"""What `oup tile` keeps beside a city tileset so that a changed object can be tiled again
alone (``tilers.update``): the folder ``.oup-index/`` in the tileset folder.

It holds the objects' records as the tiler parked them (each object in full detail and
its block, ``tilers.spill``; the spill files are kept rather than removed, so the full
run pays nothing to write them) and ``index.npz``: for each object its id, its leaf, where
its records are and the few numbers the tree and the coarse levels are made from; for
each tile its id (the quadtree path, ``r`` then one digit a level), its cell (the box
the split gave it), its ENU frame, the region of its own content and its own error; and
how the tileset was made (CRS, LoD, z offset attribute, vertex budget, the attribute
summary the metadata schema comes from).

Written whole to a temporary name and moved into place, like every file of the tileset.
An update keeps the index it saved in memory (``keep``), and the next update of that
tileset in the same process takes it as it is, unless another process saved one since:
at 200,000 buildings the file is about 50 MB, and under a stream of writes the updates
come every second or so.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

INDEX_DIR = ".oup-index"
INDEX_FILE = "index.npz"
VERSION = 1
_TYPES = {"str": str, "int": int, "float": float, "bool": bool}
_NAMES = {v: k for k, v in _TYPES.items()}


# index.npz -> (its inode, mtime and size as this process saved it, the index then)
_KEPT: dict[Path, tuple[tuple, "TilesetIndex"]] = {}


class NoIndex(ValueError):
    """The tileset was made without an index (or by another version): tile it again."""


@dataclass
class TilesetIndex:
    meta: dict     # src_crs, lod, z_offset, vertex_budget, files, attributes, version
    objects: dict  # column -> array, one row an object
    nodes: dict    # column -> array, one row a tile, parents before children
    # object id -> its row, where known (an update keeps it up to date; None: not made)
    row_of: dict | None = field(default=None, repr=False, compare=False)

    OBJECT_COLUMNS = ("id", "leaf", "mesh_file", "block_file", "mesh_offset", "block_offset",
                      "xy", "nverts", "size", "deviation", "block_nverts")
    NODE_COLUMNS = ("id", "parent", "bounds", "frame", "region", "error")


def attributes_to_json(attributes) -> dict:
    return {"kinds": {k: sorted(_NAMES[t] for t in v) for k, v in attributes.kinds.items()},
            "missing": sorted(attributes.missing),
            "texts": {k: None if v is None else sorted(v) for k, v in attributes.texts.items()},
            "objects": attributes.objects}


def attributes_from_json(doc: dict):
    from .tileset import Attributes

    return Attributes({k: {_TYPES[t] for t in v} for k, v in doc["kinds"].items()},
                      set(doc["missing"]),
                      {k: None if v is None else set(v) for k, v in doc["texts"].items()},
                      doc["objects"])


def keep_index(out: Path, spill, col: dict, nodes: list, contents: dict, errors: dict,
               meta: dict) -> None:
    """Move the spill files into ``out/.oup-index`` and write the index of a tileset
    just made (``tileset.write_tileset``: its spill, columns, nodes, tile contents and
    own errors)."""
    folder = Path(out) / INDEX_DIR
    folder.mkdir(exist_ok=True)
    for name in spill.files:
        os.replace(name, folder / Path(name).name)
    number = {n.id: i for i, n in enumerate(nodes)}
    leaf = np.full(len(spill.ids), -1, np.int64)
    parent = np.full(len(nodes), -1, np.int64)
    for i, node in enumerate(nodes):
        for c in node.children:
            parent[number[c.id]] = i
        if not node.children:
            leaf[node.items] = i
    objects = {"id": np.array(spill.ids, dtype=str), "leaf": leaf,
               "mesh_file": col["mesh_file"], "block_file": col["block_file"],
               "mesh_offset": col["mesh_offset"], "block_offset": col["block_offset"],
               "xy": col["xy"], "nverts": col["nverts"], "size": col["size"],
               "deviation": col["deviation"], "block_nverts": col["block_nverts"]}
    node_cols = {"id": np.array([n.id for n in nodes], dtype=str), "parent": parent,
                 "bounds": np.array([n.bounds for n in nodes], float),
                 "frame": np.array([contents[n.id]["frame"] for n in nodes], float),
                 "region": np.array([contents[n.id]["region"] for n in nodes], float),
                 "error": np.array([errors[n.id] for n in nodes], float)}
    meta = dict(meta, version=VERSION, files=[Path(f).name for f in spill.files],
                attributes=attributes_to_json(spill.attributes))
    save_index(out, TilesetIndex(meta, objects, node_cols))


def _stamp(path: Path) -> tuple:
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_size


def save_index(out: Path, index: TilesetIndex, *, keep: bool = False) -> None:
    """``index`` to ``out``'s index.npz; with ``keep``, also kept in memory for the next
    ``load_index(out, kept=True)`` of this process (which must not change it after)."""
    folder = Path(out) / INDEX_DIR
    arrays = {"meta": np.array(json.dumps(index.meta))}
    arrays.update({f"o_{k}": np.asarray(index.objects[k]) for k in TilesetIndex.OBJECT_COLUMNS})
    arrays.update({f"n_{k}": np.asarray(index.nodes[k]) for k in TilesetIndex.NODE_COLUMNS})
    fd, tmp = tempfile.mkstemp(prefix=f".{INDEX_FILE}.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, folder / INDEX_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if keep:
        _KEPT[folder / INDEX_FILE] = (_stamp(folder / INDEX_FILE), index)


def load_index(out: Path, *, kept: bool = False) -> TilesetIndex:
    """The index of the tileset in ``out``. With ``kept``, the one this process saved
    with ``keep`` where the file is still that one; the caller then owns it (it is kept
    no more: an update that fails half-way leaves nothing half-changed to the next)."""
    path = Path(out) / INDEX_DIR / INDEX_FILE
    if not path.is_file():
        raise NoIndex(f"{out} has no {INDEX_DIR}/{INDEX_FILE}: it was tiled without one "
                      "(by an older `oup tile`, or it is terrain or a point cloud); tile it "
                      "again to update it building by building")
    last = _KEPT.pop(path, None) if kept else None
    if last is not None and last[0] == _stamp(path):
        return last[1]
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        if meta.get("version") != VERSION:
            raise NoIndex(f"{path}: index version {meta.get('version')}, this tiler reads "
                          f"{VERSION}: tile it again")
        objects = {k: z[f"o_{k}"] for k in TilesetIndex.OBJECT_COLUMNS}
        nodes = {k: z[f"n_{k}"] for k in TilesetIndex.NODE_COLUMNS}
    return TilesetIndex(meta, objects, nodes)
