"""The data steward's path with real-world files, on both stores: attributes named like the
store's own columns kept, features without geometry, any CRS PROJ reads, the formats GDAL
reads (files made by GDAL's own ogr2ogr), CSV as Excel saves it."""
import json
import re
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import shapely

from conftest import GRID_CACHE, STORES, oup, python
from oup.catalog import load_collection
from oup.catalog.importers import ImportError_, import_collection
from oup.store import Query

pytestmark = pytest.mark.slow  # a PostgreSQL cluster, GDAL's command-line tools

# RD New corners of three small buildings in Delfshaven (and the names stewards use)
RD = [(91930.5, 437500.25), (91950.0, 437520.0), (91990.75, 437480.5)]
CLASHING = ("id", "fid", "geom", "geometry")


@pytest.fixture(scope="module")
def grids(tmp_path_factory):
    from oup.geodesy import install_grids

    data = tmp_path_factory.mktemp("grids")
    (data / "proj").mkdir()
    for grid in GRID_CACHE.glob("*.tif"):
        shutil.copy(grid, data / "proj" / grid.name)
    install_grids(data)
    return data


@pytest.fixture(params=STORES)
def store(request, tmp_path, grids):
    if request.param == "gpkg":
        from oup.store.gpkg import GeoPackageStore

        return GeoPackageStore(tmp_path / "store.gpkg")
    from oup.store.postgis import PostGISStore

    return PostGISStore(request.getfixturevalue("postgis").create(f"s{tmp_path.name[-12:]}"
                                                                  .replace("-", "_").lower()))


def collection(folder, source: str, extra: str = "", name="things"):
    d = folder / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "collection.yml").write_text(f"title: T\ndescription: D\nlicense: {{name: CC0}}\n"
                                      f"owner: {{name: Me}}\nsources: [{source}]\n{extra}")
    return d


def do_import(folder, store):
    return import_collection(load_collection(folder / "collection.yml"), store, progress=False)


def features(store, cid="things", **kw) -> list[dict]:
    return store.query(cid, Query(limit=1000, **kw)).features


def squares(origin, crs_points=RD):
    return [shapely.box(x, y, x + 10, y + 8) for x, y in crs_points]


def register(i: int) -> dict:
    """A steward's attributes, named as store columns often are, each its own value."""
    return {"id": 101 + i, "fid": 501 + i, "geom": f"g{i}", "geometry": f"shape-{i}",
            "name": f"building {i}"}


def geojson_rd(path, with_xy=False):
    feats = []
    for i, box in enumerate(squares(None)):
        props = register(i)
        if with_xy:
            props.update(x=box.centroid.x, y=box.centroid.y)
        feats.append({"type": "Feature", "properties": props,
                      "geometry": shapely.geometry.mapping(box)})
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def ogr2ogr(*args):
    subprocess.run(["ogr2ogr", *map(str, args)], check=True, capture_output=True, timeout=60)


FORMATS = ["geojson", "gpkg", "zipped shapefile", "xlsx"]


def write_register(tmp_path, folder, fmt: str) -> str:
    """The register (attributes id, fid, geom, geometry) as ``fmt`` in ``folder``, written
    by GDAL where GDAL writes it; its source entry."""
    src = geojson_rd(tmp_path / f"src-{folder.name}.geojson", with_xy=fmt == "xlsx")
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "geojson":
        shutil.copy(src, folder / "b.geojson")
        return "{path: b.geojson, crs: 'EPSG:28992'}"
    if fmt == "gpkg":  # GDAL names its own columns otherwise, so `fid` and `geom` are free
        ogr2ogr("-f", "GPKG", folder / "b.gpkg", src, "-a_srs", "EPSG:28992",
                "-lco", "FID=pk", "-lco", "GEOMETRY_NAME=shape")
        return "{path: b.gpkg}"
    if fmt == "zipped shapefile":
        parts = tmp_path / f"shp-{folder.name}"
        parts.mkdir()
        ogr2ogr("-f", "ESRI Shapefile", parts / "b.shp", src, "-a_srs", "EPSG:28992")
        with zipfile.ZipFile(folder / "b.zip", "w") as z:
            for part in parts.glob("b.*"):
                z.write(part, part.name)
        return "{path: b.zip}"
    ogr2ogr("-f", "XLSX", folder / "b.xlsx", src)
    return "{path: b.xlsx, x_field: x, y_field: y, crs: 'EPSG:28992'}"


def imported_catalogue(tmp_path, cat, database_url: str | None = None) -> dict:
    """The environment of an OUP on catalogue ``cat`` (GeoPackage, or PostGIS at
    ``database_url``), imported by ``oup import``."""
    import os

    (tmp_path / "data" / "proj").mkdir(parents=True)
    for grid in GRID_CACHE.glob("*.tif"):
        shutil.copy(grid, tmp_path / "data" / "proj" / grid.name)
    env = dict(os.environ, OUP_DATA_DIR=str(tmp_path / "data"), OUP_CATALOG_DIR=str(cat),
               OUP_LOG_LEVEL="WARNING")
    env.pop("OUP_DATABASE_URL", None)
    if database_url:
        env["OUP_DATABASE_URL"] = database_url
    oup(env, "import", "--quiet")
    return env


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_attribute_is_kept_under_its_own_name(tmp_path, store, fmt):
    source = write_register(tmp_path, tmp_path / "things", fmt)
    collection(tmp_path, source, "id_field: id\n")
    report = do_import(tmp_path / "things", store)
    assert report.count == 3 and not report.skipped, str(report)
    served = {f["id"]: f for f in features(store)}
    for i in range(3):
        f = served[101 + i]
        expected = register(i)
        assert {k: f["properties"][k] for k in expected} == expected
        assert store.get("things", str(101 + i))["properties"]["geom"] == f"g{i}"
    assert store.get("things", "999") is None


@pytest.mark.slow
@pytest.mark.parametrize("backend", STORES)
def test_the_four_formats_are_served_and_gdal_sees_every_attribute(tmp_path, request, backend):
    """Over HTTP from a real server, and through GDAL's OGC API Features driver."""

    import requests

    from conftest import serving

    cat = tmp_path / "collections"
    for fmt in FORMATS:
        cid = fmt.replace(" ", "-")
        collection(cat, write_register(tmp_path, cat / cid, fmt), "id_field: id\n", name=cid)
    env = imported_catalogue(tmp_path, cat, None if backend == "gpkg" else
                             request.getfixturevalue("postgis").create(
                                 f"f{tmp_path.name[-12:]}".replace("-", "_").lower()))
    with serving(env) as url:
        for fmt in FORMATS:
            cid = fmt.replace(" ", "-")
            for i in range(3):
                r = requests.get(f"{url}/collections/{cid}/items/{101 + i}", timeout=30)
                assert r.status_code == 200, (cid, r.text)
                assert {k: r.json()["properties"][k] for k in register(i)} == register(i)
            gdal = subprocess.run(["ogrinfo", "-ro", "-al", "-q", f"OAPIF:{url}", cid],
                                  capture_output=True, text=True, timeout=120)
            assert gdal.returncode == 0, gdal.stderr
            seen = [dict(re.findall(r"^  (\S+) \(\w+\) = (.*)$", block, re.M))
                    for block in gdal.stdout.split("OGRFeature(")[1:]]
            assert sorted(({k: f[k] for k in register(0)} for f in seen),
                          key=lambda f: f["id"]) == \
                [{k: str(v) for k, v in register(i).items()} for i in range(3)], cid


def test_id_field_must_be_unique_and_the_error_lists_the_duplicates(tmp_path, store):
    feats = [{"type": "Feature", "geometry": None, "properties": {"id": v}}
             for v in ("a", "b", "a", "c", "b", "a")]
    d = collection(tmp_path, "{path: r.geojson}", "id_field: id\n")
    (d / "r.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    with pytest.raises(ImportError_, match=r"not unique: 2 values.*'a' \(features 1, 3, 6\)"
                                           r".*'b' \(features 2, 5\)"):
        do_import(d, store)


def test_features_without_geometry_are_stored_and_served_as_null(tmp_path, store):
    from oup.http.pygeoapi_config import catalogue_records

    feats = [{"type": "Feature", "geometry": None, "properties": {"n": 1}},
             {"type": "Feature", "geometry": {"type": "Point", "coordinates": [4.45, 51.91]},
              "properties": {"n": 2}}]
    d = collection(tmp_path, "{path: r.geojson}")
    (d / "r.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    assert do_import(d, store).count == 2
    got = sorted(features(store), key=lambda f: f["properties"]["n"])
    assert got[0]["geometry"] is None and got[1]["geometry"]["type"] == "Point"
    assert [f["properties"]["n"] for f in features(store, bbox=(4.4, 51.9, 4.5, 52))] == [2]
    # a table without any geometry: a collection too, with no bbox, in the Records catalogue
    t = collection(tmp_path, "{path: t.csv}", name="table")
    (t / "t.csv").write_text("buurt;inwoners\nBU05990110;1205\nBU05990111;980\n")
    assert do_import(t, store).count == 2
    assert all(f["geometry"] is None for f in features(store, "table"))
    assert store.extent("table")["bbox"] is None
    cat = type("Cat", (), {"__iter__": lambda self: iter([load_collection(
        t / "collection.yml")])})()
    assert catalogue_records(cat, store)["table"]["geometry"] is None


@pytest.mark.slow
def test_a_collection_without_geometry_is_described_without_a_bbox(tmp_path):
    """Served by the real app (its own process: one app a process) from a catalogue of a
    table without coordinates and a register with them."""

    cat = tmp_path / "collections"
    t = collection(cat, "{path: t.csv}", name="table")
    (t / "t.csv").write_text("buurt;inwoners\nBU05990110;1205\nBU05990111;980\n")
    r = collection(cat, "{path: r.geojson}", name="register")
    geojson_rd(r / "r.geojson")
    (r / "collection.yml").write_text((r / "collection.yml").read_text().replace(
        "{path: r.geojson}", "{path: r.geojson, crs: 'EPSG:28992'}"))
    env = imported_catalogue(tmp_path, cat)
    code = ("import json\nfrom oup.http.app import create_app\nc = create_app().test_client()\n"
            "print(json.dumps([c.get(p).get_json() for p in ('/collections/table?f=json', "
            "'/collections/register?f=json', '/collections?f=json', '/tiles/WebMercatorQuad')]))\n"
            "print(c.get('/collections/table/tiles').status_code)\n")
    *_, documents, table_tiles = python(env, code).strip().splitlines()
    table, register, listing, tiles = json.loads(documents)
    # not in tiles: no tiles of its own, not a layer of the dataset's
    assert table_tiles == "404"
    layers = {layer["id"] for layer in tiles["layers"]}
    assert "register" in layers and "table" not in layers
    assert "spatial" not in table.get("extent", {})
    assert register["extent"]["spatial"]["bbox"][0] == pytest.approx([4.4, 51.9, 4.5, 52],
                                                                     abs=0.1)
    by_id = {c["id"]: c for c in listing["collections"]}
    assert "spatial" not in by_id["table"].get("extent", {})
    assert "spatial" in by_id["register"]["extent"]


def test_a_reader_survives_a_re_import_that_changes_column_types(tmp_path, store):
    """Another process re-imports a collection with other column types while this one
    has its queries prepared on the server (PostGIS): the next query reads the new table."""
    def write(values):
        feats = [{"type": "Feature", "geometry": None, "properties": {"n": v}} for v in values]
        (d / "r.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))

    d = collection(tmp_path, "{path: r.geojson}")
    write([1, 2, 3])
    do_import(d, store)
    for _ in range(8):  # psycopg prepares a statement from its fifth run
        assert sorted(f["properties"]["n"] for f in features(store)) == [1, 2, 3]
    other = type(store)(getattr(store, "url", None) or store.path)  # another process's
    write(["a", "b", "c"])
    do_import(d, other)
    assert sorted(f["properties"]["n"] for f in features(store)) == ["a", "b", "c"]


def test_csv_as_dutch_excel_saves_it(tmp_path, store):
    d = collection(tmp_path, "{path: bomen.csv, x_field: x, y_field: y, crs: 'EPSG:28992'}")
    (d / "bomen.csv").write_bytes("\ufeffboom;x;y;hoogte;soort\n"
                                  "1;91930,5;437500,25;12,75;Tilia\n"
                                  "2;91950;437520;8;Acer\n".encode("utf-8"))
    assert do_import(d, store).count == 2
    got = {f["properties"]["boom"]: f for f in features(store, crs="EPSG:28992")}
    assert got[1]["properties"]["hoogte"] == 12.75 and got[2]["properties"]["hoogte"] == 8
    assert got[1]["geometry"]["coordinates"] == [91930.5, 437500.25]
    assert got[1]["properties"]["soort"] == "Tilia" and "x" not in got[1]["properties"]
    # the same in Windows-1252, as plain "CSV" on a Dutch Windows: read, and said so
    (d / "bomen.csv").write_bytes("boom;x;y;hoogte;soort\n1;91930,5;437500,25;12,75;Iep é\n"
                                  .encode("cp1252"))
    report = do_import(d, store)
    assert "not UTF-8" in str(report)
    assert features(store)[0]["properties"]["soort"] == "Iep é"


def test_any_crs_proj_reads_gives_the_same_footprints(tmp_path, store):
    """GDAL's OGC:CRS84 GeoPackage, one in RD New and one in a CRS without EPSG code."""
    import pyproj

    from oup.geodesy import transformer

    to84 = transformer("EPSG:28992", "OGC:CRS84")
    truth = [shapely.transform(b, lambda c: np.column_stack(to84.transform(c[:, 0], c[:, 1])))
             for b in squares(None)]
    local = "+proj=tmerc +lat_0=51.9 +lon_0=4.45 +k=1 +x_0=1000 +y_0=2000 +ellps=GRS80 " \
            "+towgs84=0,0,0,0,0,0,0 +units=m +no_defs"
    assert pyproj.CRS(local).to_epsg() is None
    to_local = pyproj.Transformer.from_crs("OGC:CRS84", local, always_xy=True)
    variants = {"crs84": ("OGC:CRS84", truth, "-t_srs"),
                "rd": ("EPSG:28992", squares(None), "-a_srs"),
                "local": (local, [shapely.transform(g, lambda c: np.column_stack(
                    to_local.transform(c[:, 0], c[:, 1]))) for g in truth], "-a_srs")}
    for name, (crs, geoms, how) in variants.items():
        src = tmp_path / f"{name}.geojson"
        src.write_text(json.dumps({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"n": i}, "geometry": shapely.geometry.mapping(g)}
            for i, g in enumerate(geoms)]}))
        d = collection(tmp_path, f"{{path: {name}.gpkg}}", name=name)
        args = [how, crs] if how == "-a_srs" else ["-s_srs", "OGC:CRS84", "-t_srs", crs]
        ogr2ogr("-f", "GPKG", d / f"{name}.gpkg", src, *args)
        assert do_import(d, store).count == 3
        lat = np.radians(51.91)
        for f in features(store, name):
            got = np.array(shapely.geometry.shape(f["geometry"]).exterior.coords)
            want = np.array(truth[f["properties"]["n"]].exterior.coords)
            metres = (got - want) * [111_320 * np.cos(lat), 110_574]
            assert np.abs(metres).max() < 0.01, (name, metres)


def test_a_crs_proj_cannot_read_is_one_line_naming_the_file(tmp_path, store):
    d = collection(tmp_path, "{path: p.geojson, crs: 'EPSG:999999'}")
    (d / "p.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(ImportError_, match=r"p.geojson: PROJ cannot read the CRS"):
        do_import(d, store)


def test_the_postgis_pool_closes_at_exit_without_a_wait(postgis):
    url = postgis.create("poolclose")
    code = f"from oup.store.postgis import PostGISStore; PostGISStore({url!r}).execute('SELECT 1')"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and "couldn't stop thread" not in run.stderr, run.stderr


def test_served_under_their_own_names_and_seen_so_by_gdal(server, catalog_dir):
    import requests

    from conftest import make_register

    truth = {f["properties"]["id"]: f for f in make_register(catalog_dir / "register")}
    page = requests.get(f"{server}/collections/register/items", params={"limit": 10}).json()
    assert {f["id"] for f in page["features"]} == set(truth)
    for f in page["features"]:
        assert f["properties"] == truth[f["id"]]["properties"]
        assert f["geometry"] == truth[f["id"]]["geometry"]  # null where the source has none
    one = requests.get(f"{server}/collections/register/items/102")
    assert one.status_code == 200 and one.json()["properties"]["geom"] == "g1"
    assert requests.get(f"{server}/collections/register/items/999").status_code == 404
    res = subprocess.run(["ogrinfo", "-ro", "-al", f"OAPIF:{server}", "register"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    one = res.stdout.split("OGRFeature(register):102", 1)[1].split("OGRFeature", 1)[0]
    for line in ("id (Integer) = 102", "fid (Integer) = 502", "geom (String) = g1",
                 "geometry (String) = shape-1"):
        assert f"\n  {line}\n" in one, (line, one)


def test_mixed_types_and_a_self_intersection_are_stored_and_reported(tmp_path, store):
    bowtie = {"type": "Polygon", "coordinates": [[[4.40, 51.90], [4.42, 51.92], [4.42, 51.90],
                                                   [4.40, 51.92], [4.40, 51.90]]]}
    feats = [{"type": "Feature", "geometry": g, "properties": {"n": i}} for i, g in enumerate(
        [bowtie, {"type": "Point", "coordinates": [4.45, 51.91]},
         {"type": "LineString", "coordinates": [[4.43, 51.9], [4.44, 51.91]]}])]
    d = collection(tmp_path, "{path: m.geojson}")
    (d / "m.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    report = do_import(d, store)
    assert report.count == 3
    assert "1 invalid geometries kept as delivered, made valid for queries (feature 1: " \
           "Self-intersection" in str(report)
    got = {f["properties"]["n"]: f["geometry"] for f in features(store)}
    assert got[0] == bowtie and got[1]["type"] == "Point" and got[2]["type"] == "LineString"
    # queries run on the repaired copy: both wings of the bow tie are found
    for box in ((4.400, 51.905, 4.403, 51.915), (4.417, 51.905, 4.420, 51.915)):
        assert [f["properties"]["n"] for f in features(store, bbox=box)] == [0]
    # EPSG:4326 is latitude first, also for a source stored longitude first
    lat_first = {f["properties"]["n"]: f["geometry"] for f in features(store, crs="EPSG:4326")}
    assert lat_first[1]["coordinates"] == pytest.approx([51.91, 4.45])


RD_SRS = ["-a_srs", "EPSG:28992"]


@pytest.mark.parametrize("fmt, suffix, options", [
    ("FlatGeobuf", "fgb", RD_SRS), ("GeoJSONSeq", "geojsonl", RD_SRS), ("GML", "gml", RD_SRS),
    ("KML", "kml", ["-s_srs", "EPSG:28992", "-t_srs", "EPSG:4326"]),  # KML is WGS 84 only
    ("ESRI Shapefile", "shp", RD_SRS), ("ODS", "ods", []),
])
def test_formats_gdal_writes_are_imported_with_their_attributes(tmp_path, store, fmt, suffix,
                                                                options):
    src = geojson_rd(tmp_path / "src.geojson", with_xy=fmt == "ODS")
    d = tmp_path / "things"
    d.mkdir()
    ogr2ogr("-f", fmt, d / f"b.{suffix}", src, *options)
    extra = ", x_field: x, y_field: y, crs: 'EPSG:28992'" if fmt == "ODS" else ""
    collection(tmp_path, f"{{path: b.{suffix}{extra}}}")
    assert do_import(d, store).count == 3
    got = sorted(features(store), key=lambda f: str(f["properties"].get("geom")))
    assert [f["properties"]["geom"] for f in got] == ["g0", "g1", "g2"]
    assert [f["properties"]["geometry"] for f in got] == ["shape-0", "shape-1", "shape-2"]
    if fmt in ("KML", "GeoJSONSeq"):  # WGS 84 only: ogr2ogr moved them there, by Helmert
        import pyogrio

        written = pyogrio.read_dataframe(d / f"b.{suffix}")
        for f in got:  # served as the file holds them
            want = written.geometry[written["geom"] == f["properties"]["geom"]].iloc[0]
            assert shapely.equals_exact(shapely.geometry.shape(f["geometry"]), want, 1e-9)
        return
    rd = {f["properties"]["geom"]: f for f in features(store, crs="EPSG:28992")}
    for i, box in enumerate(squares(None)):
        shape = shapely.geometry.shape(rd[f"g{i}"]["geometry"])
        target = box.centroid if fmt == "ODS" else box
        assert shapely.hausdorff_distance(shape, target) < 0.001, (fmt, i)


def write_geoparquet(path, crs: str | None):
    """GeoParquet 1.0 written by pyarrow from the specification: WKB in a column "shape"
    (so the steward's "geometry" is an attribute), the CRS as PROJJSON; none is CRS84."""
    import pyarrow
    import pyarrow.parquet
    import pyproj

    from oup.geodesy import transformer

    boxes = squares(None)
    if crs is None:  # by RDNAPTRANS, as OUP transforms (PROJ's default is ~5 cm off)
        to84 = transformer("EPSG:28992", "OGC:CRS84")
        boxes = [shapely.transform(b, lambda xy: np.column_stack(to84.transform(*xy.T)))
                 for b in boxes]
    rows = [register(i) for i in range(3)]
    table = pyarrow.table({**{k: [r[k] for r in rows] for k in rows[0]},
                           "built": ["1901-02-03", "1950-06-07", None],
                           "shape": [shapely.to_wkb(b) for b in boxes]})
    column = {"encoding": "WKB", "geometry_types": ["Polygon"]}
    if crs:
        column["crs"] = json.loads(pyproj.CRS(crs).to_json())
    geo = {"version": "1.0.0", "primary_column": "shape", "columns": {"shape": column}}
    pyarrow.parquet.write_table(table.replace_schema_metadata({b"geo": json.dumps(geo)}), path)


@pytest.mark.parametrize("crs", ["EPSG:28992", None])
def test_geoparquet_is_imported_with_its_attributes_and_crs(tmp_path, store, crs):
    d = tmp_path / "things"
    d.mkdir()
    write_geoparquet(d / "b.parquet", crs)
    collection(tmp_path, "{path: b.parquet}")
    assert do_import(d, store).count == 3
    rd = {f["properties"]["geom"]: f for f in features(store, crs="EPSG:28992")}
    for i, box in enumerate(squares(None)):
        props = rd[f"g{i}"]["properties"]
        assert {k: props[k] for k in register(i)} == register(i)
        assert shapely.hausdorff_distance(shapely.geometry.shape(rd[f"g{i}"]["geometry"]),
                                          box) < 0.01
    assert rd["g0"]["properties"]["built"] == "1901-02-03"
    assert rd["g2"]["properties"]["built"] is None


def test_a_file_that_is_not_geoparquet_is_one_line(tmp_path, store):
    d = collection(tmp_path, "{path: b.parquet}")
    (d / "b.parquet").write_text("id;naam\n1;a\n")
    with pytest.raises(ImportError_, match=r"^b.parquet: not a GeoParquet file"):
        do_import(d, store)


def test_a_sheet_with_a_join_key_takes_the_geometry_of_its_area(tmp_path, store):
    import pyogrio
    import pandas

    areas = [{"type": "Feature", "properties": {"buurtcode": f"BU0599030{i}"},
              "geometry": shapely.geometry.mapping(b)} for i, b in enumerate(squares(None))]
    a = collection(tmp_path, "{path: areas.geojson, crs: 'EPSG:28992'}", name="areas")
    (a / "areas.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": areas}))
    do_import(a, store)
    d = collection(tmp_path, "{path: cijfers.xlsx}", "join: {collection: areas, key: code, "
                   "property: buurtcode}\n")
    pyogrio.write_dataframe(pandas.DataFrame({"code": ["BU05990300", "BU05990302", "BU0599XXXX"],
                                              "inwoners": [1205, 980, 5]}),
                            d / "cijfers.xlsx", driver="XLSX")
    report = do_import(d, store)
    assert report.count == 2 and report.skipped["unmatched code (not in areas)"] == 1
    got = {f["properties"]["code"]: f for f in features(store, crs="EPSG:28992")}
    assert got["BU05990302"]["properties"]["inwoners"] == 980
    assert shapely.geometry.shape(got["BU05990302"]["geometry"]).equals(squares(None)[2])


def test_a_collection_imported_by_an_older_oup_asks_for_a_new_import(tmp_path, store):
    from oup.store import UnknownCollection

    d = collection(tmp_path, "{path: r.geojson}")
    (d / "r.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": None, "properties": {"n": 1}}]}))
    do_import(d, store)
    stored = store.execute("SELECT meta FROM oup_layers")[0][0]
    meta = json.loads(stored) if isinstance(stored, str) else stored  # PostGIS: jsonb
    del meta["source_crs"]  # as every import before the store's columns were _oup_*
    store.execute("UPDATE oup_layers SET meta = ?", (json.dumps(meta),))
    store.forget_layers()
    with pytest.raises(UnknownCollection, match="older OUP.*oup import things"):
        store.extent("things")


def test_a_wrong_type_is_kept_as_text_and_reported(tmp_path, store):
    feats = [{"type": "Feature", "geometry": None, "properties": {"hoogte": v, "nummer": n}}
             for v, n in ((12.5, 1), ("onbekend", 2**64), (float("nan"), 3))]
    d = collection(tmp_path, "{path: r.geojson}")
    (d / "r.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    report = str(do_import(d, store))
    assert "hoogte holds numbers and text" in report and "nummer holds numbers" in report
    assert "hoogte: NaN or infinite, stored as empty" in report
    got = sorted((f["properties"]["hoogte"], f["properties"]["nummer"]) for f in features(store)
                 if f["properties"]["hoogte"] is not None)
    assert got == [("12.5", "1"), ("onbekend", str(2**64))]


def test_no_database_at_the_url_is_one_line_at_once(tmp_path):
    import os

    from conftest import ROOT, free_port

    shutil.copytree(GRID_CACHE, tmp_path / "proj")  # not built again: the test is not on them
    env = dict(os.environ, OUP_DATA_DIR=str(tmp_path), OUP_CATALOG_DIR=str(ROOT / "collections"),
               OUP_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/oup")
    run = subprocess.run([sys.executable, "-m", "oup.cli", "import", "--quiet", "leefbaarheid"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and run.stderr.startswith("oup: PostGIS at 127.0.0.1:")
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_format_in_the_source_reads_a_file_whatever_its_name(tmp_path, store):
    src = geojson_rd(tmp_path / "src.geojson")
    d = collection(tmp_path, "{path: export.dat, format: gpkg}")
    ogr2ogr("-f", "GPKG", d / "export.dat", src, "-a_srs", "EPSG:28992", "-lco", "FID=pk",
            "-lco", "GEOMETRY_NAME=shape")
    assert do_import(d, store).count == 3
    d = collection(tmp_path, "{path: export.dat, format: flatgeobuf}", name="wrong")
    shutil.copy(tmp_path / "things" / "export.dat", d / "export.dat")
    with pytest.raises(ImportError_, match="export.dat is a GPKG dataset, not flatgeobuf"):
        do_import(d, store)
