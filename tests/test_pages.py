"""The platform's own face: every HTML page kind, opened in headless Chromium with every
request to another host refused, loads everything it needs from the platform, logs no
error, and the item pages' maps show the features (on OUP's own vector tiles)."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "out"
PAGES = ["/?f=html", "/collections?f=html", "/collections/buildings?f=html",
         "/collections/buildings/items?f=html", "/collections/buildings/items/17?f=html",
         "/collections/buildings/queryables?f=html", "/collections/catalog/items?f=html",
         "/collections/catalog/items/buildings?f=html", "/conformance?f=html",
         "/openapi?f=html", "/openapi?f=html&ui=redoc", "/viewer"]
WITH_MAPS = PAGES[2:5] + PAGES[6:8]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed "
                    "(make test installs it)")
def test_every_page_kind_works_offline(server):
    ARTIFACTS.mkdir(exist_ok=True)
    res = subprocess.run(["node", "pages.mjs", server, str(ARTIFACTS), *PAGES],
                         cwd=ROOT / "tests" / "js", capture_output=True, text=True, timeout=600,
                         env={"CHROMIUM": CHROMIUM, "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["error"] is None, out
    for path in PAGES:
        page = out["pages"][path]
        assert page["status"] == 200, (path, page)
        assert page["foreign"] == [], (path, page["foreign"])  # nothing asked of another host
        assert page["consoleErrors"] == [] and page["pageErrors"] == [], (path, page)
    for path in WITH_MAPS:
        assert out["pages"][path]["map"]["features"] >= 1, (path, out["pages"][path])
    # the item's own map stands on the city's vector tiles
    assert out["pages"]["/collections/buildings/items/17?f=html"]["map"]["city"] > 10


def test_pages_are_branded_oup_and_link_the_platform(server):
    landing = requests.get(f"{server}/?f=html")
    text = landing.text
    assert "pygeoapi" not in text.lower() and "github.com" not in text
    for href in ("/viewer", "/map", "/openapi.json", "/openapi?f=html", "/collections?f=html",
                 "/asyncapi"):
        assert f'href="{server}{href}"' in text, href
    csp = landing.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "http" not in csp  # no other origin allowed
    assert requests.get(f"{server}/assets/bootstrap/css/bootstrap.min.css").status_code == 200
    assert requests.get(f"{server}/assets/../pyproject.toml").status_code == 404
    assert requests.get(f"{server}/assets/oup/../../app.py").status_code == 404
