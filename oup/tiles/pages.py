"""The tiles' and styles' documents as pages (``f=html``, or a browser's ``Accept``):
what a person needs to use them (the tile address to paste into QGIS or MapLibre, the
zoom levels, the attributes in the tiles, a style's legend) beside the links to the JSON.
The link titles and terms are English keys the page's message catalogue translates
(``oup.http.page_texts``)."""
from __future__ import annotations

from oup.http.doc_pages import html_page, links


def _json(doc: dict, rel: str = "self") -> str:
    return next(x["href"] for x in doc["links"] if x["rel"] == rel)


def _on_the_map(base: str, collection: str | None) -> dict:
    """The link to /map, framed on the collection (``?collection=``) if there is one."""
    return {"title": "The map",
            "href": f"{base}/map" + (f"?collection={collection}" if collection else "")}


def tile_matrix_sets(doc: dict, base: str):
    entries = [{"title": t["title"], "facts": [("Identifier", t["id"])] + (
                    [("Standard", t["uri"])] if t.get("uri") else []),
                "links": [{"title": "The tile matrix set (OGC TMS 2.0 JSON)",
                           "href": _json(t)}]}
               for t in doc["tileMatrixSets"]]
    return html_page("tiles/index.html", {"kind": "tilematrixsets", "entries": entries,
                                          "links": links(f"{base}/tileMatrixSets")})


def tilesets(doc: dict, collection: str | None, name: str | None):
    from oup.tiles.vector_tiles import SCHEME_REL  # (that module serves these pages)

    entries = []
    for t in doc["tilesets"]:
        href = _json(t)
        entries.append({"title": t["tileMatrixSetId"],
                        "facts": [("Coordinate reference system", t["crs"])],
                        "links": [{"title": "The tileset", "href": f"{href}?f=html"},
                                  {"title": "The tileset (JSON)", "href": href},
                                  {"title": "The tile matrix set (OGC TMS 2.0 JSON)",
                                   "href": _json(t, SCHEME_REL)}]})
    return html_page("tiles/index.html", {"kind": "tilesets", "collection": collection,
                                          "name": name, "entries": entries,
                                          "links": links(_json(doc))})


def tileset(doc: dict, collection: str | None, name: str | None, base: str):
    href = _json(doc)
    tile = _json(doc, "item")
    zooms = [int(limit["tileMatrix"]) for limit in doc["tileMatrixSetLimits"]]
    about = [{"title": "How to use it",
              "facts": [("Tile matrix set", doc["tileMatrixSetId"]),
                        ("Zoom levels", f"{min(zooms)}-{max(zooms)}"),
                        ("Coordinate reference system", doc["crs"])],
              "links": [{"title": "A tile (Mapbox Vector Tile; 204 where empty)",
                         "href": tile, "code": tile}]
              + [{"title": x["title"], "href": x["href"]} for x in doc["links"]
                 if x["rel"] == "alternate"]
              + [{"title": "The tileset (JSON)", "href": href}]
              + ([_on_the_map(base, collection)]
                 if doc["tileMatrixSetId"] == "WebMercatorQuad" else [])}]
    layers = [{"title": layer["title"],
               "facts": [("Layer", layer["id"]),
                         ("Zoom levels", f"{layer['minTileMatrix']}-{layer['maxTileMatrix']}"),
                         ("Attributes", ", ".join(layer["propertiesSchema"]["properties"])
                          or "-")],
               "links": [{"title": "The collection", "href": f"{_json(layer, 'collection')}"
                                                               "?f=html"}]}
              for layer in doc["layers"]]
    return html_page("tiles/index.html", {"kind": "tileset", "collection": collection,
                                          "name": name, "grid": doc["tileMatrixSetId"],
                                          "entries": about + layers, "links": links(href)})


def styles(doc: dict, legends: list[tuple[str, list[dict]]], collection: str | None,
           name: str | None, base: str):
    entries = [{"title": "The default style" if s["id"] == "default" else s["title"],
                "links": [_on_the_map(base, collection)]
                + [{"title": x["title"], "href": x["href"]} for x in s["links"]]}
               for s in doc["styles"]]
    entries += [{"title": title, "legend": legend, "links": []} for title, legend in legends]
    return html_page("tiles/index.html", {"kind": "styles", "collection": collection,
                                          "name": name, "entries": entries,
                                          "links": links(_json(doc))})
