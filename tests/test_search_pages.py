"""The search box of /map and /viewer in headless Chromium (tests/js/search.mjs): found by
its accessible name, typed in, and the view comes to the hit - a point of it on the part
of the screen the panel leaves free; the hit is reached and chosen with the keyboard alone."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
import shapely
from shapely.geometry import shape

from conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is "
                                 "not installed (make test installs it)")]


def _search_in(server: str, page: str, words: str, lon: float, lat: float) -> dict:
    url = f"{server}/map?at=4.40,51.88,11" if page == "map" else f"{server}/viewer"
    res = subprocess.run(["node", "search.mjs", url, page, words, f"{lon},{lat}"],
                         cwd=ROOT / "tests" / "js", capture_output=True, text=True,
                         timeout=400, env={"CHROMIUM": CHROMIUM, "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["error"] is None and out["pageErrors"] == [], out
    assert out["foreign"] == [] and out["consoleErrors"] == [], out
    return out


@pytest.mark.parametrize("page", ["map", "viewer"])
def test_the_search_box_goes_to_spangen(server, env, page):
    if page == "viewer" and env["OUP_TEST_STORE"] != "gpkg":
        pytest.skip("the viewer asks the same /search as the map, which runs on both stores")
    items = requests.get(f"{server}/collections/neighbourhoods/items",
                         params={"buurtnaam": "Spangen"}, timeout=30).json()["features"]
    spangen = shape(items[0]["geometry"])
    inside = shapely.Point(spangen.representative_point())  # a point within Spangen
    out = _search_in(server, page, "Spangen", inside.x, inside.y)
    assert out["label"] == "Search places and features"
    assert out["hits"][0] == "Spangen" and out["flown"] == f"neighbourhoods/{items[0]['id']}"
    x, y = out["point"]
    x0, y0, x1, y1 = out["view"]
    assert x0 <= x <= x1 and y0 <= y <= y1, out  # on screen, beside the panel
    if page == "map":
        assert out["zoom"] > out["zoomBefore"] + 1, out  # and closer than before
    assert "found" in out["status"], out
    # the keyboard reaches the hit, and Enter there goes to it
    assert out["focused"].startswith("Spangen") and out["again"] == out["flown"], out
