"""Headless Chromium runs the /viewer page: CesiumJS from npm, offline, loads the
buildings' tileset with no errors, a real click on a building shows its attributes, and
the link to the 2D map /map opens it at the same place."""
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "out"
MAP_AT = re.compile(r"/map\?at=(-?\d+\.\d{6}),(-?\d+\.\d{6}),(\d+\.\d)")


def _map_place(href):
    """(lon, lat, zoom) of a /map?at=<lon>,<lat>,<zoom> link."""
    match = MAP_AT.fullmatch(href)
    assert match, href
    return tuple(float(x) for x in match.groups())


def _zoom(lat, height, pixels):
    """The web-mercator zoom whose metres per pixel, at `lat`, a camera `height` m straight
    above the ground shows over a window `pixels` high."""
    return math.log2(156543.03 * math.cos(math.radians(lat)) * pixels / height)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed "
                    "(make test installs it)")
def test_viewer_loads_the_tileset_and_picks_a_building(one_store, server):
    # (the tileset a PostGIS store makes is checked by tests/test_tiles3d.py; a building
    # written and then drawn and picked in the viewer without a reload: tests/test_writes.py)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "viewer.png"
    res = subprocess.run(["node", "viewer.mjs", f"{server}/viewer", str(shot)],
                         cwd=ROOT / "tests" / "js", capture_output=True, text=True, timeout=400,
                         env={"CHROMIUM": CHROMIUM, "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["error"] is None, out
    assert out["ready"] and out["tiles"] >= 1
    assert out["pageErrors"] == [] and out["consoleErrors"] == [], out
    assert shot.stat().st_size > 10_000
    picked = out["picked"]
    assert picked and picked["type"] == "Building"
    # the same building, asked of the Features API, has the same attributes
    items = requests.get(f"{server}/collections/buildings/items",
                         params={"cityobject_id": picked["id"]}).json()["features"]
    assert len(items) == 1
    assert items[0]["properties"]["TerrainHeight"] == pytest.approx(picked["TerrainHeight"])
    # the live sensors: one labelled point per sensor, showing the value the API has
    sensors = requests.get(f"{server}/collections/sensors/items",
                           params={"limit": 1000}).json()["features"]
    labels = out["sensors"]
    assert set(labels) == {f"sensors/{f['id']}" for f in sensors}
    for f in sensors:
        p, label = f["properties"], labels[f"sensors/{f['id']}"]
        assert label.startswith(f"{p['name']} {p['observed_property']}: ")
        if p["latest_result"] is None:
            assert label.endswith("no data yet")
        else:
            assert float(label.split(": ", 1)[1].split()[0]) == p["latest_result"], (label, p)
    # the link to the 2D map: where the camera is as the viewer opens, near the buildings
    opened = out["toMap"]["opened"]
    lon, lat, zoom = _map_place(opened["href"])
    assert (lon, lat) == pytest.approx(opened["camera"][:2], abs=1e-6), opened
    assert 0 <= zoom <= 22
    x0, y0, x1, y1 = requests.get(f"{server}/collections/buildings").json()[
        "extent"]["spatial"]["bbox"][0]
    w, h = x1 - x0, y1 - y0
    assert x0 - w <= lon <= x1 + w and y0 - h <= lat <= y1 + h, (opened, (x0, y0, x1, y1))
    # kept up to date: the camera 600 m straight above a place, the link shows that place at
    # the zoom with the same metres per pixel
    moved = out["toMap"]["moved"]
    lon, lat, zoom = _map_place(moved["href"])
    assert (lon, lat) == pytest.approx((4.4512, 51.9087), abs=1e-6), moved
    assert zoom == pytest.approx(_zoom(51.9087, 600, moved["pixels"]), abs=0.05 + 1e-9), moved
    # and a click on it opens /map there
    shown = out["toMap"]["map"]
    assert shown["url"] == moved["href"] and shown["error"] is None, shown
    assert shown["center"] == pytest.approx([lon, lat], abs=1e-9), shown
    assert shown["zoom"] == pytest.approx(zoom, abs=1e-9), shown
