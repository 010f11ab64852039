"""A finished job's result as a temporary collection, ``job-{jobId}``: its items (OGC
API Features, paged), vector tiles (OGC API Tiles, cut as the stores cut theirs:
``oup.store.mvt``) and a style (a graduated fill, with a legend), which ``/map?collection=``
shows.

Only the result of a process that declares how a map colours it (its module's
``map_property(inputs)``, say area-statistics' first statistic) is published so. The
collection is the job's result itself, read from the jobs table on every request: it is
the caller's as the job is (anyone else, signed in or not, is answered 404, and it is
never listed), and it is gone the moment the job's results are (dismissed, or past
``OUP_JOBS_RETENTION_HOURS``): nothing else is kept to drop.
"""
from __future__ import annotations

import json
import math
from functools import cached_property

import numpy as np

from oup.errors import NotFound
from oup.http.params import check_bbox
from oup.http.routes import Call, Endpoint, Format, Param
from oup.languages import Text, current
from oup.processes import Process
from oup.processes.jobs import JobState, Jobs, iso
from oup.tiles import matrix_sets as grids

PREFIX = "job-"  # a collection id of the catalogue never starts so (oup.catalog)
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
GEOJSON = "application/geo+json"
MVT = "application/vnd.mapbox-vector-tile"
TILEJSON = "application/vnd.mapbox.tile+json"
STYLE = "application/vnd.mapbox.style+json"
MAXZOOM = 16  # the style's tiles stop here; a map draws them larger beyond (areas, not bricks)
# sequential, light to dark, colour-blind safe (viridis at five steps)
COLOURS = ["#fde725", "#5ec962", "#21918c", "#3b528b", "#440154"]


def collection_id(job_id: str) -> str:
    return f"{PREFIX}{job_id}"


class Result:
    """One published job result: its features, and what the map colours them by."""

    def __init__(self, job: JobState, process: Process, value: dict, expires: float):
        self.job, self.id, self.expires = job, collection_id(job.id), expires
        self.features = value.get("features", [])
        self.shown = process.module.map_property(job.inputs)
        named = [str(job.inputs[k]) for k in ("collection", "areas") if k in job.inputs]
        self.title = Text(f"{process.description.get('title', process.id)}: {self.shown}"
                          + (f" ({', '.join(named)})" if named else ""))

    @cached_property
    def geometries(self) -> np.ndarray:
        import shapely

        return np.array([shapely.from_geojson(json.dumps(f["geometry"])) if f.get("geometry")
                         else None for f in self.features], dtype=object)

    @cached_property
    def bbox(self) -> list[float]:
        import shapely

        x0, y0, x1, y1 = shapely.total_bounds(self.geometries)
        return [float(v) for v in (x0, y0, x1, y1)] if math.isfinite(x0) else \
            [-180.0, -90.0, 180.0, 90.0]

    def columns(self) -> dict[str, list]:
        """The properties as columns (values MVT cannot hold, such as lists, left out)."""
        names = dict.fromkeys(k for f in self.features for k in (f.get("properties") or {}))
        return {n: [_tile_value((f.get("properties") or {}).get(n)) for f in self.features]
                for n in names}


def _tile_value(v):
    return v if isinstance(v, (str, int, float, bool)) else None


def classes(values: list) -> tuple[list[float], list[str]] | None:
    """Class limits (quantiles of the values, up to five classes) and their colours;
    None when there is no number to class (every area suppressed, say)."""
    numbers = np.array([v for v in values if isinstance(v, (int, float))
                        and not isinstance(v, bool)], dtype=float)
    if not len(numbers):
        return None
    limits = np.quantile(numbers, np.linspace(0, 1, len(COLOURS) + 1)[1:-1])
    breaks = sorted({float(f"{b:.3g}") for b in limits} - {float(f"{numbers.min():.3g}")}) \
        or [float(f"{numbers.min():.3g}")]
    picked = np.linspace(0, len(COLOURS) - 1, len(breaks) + 1).round().astype(int)
    return breaks, [COLOURS[i] for i in picked]


class ResultCollections:
    """The endpoints of the temporary collections."""

    def __init__(self, processes: dict[str, Process], jobs: Jobs, base_url: str):
        self.processes, self.jobs, self.base = processes, jobs, base_url.rstrip("/")

    def published(self, job: JobState) -> bool:
        process = self.processes.get(job.process)
        return job.status == "successful" and process is not None and process.maps

    def links(self, job: JobState) -> list[dict]:
        """What a job's status and results link to: its collection and the map of it."""
        if not self.published(job):
            return []
        cid = collection_id(job.id)
        return [{"rel": "related", "type": "application/json", "href":
                 f"{self.base}/collections/{cid}", "title": "the result as a collection "
                 "(items, vector tiles, a style), kept as long as the job's results"},
                {"rel": "related", "type": "text/html", "title": "the result on the map",
                 "href": f"{self.base}/map?collection={cid}"}]

    def _result(self, call: Call) -> Result:
        job_id = call.path["jobId"]
        gone = NotFound(f"no collection {collection_id(job_id)!r}")
        if call.identity is None or not call.identity.authenticated:
            raise gone  # a job is its caller's: to anyone else it does not exist
        try:
            job, value = self.jobs.result(job_id, call.identity.who)
        except NotFound:
            raise gone from None
        if not self.published(job) or not isinstance(value, dict):
            raise gone
        return Result(job, self.processes[job.process], value,
                      job.finished + self.jobs.retention_s)

    # -- documents -----------------------------------------------------------------------
    def collection(self, call: Call):
        r = self._result(call)
        here = f"{self.base}/collections/{r.id}"
        return _json({
            "id": r.id, "title": r.title.in_(current()), "itemType": "feature",
            "description": f"The result of job {r.job.id}, kept until {iso(r.expires)} "
                           "(or until the job is dismissed); seen only by who ran it.",
            "extent": {"spatial": {"bbox": [r.bbox], "crs": CRS84}},
            "crs": [CRS84], "storageCrs": CRS84, "expires": iso(r.expires),
            "links": [
                {"rel": "self", "type": "application/json", "href": here},
                {"rel": "items", "type": GEOJSON, "href": f"{here}/items"},
                {"rel": "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector",
                 "type": "application/json", "href": f"{here}/tiles"},
                {"rel": "http://www.opengis.net/def/rel/ogc/1.0/styles",
                 "type": "application/json", "href": f"{here}/styles"},
                {"rel": "related", "type": "application/json", "title": "the job",
                 "href": f"{self.base}/jobs/{r.job.id}"},
                {"rel": "related", "type": "text/html", "title": "the map",
                 "href": f"{self.base}/map?collection={r.id}"}]})

    def items(self, call: Call):
        r = self._result(call)
        limit, offset = call.query.get("limit", 10), call.query.get("offset", 0)
        features = r.features
        if "bbox" in call.query:
            import shapely

            box = check_bbox(call.query["bbox"], None)
            half = len(box) // 2
            area = shapely.box(box[0], box[1], box[half], box[half + 1])
            hit = shapely.intersects(r.geometries, area)
            features = [f for f, h in zip(features, hit) if h]
        page = features[offset:offset + limit]
        here = f"{self.base}/collections/{r.id}/items"
        extra = f"&bbox={call.query['bbox']}" if "bbox" in call.query else ""
        links = [{"rel": "self", "type": GEOJSON,
                  "href": f"{here}?limit={limit}&offset={offset}{extra}"},
                 {"rel": "collection", "type": "application/json",
                  "href": f"{self.base}/collections/{r.id}"}]
        if offset + limit < len(features):
            links.append({"rel": "next", "type": GEOJSON,
                          "href": f"{here}?limit={limit}&offset={offset + limit}{extra}"})
        if offset > 0:
            links.append({"rel": "prev", "type": GEOJSON, "href":
                          f"{here}?limit={limit}&offset={max(0, offset - limit)}{extra}"})
        return _json({"type": "FeatureCollection", "features": page,
                      "numberMatched": len(features), "numberReturned": len(page),
                      "links": links}, GEOJSON)

    def item(self, call: Call):
        r = self._result(call)
        fid = call.path["featureId"]
        found = next((f for f in r.features if str(f.get("id")) == fid), None)
        if found is None:
            raise NotFound(f"no feature {fid!r} in {r.id}")
        return _json({**found, "links": [
            {"rel": "self", "type": GEOJSON,
             "href": f"{self.base}/collections/{r.id}/items/{fid}"},
            {"rel": "collection", "type": "application/json",
             "href": f"{self.base}/collections/{r.id}"}]}, GEOJSON)

    def tilesets(self, call: Call):
        r = self._result(call)
        here = f"{self.base}/collections/{r.id}/tiles"
        return _json({"links": [{"rel": "self", "type": "application/json", "href": here}],
                      "tilesets": [self._tileset(r, tms) for tms in grids.tile_matrix_sets()]})

    def _tileset(self, r: Result, tms_id: str) -> dict:
        here = f"{self.base}/collections/{r.id}/tiles/{tms_id}"
        return {"title": f"{r.title} ({tms_id})", "dataType": "vector", "tileMatrixSetId":
                tms_id, "crs": grids.crs_uri(grids.get(tms_id)), "links": [
                    {"rel": "self", "type": "application/json", "href": here},
                    {"rel": "item", "type": MVT, "templated": True,
                     "href": f"{here}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"},
                    {"rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
                     "type": "application/json",
                     "href": f"{self.base}/tileMatrixSets/{tms_id}"}]}

    def tileset(self, call: Call):
        r = self._result(call)
        tms = call.path["tileMatrixSetId"]
        if call.format.key != "tilejson":
            return _json(self._tileset(r, tms))
        if tms != "WebMercatorQuad":
            raise NotFound("TileJSON describes WebMercatorQuad tiles only")
        return _json({"tilejson": "3.0.0", "name": str(r.title), "scheme": "xyz",
                      "tiles": [self._template(r)], "minzoom": 0, "maxzoom": MAXZOOM,
                      "bounds": r.bbox, "vector_layers": [
                          {"id": r.id, "fields": {n: "" for n in r.columns()}}]}, TILEJSON)

    def _template(self, r: Result) -> str:
        return f"{self.base}/collections/{r.id}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}"

    def tile(self, call: Call):
        from flask import Response

        from oup.store.mvt import TileQuery, cut_geometries

        r = self._result(call)
        p = call.path
        tile = grids.Tile.at(p["tileMatrixSetId"], p["tileMatrix"], p["tileRow"],
                             p["tileCol"])
        columns = r.columns()
        data = cut_geometries(TileQuery(r.id, tuple(columns), tile.bounds, tile.srid,
                                        tile.crs, tile.crs84_envelope), r.geometries, columns)
        return Response(data, status=200 if data else 204, mimetype=MVT)

    def styles(self, call: Call):
        r = self._result(call)
        here = f"{self.base}/collections/{r.id}/styles"
        return _json({"default": "default", "styles": [{
            "id": "default", "title": f"{r.title}: {r.shown} in classes", "links": [
                {"rel": "stylesheet", "type": STYLE, "href": f"{here}/default"}]}],
            "links": [{"rel": "self", "type": "application/json", "href": here}]})

    def style(self, call: Call):
        """A graduated fill on the mapped property (quantile classes), in the shape of
        the catalogue's styles (``oup.tiles.styles``), so /map adds it as it is."""
        from oup.catalog import Choropleth, Collection, MapStyle
        from oup.tiles.styles import collection_layers

        r = self._result(call)
        classed = classes(r.columns().get(r.shown, []))
        drawn = MapStyle(opacity=0.7, line="#333333", fill=None if classed else "#cccccc",
                         choropleth=Choropleth(property=r.shown, breaks=classed[0],
                                               colours=classed[1]) if classed else None)
        # the catalogue's model, made for the job (no folder, no sources: not validated)
        coll = Collection.model_construct(id=r.id, title=r.title, style=drawn)
        layers = collection_layers(coll, r.id, 0, current())
        x0, y0, x1, y1 = r.bbox
        return _json({
            "version": 8, "name": f"OUP {r.id}", "center": [(x0 + x1) / 2, (y0 + y1) / 2],
            "zoom": 13, "metadata": {"oup:bounds": [x0, y0, x1, y1]},
            "glyphs": f"{self.base}/fonts/{{fontstack}}/{{range}}.pbf",
            "sources": {r.id: {"type": "vector", "tiles": [self._template(r)],
                               "minzoom": 0, "maxzoom": MAXZOOM, "bounds": r.bbox}},
            "layers": [{"id": "background", "type": "background",
                        "paint": {"background-color": "#f4f2ee"}}] + sorted(
                layers, key=lambda x: ("fill", "line", "circle", "symbol").index(x["type"]))},
            STYLE)

    def endpoints(self) -> list[Endpoint]:
        """Declared before the catalogue's collection endpoints, which would take these
        paths (``/collections/{collectionId}/tiles/...``)."""
        jid = Param("jobId", "the job whose result it is", {
            "type": "string", "pattern": "^[0-9a-f]{32}$", "description": "a job id"}, "path")
        tms = Param("tileMatrixSetId", "a tile matrix set (see /tileMatrixSets)",
                    {"type": "string", "enum": list(grids.tile_matrix_sets())}, "path")
        address = (tms, *(Param(n, t, {"type": "integer", "minimum": 0}, "path") for n, t in
                          (("tileMatrix", "zoom level"), ("tileRow", "row, from the top"),
                           ("tileCol", "column, from the left"))))
        page = (Param("limit", "features per page (default 10)",
                      {"type": "integer", "minimum": 1, "maximum": 10000}),
                Param("offset", "features to skip", {"type": "integer", "minimum": 0}),
                Param("bbox", "minx,miny,maxx,maxy (CRS84): the features that touch it"))
        doc = (Format("json", "application/json"),)
        geo = (Format("json", GEOJSON, ("application/json",)),)
        at = "/collections/" + PREFIX + "{jobId}"
        who = "the caller's own job only; anyone else: 404"
        return [
            Endpoint(at, "A job's result as a temporary collection", self.collection,
                     "processes", "getResultCollection", params=(jid,), formats=doc,
                     description=who),
            Endpoint(f"{at}/items", "The features of a job's result", self.items, "processes",
                     "getResultItems", params=(jid, *page), formats=geo, description=who,
                     responses={"400": {"$ref": "#/components/responses/400"}}),
            Endpoint(f"{at}/items/{{featureId}}", "A feature of a job's result", self.item,
                     "processes", "getResultItem",
                     params=(jid, Param("featureId", "a feature", where="path")), formats=geo),
            Endpoint(f"{at}/tiles", "The vector tilesets of a job's result", self.tilesets,
                     "processes", "getResultTilesets", params=(jid,), formats=doc),
            Endpoint(f"{at}/tiles/{{tileMatrixSetId}}", "A vector tileset of a job's result "
                     "(TileJSON 3 with f=tilejson)", self.tileset, "processes",
                     "getResultTileset", params=(jid, tms),
                     formats=(*doc, Format("tilejson", TILEJSON))),
            Endpoint(f"{at}/tiles/{{tileMatrixSetId}}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}",
                     "A vector tile of a job's result", self.tile, "processes",
                     "getResultTile", params=(jid, *address), formats=(Format("mvt", MVT),),
                     responses={"204": {"description": "an empty tile"},
                                "400": {"$ref": "#/components/responses/400"}}),
            Endpoint(f"{at}/styles", "The styles of a job's result", self.styles, "processes",
                     "getResultStyles", params=(jid,), formats=doc),
            Endpoint(f"{at}/styles/{{styleId}}", "A style of a job's result (MapLibre style "
                     "JSON): its areas in classes of the mapped statistic", self.style,
                     "processes", "getResultStyle",
                     params=(jid, Param("styleId", "a style", {"type": "string",
                                                              "enum": ["default"]}, "path")),
                     formats=(Format("mapbox", STYLE, ("application/json",)),)),
        ]


def _json(doc: dict, media: str = "application/json"):
    from flask import Response

    return Response(json.dumps(doc), mimetype=media)
