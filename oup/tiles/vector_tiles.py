"""OGC API Tiles (Part 1), vector tiles: the collections as Mapbox Vector Tiles.

- ``/tileMatrixSets``, ``/tileMatrixSets/{id}``: the grids (``tile_matrix_sets``);
- ``/collections/{id}/tiles``, ``/collections/{id}/tiles/{tms}`` (``?f=tilejson`` for
  TileJSON 3), ``/collections/{id}/tiles/{tms}/{z}/{row}/{col}``;
- ``/tiles/...``: the same for the dataset, every visible collection a layer.

Tiles are cut by the store (``oup.store.mvt``). The catalogue says, per collection, the
zoom range and the attributes (``tiles:`` in collection.yml). Collections computed per
request from the live observations (observations, time slices) have no tiles.
Access holds as everywhere: the app answers 404 for a collection the caller may not see
before this module is asked, and the dataset's tiles hold only what the caller may see.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from oup.errors import NotFound
from oup.http.doc_pages import HTML
from oup.http.routes import Call, Endpoint, Format, Param
from oup.languages import current
from oup.tiles import matrix_sets as grids
from oup.tiles import pages
from oup.catalog import COLLECTION_FILE, Catalog, CatalogError, Collection
from oup.store import FeatureStore, StoreError
from oup.store.mvt import MAX_TILE_BYTES, TileQuery, import_stamp, tile_layer
from oup.tiles.cache import TileCache

MVT = "application/vnd.mapbox-vector-tile"
TILEJSON = "application/vnd.mapbox.tile+json"
TILESETS_REL = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
SCHEME_REL = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
SCHEMES_REL = "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes"
STYLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/styles"
CONFORMANCE = [f"http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/{c}" for c in (
    "core", "tileset", "tilesets-list", "geodata-tilesets", "dataset-tilesets", "mvt",
    "oas30")] + ["http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset"]

_JSON_TYPES = {"number": "number", "integer": "integer", "boolean": "boolean",
               "string": "string", "date-time": "string"}


class NoTiles(NotFound):
    """What was asked for has no tiles here (404)."""


@dataclass(frozen=True)
class Layer:
    """A collection as a layer of vector tiles."""

    collection: Collection
    fields: dict[str, str]  # every field and its type
    bbox: list[float]  # CRS84

    @property
    def id(self) -> str:
        return self.collection.id

    @property
    def properties(self) -> tuple[str, ...]:
        chosen = self.collection.tiles.properties
        return tuple(self.fields) if chosen is None else tuple(chosen)

    def zooms(self, tms) -> tuple[int, int]:
        lat = (self.bbox[1] + self.bbox[3]) / 2
        t = self.collection.tiles
        return grids.zoom_in(tms, t.minzoom, lat), grids.zoom_in(tms, t.maxzoom, lat)


def layers(catalog: Catalog, store: FeatureStore) -> dict[str, Layer]:
    """The collections published as vector tiles: every imported one, by id. A tiles
    declaration naming an attribute the collection has not fails here, at start-up."""
    out = {}
    for coll in catalog:
        if coll.derived_from:  # live, computed per request: no table to tile
            continue
        try:
            fields = {f.name: f.type for f in store.fields(coll.id)}
            bbox = coll.extent.bbox or store.extent(coll.id)["bbox"]
        except StoreError:
            continue  # declared but not imported yet: not published
        for name in coll.tiles.properties or ():
            if name not in fields:
                raise CatalogError(coll.folder / COLLECTION_FILE, "tiles.properties",
                                   f"{name!r} is not an attribute of {coll.id!r}; it has "
                                   f"{', '.join(fields)}")
        if bbox:
            out[coll.id] = Layer(coll, fields, list(bbox))
    return out


class VectorTiles:
    """The tiles endpoints over the published layers."""

    def __init__(self, catalog: Catalog, store: FeatureStore, base_url: str,
                 cache: TileCache | None = None):
        self.store, self.base, self.cache = store, base_url.rstrip("/"), cache
        self.layers = layers(catalog, store)
        if cache is not None:
            cache.keep_only({cid for cid, layer in self.layers.items()
                             if not layer.collection.stream})

    # -- the endpoints' handlers (``endpoints``) ------------------------------------------
    def _chosen(self, call: Call) -> tuple[list[Layer], str]:
        """The layers a request is about, and its path prefix."""
        cid = call.collection
        if cid is None:  # the dataset: every layer the caller may see
            return [v for k, v in self.layers.items() if k in call.visible], ""
        if cid not in self.layers:
            raise NoTiles(f"collection {cid!r} has no vector tiles")
        return [self.layers[cid]], f"/collections/{cid}"

    def answer_tms(self, call: Call):
        tms = call.path.get("tileMatrixSetId")
        if tms:
            return json_response(self.tile_matrix_set(tms))
        if call.format.key == "html":
            return pages.tile_matrix_sets(self.tile_matrix_sets(), self.base)
        return json_response(self.tile_matrix_sets())

    def answer_tilesets(self, call: Call):
        chosen, prefix = self._chosen(call)
        doc = self.tilesets(prefix, chosen)
        if call.format.key == "html":
            return pages.tilesets(doc, call.collection, _name(call, chosen))
        return json_response(doc)

    def answer_tileset(self, call: Call):
        chosen, prefix = self._chosen(call)
        if call.format.key == "tilejson":
            return json_response(self.tilejson(prefix, call.path["tileMatrixSetId"], chosen),
                                 TILEJSON)
        doc = self.tileset(prefix, call.path["tileMatrixSetId"], chosen)
        if call.format.key == "html":
            return pages.tileset(doc, call.collection, _name(call, chosen), self.base)
        return json_response(doc)

    def answer_tile(self, call: Call):
        from flask import Response

        chosen, _ = self._chosen(call)
        p = call.path
        tile = grids.Tile.at(p["tileMatrixSetId"], p["tileMatrix"], p["tileRow"], p["tileCol"])
        data = self.tile(tile, chosen, single=call.collection is not None)
        if len(data) > MAX_TILE_BYTES:
            import logging

            logging.getLogger(__name__).warning("tile %s is %d bytes", tile, len(data))
        tag = etag(data)
        headers = {"ETag": f'"{tag}"', "Cache-Control": "public, max-age=300"}
        if call.request is not None and call.request.if_none_match.contains(tag):
            return Response(status=304, headers=headers)
        if not data:  # OGC API Tiles: an empty tile may be answered 204
            return Response(status=204, headers=headers, mimetype=MVT)
        return Response(data, headers=headers, mimetype=MVT)

    # -- documents ---------------------------------------------------------------------
    def tile_matrix_sets(self) -> dict:
        return {"tileMatrixSets": [
            {"id": tid, "title": t.title, **({"uri": t.uri} if t.uri else {}),
             "links": [{"rel": "self", "type": "application/json", "title": t.title,
                        "href": f"{self.base}/tileMatrixSets/{tid}"}]}
            for tid, t in grids.tile_matrix_sets().items()]}

    def tile_matrix_set(self, tms_id: str) -> dict:
        return grids.document(grids.get(tms_id))

    def tilesets(self, prefix: str, chosen: list[Layer]) -> dict:
        if not chosen:
            raise NoTiles("no vector tiles here")
        return {"links": [{"rel": "self", "type": "application/json",
                           "href": f"{self.base}{prefix}/tiles"}],
                "tilesets": [self._tileset_entry(prefix, tid, chosen)
                             for tid in grids.tile_matrix_sets()]}

    def _tileset_entry(self, prefix: str, tms_id: str, chosen: list[Layer]) -> dict:
        tms = grids.get(tms_id)
        out = {"title": f"{self._title(chosen)} ({tms_id})", "dataType": "vector",
               "crs": grids.crs_uri(tms), "tileMatrixSetId": tms_id,
               "links": [{"rel": "self", "type": "application/json",
                          "href": f"{self.base}{prefix}/tiles/{tms_id}"},
                         {"rel": SCHEME_REL, "type": "application/json",
                          "href": f"{self.base}/tileMatrixSets/{tms_id}"}]}
        if tms.uri:
            out["tileMatrixSetURI"] = tms.uri
        return out

    @staticmethod
    def _title(chosen: list[Layer]) -> str:
        return chosen[0].collection.title if len(chosen) == 1 else "Every collection"

    def tileset(self, prefix: str, tms_id: str, chosen: list[Layer]) -> dict:
        if not chosen:
            raise NoTiles("no vector tiles here")
        tms = grids.get(tms_id)
        entry = self._tileset_entry(prefix, tms_id, chosen)
        template = f"{self.base}{prefix}/tiles/{tms_id}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"
        entry["links"] += [{"rel": "item", "type": MVT, "templated": True, "href": template,
                            "title": "a tile (204 where it would be empty)"}]
        if tms_id == "WebMercatorQuad":
            entry["links"].append({"rel": "alternate", "type": "application/vnd.mapbox.tile+json",
                                   "title": "TileJSON 3",
                                   "href": f"{self.base}{prefix}/tiles/{tms_id}?f=tilejson"})
        lo = min(layer.zooms(tms)[0] for layer in chosen)
        hi = max(layer.zooms(tms)[1] for layer in chosen)
        entry["tileMatrixSetLimits"] = grids.limits(tms, union_bbox(chosen), lo, hi)
        entry["layers"] = [{
            "id": layer.id, "title": layer.collection.title, "dataType": "vector",
            "minTileMatrix": str(layer.zooms(tms)[0]), "maxTileMatrix": str(layer.zooms(tms)[1]),
            "boundingBox": {"lowerLeft": layer.bbox[:2], "upperRight": layer.bbox[2:],
                            "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"},
            "propertiesSchema": {"type": "object", "properties": {
                n: {"type": _JSON_TYPES[layer.fields[n]]} for n in layer.properties}},
            "links": [{"rel": "collection", "type": "application/json",
                       "href": f"{self.base}/collections/{layer.id}"}],
        } for layer in chosen]
        return entry

    def tilejson(self, prefix: str, tms_id: str, chosen: list[Layer]) -> dict:
        if tms_id != "WebMercatorQuad":
            raise NoTiles("TileJSON describes WebMercatorQuad tiles only")
        if not chosen:
            raise NoTiles("no vector tiles here")
        tms = grids.get(tms_id)
        x0, y0, x1, y1 = union_bbox(chosen)
        zooms = [layer.zooms(tms) for layer in chosen]
        lo, hi = min(z[0] for z in zooms), max(z[1] for z in zooms)
        return {"tilejson": "3.0.0", "name": self._title(chosen), "scheme": "xyz",
                "tiles": [f"{self.base}{prefix}/tiles/{tms_id}/{{z}}/{{y}}/{{x}}"],
                "minzoom": lo, "maxzoom": hi, "bounds": [x0, y0, x1, y1],
                "center": [(x0 + x1) / 2, (y0 + y1) / 2, max(lo, min(hi, 14))],
                "vector_layers": [{"id": layer.id, "description": layer.collection.title,
                                   "minzoom": z[0], "maxzoom": z[1],
                                   "fields": {n: layer.fields[n] for n in layer.properties}}
                                  for layer, z in zip(chosen, zooms)]}

    # -- tiles -----------------------------------------------------------------------------
    def tile(self, tile: grids.Tile, chosen: list[Layer], single: bool) -> bytes:
        """The MVT bytes of ``tile`` with a layer per chosen collection (layers are
        protobuf messages of one repeated field: concatenated, they are one tile)."""
        tms = tile.tms
        inside = [layer for layer in chosen
                  if layer.zooms(tms)[0] <= tile.z <= layer.zooms(tms)[1]]
        if single and not inside:
            lo, hi = chosen[0].zooms(tms)
            raise NoTiles(f"{chosen[0].id} has tiles in tile matrices {lo} to {hi} of {tms.id}")
        parts = []
        for layer in inside:
            def cut(layer=layer) -> bytes:  # (a cached tile needs no query, nor its envelope)
                return tile_layer(self.store, TileQuery(
                    layer.id, layer.properties, tile.bounds, tile.srid, tile.crs,
                    tile.crs84_envelope))

            if self.cache is None or layer.collection.stream:  # live values: never kept
                parts.append(cut())
                continue
            parts.append(self.cache.layer(layer.id, import_stamp(self.store, layer.id),
                                          layer.properties, tile.tms_id, tile.z, tile.row,
                                          tile.col, cut))
        return b"".join(parts)


def _name(call: Call, chosen: list[Layer]) -> str | None:
    """The title a page names: the collection's, in the request's language (None: the
    dataset's tiles, every collection)."""
    return chosen[0].collection.title.in_(current()) if call.collection and chosen else None


def union_bbox(chosen: list[Layer]) -> list[float]:
    boxes = [layer.bbox for layer in chosen]
    return [min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes)]


def etag(data: bytes) -> str:
    # SHA-256 (96 bits of it): the fastest strong hash here, with the CPU's SHA
    # instructions (a 70 KB tile: 0.05 ms; BLAKE2b 0.10 ms, a tenth of a cached tile)
    return hashlib.sha256(data).hexdigest()[:24]


def add_links(doc: dict, base_url: str, published: set[str]) -> dict:
    """Link each collection with tiles to its tilesets and to its styles, which draw
    those tiles (collection and collections documents)."""
    for coll in doc.get("collections", [doc]):
        if coll.get("id") in published:
            here = f"{base_url}/collections/{coll['id']}"
            coll.setdefault("links", []).extend([
                {"rel": TILESETS_REL, "type": "application/json", "title": "Vector tiles",
                 "href": f"{here}/tiles"},
                {"rel": STYLES_REL, "type": "application/json", "title": "Map styles",
                 "href": f"{here}/styles"}])
    return doc


def landing_links(doc: dict, base_url: str) -> dict:
    """The landing page's links to the tiles, the grids, the styles, the map and the viewer."""
    doc.setdefault("links", []).extend([
        {"rel": TILESETS_REL, "type": "application/json",
         "title": "Vector tiles of every collection", "href": f"{base_url}/tiles"},
        {"rel": SCHEMES_REL, "type": "application/json", "title": "Tile matrix sets",
         "href": f"{base_url}/tileMatrixSets"},
        {"rel": STYLES_REL, "type": "application/json", "title": "Map styles",
         "href": f"{base_url}/styles"},
        {"rel": "related", "type": "text/html", "title": "The map", "href": f"{base_url}/map"},
        {"rel": "related", "type": "text/html", "title": "The 3D viewer",
         "href": f"{base_url}/viewer"}])
    return doc


def endpoints(tiles: VectorTiles) -> list[Endpoint]:
    """The tiles and tile matrix sets endpoints (dataset and per collection)."""
    tms = Param("tileMatrixSetId", "a tile matrix set (see /tileMatrixSets)",
                {"type": "string", "enum": list(grids.tile_matrix_sets())}, "path")
    address = (tms, *(Param(name, text, {"type": "integer", "minimum": 0}, "path")
                      for name, text in (("tileMatrix", "zoom level"),
                                         ("tileRow", "row, from the top"),
                                         ("tileCol", "column, from the left"))))
    json_doc, tile_json = Format("json", "application/json"), Format("tilejson", TILEJSON)
    layered = lambda: list(tiles.layers)  # noqa: E731
    out = [
        Endpoint("/tileMatrixSets", "The tile matrix sets", tiles.answer_tms, "tiles",
                 "getTileMatrixSets", formats=(json_doc, HTML)),
        Endpoint("/tileMatrixSets/{tileMatrixSetId}", "A tile matrix set (OGC TMS 2.0 JSON)",
                 tiles.answer_tms, "tiles", "getTileMatrixSet", params=(tms,),
                 formats=(json_doc,)),
    ]
    for prefix, name, op in (("", "the dataset", "Dataset"),
                             ("/collections/{collectionId}", "a collection", "")):
        suffix = f"_{op}" if op else ""
        out += [
            Endpoint(f"{prefix}/tiles", f"Vector tilesets of {name}", tiles.answer_tilesets,
                     "tiles", f"getTilesets{suffix}", formats=(json_doc, HTML),
                     collections=layered if op == "" else None),
            Endpoint(f"{prefix}/tiles/{{tileMatrixSetId}}",
                     f"A vector tileset of {name} (TileJSON 3 with f=tilejson)",
                     tiles.answer_tileset, "tiles", f"getTileset{suffix}", params=(tms,),
                     formats=(json_doc, tile_json, HTML),
                     collections=layered if op == "" else None),
            Endpoint(f"{prefix}/tiles/{{tileMatrixSetId}}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}",
                     f"A vector tile of {name}", tiles.answer_tile, "tiles", f"getTile{suffix}",
                     params=(*address, Param("v", "any value: a client's own cache buster "
                                             "(ignored); /map sends the last change event's "
                                             "id")), formats=(Format("mvt", MVT),),
                     collections=layered if op == "" else None,
                     responses={"204": {"description": "an empty tile"},
                                "304": {"description": "not modified"}}),
        ]
    return out


def json_response(doc: dict, media: str = "application/json"):
    import json

    from flask import Response

    return Response(json.dumps(doc), mimetype=media,
                    headers={"Cache-Control": "public, max-age=300"})
