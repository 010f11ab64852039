"""The OUP feature provider for pygeoapi: a thin adapter onto the store.

``oup.http.params`` checked and parsed the request once (``CHECKED_ITEMS``): the
filters, paging, result type, output CRS and geometry choice; this class turns that into
a ``Query`` and the store answers in SQL. pygeoapi's own arguments are used only for a
call that did not come through the app. A provider is built once per collection and
configuration generation (``oup.http.pygeoapi_adapter.ProviderCache``) and holds no state of
a request.
"""
from __future__ import annotations

from pygeoapi.provider.base import (BaseProvider, ProviderInvalidQueryError,
                                    ProviderItemNotFoundError, ProviderConnectionError,
                                    SchemaType)

from oup.http.params import (CHECKED_ITEM, CHECKED_ITEMS, ITEM_ETAG, ItemRequest, ItemsRequest,
                             parse_datetime)
from oup.security import ASKING
from oup.settings import get_settings
from oup.errors import InvalidQuery
from oup.store import Query, StoreError, open_store
from oup.store.geometry import CRS84, crs_code
from oup.store.timeseries import OBSERVATION_FIELDS, SLICE_FIELDS

_JSON_TYPES = {"date-time": ("string", "date-time")}


class OUPProvider(BaseProvider):
    """pygeoapi ``feature`` provider over an OUP store (``data`` = collection id)."""

    def __init__(self, provider_def):
        super().__init__(provider_def)
        self.collection = provider_def["data"]
        self.store = open_store(provider_def.get("store_url") or get_settings().store_url)
        self.id_field = "id"
        self.time_field = provider_def.get("time_field")
        self.own_roles = set(provider_def.get("own_roles", ()))
        self.all_roles = set(provider_def.get("all_roles", ()))
        self.get_fields()

    def _owner(self) -> str | None:
        """A caller who sees only the features they created (a resident): their name."""
        if not self.own_roles:
            return None
        asking = ASKING.get()
        if asking.roles & self.own_roles and not asking.roles & self.all_roles:
            return asking.who
        return None

    def get_fields(self):
        if not self._fields:
            try:
                fields = self.store.fields(self.collection)
            except StoreError as exc:
                raise ProviderConnectionError(str(exc)) from exc
            for f in fields:
                kind, fmt = _JSON_TYPES.get(f.type, (f.type, None))
                self._fields[f.name] = {"type": kind, **({"format": fmt} if fmt else {})}
        return self._fields

    def get_schema(self, schema_type: SchemaType = SchemaType.item):
        props = {k: dict(v) for k, v in self.get_fields().items()}
        props["geometry"] = {"$ref": "https://geojson.org/schema/Geometry.json"}
        return "application/geo+json", {"$schema": "http://json-schema.org/draft/2019-09/schema",
                                        "type": "object", "properties": props}

    def query(self, offset=0, limit=10, resulttype="results", bbox=[], datetime_=None,
              properties=[], sortby=[], select_properties=[], skip_geometry=False, q=None,
              filterq=None, crs_transform_spec=None, **kwargs):
        try:
            checked = CHECKED_ITEMS.get()
            if checked is None or checked.collection != self.collection:
                checked = self._from_pygeoapi(
                    bbox, datetime_, properties, sortby, select_properties, filterq, limit,
                    offset, resulttype, skip_geometry, crs_transform_spec, q)
            query = Query(
                bbox=checked.bbox,
                interval=checked.interval,
                equals=dict(checked.equals),
                filter=checked.filter,
                sortby=checked.sortby,
                select=checked.properties,
                skip_geometry=checked.skip_geometry,
                limit=0 if checked.hits else checked.limit,
                offset=checked.offset,
                crs=crs_code(checked.crs or CRS84),
                asof=checked.asof,
                owner=self._owner(),
                text=checked.q,
                scenario=checked.scenario,
            )
            page = self._page(query)
        except InvalidQuery as exc:
            raise ProviderInvalidQueryError(user_msg=str(exc)) from exc
        except StoreError as exc:
            raise ProviderConnectionError(str(exc)) from exc
        return {"type": "FeatureCollection", "features": page.features,
                "numberMatched": page.number_matched, "numberReturned": len(page.features)}

    def get(self, identifier, crs_transform_spec=None, **kwargs):
        checked = CHECKED_ITEM.get()
        if checked is None or checked.collection != self.collection:
            checked = ItemRequest(self.collection, crs_transform_spec.target_crs_uri
                                  if crs_transform_spec else None)
        try:
            feature = self._one(identifier, crs_code(checked.crs or CRS84), checked.asof,
                                checked.scenario)
        except InvalidQuery:
            feature = None
        except StoreError as exc:
            raise ProviderConnectionError(str(exc)) from exc
        if feature is None:
            raise ProviderItemNotFoundError(user_msg=f"no item {identifier!r}")
        return feature

    def _from_pygeoapi(self, bbox, datetime_, properties, sortby, select_properties,
                       filterq, limit, offset, resulttype, skip_geometry,
                       crs_transform_spec, q=None) -> ItemsRequest:
        """pygeoapi's arguments as a checked request (a call not made through the app)."""
        return ItemsRequest(
            self.collection,
            bbox=tuple(bbox[:2] + bbox[len(bbox) // 2:len(bbox) // 2 + 2]) if bbox else None,
            interval=parse_datetime(datetime_), filter=filterq,
            sortby=[(s["property"], s["order"] != "-") for s in sortby],
            properties=list(select_properties) or None, equals=dict(properties),
            limit=limit, offset=offset, hits=resulttype == "hits",
            skip_geometry=skip_geometry,
            crs=crs_transform_spec.target_crs_uri if crs_transform_spec else None, q=q)

    # what the subclasses over observations answer differently
    def _page(self, query: Query):
        return self.store.query(self.collection, query)

    def _one(self, identifier, crs: str, asof=None, scenario=None):
        if asof is not None or scenario is not None:
            return self.store.get(self.collection, identifier, crs, asof=asof,
                                  owner=self._owner(), scenario=scenario)
        feature, etag = self.store.get_tagged(self.collection, identifier, crs,
                                              owner=self._owner())
        ITEM_ETAG.set(etag)
        return feature


class _SensorDerived(OUPProvider):
    """Base of the providers over a sensors collection's observations; ``data`` is the
    derived collection, ``sensors`` the sensors collection (see pygeoapi_config.py)."""

    FIELDS: tuple = ()

    def __init__(self, provider_def):
        from oup.store.timeseries import SensorSet, TimeSeries

        BaseProvider.__init__(self, provider_def)
        self.collection = provider_def["data"]
        self.sensor_set = SensorSet(provider_def["sensors"], provider_def["sensor_id_field"],
                                    provider_def["property_field"], provider_def["units"])
        self.store = open_store(provider_def.get("store_url") or get_settings().store_url)
        self.series = TimeSeries(self.store, self.sensor_set)
        self.own_roles = self.all_roles = set()  # read live: nobody owns an observation
        self.id_field = "id"
        self.time_field = provider_def.get("time_field")
        self.get_fields()

    def get_fields(self):
        if not self._fields:
            s = self.sensor_set
            self._fields = {s.id_field: {"type": "string"}, s.property_field: {"type": "string"},
                            "unit": {"type": "string"}}
            for name, kind in self.FIELDS:
                t, fmt = _JSON_TYPES.get(kind, (kind, None))
                self._fields[name] = {"type": t, **({"format": fmt} if fmt else {})}
        return self._fields


class ObservationsProvider(_SensorDerived):
    """Every stored observation as a feature at its sensor; ``datetime`` = phenomenon time."""

    FIELDS = OBSERVATION_FIELDS

    def _page(self, query):
        return self.series.observations(query)

    def _one(self, identifier, crs, asof=None, scenario=None):
        try:
            return self.series.observation(int(identifier), crs)
        except (TypeError, ValueError, OverflowError):
            return None


class TimeSliceProvider(_SensorDerived):
    """The sensors as they were in fixed slices of time (mean, min, max, count)."""

    FIELDS = SLICE_FIELDS

    def __init__(self, provider_def):
        super().__init__(provider_def)
        self.seconds = int(provider_def["slice_seconds"])

    def _page(self, query):
        return self.series.slices(query, self.seconds)

    def _one(self, identifier, crs, asof=None, scenario=None):
        return self.series.slice(identifier, self.seconds, crs)
