"""The whole city in 3D: a 50,000-building city (the Delfshaven buildings, replicated) and a
10 km wide one, tiled by `oup tile`'s tiler, served by OUP, opened in CesiumJS in headless
Chromium through /viewer. The browser's own count of the bytes it received decides."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GRID_CACHE, ROOT, oup, serving
from tileset_reader import content_tiles, feature_ids

sys.path.insert(0, str(ROOT / "benchmarks"))
from citygen import make_city  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "out"
MB = 1_000_000
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not "
                                 "installed (make test installs it)")]


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> dict:
    """A data folder with the buildings collection imported, and two city tilesets."""
    from oup.geodesy import install_grids
    from tilers import tile

    work = tmp_path_factory.mktemp("city")
    cat, data = work / "collections", work / "data"
    shutil.copytree(ROOT / "collections" / "buildings", cat / "buildings")
    (data / "proj").mkdir(parents=True)
    for grid in GRID_CACHE.glob("*.tif"):
        shutil.copy(grid, data / "proj" / grid.name)
    install_grids(data)
    env = dict(os.environ, OUP_DATA_DIR=str(data), OUP_CATALOG_DIR=str(cat),
               OUP_LOG_LEVEL="WARNING")
    env.pop("OUP_DATABASE_URL", None)
    oup(env, "import", "--quiet")
    reports = {}
    for name, kw in {"city": dict(buildings=50_000),
                     # four districts at the corners of a 10 km square
                     "wide": dict(buildings=4 * 853, spacing=9_000.0, columns=2)}.items():
        src = make_city(work / f"{name}.city.jsonl", **kw)
        reports[name] = tile([src], work / name, progress=False)
        if name != "city":  # (the city's footprints are imported for the 2D test too)
            src.unlink()
    return {"env": env, "work": work, "data": data, "reports": reports}


def _show(city: dict, name: str) -> Path:
    """Serve tileset ``name`` as the buildings collection's 3D Tiles."""
    target = city["data"] / "3dtiles" / "buildings"
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(city["work"] / name, target)
    return city["work"] / name


def _browse(url: str, shot: str, step: float = 0.05, margin: float = 0.3) -> dict:
    ARTIFACTS.mkdir(exist_ok=True)
    res = subprocess.run(["node", "city.mjs", url, str(ARTIFACTS / shot), str(step), str(margin)],
                         cwd=ROOT / "tests" / "js", capture_output=True, text=True, timeout=600,
                         env={"CHROMIUM": CHROMIUM, "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["error"] is None and out["ready"], out
    assert out["pageErrors"] == [], out["pageErrors"]
    return out


def _source_attributes() -> dict:
    doc = json.loads((ROOT / "collections" / "buildings" /
                      "rotterdam-delfshaven.city.json").read_text())
    return {k: o["attributes"] for k, o in doc["CityObjects"].items()}


def test_50000_buildings_fit_in_35_mb_and_pass_the_validator(city):
    folder = city["work"] / "city"
    report = city["reports"]["city"]
    assert report.objects == 50_000
    from tilers.index import INDEX_DIR

    # what a viewer can fetch; the index `oup tile` keeps beside it for incremental
    # updates after writes is the tiler's own (never served) and has a budget of its own
    served = [p for p in folder.rglob("*") if p.is_file() and INDEX_DIR not in p.parts]
    index = [p for p in folder.rglob("*") if p.is_file() and INDEX_DIR in p.parts]
    total = sum(p.stat().st_size for p in served)
    kept = sum(p.stat().st_size for p in index)
    print(f"50,000 buildings: {total / MB:.1f} MB, {report.tilesets['2']['tiles']} tiles; "
          f"index {kept / MB:.1f} MB")
    assert total <= 35 * MB
    assert index and kept <= 4_000 * 50_000  # (measured: ~2.9 KB a building)
    res = subprocess.run(["node", "validate.mjs", str(folder)], cwd=ROOT / "tests" / "js",
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr
    results = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert len(results) == report.tilesets["2"]["tiles"]
    assert all(r["errors"] == 0 for r in results), [r for r in results if r["errors"]][:3]


def test_framing_the_whole_city_fetches_little_shows_every_building_and_picks_one(city):
    folder = _show(city, "city")
    with serving(city["env"]) as url:
        out = _browse(f"{url}/viewer", "city-framed.png", step=0.01)
    # the buildings in what the browser fetched, by the ids in the glbs' property tables
    fetched = {p.split("/3dtiles/")[-1] for p in out["tileRequests"] if p.endswith(".glb")}
    shown = {i for uri in fetched for i in feature_ids(folder / uri)}
    print(f"framed: {out['tileBytes'] / MB:.2f} MB of tiles in {len(out['tileRequests'])} "
          f"requests ({out['totalBytes'] / MB:.1f} MB with CesiumJS), {len(shown)} of "
          f"50,000 buildings")
    assert out["tileBytes"] <= 8 * MB
    assert len(shown) >= 0.9 * 50_000  # the whole city from afar, not its largest buildings
    assert out["visible"], "nothing drawn"
    picked = out["picked"]
    assert picked and picked["type"] == "Building", out
    guid, _ = picked["id"].rsplit("-", 1)  # a copy of a real building: its attributes
    for key, value in _source_attributes()[guid].items():
        assert picked[key] == pytest.approx(value) if isinstance(value, float) \
            else picked[key] == value, key
    # what was drawn is coarse content, from the top of the tree
    coarse = {t["content"]["uri"] for t, _, _ in content_tiles(folder) if t.get("children")}
    assert {u.split("/3dtiles/")[-1] for u in out["visible"]} <= coarse


def test_street_level_fetches_little_and_shows_the_detailed_buildings(city):
    folder = _show(city, "city")
    leaves = {t["content"]["uri"] for t, _, _ in content_tiles(folder) if not t.get("children")}
    # the middle of the city's first district, from 300 m
    with serving(city["env"]) as url:
        out = _browse(f"{url}/viewer?at=4.4561,51.9067,300", "city-street.png")
    print(f"street level: {out['tileBytes'] / MB:.2f} MB of tiles in "
          f"{len(out['tileRequests'])} requests")
    assert out["tileBytes"] <= 8 * MB
    drawn = {u.split("/3dtiles/")[-1] for u in out["visible"]}
    assert drawn & leaves, drawn  # the detailed LoD2 of the buildings in view
    assert out["picked"] and out["picked"]["type"] == "Building"


def test_a_10_km_city_shows_buildings_when_framed(city):
    folder = _show(city, "wide")
    root = json.loads((folder / "tileset.json").read_text())["root"]
    w, s, e, n = root["boundingVolume"]["region"][:4]
    assert (e - w) * 6_378_137 * 0.62 > 9_000  # about 10 km east-west (cos 52 deg)
    with serving(city["env"]) as url:
        out = _browse(f"{url}/viewer", "city-wide.png", step=0.01, margin=0.02)
    assert out["visible"], "nothing drawn"
    assert out["picked"] and out["picked"]["type"] == "Building", out


def test_the_city_in_2d_keeps_every_vector_tile_under_500_kb(city):
    """The 50,000 buildings' footprints imported, and every WebMercatorQuad tile over the
    city cut from the buildings' first zoom (10) to 13, where most buildings are a speck
    or a few pixels: no tile reaches 500 KB (the vector tiles' promise; a z13 tile of
    this city was 548 KB before the densest tiles were thinned), the densest still holds
    thousands of buildings, and z10 (cut from the overview: buildings merged where they
    touch) still draws the blocks of the city."""
    import mapbox_vector_tile
    import morecantile

    from oup.tiles import matrix_sets as grids
    from oup.catalog import load_collection
    from oup.catalog.importers import import_collection
    from oup.store.gpkg import GeoPackageStore
    from oup.store.mvt import TileQuery, tile_layer

    folder = city["work"] / "flat" / "city"
    folder.mkdir(parents=True)
    shutil.move(city["work"] / "city.city.jsonl", folder / "city.city.jsonl")
    (folder / "collection.yml").write_text(
        "title: The city\ndescription: 50,000 buildings\nlicense: {name: CC0}\n"
        "owner: {name: OUP tests}\nsources: [{path: city.city.jsonl}]\n"
        "tiles: {minzoom: 10}\n")
    store = GeoPackageStore(city["work"] / "flat.gpkg")
    assert import_collection(load_collection(folder / "collection.yml"), store,
                             progress=False).count == 50_000
    fields = tuple(f.name for f in store.fields("city"))
    sizes, drawn = {}, {}
    for t in morecantile.tms.get("WebMercatorQuad").tiles(*store.extent("city")["bbox"],
                                                         [10, 11, 12, 13]):
        tile = grids.Tile("WebMercatorQuad", t.z, t.y, t.x)
        data = tile_layer(store, TileQuery("city", fields, tile.bounds, tile.srid, tile.crs,
                                           tile.crs84_envelope))
        sizes[t] = len(data)
        if data and (t.z == 10 or len(data) > 300_000):  # polygons drawn (at z10 the
            # overview's: a multipolygon of merged buildings a cell)
            drawn[t] = sum(len(f["geometry"]["coordinates"])
                           if f["geometry"]["type"] == "MultiPolygon" else 1
                           for f in mapbox_vector_tile.decode(data)["city"]["features"])
    biggest = max(sizes, key=sizes.get)
    assert len(sizes) > 10 and sizes[biggest] < 500_000, (biggest, sizes[biggest])
    assert drawn[biggest] > 2_000, drawn
    assert sum(n for t, n in drawn.items() if t.z == 10) > 100, drawn
