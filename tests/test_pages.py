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
def test_every_page_kind_works_offline(one_store, server):
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


def _table(html: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the items table (``table.oup-items``) of a page."""
    from html.parser import HTMLParser

    class Table(HTMLParser):
        def __init__(self):
            super().__init__()
            self.inside, self.cell, self.head, self.rows = False, None, [], []

        def handle_starttag(self, tag, attrs):
            if tag == "table" and "oup-items" in (dict(attrs).get("class") or ""):
                self.inside = True
            elif self.inside and tag == "tr":
                self.rows.append([])
            elif self.inside and tag in ("td", "th"):
                self.cell = ""

        def handle_endtag(self, tag):
            if tag == "table":
                self.inside = False
            elif self.inside and tag in ("td", "th") and self.cell is not None:
                self.rows[-1].append(self.cell.strip())
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

    parser = Table()
    parser.feed(html)
    return parser.rows[0], parser.rows[1:]


def test_items_page_shows_the_attributes_and_a_choice_of_columns(server):
    """The items table holds the first attributes of the schema, and the columns the
    picker (a GET form of checkboxes, no script) asks for; the same values as the JSON."""
    url = f"{server}/collections/buildings/items"
    fields = list(requests.get(f"{server}/collections/buildings/queryables?f=json")
                  .json()["properties"])
    page = requests.get(url, params={"f": "html", "limit": 4})
    head, rows = _table(page.text)
    assert head[0] == "id" and len(head) == 7 and set(head[1:]) <= set(fields), head
    features = requests.get(url, params={"f": "json", "limit": 4}).json()["features"]
    assert [r[0] for r in rows] == [str(f["id"]) for f in features]
    for row, feature in zip(rows, features):
        for name, cell in zip(head[1:], row[1:]):
            value = feature["properties"][name]
            assert cell == ("" if value is None else str(value)), (name, cell, value)
    # the picker's form: one checkbox per property, sent as properties=a&properties=b
    assert page.text.count('type="checkbox" name="properties"') == len(
        [f for f in fields if f != "geometry"])
    chosen = requests.get(url, params=[("f", "html"), ("limit", "3"), ("properties", "height"),
                                       ("properties", "roof_level")])
    assert chosen.status_code == 200
    head, rows = _table(chosen.text)
    assert head == ["id", "height", "roof_level"]
    features = requests.get(url, params={"f": "json", "limit": 3}).json()["features"]
    assert [r[1:] for r in rows] == [[str(f["properties"]["height"]),
                                      str(f["properties"]["roof_level"])] for f in features]
    # paging keeps the choice
    assert "properties=height,roof_level" in chosen.text.replace("&amp;", "&")
    wrong = requests.get(url, params={"f": "html", "properties": "no_such_column"})
    assert wrong.status_code == 400 and "no_such_column" in wrong.text
