"""Reading the observations: as features, as time slices, as series per sensor (EDR).

Everything is SQL over ``oup_observations`` joined to the sensors' feature table, so bbox,
property filters and CQL2 on the sensors reuse the feature store's WHERE clause (with its
R*Tree) as a sub-query choosing sensors; times are filtered on the indexed integer
phenomenon time. Slices are ``[start, start + length)``, aligned to the epoch (so to the
quarter hour for 15 minutes), and the slice number of a time is its floor division.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from oup.store import observation_hours
from oup.store.base import FID, InvalidQuery, Page, Query
from oup.store.cql import quote
from oup.store.protocols import SqlSource
from oup.sensors.observations import iso_us, us_of

OBSERVATION_FIELDS = (("phenomenonTime", "date-time"), ("result", "number"),
                      ("resultTime", "date-time"))
SLICE_FIELDS = (("slice_start", "date-time"), ("slice_end", "date-time"), ("mean", "number"),
                ("min", "number"), ("max", "number"), ("count", "integer"))
_SORTABLE = {"phenomenonTime": "o.phenomenon_time", "result": "o.result",
             "resultTime": "o.result_time"}
MAX_SERIES_VALUES = 200_000  # per EDR answer: more is a request to narrow datetime


@dataclass(frozen=True)
class SensorSet:
    """The sensors collection behind a derived collection."""

    collection: str
    id_field: str
    property_field: str
    units: dict[str, str]  # observed property -> unit


def _floor(expr: str, length: int) -> str:
    """SQL floor division (SQLite's '/' truncates towards zero)."""
    return f"(({expr}) - ((({expr}) % {length}) + {length}) % {length}) / {length}"


class TimeSeries:
    def __init__(self, store: SqlSource, sensors: SensorSet):
        self.store, self.s = store, sensors
        self._hours: bool | None = None  # whether the store keeps sums per hour

    # -- helpers ------------------------------------------------------------------------
    def _sensor_filter(self, q: Query) -> tuple[str, list]:
        """``o.sensor_id IN (...)`` for the sensor-level parts of ``q`` (bbox, equals, CQL2)."""
        sq = Query(bbox=q.bbox, equals=q.equals, filter=q.filter)
        if sq.bbox is None and not sq.equals and sq.filter is None:
            return "", []
        meta = self.store.layer(self.s.collection)
        where, params = self.store.where(self.s.collection, meta, sq)
        return (f" AND o.sensor_id IN (SELECT {quote(self.s.id_field)} FROM "
                f"{quote(self.s.collection)}{where})", params)

    def _time_filter(self, interval) -> tuple[str, list]:
        return self._between(*self._window(interval))

    def sensors(self, ids, crs: str = "OGC:CRS84", skip_geometry: bool = False) -> dict:
        """Sensor features by id (geometry and properties), for the page being answered."""
        ids = list(ids)
        if not ids:
            return {}
        meta = self.store.layer(self.s.collection)
        names = [n for n, _ in meta["fields"]]
        q = Query(crs=crs, skip_geometry=skip_geometry)
        cols = [FID, self.store.geometry_column(meta, q)] + [quote(n) for n in names] + \
            [quote(self.s.id_field)]
        out = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            rows = self.store.execute(
                f"SELECT {', '.join(cols)} FROM {quote(self.s.collection)} WHERE "
                f"{quote(self.s.id_field)} IN ({','.join('?' * len(chunk))})", chunk)
            for f in self.store.features(meta, rows, names, q):
                out[f["id"]] = f
        return out

    def _feature(self, sensor: dict | None, fid, props: dict) -> dict:
        sp = sensor["properties"] if sensor else {}
        prop = sp.get(self.s.property_field)
        base = {self.s.id_field: sensor["id"] if sensor else None,
                self.s.property_field: prop, "unit": self.s.units.get(prop)}
        return {"type": "Feature", "id": fid, "geometry": sensor["geometry"] if sensor else None,
                "properties": {**base, **props}}

    def time_range(self) -> tuple[int, int] | None:
        # two sub-queries: each is one index probe; MIN and MAX in one SELECT scan the table
        row = self.store.execute(
            "SELECT (SELECT MIN(phenomenon_time) FROM oup_observations), "
            "(SELECT MAX(phenomenon_time) FROM oup_observations)")[0]
        return None if row[0] is None else (row[0], row[1])

    # -- observations as features ---------------------------------------------------------
    def observations(self, q: Query) -> Page:
        where_s, ps = self._sensor_filter(q)
        where_t, pt = self._time_filter(q.interval)
        where = f"WHERE 1 = 1{where_t}{where_s}"
        params = pt + ps
        order = []
        for name, asc in q.sortby:
            if name not in _SORTABLE:
                raise InvalidQuery(f"observations sort by {', '.join(_SORTABLE)}", "sortby")
            order.append(f"{_SORTABLE[name]} {'ASC' if asc else 'DESC'}")
        order += ["o.phenomenon_time", "o.id"]
        matched = None
        if q.count:
            matched = self.store.execute(f"SELECT COUNT(*) FROM oup_observations o {where}",
                                         params)[0][0]
        rows = self.store.execute(
            f"SELECT o.id, o.sensor_id, o.phenomenon_time, o.result, o.result_time "
            f"FROM oup_observations o {where} ORDER BY {', '.join(order)} LIMIT ? OFFSET ?",
            params + [q.limit, q.offset])
        return Page(self._observation_features(rows, q), matched)

    def observation(self, oid: int, crs: str = "OGC:CRS84") -> dict | None:
        row = self.store.execute(
            "SELECT o.id, o.sensor_id, o.phenomenon_time, o.result, o.result_time "
            "FROM oup_observations o WHERE o.id = ?", (oid,))
        row = row[0] if row else None
        return self._observation_features([row], Query(crs=crs))[0] if row else None

    def _observation_features(self, rows, q: Query) -> list[dict]:
        sensors = self.sensors({r[1] for r in rows}, q.crs, q.skip_geometry)
        select = set(q.select) if q.select else None
        out = []
        for oid, sid, t, result, rt in rows:
            props = {"phenomenonTime": iso_us(t), "result": result, "resultTime": iso_us(rt)}
            f = self._feature(sensors.get(sid), oid, props)
            if f["properties"][self.s.id_field] is None:
                f["properties"][self.s.id_field] = sid
            if select is not None:
                f["properties"] = {k: v for k, v in f["properties"].items() if k in select}
            out.append(f)
        return out

    # -- time slices ------------------------------------------------------------------------
    def slice_range(self, interval, length: int) -> tuple[int, int] | None:
        """First and last slice number a ``datetime`` touches (None: no data to slice)."""
        bounds = self.time_range()
        if bounds is None:
            return None
        if interval is None:  # the latest slice with data
            k = bounds[1] // length
            return k, k
        start, end = interval
        k0 = (us_of(start) if start is not None else bounds[0]) // length
        k1 = (us_of(end) if end is not None else bounds[1]) // length
        return k0, k1

    def slices(self, q: Query, seconds: int) -> Page:
        length = seconds * 1_000_000
        span = self.slice_range(q.interval, length)
        if span is None:
            return Page([], 0)
        if q.sortby:
            raise InvalidQuery("time slices come ordered by slice, then sensor; drop sortby",
                               "sortby")
        where_s, ps = self._sensor_filter(q)
        k = _floor("o.phenomenon_time", length)
        grouped = (f"SELECT o.sensor_id AS sensor_id, {k} AS k, AVG(o.result), MIN(o.result), "
                   f"MAX(o.result), COUNT(*) FROM oup_observations o "
                   f"WHERE o.phenomenon_time >= ? AND o.phenomenon_time < ?{where_s} "
                   f"GROUP BY o.sensor_id, k")
        params = [span[0] * length, (span[1] + 1) * length] + ps
        matched = None
        if q.count:
            matched = self.store.execute(f"SELECT COUNT(*) FROM ({grouped}) AS g", params)[0][0]
        rows = self.store.execute(f"{grouped} ORDER BY k, o.sensor_id LIMIT ? OFFSET ?",
                                  params + [q.limit, q.offset])
        return Page(self._slice_features(rows, length, q), matched)

    def slice(self, fid: str, seconds: int, crs: str = "OGC:CRS84") -> dict | None:
        """One sensor in one slice, by the id ``<sensor>@<slice start>``."""
        sensor, _, start = str(fid).rpartition("@")
        try:
            t = us_of(datetime.fromisoformat(start.replace("Z", "+00:00")))
        except ValueError:
            return None
        length = seconds * 1_000_000
        if t % length:
            return None
        row = self.store.execute(
            "SELECT sensor_id, CAST(? AS BIGINT) AS k, AVG(result), MIN(result), MAX(result), COUNT(*) "
            "FROM oup_observations WHERE sensor_id = ? AND phenomenon_time >= ? "
            "AND phenomenon_time < ? GROUP BY sensor_id",
            (t // length, sensor, t, t + length))
        row = row[0] if row else None
        return self._slice_features([row], length, Query(crs=crs))[0] if row else None

    def _slice_features(self, rows, length: int, q: Query) -> list[dict]:
        sensors = self.sensors({r[0] for r in rows}, q.crs, q.skip_geometry)
        out = []
        for sid, k, mean, lo, hi, n in rows:
            start = iso_us(k * length)
            props = {"slice_start": start, "slice_end": iso_us((k + 1) * length),
                     "mean": mean, "min": lo, "max": hi, "count": n}
            f = self._feature(sensors.get(sid), f"{sid}@{start}", props)
            if q.select:
                f["properties"] = {k_: v for k_, v in f["properties"].items() if k_ in q.select}
            out.append(f)
        return out

    # -- series (EDR) ---------------------------------------------------------------------------
    def per_sensor(self, sensor_ids: list[str], interval) -> list[tuple[str, int, float,
                                                                        float, float]]:
        """(sensor, count, sum, min, max) of the results within ``interval``, of each of
        these sensors. Where the store keeps sums per hour (the GeoPackage:
        ``observation_hours``), the hours the window covers whole are read from them and
        only its ragged ends from the observations. Named, the sensors are each an index
        seek and a range: of the hours, or of the (sensor, time, result) index of the
        observations, which SQLite reads without the table, in sensor order (no sort)."""
        start, end = self._window(interval)
        parts = observation_hours.split(start, end) if self._has_hours() else None
        if parts is None:
            return self._per_sensor_raw(sensor_ids, start, end)
        (first, last), ends = parts
        where, params = "", []
        if first is not None:
            where, params = where + " AND hour >= ?", params + [first]
        if last is not None:
            where, params = where + " AND hour <= ?", params + [last]
        merged: dict[str, list] = {}
        rows = []
        for chunk in _chunks(sensor_ids):
            rows += self.store.execute(
                f"SELECT sensor_id, SUM(n), SUM(total), MIN(lo), MAX(hi) FROM "
                f"{observation_hours.TABLE} WHERE sensor_id IN ({','.join('?' * len(chunk))})"
                f"{where} GROUP BY sensor_id", chunk + params)
        for lo, hi in ends:
            rows += self._per_sensor_raw(sensor_ids, lo, hi)
        for sid, n, total, lo, hi in rows:
            seen = merged.get(sid)
            if seen is None:
                merged[sid] = [n, total, lo, hi]
            else:
                seen[0], seen[1] = seen[0] + n, seen[1] + total
                seen[2], seen[3] = min(seen[2], lo), max(seen[3], hi)
        return [(sid, *v) for sid, v in merged.items()]

    def _per_sensor_raw(self, sensor_ids: list[str], start: int | None,
                        end: int | None) -> list:
        where_t, pt = self._between(start, end)
        out: list = []
        for chunk in _chunks(sensor_ids):
            out += self.store.execute(
                f"SELECT o.sensor_id, COUNT(o.result), SUM(o.result), MIN(o.result), "
                f"MAX(o.result) FROM oup_observations o WHERE o.sensor_id IN "
                f"({','.join('?' * len(chunk))}) AND o.result IS NOT NULL{where_t} "
                f"GROUP BY o.sensor_id", chunk + pt)
        return out

    def _has_hours(self) -> bool:
        if self._hours is None:
            self._hours = getattr(self.store, "SQL_DIALECT", "") != "postgresql" and \
                observation_hours.exists(self.store.execute)
        return self._hours

    @staticmethod
    def _window(interval) -> tuple[int | None, int | None]:
        """``interval`` in microseconds, both ends included (None: open)."""
        if interval is None:
            return None, None
        start, end = interval
        return (None if start is None else us_of(start)), (None if end is None else us_of(end))

    @staticmethod
    def _between(start: int | None, end: int | None) -> tuple[str, list]:
        sql, params = "", []
        if start is not None:
            sql, params = sql + " AND o.phenomenon_time >= ?", params + [start]
        if end is not None:
            sql, params = sql + " AND o.phenomenon_time <= ?", params + [end]
        return sql, params

    def percentiles(self, groups: dict[int, list[str]], interval,
                    ranks: list[int]) -> dict[int, dict[int, float]]:
        """Percentiles ``ranks`` (0-100, linear between the closest ranks) of the results
        of each group of sensors within ``interval``: {group: {rank: value}} (a group
        without results left out). PostgreSQL computes them itself (percentile_cont, one
        statement for every group). Elsewhere the group's count (``per_sensor``) says
        which two ranks a percentile lies between, and SQLite sorts for just those: the
        top of the values from the nearer end (a p90 keeps a tenth of them in its sort),
        so the values never come out of the database one by one."""
        if getattr(self.store, "SQL_DIALECT", "") != "postgresql":
            return {g: known for g, sids in groups.items()
                    if (known := self._ranked(sids, interval, ranks))}
        where_t, pt = self._time_filter(interval)
        pairs = [(sid, g) for g, sids in groups.items() for sid in sids]
        if not pairs:
            return {}
        rows = self.store.execute(
            f"WITH a (sensor_id, grp) AS (VALUES {','.join(['(?::text, ?::int)'] * len(pairs))}) "
            f"SELECT a.grp, percentile_cont(?::float8[]) WITHIN GROUP (ORDER BY o.result) "
            f"FROM oup_observations o JOIN a ON o.sensor_id = a.sensor_id "
            f"WHERE o.result IS NOT NULL{where_t} GROUP BY a.grp",
            [x for pair in pairs for x in pair] + [[r / 100 for r in ranks]] + pt)
        return {g: dict(zip(ranks, values)) for g, values in rows}

    def _ranked(self, sensor_ids: list[str], interval, ranks: list[int]) -> dict[int, float]:
        """The percentiles of these sensors' results (see ``percentiles``), in SQLite:
        the count and the sorts in one read transaction (one snapshot: readings being
        written do not shift the ranks between them)."""
        import json

        where_t, pt = self._time_filter(interval)
        # any number of sensors in one parameter: one sort over all of them
        sql = (f"SELECT o.result FROM oup_observations o WHERE o.sensor_id IN (SELECT value "
               f"FROM json_each(?)) AND o.result IS NOT NULL{where_t} ORDER BY o.result")
        ids, out = json.dumps(sensor_ids), {}
        self.store.execute("BEGIN")
        try:
            n = sum(int(row[1]) for row in self.per_sensor(sensor_ids, interval))
            for rank in ranks if n else ():
                at = (n - 1) * rank / 100
                lo = int(at)
                hi = min(lo + 1, n - 1)
                if lo <= n - 1 - hi:  # the nearer end: the sort keeps fewer values
                    values = [r[0] for r in self.store.execute(
                        f"{sql} LIMIT ? OFFSET ?", [ids, *pt, hi - lo + 1, lo])]
                else:
                    values = [r[0] for r in self.store.execute(
                        f"{sql} DESC LIMIT ? OFFSET ?", [ids, *pt, hi - lo + 1, n - 1 - hi])]
                    values.reverse()
                a, b = values[0], values[-1]
                out[rank] = a + (b - a) * (at - lo)
        finally:
            self.store.execute("COMMIT")
        return out

    def series(self, sensor_ids: list[str], interval) -> dict[str, list[tuple[int, float]]]:
        """(time, result) per sensor, in time order, within ``interval``."""
        if not sensor_ids:
            return {}
        where_t, pt = self._time_filter(interval)
        out: dict[str, list] = {s: [] for s in sensor_ids}
        total = 0
        for i in range(0, len(sensor_ids), 500):
            chunk = sensor_ids[i:i + 500]
            rows = self.store.execute(
                f"SELECT o.sensor_id, o.phenomenon_time, o.result FROM oup_observations o "
                f"WHERE o.sensor_id IN ({','.join('?' * len(chunk))}){where_t} "
                f"ORDER BY o.sensor_id, o.phenomenon_time LIMIT ?",
                chunk + pt + [MAX_SERIES_VALUES + 1 - total])
            total += len(rows)
            if total > MAX_SERIES_VALUES:
                raise InvalidQuery(f"more than {MAX_SERIES_VALUES} values: narrow datetime "
                                   "or the area", "datetime")
            for sid, t, v in rows:
                out[sid].append((t, v))
        return out


def _chunks(ids: list[str], size: int = 30_000):
    """``ids`` in lists short enough for one statement's parameters (SQLite takes 32,766,
    PostgreSQL 65,535): one statement for any city's sensors, as a second one would read
    the week again where the store scans it."""
    ids = list(ids)
    return [ids[i:i + size] for i in range(0, len(ids), size)]
