"""A Mapbox Vector Tile layer, all features of the tile at once.

Encoding a tile feature by feature in Python was the largest part of a GeoPackage
tile's CPU time (mapbox-vector-tile: ~110 ms of ~260 ms for a z14 tile of 2,400
buildings); as numpy array operations, 15 ms. Here shapely hands over the vertices in
one array, and the geometry commands, the numbering of the values and the protobuf
framing of every feature are compiled loops (``mvt_kernels``): 5 ms. Python loops run
over the layer's properties and value types, never over its features.

What goes in: geometries already in tile units (y down, exterior rings clockwise on
screen: the caller places and orients them), their ids, and the property columns.
The Mapbox Vector Tile specification 2.1 (section 4) decides the rest:
- a Point or MultiPoint is one MoveTo of all its points; a line is a MoveTo and a LineTo;
  a ring is a MoveTo, a LineTo and a ClosePath, without its closing coordinate;
- coordinates are rounded to whole units (half to even, as Python's round); a LineTo
  never repeats the point it starts from, so a repeated coordinate is left out;
- a line left with fewer than 2 points, or a ring with fewer than 3, is left out; a
  polygon whose exterior is left out loses its holes; a feature left with no geometry
  (or given none, or an empty one) is left out with its properties;
- a property that is None is left out (MVT has no null); str, bool, int (int64) and
  float become string_value, bool_value, int_value and double_value; other types are
  left out. Keys and values are shared by the layer's features: values equal in Python
  and of the same type are written once (an int 0 and a float 0.0 are two values).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property
from itertools import repeat

import numpy as np
import shapely

from oup.tiles.pbf import field, varint

POINT, LINESTRING, POLYGON = 1, 2, 3  # the feature's GeomType
_KIND = np.array([POINT, LINESTRING, 0, POLYGON, POINT, LINESTRING, POLYGON, 0])  # by type id
VARINT, FIXED64, BYTES = 0, 1, 2  # protobuf wire types
_RING = 4  # an arc's kind: 1, 2 as the geometry types, and the rings of a polygon
# (mvt_kernels.RING: not imported here, so that the store loads without numba)

# value types, by the Python (or numpy) type of a property; anything else is left out
_STR, _INT, _FLOAT, _BOOL = range(4)
_VALUE_TYPES = {str: _STR, int: _INT, float: _FLOAT, bool: _BOOL, np.str_: _STR,
                np.int64: _INT, np.int32: _INT, np.float64: _FLOAT, np.float32: _FLOAT,
                np.bool_: _BOOL}
_NONE = type(None)
_KNOWN = set(_VALUE_TYPES) | {_NONE}


def encode_layer(name: str, geoms, ids=None,
                 properties: dict | CodedProperties | None = None, extent: int = 4096) -> bytes:
    """A tile (a Tile message) holding one layer ``name``: ``geoms`` (an array of shapely
    geometries in tile units, None allowed), feature ``ids`` (integers >= 0; a negative
    one or ``ids=None`` writes none) and ``properties`` (name -> a value per geometry, or
    the same as indices into values encoded before). b"" when no feature has geometry
    left."""
    from oup.store import mvt_kernels as kernels  # compiled: imported by the first tile, not the store

    geoms = np.asarray(geoms, dtype=object)
    feats, kinds, geometry, geometry_lens = _geometries(geoms)
    n = len(feats)
    if n == 0:
        return b""
    if isinstance(properties, CodedProperties):
        names, codes, table = properties.keys, properties.codes[feats], properties.table
    else:
        names, codes, table = _coded(properties or {}, feats, everyone=n == len(geoms))
    keys, values, key_of_column, index = _tags(names, codes, table)
    ids = np.full(n, -1, np.int64) if ids is None else np.asarray(ids, dtype=np.int64)[feats]
    features = kernels.write_features(ids, kinds, geometry, geometry_lens, key_of_column,
                                      index)
    # version first (the specification's SHOULD), then by field number
    layer = b"".join([field(15, 2), field(1, name), features.tobytes(),
                      *(field(3, k) for k in keys), values, field(5, extent)])
    return field(3, layer)


# -- geometry ------------------------------------------------------------------------------

def _geometries(geoms: np.ndarray):
    """(the indices of the features that keep geometry, their GeomType (uint8), the
    geometry field's bytes of all of them, and its byte length per feature)."""
    from oup.store import mvt_kernels as kernels

    type_ids = shapely.get_type_id(geoms)
    present = np.flatnonzero((type_ids >= 0) & ~shapely.is_empty(geoms))
    kinds = _KIND[type_ids[present]]
    if (kinds == 0).any():
        raise ValueError("MVT has no geometry collections (nor bare linear rings)")
    data, lens = kernels.geometry_commands(*_arcs(geoms[present], kinds))
    kept = np.flatnonzero(lens > 0)
    return present[kept], kinds[kept].astype(np.uint8), data, lens[kept]


def _arcs(geoms: np.ndarray, kinds: np.ndarray):
    """All vertices of ``geoms`` (rounded to whole units, in order) and the arcs they lie
    on, as ``mvt_kernels.geometry_commands`` takes them: an arc is a point, a line, or a
    polygon's ring (exterior first)."""
    parts, part_feat = shapely.get_parts(geoms, return_index=True)
    polygonal = kinds[part_feat] == POLYGON
    rings, ring_part = shapely.get_rings(parts[polygonal], return_index=True)
    ring_part = np.flatnonzero(polygonal)[ring_part]
    if polygonal.all():  # a layer of polygons, the usual case: the rings are the arcs
        arcs, arc_part, arc_is_ring = rings, ring_part, np.ones(len(rings), bool)
    else:  # the arcs in the geometries' order: a polygon's rings where it was
        other = np.flatnonzero(~polygonal)
        arc_part = np.r_[other, ring_part]
        order = np.argsort(arc_part, kind="stable")
        arcs, arc_part = np.r_[parts[other], rings][order], arc_part[order]
        arc_is_ring = np.r_[np.zeros(len(other), bool), np.ones(len(rings), bool)][order]
    arc_kind = np.where(arc_is_ring, _RING, kinds[part_feat[arc_part]])
    arc_exterior = arc_is_ring & np.r_[True, arc_part[1:] != arc_part[:-1]]
    coords, arc_of = shapely.get_coordinates(arcs, return_index=True)
    xy = np.rint(coords).astype(np.int64)
    arc_off = np.r_[0, np.cumsum(np.bincount(arc_of, minlength=len(arcs)))]
    feat_arc_off = np.r_[0, np.cumsum(np.bincount(part_feat[arc_part], minlength=len(geoms)))]
    return xy, arc_off, arc_kind, arc_exterior, feat_arc_off


# -- properties ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ValueTable:
    """Property values, each encoded once as the body of a layer's Value message: a
    ragged array, a row per value. A tile takes the rows of the values it uses."""

    data: np.ndarray  # uint8: every value's bytes, one after the other
    lens: np.ndarray  # int64: each value's byte length

    @cached_property
    def starts(self) -> np.ndarray:
        return np.cumsum(self.lens) - self.lens

    def take(self, which: np.ndarray):
        """The rows ``which``, in that order (a ragged array)."""
        taken = self.lens[which]
        to = np.cumsum(taken) - taken
        return self.data[np.repeat(self.starts[which] - to, taken)
                         + np.arange(int(taken.sum()))], taken


@dataclass(frozen=True)
class CodedProperties:
    """Properties as indices into a ``ValueTable``: a row per geometry, a column per key,
    -1 where a feature has no value. The GeoPackage store keeps a collection's so, made
    at import, and its tiles skip reading and telling apart the values themselves."""

    keys: list[str]
    codes: np.ndarray  # (geometries, keys) integers
    table: ValueTable


class ValueCoder:
    """Numbers property values as they come, over as many batches of rows as there are:
    values equal in Python and of one type share a number (an int 1, a float 1.0 and
    True are three); None and types MVT has no value for get -1."""

    def __init__(self):
        self._index: dict[tuple[int, object], int] = {}

    def codes(self, columns: list, rows: int) -> np.ndarray:
        """(rows, columns) numbers for ``columns`` (each a sequence of ``rows`` values)."""
        out = np.full((rows, len(columns)), -1, np.int32)
        index = self._index
        for j, column in enumerate(columns):
            kinds = _types(column).tolist()
            # the number is the index's size before the value goes in: first seen, first
            out[:, j] = [index.setdefault(k, len(index)) if k[0] >= 0 else -1
                         for k in zip(kinds, column)]
        return out

    def table(self) -> ValueTable:
        """The values numbered so far, encoded, in their numbers' order."""
        vtype = np.fromiter((t for t, _ in self._index), np.int64, len(self._index))
        values = np.empty(len(vtype), object)
        values[:] = [v for _, v in self._index]
        datas, lengths, order = [], [], []
        for t, encode in ((_STR, _strings), (_INT, _ints), (_FLOAT, _floats), (_BOOL, _bools)):
            these = np.flatnonzero(vtype == t)
            if len(these):
                data, lens = encode(values[these])
                datas.append(data)
                lengths.append(lens)
                order.append(these)
        if not order:
            return ValueTable(np.zeros(0, np.uint8), np.zeros(0, np.int64))
        where = np.empty(len(values), np.int64)  # each value's row among the encoded ones
        where[np.concatenate(order)] = np.arange(len(values))
        return ValueTable(*ValueTable(np.concatenate(datas), np.concatenate(lengths)).take(where))


def encode_value(value) -> bytes | None:
    """One value as ``ValueCoder.table`` encodes it (the body of a Value message; None:
    a value MVT has none for), for a single written row, where the encoders' arrays
    cost more than the work."""
    kind = _VALUE_TYPES.get(type(value))
    if kind == _STR:
        return field(1, str(value))
    if kind == _INT:
        n = int(value)
        if not -2**63 <= n < 2**63:  # int_value is an int64, as a store's integers are
            raise ValueError("an integer property beyond MVT's int64")
        return varint(4 << 3 | VARINT) + varint(n & (2**64 - 1))  # two's complement
    if kind == _FLOAT:
        return bytes([3 << 3 | FIXED64]) + struct.pack("<d", float(value))
    if kind == _BOOL:
        return bytes([7 << 3 | VARINT, 1 if value else 0])
    return None


def _coded(properties: dict, feats: np.ndarray, everyone: bool):
    """(the names, codes and value table) of the features ``feats`` (``everyone``: all
    that were given) whose properties are given as values (name -> a value per
    geometry)."""
    columns = []
    for column in properties.values():
        if not everyone:
            column = np.fromiter(column, object, len(column))[feats]
        columns.append(column)
    coder = ValueCoder()
    return list(properties), coder.codes(columns, len(feats)), coder.table()


def _tags(names: list[str], codes: np.ndarray, table: ValueTable):
    """(the keys, the layer's values field bytes, each column's key index (-1: unused),
    and each cell's value index (-1: none)) of features whose properties are ``codes``
    into ``table``. A value is written once however many features or keys share it, in
    the order first seen (key by key, feature by feature), then the most used first:
    their indices, in every feature's tags, are the shortest varints (a unique id per
    feature would otherwise push the shared values past 127, and the tags naming them to
    2 or 3 bytes). Keys no feature has are not written."""
    from oup.store import mvt_kernels as kernels

    codes = np.ascontiguousarray(codes, dtype=np.int32).reshape(len(codes), len(names))
    written, index = kernels.number_values(codes, len(table.lens))
    used = (index >= 0).any(axis=0)
    keys = [name for name, u in zip(names, used) if u]
    key_of_column = np.where(used, np.cumsum(used) - 1, -1)
    data, lens = table.take(written)
    values = _join(_field_key(4, BYTES, np.ones(len(lens), bool)), _varints(lens),
                   (data, lens))[0]
    return keys, values.tobytes(), key_of_column, index


def _types(values) -> np.ndarray:
    return np.fromiter(map(_VALUE_TYPES.get, map(type, values), repeat(-1)), np.int64,
                       len(values))


def _strings(values: np.ndarray):
    utf8 = list(map(str.encode, values))
    lens = np.fromiter(map(len, utf8), np.int64, len(utf8))
    return _join(_field_key(1, BYTES, np.ones(len(utf8), bool)), _varints(lens),
                 (np.frombuffer(b"".join(utf8), np.uint8), lens))


def _ints(values: np.ndarray):
    try:
        ints = np.array(values.tolist(), dtype=np.int64)
    except OverflowError as exc:  # int_value is an int64, as a store's integers are
        raise ValueError("an integer property beyond MVT's int64") from exc
    return _join(_field_key(4, VARINT, np.ones(len(ints), bool)),
                 _varints(ints))  # a negative one: ten bytes, two's complement


def _floats(values: np.ndarray):
    n = len(values)
    bits = np.array(values.tolist(), dtype=np.float64).astype("<f8").view(np.uint8)
    data = np.column_stack([np.full(n, (3 << 3) | FIXED64, np.uint8), bits.reshape(n, 8)])
    return data.ravel(), np.full(n, 9)


def _bools(values: np.ndarray):
    n = len(values)
    data = np.column_stack([np.full(n, (7 << 3) | VARINT, np.uint8),
                            np.array(values.tolist(), dtype=bool)])
    return data.ravel().astype(np.uint8), np.full(n, 2)


# -- protobuf ------------------------------------------------------------------------------
# A ragged array is (bytes as uint8, a length per row): one row per feature (or value).

def _varint_bytes(values: np.ndarray):
    """Base-128 varints of unsigned integers: all their bytes, and how many each took."""
    v = np.asarray(values)
    if v.dtype.kind == "i":  # a negative one: its 64 bits as they are (two's complement)
        v = v.astype(np.int64).view(np.uint64)
    v = v.astype(np.uint32 if len(v) == 0 or v.max() < 2**32 else np.uint64)  # 32: faster
    nbytes = np.ones(len(v), np.int64)
    rest = v >> 7
    while rest.any():  # a byte more for each 7 bits more (most values take one or two)
        nbytes += rest > 0
        rest >>= 7
    if len(v) == 0 or nbytes[-1] == 1 and nbytes.sum() == len(v):
        return v.astype(np.uint8), nbytes
    out = np.empty(int(nbytes.sum()), np.uint8)
    at = np.cumsum(nbytes) - nbytes  # where each value's first byte goes
    k, which = 0, np.arange(len(v))
    while len(which):  # the k-th byte of the values that have one
        more = nbytes[which] > k + 1
        out[at[which] + k] = (v & 0x7F).astype(np.uint8) | (more.astype(np.uint8) << 7)
        which, v, k = which[more], v[more] >> 7, k + 1
    return out, nbytes


def _varints(values: np.ndarray, present: np.ndarray | None = None):
    """A ragged array of one varint per row (rows not ``present``: none)."""
    data, nbytes = _varint_bytes(values)
    if present is None:
        return data, nbytes
    lens = np.zeros(len(present), np.int64)
    lens[present] = nbytes
    return data, lens


def _field_key(number: int, wire: int, present: np.ndarray):
    """A ragged array of one field key per row that is ``present`` (every key written
    this way fits in one byte)."""
    return np.full(int(present.sum()), (number << 3) | wire, np.uint8), present.astype(np.int64)


def _join(*parts):
    """Ragged arrays of the same rows joined row by row: row i is part 0's row i, then
    part 1's row i, and so on."""
    lens = np.column_stack([p[1] for p in parts])
    flat = lens.ravel()
    starts = (np.cumsum(flat) - flat).reshape(lens.shape)  # each part's place in the output
    out = np.empty(int(flat.sum()), np.uint8)
    for j, (data, part_lens) in enumerate(parts):
        if len(data):
            own = np.cumsum(part_lens) - part_lens
            out[np.repeat(starts[:, j] - own, part_lens) + np.arange(len(data))] = data
    return out, lens.sum(axis=1)
