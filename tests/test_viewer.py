"""Headless Chromium runs the /viewer page: CesiumJS from npm, offline, loads the
buildings' tileset with no errors, and a real click on a building shows its attributes."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "out"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed "
                    "(make test installs it)")
def test_viewer_loads_the_tileset_and_picks_a_building(server):
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
