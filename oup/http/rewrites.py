"""The few corrections OUP makes to pygeoapi's JSON answers, by path: what the caller may
see of the OpenAPI document and the Records catalogue, what is really conformed to, and
the links to OUP's own endpoints on the landing page and the collection documents."""
from __future__ import annotations

from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from oup.catalog import Catalog
from oup.events import asyncapi
from oup.http.pygeoapi_config import RECORDS_ID
from oup.languages import DEFAULT, current
from oup.http.responses import (COLLECTIONS, CONFORMANCE, EDITING, OPENAPI_PATHS, plain_items_links,
                                visible_openapi, with_records, without_spatial_extent)
from oup.processes import endpoints as processes_api
from oup.tiles import styles, tiles3d, vector_tiles


# pygeoapi's landing page links to these whatever is configured: OUP's tile matrix sets
# are at /tileMatrixSets (OGC API Tiles), not pygeoapi's; its processes and jobs are its
# own (linked by oup.processes.endpoints where the processes file offers any)
_NOT_OFFERED = ("/processes", "/jobs", "/TileMatrixSets")


def _without(doc: dict, paths: tuple[str, ...]) -> dict:
    doc["links"] = [link for link in doc.get("links", [])
                    if urlsplit(link.get("href", "")).path not in paths]
    return doc


class Rewrites:
    def __init__(self, catalog: Catalog, records: dict, base_url: str, data_dir: Path,
                 tiled: set[str], mqtt_public: str, processes: bool = False,
                 openapi_in: Callable[[str], dict] | None = None):
        self.catalog, self.records, self.base = catalog, records, base_url
        self.openapi_in = openapi_in  # the OpenAPI document in a language
        self.processes = processes
        self.data_dir, self.tiled, self.mqtt = data_dir, tiled, mqtt_public
        self.no_geometry = {cid for cid, r in records.items() if r["geometry"] is None}
        self.conformance = (CONFORMANCE + vector_tiles.CONFORMANCE + styles.CONFORMANCE
                            + asyncapi.CONFORMANCE
                            + (EDITING if any(c.editable for c in catalog) else [])
                            + (processes_api.CONFORMANCE if processes else []))

    def rewrite_for(self, path: str, visible: frozenset[str]):
        """How OUP amends pygeoapi's JSON at ``path`` for a caller who may see ``visible``,
        if it does (only these few paths)."""
        public = self.catalog.public
        if path in OPENAPI_PATHS:
            hidden = set(self.catalog.collections) - set(visible)
            language = current()  # pygeoapi serves the default language's document
            if language != DEFAULT and self.openapi_in is not None:
                return lambda doc: visible_openapi(self.openapi_in(language), hidden)
            return lambda doc: visible_openapi(doc, hidden)
        if path == f"/collections/{RECORDS_ID}/items":
            return lambda doc: with_records(doc, self.records, visible - public)
        if path == "/conformance":
            return lambda doc: {"conformsTo": self.conformance}
        if path == "/":
            def landing(doc: dict) -> dict:
                doc = asyncapi.landing_links(vector_tiles.landing_links(
                    _without(doc, _NOT_OFFERED), self.base), self.base, self.mqtt)
                return processes_api.landing_links(doc, self.base) if self.processes else doc
            return landing
        if COLLECTIONS.match(path):
            return lambda doc: asyncapi.collection_links(vector_tiles.add_links(
                tiles3d.add_links(without_spatial_extent(plain_items_links(doc),
                                                         self.no_geometry),
                                  self.base, self.data_dir),
                self.base, self.tiled), self.base, self.mqtt, public,
                set(self.catalog.collections))
        return None
