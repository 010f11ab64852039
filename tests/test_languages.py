"""Dutch and English: the catalogue's texts in both, the language chosen by lang= or
Accept-Language, said in Content-Language on every document, and the common problems'
details in Dutch."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
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
            # (a text the page gets from its data, `_(entry['title'])`, is no literal:
            # test_tile_pages finds such texts in Dutch)
            found |= {msg if isinstance(msg, str) else msg[0] for _, _, msg, _ in babel_extract(
                f, ["_", "gettext"], [], {"extensions": "jinja2.ext.i18n"}) if msg}
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


def _texts_of(doc, path=()):
    """(where, text) of every summary, description and title of an OpenAPI document
    (not the names of schemas' properties)."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in ("summary", "description", "title") and isinstance(value, str) \
                    and path[-1:] != ("properties",):
                yield path + (key,), value
            else:
                yield from _texts_of(value, path + (key,))
    elif isinstance(doc, list):
        for n, value in enumerate(doc):
            yield from _texts_of(value, path + (n,))


def _english_only(env) -> set[str]:
    """The catalogue's titles and descriptions given in English only (enough: they show
    as they are in every language)."""
    from oup.catalog import load_catalog

    return {str(t) for c in load_catalog(Path(env["OUP_CATALOG_DIR"]))
            for t in (c.title, c.description) if not t.translations}


def test_the_openapi_document_in_dutch(imported, server):
    """Every text of the OpenAPI document has its Dutch, but the few that read the same
    and the catalogue's texts given in English only (a plain string is enough)."""
    from oup.http.openapi_dutch import SAME

    docs = {}
    for lang in ("en", "nl"):
        r = requests.get(f"{server}/openapi.json", params={"lang": lang})
        assert r.status_code == 200 and r.headers["Content-Language"] == LOCALE[lang]
        docs[lang] = r.json()
        # pygeoapi's /openapi answers the same document
        assert requests.get(f"{server}/openapi", params={"f": "json"},
                            headers={"Accept-Language": lang}).json() == docs[lang]
    english, dutch = dict(_texts_of(docs["en"])), dict(_texts_of(docs["nl"]))
    assert english.keys() == dutch.keys() and len(english) > 500  # the same document
    english_only = _english_only(imported)
    left = {text for where, text in english.items()
            if dutch[where] == text and text not in SAME | english_only}
    assert left == set()
    items = docs["nl"]["paths"]["/collections/buildings/items"]["get"]
    assert items["summary"] == f"{BUILDINGS['nl']}: objecten ophalen"
    assert docs["nl"]["info"]["title"] == "OUP - Open Stedelijk Platform"
    assert docs["nl"]["paths"]["/search"]["get"]["summary"] == \
        "Zoeken in vrije tekst in elke collectie die men mag zien"


# what reads the same in Dutch: names, and the words Dutch has taken from English
SAME_IN_DUTCH = {"OUP", "Open Urban Platform", "Open Urban Platform ·", "OGC API", "API",
                 "Cesium ion", "Accept", "Links", "Parameters", "Schema", "Server", "Servers",
                 "- Website", "Rotterdam", "json"}
_OPERATION = re.compile(r"^(get|post|put|patch|delete|options|head) \u200b?/")


def test_no_english_on_the_pages_in_dutch(env, server):
    """Chromium walks the pages a resident reads (the map and the 3D viewer after a
    search that finds something and one that does not, the API in Swagger UI with an
    operation opened, the landing page) in English and in Dutch: in Dutch no text of
    the English catalogues shows, and what shows alike in both is data or a name."""
    from oup.http.openapi_dutch import DUTCH as API_DUTCH
    from oup.http.page_texts import DUTCH as PAGE_DUTCH

    if env["OUP_TEST_STORE"] != "gpkg":
        pytest.skip("the same pages as on GeoPackage")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (make test installs it)")
    paths = ["/map", "/viewer", "/openapi?f=html", "/?f=html"]
    seen = {}
    for lang in ("en", "nl"):
        res = subprocess.run(["node", "texts.mjs", server, lang, *paths],
                             cwd=ROOT / "tests" / "js", capture_output=True, text=True,
                             timeout=600, env={"CHROMIUM": CHROMIUM, "PATH": "/usr/bin:/bin"})
        assert res.returncode == 0, res.stderr
        seen[lang] = json.loads(res.stdout.strip().splitlines()[-1])
        assert seen[lang]["error"] is None and seen[lang]["pageErrors"] == [], seen[lang]
    english_only = _english_only(env)
    # a collection's id is a name in either language (the map's status line names the
    # collection an event came from: other tests of the suite import some again)
    ids = {c["id"] for c in requests.get(f"{server}/collections", params={"f": "json"},
                                         timeout=30).json()["collections"]}
    scripts = seen["nl"]["catalogue"]
    catalogue = {**PAGE_DUTCH, **API_DUTCH, **scripts["DUTCH"], **scripts["WIDGETS"]}
    english = [re.compile(re.sub(r"\\\{\w+\\\}", ".+", re.escape(en)))
               for en, nl in catalogue.items() if en != nl and en.strip()]
    for path in paths:
        en, nl = seen["en"]["pages"][path], seen["nl"]["pages"][path]
        assert nl["status"] == 200 and nl["language"] == "nl" and en["language"] == "en"
        assert len(nl["texts"]) > 10, (path, nl)
        untranslated = [t for t in nl["texts"] + nl["data"]
                        if any(e.fullmatch(t) for e in english)]
        assert untranslated == [], (path, untranslated)
        alike = {t for t in set(nl["texts"]) & set(en["texts"])
                 if re.search(r"[a-z]{2}", t) and t not in SAME_IN_DUTCH | english_only | ids
                 and not _OPERATION.match(t)}
        assert alike == set(), (path, alike)
    # the scripts' texts were shown in Dutch (a search found nothing, then Spangen)
    on_map = seen["nl"]["pages"]["/map"]["texts"]
    assert "niets gevonden voor “zzzqqq”" in on_map and "Zoek plaatsen en objecten" in on_map
    assert any(re.fullmatch(r"\d+ sensoren, laatste waarden, live", t) for t in on_map)
    assert "Uitvoeren" in seen["nl"]["pages"]["/openapi?f=html"]["texts"]  # Swagger UI's own
