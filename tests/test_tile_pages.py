"""The tiles' and styles' documents as pages a person reads: asked for with f=html or a
browser's Accept, in the site's frame and the reader's language, saying what the JSON
says (the tile address, the zoom levels, the attributes in the tiles, a style's legend);
JSON stays what a client gets by default."""
from __future__ import annotations

import re
from html import unescape

import pytest
import requests

from oup.http.page_texts import DUTCH

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
PAGES = ["/tileMatrixSets", "/tiles", "/collections/buildings/tiles",
         "/collections/buildings/tiles/WebMercatorQuad", "/styles",
         "/collections/kerncijfers/styles"]


def _texts(html: str) -> list[str]:
    """The page's visible texts (the body's text nodes, stripped)."""
    body = re.sub(r"<(script|style)\b.*?</\1>", "", re.split(r"<body[^>]*>", html, maxsplit=1)[1],
                  flags=re.S)
    return [t for t in (unescape(x).strip() for x in re.split(r"<[^>]+>", body)) if t]


@pytest.mark.parametrize("path", PAGES)
def test_a_browser_gets_a_page_and_a_client_json(server, path):
    page = requests.get(f"{server}{path}", headers=BROWSER, timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert '<html lang="en">' in page.text and f'href="{server}{path}?f=json"' in page.text
    assert requests.get(f"{server}{path}?f=html", timeout=30).text == page.text
    doc = requests.get(f"{server}{path}", timeout=30)
    assert doc.headers["Content-Type"].startswith("application/json"), doc.headers
    doc.json()


def test_a_tileset_page_says_what_its_json_says(server):
    url = f"{server}/collections/buildings/tiles/WebMercatorQuad"
    doc = requests.get(url, timeout=30).json()
    texts = _texts(requests.get(f"{url}?f=html", timeout=30).text)
    template = next(x["href"] for x in doc["links"] if x["rel"] == "item")
    assert template in texts  # the address to paste into a client
    zooms = [int(x["tileMatrix"]) for x in doc["tileMatrixSetLimits"]]
    assert f"{min(zooms)}-{max(zooms)}" in texts
    (layer,) = doc["layers"]
    assert ", ".join(layer["propertiesSchema"]["properties"]) in texts
    title = requests.get(f"{server}/collections/buildings?f=json", timeout=30).json()["title"]
    assert f"Vector tiles of {title} in WebMercatorQuad" in texts


def test_a_style_page_shows_the_legend_the_map_draws(server):
    style = requests.get(f"{server}/collections/kerncijfers/styles/default",
                         params={"lang": "nl"}, timeout=30).json()
    legend = [e["label"] for layer in style["layers"][1:2] for e in layer["metadata"]["oup:legend"]]
    assert len(legend) > 2  # a choropleth: its classes and "no value"
    page = requests.get(f"{server}/collections/kerncijfers/styles?f=html&lang=nl", timeout=30)
    texts = _texts(page.text)
    at = [texts.index(label) for label in legend]
    assert at == sorted(at)  # every class, in the map's order
    assert page.text.count('class="oup-swatch"') == len(legend)


@pytest.mark.parametrize("path", PAGES)
def test_the_pages_in_dutch_have_no_english_text(server, path):
    english = {en for en, nl in DUTCH.items() if en != nl}
    page = requests.get(f"{server}{path}?f=html", headers={"Accept-Language": "nl"}, timeout=30)
    assert '<html lang="nl">' in page.text and page.headers["Content-Language"] == "nl-NL"
    texts = _texts(page.text)
    assert not [t for t in texts if t in english], texts
    assert not [t for t in texts if re.fullmatch(r"(Vector tiles|Map styles) of .*", t)], texts
