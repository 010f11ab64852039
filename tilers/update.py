"""A tileset follows changed city objects without tiling the city again.

``update_tileset(folder, changes)`` takes objects added, replaced, changed in their
attributes or deleted, and redoes only the tiles they are in: the leaf that holds each
one (before and after the change) and the coarse tiles above it, from the records and
the tree `oup tile` kept in ``.oup-index`` (``tilers.index``). Every other glb keeps its
bytes, its file and so its ETag; a redone tile keeps its name and its ENU frame (so no
transform in tileset.json changes), and is written only where its bytes differ. Where
only values changed under a tile (attributes, no shape moved), the tile keeps its mesh
and gets new property tables (``gltf.with_rows``): a coarse tile holds a block of every
building under it, the root one of the whole city, and meshing them again costs seconds.
Where buildings only came to a leaf, or under a coarse tile that draws all below it,
the tile keeps its mesh too and gets a part (a glTF primitive) for them (``_redo``).

Where an object goes is where the tiler's quadtree would put it: from the root down,
the quadrant of its centre at each tile's middle (past the root's box too, as the split
would); where that quadrant has no tile (nothing stood there when the city was tiled),
the nearest leaf (by the distance of its centre to the leaf's cell) under the deepest
tile reached. A leaf is not split again when it grows past the vertex budget: the next
full `oup tile` balances the tree.

Files are replaced whole (a temporary file in the same folder, then ``os.replace``):
the leaves' glbs first, then tileset.json (the new leaves are out: ``published``), then
the coarse tiles' glbs, tileset.json again, then the index. One update at a time a tileset
(an exclusive lock on ``.oup-index/lock``).
"""
from __future__ import annotations

import fcntl
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import orjson

from oup.cityjson import reference_crs, vertices_of

from .cityjson import GROUND, ROOF, SURFACE_NAMES, CityObjectMesh, ReadReport, mesh_documents
from .gltf import assemble, metadata_schema, parts_of, with_part, with_rows
from .index import INDEX_DIR, TilesetIndex, attributes_from_json, attributes_to_json, \
    load_index, save_index
from . import lod
from .lod import blocks_of, choose
from .placement import region_error, union
from .spill import block_record, mesh_record, read_record, read_row
from .tileset import Attributes, Job, added_part, load_records, replace_file, run_job, \
    tileset_json

__all__ = ["update_tileset", "update_from_lines", "UpdateReport", "UpdateError"]
UPDATES = "updates"  # the index's own spill files for records written by updates
# parts a leaf may have (``_redo``): each is a draw call in a viewer, where the tiler's
# leaf is one; past this many the leaf is meshed whole again
MAX_PARTS = 16


class UpdateError(ValueError):
    """A change that cannot be applied; the message says which and why."""


@dataclass
class UpdateReport:
    added: list = field(default_factory=list)
    replaced: list = field(default_factory=list)
    changed: list = field(default_factory=list)    # attributes only
    deleted: list = field(default_factory=list)
    unknown: list = field(default_factory=list)    # ids to change or delete not in the tileset
    skipped: dict = field(default_factory=dict)    # id -> why it could not be tiled
    rewritten: list = field(default_factory=list)  # content URIs whose bytes changed
    same: list = field(default_factory=list)       # redone, same bytes: left as they were
    removed: list = field(default_factory=list)    # tiles left empty: gone
    postponed: list = field(default_factory=list)  # coarse tiles left to the next update
    seconds: float = 0.0

    def __str__(self) -> str:
        parts = [f"{len(getattr(self, k))} {k}" for k in
                 ("added", "replaced", "changed", "deleted") if getattr(self, k)]
        parts.append(f"{len(self.rewritten)} tiles rewritten" +
                     (f", {len(self.removed)} removed" if self.removed else ""))
        if self.postponed:
            parts.append(f"{len(self.postponed)} coarse tiles postponed")
        if self.unknown:
            parts.append(f"unknown ids: {', '.join(self.unknown)}")
        if self.skipped:
            parts.append("skipped " + ", ".join(f"{k} ({v})" for k, v in self.skipped.items()))
        return "; ".join(parts) + f" in {self.seconds:.2f} s"


def update_tileset(folder: Path, changes, *, transform: dict | None = None,
                   crs: str | None = None,
                   published: Callable[[UpdateReport], None] | None = None,
                   interrupt: Callable[[], bool] | None = None) -> UpdateReport:
    """Apply ``changes`` (in order; a later change of an id wins) to the tileset in
    ``folder`` (made by `oup tile` of a city model). Each change is one of:

    - a CityJSONFeature (``{"type": "CityJSONFeature", "id", "CityObjects", "vertices"}``,
      its vertices under ``transform`` (the model's, or the feature's own "transform"),
      in the tileset's CRS (``crs``, if given, is checked)): its top-level objects are
      added or replace the objects of the same id;
    - ``{"id", "attributes": {...}}``: new values of some attributes (merged into the
      object's; null is a value), optionally with ``"footprint_height"``: the height its
      lowest point moves to. Where the tileset was made with a z offset attribute
      (``oup tile --z-offset``), a new value of it moves the object by the difference;
    - ``{"id", "deleted": true}``: the object is removed.

    A tileset made of several LoDs (``lod-<L>/``) is updated in each. Returns what was
    done (``UpdateReport``). ``published`` is called once the changed objects' leaves
    are out (their glbs and a tileset.json that holds them), with a report of those
    tiles, before the coarse tiles above them are made again (see ``_redo``).
    ``interrupt`` is asked before each coarse tile; when it says so (more changes wait,
    and the next update makes these tiles again anyway), the coarse tiles not made yet
    are left as they are, noted in the index, and made by the next update
    (``UpdateReport.postponed``; an update without changes makes them)."""
    folder = Path(folder)
    started = time.perf_counter()
    changes = list(changes)
    report = UpdateReport()
    top = orjson.loads((folder / "tileset.json").read_bytes())
    lods = (top.get("extras") or {}).get("lods")
    if lods:
        for one, rel in lods.items():
            lod = Path(rel).parent
            part = _update_one(folder / lod, changes, transform, crs,
                               published and (lambda leaves, lod=lod: published(
                                   _prefixed(leaves, lod))), interrupt)
            report.rewritten += [f"{Path(rel).parent}/{u}" for u in part.rewritten]
            report.same += [f"{Path(rel).parent}/{u}" for u in part.same]
            report.removed += [f"{Path(rel).parent}/{u}" for u in part.removed]
            report.postponed += [f"{Path(rel).parent}/{u}" for u in part.postponed]
            for k in ("added", "replaced", "changed", "deleted", "unknown"):
                setattr(report, k, sorted(set(getattr(report, k)) | set(getattr(part, k))))
            report.skipped.update({f"{i} (LoD {one})": w for i, w in part.skipped.items()})
        highest = orjson.loads((folder / list(lods.values())[-1]).read_bytes())
        top["geometricError"] = top["root"]["geometricError"] = highest["geometricError"]
        top["root"]["boundingVolume"] = highest["root"]["boundingVolume"]
        replace_file(folder / "tileset.json", tileset_json(top))
    else:
        report = _update_one(folder, changes, transform, crs, published, interrupt)
    report.seconds = time.perf_counter() - started
    return report


def _prefixed(report: UpdateReport, lod: Path) -> UpdateReport:
    """``report`` of one LoD's tileset, its tiles named from the top tileset's folder."""
    for k in ("rewritten", "same", "removed", "postponed"):
        setattr(report, k, [f"{lod}/{u}" for u in getattr(report, k)])
    return report


def update_from_lines(folder: Path, lines) -> UpdateReport:
    """``update_tileset`` from JSON Lines: a CityJSONSeq (its first line the CityJSON
    header with the transform and CRS, then CityJSONFeatures), where a line may also be
    an attribute change or a deletion (``update_tileset``'s forms)."""
    from oup.cityjson import declared_crs

    transform, crs, changes = None, None, []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise UpdateError(f"line {n} is not JSON ({exc})") from None
        if isinstance(doc, dict) and doc.get("type") == "CityJSON":
            transform = doc.get("transform")
            if (doc.get("metadata") or {}).get("referenceSystem"):
                crs = declared_crs(doc, None, Path("header"))[0]
        else:
            changes.append(doc)
    return update_tileset(folder, changes, transform=transform, crs=crs)


@contextmanager
def _locked(folder: Path):
    with open(folder / INDEX_DIR / "lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _kind(change) -> str:
    if not isinstance(change, dict):
        raise UpdateError(f"a change is an object, not {type(change).__name__}")
    if change.get("type") == "CityJSONFeature":
        return "feature"
    if "id" not in change:
        raise UpdateError("a change names its object: 'id' is missing")
    if change.get("deleted") is True:
        return "delete"
    if "attributes" in change or "footprint_height" in change:
        return "attributes"
    raise UpdateError(f"change of {change['id']!r}: give a CityJSONFeature, 'attributes' "
                      "(and/or 'footprint_height') or 'deleted': true")


class _Records:
    """The index's records: read where they are, appended to the updates' own files."""

    def __init__(self, folder: Path, files: list):
        self.folder, self.files, self._read, self._append = folder, files, {}, {}

    def read(self, number: int, offset: int):
        name = self.files[number]
        if name not in self._read:
            self._read[name] = open(self.folder / name, "rb")
        return read_record(self._read[name], int(offset))

    def append(self, suffix: str, record: bytes) -> tuple[int, int]:
        name = f"{UPDATES}.{suffix}"
        if name not in self.files:
            self.files.append(name)
        if name not in self._append:
            self._append[name] = open(self.folder / name, "ab")
        fh = self._append[name]
        at = fh.tell()
        fh.write(record)
        return self.files.index(name), at

    def close(self):
        for fh in [*self._read.values(), *self._append.values()]:
            fh.close()


def _filtered(attributes: dict) -> dict:
    """The attributes a tile carries (as ``mesh_documents`` keeps them): scalars."""
    return {k: v for k, v in attributes.items()
            if isinstance(v, (str, int, float, bool)) or v is None}


def _numeric(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _pending(changes: list, index: TilesetIndex, records: _Records, report: UpdateReport,
             transform: dict | None, shaped: set, row_of: dict) -> dict:
    """id -> the object's new mesh, or None (deleted), after all ``changes`` in order.
    ``shaped`` gets the ids whose shape, place or presence changed (not only values)."""
    meta, obj = index.meta, index.objects
    pending: dict = {}

    def current(oid):
        if oid in pending:
            return pending[oid]
        i = row_of.get(oid)
        return None if i is None else records.read(obj["mesh_file"][i], obj["mesh_offset"][i])

    for change in changes:
        kind = _kind(change)
        if kind == "feature":
            read = ReadReport()
            verts = vertices_of(change, change.get("transform", transform))
            meshes = {m.id: m for m in mesh_documents([(change, verts)], meta["lod"], read,
                                                      meta["z_offset"])}
            tops = [k for k, o in (change.get("CityObjects") or {}).items()
                    if not o.get("parents")]
            if not tops:
                raise UpdateError(f"feature {change.get('id')!r} holds no top-level city object")
            for oid in tops:
                exists = pending[oid] is not None if oid in pending else oid in row_of
                shaped.add(oid)
                if oid in meshes:
                    pending[oid] = meshes[oid]
                    (report.replaced if exists else report.added).append(oid)
                else:  # nothing of it can be tiled (at this LoD): as a full run, it is left out
                    report.skipped[oid] = ", ".join(read.skipped) or "no geometry"
                    if exists:
                        pending[oid] = None
                        report.deleted.append(oid)
            continue
        oid = str(change["id"])
        mesh = current(oid)
        if mesh is None:
            report.unknown.append(oid)
            continue
        if kind == "delete":
            pending[oid] = None
            shaped.add(oid)
            report.deleted.append(oid)
            continue
        new = change.get("attributes") or {}
        if not isinstance(new, dict):
            raise UpdateError(f"change of {oid!r}: 'attributes' is an object of names and values")
        attrs = {**mesh.attributes, **_filtered(new)}
        points = mesh.points
        lift = 0.0
        z_attr = meta["z_offset"]
        if z_attr and z_attr in new:
            before, after = mesh.attributes.get(z_attr), attrs.get(z_attr)
            lift = (after if _numeric(after) else 0.0) - (before if _numeric(before) else 0.0)
        if change.get("footprint_height") is not None:
            if not _numeric(change["footprint_height"]):
                raise UpdateError(f"change of {oid!r}: footprint_height is a number (metres)")
            lift = float(change["footprint_height"]) - float(points[:, 2].min())
        if lift:
            points = points.copy()
            points[:, 2] += lift
            shaped.add(oid)
        pending[oid] = CityObjectMesh(mesh.id, mesh.type, attrs, points, mesh.triangles,
                                      mesh.surfaces, mesh.corners)
        report.changed.append(oid)
    return pending


def _place(xy: np.ndarray, nodes: dict, children: dict) -> int:
    """The leaf an object centred at ``xy`` goes to (see the module's docstring)."""
    ids, bounds = nodes["id"], nodes["bounds"]
    n = 0
    while children[n]:
        x0, y0, x1, y1 = bounds[n]
        q = int(xy[0] >= (x0 + x1) / 2) + 2 * int(xy[1] >= (y0 + y1) / 2)
        nxt = [c for c in children[n] if ids[c][-1] == str(q)]
        if not nxt:
            break
        n = nxt[0]
    if not children[n]:
        return n
    under = [i for i in range(len(ids)) if not children[i] and ids[i].startswith(ids[n])]
    b = bounds[under]
    dx = np.maximum(np.maximum(b[:, 0] - xy[0], xy[0] - b[:, 2]), 0)
    dy = np.maximum(np.maximum(b[:, 1] - xy[1], xy[1] - b[:, 3]), 0)
    return under[int(np.argmin(np.hypot(dx, dy)))]


def _update_one(folder: Path, changes: list, transform: dict | None, crs: str | None,
                published: Callable[[UpdateReport], None] | None = None,
                interrupt: Callable[[], bool] | None = None) -> UpdateReport:
    from oup.geodesy import installed_grid_dirs

    folder = Path(folder)
    if not (folder / INDEX_DIR).is_dir():
        load_index(folder)  # says why there is none
    with _locked(folder):
        index = load_index(folder, kept=True)  # as the last update left it
        meta = index.meta
        if crs and reference_crs(crs)[0] != meta["src_crs"]:
            raise UpdateError(f"the changes are in {crs}, the tileset in {meta['src_crs']}")
        report = UpdateReport()
        records = _Records(folder / INDEX_DIR, list(meta["files"]))
        shaped: set = set()
        try:
            row_of = index.row_of or {oid: i for i, oid in
                                       enumerate(index.objects["id"].tolist())}  # before
            index.row_of = row_of
            pending = _pending(changes, index, records, report, transform, shaped, row_of)
            if not pending and not meta.get("stale"):
                return report
            before = {k: index.objects[k].copy() for k in ("id", "leaf", "size", "deviation")}
            dirty, moved, grown, valued = _apply(index, pending, records, shaped, row_of) \
                if pending else (set(), set(), {}, set())
        finally:
            records.close()
        meta["files"] = records.files
        _redo(folder, index, dirty, moved, grown, valued, installed_grid_dirs(), report,
              published, interrupt, _Drawn(before, shaped))
        save_index(folder, index, keep=True)
    return report


def _apply(index: TilesetIndex, pending: dict, records: _Records,
           shaped: set, row_of: dict) -> tuple[set, set, dict, set]:
    """Write the new objects' records, change the object table; the leaves touched, those
    of them where a shape came, went or changed (``shaped``: those objects), of those
    the leaves where shapes only came, new to the tileset (leaf -> how many), and the
    leaves where values of objects that were there changed.
    ``row_of`` (the rows of before) gets the new rows, or the index's is dropped where
    rows went (those after them move up)."""
    obj, nodes, meta = index.objects, index.nodes, index.meta
    children = _children(nodes)
    dirty = {int(obj["leaf"][row_of[oid]]) for oid in pending if oid in row_of}
    moved = {int(obj["leaf"][row_of[oid]]) for oid in pending if oid in row_of and oid in shaped}
    valued = {int(obj["leaf"][row_of[oid]]) for oid in pending  # only values changed
              if oid in row_of and oid not in shaped}
    spoiled, grown = set(moved), {}  # where a shape there before changed or went; new ones
    keep = np.ones(len(obj["id"]), bool)
    keep[[row_of[oid] for oid, m in pending.items() if m is None and oid in row_of]] = False
    meshes = [m for m in pending.values() if m is not None]
    blocks = blocks_of(meshes, GROUND, ROOF)
    summary = attributes_from_json(meta["attributes"])
    rows = [{"id": m.id, "type": m.type, **m.attributes} for m in meshes]
    summary.merge(Attributes.of(rows))
    meta["attributes"] = attributes_to_json(summary)
    new = {k: [] for k in TilesetIndex.OBJECT_COLUMNS}
    for mesh, block, row in zip(meshes, blocks, rows):
        mesh_file, mesh_offset = records.append("objects", mesh_record(mesh))
        block_file, block_offset = records.append("blocks", block_record(block, row))
        xy = mesh.points[:, :2].mean(axis=0)
        if mesh.id in shaped or mesh.id not in row_of:
            leaf = _place(xy, nodes, children)
            moved.add(leaf)
            if mesh.id in row_of:
                spoiled.add(leaf)
            else:
                grown[leaf] = grown.get(leaf, 0) + 1
        else:  # the same shape in the same place: the same leaf
            leaf = int(obj["leaf"][row_of[mesh.id]])
        dirty.add(leaf)
        values = {"id": mesh.id, "leaf": leaf, "mesh_file": mesh_file,
                  "block_file": block_file, "mesh_offset": mesh_offset,
                  "block_offset": block_offset, "xy": xy, "nverts": len(mesh.surfaces),
                  "size": block.size, "deviation": block.deviation,
                  "block_nverts": block.vertices}
        if mesh.id in row_of:  # in its place: the others in its leaf keep their order
            for k, v in values.items():
                obj[k][row_of[mesh.id]] = v
        else:
            for k, v in values.items():
                new[k].append(v)
    for k in TilesetIndex.OBJECT_COLUMNS:
        kept = obj[k][keep]
        if new[k]:
            added = np.array(new[k], dtype=kept.dtype if k != "id" else str)
            kept = np.concatenate([kept.astype(str) if k == "id" else kept,
                                   added.reshape((-1,) + kept.shape[1:])])
        obj[k] = kept
    if keep.all():  # the rows of before are where they were; the new ones follow
        base = len(obj["id"]) - len(new["id"])
        row_of.update(zip(new["id"], range(base, len(obj["id"]))))
    else:
        index.row_of = None
    return dirty, moved, {n: k for n, k in grown.items() if n not in spoiled}, valued


def _children(nodes: dict) -> list[list[int]]:
    out = [[] for _ in range(len(nodes["id"]))]
    for i, p in enumerate(nodes["parent"].tolist()):
        if p >= 0:
            out[p].append(i)
    return out


def _objects_under(leaf: np.ndarray, children: list[list[int]]) -> Callable[[int], np.ndarray]:
    """The objects (ascending) whose leaf is tile ``n`` or below it, for any ``n``: the
    objects grouped by their leaf once, then a tile's groups gathered. (Before, every
    tile scanned the whole city's leaf names for its own prefix: 3.5 ms a tile at
    200,000 buildings, half the time of an update of a few hundred changes.)"""
    by_leaf = np.argsort(leaf, kind="stable")
    start = np.searchsorted(leaf[by_leaf], np.arange(len(children) + 1))

    def under(n: int) -> np.ndarray:
        tiles, groups = [n], []
        while tiles:
            m = tiles.pop()
            groups.append(by_leaf[start[m]:start[m + 1]])
            tiles.extend(children[m])
        return np.sort(np.concatenate(groups))

    return under


def _joined(before: str, now: str) -> str:
    """The way (``_redo``'s ``how``) of a tile postponed ``before`` and asked ``now``."""
    flags = set(before.split("+")) | set(now.split("+"))
    return "mesh" if "mesh" in flags else "+".join(f for f in ("part", "rows") if f in flags)


def _counts(leaf: np.ndarray, parent: list) -> list[int]:
    """How many objects are under each tile (in it, for a leaf)."""
    count = np.bincount(leaf, minlength=len(parent)).tolist()
    for n in range(len(parent) - 1, 0, -1):  # children after their parent
        if parent[n] >= 0:
            count[parent[n]] += count[n]
    return count


def _upwards(leaves: set, parent: list) -> set:
    """The leaves and every tile above them."""
    out = set()
    for n in leaves:
        while n >= 0 and n not in out:
            out.add(n)
            n = parent[n]
    return out


def _redo(folder: Path, index: TilesetIndex, leaves: set, moved: set, grown: dict, valued: set,
          grids: list, report: UpdateReport, published: Callable[[UpdateReport], None] | None,
          interrupt: Callable[[], bool] | None, drawn: "_Drawn") -> None:
    """Make the touched leaves and their ancestors again; tileset.json follows.

    The leaves come first and are published on their own (``published``): a leaf holds
    a few hundred buildings, while a coarse tile above it holds a block of every
    building under it (the root one of the whole city) and takes seconds to mesh and
    compress again. Between the two, tileset.json names the new leaves (their
    regions, and their ancestors' grown to hold them) and the coarse tiles as they still
    are (their own regions and errors in the index are those of the bytes on disk), so
    every moment a viewer can look at is a valid tileset; a leaf left empty is taken
    out of it then, so a building that moved is not drawn twice.

    That state is also where an ``interrupt`` leaves the tiles it postpones (more writes
    wait, and their leaves come before this city's root): ``meta["stale"]`` names them,
    oldest first, with how they are to be made (``how``), and the next update makes
    them first (the way the changes since their glb ask, together): under a
    stream of writes a leaf waits for at most one coarse tile, and no coarse tile waits
    behind one marked after it.

    A tile where only values changed (no shape came, went or changed under it: not
    above a leaf of ``moved``) keeps its mesh: its property table is written anew around
    the same Draco bytes (``gltf.with_rows``), which is what makes an attribute change
    cheap where a coarse tile holds the blocks of a whole city. So does a coarse tile
    that draws only the largest objects under it (past 65,535: the root of a large city)
    where no changed shape is among them, before or after (``_Drawn``): its blocks are
    the same, only its error can change.

    A leaf where buildings only came (``grown``: new to the tileset, none there before
    changed) keeps its parts' bytes and gets a part of its own for them
    (``tileset.added_part``): under a stream of new buildings each one's leaf is made in
    a few milliseconds, not meshed again whole (60 ms at 200,000 buildings, most of it
    Draco), which is what kept the leaves of such a stream half a minute behind. So
    does a coarse tile that draws every object under it, where objects only came under
    it since its glb was made (by this update and those that postponed it): the new
    ones come last in its order, and their blocks are its new part. Meshing such a
    tile again took seconds (thousands of blocks), and a leaf that waited for it waited
    as long. A grown tile keeps its property table's rows too, and the new objects' rows
    follow them (``gltf.with_part``), unless values of its objects changed or the
    tileset's schema did: reading and encoding the rows of a coarse tile (up to 65,535)
    took longer than its part. A tile of ``MAX_PARTS`` parts, or where any other shape
    changes, is meshed whole again."""
    obj, nodes, meta = index.objects, index.nodes, index.meta
    if not len(obj["id"]):  # before any file is touched
        raise UpdateError("the update leaves the tileset empty")
    ids = nodes["id"].tolist()
    parent = nodes["parent"].tolist()
    number = {nid: i for i, nid in enumerate(ids)}
    # postponed tiles: how each one is to be made (``how``; an index of before "part"
    # says True or False: "mesh" or "rows")
    late = {number[t]: {True: "mesh", False: "rows"}.get(way, way)
            for t, way in meta.pop("stale", []) if t in number}
    touched = _upwards(leaves, parent)  # by this update's changes
    dirty = touched | set(late)
    remesh = _upwards(moved, parent)
    spoiled = _upwards(moved - set(grown), parent)  # above a shape that changed or went
    valued_up = _upwards(valued, parent)  # above values of objects there before changed
    summary = attributes_from_json(meta["attributes"])
    schema, kinds = metadata_schema(summary.kinds, summary.missing, summary.texts)
    files = [str(folder / INDEX_DIR / f) for f in meta["files"]]
    children = _children(nodes)
    under = _objects_under(obj["leaf"], children)
    count = _counts(obj["leaf"], parent)
    empty = set()

    def how(n: int, chosen: np.ndarray | None = None) -> str:
        """How tile ``n`` is made: "rows" (its mesh kept, its property table anew),
        "part" (its parts and its table's rows kept, a part and rows more for the
        objects new to it: only objects came under it, and it draws all of them),
        "part+rows" (the same, where values of objects it had changed too: its table
        anew) or "mesh" (made again whole). A postponed tile is made the way the
        changes since its glb, together, ask. (``chosen``: the objects it draws, where
        known; chosen here only where they are asked, as choosing among the whole
        city's sorts it: for each postponed tile, each update.)"""
        drawn_all = not children[n] or count[n] <= lod.MAX_FEATURES
        if n not in touched:  # postponed, and nothing under it changed since
            now = None
        elif n not in remesh:
            now = "rows"
        elif drawn_all:
            now = "mesh" if n in spoiled else "part+rows" if n in valued_up else "part"
        else:
            if chosen is None:
                chosen, _ = choose(under(n), obj["size"], obj["deviation"])
            now = "mesh" if drawn.shaped_in(obj["id"][chosen], n, children) else "rows"
        way = _joined(late[n], now) if n in late and now else now or late[n]
        return "mesh" if "part" in way and not drawn_all else way

    def plan(n: int):
        """(kind, the objects it draws, its error, how it is made: ``how``); None: empty."""
        items = under(n)
        if not len(items):
            return None
        if children[n]:
            chosen, error = choose(items, obj["size"], obj["deviation"])
            return "coarse", chosen, error, how(n, chosen)
        if len(items) > 65_535:
            raise UpdateError(f"tile {ids[n]} would hold more than 65,535 objects: tile the "
                              "city again (`oup tile`)")
        return "leaf", items, 0.0, how(n)

    def places(kind: str, drawn_objects: np.ndarray) -> list:
        """The records (spill file, offset) a tile draws: the objects' blocks or meshes
        (a list made only for the tiles made now: a coarse one names up to 65,535)."""
        f, o = ("block_file", "block_offset") if kind == "coarse" else \
            ("mesh_file", "mesh_offset")
        return [(files[i], int(at)) for i, at in zip(obj[f][drawn_objects],
                                                      obj[o][drawn_objects])]

    def grow(n: int, kind: str, records: list, uri: str, reread: bool) -> bool:
        """Tile ``n`` with a part for the objects new to it: the last of ``records`` past
        those its glb numbers (the object table keeps its order and appends; for a leaf,
        ``grown[n]`` of them), their rows after the glb's own (``reread``: all rows read
        again). False where its glb is not one that can be so grown (not the one the
        index describes, or with parts enough)."""
        try:
            glb = (folder / uri).read_bytes()
            parts, color = parts_of(glb)
        except (OSError, ValueError):
            return False
        before = sum(p.features for p in parts)
        if len(parts) >= MAX_PARTS or not 0 < before < len(records) or \
                kind == "leaf" and before != len(records) - grown[n]:
            return False
        part, region = added_part(Job(kind, records[before:], meta["src_crs"], schema, kinds,
                                      str(folder), ids[n], grids, nodes["frame"][n].tolist()),
                                  before)
        try:
            if reread:
                raise ValueError("values of its objects changed")
            glb = with_part(glb, part, schema, kinds, load_records(records[before:], read_row),
                            SURFACE_NAMES)
        except ValueError:  # (or the schema changed): the table made anew
            glb = assemble([*parts, part], color, schema, kinds,
                           load_records(records, read_row), SURFACE_NAMES)
        nodes["region"][n] = union([nodes["region"][n].tolist(), region])
        (report.rewritten if replace_file(folder / uri, glb) else report.same).append(uri)
        return True

    def make(n: int) -> None:
        planned = plan(n)
        if planned is None:
            empty.add(n)
            return
        kind, chosen, nodes["error"][n], way = planned
        records = places(kind, chosen)
        uri = f"tiles/{ids[n]}.glb"
        if "part" in way and grow(n, kind, records, uri, "rows" in way):
            return
        if way == "rows" and (folder / uri).is_file():
            try:
                glb = with_rows((folder / uri).read_bytes(), schema, kinds,
                                load_records(records, read_row), SURFACE_NAMES)
            except ValueError:  # not the glb the index describes: made again below
                glb = None
            if glb is not None:
                (report.rewritten if replace_file(folder / uri, glb) else report.same).append(uri)
                return
        content = run_job(Job(kind, records, meta["src_crs"], schema, kinds, str(folder),
                              ids[n], grids, nodes["frame"][n].tolist()))
        nodes["region"][n] = content["region"]
        (report.rewritten if content["written"] else report.same).append(content["uri"])

    coarse = list(late) + sorted((n for n in dirty if children[n] and n not in late),
                           key=lambda i: -len(ids[i]))
    for n in sorted(n for n in dirty if not children[n]):
        make(n)
    if coarse:  # the leaves out now, the coarse tiles after them
        _publish_leaves(folder, index, dirty, set(empty), report, published)
    for i, n in enumerate(coarse):
        if interrupt and interrupt():
            meta["stale"] = [[ids[m], how(m) if count[m] else "rows"] for m in coarse[i:]]
            report.postponed = [f"tiles/{ids[m]}.glb" for m in coarse[i:]]
            break
        make(n)
    _write_tileset_json(folder, index, dirty, empty)
    _remove(folder, ids, empty, report)
    if not coarse and published:
        published(_copy(report))
    if empty:
        _drop(index, empty)


def _publish_leaves(folder: Path, index: TilesetIndex, dirty: set, empty: set,
                    report: UpdateReport, published) -> None:
    """tileset.json with the leaves just made (the coarse tiles as they are), the empty
    leaves gone; then ``published`` hears of them."""
    _write_tileset_json(folder, index, dirty, empty)
    _remove(folder, index.nodes["id"].tolist(), empty, report)
    if published:
        published(_copy(report))


def _remove(folder: Path, ids: list, empty: set, report: UpdateReport) -> None:
    """The glbs of tiles left empty (tileset.json no longer names them)."""
    for n in sorted(empty):
        uri = f"tiles/{ids[n]}.glb"
        if uri not in report.removed:
            (folder / uri).unlink(missing_ok=True)
            report.removed.append(uri)


def _copy(report: UpdateReport) -> UpdateReport:
    return UpdateReport(**{k: (type(v)(v) if isinstance(v, (list, dict)) else v)
                           for k, v in vars(report).items()})


class _Drawn:
    """Whether a changed shape is among the blocks a coarse tile draws now or drew before
    the update (``before``: the object table's ids, leaves, sizes and deviations then)."""

    def __init__(self, before: dict, shaped: set):
        self.before, self.shaped = before, set(shaped)
        self._under = None

    def shaped_in(self, now: np.ndarray, tile: int, children: list[list[int]]) -> bool:
        if self._under is None:  # (the tiles are those of before: an update adds none)
            self._under = _objects_under(self.before["leaf"], children)
        then, _ = choose(self._under(tile), self.before["size"], self.before["deviation"])
        # a set against the ids drawn (up to 65,535 strings): np.isin sorts them, 90 ms
        return not (self.shaped.isdisjoint(now.tolist()) and
                    self.shaped.isdisjoint(self.before["id"][then].tolist()))


def _drop(index: TilesetIndex, empty: set) -> None:
    """Take empty tiles out of the index (their rows; parents renumbered)."""
    nodes = index.nodes
    keep = np.array([i not in empty for i in range(len(nodes["id"]))])
    renumber = np.cumsum(keep) - 1
    leaf = index.objects["leaf"]
    index.objects["leaf"] = renumber[leaf] if len(leaf) else leaf
    for k in TilesetIndex.NODE_COLUMNS:
        nodes[k] = nodes[k][keep]
    nodes["parent"] = np.where(nodes["parent"] >= 0, renumber[nodes["parent"]], -1)


def _write_tileset_json(folder: Path, index: TilesetIndex, dirty: set, empty: set) -> None:
    """The redone tiles' bounding volumes (their content's region and their children's)
    and geometric errors (their own, at least their children's) in tileset.json. Only
    the branches that lead to them are walked (a large city has tens of thousands of
    tiles, and an update under a stream of writes writes it twice a second or so)."""
    nodes = index.nodes
    ids = nodes["id"].tolist()
    number = {nid: i for i, nid in enumerate(ids)}
    touched = _upwards(dirty | empty, nodes["parent"].tolist())
    path = folder / "tileset.json"
    text = path.read_bytes()
    tileset = orjson.loads(text)

    def walk(tile: dict, n: int) -> None:
        kids = [(c, number[c["content"]["uri"][len("tiles/"):-len(".glb")]])
                for c in tile.get("children", [])]
        kids = [(c, m) for c, m in kids if m not in empty]
        for c, m in kids:
            if m in touched:
                walk(c, m)
        if n not in dirty:
            return
        if kids:
            tile["children"] = [c for c, _ in kids]
        else:
            tile.pop("children", None)
        tile["boundingVolume"] = {"region": union(
            [nodes["region"][n].tolist()] + [c["boundingVolume"]["region"] for c, _ in kids])}
        tile["geometricError"] = max([float(nodes["error"][n])] +
                                     [c["geometricError"] for c, _ in kids])

    root = tileset["root"]
    walk(root, number[Path(root["content"]["uri"]).stem])
    tileset["geometricError"] = max(region_error(root["boundingVolume"]["region"]),
                                    root["geometricError"])
    new = tileset_json(tileset)
    if new != text:
        replace_file(path, new)
