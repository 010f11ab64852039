"""The checks a request passes before pygeoapi sees it: the method, and the parameters
of each endpoint (``oup.http.params``). An items query is parsed here, once, and put on the
request context (``CHECKED_ITEMS``) for the provider."""
from __future__ import annotations

import re

from oup.catalog import Catalog
from oup.http.params import (CHECKED_EDR, CHECKED_ITEM, CHECKED_ITEMS, check_edr, check_item, check_items,
                             check_queryables, parse_filter)
from oup.http.pygeoapi_config import RECORD_PROPERTIES, RECORDS_ID
from oup.errors import MethodNotAllowed, UnsupportedMediaType
from oup.store import FeatureStore, StoreError

_QUERYABLES = re.compile(r"^/collections/([^/]+)/(queryables|schema)/?$")
_ITEMS = re.compile(r"^/collections/([^/]+)/items/?$")
_ITEM = re.compile(r"^/collections/([^/]+)/items/([^/]+)$")
_EDR = re.compile(r"^/collections/([^/]+)/(position|area|cube|radius|trajectory|corridor|"
                  r"locations)(/[^/]+)?/?$")
CQL2_JSON = ("application/query-cql-json", "application/json")


class Queryables:
    """The property names of each collection, looked up once per worker."""

    def __init__(self, catalog: Catalog, store: FeatureStore):
        self.catalog, self.store = catalog, store
        self._known: dict[str, set[str]] = {}

    def of(self, cid: str) -> set[str] | None:
        """None: not in the store (not imported, or the Records catalogue)."""
        if cid not in self._known:
            coll = self.catalog.collections.get(cid)
            if coll is not None and coll.derived_from:  # observations, time slices
                from oup.store.timeseries import OBSERVATION_FIELDS, SLICE_FIELDS

                sensors = self.catalog[coll.derived_from]
                own = OBSERVATION_FIELDS if coll.observations_of else SLICE_FIELDS
                self._known[cid] = {sensors.id_field, sensors.stream.property_field, "unit",
                                    *(name for name, _ in own)}
            else:
                try:
                    self._known[cid] = {f.name for f in self.store.fields(cid)}
                except StoreError:
                    return None
        return self._known[cid]


def check_request(request, queryables: Queryables, max_limit: int,
                  default_limit: int = 10) -> None:
    """Check a request pygeoapi answers; an OUPError says what is wrong with it."""
    path = request.path
    if request.method not in ("GET", "HEAD", "POST"):
        raise MethodNotAllowed(f"{request.method} is not offered: the API is read-only",
                               ["GET", "HEAD", "POST"] if _ITEMS.match(path) else ["GET", "HEAD"])
    if m := _ITEMS.match(path):
        posted = request.method == "POST"
        cql_json = request.mimetype in CQL2_JSON
        body = request.get_data(as_text=True) if posted and cql_json else None
        fields = queryables.of(m.group(1))
        if fields is not None:
            coll = queryables.catalog.collections.get(m.group(1))
            CHECKED_ITEMS.set(check_items(request.args, fields, max_limit, m.group(1), body,
                                          default_limit, coll.search if coll else ()))
        if posted and not cql_json:
            raise UnsupportedMediaType("POST a CQL2 JSON filter as application/query-cql-json")
        if posted and fields is None:
            parse_filter(body, "cql2-json")
    elif request.method == "POST":
        raise MethodNotAllowed("POST is only offered on .../items (CQL2 JSON search)",
                               ["GET", "HEAD"])
    elif m := _ITEM.match(path):
        CHECKED_ITEM.set(check_item(request.args, m.group(1)))
    elif m := _EDR.match(path):
        CHECKED_EDR.set(check_edr(request.args, m.group(1)))
    elif m := _QUERYABLES.match(path):
        cid = m.group(1)
        known = set(RECORD_PROPERTIES) if cid == RECORDS_ID else queryables.of(cid)
        check_queryables(request.args, known or set())
