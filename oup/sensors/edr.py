"""OGC API EDR on a sensors collection: position, area, cube and locations, CoverageJSON out.

Each sensor is a point time series of one parameter (its observed property). A query
chooses sensors by place (``position``: the station nearest the point, within
``POSITION_RADIUS_M``; ``area``: inside the polygon; ``cube``: inside the bbox;
``locations``: by sensor id) and by ``parameter-name``, then returns their observations
within ``datetime`` as a CoverageJSON PointSeries per sensor.
"""
from __future__ import annotations

import math

import shapely
from pygeoapi.provider.base import (ProviderInvalidQueryError, ProviderItemNotFoundError,
                                    ProviderNoDataError)
from pygeoapi.provider.base_edr import BaseEDRProvider

from oup.http.params import CHECKED_EDR, parse_datetime
from oup.settings import get_settings
from oup.errors import InvalidQuery
from oup.store import Query, open_store
from oup.sensors.observations import iso_us
from oup.store.timeseries import SensorSet, TimeSeries

POSITION_RADIUS_M = 1000.0
_CRS84 = {"coordinates": ["x", "y"], "system": {
    "type": "GeographicCRS", "id": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}}
_TIME = {"coordinates": ["t"], "system": {"type": "TemporalRS", "calendar": "Gregorian"}}


class SensorEDRProvider(BaseEDRProvider):
    def __init__(self, provider_def):
        super().__init__(provider_def)
        self.sensor_set = SensorSet(provider_def["data"], provider_def["sensor_id_field"],
                                    provider_def["property_field"], provider_def["units"])
        self.titles = provider_def.get("titles", {})
        self.store = open_store(provider_def.get("store_url") or get_settings().store_url)
        self.series = TimeSeries(self.store, self.sensor_set)
        self.get_fields()

    def get_fields(self):
        if not self._fields:
            self._fields = {name: {"type": "number", "title": self.titles.get(name, name),
                                   "x-ogc-unit": unit}
                            for name, unit in self.sensor_set.units.items()}
        return self._fields

    # -- choosing sensors ----------------------------------------------------------------
    def _sensors(self, select_properties, bbox=None, geometry=None) -> list[dict]:
        params = set(select_properties or [])
        unknown = params - set(self.get_fields())
        if unknown:
            raise ProviderInvalidQueryError(
                user_msg=f"unknown parameter-name {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(sorted(self.get_fields()))}")
        q = Query(bbox=bbox, limit=100_000, count=False)
        page = self.store.query(self.sensor_set.collection, q)
        out = []
        for f in page.features:
            if params and f["properties"][self.sensor_set.property_field] not in params:
                continue
            if geometry is not None and not geometry.intersects(shapely.geometry.shape(f["geometry"])):
                continue
            out.append(f)
        return out

    def _coverage(self, sensors: list[dict], datetime_) -> dict:
        checked = CHECKED_EDR.get()
        try:  # parsed by the app's checks; a call that did not come through it is parsed here
            interval = (checked.interval if checked and checked.collection ==
                        self.sensor_set.collection else parse_datetime(datetime_))
            series = self.series.series([f["id"] for f in sensors], interval)
        except InvalidQuery as exc:
            raise ProviderInvalidQueryError(user_msg=str(exc)) from exc
        prop = self.sensor_set.property_field
        used = sorted({f["properties"][prop] for f in sensors})
        coverages = []
        for f in sensors:
            values = series.get(f["id"], [])
            if not values:
                continue
            name = f["properties"][prop]
            x, y = f["geometry"]["coordinates"][:2]
            coverages.append({
                "type": "Coverage",
                "id": f["id"],
                "domain": {"type": "Domain", "domainType": "PointSeries",
                           "axes": {"x": {"values": [x]}, "y": {"values": [y]},
                                    "t": {"values": [iso_us(t) for t, _ in values]}},
                           "referencing": [_CRS84, _TIME]},
                "ranges": {name: {"type": "NdArray", "dataType": "float", "axisNames": ["t"],
                                  "shape": [len(values)], "values": [v for _, v in values]}},
            })
        if not coverages:
            raise ProviderNoDataError(user_msg="no observations for this place, parameter "
                                               "and datetime")
        return {"type": "CoverageCollection", "domainType": "PointSeries",
                "parameters": self.get_parameters(used),
                "referencing": [_CRS84, _TIME], "coverages": coverages}

    # -- the query types -------------------------------------------------------------------
    def position(self, wkt=None, datetime_=None, select_properties=None, **kwargs):
        if wkt is None or wkt.geom_type != "Point":
            raise ProviderInvalidQueryError(user_msg="position: coords must be a POINT(x y)")
        candidates = self._sensors(select_properties)
        if not candidates:
            raise ProviderNoDataError(user_msg="no sensor measures that parameter")
        lon, lat = wkt.x, wkt.y

        def metres(f):
            fx, fy = f["geometry"]["coordinates"][:2]
            dx = math.radians(fx - lon) * math.cos(math.radians((fy + lat) / 2))
            return 6_371_000 * math.hypot(dx, math.radians(fy - lat))

        nearest = min(candidates, key=metres)
        if metres(nearest) > POSITION_RADIUS_M:
            raise ProviderNoDataError(user_msg=f"no sensor within {POSITION_RADIUS_M:.0f} m "
                                               "of the position")
        here = nearest["geometry"]["coordinates"][:2]
        station = [f for f in candidates if f["geometry"]["coordinates"][:2] == here]
        return self._coverage(station, datetime_)

    def area(self, wkt=None, datetime_=None, select_properties=None, **kwargs):
        if wkt is None or wkt.geom_type not in ("Polygon", "MultiPolygon"):
            raise ProviderInvalidQueryError(user_msg="area: coords must be a POLYGON")
        return self._coverage(self._sensors(select_properties, tuple(wkt.bounds), wkt),
                              datetime_)

    def cube(self, bbox=None, datetime_=None, select_properties=None, **kwargs):
        if not bbox or len(bbox) not in (4, 6):
            raise ProviderInvalidQueryError(user_msg="cube: bbox=minx,miny,maxx,maxy")
        # a 3D bbox carries heights the sensors do not have: its 2D part chooses
        box = (bbox[0], bbox[1], bbox[3], bbox[4]) if len(bbox) == 6 else tuple(bbox)
        return self._coverage(self._sensors(select_properties, box), datetime_)

    def locations(self, location_id=None, datetime_=None, select_properties=None, **kwargs):
        if location_id is None:
            feats = self._sensors(select_properties)
            return {"type": "FeatureCollection", "features": [
                {"type": "Feature", "id": f["id"], "geometry": f["geometry"],
                 "properties": {"name": f["properties"].get("name", f["id"]),
                                "parameter-name": [f["properties"][self.sensor_set.property_field]],
                                "datetime": f["properties"].get("latest_time")}}
                for f in feats]}
        f = self.store.get(self.sensor_set.collection, location_id)
        if f is None:
            raise ProviderItemNotFoundError(user_msg=f"no location {location_id!r}")
        if select_properties and f["properties"][self.sensor_set.property_field] \
                not in select_properties:
            raise ProviderNoDataError(user_msg="the location does not measure that parameter")
        return self._coverage([f], datetime_)
