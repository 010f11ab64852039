"""Every page kind a person reads passes axe-core's WCAG 2.1 A and AA rules, in Chromium,
once its map, API document or 3D view has been drawn."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PAGES = ["/?f=html", "/collections?f=html", "/collections/buildings?f=html",
         "/collections/buildings/items?f=html", "/collections/buildings/items/17?f=html",
         "/collections/buildings/queryables?f=html", "/collections/catalog/items?f=html",
         "/collections/catalog/items/buildings?f=html", "/conformance?f=html",
         "/openapi?f=html", "/map", "/viewer"]

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


def test_every_page_kind_has_no_wcag_violations(server):
    pages = axe(server, PAGES)
    for path in PAGES:
        assert pages[path]["status"] == 200, (path, pages[path])
        assert pages[path]["violations"] == [], (path, pages[path]["violations"])
