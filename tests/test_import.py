"""``oup import`` on the real city models (tests/data/ and the demo city) and on the other
source formats."""
import json
import shutil

import pyogrio
import pytest
import shapely

from conftest import CITY_MODELS, STORES, make_probes
from oup.catalog import load_collection
from oup.catalog.importers import ImportError_, import_collection
from oup.store.gpkg import GeoPackageStore


def _collection(folder, source_yaml: str, name="things"):
    d = folder / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "collection.yml").write_text(f"""title: T
description: D
license: {{name: CC0}}
owner: {{name: Me}}
sources: [{source_yaml}]
""")
    return d


@pytest.fixture
def store(tmp_path, env):
    from oup.geodesy import install_grids

    install_grids(env["OUP_DATA_DIR"])
    return GeoPackageStore(tmp_path / "t.gpkg")


def _import(folder, store):
    return import_collection(load_collection(folder / "collection.yml"), store, progress=False)


def test_delfshaven_all_853_buildings_with_derived_heights(tmp_path, store):
    d = _collection(tmp_path, "{path: city.json}")
    shutil.copy(CITY_MODELS["rotterdam-delfshaven.city.json"], d / "city.json")
    report = _import(d, store)
    assert report.count == 853 and not report.skipped
    names = {f.name: f.type for f in store.fields("things")}
    for derived in ("ground_level", "roof_level", "height"):
        assert names[derived] == "number"
    assert names["TerrainHeight"] == "number" and names["status"] == "string"
    # the source's own numbers: a building's height is its roof minus its ground
    doc = json.loads((d / "city.json").read_text())
    tr = doc["transform"]
    oid, obj = next(iter(doc["CityObjects"].items()))
    idx = {i for shell in obj["geometry"][0]["boundaries"] for s in shell for r in s for i in r}
    zs = [doc["vertices"][i][2] * tr["scale"][2] + tr["translate"][2] for i in idx]
    page = store.query("things", __import__("oup.store", fromlist=["Query"]).Query(
        filter=None, equals={"cityobject_id": oid}, limit=1))
    props = page.features[0]["properties"]
    assert props["roof_level"] == pytest.approx(max(zs), abs=0.001)
    assert props["height"] == pytest.approx(max(zs) - min(zs), abs=0.002)


def test_delft_mixed_types_multisurface_and_extension(tmp_path, store):
    d = _collection(tmp_path, "{path: city.json}")
    shutil.copy(CITY_MODELS["delft.city.json"], d / "city.json")
    report = _import(d, store)
    doc = json.loads((d / "city.json").read_text())
    top = [o for o in doc["CityObjects"].values() if not o.get("parents")]
    assert report.count + sum(report.skipped.values()) >= len(top) - 0
    assert report.count > 0.8 * len(top)
    from oup.store import Query

    types = {f["properties"]["cityobject_type"]
             for f in store.query("things", Query(limit=1000, skip_geometry=True)).features}
    assert len(types) >= 5


def test_a_file_without_crs_needs_one(tmp_path, store):
    d = _collection(tmp_path, "{path: city.json}")
    shutil.copy(CITY_MODELS["3dbag-multi-lod.city.json"], d / "city.json")
    with pytest.raises(ImportError_, match="referenceSystem.*crs"):
        _import(d, store)
    d2 = _collection(tmp_path, "{path: city.json, crs: 'EPSG:7415'}", name="bag")
    shutil.copy(CITY_MODELS["3dbag-multi-lod.city.json"], d2 / "city.json")
    assert _import(d2, store).count == 10


def test_missing_textures_do_not_matter_for_footprints(tmp_path, store):
    d = _collection(tmp_path, "{path: city.json, crs: 'EPSG:7415'}")
    shutil.copy(CITY_MODELS["rotterdam-subset-missing-textures.city.json"], d / "city.json")
    assert _import(d, store).count == 16


def test_cityjsonseq_gives_the_same_footprints(tmp_path, store):
    doc = json.loads(CITY_MODELS["rotterdam-delfshaven.city.json"].read_text())
    header = {k: v for k, v in doc.items() if k not in ("CityObjects", "vertices")}
    header.update(CityObjects={}, vertices=[])
    lines = [json.dumps(header)]
    for oid, obj in list(doc["CityObjects"].items())[:50]:
        used = sorted({i for g in obj["geometry"] for sh in g["boundaries"] for s in sh
                       for r in s for i in r})
        remap = {old: new for new, old in enumerate(used)}
        geoms = [dict(g, boundaries=[[[[remap[i] for i in r] for r in s] for s in sh]
                                     for sh in g["boundaries"]]) for g in obj["geometry"]]
        lines.append(json.dumps({"type": "CityJSONFeature", "id": oid,
                                 "CityObjects": {oid: dict(obj, geometry=geoms)},
                                 "vertices": [doc["vertices"][i] for i in used]}))
    lines.insert(3, "{not json")
    d = _collection(tmp_path, "{path: city.city.jsonl}")
    (d / "city.city.jsonl").write_text("\n".join(lines) + "\n")
    report = _import(d, store)
    assert report.count == 50
    assert any("not valid JSON" in why for why in report.skipped)
    # a CityJSONSeq named otherwise is read as one where the catalogue says so
    d2 = _collection(tmp_path, "{path: city.txt, format: cityjsonseq}", name="seq")
    (d2 / "city.txt").write_text("\n".join(lines) + "\n")
    assert _import(d2, store).count == 50


@pytest.mark.parametrize("content, message", [
    ('{"type": "CityJSON", "version": "0.9", "CityObjects": {}, "vertices": []}', "1.0, 1.1, 2.0"),
    ('{"type": "CityJSON", "version": "2.0", "Ci', "not valid JSON"),
    ('', "not valid JSON"),
])
def test_bad_city_models_are_refused_clearly(tmp_path, store, content, message):
    d = _collection(tmp_path, "{path: city.city.json, crs: 'EPSG:7415'}")
    (d / "city.city.json").write_text(content)
    with pytest.raises(ImportError_, match=message):
        _import(d, store)


def test_geojson_gpkg_and_csv_sources(tmp_path, store):
    feats = make_probes(tmp_path / "probes", n=30)
    coll = load_collection(tmp_path / "probes" / "collection.yml")
    assert import_collection(coll, store, progress=False).count == 30
    # the GeoPackage we write is a real one: GDAL reads it back
    df = pyogrio.read_dataframe(store.path, layer="probes")
    assert len(df) == 30
    assert shapely.equals_exact(df.geometry.iloc[0],
                                shapely.geometry.shape(feats[0]["geometry"]), 1e-9)
    # the GeoPackage as a source
    d = _collection(tmp_path, "{path: in.gpkg}", name="fromgpkg")
    pyogrio.write_dataframe(df, d / "in.gpkg")
    assert _import(d, store).count == 30
    # CSV with coordinates, one row without: a feature without geometry (issue 14)
    d = _collection(tmp_path, "{path: pts.csv, x_field: x, y_field: y, crs: 'EPSG:28992'}",
                    name="fromcsv")
    (d / "pts.csv").write_text("name,x,y,n\na,91000,435800,1\nb,91100,435900,2\nc,,,3\n")
    report = _import(d, store)
    assert report.count == 3 and "1 features without geometry" in str(report)
    from oup.store import Query

    got = {f["properties"]["name"]: f["geometry"]
           for f in store.query("fromcsv", Query(limit=10)).features}
    assert got["c"] is None and got["a"]["type"] == "Point"


# -- one coordinate dimension per collection, the same on both stores ------------------------

@pytest.fixture(params=STORES)
def each_store(request, tmp_path):
    """An empty store of each kind; EPSG:4326 sources only (no grids needed)."""
    if request.param == "gpkg":
        yield GeoPackageStore(tmp_path / "t.gpkg")
        return
    from oup.store.postgis import PostGISStore

    store = PostGISStore(request.getfixturevalue("postgis").create(
        f"imp{tmp_path.name[-12:]}".replace("-", "_").lower()), pool_size=1)
    yield store
    store.close()


# found by tests/test_import_fuzz.py: placemarks with and without altitudes in one file
MIXED_Z_KML = """<?xml version="1.0" encoding="UTF-8"?>
<kml xmlns="http://www.opengis.net/kml/2.2"><Document>
<Placemark><name>flat</name><Point><coordinates>4.47,51.92</coordinates></Point></Placemark>
<Placemark><name>tall</name><Point><coordinates>4.48,51.93,12.5</coordinates></Point></Placemark>
<Placemark><name>path</name><LineString><coordinates>4.46,51.91 4.465,51.915</coordinates>
</LineString></Placemark>
<Placemark><name>ramp</name><LineString><coordinates>4.46,51.92,1.5 4.47,51.93,-2.25</coordinates>
</LineString></Placemark>
<Placemark><name>both</name><MultiGeometry><Point><coordinates>4.45,51.9</coordinates></Point>
<Point><coordinates>4.451,51.901,7</coordinates></Point></MultiGeometry></Placemark>
<Placemark><name>none</name></Placemark>
</Document></kml>
"""


def _stored(store, cid="things") -> dict:
    from oup.store import Query

    return {f["properties"]["Name"]: f["geometry"]
            for f in store.query(cid, Query(limit=100)).features}


def test_a_kml_mixing_2d_and_3d_keeps_its_heights_and_gives_the_rest_zero(tmp_path, each_store):
    """Where any geometry has heights, the collection is 3D: they are kept, and the others
    get Z = 0 (as ogr2ogr -dim XYZ and ST_Force3D); the same on both stores."""
    d = _collection(tmp_path, "{path: mixed.kml}")
    (d / "mixed.kml").write_text(MIXED_Z_KML)
    report = _import(d, each_store)
    assert report.count == 6
    assert "2 geometries without heights given height 0" in str(report)
    assert _stored(each_store) == {
        "flat": {"type": "Point", "coordinates": [4.47, 51.92, 0.0]},
        "tall": {"type": "Point", "coordinates": [4.48, 51.93, 12.5]},
        "path": {"type": "LineString", "coordinates": [[4.46, 51.91, 0.0],
                                                       [4.465, 51.915, 0.0]]},
        "ramp": {"type": "LineString", "coordinates": [[4.46, 51.92, 1.5],
                                                       [4.47, 51.93, -2.25]]},
        # GDAL itself gives the flat part of a placemark with heights Z = 0
        "both": {"type": "MultiPoint", "coordinates": [[4.45, 51.9, 0.0],
                                                       [4.451, 51.901, 7.0]]},
        "none": None}
    # in the source CRS too (the data of record), and as GIS clients are told: 3D
    from oup.store import Query

    native = each_store.query("things", Query(limit=100, crs="EPSG:4326"))
    assert all(len(f["geometry"]["coordinates"]) == 3 for f in native.features
               if f["geometry"] and f["geometry"]["type"] == "Point")
    assert _declared_dimensions(each_store, "things") == {3}


def test_a_kml_without_heights_stays_2d(tmp_path, each_store):
    d = _collection(tmp_path, "{path: flat.kml}")
    (d / "flat.kml").write_text(MIXED_Z_KML.replace(",12.5", "").replace(",1.5", "")
                                .replace(",-2.25", "").replace(",7<", "<"))
    report = _import(d, each_store)
    assert report.count == 6 and "height" not in str(report)
    assert _stored(each_store)["tall"] == {"type": "Point", "coordinates": [4.48, 51.93]}
    assert _declared_dimensions(each_store, "things") == {2}


def _declared_dimensions(store, cid) -> set[int]:
    """The coordinate dimension of the collection's geometry columns, as a GIS client reads
    it: PostGIS's geometry_columns, the GeoPackage's z flag (read by GDAL)."""
    if isinstance(store, GeoPackageStore):
        import sqlite3

        with sqlite3.connect(store.path) as con:  # z: 0 prohibited, 1 mandatory, 2 optional
            return {{0: 2, 1: 3}.get(z, z) for z, in con.execute(
                "SELECT z FROM gpkg_geometry_columns WHERE table_name = ?", (cid,))}
    return {r[0] for r in store.execute(
        "SELECT coord_dimension FROM geometry_columns WHERE f_table_name = ?", (cid,))}


def test_a_write_that_fails_partway_leaves_nothing_behind(tmp_path, each_store):
    """What a failed write began is seen by no one: not the collection, and no table of it
    that a GIS client would list."""
    from oup.store import Field
    from oup.store.base import Feature

    pt = shapely.Point(4.45, 51.9)
    each_store.write_collection("before", "EPSG:4326", [], [Feature(pt, pt, {})])

    def features():
        yield Feature(pt, pt, {"a": 1})
        raise RuntimeError("the source broke off")

    tables = _tables(each_store)
    with pytest.raises(RuntimeError, match="broke off"):
        each_store.write_collection("things", "EPSG:4326", [Field("a", "integer")], features())
    assert each_store.collections() == ["before"]
    assert _tables(each_store) == tables


def _tables(store) -> set[str]:
    if isinstance(store, GeoPackageStore):
        import sqlite3

        with sqlite3.connect(store.path) as con:
            return {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    return {r[0] for r in store.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
