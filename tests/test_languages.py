"""Dutch and English: the catalogue's texts in both, the language chosen by lang= or
Accept-Language, said in Content-Language on every document, and the common problems'
details in Dutch."""
from pathlib import Path

import pytest
import requests

from conftest import ROOT

# as declared in collections/buildings/collection.yml
BUILDINGS = {"en": "Buildings of Delfshaven, Rotterdam", "nl": "Gebouwen van Delfshaven, Rotterdam"}
LOCALE = {"en": "en-US", "nl": "nl-NL"}


def test_a_text_is_a_string_or_one_per_language():
    from pydantic import ValidationError

    from oup.catalog import Collection
    from oup.languages import Text

    base = {"id": "x", "description": "d", "license": {"name": "CC0"}, "owner": {"name": "o"},
            "sources": [{"path": "x.geojson"}]}
    plain = Collection.model_validate(dict(base, title="Bridges"))
    assert plain.title == "Bridges" and plain.title.in_("nl") == "Bridges"  # one is enough
    both = Collection.model_validate(dict(base, title={"nl": "Bruggen", "en": "Bridges"},
                                          keywords=["x", {"en": "bridges", "nl": "bruggen"}]))
    assert both.title == "Bridges" and both.title.in_("nl") == "Bruggen"
    assert [k.in_("nl") for k in both.keywords] == ["x", "bruggen"]
    assert Text({"nl": "Bruggen"}) == "Bruggen"  # without the default language: the one given
    for wrong in ({"de": "Brücken"}, {}, 3):
        with pytest.raises(ValidationError):
            Collection.model_validate(dict(base, title=wrong))


@pytest.mark.parametrize("accept, chosen", [
    (None, "en"), ("nl", "nl"), ("nl-BE", "nl"), ("de, nl;q=0.5, en;q=0.4", "nl"),
    ("en-GB, nl;q=0.9", "en"), ("fr", "en"), ("nl;q=0.1, en;q=0.8", "en"), ("*;q=0.5", "en"),
    ("nl;q=x, en", "en")])
def test_negotiation(accept, chosen):
    from oup.languages import negotiate

    assert negotiate(None, accept) == chosen
    assert negotiate("nl", accept) == "nl" and negotiate("en-GB", accept) == "en"
    assert negotiate("de", accept) == chosen  # a language not offered: as if not asked


def test_every_text_of_the_pages_has_its_dutch():
    """Every text OUP's templates (and the pygeoapi pages OUP keeps) put through gettext."""
    import pygeoapi
    from jinja2.ext import babel_extract

    from oup.http.page_texts import DUTCH

    theirs = Path(pygeoapi.__file__).parent / "templates"
    files = [*(ROOT / "config" / "templates").rglob("*.html"), theirs / "conformance.html",
             theirs / "collections" / "index.html", theirs / "collections" / "queryables.html"]
    found = set()
    for file in files:
        with open(file, "rb") as f:
            found |= {msg if isinstance(msg, str) else msg[0] for _, _, msg, _ in babel_extract(
                f, ["_", "gettext"], [], {"extensions": "jinja2.ext.i18n"})}
    assert len(found) > 20
    assert found - set(DUTCH) == set()


def test_pages_in_dutch_and_english(server):
    for lang, title in BUILDINGS.items():
        for how in ({"params": {"lang": lang}}, {"headers": {"Accept-Language": lang}}):
            page = requests.get(f"{server}/collections/buildings?f=html", **how)
            assert page.status_code == 200
            assert f"<title>{title}</title>" in page.text and f'<html lang="{lang}">' in page.text
            assert page.headers["Content-Language"] == LOCALE[lang]
            doc = requests.get(f"{server}/collections/buildings?f=json", **how)
            assert doc.json()["title"] == title
            assert doc.headers["Content-Language"] == LOCALE[lang]
    dutch = requests.get(f"{server}/collections?f=html", headers={"Accept-Language": "nl-BE"})
    assert "Gegevenscollecties in deze dienst" in dutch.text  # pygeoapi's page, in Dutch
    assert 'hreflang="en"' in dutch.text and "lang=en" in dutch.text  # the way back
    english = requests.get(f"{server}/collections?f=html")
    assert "Data collections in this service" in english.text and 'hreflang="nl"' in english.text
    # the items page: the column picker and the paging in the reader's language
    items = requests.get(f"{server}/collections/buildings/items?f=html&lang=nl&limit=2").text
    assert "Kies de kolommen" in items and ">volgende<" in items
    # the map and its legend
    assert "Wat de kaart toont" in requests.get(f"{server}/map?lang=nl").text
    style = requests.get(f"{server}/styles/default", params={"lang": "nl"}).json()
    titles = {layer["metadata"]["oup:title"] for layer in style["layers"] if "metadata" in layer}
    assert BUILDINGS["nl"] in titles and BUILDINGS["en"] not in titles
    legend = [e["label"] for layer in style["layers"] if "metadata" in layer
              for e in layer["metadata"]["oup:legend"]]
    assert any(label.startswith("inwoners ") for label in legend), legend  # kerncijfers
    assert "geen waarde" in " ".join(legend)


def test_every_document_says_its_language(server):
    for path in ("/?f=json", "/collections?f=json", "/collections/buildings/items?limit=1",
                 "/conformance", "/openapi.json", "/health", "/styles", "/map", "/viewer",
                 "/collections/buildings/tiles/WebMercatorQuad?f=tilejson", "/asyncapi",
                 "/problems/NotFound", "/collections/nope", "/collections/buildings/items?bad=1"):
        for lang in ("en", "nl"):
            r = requests.get(f"{server}{path}", headers={"Accept-Language": lang})
            assert r.headers.get("Content-Language") == LOCALE[lang], (path, lang, r.headers)
    tile = requests.get(f"{server}/collections/buildings/tiles/WebMercatorQuad/15/16789/10836")
    assert tile.status_code in (200, 204) and "Content-Language" not in tile.headers


def test_problem_details_in_dutch(server):
    url = f"{server}/collections/buildings/items"
    english = requests.get(url, params={"limit": "many"}).json()
    dutch = requests.get(url, params={"limit": "many"}, headers={"Accept-Language": "nl"})
    assert english["detail"] == "limit must be an integer, got 'many'"
    assert dutch.json()["detail"] == "limit moet een geheel getal zijn, niet 'many'"
    assert dutch.json()["title"] == "Ongeldig verzoek" and dutch.json()["status"] == 400
    assert dutch.headers["Content-Language"] == "nl-NL"
    gone = requests.get(f"{server}/collections/nope/items", params={"lang": "nl"}).json()
    assert gone["status"] == 404 and gone["detail"] == "collectie niet gevonden"
    unknown = requests.get(url, params={"colour": "red", "lang": "nl"}).json()
    assert unknown["detail"].startswith("onbekende queryparameter of eigenschap 'colour'")
