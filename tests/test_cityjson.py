"""Any CityJSON a city has: every spelling of its CRS, CityJSON 1.0, 1.1 and 2.0, and
appearances the tiler does not use, read by the one reader that `oup import` and
`oup tile` share (oup.cityjson)."""
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from oup.cityjson import CityModelError, reference_crs
from tileset_reader import content_tiles

RD_NAP = [
    "https://www.opengis.net/def/crs/EPSG/0/7415",
    "http://www.opengis.net/def/crs/EPSG/0/7415",
    "http://www.opengis.net/def/crs/EPSG/0/7415/",
    "urn:ogc:def:crs:EPSG::7415",
    "urn:ogc:def:crs:EPSG:0:7415",
    "EPSG:7415",
    "urn:ogc:def:crs,crs:EPSG::28992,crs:EPSG::5709",
    "http://www.opengis.net/def/crs-compound?1=http://www.opengis.net/def/crs/EPSG/0/28992"
    "&2=http://www.opengis.net/def/crs/EPSG/0/5709",
    "urn:ogc:def:crs:EPSG::28992",  # 2D: heights in NAP by Dutch convention
]


@pytest.mark.parametrize("spelling", RD_NAP)
def test_every_spelling_of_rd_new_nap_is_read_as_epsg_7415(spelling):
    crs, note = reference_crs(spelling)
    assert crs == "EPSG:7415"
    assert (note is not None) == spelling.endswith("::28992")


@pytest.mark.parametrize("spelling, expect", [
    ("https://www.opengis.net/def/crs/EPSG/0/2056", "EPSG:2056"),
    ("urn:ogc:def:crs:EPSG::25832", "EPSG:25832"),
    ("urn:ogc:def:crs,crs:EPSG::2056,crs:EPSG::5728", "EPSG:2056+5728"),
])
def test_other_crs_keep_their_code(spelling, expect):
    assert reference_crs(spelling)[0] == expect


@pytest.mark.parametrize("bad", ["", "local", "https://www.opengis.net/def/crs/OGC/0/CRS84h",
                                 "EPSG:999999"])
def test_an_unreadable_crs_says_what_is_accepted(bad):
    with pytest.raises(CityModelError, match="referenceSystem"):
        reference_crs(bad)


def _subset(n: int = 40, version: str = "2.0", spelling: str | None = None,
            appearance: dict | None = None) -> dict:
    """The first ``n`` Delfshaven buildings as a CityJSON document of another version."""
    doc = json.loads((ROOT / "collections" / "buildings" /
                      "rotterdam-delfshaven.city.json").read_text())
    keep = dict(list(doc["CityObjects"].items())[:n])
    for obj in keep.values():
        for g in obj["geometry"]:
            if version == "1.0":
                g["lod"] = int(g["lod"])  # CityJSON 1.0 wrote the LoD as a number
    out = dict(doc, version=version, CityObjects=keep)
    if spelling:
        out["metadata"] = dict(doc["metadata"], referenceSystem=spelling)
    if appearance:
        out["appearance"] = appearance
    return out


@pytest.fixture(scope="module")
def grids(tmp_path_factory):
    from conftest import GRID_CACHE
    from oup.geodesy import install_grids

    folder = tmp_path_factory.mktemp("grids")
    (folder / "proj").mkdir()
    for grid in GRID_CACHE.glob("*.tif"):
        (folder / "proj" / grid.name).write_bytes(grid.read_bytes())
    install_grids(folder)
    return folder


def _anchors(folder: Path) -> np.ndarray:
    return np.array([w[:3, 3] for _, w, _ in content_tiles(folder)])


def test_every_spelling_and_version_tiles_to_the_same_place(tmp_path, grids):
    """The same buildings written with each CRS spelling (and as CityJSON 1.0, 1.1 and
    2.0) give the same tiles: their anchors agree within 1 cm."""
    from tilers import tile

    cases = [(s, "2.0") for s in RD_NAP] + [(RD_NAP[3], "1.0"), (RD_NAP[0], "1.1")]
    anchors = []
    for i, (spelling, version) in enumerate(cases):
        src = tmp_path / f"m{i}.city.json"
        src.write_text(json.dumps(_subset(version=version, spelling=spelling)))
        report = tile([src], tmp_path / f"t{i}", progress=False, vertex_budget=1500)
        assert report.objects == 40, (spelling, version)
        assert any("2D" in w for w in report.warnings) == spelling.endswith("::28992")
        anchors.append(_anchors(tmp_path / f"t{i}"))
    assert len(anchors[0]) > 1
    for spelling_anchors, case in zip(anchors[1:], cases[1:]):
        assert spelling_anchors.shape == anchors[0].shape, case
        assert np.abs(spelling_anchors - anchors[0]).max() < 0.01, case


def test_import_reads_cityjson_1_0_with_an_urn(tmp_path):
    """`oup import`'s reader: a CityJSON 1.0 file with an URN CRS gives footprints in RD."""
    from oup.catalog import Source
    from oup.catalog.readers import read_city_model

    src = tmp_path / "old.city.json"
    src.write_text(json.dumps(_subset(n=5, version="1.0", spelling="urn:ogc:def:crs:EPSG::7415")))
    from oup.catalog.importers import ImportReport

    crs, features = read_city_model(src, Source(path=src.name), ImportReport("old"))
    features = list(features)
    assert crs == "EPSG:28992" and len(features) == 5
    assert all(props["lod"] == "2" for _, props in features)
    x, y = features[0][0].centroid.x, features[0][0].centroid.y
    assert 90_000 < x < 92_000 and 435_000 < y < 437_000


def test_materials_and_textures_are_reported_once_not_failed_on(tmp_path, grids):
    from tilers import tile

    appearance = {"materials": [{"name": "roof", "diffuseColor": [0.9, 0.1, 0.1]}],
                  "textures": [{"type": "JPG", "image": "facade-1.jpg"},
                               {"type": "JPG", "image": "facade-2.jpg"}]}
    doc = _subset(n=10, appearance=appearance)
    for obj in doc["CityObjects"].values():  # the geometries point at them, as real files do
        for g in obj["geometry"]:
            g["material"] = {"visual": {"value": 0}}
    src = tmp_path / "dressed.city.json"
    src.write_text(json.dumps(doc))
    report = tile([src], tmp_path / "out", progress=False)
    assert report.objects == 10
    notes = [w for w in report.warnings if "not used" in w]
    assert len(notes) == 1, report.warnings
    assert "1 materials" in notes[0] and "2 textures (2 texture images missing)" in notes[0]


def test_unsupported_version_names_the_supported_ones(tmp_path):
    from tilers import tile

    src = tmp_path / "future.city.json"
    src.write_text(json.dumps(_subset(n=2, version="0.9")))
    with pytest.raises(CityModelError, match="1.0, 1.1, 2.0"):
        tile([src], tmp_path / "out", progress=False)


@pytest.mark.slow  # drives loaders.gl (node, `make services`)
def test_attribute_names_as_cities_write_them_become_valid_property_ids(tmp_path, grids):
    """3D Metadata property ids are identifiers; a municipality's attribute names often are
    not. Each gets a valid, unique id and keeps its own name; the values decode (loaders.gl)."""
    import re
    import subprocess

    from tilers import tile
    from tileset_reader import read_gltf

    doc = _subset(n=12)
    for i, obj in enumerate(doc["CityObjects"].values()):
        obj["attributes"].update({"bouwjaar (oorspronkelijk)": 1900 + i, "3d-id": f"b{i}",
                                  "3d_id": f"c{i}"})
    src = tmp_path / "names.city.json"
    src.write_text(json.dumps(doc))
    tile([src], tmp_path / "out", progress=False)
    gltf, _ = read_gltf(next((tmp_path / "out" / "tiles").glob("*.glb")))
    props = gltf["extensions"]["EXT_structural_metadata"]["schema"]["classes"]["cityobject"][
        "properties"]
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", pid) for pid in props)
    names = {p.get("name", pid): pid for pid, p in props.items()}
    assert {"bouwjaar (oorspronkelijk)", "3d-id", "3d_id", "TerrainHeight"} <= set(names)
    assert len(set(names.values())) == len(names)  # "3d-id" and "3d_id" stay apart
    first = next(iter(doc["CityObjects"]))
    res = subprocess.run(["node", "metadata.mjs", str(tmp_path / "out" / "tileset.json"), "id",
                          first], cwd=ROOT / "tests" / "js", capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    match = json.loads(res.stdout.strip().splitlines()[-1])["match"]
    assert match[names["bouwjaar (oorspronkelijk)"]] == 1900
    assert match[names["3d-id"]] == "b0" and match[names["3d_id"]] == "c0"
