"""Every page kind a person reads passes axe-core's WCAG 2.1 A and AA rules, in Chromium,
once its map, API document or 3D view has been drawn."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PAGES = ["/?f=html", "/collections?f=html", "/collections/buildings?f=html",
         "/collections/buildings/items?f=html", "/collections/buildings/items/17?f=html",
         "/collections/buildings/queryables?f=html", "/collections/catalog/items?f=html",
         "/collections/catalog/items/buildings?f=html", "/conformance?f=html",
         "/openapi?f=html", "/map", "/viewer", "/tileMatrixSets?f=html",
         "/collections/buildings/tiles?f=html", "/collections/buildings/tiles/WebMercatorQuad?f=html",
         "/collections/kerncijfers/styles?f=html"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian chromium is not installed (make test installs it)")


def axe(server: str, paths: list[str]) -> dict:
    res = subprocess.run(["node", "axe.mjs", server, *paths], cwd=ROOT / "tests" / "js",
                         capture_output=True, text=True, timeout=900,
                         env={"CHROMIUM": CHROMIUM, "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["error"] is None, out
    return out["pages"]


def test_every_page_kind_has_no_wcag_violations(one_store, server):
    pages = axe(server, PAGES)
    for path in PAGES:
        assert pages[path]["status"] == 200, (path, pages[path])
        assert pages[path]["violations"] == [], (path, pages[path]["violations"])


def test_every_page_kind_in_dutch_has_no_wcag_violations(one_store, server):
    paths = [p + ("&" if "?" in p else "?") + "lang=nl" for p in PAGES]
    pages = axe(server, paths)
    for path in paths:
        assert pages[path]["status"] == 200, (path, pages[path])
        assert pages[path]["violations"] == [], (path, pages[path]["violations"])
        assert pages[path]["language"] == "nl", (path, pages[path]["language"])


def test_map_and_viewer_by_keyboard_only(one_store, server):
    """Tab to a layer toggle, Space switches it; Tab to the map, Enter shows what is in
    the middle, the arrow keys move it, + zooms in; the same for the 3D view."""
    from shapely.geometry import shape

    # the map opens on a building (a point inside it, from the Features API)
    inside = shape(requests.get(f"{server}/collections/buildings/items/17?f=json").json()
                   ["geometry"]).representative_point()
    res = subprocess.run(["node", "keyboard.mjs", server, f"{inside.x},{inside.y},18"],
                         cwd=ROOT / "tests" / "js",
                         capture_output=True, text=True, timeout=600,
                         env={"CHROMIUM": CHROMIUM, "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["error"] is None and out["pageErrors"] == [], out
    m = out["map"]
    assert m["height"] == 768, m  # the map fills the window (1024 x 768)
    assert m["toggleTabs"] is not None, m  # reached with Tab alone
    assert m["toggle"]["checked"] and m["toggle"]["visibility"] == "visible", m
    assert m["toggle"]["focusVisible"] != "none", m  # the focus shows
    assert m["toggled"] == {"checked": False, "visibility": "none"}, m
    assert m["again"] == "visible", m
    assert m["mapTabs"] is not None, m
    assert m["picked"] is not None and m["picked"]["collection"] in m["attributes"], m
    moved = abs(m["moved"]["lng"] - m["before"]["lng"]) + abs(m["moved"]["lat"] - m["before"]["lat"])
    assert moved > 1e-4, m
    assert m["moved"]["lat"] > m["before"]["lat"], m  # ArrowUp: north
    assert m["zoomed"]["zoom"] > m["moved"]["zoom"], m
    v = out["viewer"]
    assert v["ready"] is True and v["viewTabs"] is not None, v
    assert v["moved"]["lon"] > v["before"]["lon"], v  # ArrowRight: east (looking north)
    assert v["zoomed"]["height"] < v["moved"]["height"], v
    assert v["picked"] is not None, v  # Enter: what is in the middle
