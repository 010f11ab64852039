"""Real clients against a real server: GDAL (OAPIF driver, ogr2ogr) and OWSLib."""
import subprocess

import pyogrio
import requests
import shapely


def run(*args, timeout=300):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def test_ogrinfo_reports_853_buildings_with_attributes(server):
    res = run("ogrinfo", "-ro", "-so", f"OAPIF:{server}", "buildings")
    assert res.returncode == 0, res.stderr
    assert "Feature Count: 853" in res.stdout
    for attr in ("TerrainHeight: Real", "height: Real", "cityobject_id: String",
                 "survey_date: DateTime"):
        assert attr in res.stdout


def test_ogrinfo_fetches_one_feature_by_fid(server):
    one = requests.get(f"{server}/collections/buildings/items/17").json()
    res = run("ogrinfo", "-ro", f"OAPIF:{server}", "buildings", "-fid", "17")
    assert res.returncode == 0, res.stderr
    assert "OGRFeature(buildings):17" in res.stdout
    assert one["properties"]["cityobject_id"] in res.stdout


def test_ogr2ogr_round_trips_count_and_geometries(server, tmp_path):
    out = tmp_path / "copy.gpkg"
    res = run("ogr2ogr", "-f", "GPKG", str(out), f"OAPIF:{server}", "buildings")
    assert res.returncode == 0, res.stderr
    df = pyogrio.read_dataframe(out).sort_values("cityobject_id")
    assert len(df) == 853
    ours = requests.get(f"{server}/collections/buildings/items?limit=1000").json()["features"]
    ours = {f["properties"]["cityobject_id"]: shapely.geometry.shape(f["geometry"]) for f in ours}
    for oid, geom in zip(df["cityobject_id"], df.geometry):
        assert shapely.equals_exact(geom, ours[oid], tolerance=1e-9), oid


def test_owslib_lists_collections_and_pages_through_everything(server):
    from owslib.ogcapi.features import Features

    api = Features(server)
    ids = {c["id"] for c in api.collections()["collections"]}
    assert {"buildings", "neighbourhoods", "catalog"} <= ids
    seen, offset = set(), 0
    while True:
        page = api.collection_items("buildings", limit=100, offset=offset)
        seen |= {f["id"] for f in page["features"]}
        assert page["numberMatched"] == 853
        if not any(link["rel"] == "next" for link in page["links"]):
            break
        offset += 100
        assert offset < 2000
    assert len(seen) == 853


def test_owslib_filters_by_bbox_and_datetime(server):
    from owslib.ogcapi.features import Features

    api = Features(server)
    bbox = [4.452, 51.905, 4.456, 51.907]
    page = api.collection_items("buildings", bbox=bbox, limit=1000)
    box = shapely.box(*bbox)
    everything = api.collection_items("buildings", limit=1000)["features"]
    expected = {f["id"] for f in everything if shapely.geometry.shape(f["geometry"]).intersects(box)}
    assert 0 < len(expected) < 853
    assert {f["id"] for f in page["features"]} == expected
    inside = api.collection_items("buildings", datetime_="2008-01-01T00:00:00Z/2009-01-01T00:00:00Z",
                                  limit=1)
    assert inside["numberMatched"] == 853
    after = api.collection_items("buildings", datetime_="2009-01-01T00:00:00Z/..", limit=1)
    assert after["numberMatched"] == 0
