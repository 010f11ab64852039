"""The texts of the HTML pages in Dutch (English is what the templates say).

pygeoapi renders its pages with Jinja's gettext (``_()``, ``{% trans %}``) from the message
catalogue in ``server.locale_dir``: ``write_catalogue`` writes OUP's there as the
configuration is made, for OUP's templates (``config/templates``) and the pygeoapi
pages OUP keeps (the collections list, queryables, conformance).
``tests/test_languages.py`` checks that every text of those templates is here.
"""
from __future__ import annotations

import os
from pathlib import Path

DUTCH = {
    "Collections": "Collecties",
    "Map": "Kaart",
    "3D viewer": "3D-viewer",
    "Home": "Start",
    "OpenAPI document": "OpenAPI-document",
    "the OpenAPI document": "het OpenAPI-document",
    "conformance": "conformiteit",
    "Data": "Gegevens",
    "The city on a map": "De stad op de kaart",
    "For developers": "Voor ontwikkelaars",
    "Licence": "Licentie",
    '<a href="%(base)s/collections?f=html">The collections</a>: features (OGC API Features), '
    "vector tiles (OGC API Tiles), and the catalogue of them (OGC API Records).":
        '<a href="%(base)s/collections?f=html">De collecties</a>: objecten (OGC API '
        "Features), vectortegels (OGC API Tiles) en de catalogus ervan (OGC API Records).",
    '<a href="%(base)s/map">The map</a>: every collection in 2D, from vector tiles, with the '
    'live sensors; <a href="%(base)s/viewer">the 3D viewer</a>: the city model as 3D Tiles, '
    "with the live sensors.":
        '<a href="%(base)s/map">De kaart</a>: elke collectie in 2D, uit vectortegels, met de '
        'live sensoren; <a href="%(base)s/viewer">de 3D-viewer</a>: het stadsmodel als 3D '
        "Tiles, met de live sensoren.",
    '<a href="%(base)s/openapi?f=html">The API, in Swagger UI</a>; <a href="%(base)s/'
    'openapi.json">the OpenAPI document</a>; <a href="%(base)s/asyncapi">the AsyncAPI '
    'document</a> of the change events (<a href="%(base)s/events">all of them</a>, as '
    'Server-Sent Events); <a href="%(base)s/conformance?f=html">what it conforms to</a>; '
    '<a href="%(base)s/tileMatrixSets">the tile matrix sets</a>; <a href="%(base)s/styles">'
    "the map styles</a>.":
        '<a href="%(base)s/openapi?f=html">De API, in Swagger UI</a>; <a href="%(base)s/'
        'openapi.json">het OpenAPI-document</a>; <a href="%(base)s/asyncapi">het '
        'AsyncAPI-document</a> van de wijzigingsgebeurtenissen (<a href="%(base)s/events">'
        'allemaal</a>, als Server-Sent Events); <a href="%(base)s/conformance?f=html">waar '
        'het aan voldoet</a>; <a href="%(base)s/tileMatrixSets">de tegelmatrixsets</a>; '
        '<a href="%(base)s/styles">de kaartstijlen</a>.',
    "Documentation": "Documentatie",
    '<a href="%(base)s/docs/">The documentation</a> (in English): a guide for each kind of user '
    "(GIS analysts, 3D viewer developers, service developers, data stewards, sensor owners, "
    "operators), the reference and the architecture.":
        '<a href="%(base)s/docs/">De documentatie</a> (in het Engels): een handleiding voor '
        "elk soort gebruiker (GIS-analisten, ontwikkelaars van 3D-viewers en van diensten, "
        "databeheerders, sensoreigenaren, beheerders), het naslagwerk en de architectuur.",
    "Use it": "Gebruik",
    "Browse the items": "Blader door de objecten",
    "What can be queried": "Wat bevraagd kan worden",
    "Vector tiles": "Vectortegels",
    "Items": "Objecten",
    "%(matched)s items; these are %(shown)s of them.":
        "%(matched)s objecten; dit zijn er %(shown)s.",
    "Choose the columns": "Kies de kolommen",
    "Columns": "Kolommen",
    "Show these columns": "Toon deze kolommen",
    "Map of what this page shows": "Kaart van wat deze pagina toont",
    "previous": "vorige",
    "next": "volgende",
    # the tiles' and styles' pages (config/templates/tiles, oup.tiles.pages)
    "every collection": "elke collectie",
    "Tile matrix sets": "Tegelmatrixsets",
    "Map styles of %(name)s": "Kaartstijlen van %(name)s",
    "Vector tiles of %(name)s": "Vectortegels van %(name)s",
    "Vector tiles of %(name)s in %(grid)s": "Vectortegels van %(name)s in %(grid)s",
    "Legend": "Legenda",
    "Identifier": "Kenmerk",
    "Standard": "Standaard",
    "The tile matrix set (OGC TMS 2.0 JSON)": "De tegelmatrixset (OGC TMS 2.0 JSON)",
    "Coordinate reference system": "Coördinatenreferentiesysteem",
    "The tileset": "De tegelset",
    "The tileset (JSON)": "De tegelset (JSON)",
    "How to use it": "Zo gebruikt u hem",
    "Tile matrix set": "Tegelmatrixset",
    "Zoom levels": "Zoomniveaus",
    "A tile (Mapbox Vector Tile; 204 where empty)":
        "Een tegel (Mapbox Vector Tile; 204 waar hij leeg is)",
    "TileJSON 3": "TileJSON 3",
    "The map": "De kaart",
    "Layer": "Laag",
    "Attributes": "Attributen",
    "The collection": "De collectie",
    "The default style": "De standaardstijl",
    "MapLibre / Mapbox style": "MapLibre-/Mapbox-stijl",
    "Google Maps Compatible for the World": "Google Maps-compatibel, voor de hele wereld",
    "Amersfoort / RD New (EPSG:28992), the Dutch standard tile grid":
        "Amersfoort / RD New (EPSG:28992), het Nederlandse standaardtegelraster",
    "CRS84 for the World": "CRS84 voor de hele wereld",
    # pygeoapi's own pages
    "Data collections in this service": "Gegevenscollecties in deze dienst",
    "Record collections in this service": "Catalogi in deze dienst",
    "Name": "Naam",
    "Description": "Beschrijving",
    "Queryables": "Bevraagbare eigenschappen",
    "Conformance": "Conformiteit",
}


# /map and /viewer are pages of their own (not pygeoapi's): their texts, whole
FULL_PAGE_DUTCH = {
    "<title>OUP map</title>": "<title>OUP-kaart</title>",
    "</a> map</h1>": "</a>-kaart</h1>",
    "this place in 3D": "deze plek in 3D",
    ">collections<": ">collecties<",
    "What the map shows": "Wat de kaart toont",
    "loading…": "laden…",
    "Click a feature (or press Enter on the map) to see its attributes.":
        "Klik op een object (of druk op Enter op de kaart) om de attributen te zien.",
    "Map: arrow keys move it, + and - zoom, Enter shows what is in the middle":
        "Kaart: pijltjestoetsen verplaatsen, + en - zoomen, Enter toont wat in het midden is",
    "<title>OUP 3D viewer</title>": "<title>OUP 3D-viewer</title>",
    "<h1>OUP 3D viewer</h1>": "<h1>OUP 3D-viewer</h1>",
    "this place on the 2D map": "deze plek op de 2D-kaart",
    "loading the tileset…": "de tegelset laden…",
    "Click a building or a sensor (or press Enter on the view) to see its attributes.":
        "Klik op een gebouw of een sensor (of druk op Enter op de weergave) om de attributen "
        "te zien.",
    "3D view: arrow keys move it, + and - zoom, Enter shows what is in the middle":
        "3D-weergave: pijltjestoetsen verplaatsen, + en - zoomen, Enter toont wat in het "
        "midden is",
}


def full_page(html: str, language: str) -> str:
    """/map's or /viewer's page in ``language``."""
    html = html.replace('<html lang="en">', f'<html lang="{language}">', 1)
    if language == "nl":
        for english, dutch in FULL_PAGE_DUTCH.items():
            html = html.replace(english, dutch)
    return html


def write_catalogue(out_dir: Path) -> Path:
    """The compiled Dutch catalogue under ``out_dir``/locale; the folder pygeoapi reads."""
    from babel.messages.catalog import Catalog
    from babel.messages.mofile import write_mo

    root = out_dir / "locale"
    folder = root / "nl" / "LC_MESSAGES"
    folder.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(locale="nl", domain="messages")
    for english, dutch in DUTCH.items():
        catalog.add(english, dutch)
    tmp = folder / f".messages.mo.{os.getpid()}"
    with open(tmp, "wb") as f:
        write_mo(f, catalog)
    tmp.replace(folder / "messages.mo")  # whole or not at all: every worker writes it
    return root
