"""``/search``: one free-text search over every collection the caller may see.

Each collection that declares text attributes (``search:`` in its collection.yml) is
asked in SQL, as its ``items?q=`` would be (``oup.store.text``), with the caller's rights:
a collection they may not see is not asked (it does not exist for them), and where
their role sees only the features they created (residents' reports), only those. The
hits come back as one GeoJSON FeatureCollection, best first: each a reference to an
item - its collection, id, rank, title and the attributes searched - with its geometry
and bbox, so a map can go there. A search that reaches non-public collections is audited, once
for each of them.
"""
from __future__ import annotations

import json
import logging

from oup.catalog import Catalog, Classification
from oup.errors import InvalidQuery
from oup.http.routes import Call, Endpoint, Format, Param
from oup.languages import current
from oup.store import Query, StoreError
from oup.store.geometry import geojson_bounds
from oup.store.text import NotIndexed, words

LOG = logging.getLogger(__name__)
GEOJSON = "application/geo+json"
MAX_LIMIT = 100


class Search:
    def __init__(self, catalog: Catalog, store, audit, base_url: str):
        self.catalog, self.store, self.audit, self.base = catalog, store, audit, base_url

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint(
            "/search", "Free-text search over every collection one may see", self.answer,
            "search", "search",
            params=(Param("q", "the words to find (each as the start of a word in a "
                               "collection's declared text attributes), required"),
                    Param("limit", f"the most hits (1 to {MAX_LIMIT}, default 10)",
                          {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
                    Param("collections", "comma-separated collection ids to search; "
                                         "default: every searchable one")),
            formats=(Format("json", GEOJSON, ("application/json",)),),
            description="A GeoJSON FeatureCollection of the best hits, best first. Each "
                        "hit's properties: collection, id, rank (higher is better; ranks "
                        "order the hits of one store, they are no score), title, and the "
                        "collection's searched attributes. A collection the caller may not "
                        "see is never searched.")]

    def searchable(self, visible) -> list[str]:
        return [c.id for c in self.catalog if c.search and c.id in visible]

    def answer(self, call: Call):
        from flask import Response

        q = call.query.get("q")
        if q is None:
            raise InvalidQuery("q is required: the words to find", "q")
        words(q)
        limit = call.query.get("limit", 10)
        ids = self.searchable(call.visible)
        if "collections" in call.query:
            asked = [c for c in call.query["collections"].split(",") if c]
            for cid in asked:  # one hidden is as absent as one that is not there
                if cid not in ids:
                    raise InvalidQuery(f"collections: no searchable collection {cid!r}",
                                       "collections")
            ids = asked
        hits = []
        for cid in ids:
            hits += self._hits(cid, q, limit, call)
        hits.sort(key=lambda h: -h["properties"]["rank"])
        hits = hits[:limit]
        doc = {"type": "FeatureCollection", "features": hits, "numberReturned": len(hits),
               "links": [{"rel": "self", "type": GEOJSON,
                          "href": f"{self.base}{call.request.full_path.rstrip('?')}"
                          if call.request is not None else f"{self.base}/search"}]}
        return Response(json.dumps(doc), mimetype=GEOJSON)

    def _hits(self, cid: str, q: str, limit: int, call: Call) -> list[dict]:
        coll = self.catalog[cid]
        roles = call.identity.roles if call.identity is not None else frozenset()
        owner = call.identity.who if coll.editable and coll.editable.own \
            and coll.editable.sees_only_own(roles) else None
        shown = [n for n in dict.fromkeys([*coll.search, coll.title_field]) if n]
        try:
            fields = {f.name for f in self.store.fields(cid)}
            page = self.store.query(cid, Query(text=q, limit=limit, count=False, owner=owner,
                                               select=[n for n in shown if n in fields]))
        except (NotIndexed, StoreError) as exc:  # not imported (again) yet: not searched
            LOG.warning("search: %s skipped: %s", cid, exc)
            return []
        finally:
            if coll.classification != Classification.public:
                who = call.identity.who if call.identity is not None else "anonymous"
                self.audit.write(who, cid, "GET /search", 200, call.request_id)
        out = []
        for feature, rank in zip(page.features, page.ranks or []):
            props = feature["properties"]
            title = props.get(coll.title_field or coll.search[0])
            geometry = feature.get("geometry")
            out.append({"type": "Feature", "id": f"{cid}/{feature['id']}",
                        "geometry": geometry, "bbox": _bbox(geometry),
                        "properties": {**{n: props.get(n) for n in coll.search},
                                       "collection": cid, "id": feature["id"], "rank": rank,
                                       "title": title,
                                       "collection_title": coll.title.in_(current())},
                        "links": [{"rel": "item", "type": GEOJSON, "href":
                                   f"{self.base}/collections/{cid}/items/{feature['id']}"}]})
        return out


def _bbox(geometry: dict | None) -> list[float] | None:
    """The GeoJSON ``bbox`` of a hit: where a map goes to show it."""
    box = geojson_bounds(geometry)
    return None if box is None else list(box)
