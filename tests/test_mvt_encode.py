"""OUP's own MVT encoder (oup.store.mvt_encode) against the specification's examples and
a reference decoder (mapbox-vector-tile): geometry of every type, the degenerate cases,
ids, and property values of every type, in-process."""
from __future__ import annotations

import math

import mapbox_vector_tile
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mapbox_vector_tile.Mapbox import vector_tile_pb2
from shapely.geometry import shape

from oup.store.mvt_encode import CodedProperties, ValueCoder, encode_layer, encode_value


def _decode(data: bytes) -> list[dict]:
    return mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})["L"]["features"]


def _raw(data: bytes):
    """The tile as protobuf sees it: its one layer."""
    tile = vector_tile_pb2.tile()
    tile.ParseFromString(data)
    assert len(tile.layers) == 1
    return tile.layers[0]


def _field(value) -> tuple[str, object]:
    """A layer value's one field: its name and what it holds."""
    (field,) = value.ListFields()  # exactly one, as the specification wants
    return field[0].name, field[1]


def _screen(g):
    """A geometry wound as MVT wants on screen (y down): exterior rings clockwise."""
    return shapely.orient_polygons(g, exterior_cw=False)


# -- the specification's examples (4.3.5), command by command --------------------------------

@pytest.mark.parametrize("geom, commands", [
    (shapely.Point(25, 17), [9, 50, 34]),
    (shapely.MultiPoint([(5, 7), (3, 2)]), [17, 10, 14, 3, 9]),
    (shapely.LineString([(2, 2), (2, 10), (10, 10)]), [9, 4, 4, 18, 0, 16, 16, 0]),
    (shapely.MultiLineString([[(2, 2), (2, 10), (10, 10)], [(1, 1), (3, 5)]]),
     [9, 4, 4, 18, 0, 16, 16, 0, 9, 17, 17, 10, 4, 8]),
    (shapely.Polygon([(3, 6), (8, 12), (20, 34)]), [9, 6, 12, 18, 10, 12, 24, 44, 15]),
    (shapely.MultiPolygon([
        shapely.Polygon([(0, 0), (10, 0), (10, 10), (0, 10)]),
        shapely.Polygon([(11, 11), (20, 11), (20, 20), (11, 20)],
                        [[(13, 13), (13, 17), (17, 17), (17, 13)]])]),
     [9, 0, 0, 26, 20, 0, 0, 20, 19, 0, 15, 9, 22, 2, 26, 18, 0, 0, 18, 17, 0, 15, 9, 4,
      13, 26, 0, 8, 8, 0, 0, 7, 15]),
])
def test_the_specifications_examples_encode_command_for_command(geom, commands):
    layer = _raw(encode_layer("L", [geom], ids=[1]))
    assert list(layer.features[0].geometry) == commands
    assert layer.features[0].type == {"Point": 1, "MultiPoint": 1, "LineString": 2,
                                      "MultiLineString": 2}.get(geom.geom_type, 3)


def test_the_layer_is_version_2_first_with_its_extent():
    data = encode_layer("L", [shapely.Point(1, 2)], extent=512)
    layer = _raw(data)
    assert (layer.version, layer.name, layer.extent) == (2, "L", 512)
    # the version is the layer's first field (the specification's SHOULD): the tile's
    # key (0x1a), the layer's length (1 byte here), then field 15 as a varint (0x78)
    assert data[0] == 0x1A and data[2] == 0x78


# -- geometry of every type, back through the reference decoder --------------------------------

GEOMETRIES = {
    "point": shapely.Point(100, 4000),
    "multipoint": shapely.MultiPoint([(0, 0), (4096, 4096), (-64, 4160)]),
    "line": shapely.LineString([(-10, 5), (300, 5), (300, 900), (17, 3000)]),
    "multiline": shapely.MultiLineString([[(0, 0), (10, 10)], [(20, 20), (25, 40), (30, 20)]]),
    "polygon with holes": _screen(shapely.Polygon(
        [(0, 0), (1000, 0), (1000, 1000), (0, 1000)],
        [[(100, 100), (200, 100), (200, 200), (100, 200)],
         [(500, 500), (700, 500), (700, 800)]])),
    "multipolygon": _screen(shapely.MultiPolygon([
        shapely.box(0, 0, 50, 50), shapely.Polygon(
            [(100, 100), (400, 100), (400, 400), (100, 400)],
            [[(150, 150), (300, 150), (300, 300), (150, 300)]])])),
}


@pytest.mark.parametrize("name", GEOMETRIES)
def test_every_geometry_type_comes_back_as_it_went_in(name):
    geom = GEOMETRIES[name]
    (f,) = _decode(encode_layer("L", [geom], ids=[7], properties={"name": [name]}))
    got = shape(f["geometry"])
    assert got.geom_type == geom.geom_type
    assert shapely.equals_exact(shapely.normalize(got), shapely.normalize(geom), 0)
    assert f["id"] == 7 and f["properties"] == {"name": name}


def test_winding_is_kept_as_given():
    """Exterior clockwise on screen (y down), holes counter-clockwise: as the GeoPackage
    store orients them; the encoder neither checks nor turns them."""
    layer = _raw(encode_layer("L", [GEOMETRIES["polygon with holes"]]))
    rings = _rings(list(layer.features[0].geometry))
    assert [_area(r) > 0 for r in rings] == [True, False, False]  # surveyor's formula


def _rings(commands: list[int]) -> list[list[tuple[int, int]]]:
    """A polygon's command stream back to rings of absolute coordinates."""
    rings, x, y, i = [], 0, 0, 0
    while i < len(commands):
        cmd, count = commands[i] & 7, commands[i] >> 3
        i += 1
        if cmd == 7:
            continue
        if cmd == 1:
            rings.append([])
        for _ in range(count):
            dx, dy = (commands[i] >> 1) ^ -(commands[i] & 1), \
                (commands[i + 1] >> 1) ^ -(commands[i + 1] & 1)
            x, y, i = x + dx, y + dy, i + 2
            rings[-1].append((x, y))
    return rings


def _area(ring) -> float:
    return sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1])) / 2


def test_features_of_mixed_types_keep_their_own_order_ids_and_types():
    geoms = list(GEOMETRIES.values())
    feats = _decode(encode_layer("L", geoms, ids=range(10, 10 + len(geoms))))
    assert [f["id"] for f in feats] == list(range(10, 10 + len(geoms)))
    assert [f["geometry"]["type"] for f in feats] == [g.geom_type for g in geoms]


# -- the degenerate cases ---------------------------------------------------------------------

def test_nothing_to_draw_is_no_tile():
    assert encode_layer("L", []) == b""
    assert encode_layer("L", [None, shapely.Point(), shapely.Polygon(),
                              shapely.LineString([(3, 3), (3, 3)])]) == b""


def test_none_and_empty_geometries_are_left_out_with_their_properties():
    geoms = [None, shapely.Point(1, 1), shapely.MultiPolygon(), shapely.Point(2, 2)]
    data = encode_layer("L", geoms, ids=[1, 2, 3, 4],
                        properties={"a": ["x", "y", "z", "w"], "only3": [None, None, 5, None]})
    assert [(f["id"], f["properties"]) for f in _decode(data)] == [(2, {"a": "y"}),
                                                                   (4, {"a": "w"})]
    layer = _raw(data)
    assert list(layer.keys) == ["a"]  # no key, no value of a feature left out
    assert sorted(v.string_value for v in layer.values) == ["w", "y"]


def test_coordinates_are_rounded_half_to_even_as_python_does():
    (f,) = _decode(encode_layer("L", [shapely.Point(2.5, 3.5)]))
    assert f["geometry"]["coordinates"] == [round(2.5), round(3.5)] == [2, 4]


def test_repeated_vertices_are_written_once():
    line = shapely.LineString([(0, 0), (0, 0), (5, 0), (5.2, 0.1), (5, 5)])
    (f,) = _decode(encode_layer("L", [line]))
    assert f["geometry"]["coordinates"] == [[0, 0], [5, 0], [5, 5]]
    # a doubled closing coordinate: ClosePath must not draw a segment of no length
    ring = _screen(shapely.Polygon([(0, 0), (10, 0), (10, 10), (0, 0), (0, 0)]))
    commands = list(_raw(encode_layer("L", [ring])).features[0].geometry)
    assert commands[3] == 2 | (2 << 3) and commands[-1] == 15  # LineTo 2, ClosePath


def test_collapsed_parts_go_and_the_rest_stays():
    lines = shapely.MultiLineString([[(1, 1), (1.2, 1.2)], [(0, 0), (9, 9)]])
    (f,) = _decode(encode_layer("L", [lines]))
    assert f["geometry"] == {"type": "LineString", "coordinates": [[0, 0], [9, 9]]}
    # a hole too small to be a ring goes, its polygon stays
    holed = _screen(shapely.Polygon([(0, 0), (100, 0), (100, 100), (0, 100)],
                                    [[(50, 50), (50.2, 50), (50.2, 50.2)]]))
    (f,) = _decode(encode_layer("L", [holed]))
    assert f["geometry"]["type"] == "Polygon" and len(f["geometry"]["coordinates"]) == 1
    # a polygon whose exterior collapses loses its holes with it; the next one stays
    polys = _screen(shapely.MultiPolygon([
        shapely.Polygon([(0, 0), (0.3, 0), (0.3, 0.3)]), shapely.box(10, 10, 20, 20)]))
    (f,) = _decode(encode_layer("L", [polys, shapely.Polygon([(0, 0), (0.2, 0), (0, 0.2)])],
                                ids=[1, 2]))
    assert f["id"] == 1 and shape(f["geometry"]).equals(shapely.box(10, 10, 20, 20))


def test_a_two_point_ring_is_no_ring():
    """The specification wants a ring's LineTo to count 2 or more (mapbox-vector-tile
    would write this one)."""
    sliver = shapely.Polygon([(0, 0), (10, 0), (10.2, 0.1), (0, 0)])
    assert encode_layer("L", [sliver]) == b""


def test_geometry_collections_are_refused():
    with pytest.raises(ValueError, match="collections"):
        encode_layer("L", [shapely.GeometryCollection([shapely.Point(1, 1)])])


# -- ids and properties --------------------------------------------------------------------

def test_ids_are_written_when_given_and_not_negative():
    layer = _raw(encode_layer("L", [shapely.Point(1, 1)] * 3, ids=[0, -1, 2**62]))
    assert [(f.HasField("id"), f.id) for f in layer.features] == [(True, 0), (False, 0),
                                                                   (True, 2**62)]
    layer = _raw(encode_layer("L", [shapely.Point(1, 1)]))
    assert not layer.features[0].HasField("id")


VALUES = [0, 1, -1, 127, 128, -129, 2**31, -2**31 - 1, 2**53 + 1, 2**63 - 1, -2**63,
          0.0, -0.5, 1.0, 3.141592653589793, 1e300, -1e-300, math.inf,
          "", "a", "é ü 漢字 🙂", "x" * 300, True, False]


def test_property_values_come_back_with_their_types():
    n = len(VALUES)
    data = encode_layer("L", [shapely.Point(i, i) for i in range(n)], ids=range(n),
                        properties={"v": VALUES, "same": [1] * n})
    feats = _decode(data)
    assert [f["properties"]["v"] for f in feats] == VALUES
    assert [type(f["properties"]["v"]) for f in feats] == [type(v) for v in VALUES]
    layer = _raw(data)
    which = [_field(v)[0] for v in layer.values]
    assert sorted(which) == sorted(
        {int: "int_value", float: "double_value", str: "string_value",
         bool: "bool_value"}[type(v)] for v in VALUES)  # "same"'s 1 is v's 1


def test_equal_values_of_different_types_stay_apart():
    """0, 0.0 and False (1, 1.0, True) are one key to a dict: three values in a tile.
    (mapbox-vector-tile wrote the first it saw for all three.)"""
    column = [0, 0.0, False, 1, 1.0, True, None]
    feats = _decode(encode_layer("L", [shapely.Point(i, 0) for i in range(7)],
                                 properties={"v": column, "w": [1.0] * 7}))
    got = [f["properties"].get("v") for f in feats]
    assert got == column and list(map(type, got)) == list(map(type, column))
    assert all(type(f["properties"]["w"]) is float for f in feats)


def test_none_is_left_out_and_values_are_written_once():
    data = encode_layer("L", [shapely.Point(i, 0) for i in range(4)],
                        properties={"a": ["x", None, "x", "y"], "b": ["x", 2, None, 2],
                                    "never": [None] * 4, "odd": [b"bytes", [1], {}, None]})
    assert [f["properties"] for f in _decode(data)] == [
        {"a": "x", "b": "x"}, {"b": 2}, {"a": "x"}, {"a": "y", "b": 2}]
    layer = _raw(data)
    assert list(layer.keys) == ["a", "b"]  # keys no feature has are not written
    assert sorted(str(_field(v)[1]) for v in layer.values) == ["2", "x", "y"]  # b's "x": a's


def test_numpy_values_are_written_as_their_python_kin():
    feats = _decode(encode_layer("L", [shapely.Point(0, 0)], properties={
        "i": np.array([5]), "f": np.array([2.5]), "b": np.array([True])}))
    assert feats[0]["properties"] == {"i": 5, "f": 2.5, "b": True}


ONE_BY_ONE = ["", "afval", "Ä straße €", "x" * 200, 0, 1, 127, 128, 300, 2**40, 2**63 - 1,
              -1, -128, -2**63, 0.0, -1.5, 1e300, 3.25, True, False, np.int64(-7),
              np.int32(5), np.float32(0.5), np.float64(2.5), np.bool_(True), np.str_("nl")]


@pytest.mark.parametrize("value", ONE_BY_ONE, ids=repr)
def test_a_value_encoded_alone_is_as_in_the_table(value):
    """A written row's values are encoded one by one: each as the table of values does."""
    coder = ValueCoder()
    [[code]] = coder.codes([[value]], 1)
    table = coder.table()
    assert encode_value(value) == table.data[table.starts[code]:][:table.lens[code]].tobytes()


def test_a_value_mvt_has_none_for_is_none_alone_too():
    assert encode_value(None) is None and encode_value([1]) is None
    with pytest.raises(ValueError):
        encode_value(2**63)


def test_integers_beyond_int64_are_refused():
    with pytest.raises(ValueError, match="int64"):
        encode_layer("L", [shapely.Point(0, 0)], properties={"big": [2**63]})


def test_most_used_values_take_the_shortest_indices():
    """A unique id per feature and one shared value: the shared one is value 0, so every
    tag naming it is one byte."""
    n = 300
    layer = _raw(encode_layer("L", [shapely.Point(i, 0) for i in range(n)], properties={
        "id": [f"id{i}" for i in range(n)], "kind": ["building"] * n}))
    assert layer.values[0].string_value == "building"
    assert all(f.tags[3] == 0 for f in layer.features)


def test_values_numbered_beforehand_encode_as_the_values_themselves():
    """The GeoPackage numbers a collection's values at import, batch by batch, and its
    tiles give the numbers: the same bytes as the values given themselves."""
    n = 40
    columns = {"name": [f"b{i % 7}" for i in range(n)], "kind": ["b1"] * n,
               "height": [float(i % 5) if i % 3 else None for i in range(n)],
               "floors": [i % 5 for i in range(n)], "listed": [i % 2 == 0 for i in range(n)]}
    coder = ValueCoder()
    batches = [coder.codes([c[a:b] for c in columns.values()], b - a)
               for a, b in ((0, 15), (15, n))]
    codes = np.vstack(batches)
    assert codes[0, 0] == codes[35, 0]  # "b0" in both batches: one number
    assert codes[1, 0] == codes[0, 1]  # "b1" under two keys: one number
    assert len({codes[0, 3], codes[3, 2], codes[1, 4]}) == 3  # 0 / 0.0 / False apart
    assert codes[0, 2] == -1  # None
    table = coder.table()
    geoms = [shapely.Point(i, i) for i in range(n)]
    for feats in (slice(None), slice(3, 30, 2)):
        names = list(columns)
        coded = encode_layer("L", geoms[feats], ids=range(n)[feats],
                             properties=CodedProperties(names, codes[feats], table))
        given = encode_layer("L", geoms[feats], ids=range(n)[feats],
                             properties={k: v[feats] for k, v in columns.items()})
        assert coded == given
    assert _decode(coded)[1]["properties"] == {"name": "b5", "kind": "b1", "height": 0.0,
                                               "floors": 0, "listed": False}  # feature 5


# -- random layers against the reference decoder ----------------------------------------------

_coord = st.integers(-64, 4160)
_value = st.one_of(st.none(), st.integers(-2**63, 2**63 - 1), st.booleans(), st.text(max_size=8),
                   st.floats(allow_nan=False, width=64))


@st.composite
def _feature(draw):
    kind = draw(st.sampled_from(["point", "multipoint", "line", "box", "boxes"]))
    if kind == "point":
        return shapely.Point(draw(_coord), draw(_coord))
    if kind == "multipoint":
        return shapely.MultiPoint(draw(st.lists(st.tuples(_coord, _coord), min_size=1,
                                                max_size=5)))
    if kind == "line":
        pts = draw(st.lists(st.tuples(_coord, _coord), min_size=2, max_size=6))
        return shapely.LineString(pts)
    boxes = []
    for _ in range(1 if kind == "box" else draw(st.integers(2, 3))):
        x, y = draw(st.integers(-64, 3900)), draw(st.integers(-64, 3900))
        boxes.append(shapely.box(x, y, x + draw(st.integers(1, 60)), y + draw(st.integers(1, 60))))
    return _screen(shapely.union_all(boxes))  # a polygon, or a multipolygon


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_feature(), _value, _value), min_size=1, max_size=12))
def test_random_layers_decode_to_what_went_in(rows):
    geoms = [g for g, _, _ in rows]
    props = {"p": [p for _, p, _ in rows], "q": [q for _, _, q in rows]}
    data = encode_layer("L", geoms, ids=range(1, len(rows) + 1), properties=props)
    feats = {f["id"]: f for f in _decode(data)} if data else {}
    for i, (geom, p, q) in enumerate(rows, start=1):
        if geom.geom_type == "LineString":
            xy = shapely.get_coordinates(geom)
            xy = xy[np.r_[True, (xy[1:] != xy[:-1]).any(axis=1)]]  # repeats: written once
            if len(xy) < 2:
                assert i not in feats  # a line of one point is no line
                continue
            geom = shapely.LineString(xy)
        expected = shapely.normalize(geom) if geom.geom_type != "MultiPoint" else geom
        got = shape(feats[i]["geometry"])
        if geom.geom_type == "MultiPoint" and len(geom.geoms) == 1:
            expected = geom.geoms[0]  # MVT does not tell a multipoint of one from a point
        if geom.geom_type == "MultiPolygon" and len(geom.geoms) == 1:
            expected = shapely.normalize(geom.geoms[0])
        if geom.geom_type != "MultiPoint":
            got = shapely.normalize(got)
        assert shapely.equals_exact(got, expected, 0), (geom.wkt, got.wkt)
        want = {k: v for k, v in (("p", p), ("q", q)) if v is not None}
        assert feats[i]["properties"] == want
        assert {k: type(v) for k, v in feats[i]["properties"].items()} == \
            {k: type(v) for k, v in want.items()}
