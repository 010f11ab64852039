"""OGC API Styles: how the collections are drawn, as MapLibre style JSON, from the
catalogue (``style:`` in collection.yml).

- ``/styles``, ``/styles/default``: the city map, every collection the caller may see;
- ``/collections/{id}/styles``, ``/collections/{id}/styles/default``: one collection.

A style draws OUP's own vector tiles (the TileJSON of ``/tiles`` or of the collection)
and asks nothing of any other host: no basemap, no sprites, and the label glyphs from
the platform itself (``oup.tiles.glyphs``). Each collection is three layers, one per geometry
type (fill and outline for polygons, line, circle for points), so a collection needs no
declared geometry type to be drawn well, and a fourth for its labels if it has them.
Each layer carries its collection, title and legend in ``metadata`` for /map's toggles
and legend.
"""
from __future__ import annotations

from oup.catalog import COLLECTION_FILE, Catalog, CatalogError, Collection
from oup.tiles import pages
from oup.tiles.glyphs import FONT
from oup.http.doc_pages import HTML
from oup.http.routes import Call, Endpoint, Format, Param
from oup.languages import DEFAULT as DEFAULT_LANGUAGE
from oup.languages import current
from oup.tiles.vector_tiles import Layer, NoTiles, json_response, union_bbox

STYLE_MEDIA = "application/vnd.mapbox.style+json"
CONFORMANCE = [f"http://www.opengis.net/spec/ogcapi-styles-1/1.0/conf/{c}"
               for c in ("core", "mapbox-styles")]
DEFAULT = "default"
# colours for collections that do not choose theirs (colour-blind safe, Okabe-Ito)
_PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442"]
_NUMBERS = ("number", "integer")
_NO_VALUE = {"en": "no value", "nl": "geen waarde"}


def check(catalog: Catalog, layers: dict[str, Layer]) -> None:
    """A choropleth on an attribute that is not a number of the collection fails start-up,
    naming the file and the field."""
    for cid, layer in layers.items():
        choropleth = layer.collection.style.choropleth
        if choropleth and layer.fields.get(choropleth.property) not in _NUMBERS:
            raise CatalogError(catalog[cid].folder / COLLECTION_FILE,
                               "style.choropleth.property",
                               f"{choropleth.property!r} is not a numeric attribute of {cid!r}")
        label = layer.collection.style.label
        if label and label not in layer.properties:
            raise CatalogError(catalog[cid].folder / COLLECTION_FILE, "style.label",
                               f"{label!r} is not an attribute in {cid!r}'s tiles")


def _legend(coll: Collection, fill: str, language: str) -> list[dict]:
    c = coll.style.choropleth
    if c is None:
        return [{"label": coll.title.in_(language), "colour": fill}]
    name = c.legend.in_(language) if c.legend else c.property
    bounds = [None, *c.breaks, None]
    out = []
    for low, high, colour in zip(bounds, bounds[1:], c.colours):
        label = (f"< {high:g}" if low is None else f">= {low:g}" if high is None
                 else f"{low:g} - {high:g}")
        out.append({"label": f"{name} {label}", "colour": colour})
    return out + [{"label": f"{name}: {_NO_VALUE[language]}", "colour": c.nodata}]


def collection_layers(coll: Collection, source: str, index: int,
                      language: str = DEFAULT_LANGUAGE) -> list[dict]:
    """The MapLibre layers drawing ``coll`` from ``source`` (whose layers are named by
    collection id); its title and legend in ``language``."""
    s = coll.style
    colour = _PALETTE[index % len(_PALETTE)]
    fill, line, point = s.fill or colour, s.line or s.fill or colour, s.point or colour
    fill_colour: object = fill
    if s.choropleth:
        c = s.choropleth
        steps: list = [c.colours[0]]
        for limit, col in zip(c.breaks, c.colours[1:]):
            steps += [limit, col]
        fill_colour = ["case", ["has", c.property],
                       ["step", ["to-number", ["get", c.property]], *steps], c.nodata]
    meta = {"oup:collection": coll.id, "oup:title": coll.title.in_(language),
            "oup:legend": _legend(coll, s.fill or s.line or s.point or colour, language)}
    common = {"source": source, "source-layer": coll.id, "metadata": meta,
              "layout": {"visibility": "visible" if s.visible else "none"}}
    fills = [] if s.opacity == 0 else [  # opacity 0: outlines only (clicks go through)
        {"id": f"{coll.id}-fill", "type": "fill", **common,
         "filter": ["==", ["geometry-type"], "Polygon"],
         "paint": {"fill-color": fill_colour, "fill-opacity": s.opacity}}]
    labels = [] if not s.label else [
        {"id": f"{coll.id}-label", "type": "symbol", **common,
         "layout": {**common["layout"], "text-field": ["to-string", ["get", s.label]],
                    "text-font": [FONT], "text-size": 12, "text-max-width": 8},
         "paint": {"text-color": s.label_colour, "text-halo-color": "#ffffff",
                   "text-halo-width": 1.5}}]
    return fills + labels + [
        {"id": f"{coll.id}-line", "type": "line", **common,
         "filter": ["!=", ["geometry-type"], "Point"],
         "paint": {"line-color": line, "line-width": s.width}},
        {"id": f"{coll.id}-point", "type": "circle", **common,
         "filter": ["==", ["geometry-type"], "Point"],
         "paint": {"circle-color": point, "circle-radius": 3 + 2 * s.width,
                   "circle-stroke-color": "#ffffff", "circle-stroke-width": 1}},
    ]


class Styles:
    """The styles endpoints over the published layers."""

    def __init__(self, catalog: Catalog, layers: dict[str, Layer], base_url: str):
        check(catalog, layers)
        self.layers, self.base = layers, base_url.rstrip("/")
        self.order = {cid: i for i, cid in enumerate(catalog.collections)}

    def _chosen(self, cid: str | None, visible: frozenset[str]) -> tuple[list[Layer], str]:
        if cid is None:
            return [v for k, v in self.layers.items() if k in visible], ""
        if cid not in self.layers:
            raise NoTiles(f"collection {cid!r} has no styles: it has no vector tiles")
        return [self.layers[cid]], f"/collections/{cid}"

    def answer_listing(self, call: Call):
        doc = self.listing(call.collection, call.visible)
        if call.format.key != "html":
            return json_response(doc)
        chosen, _ = self._chosen(call.collection, call.visible)
        language = current()
        legends = [(layer.collection.title.in_(language), collection_layers(
                    layer.collection, "oup", self.order[layer.id], language)[0]["metadata"]
                    ["oup:legend"]) for layer in sorted(chosen, key=lambda x: self.order[x.id])]
        name = legends[0][0] if call.collection else None
        return pages.styles(doc, legends, call.collection, name, self.base)

    def answer_style(self, call: Call):
        return json_response(self.style(call.collection, call.path["styleId"], call.visible,
                                        current()), STYLE_MEDIA)

    def listing(self, cid: str | None, visible: frozenset[str]) -> dict:
        chosen, prefix = self._chosen(cid, visible)
        if not chosen:
            raise NoTiles("no styles here")
        href = f"{self.base}{prefix}/styles/{DEFAULT}"
        return {"default": DEFAULT, "styles": [{
            "id": DEFAULT, "title": "OUP's map of " + (chosen[0].collection.title
                                                     if cid else "the city"),
            "links": [{"rel": "stylesheet", "type": STYLE_MEDIA, "href": href,
                       "title": "MapLibre / Mapbox style"}]}],
            "links": [{"rel": "self", "type": "application/json",
                       "href": f"{self.base}{prefix}/styles"}]}

    def style(self, cid: str | None, sid: str, visible: frozenset[str],
              language: str = DEFAULT_LANGUAGE) -> dict:
        if sid != DEFAULT:
            raise NoTiles(f"no style {sid!r}; there is {DEFAULT!r}")
        chosen, prefix = self._chosen(cid, visible)
        if not chosen:
            raise NoTiles("no styles here")
        chosen = sorted(chosen, key=lambda layer: self.order[layer.id])
        x0, y0, x1, y1 = union_bbox(chosen)
        drawn = [x for layer in chosen
                 for x in collection_layers(layer.collection, "oup", self.order[layer.id],
                                            language)]
        # areas under lines under points under labels, each in catalogue order
        layers = [{"id": "background", "type": "background",
                   "paint": {"background-color": "#f4f2ee"}}] + sorted(
            drawn, key=lambda x: ("fill", "line", "circle", "symbol").index(x["type"]))
        return {"version": 8, "name": "OUP " + (chosen[0].id if cid else "city"),
                "center": [(x0 + x1) / 2, (y0 + y1) / 2], "zoom": 14,
                "metadata": {"oup:bounds": [x0, y0, x1, y1]},
                "glyphs": f"{self.base}/fonts/{{fontstack}}/{{range}}.pbf",
                "sources": {"oup": {"type": "vector",
                                    "url": f"{self.base}{prefix}/tiles/WebMercatorQuad"
                                           "?f=tilejson"}},
                "layers": layers}


def endpoints(styles: Styles) -> list[Endpoint]:
    """The styles of the dataset and of each collection with vector tiles."""
    sid = Param("styleId", "a style", {"type": "string", "enum": [DEFAULT]}, "path")
    out = []
    for prefix, name, op in (("", "the dataset", "_Dataset"),
                             ("/collections/{collectionId}", "a collection", "")):
        layered = None if op else (lambda: list(styles.layers))
        out += [Endpoint(f"{prefix}/styles", f"The styles of {name}", styles.answer_listing,
                         "styles", f"getStyles{op}",
                         formats=(Format("json", "application/json"), HTML),
                         collections=layered),
                Endpoint(f"{prefix}/styles/{{styleId}}", f"A style of {name} (MapLibre style JSON)",
                         styles.answer_style, "styles", f"getStyle{op}", params=(sid,),
                         formats=(Format("mapbox", STYLE_MEDIA, ("application/json",)),),
                         collections=layered)]
    return out
