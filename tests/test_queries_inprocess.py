"""The fast layer, in-process (no server, no services): the CQL2 compiler against the
brute-force evaluator of test_cql2, the parameter checks, and the SQL builders."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings

from conftest import make_probes, write_probes
from oup.http.params import ItemsRequest, check_items, parse_filter
from oup.store import InvalidQuery, Query
from oup.store.gpkg import GeoPackageStore
from oup.store.placeholders import pg_sql
from test_cql2 import TEXT_FILTERS, expected_serials, filters, prop

NAMES = {"name", "count", "level", "active", "observed", "note", "serial"}


@pytest.fixture(scope="module")
def probe_store(tmp_path_factory):
    """The probes of test_cql2 in a GeoPackage store of their own (CRS84 data)."""
    folder = tmp_path_factory.mktemp("probes")
    feats = make_probes(folder / "probes")
    store = GeoPackageStore(folder / "probes.gpkg")
    assert {f.name for f in write_probes(store, feats)} == NAMES
    return store, feats


def _served(store, node=None, **query) -> set[int]:
    page = store.query("probes", Query(filter=node, limit=1000, skip_geometry=True, **query))
    assert page.number_matched == len(page.features)
    return {f["properties"]["serial"] for f in page.features}


@settings(max_examples=300, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(node=filters)
def test_compiled_cql2_json_matches_brute_force(probe_store, node):
    store, probes = probe_store
    checked = check_items({"filter": json.dumps(node), "filter-lang": "cql2-json"}, NAMES,
                          1000, "probes")
    assert _served(store, checked.filter) == expected_serials(probes, node)


@pytest.mark.parametrize("text, node", TEXT_FILTERS + [
    ("BBOX(geometry, 4.42, 51.89, 4.48, 51.92)",
     {"op": "s_intersects", "args": [prop("geometry"), {"bbox": [4.42, 51.89, 4.48, 51.92]}]}),
])
def test_compiled_cql2_text_matches_brute_force(probe_store, text, node):
    store, probes = probe_store
    expected = expected_serials(probes, node)
    assert 0 < len(expected) < len(probes)
    assert _served(store, parse_filter(text, None)) == expected


def test_bbox_datetime_and_equality_match_brute_force(probe_store):
    store, probes = probe_store
    checked = check_items({"bbox": "4.42,51.89,4.48,51.92",
                           "datetime": "2024-01-15T00:00:00Z/2024-02-15T00:00:00Z",
                           "active": "true"}, NAMES, 1000, "probes")
    box = shapely.box(4.42, 51.89, 4.48, 51.92)
    expected = {f["properties"]["serial"] for f in probes
                if shapely.geometry.shape(f["geometry"]).intersects(box)
                and "2024-01-15T00:00:00Z" <= f["properties"]["observed"] <= "2024-02-15T00:00:00Z"
                and f["properties"]["active"]}
    assert 0 < len(expected)
    assert _served(store, checked.filter, bbox=checked.bbox, interval=checked.interval,
                   equals=checked.equals) == expected


def test_number_matched_is_the_whole_count_whatever_the_page(probe_store):
    """numberMatched is every feature the query selects, from any page: one not full
    tells it by itself, a full one (or one past the end) is counted."""
    store, probes = probe_store
    box = shapely.box(4.42, 51.89, 4.48, 51.92)
    total = sum(shapely.geometry.shape(f["geometry"]).intersects(box) for f in probes)
    assert total > 3
    pages = [(limit, offset) for limit in (1, 2, 3, total - 1, total, total + 1)
             for offset in (0, 1, total - 1, total, total + 5)]
    for limit, offset in pages + [(0, 0)]:  # limit 0: only the number (resulttype=hits)
        page = store.query("probes", Query(bbox=(4.42, 51.89, 4.48, 51.92), limit=limit,
                                           offset=offset, skip_geometry=True))
        assert page.number_matched == total, (limit, offset)
        assert len(page.features) == max(0, min(limit, total - offset)), (limit, offset)


def test_geojson_geometries_are_what_geos_writes():
    """The features' geometry, built from coordinate arrays, is exactly what GEOS's
    GeoJSON writer says (read back), for every type, with and without z, holes, parts,
    collections, empty and missing geometries, in any mix and order."""
    import random

    import orjson

    from oup.store.geometry import geojson_geometries

    rng = random.Random(3)

    def pt(z):
        return (rng.uniform(-180, 180), rng.uniform(-90, 90)) + ((rng.uniform(-5, 50),)
                                                                if z else ())

    def ring(z):
        x, y = rng.uniform(0, 100), rng.uniform(0, 50)
        return [(x, y) + ((1.5,) if z else ()), (x + 1, y) + ((2.5,) if z else ()),
                (x + 1, y + 1) + ((3.5,) if z else ()), (x, y) + ((1.5,) if z else ())]

    makers = [
        lambda z: shapely.Point(pt(z)),
        lambda z: shapely.LineString([pt(z) for _ in range(rng.randint(2, 6))]),
        lambda z: shapely.Polygon(ring(z)),
        lambda z: shapely.Polygon(shapely.box(0, 0, 9, 9).exterior.coords,
                                  [[(1, 1), (2, 1), (2, 2), (1, 1)]]),
        lambda z: shapely.MultiPoint([pt(z) for _ in range(rng.randint(1, 4))]),
        lambda z: shapely.MultiLineString([[pt(z), pt(z)] for _ in range(rng.randint(1, 3))]),
        lambda z: shapely.MultiPolygon([shapely.Polygon(ring(z))
                                        for _ in range(rng.randint(1, 3))]),
        lambda z: shapely.GeometryCollection([shapely.Point(pt(z)),
                                              shapely.LineString([pt(z), pt(z)])]),
        lambda z: shapely.LinearRing(ring(z)),
        lambda z: shapely.from_wkt("MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)), EMPTY, "
                                   "((5 5, 6 5, 6 6, 5 5), (5.2 5.1, 5.8 5.1, 5.8 5.7, 5.2 5.1)))"),
        lambda z: shapely.from_wkt("MULTILINESTRING ((0 0, 1 1), EMPTY)"),
        lambda z: shapely.Polygon(),
        lambda z: shapely.MultiPolygon(),
        lambda z: None,
    ]
    for _ in range(30):
        geoms = np.array([rng.choice(makers)(rng.random() < 0.3)
                          for _ in range(rng.randint(0, 25))], dtype=object)
        expected = [None if g is None else orjson.loads(shapely.to_geojson(g)) for g in geoms]
        got = geojson_geometries(geoms)
        assert got == expected
        assert orjson.dumps(got) == orjson.dumps(expected)


# -- the parameter checks ---------------------------------------------------------------

@pytest.mark.parametrize("args, parameter", [
    ({"bbox": "1,2,3"}, "bbox"), ({"bbox": "a,b,c,d"}, "bbox"), ({"bbox": "5,52,4,51"}, "bbox"),
    ({"bbox": "1,2,3,nan"}, "bbox"), ({"bbox": "-200,0,0,1"}, "bbox"),
    ({"bbox": "1,2,3,4", "bbox-crs": "EPSG:9999"}, "bbox-crs"),
    ({"bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/28992"}, "bbox-crs"),
    ({"crs": "http://www.opengis.net/def/crs/EPSG/0/9999"}, "crs"),
    ({"datetime": "yesterday"}, "datetime"), ({"datetime": "../.."}, "datetime"),
    ({"datetime": "2009-01-01T00:00:00Z/2008-01-01T00:00:00Z"}, "datetime"),
    ({"datetime": ".."}, "datetime"), ({"datetime": "a/b/c"}, "datetime"),
    ({"limit": "0"}, "limit"), ({"limit": "abc"}, "limit"), ({"limit": "1001"}, "limit"),
    ({"offset": "-1"}, "offset"), ({"colour": "red"}, "colour"),
    ({"sortby": "-colour"}, "sortby"), ({"properties": "colour"}, "properties"),
    ({"filter": "count >"}, "filter"), ({"filter": "{not json"}, "filter"),
    ({"filter-lang": "cql3", "filter": "count>1"}, "filter-lang"),
    ({"filter-lang": "cql2-text"}, "filter-lang"),
    ({"filter-crs": "EPSG:1", "filter": "count>1"}, "filter-crs"),
    ({"skipGeometry": "maybe"}, "skipGeometry"), ({"resulttype": "all"}, "resulttype"),
])
def test_bad_parameters_are_named(args, parameter):
    with pytest.raises(InvalidQuery) as exc:
        check_items(args, NAMES, 1000, "probes")
    assert exc.value.parameter == parameter and str(exc.value)


def test_a_checked_query_is_parsed_once_into_what_the_provider_needs():
    checked = check_items({"bbox": "4.4,51.9,-5,4.5,52.0,50", "datetime": "2024-01-01T00:00:00Z",
                           "sortby": "-count,+name,level", "properties": "name,count",
                           "filter": "count > 3", "name": "noord1", "limit": "5", "f": "json"},
                          NAMES, 1000, "probes")
    assert isinstance(checked, ItemsRequest) and checked.collection == "probes"
    assert checked.bbox == (4.4, 51.9, 4.5, 52.0)  # the 2D box of a bbox with heights
    assert checked.interval[0] == checked.interval[1] and checked.interval[0].tzinfo
    assert checked.sortby == [("count", False), ("name", True), ("level", True)]
    assert checked.properties == ["name", "count"]
    assert checked.equals == {"name": "noord1"}
    assert type(checked.filter).__name__ == "GreaterThan"


def test_a_posted_filter_is_checked_and_a_url_filter_wins():
    body = json.dumps({"op": ">", "args": [prop("count"), 3]})
    assert type(check_items({}, NAMES, 10, "p", body).filter).__name__ == "GreaterThan"
    assert type(check_items({"filter": "count < 3"}, NAMES, 10, "p", body).filter).__name__ \
        == "LessThan"
    with pytest.raises(InvalidQuery):
        check_items({"filter": "count < 3"}, NAMES, 10, "p", "{broken")


# -- the SQL builders ---------------------------------------------------------------------

@pytest.mark.parametrize("sql, pg", [
    ("SELECT a FROM t WHERE b = ? AND c IN (?, ?)",
     "SELECT a FROM t WHERE b = %s AND c IN (%s, %s)"),
    ("SELECT '?' AS q, \"we?ird\" FROM t WHERE x = ?", "SELECT '?' AS q, \"we?ird\" FROM t WHERE x = %s"),
    ("SELECT * FROM t WHERE s LIKE '5%' AND v = ?", "SELECT * FROM t WHERE s LIKE '5%%' AND v = %s"),
    ("SELECT unnest(?::text[])", "SELECT unnest(%s::text[])"),
])
def test_pg_placeholders(sql, pg):
    assert pg_sql(sql) == pg


def test_the_stores_write_sql_with_one_placeholder_style():
    """Every statement is written with ``?`` (SQLite's, and PostgreSQL's through
    ``pg_sql``): a ``%s`` written by hand would work on one store and not the other."""
    import ast
    import re
    from pathlib import Path

    sql = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|VALUES|WHERE)\b")
    root = Path(__file__).resolve().parent.parent
    found = []
    for path in sorted((root / "oup").rglob("*.py")) + sorted((root / "iot_ingest").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and "%s" in node.value and sql.search(node.value)):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not found, found


def test_where_has_one_parameter_per_placeholder(probe_store):
    store, _ = probe_store
    meta = store.layer("probes")
    checked = check_items({"bbox": "4.42,51.89,4.48,51.92", "datetime": "2024-01-15T00:00:00Z/..",
                           "count": "3", "filter": "name IN ('a', 'b') AND level BETWEEN 1 AND 2"},
                          NAMES, 10, "probes")
    where, params = store.where("probes", meta, Query(
        bbox=checked.bbox, interval=checked.interval, equals=checked.equals,
        filter=checked.filter))
    assert where.startswith(" WHERE ") and where.count("?") == len(params)
    assert 3 in params and "a" in params and "2024-01-15T00:00:00Z" in params


@pytest.mark.parametrize("query, parameter", [
    (Query(equals={"count": "many"}), "count"),
    (Query(equals={"count": str(2**70)}), "count"),
    (Query(sortby=[("colour", True)]), "sortby"),
    (Query(select=["colour"]), "properties"),
    (Query(filter=parse_filter("name > 3", None)), "filter"),
    (Query(filter=parse_filter("name LIKE 'a%' AND count LIKE '1%'", None)), "filter"),
])
def test_the_store_refuses_what_it_cannot_answer(probe_store, query, parameter):
    store, _ = probe_store
    with pytest.raises(InvalidQuery) as exc:
        store.query("probes", query)
    assert exc.value.parameter == parameter


# -- filter-crs: through oup.geodesy ------------------------------------------------------

RD = "http://www.opengis.net/def/crs/EPSG/0/28992"


@pytest.fixture(scope="module")
def to_crs84(tmp_path_factory):
    """RD New -> CRS84 by RDNAPTRANS(TM)2018 (the grids from the suite's cache if there)."""
    from conftest import GRID_CACHE
    from oup.geodesy import RDTRANS_GRID, install_grids, transformer

    folder = tmp_path_factory.mktemp("grids")
    if (GRID_CACHE / RDTRANS_GRID).exists():
        shutil.copytree(GRID_CACHE, folder / "proj", dirs_exist_ok=True)
    install_grids(folder)
    return transformer("EPSG:28992", "OGC:CRS84")


def _coordinates(node):
    return [tuple(c) for c in shapely.geometry.shape(node.rhs.geometry).exterior.coords]


def test_filter_literals_in_rd_are_moved_to_crs84_by_rdnaptrans(to_crs84):
    corners = [(90800, 435600), (90810, 435600), (90810, 435610), (90800, 435610),
               (90800, 435600)]
    wkt = "POLYGON((" + ", ".join(f"{x} {y}" for x, y in corners) + "))"
    expected = [to_crs84.transform(x, y) for x, y in corners]
    for node in (parse_filter(f"S_INTERSECTS(geometry, {wkt})", None, RD),
                 parse_filter(f"S_INTERSECTS(geometry, SRID=28992;{wkt})", None, None),
                 parse_filter("BBOX(geometry, 90800, 435600, 90810, 435610)", None, RD)):
        assert type(node).__name__ == "GeometryIntersects"
        got = _coordinates(node)
        assert shapely.Polygon(got).equals_exact(shapely.Polygon(expected), 1e-9) or \
            shapely.Polygon(got).normalize().equals_exact(
                shapely.Polygon(expected).normalize(), 1e-9)
    # a CRS84 literal stays as given
    node = parse_filter("S_INTERSECTS(geometry, POINT(4.45 51.9))", None, None)
    assert node.rhs.geometry["coordinates"] == (4.45, 51.9)
