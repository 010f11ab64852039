"""Reading the observations: as features, as time slices, as series per sensor (EDR).

Everything is SQL over ``oup_observations`` joined to the sensors' feature table, so bbox,
property filters and CQL2 on the sensors reuse the feature store's WHERE clause (with its
R*Tree) as a sub-query choosing sensors; times are filtered on the indexed integer
phenomenon time. Slices are ``[start, start + length)``, aligned to the epoch (so to the
quarter hour for 15 minutes), and the slice number of a time is its floor division.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from oup.store import observation_hours, ranks
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

    def per_group(self, groups: dict[int, list[str]], interval, ranks: list[int]
                  ) -> dict[int, tuple[int, float, float, float, dict[int, float]]]:
        """Count, sum, min, max and the percentiles ``ranks`` (0-100, linear between the
        closest ranks) of the results within ``interval`` of each group of sensors:
        {group: (n, sum, min, max, {rank: value})}, a group without results left out.
        Percentiles are exact without a sort of the values (``oup.store.ranks``): a
        sample of each group brackets each percentile, one scan of the group's rows
        counts those below and hands over those inside, numpy picks the rank."""
        if getattr(self.store, "SQL_DIALECT", "") == "postgresql":
            return self._per_group_pg(groups, interval, ranks)
        ids = sorted({sid for sids in groups.values() for sid in sids})
        # one read transaction: the counts, the sample and the scans see one snapshot
        self.store.execute("BEGIN")
        try:
            out = self._merged(groups, self.per_sensor(ids, interval))
            for g, (n, *_, known) in out.items():
                known.update(self._ranked(groups[g], interval, ranks, n) if ranks else {})
        finally:
            self.store.execute("COMMIT")
        return out

    @staticmethod
    def _merged(groups: dict[int, list[str]], per_sensor: list) -> dict:
        """``per_sensor``'s rows summed per group, as ``per_group`` gives them (no
        percentiles yet)."""
        sums = {sid: rest for sid, *rest in per_sensor}
        out = {}
        for g, sids in groups.items():
            rows = [sums[sid] for sid in sids if sid in sums]
            n = sum(int(r[0]) for r in rows)
            if n:
                out[g] = (n, sum(float(r[1]) for r in rows), min(r[2] for r in rows),
                          max(r[3] for r in rows), {})
        return out

    def _sample(self, sids: list[str], interval) -> np.ndarray:
        """Some of the group's results within ``interval``, sorted, in SQLite: each
        sensor's first reading at or after instants spread over the window (an index
        seek each)."""
        start, end = self._window(interval)
        if start is None or end is None:
            known = self.time_range()
            if known is None:
                return np.empty(0)
            start = known[0] if start is None else start
            end = known[1] if end is None else end
        at = ranks.times(start, end, ranks.per_sensor(len(sids)))
        rows = self.store.execute(
            "SELECT (SELECT o.result FROM oup_observations o WHERE o.sensor_id = s.value "
            "AND o.phenomenon_time >= t.value AND o.phenomenon_time <= ? AND o.result IS "
            "NOT NULL ORDER BY o.phenomenon_time LIMIT 1) FROM json_each(?) s, json_each(?) t",
            [end, json.dumps(sids), json.dumps(at)])
        return np.sort(np.array([r[0] for r in rows if r[0] is not None], np.float64))

    def _ranked(self, sids: list[str], interval, wanted: list[int], n: int
                ) -> dict[int, float]:
        """The percentiles ``wanted`` of these sensors' ``n`` results, in SQLite: one
        scan for all of them, a sort from the nearer end for one its bracket missed."""
        where_t, pt = self._time_filter(interval)
        of = (f"FROM oup_observations o WHERE o.sensor_id IN (SELECT value FROM "
              f"json_each(?)) AND o.result IS NOT NULL{where_t}")
        ids = json.dumps(sids)
        sample = self._sample(sids, interval)
        brackets = [ranks.bracket(sample, r) for r in wanted]
        row = self.store.execute(
            "SELECT " + ", ".join(["SUM(o.result < ?), oup_doubles(o.result) FILTER "
                                   "(WHERE o.result >= ? AND o.result <= ?)"] * len(wanted))
            + f" {of}", [x for lo, hi in brackets for x in (lo, lo, hi)] + [ids, *pt])[0]
        out = {}
        for i, rank in enumerate(wanted):
            value = ranks.pick(n, int(row[2 * i] or 0), ranks.doubles(row[2 * i + 1]), rank)
            if value is None:  # the sample misled: sort for the two ranks
                at, lo, hi = ranks.positions(n, rank)
                if lo <= n - 1 - hi:  # the nearer end: the sort keeps fewer values
                    values = [r[0] for r in self.store.execute(
                        f"SELECT o.result {of} ORDER BY o.result LIMIT ? OFFSET ?",
                        [ids, *pt, hi - lo + 1, lo])]
                else:
                    values = [r[0] for r in self.store.execute(
                        f"SELECT o.result {of} ORDER BY o.result DESC LIMIT ? OFFSET ?",
                        [ids, *pt, hi - lo + 1, n - 1 - hi])][::-1]
                value = ranks.between(values[0], values[-1], at)
            out[rank] = value
        return out

    def _per_group_pg(self, groups: dict[int, list[str]], interval, wanted: list[int]
                      ) -> dict[int, tuple[int, float, float, float, dict[int, float]]]:
        """``per_group`` on PostgreSQL: one statement, one scan of the window's rows for
        the sums and the brackets of every group (each sensor's row of ``a`` carries its
        group's); percentile_cont for a percentile whose bracket missed."""
        where_t, pt = self._time_filter(interval)
        members = [(sid, g) for g, sids in groups.items() for sid in sids]
        if not members:
            return {}
        if not wanted:  # sums alone: per sensor (an aggregate of ~1,000 groups) is cheaper
            return self._merged(groups, self.per_sensor(sorted(dict(members)), interval))
        samples = self._samples_pg(members, interval) if wanted else {}
        brackets = {g: [ranks.bracket(samples.get(g, np.empty(0)), r) for r in wanted]
                    for g in groups}
        names, cols = ["sensor_id", "grp"], ""
        for i in range(len(wanted)):
            names += [f"lo{i}", f"hi{i}"]
            cols += (f", count(*) FILTER (WHERE o.result < a.lo{i}), array_agg(o.result) "
                     f"FILTER (WHERE o.result >= a.lo{i} AND o.result <= a.hi{i})")
        # (a list of VALUES, not arrays: PostgreSQL then hashes the sensors, not the rows;
        # the bounds are only cut points, any float8 near them does)
        rows = self.store.execute(
            f"WITH a ({', '.join(names)}) AS (VALUES " + ",".join(
                "(?::text, ?::int" + "".join(f", '{x!r}'::float8" for pair in brackets[g]
                                         for x in pair) + ")" for _, g in members) + ") "
            f"SELECT a.grp, count(o.result), sum(o.result), min(o.result), max(o.result)"
            f"{cols} FROM oup_observations o JOIN a ON o.sensor_id = a.sensor_id "
            f"WHERE o.result IS NOT NULL{where_t} GROUP BY a.grp",
            [x for pair in members for x in pair] + pt)
        out, missed = {}, {}
        for g, n, total, lo, hi, *picks in rows:
            known = {}
            for i, rank in enumerate(wanted):
                value = ranks.pick(n, picks[2 * i], np.asarray(picks[2 * i + 1] or [],
                                                               np.float64), rank)
                if value is None:
                    missed.setdefault(g, []).append(rank)
                else:
                    known[rank] = value
            out[g] = (n, total, lo, hi, known)
        for g, missing in missed.items():  # the sample misled: PostgreSQL sorts the group
            (values,), = self.store.execute(
                f"SELECT percentile_cont(?::float8[]) WITHIN GROUP (ORDER BY o.result) "
                f"FROM oup_observations o WHERE o.sensor_id = ANY(?::text[]) "
                f"AND o.result IS NOT NULL{where_t}",
                [[r / 100 for r in missing], groups[g]] + pt)
            out[g][4].update(zip(missing, values))
        return out

    def _samples_pg(self, members: list[tuple[str, int]], interval) -> dict[int, np.ndarray]:
        """Some of each group's results within ``interval``, sorted: PostgreSQL reads a
        share of the table's pages at random (TABLESAMPLE SYSTEM), sized by its
        estimate of the window's rows to give about ``ranks.SAMPLE`` values a group."""
        where_t, pt = self._time_filter(interval)
        sids = [sid for sid, _ in members]
        (plan,), = self.store.execute(
            f"EXPLAIN (FORMAT JSON) SELECT 1 FROM oup_observations o WHERE "
            f"o.sensor_id = ANY(?::text[]){where_t}", [sids] + pt)
        plan = json.loads(plan) if isinstance(plan, str) else plan
        groups = len({g for _, g in members})
        rows = max(1.0, plan[0]["Plan"]["Plan Rows"])
        share = min(100.0, 100.0 * ranks.SAMPLE * groups / rows)
        rows = self.store.execute(
            f"WITH a (sensor_id, grp) AS (VALUES "
            f"{','.join(['(?::text, ?::int)'] * len(members))}) SELECT a.grp, o.result "
            f"FROM oup_observations o TABLESAMPLE SYSTEM (?) JOIN a ON o.sensor_id = "
            f"a.sensor_id WHERE o.result IS NOT NULL{where_t}",
            [x for pair in members for x in pair] + [share] + pt)
        out: dict[int, list[float]] = {}
        for g, value in rows:
            out.setdefault(g, []).append(value)
        return {g: np.sort(np.array(values, np.float64)) for g, values in out.items()}

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
