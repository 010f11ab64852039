"""CQL2 filters return exactly what a brute-force evaluation over the source data
returns: generated filters (hypothesis) in CQL2 JSON, fixed ones in CQL2 text."""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest
import requests
import shapely
from hypothesis import HealthCheck, given, settings, strategies as st

T0, T1 = datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2024, 3, 1, tzinfo=timezone.utc)


# -- an independent evaluator (Kleene logic: None is "unknown") -----------------------

def _ts(v):
    return datetime.fromisoformat(v.replace("Z", "+00:00"))


def _value(arg, props, geom):
    if isinstance(arg, dict):
        if "property" in arg:
            name = arg["property"]
            if name == "geometry":
                return geom
            v = props.get(name)
            return _ts(v) if name == "observed" and v is not None else v
        if "timestamp" in arg:
            return _ts(arg["timestamp"])
        if "interval" in arg:
            return tuple(None if x == ".." else _ts(x) for x in arg["interval"])
        if "bbox" in arg:
            return shapely.box(*arg["bbox"])
        if "type" in arg:
            return shapely.geometry.shape(arg)
    return arg


def evaluate(node, props, geom):
    op, args = node["op"], node["args"]
    if op == "and":
        vals = [evaluate(a, props, geom) for a in args]
        return False if False in vals else (None if None in vals else True)
    if op == "or":
        vals = [evaluate(a, props, geom) for a in args]
        return True if True in vals else (None if None in vals else False)
    if op == "not":
        v = evaluate(args[0], props, geom)
        return None if v is None else not v
    vals = [_value(a, props, geom) for a in args]
    if op == "isNull":
        return vals[0] is None
    if vals[0] is None:
        return None
    a = vals[0]
    if op in ("=", "<>", "<", "<=", ">", ">="):
        b = vals[1]
        return {"=": a == b, "<>": a != b, "<": a < b, "<=": a <= b, ">": a > b,
                ">=": a >= b}[op]
    if op == "between":
        return vals[1] <= a <= vals[2]
    if op == "in":
        return a in vals[1]
    if op == "like":
        rx = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in vals[1])
        return re.fullmatch(rx, a, re.S) is not None
    if op == "s_intersects":
        return a.intersects(vals[1])
    if op == "s_within":
        return a.within(vals[1])
    if op == "s_disjoint":
        return a.disjoint(vals[1])
    if op.startswith("t_"):
        b = vals[1]
        lo, hi = b if isinstance(b, tuple) else (b, b)
        inside = (lo is None or a >= lo) and (hi is None or a <= hi)
        return {"t_after": hi is not None and a > hi, "t_before": lo is not None and a < lo,
                "t_intersects": inside, "t_disjoint": not inside,
                "t_equals": lo == hi and a == lo}[op]
    raise AssertionError(op)


# -- generated filters ------------------------------------------------------------------

def _iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


times = st.datetimes(min_value=T0.replace(tzinfo=None), max_value=T1.replace(tzinfo=None)) \
    .map(lambda d: d.replace(microsecond=0, tzinfo=timezone.utc))
names = st.sampled_from(["noord1", "zuid2", "haven3", "Haven3", "west0", "oost6", "Centrum4"])
patterns = st.lists(st.sampled_from(list("nordzuihavHCe%_0123")), min_size=1, max_size=6) \
    .map("".join)
lon = st.floats(4.39, 4.53)
lat = st.floats(51.87, 51.95)


@st.composite
def bboxes(draw):
    x0, y0 = draw(lon), draw(lat)
    return [x0, y0, x0 + draw(st.floats(0.001, 0.05)), y0 + draw(st.floats(0.001, 0.03))]


@st.composite
def triangles(draw):
    x0, y0 = draw(lon), draw(lat)
    d = draw(st.floats(0.003, 0.04))
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x0 + d, y0], [x0, y0 + d], [x0, y0]]]}


def prop(name):
    return {"property": name}


comparison = st.one_of(
    st.builds(lambda op, v: {"op": op, "args": [prop("count"), v]},
              st.sampled_from(["=", "<>", "<", "<=", ">", ">="]), st.integers(-1, 51)),
    st.builds(lambda op, v: {"op": op, "args": [prop("level"), v]},
              st.sampled_from(["<", "<=", ">", ">="]), st.floats(-5, 15).map(lambda f: round(f, 2))),
    st.builds(lambda op, v: {"op": op, "args": [prop("name"), v]},
              st.sampled_from(["=", "<>", "<", ">="]), names),
    st.builds(lambda op, v: {"op": op, "args": [prop("active"), v]},
              st.sampled_from(["=", "<>"]), st.booleans()),
    st.builds(lambda op, v: {"op": op, "args": [prop("note"), v]},
              st.sampled_from(["=", "<>"]), st.sampled_from(["n0", "n1", "n2"])),
    st.builds(lambda op, t: {"op": op, "args": [prop("observed"), {"timestamp": _iso(t)}]},
              st.sampled_from(["<", ">=", "="]), times),
    st.builds(lambda p: {"op": "like", "args": [prop("name"), p]}, patterns),
    st.builds(lambda a, b: {"op": "between", "args": [prop("count"), min(a, b), max(a, b)]},
              st.integers(0, 50), st.integers(0, 50)),
    st.builds(lambda vs: {"op": "in", "args": [prop("count"), vs]},
              st.lists(st.integers(0, 50), min_size=1, max_size=5)),
    st.builds(lambda vs: {"op": "in", "args": [prop("name"), vs]},
              st.lists(names, min_size=1, max_size=3)),
    st.just({"op": "isNull", "args": [prop("note")]}),
    st.builds(lambda b: {"op": "s_intersects", "args": [prop("geometry"), {"bbox": b}]},
              bboxes()),
    st.builds(lambda g: {"op": "s_intersects", "args": [prop("geometry"), g]}, triangles()),
    st.builds(lambda g: {"op": "s_within", "args": [prop("geometry"), g]}, triangles()),
    st.builds(lambda op, t: {"op": op, "args": [prop("observed"), {"timestamp": _iso(t)}]},
              st.sampled_from(["t_after", "t_before", "t_equals"]), times),
    st.builds(lambda op, a, b: {"op": op, "args": [prop("observed"), {"interval": [a, b]}]},
              st.sampled_from(["t_intersects", "t_disjoint", "t_after", "t_before"]),
              st.one_of(st.just(".."), times.map(_iso)),
              st.one_of(st.just(".."), times.map(_iso))).filter(
        lambda n: n["args"][1]["interval"] != ["..", ".."] and
        (".." in n["args"][1]["interval"] or
         n["args"][1]["interval"][0] <= n["args"][1]["interval"][1])),
)

filters = st.recursive(
    comparison,
    lambda inner: st.one_of(
        st.builds(lambda a, b: {"op": "and", "args": [a, b]}, inner, inner),
        st.builds(lambda a, b: {"op": "or", "args": [a, b]}, inner, inner),
        st.builds(lambda a: {"op": "not", "args": [a]}, inner)),
    max_leaves=4)


def served_serials(server, params) -> set[int]:
    r = requests.get(f"{server}/collections/probes/items",
                     params={"limit": 1000, "skipGeometry": "true", **params}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["numberMatched"] == len(body["features"])
    return {f["properties"]["serial"] for f in body["features"]}


def expected_serials(probes, node) -> set[int]:
    return {f["properties"]["serial"] for f in probes
            if evaluate(node, f["properties"], shapely.geometry.shape(f["geometry"])) is True}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(node=filters)
def test_generated_cql2_json_filters_match_brute_force(server, probes, node):
    got = served_serials(server, {"filter": json.dumps(node), "filter-lang": "cql2-json"})
    assert got == expected_serials(probes, node)


# CQL2 text filters and what they mean in CQL2 JSON (for the evaluator)
TEXT_FILTERS = [
    ("count > 25 AND active = true",
     {"op": "and", "args": [{"op": ">", "args": [prop("count"), 25]},
                            {"op": "=", "args": [prop("active"), True]}]}),
    ("name LIKE 'Haven%' OR level < 2.5",
     {"op": "or", "args": [{"op": "like", "args": [prop("name"), "Haven%"]},
                           {"op": "<", "args": [prop("level"), 2.5]}]}),
    ("count BETWEEN 10 AND 20", {"op": "between", "args": [prop("count"), 10, 20]}),
    ("name IN ('noord1', 'zuid2')", {"op": "in", "args": [prop("name"), ["noord1", "zuid2"]]}),
    ("note IS NULL", {"op": "isNull", "args": [prop("note")]}),
    ("NOT (note = 'n1')", {"op": "not", "args": [{"op": "=", "args": [prop("note"), "n1"]}]}),
    ("S_INTERSECTS(geometry, POLYGON((4.42 51.89, 4.48 51.89, 4.48 51.92, 4.42 51.92, 4.42 51.89)))",
     {"op": "s_intersects", "args": [prop("geometry"), {"bbox": [4.42, 51.89, 4.48, 51.92]}]}),
    ("observed > TIMESTAMP('2024-02-01T00:00:00Z')",
     {"op": ">", "args": [prop("observed"), {"timestamp": "2024-02-01T00:00:00Z"}]}),
]


@pytest.mark.parametrize("text, node", TEXT_FILTERS)
def test_cql2_text_filters_match_brute_force(server, probes, text, node):
    expected = expected_serials(probes, node)
    assert 0 < len(expected) < len(probes)  # the case really discriminates
    assert served_serials(server, {"filter": text}) == expected


def test_filter_crs_rd(server, probes):
    """A literal in RD New (filter-crs) selects what it covers in RD New."""
    import numpy as np

    from oup.geodesy import transformer

    to_rd = transformer("OGC:CRS84", "EPSG:28992")
    x0, y0 = to_rd.transform(4.43, 51.895)
    x1, y1 = to_rd.transform(4.47, 51.915)
    box = shapely.box(x0, y0, x1, y1)
    expected = set()
    for f in probes:
        g = shapely.transform(shapely.geometry.shape(f["geometry"]),
                              lambda c: np.column_stack(to_rd.transform(c[:, 0], c[:, 1])))
        if g.intersects(box):
            expected.add(f["properties"]["serial"])
    text = (f"S_INTERSECTS(geometry, POLYGON(({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, "
            f"{x0} {y0})))")
    got = served_serials(server, {"filter": text,
                                  "filter-crs": "http://www.opengis.net/def/crs/EPSG/0/28992"})
    assert len(expected) > 10
    assert got == expected
