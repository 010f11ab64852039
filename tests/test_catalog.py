"""The catalogue: declared once, validated with the file and field in the message."""
from pathlib import Path

import pytest

from oup.catalog import CatalogError, load_catalog

ROOT = Path(__file__).resolve().parent.parent


def test_demo_catalogue_loads():
    cat = load_catalog(ROOT / "collections")
    assert {"buildings", "neighbourhoods"} <= set(cat.collections)
    b = cat["buildings"]
    assert b.owner.name and b.license.name and b.classification.value == "public"
    assert cat["neighbourhoods"].synthetic


def _broken(tmp_path, text: str, extra_files=("data.geojson",)) -> Path:
    folder = tmp_path / "cat" / "things"
    folder.mkdir(parents=True)
    (folder / "collection.yml").write_text(text)
    for name in extra_files:
        (folder / name).write_text('{"type": "FeatureCollection", "features": []}')
    return tmp_path / "cat"


GOOD = """title: T
description: D
license: {name: CC0}
owner: {name: Me}
sources: [{path: data.geojson}]
"""
STREAM = """stream:
  topics: [{topic: "oup/+/x", format: flat}]
  properties: {NO2: {title: N, unit: ug/m3, min: 0, max: 9}}
"""


@pytest.mark.parametrize("text, field, words", [
    (GOOD.replace("title: T\n", ""), "title", "Field required"),
    (GOOD + "classification: secret\n", "classification", "public"),
    (GOOD.replace("data.geojson", "missing.geojson"), "sources.0.path", "not found"),
    (GOOD.replace("data.geojson", "data.xyz"), "sources.0", "format"),
    (GOOD + "colour: red\n", "colour", "Extra inputs"),
    (GOOD + "id: other\n", "id", "folder name"),
    (GOOD + "extent: {bbox: [5, 52, 4, 51]}\n", "extent.bbox", "min <= max"),
    ("title: [unclosed\n", "(yaml)", "YAML"),
    (GOOD + STREAM, "(document)", "id_field"),
    (GOOD + "id_field: sid\n" + STREAM.replace("oup/+/x", "oup/a+/x"), "stream.topics.0.topic",
     "topic filter"),
    (GOOD + "id_field: sid\n" + STREAM.replace("min: 0, max: 9", "min: 9, max: 0"),
     "stream.properties.NO2", "min must not exceed max"),
    (GOOD + "id_field: sid\n" + STREAM.replace("format: flat", "format: xml"),
     "stream.topics.0.format", "flat"),
    (GOOD + "observations_of: things\n", "(document)", "exactly one of sources"),
    (GOOD.replace("sources: [{path: data.geojson}]\n", "observations_of: things\n"),
     "observations_of", "not a collection with a stream"),
    (GOOD.replace("sources: [{path: data.geojson}]\n", "time_slices: {of: things, length: PT7S}\n"),
     "time_slices", "PT1M"),
])
def test_a_broken_declaration_names_file_and_field(tmp_path, text, field, words):
    root = _broken(tmp_path, text)
    with pytest.raises(CatalogError) as err:
        load_catalog(root)
    assert err.value.field == field
    assert err.value.file.endswith("things/collection.yml")
    assert words.lower() in err.value.message.lower()


def test_cli_catalog_check_fails_with_one_line(tmp_path, env):
    from conftest import oup

    root = _broken(tmp_path, GOOD + "classification: secret\n")
    res = oup(dict(env, OUP_CATALOG_DIR=str(root)), "catalog", "check", check=False)
    assert res.returncode == 1
    assert "things/collection.yml: classification:" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_cli_catalog_check_lists_the_demo(env):
    from conftest import oup

    res = oup(env, "catalog", "check")
    assert "buildings" in res.stdout and "neighbourhoods" in res.stdout
