"""Serving the 3D Tiles of the catalogue's 3D collections, OGC API 3D GeoVolumes style.

``/collections/{id}/3dtiles/tileset.json`` and its content are static files made by
``oup tile``; this module serves them with the right media types, strong ETags,
Cache-Control, gzip for JSON and CORS, and never anything outside the tileset folder.
The collection document links to the tileset.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import math
from functools import lru_cache
from pathlib import Path

from werkzeug.security import safe_join

from oup.errors import NotFound, Unavailable
from oup.http.pages import SCENARIO_PAGE, SCENARIO_PAGE_ANSWERS
from oup.http.routes import Call, Endpoint, Format, Param

TILESET_REL = "http://www.opengis.net/def/rel/ogc/0.0/tileset-3dtiles"
CRS84H = "http://www.opengis.net/def/crs/OGC/0/CRS84h"
MEDIA = {".json": "application/json", ".glb": "model/gltf-binary", ".b3dm": "application/octet-stream",
         ".pnts": "application/octet-stream", ".subtree": "application/octet-stream"}


def tileset_dir(data_dir: Path, cid: str) -> Path:
    return data_dir / "3dtiles" / cid


@lru_cache(maxsize=4096)
def _etag(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.blake2b(digest_size=12)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def extent3d(folder: Path) -> list[float] | None:
    """CRS84h [minlon, minlat, minh, maxlon, maxlat, maxh] of a tileset's root region."""
    try:
        root = json.loads((folder / "tileset.json").read_text())["root"]
        w, s, e, n, lo, hi = root["boundingVolume"]["region"]
    except (OSError, KeyError, ValueError):
        return None
    return [math.degrees(w), math.degrees(s), lo, math.degrees(e), math.degrees(n), hi]


def add_links(doc: dict, base_url: str, data_dir: Path) -> dict:
    """Link each collection that has a tileset to it (collection and collections docs)."""
    for coll in doc.get("collections", [doc]):
        cid = coll.get("id")
        folder = tileset_dir(data_dir, cid) if cid else None
        if not folder or not (folder / "tileset.json").exists():
            continue
        href = f"{base_url}/collections/{cid}/3dtiles/tileset.json"
        bbox = extent3d(folder)
        link = {"rel": TILESET_REL, "type": "application/json+3dtiles",
                "title": "3D Tiles 1.1 tileset", "href": href}
        coll.setdefault("links", []).append(link)
        # OGC API 3D GeoVolumes (draft): the 3D content and its 3D extent
        coll["content"] = [{"rel": "original", "type": "application/json+3dtiles",
                            "title": "3D Tiles 1.1", "href": href}]
        if bbox:
            coll["extent3d"] = {"spatial": {"bbox": [bbox], "crs": CRS84H}}
    return doc


def endpoints(data_dir: Path, catalog) -> list[Endpoint]:
    """The 3D Tiles of each 3D collection, and the viewer (the page, its script, CesiumJS)."""
    resource = Param("resource", "a file of the tileset: tileset.json, or the content and "
                     "subtrees it names (may hold '/')", where="path", spans=True)
    file = Param("resource", "viewer.js, or a file of CesiumJS (cesium/...)", where="path",
                 spans=True)
    html = (Format("html", "text/html"),)
    return [
        Endpoint("/collections/{collectionId}/3dtiles/{resource}",
                 "3D Tiles 1.1 of a collection (start at tileset.json)",
                 lambda call: serve(data_dir, call), "3D Tiles", "get3DTiles", params=(resource,),
                 collections=lambda: [c.id for c in catalog if tileset_dir(data_dir, c.id)
                                      .is_dir()],
                 any_query=True, responses={"304": {"description": "not modified"}}),
        Endpoint("/viewer", "The 3D viewer (CesiumJS, offline)", serve_viewer, "3D Tiles",
                 "getViewer", formats=html, params=(
                     Param("collection", "the 3D collection to show (default buildings)"),
                     Param("at", "where to look: lon,lat,zoom (as /map's)"), SCENARIO_PAGE),
                 responses=SCENARIO_PAGE_ANSWERS),
        Endpoint("/viewer/{resource}", "The 3D viewer's script and CesiumJS", serve_viewer,
                 "3D Tiles", "getViewerFile", params=(file,), any_query=True),
    ]


def serve(data_dir: Path, call: Call):
    """The file ``/collections/{cid}/3dtiles/{resource}``."""
    from flask import Response, request

    cid, path = call.collection, call.path["resource"]
    if any(part.startswith(".") for part in path.split("/")):  # .oup-index: the tiler's own
        raise NotFound(f"no 3D Tiles resource {path!r} in collection {cid!r}")
    root = tileset_dir(data_dir, cid)
    full = safe_join(str(root), path) if root.is_dir() else None
    if full is None or not Path(full).is_file():
        raise NotFound(f"no 3D Tiles resource {path!r} in collection {cid!r}")
    p = Path(full)
    st = p.stat()
    etag = _etag(full, st.st_mtime_ns, st.st_size)
    # `oup tile` may replace a tileset: clients revalidate with the ETag after a while
    cache = ("public, max-age=60, must-revalidate" if p.suffix == ".json"
             else "public, max-age=3600")
    headers = {"ETag": f'"{etag}"', "Cache-Control": cache,
               "Content-Type": MEDIA.get(p.suffix, "application/octet-stream")}
    if request.if_none_match.contains(etag):
        return Response(status=304, headers=headers)
    if p.suffix in (".json", ".glb") and "gzip" in request.headers.get("Accept-Encoding", ""):
        headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept-Encoding"
        return Response(_gzipped(full, st.st_mtime_ns, st.st_size), headers=headers)
    return Response(p.read_bytes(), headers=headers)


@lru_cache(maxsize=32)
def _gzipped(path: str, mtime_ns: int, size: int) -> bytes:
    """A file gzipped, once a version. A glb's property tables (the buildings' ids and
    attributes, half of a coarse tile) shrink to about half; its Draco mesh does not: the
    root of a 50,000-building city goes over the wire as 2.7 MB instead of 4.6. Level 1
    gets nearly all of it (level 6: 2% more, at three times the time)."""
    with open(path, "rb") as fh:
        return gzip.compress(fh.read(), 1)


VIEWER = Path(__file__).resolve().parents[1] / "viewer"
CESIUM = VIEWER / "node_modules" / "cesium" / "Build" / "Cesium"


def serve_viewer(call: Call):
    """``/viewer`` (the page and its script) and ``/viewer/cesium/...`` (CesiumJS)."""
    from flask import Response

    path = call.path.get("resource", "")
    if path in ("", "index.html"):
        from oup.http.page_texts import full_page
        from oup.languages import current

        return Response(full_page((VIEWER / "index.html").read_text(encoding="utf-8"),
                                  current()), mimetype="text/html",
                        headers={"Vary": "Accept-Language"})
    if path == "viewer.js":
        return Response((VIEWER / "viewer.js").read_bytes(), mimetype="text/javascript")
    if path.startswith("cesium/"):
        if not CESIUM.is_dir():
            raise Unavailable("CesiumJS is not installed: run `make demo` (npm ci in "
                              "oup/viewer)")
        from oup.http.pages import static_file

        if (answer := static_file(CESIUM, path.removeprefix("cesium/"))) is not None:
            return answer
    raise NotFound(f"no viewer resource {path!r}")
