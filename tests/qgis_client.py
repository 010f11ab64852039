"""What a QGIS user does with OUP's vector tiles, done by QGIS itself (PyQGIS, headless).

Run by Debian's ``python3`` (``python3-qgis``), not by the project's interpreter:

    python3 tests/qgis_client.py <server url> <collection> <attribute> <value> <folder>

It adds the collection as a vector tile layer from the XYZ template in the README (Layer >
Add Layer > Add Vector Tile Layer, XYZ) and draws the collection's extent twice, in web
mercator, 800 x 600 pixels:
- ``all.png`` in the layer's default style;
- ``one.png`` with a style whose filter draws only the features whose ``attribute`` equals
  ``value``, in red: QGIS must have read the attributes from the tiles to draw it.
It prints one JSON object: whether the layer is valid, its zoom range, the map extent
drawn (EPSG:3857), and the rendering errors. The test reads the pictures.
"""
import json
import os
import sys
import urllib.request

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (QgsApplication, QgsCoordinateReferenceSystem,  # noqa: E402
                       QgsCoordinateTransform, QgsCoordinateTransformContext,
                       QgsDataSourceUri, QgsFillSymbol, QgsMapRendererSequentialJob,
                       QgsMapSettings, QgsProject, QgsRectangle, QgsVectorTileBasicRenderer,
                       QgsVectorTileBasicRendererStyle, QgsVectorTileLayer, QgsWkbTypes)
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtGui import QColor  # noqa: E402

WHITE = QColor(255, 255, 255)


def draw(layer, extent, path: str) -> list[str]:
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    settings.setExtent(extent)
    settings.setOutputSize(QSize(800, 600))
    settings.setBackgroundColor(WHITE)
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    job.renderedImage().save(path)
    return [e.message for e in job.errors()]


def main(base: str, collection: str, attribute: str, value: str, folder: str) -> dict:
    uri = QgsDataSourceUri()
    uri.setParam("type", "xyz")
    uri.setParam("url", f"{base}/collections/{collection}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}")
    uri.setParam("zmin", "10")
    uri.setParam("zmax", "22")
    layer = QgsVectorTileLayer(bytes(uri.encodedUri()).decode(), collection)
    out = {"valid": layer.isValid(), "zmin": layer.sourceMinZoom(), "zmax": layer.sourceMaxZoom()}
    if not layer.isValid():
        return out
    QgsProject.instance().addMapLayer(layer)

    with urllib.request.urlopen(f"{base}/collections/{collection}?f=json", timeout=30) as r:
        x0, y0, x1, y1 = json.load(r)["extent"]["spatial"]["bbox"][0]
    extent = QgsCoordinateTransform(
        QgsCoordinateReferenceSystem("EPSG:4326"), QgsCoordinateReferenceSystem("EPSG:3857"),
        QgsCoordinateTransformContext()).transformBoundingBox(QgsRectangle(x0, y0, x1, y1))
    # the picture's shape (800 x 600) decides the extent drawn: QGIS widens one side
    grow = max(extent.width() / 800, extent.height() / 600)
    centre = extent.center()
    extent = QgsRectangle(centre.x() - 400 * grow, centre.y() - 300 * grow,
                          centre.x() + 400 * grow, centre.y() + 300 * grow)
    out["extent"] = [extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()]
    out["errors"] = draw(layer, extent, os.path.join(folder, "all.png"))

    style = QgsVectorTileBasicRendererStyle("one", collection, QgsWkbTypes.PolygonGeometry)
    style.setFilterExpression(f'"{attribute}" = \'{value}\'')
    style.setSymbol(QgsFillSymbol.createSimple({"color": "255,0,0,255", "outline_style": "no"}))
    renderer = QgsVectorTileBasicRenderer()
    renderer.setStyles([style])
    layer.setRenderer(renderer)
    out["errors"] += draw(layer, extent, os.path.join(folder, "one.png"))
    return out


if __name__ == "__main__":
    app = QgsApplication([], False)
    app.initQgis()
    try:
        print(json.dumps(main(*sys.argv[1:6])))
    finally:
        app.exitQgis()
