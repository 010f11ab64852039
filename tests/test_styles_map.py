"""OGC API Styles from the catalogue, and the /map page drawing them in headless Chromium:
offline, every visible collection a layer with a toggle and a legend, a click on a building
shows its attributes."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from conftest import ROOT, declare_collection
from oup.catalog import CatalogError, MapStyle, load_collection
from oup.tiles.styles import collection_layers

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "out"
HIDDEN = ("internal-figures", "restricted-care")


# -- the catalogue's style block (in-process) ----------------------------------------------

@pytest.mark.parametrize("style, field", [
    ("{fill: red}", "style.fill"),
    ("{opacity: 2}", "style.opacity"),
    ("{choropleth: {property: a, breaks: [5, 1], colours: ['#000000', '#111111', '#222222']}}",
     "style.choropleth"),
    ("{choropleth: {property: a, breaks: [1], colours: ['#000000']}}", "style.choropleth.colours"),
    ("{choropleth: {property: a, breaks: [1], colours: ['#000000', 'blue']}}", "style.choropleth"),
])
def test_a_wrong_style_fails_naming_file_and_field(tmp_path, style, field):
    with pytest.raises(CatalogError) as err:
        load_collection(declare_collection(tmp_path, f"style: {style}"))
    assert err.value.field == field, err.value


def test_every_geometry_type_is_drawn_and_a_choropleth_has_its_classes(tmp_path):
    from oup.catalog import Collection

    base = dict(id="blocks", title="Blocks", description="d", license={"name": "x"},
                owner={"name": "y"}, sources=[{"path": "b.geojson"}])
    plain = collection_layers(Collection.model_validate(base), "oup", 0)
    assert {layer["type"] for layer in plain} == {"fill", "line", "circle"}
    assert all(layer["source-layer"] == "blocks" for layer in plain)
    styled = Collection.model_validate(dict(base, style=MapStyle.model_validate({
        "choropleth": {"property": "n", "breaks": [10, 20],
                       "colours": ["#000001", "#000002", "#000003"]}}).model_dump()))
    fill = next(x for x in collection_layers(styled, "oup", 0) if x["type"] == "fill")
    legend = fill["metadata"]["oup:legend"]
    assert [e["colour"] for e in legend] == ["#000001", "#000002", "#000003", "#cccccc"]
    assert [e["label"] for e in legend[:3]] == ["n < 10", "n 10 - 20", "n >= 20"]


# -- against a real server, on both stores --------------------------------------------------

def _urls(node):
    if isinstance(node, dict):
        return [u for v in node.values() for u in _urls(v)]
    if isinstance(node, list):
        return [u for v in node for u in _urls(v)]
    return [node] if isinstance(node, str) and "://" in node else []


def test_the_city_style_draws_only_the_platforms_own_tiles(server, credentials):
    listing = requests.get(f"{server}/styles").json()
    href = listing["styles"][0]["links"][0]["href"]
    style = requests.get(href).json()
    assert style["version"] == 8
    assert all(u.startswith(server + "/") for u in _urls(style)), _urls(style)
    tilejson = requests.get(style["sources"]["oup"]["url"]).json()
    in_tiles = {layer["id"] for layer in tilejson["vector_layers"]}
    drawn = {layer["source-layer"] for layer in style["layers"] if "source-layer" in layer}
    assert drawn == in_tiles and {"buildings", "neighbourhoods", "sensors"} <= drawn
    assert not drawn & set(HIDDEN)
    seen = requests.get(href, headers={"X-API-Key": credentials["api_key"]}).json()
    assert set(HIDDEN) <= {x["source-layer"] for x in seen["layers"] if "source-layer" in x}
    # a collection's own style reads its own tiles
    one = requests.get(f"{server}/collections/kerncijfers/styles/default").json()
    assert one["sources"]["oup"]["url"].endswith("/collections/kerncijfers/tiles/"
                                                 "WebMercatorQuad?f=tilejson")
    fill = next(x for x in one["layers"] if x.get("type") == "fill")
    assert "a_inw" in json.dumps(fill["paint"]["fill-color"])  # the declared choropleth
    # labels, with glyphs from the platform itself
    (label,) = [x for x in style["layers"] if x["type"] == "symbol"]
    assert label["source-layer"] == "neighbourhoods" and "buurtnaam" in json.dumps(label)
    glyphs = style["glyphs"].format(fontstack=label["layout"]["text-font"][0], range="0-255")
    r = requests.get(glyphs)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/x-protobuf"
    assert requests.get(style["glyphs"].format(fontstack="Arial", range="0-255")).status_code \
        == 404


@pytest.mark.parametrize("path", [
    *(f"/collections/{c}/styles" for c in HIDDEN),
    *(f"/collections/{c}/styles/default" for c in HIDDEN),
    "/styles/nonsense", "/collections/buildings/styles/nonsense",
    "/collections/observations/styles"])
def test_styles_of_what_is_not_there_are_404(server, path):
    r = requests.get(server + path)
    assert r.status_code == 404 and r.headers["Content-Type"] == "application/problem+json"


def _rgb(hex_colour):
    """'#fdcc8a' as the browser computes it: 'rgb(253, 204, 138)'."""
    return "rgb({}, {}, {})".format(*(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)))


def _shown(value):
    """A feature property as the attributes panel writes it (String(v) in the browser)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "null" if value is None else str(value)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed "
                    "(make test installs it)")
def test_the_map_page_works_offline_and_a_click_shows_a_building(server):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "map.png"
    res = subprocess.run(["node", "map.mjs", server, str(shot)], cwd=ROOT / "tests" / "js",
                         capture_output=True, text=True, timeout=400,
                         env={"CHROMIUM": CHROMIUM, "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["error"] is None and out["ready"], out
    assert out["foreign"] == [] and out["consoleErrors"] == [] and out["pageErrors"] == [], out
    assert {"buildings", "neighbourhoods", "kerncijfers", "sensors"} <= set(out["layers"])
    assert not set(HIDDEN) & set(out["layers"])
    assert out["viewerLink"].startswith("/viewer?at=4.45")
    sensors = requests.get(f"{server}/collections/sensors/items?limit=1000").json()["features"]
    assert set(out["sensors"]) == {f"sensors/{f['id']}" for f in sensors}
    picked = out["picked"]
    assert picked and picked["collection"] == "buildings", out
    same = requests.get(f"{server}/collections/buildings/items/{picked['id']}").json()
    assert same["properties"]["cityobject_id"] == picked["properties"]["cityobject_id"]
    # ... and the panel shows it: its collection, a link to it, and its attributes, each
    # as the Features API has it
    panel = out["attributes"]
    assert panel["shown"] and panel["heading"] == "buildings", panel
    assert panel["link"] == f"/collections/buildings/items/{picked['id']}?f=html"
    rows = panel["rows"]
    assert rows["cityobject_id"] == same["properties"]["cityobject_id"]
    common = set(rows) & set(same["properties"])
    assert {"cityobject_id", "height", "roof_level", "TerrainHeight"} <= common, rows
    assert {k: rows[k] for k in common} == {k: _shown(same["properties"][k]) for k in common}
    assert shot.stat().st_size > 10_000
    # a legend per toggle, as the style declares it: the title, the classes and colours
    style = requests.get(f"{server}/styles/default").json()
    declared = {}
    for layer in style["layers"]:
        meta = layer.get("metadata") or {}
        if "oup:collection" in meta:
            declared.setdefault(meta["oup:collection"], (meta, layer["layout"]["visibility"]))
    legend = out["legend"]
    live = {c["id"] for c in requests.get(f"{server}/collections?f=json").json()["collections"]
            if c.get("data_queries")}  # shown as live points, ticked
    assert live == {"sensors"}
    assert set(legend) == set(declared) == set(out["layers"]), legend
    for cid, (meta, visibility) in declared.items():
        row = legend[cid]
        assert row["title"] == meta["oup:title"] and row["shown"], (cid, row)
        assert all(e["shown"] for e in row["entries"]), (cid, row)
        assert [(e["label"], e["colour"]) for e in row["entries"]] == \
            [(e["label"], _rgb(e["colour"])) for e in meta["oup:legend"]], cid
        assert row["checked"] == (visibility == "visible" or cid in live), (cid, row)
    # kerncijfers: its choropleth's classes, as its collection.yml declares them (a_inw,
    # its legend calls "inhabitants")
    assert [(e["label"], e["colour"]) for e in legend["kerncijfers"]["entries"]] == [
        ("inhabitants < 1000", _rgb("#fef0d9")), ("inhabitants 1000 - 2500", _rgb("#fdcc8a")),
        ("inhabitants 2500 - 5000", _rgb("#fc8d59")),
        ("inhabitants 5000 - 10000", _rgb("#e34a33")),
        ("inhabitants >= 10000", _rgb("#b30000")), ("inhabitants: no value", _rgb("#cccccc"))]
    # unticking a toggle hides its layer; ticking one shows it
    toggled = out["toggled"]
    buildings = toggled["buildings"]
    assert set(buildings["before"]["visibility"].values()) == {"visible"}
    assert buildings["before"]["rendered"] > 0, buildings
    assert set(buildings["after"]["visibility"].values()) == {"none"}
    assert buildings["after"]["rendered"] == 0, buildings
    points = toggled["sensors"]  # live: a point and a label per sensor
    assert points["before"]["visibility"]["live-sensors"] == "visible"
    assert points["before"]["markers"] == len(sensors), points
    assert set(points["after"]["visibility"].values()) == {"none"}
    assert points["after"]["markers"] == 0, points
    figures = toggled["kerncijfers"]
    assert set(figures["before"]["visibility"].values()) == {"none"}
    assert figures["before"]["rendered"] == 0, figures
    assert set(figures["after"]["visibility"].values()) == {"visible"}
    assert figures["after"]["rendered"] > 0, figures
