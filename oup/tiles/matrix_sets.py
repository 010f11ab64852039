"""The tile matrix sets vector tiles are cut in (OGC Two Dimensional Tile Matrix Set 2.0).

WebMercatorQuad is the web's grid (MapLibre, OpenLayers, Leaflet, QGIS XYZ).
WorldCRS84Quad is the grid in longitude and latitude (GDAL's OGCAPI driver prefers it).
NetherlandsRDNewQuad is the Dutch standard grid in RD New (EPSG:28992) as PDOK and the
Dutch API strategy publish it: origin (-285401.92, 903401.92), 3440.64 m a pixel at
level 0, halving per level. morecantile knows the first and does the grid arithmetic for
both; the second is declared here.

``Tile`` is a checked tile address; ``catalog_zoom_in`` carries a collection's zoom range,
declared in WebMercatorQuad levels, to another grid by scale.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, cached_property

import morecantile
from morecantile import TileMatrixSet

from oup.errors import InvalidQuery, NotFound
from oup.store.geometry import bbox_to_crs84

_RD_ORIGIN = (-285401.92, 903401.92)
_RD_CELL0 = 3440.64  # metres a pixel at level 0
_RD_LEVELS = 17  # 0..16: 5 cm a pixel at the deepest, as PDOK's grid
#: a display pixel: MVT tiles are 256 pixels wide whatever their extent
TILE_PIXELS = 256


class UnknownTileMatrixSet(NotFound):
    """No tile matrix set of that id is offered here."""


class BadTileAddress(InvalidQuery):
    """A tile matrix, row or column that is not in the tile matrix set."""


def _rd_new_quad() -> TileMatrixSet:
    size = _RD_CELL0 * TILE_PIXELS
    x0, y0 = _RD_ORIGIN
    return TileMatrixSet.model_validate({
        "id": "NetherlandsRDNewQuad",
        "title": "Amersfoort / RD New (EPSG:28992), the Dutch standard tile grid",
        "crs": "http://www.opengis.net/def/crs/EPSG/0/28992",
        "orderedAxes": ["X", "Y"],
        "boundingBox": {"lowerLeft": [x0, y0 - size], "upperRight": [x0 + size, y0],
                        "crs": "http://www.opengis.net/def/crs/EPSG/0/28992"},
        "tileMatrices": [{
            "id": str(z), "scaleDenominator": 12288000.0 / 2**z, "cellSize": _RD_CELL0 / 2**z,
            "cornerOfOrigin": "topLeft", "pointOfOrigin": [x0, y0],
            "tileWidth": TILE_PIXELS, "tileHeight": TILE_PIXELS,
            "matrixWidth": 2**z, "matrixHeight": 2**z} for z in range(_RD_LEVELS)],
    })


@cache
def tile_matrix_sets() -> dict[str, TileMatrixSet]:
    """The tile matrix sets offered, by id."""
    return {"WebMercatorQuad": morecantile.tms.get("WebMercatorQuad"),
            "NetherlandsRDNewQuad": _rd_new_quad(),
            # registered by OGC, but morecantile leaves its URI out: GDAL picks it by that
            "WorldCRS84Quad": morecantile.tms.get("WorldCRS84Quad").model_copy(update={
                "uri": "http://www.opengis.net/def/tilematrixset/OGC/1.0/WorldCRS84Quad"})}


def get(tms_id: str) -> TileMatrixSet:
    try:
        return tile_matrix_sets()[tms_id]
    except KeyError:
        raise UnknownTileMatrixSet(
            f"no tile matrix set {tms_id!r}; offered: "
            f"{', '.join(tile_matrix_sets())}") from None


def document(tms: TileMatrixSet) -> dict:
    """The tile matrix set as OGC TMS 2.0 JSON, with the members of the 1.0 encoding
    (17-083r2) beside them: GDAL before 3.7, as Debian 12 ships it, reads only those.
    Each member the one encoding has, the other ignores."""
    doc = tms.model_dump(mode="json", exclude_none=True)
    doc.update(type="TileMatrixSetType", identifier=tms.id, supportedCRS=doc["crs"])
    if "boundingBox" in doc:
        box = doc["boundingBox"]
        box.update(type="BoundingBoxType", lowerCorner=box["lowerLeft"],
                   upperCorner=box["upperRight"])
    doc["tileMatrix"] = [{"type": "TileMatrixType", "identifier": m["id"],
                          "scaleDenominator": m["scaleDenominator"],
                          "topLeftCorner": m["pointOfOrigin"],
                          **{k: m[k] for k in ("tileWidth", "tileHeight", "matrixWidth",
                                               "matrixHeight")}}
                         for m in doc["tileMatrices"]]
    return doc


_CRS_URIS: dict[str, str] = {}  # by tile matrix set id: a dump of the whole set per tile
# request (every tile matrix, to read one string) was a tenth of a cached tile's CPU


def crs_uri(tms: TileMatrixSet) -> str:
    uri = _CRS_URIS.get(tms.id)
    if uri is None:
        uri = _CRS_URIS[tms.id] = tms.model_dump(mode="json")["crs"]
    return uri


def crs_code(tms: TileMatrixSet) -> str:
    """The grid's CRS as PROJ knows it: ``EPSG:n``, or ``OGC:CRS84`` (longitude first)."""
    uri = crs_uri(tms).rstrip("/")
    return "OGC:CRS84" if uri.endswith("/CRS84") else f"EPSG:{uri.rsplit('/', 1)[-1]}"


def srid(tms: TileMatrixSet) -> int:
    """The grid's CRS as an SRID (CRS84 is SRID 4326 in the stores, longitude first)."""
    code = crs_code(tms)
    return 4326 if code == "OGC:CRS84" else int(code.split(":")[1])


@dataclass(frozen=True)
class Tile:
    """A tile of a tile matrix set, checked to exist in it."""

    tms_id: str
    z: int
    row: int
    col: int

    @classmethod
    def parse(cls, tms_id: str, z: str, row: str, col: str) -> "Tile":
        """A tile from its address as text (whole numbers >= 0)."""
        numbers = []
        for name, text in (("tileMatrix", z), ("tileRow", row), ("tileCol", col)):
            if not text.isdigit() or len(text) > 9:
                raise BadTileAddress(f"{name} must be a whole number >= 0, got {text!r}", name)
            numbers.append(int(text))
        return cls.at(tms_id, *numbers)

    @classmethod
    def at(cls, tms_id: str, level: int, row: int, col: int) -> "Tile":
        """The tile at this address, if the tile matrix set has it."""
        tms = get(tms_id)
        if not tms.minzoom <= level <= tms.maxzoom:
            raise BadTileAddress(f"{tms_id} has tile matrices {tms.minzoom} to {tms.maxzoom}",
                                 "tileMatrix")
        matrix = tms.matrix(level)
        for name, value, limit in (("tileRow", row, matrix.matrixHeight),
                                   ("tileCol", col, matrix.matrixWidth)):
            if value >= limit:
                raise BadTileAddress(f"{name} must be below {limit} in tile matrix {level}",
                                     name)
        return cls(tms_id, level, row, col)

    @property
    def tms(self) -> TileMatrixSet:
        return get(self.tms_id)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) in the tile matrix set's CRS."""
        b = self.tms.xy_bounds(morecantile.Tile(self.col, self.row, self.z))
        return b.left, b.bottom, b.right, b.top

    @property
    def srid(self) -> int:
        return srid(self.tms)

    @property
    def crs(self) -> str:
        return crs_code(self.tms)

    @property
    def pixel(self) -> float:
        """The size of a display pixel of this tile, in CRS units."""
        minx, _, maxx, _ = self.bounds
        return (maxx - minx) / TILE_PIXELS

    @cached_property
    def crs84_envelope(self) -> tuple[float, float, float, float]:
        """A CRS84 box holding the whole tile (its outline transformed, densified), for
        the stores' spatial indexes."""
        x0, y0, x1, y1 = bbox_to_crs84(list(self.bounds), self.crs)
        margin = 1e-7  # about a centimetre: rounding must not cut a feature on the edge
        return x0 - margin, y0 - margin, x1 + margin, y1 + margin


def zoom_in(tms: TileMatrixSet, web_mercator_zoom: int, latitude: float) -> int:
    """The level of ``tms`` whose pixel is nearest in size to a WebMercatorQuad level's
    pixel on the ground at ``latitude``: zoom ranges are declared once, in web levels."""
    if tms.id == "WebMercatorQuad":
        return web_mercator_zoom
    web = tile_matrix_sets()["WebMercatorQuad"]
    ground = web.matrix(0).cellSize * math.cos(math.radians(latitude)) / 2**web_mercator_zoom
    level = round(math.log2(_ground_cell0(tms, latitude) / ground))
    return min(max(level, tms.minzoom), tms.maxzoom)


def _ground_cell0(tms: TileMatrixSet, latitude: float) -> float:
    """Metres on the ground (east-west) of a level-0 pixel of ``tms`` at ``latitude``."""
    if crs_code(tms) == "OGC:CRS84":
        return tms.matrix(0).cellSize * 6378137 * math.pi / 180 * math.cos(math.radians(latitude))
    return tms.matrix(0).cellSize


def limits(tms: TileMatrixSet, bbox84: list[float], minzoom: int, maxzoom: int) -> list[dict]:
    """tileMatrixSetLimits: the tiles covering ``bbox84`` at each level in the range."""
    x0, y0, x1, y1 = bbox84
    out = []
    for z in range(minzoom, maxzoom + 1):
        ul = tms.tile(x0, y1, z)
        lr = tms.tile(x1, y0, z)
        out.append({"tileMatrix": str(z), "minTileRow": ul.y, "maxTileRow": lr.y,
                    "minTileCol": ul.x, "maxTileCol": lr.x})
    return out
