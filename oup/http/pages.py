"""The platform's own face: what its HTML pages load, served by the platform itself.

pygeoapi's stock pages load Bootstrap and Leaflet from unpkg.com: offline (a city
intranet) they break, and online every page view tells a third party who looked at
what. OUP's templates (``config/templates``) load instead, from ``/assets/...``:

- ``/assets/bootstrap/...``, ``/assets/maplibre-gl/...``, ``/assets/swagger-ui/...``:
  the npm packages installed in ``oup/web`` (``make venv`` runs ``npm ci`` there);
- ``/assets/oup/...``: OUP's own logo, style sheets and scripts (``oup/web/static``).

Every answer carries a Content-Security-Policy that allows no origin but the platform's
own (``CONTENT_SECURITY_POLICY``), so a template that slipped back to a CDN fails loudly.
"""
from __future__ import annotations

import mimetypes
from pathlib import Path

from werkzeug.security import safe_join

from oup.errors import NotFound, Unavailable
from oup.http.page_texts import full_page
from oup.http.routes import Call, Endpoint, Format, Param
from oup.languages import current

WEB = Path(__file__).resolve().parents[1] / "web"
_MODULES = WEB / "node_modules"
ASSETS = {
    "bootstrap": _MODULES / "bootstrap" / "dist",
    "maplibre-gl": _MODULES / "maplibre-gl" / "dist",
    "swagger-ui": _MODULES / "swagger-ui-dist",
    "oup": WEB / "static",
}
# 'unsafe-inline': pygeoapi's pages (queryables, conformance, ...) carry inline scripts and
# styles. 'unsafe-eval' and blob: scripts: CesiumJS compiles some code at run time and
# its workers import scripts it made. None of them opens the page to another origin,
# which is the point: nothing here may load from anywhere else.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline' 'unsafe-eval' blob:",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "frame-ancestors 'none'",
])


def static_file(root: Path, path: str, cache_seconds: int = 86400):
    """The file ``path`` under ``root`` as a response, or None when there is none
    (never a file outside ``root``)."""
    from flask import Response

    full = safe_join(str(root), path) if root.is_dir() else None
    if not full or not Path(full).is_file():
        return None
    kind = mimetypes.guess_type(full)[0] or "application/octet-stream"
    return Response(Path(full).read_bytes(), mimetype=kind,
                    headers={"Cache-Control": f"public, max-age={cache_seconds}"})


# a scenario shown next to the city as it is (its owner's, or shared: else 404)
SCENARIO_PAGE = Param("scenario", "show this scenario's proposed changes too (see /scenarios)")
SCENARIO_PAGE_ANSWERS = {"401": {"$ref": "#/components/responses/401"}}  # (with a scenario)


def endpoints() -> list[Endpoint]:
    """``/map`` and the assets the pages load."""
    asset = Param("asset", "{package}/{file}: bootstrap, maplibre-gl, swagger-ui or oup",
                  where="path", spans=True)
    return [
        Endpoint("/map", "The 2D map page (MapLibre GL JS, offline)", serve_map, "styles",
                 "getMap", formats=(Format("html", "text/html"),),
                 params=(Param("at", "where to look: lon,lat,zoom"),
                         Param("collection", "a collection to show and frame, with its "
                               "own style: a job's result (job-{jobId}) too"), SCENARIO_PAGE),
                 responses=SCENARIO_PAGE_ANSWERS),
        Endpoint("/assets/{asset}", "A script, style sheet or image the pages load",
                 serve_asset, "server", "getAsset", params=(asset,), any_query=True),
    ]


def serve_asset(call: Call):
    """``/assets/{package}/{file}``."""
    package, _, rest = call.path["asset"].partition("/")
    root = ASSETS.get(package)
    if root is not None and not root.is_dir():
        raise Unavailable(f"{package} is not installed: run `make venv` (npm ci in oup/web)")
    answer = static_file(root, rest) if root is not None else None
    if answer is None:
        raise NotFound(f"no asset {call.path['asset']!r}")
    return answer


def serve_map(call: Call):
    """``/map``: the 2D map page in the reader's language (its script and style are
    assets)."""
    from flask import Response

    page = ASSETS["oup"] / "map.html"
    if not page.is_file():
        raise NotFound("the map page is missing")
    return Response(full_page(page.read_text(encoding="utf-8"), current()),
                    mimetype="text/html", headers={"Cache-Control": "public, max-age=60",
                                                   "Vary": "Accept-Language"})
