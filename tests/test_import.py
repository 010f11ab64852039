"""``oup import`` on the real city models (tests/data/ and the demo city) and on the other
source formats."""
import json
import shutil

import pyogrio
import pytest
import shapely

from conftest import CITY_MODELS, make_probes
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
