"""Observations, dead letters and ingest counters in PostGIS: the same contract as
``observations.py`` (see there), written set-based for a network database.

A batch is one transaction of a few statements, whatever its size: observations go in
with ``INSERT ... SELECT FROM unnest(...) ON CONFLICT ... RETURNING``. A key that occurs
twice in one batch would be touched twice by one statement (PostgreSQL refuses), so the
batch is applied in rounds of unique keys, which gives exactly the answers of applying
the messages one by one. The table is partitioned by month of phenomenon time; a month's
partition is made when its first observation arrives.
"""
from __future__ import annotations

from datetime import datetime, timezone

from oup.sensors.observations import DeadLetter, Observation, SensorHome, us_of
from oup.store.base import BatchResult, StoreBusy
from oup.store.cql import quote
from oup.store.events import SqlEventLog
from oup.store.observation_sql import SqlObservations, tally
from oup.store.placeholders import pg_sql

_UPSERT = """
INSERT INTO oup_observations (sensor_id, phenomenon_time, result, result_time, stored_at)
SELECT * FROM unnest(?::text[], ?::bigint[], ?::float8[], ?::bigint[], ?::bigint[])
ON CONFLICT (sensor_id, phenomenon_time) DO UPDATE SET
  result = excluded.result, result_time = excluded.result_time,
  stored_at = excluded.stored_at, revision = oup_observations.revision + 1
WHERE excluded.result_time IS NOT NULL
  AND (oup_observations.result_time IS NULL OR excluded.result_time > oup_observations.result_time)
RETURNING sensor_id, phenomenon_time, revision, id"""
_INSERT_KEYED = """
INSERT INTO oup_observations (sensor_id, phenomenon_time, result, result_time, dedupe_key,
  stored_at)
SELECT * FROM unnest(?::text[], ?::bigint[], ?::float8[], ?::bigint[], ?::text[],
  ?::bigint[])
ON CONFLICT (sensor_id, phenomenon_time) DO NOTHING
RETURNING sensor_id, phenomenon_time, revision, id"""
_PARTITION_LOCK = 7_400_392


def _month(us: int) -> tuple[int, int, int]:
    """(partition suffix, start, end) of the month holding ``us``."""
    d = datetime.fromtimestamp(us / 1e6, timezone.utc)
    start = datetime(d.year, d.month, 1, tzinfo=timezone.utc)
    end = datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=timezone.utc)
    return d.year * 100 + d.month, us_of(start), us_of(end)


class PostGISObservationStore(SqlObservations, SqlEventLog):
    numbered_under_lock = True

    def __init__(self, url: str, busy_timeout: float = 30.0, schema: bool = True):
        import psycopg

        from oup.store.migrations import migrate

        self.url, self.busy_timeout = url, busy_timeout
        self._psycopg = psycopg
        self._con = None
        self._partitions: set[int] = set()
        if schema:
            with psycopg.connect(url, autocommit=True) as con:
                migrate(con)

    @property
    def con(self):
        if self._con is None or self._con.closed:
            self._con = self._psycopg.connect(self.url, autocommit=True)
            # a lock held elsewhere shows as StoreBusy (retried, counted), not a silent wait
            self._con.execute(f"SET lock_timeout = '{int(self.busy_timeout * 1000)}ms'")
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()

    def execute(self, sql: str, params=()) -> list[tuple]:
        cur = self.con.execute(pg_sql(sql), list(params))
        return cur.fetchall() if cur.description else []

    def _executemany(self, sql: str, rows: list) -> None:
        if rows:
            self.con.cursor().executemany(pg_sql(sql), rows)

    def _transaction(self):
        return self.con.transaction()

    # -- writing ---------------------------------------------------------------------------
    def write_batch(self, ingester: str, messages: list[list[Observation] | DeadLetter],
                    sensor_tables: dict[str, SensorHome] | None = None) -> BatchResult:
        errors = self._psycopg.errors
        try:
            con = self.con
            with con.transaction():
                return self._write(ingester, messages, sensor_tables or {})
        except (errors.LockNotAvailable, errors.DeadlockDetected,
                self._psycopg.OperationalError) as exc:
            if self._con is not None and self._con.closed:
                self._con = None
            raise StoreBusy(str(exc)) from exc

    def _write(self, ingester, messages, tables) -> BatchResult:
        res = BatchResult(messages=len(messages))
        now = us_of(datetime.now(timezone.utc))
        self._ensure_partitions({o.phenomenon_time for m in messages
                                      if not isinstance(m, DeadLetter) for o in m})
        dead = [m for m in messages if isinstance(m, DeadLetter)]
        self._insert_dead_letters(dead, now)
        res.dead_lettered = len(dead)
        hits: dict[int, int] = {}  # message index -> observations written
        latest: dict[str, list] = {}
        # keyed observations: the key table says whether the frame was seen
        keyed = [(i, o) for i, m in enumerate(messages) if not isinstance(m, DeadLetter)
                 for o in m if o.dedupe_key is not None]
        if keyed:
            keys = list(dict.fromkeys(o.dedupe_key for _, o in keyed))
            fresh = {r[0] for r in self.execute(
                "INSERT INTO oup_observation_keys SELECT unnest(?::text[]) "
                "ON CONFLICT DO NOTHING RETURNING dedupe_key", (keys,))}
            first = {}
            for i, o in keyed:
                if o.dedupe_key in fresh and o.dedupe_key not in first:
                    first[o.dedupe_key] = (i, o)
            if first:
                rows = self.execute(_INSERT_KEYED, list(map(list, zip(*[
                    (o.sensor_id, o.phenomenon_time, o.result, o.result_time, o.dedupe_key, now)
                    for _, o in first.values()]))))
                stored = {(s, t): oid for s, t, _, oid in rows}
                for i, o in first.values():
                    if (o.sensor_id, o.phenomenon_time) in stored:
                        hits[i] = hits.get(i, 0) + 1
                        tally(res, latest, o, False, stored[o.sensor_id, o.phenomenon_time])
        # plain observations, in rounds of unique keys
        pending = [(i, o) for i, m in enumerate(messages) if not isinstance(m, DeadLetter)
                   for o in m if o.dedupe_key is None]
        while pending:
            seen, this, rest = set(), [], []
            for i, o in pending:
                key = (o.sensor_id, o.phenomenon_time)
                (rest if key in seen else this).append((i, o))
                seen.add(key)
            rows = self.execute(_UPSERT, list(map(list, zip(*[
                (o.sensor_id, o.phenomenon_time, o.result, o.result_time, now)
                for _, o in this]))))
            outcome = {(s, t): (rev, oid) for s, t, rev, oid in rows}
            for i, o in this:
                written = outcome.get((o.sensor_id, o.phenomenon_time))
                if written is None:
                    continue
                hits[i] = hits.get(i, 0) + 1
                tally(res, latest, o, bool(written[0]), written[1])
            pending = rest
        for i, m in enumerate(messages):
            if not isinstance(m, DeadLetter):
                if hits.get(i):
                    res.stored += 1
                else:
                    res.duplicates += 1
        self._update_latest(latest, tables)
        self._add_counters(ingester, res, now)
        self._append_events(self._batch_events(latest, tables))  # last: it takes a lock
        return res

    def _ensure_partitions(self, times: set[int]) -> None:
        months = {_month(t) for t in times}
        for suffix, start, end in sorted(months):
            if suffix in self._partitions:
                continue
            self.execute("SELECT pg_advisory_xact_lock(?)", (_PARTITION_LOCK,))
            self.execute(f"CREATE TABLE IF NOT EXISTS oup_observations_{suffix} PARTITION OF "
                        f"oup_observations FOR VALUES FROM ({start}) TO ({end})")
            self._partitions.add(suffix)

    def _update_latest(self, latest, tables) -> None:
        for (table, id_field), rows in self._latest_by_table(latest, tables).items():
            # one statement per table
            times, values, sensors = map(list, zip(*rows))
            self.execute(
                f"UPDATE {quote(table)} AS f SET latest_time = v.t, latest_result = v.r "
                f"FROM unnest(?::timestamptz[], ?::float8[], ?::text[]) AS v(t, r, s) "
                f"WHERE f.{quote(id_field)} = v.s AND (f.latest_time IS NULL OR "
                f"f.latest_time <= v.t)", (times, values, sensors))
