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

from iot_ingest.payloads import MAX_PAYLOAD, Observation

from .cql import quote
from .observations import (COUNTERS, TRUNCATED_LIMIT, BatchResult, DeadLetter, StoreBusy,
                           iso_us, tally, us_of)

_UPSERT = """
INSERT INTO oup_observations (sensor_id, phenomenon_time, result, result_time, stored_at)
SELECT * FROM unnest(%s::text[], %s::bigint[], %s::float8[], %s::bigint[], %s::bigint[])
ON CONFLICT (sensor_id, phenomenon_time) DO UPDATE SET
  result = excluded.result, result_time = excluded.result_time,
  stored_at = excluded.stored_at, revision = oup_observations.revision + 1
WHERE excluded.result_time IS NOT NULL
  AND (oup_observations.result_time IS NULL OR excluded.result_time > oup_observations.result_time)
RETURNING sensor_id, phenomenon_time, revision"""
_INSERT_KEYED = """
INSERT INTO oup_observations (sensor_id, phenomenon_time, result, result_time, dedupe_key,
  stored_at)
SELECT * FROM unnest(%s::text[], %s::bigint[], %s::float8[], %s::bigint[], %s::text[],
  %s::bigint[])
ON CONFLICT (sensor_id, phenomenon_time) DO NOTHING
RETURNING sensor_id, phenomenon_time, revision"""
_PARTITION_LOCK = 7_400_392


def _month(us: int) -> tuple[int, int, int]:
    """(partition suffix, start, end) of the month holding ``us``."""
    d = datetime.fromtimestamp(us / 1e6, timezone.utc)
    start = datetime(d.year, d.month, 1, tzinfo=timezone.utc)
    end = datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=timezone.utc)
    return d.year * 100 + d.month, us_of(start), us_of(end)


class PGObservationStore:
    def __init__(self, url: str, busy_timeout: float = 30.0):
        import psycopg

        from .migrations import migrate

        self.url, self.busy_timeout = url, busy_timeout
        self._psycopg = psycopg
        self._con = None
        self._partitions: set[int] = set()
        with psycopg.connect(url, autocommit=True) as con:
            migrate(con)

    @property
    def con(self):
        if self._con is None or self._con.closed:
            self._con = self._psycopg.connect(self.url, autocommit=True)
            # a lock held elsewhere shows as StoreBusy (retried, counted), not a silent wait
            self._con.execute(f"SET lock_timeout = '{int(self.busy_timeout * 1000)}ms'")
        return self._con

    def execute(self, sql: str, params=()) -> list[tuple]:
        from .postgis import pg_sql

        cur = self.con.execute(pg_sql(sql), list(params))
        return cur.fetchall() if cur.description else []

    # -- writing ---------------------------------------------------------------------------
    def write_batch(self, ingester: str, messages: list[list[Observation] | DeadLetter],
                    sensor_tables: dict[str, tuple[str, str]] | None = None) -> BatchResult:
        errors = self._psycopg.errors
        try:
            con = self.con
            with con.transaction():
                return self._write(con, ingester, messages, sensor_tables or {})
        except (errors.LockNotAvailable, errors.DeadlockDetected,
                self._psycopg.OperationalError) as exc:
            if self._con is not None and self._con.closed:
                self._con = None
            raise StoreBusy(str(exc)) from exc

    def _write(self, con, ingester, messages, tables) -> BatchResult:
        res = BatchResult(messages=len(messages))
        now = us_of(datetime.now(timezone.utc))
        self._ensure_partitions(con, {o.phenomenon_time for m in messages
                                      if not isinstance(m, DeadLetter) for o in m})
        dead = [m for m in messages if isinstance(m, DeadLetter)]
        if dead:
            con.cursor().executemany(
                "INSERT INTO oup_dead_letters (received_at, topic, reason, payload, "
                "payload_size) VALUES (%s, %s, %s, %s, %s)",
                [(now, d.topic[:1024], d.reason[:1024],
                  d.payload if len(d.payload) <= MAX_PAYLOAD else d.payload[:TRUNCATED_LIMIT],
                  len(d.payload)) for d in dead])
        res.dead_lettered = len(dead)
        hits: dict[int, int] = {}  # message index -> observations written
        latest: dict[str, tuple[int, float]] = {}
        # keyed observations: the key table says whether the frame was seen
        keyed = [(i, o) for i, m in enumerate(messages) if not isinstance(m, DeadLetter)
                 for o in m if o.dedupe_key is not None]
        if keyed:
            keys = list(dict.fromkeys(o.dedupe_key for _, o in keyed))
            fresh = {r[0] for r in con.execute(
                "INSERT INTO oup_observation_keys SELECT unnest(%s::text[]) "
                "ON CONFLICT DO NOTHING RETURNING dedupe_key", (keys,))}
            first = {}
            for i, o in keyed:
                if o.dedupe_key in fresh and o.dedupe_key not in first:
                    first[o.dedupe_key] = (i, o)
            if first:
                rows = con.execute(_INSERT_KEYED, list(map(list, zip(*[
                    (o.sensor_id, o.phenomenon_time, o.result, o.result_time, o.dedupe_key, now)
                    for _, o in first.values()])))).fetchall()
                stored = {(s, t) for s, t, _ in rows}
                for i, o in first.values():
                    if (o.sensor_id, o.phenomenon_time) in stored:
                        hits[i] = hits.get(i, 0) + 1
                        res.observations_stored += 1
                        s = latest.get(o.sensor_id)
                        if s is None or o.phenomenon_time >= s[0]:
                            latest[o.sensor_id] = (o.phenomenon_time, o.result)
        # plain observations, in rounds of unique keys
        pending = [(i, o) for i, m in enumerate(messages) if not isinstance(m, DeadLetter)
                   for o in m if o.dedupe_key is None]
        while pending:
            seen, this, rest = set(), [], []
            for i, o in pending:
                key = (o.sensor_id, o.phenomenon_time)
                (rest if key in seen else this).append((i, o))
                seen.add(key)
            rows = con.execute(_UPSERT, list(map(list, zip(*[
                (o.sensor_id, o.phenomenon_time, o.result, o.result_time, now)
                for _, o in this])))).fetchall()
            outcome = {(s, t): rev for s, t, rev in rows}
            for i, o in this:
                rev = outcome.get((o.sensor_id, o.phenomenon_time))
                if rev is None:
                    continue
                hits[i] = hits.get(i, 0) + 1
                tally(res, latest, o, bool(rev))
            pending = rest
        for i, m in enumerate(messages):
            if not isinstance(m, DeadLetter):
                if hits.get(i):
                    res.stored += 1
                else:
                    res.duplicates += 1
        self._update_latest(con, latest, tables)
        con.execute(
            "INSERT INTO oup_ingest_counters (ingester, received, stored, duplicates, "
            "dead_lettered, observations_stored, observations_corrected, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (ingester) DO UPDATE SET "
            "received = oup_ingest_counters.received + excluded.received, "
            "stored = oup_ingest_counters.stored + excluded.stored, "
            "duplicates = oup_ingest_counters.duplicates + excluded.duplicates, "
            "dead_lettered = oup_ingest_counters.dead_lettered + excluded.dead_lettered, "
            "observations_stored = oup_ingest_counters.observations_stored "
            "+ excluded.observations_stored, observations_corrected = "
            "oup_ingest_counters.observations_corrected + excluded.observations_corrected, "
            "updated_at = excluded.updated_at",
            (ingester, res.messages, res.stored, res.duplicates, res.dead_lettered,
             res.observations_stored, res.observations_corrected, now))
        return res

    def _ensure_partitions(self, con, times: set[int]) -> None:
        months = {_month(t) for t in times}
        for suffix, start, end in sorted(months):
            if suffix in self._partitions:
                continue
            con.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK,))
            con.execute(f"CREATE TABLE IF NOT EXISTS oup_observations_{suffix} PARTITION OF "
                        f"oup_observations FOR VALUES FROM ({start}) TO ({end})")
            self._partitions.add(suffix)

    def _update_latest(self, con, latest, tables) -> None:
        by_table: dict[tuple[str, str], list] = {}
        for sensor, (t, value) in latest.items():
            if sensor in tables:
                by_table.setdefault(tables[sensor], []).append((iso_us(t), value, sensor))
        for (table, id_field), rows in by_table.items():  # one statement per table
            times, values, sensors = map(list, zip(*rows))
            con.execute(
                f"UPDATE {quote(table)} AS f SET latest_time = v.t, latest_result = v.r "
                f"FROM unnest(%s::timestamptz[], %s::float8[], %s::text[]) AS v(t, r, s) "
                f"WHERE f.{quote(id_field)} = v.s AND (f.latest_time IS NULL OR "
                f"f.latest_time <= v.t)", (times, values, sensors))

    def refresh_latest(self, table: str, id_field: str) -> int:
        rows = self.execute(
            "SELECT DISTINCT ON (sensor_id) sensor_id, phenomenon_time, result "
            "FROM oup_observations ORDER BY sensor_id, phenomenon_time DESC")
        with self.con.transaction():
            self.con.cursor().executemany(
                f"UPDATE {quote(table)} SET latest_time = %s::timestamptz, latest_result = %s "
                f"WHERE {quote(id_field)} = %s", [(iso_us(t), v, s) for s, t, v in rows])
        return len(rows)

    # -- dead letters, counters, reading -----------------------------------------------------
    def dead_letters(self, limit: int = 100, replayed: bool = False,
                     ids: list[int] | None = None) -> list[dict]:
        sql = ("SELECT id, received_at, topic, reason, payload, payload_size, replayed "
               "FROM oup_dead_letters WHERE (NOT replayed OR %s)")
        args: list = [replayed]
        if ids:
            sql += " AND id = ANY(%s)"
            args.append(list(ids))
        rows = self.con.execute(sql + " ORDER BY id LIMIT %s", args + [limit]).fetchall()
        keys = ("id", "received_at", "topic", "reason", "payload", "payload_size", "replayed")
        return [dict(zip(keys, r)) for r in rows]

    def mark_replayed(self, outcomes: dict[int, str | None]) -> None:
        with self.con.transaction():
            cur = self.con.cursor()
            cur.executemany("UPDATE oup_dead_letters SET replayed = true WHERE id = %s",
                            [(i,) for i, why in outcomes.items() if why is None])
            cur.executemany("UPDATE oup_dead_letters SET reason = %s WHERE id = %s",
                            [(why[:1024], i) for i, why in outcomes.items() if why])

    def counters(self) -> dict[str, dict[str, int]]:
        rows = self.execute(f"SELECT ingester, {', '.join(COUNTERS)} "
                            "FROM oup_ingest_counters ORDER BY ingester")
        return {r[0]: dict(zip(COUNTERS, r[1:])) for r in rows}

    def observations(self, sensor_id: str | None = None) -> list[tuple]:
        sql = "SELECT sensor_id, phenomenon_time, result, result_time FROM oup_observations"
        args: list = []
        if sensor_id:
            sql += " WHERE sensor_id = ?"
            args = [sensor_id]
        return self.execute(sql + " ORDER BY sensor_id, phenomenon_time", args)

    def first_time(self) -> str | None:
        return iso_us(self.execute("SELECT MIN(phenomenon_time) FROM oup_observations")[0][0])

    def count(self) -> int:
        return self.execute("SELECT COUNT(*) FROM oup_observations")[0][0]
