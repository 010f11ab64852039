"""Observations, dead letters and ingest counters, in the same GeoPackage file as the features.

An observation's key is (sensor, phenomenon time), or its own ``dedupe_key`` where the
device gives one (LoRaWAN EUI + frame counter). Re-delivery and duplicates never make a
second row; late and out-of-order data are simply rows; a correction (same key, newer
result time) replaces the value. A batch of messages is one transaction, together with
the counters and the sensors' latest values: the ingester acknowledges the messages only
after ``write_batch`` returns, so what is counted is exactly what is stored.
Triggers keep the sums per sensor and hour (``observation_hours``) as rows are written.
"""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from oup.sensors.observations import DeadLetter, Observation, SensorHome, us_of
from oup.store import observation_hours, ranks
from oup.store.base import BatchResult, StoreBusy
from oup.store.cql import quote
from oup.store.events import SQLITE_SCHEMA, SqlEventLog
from oup.store.observation_sql import SqlObservations, tally

SCHEMA = """
CREATE TABLE IF NOT EXISTS oup_observations (
  id INTEGER PRIMARY KEY, sensor_id TEXT NOT NULL, phenomenon_time INTEGER NOT NULL,
  result REAL NOT NULL, result_time INTEGER, dedupe_key TEXT,
  revision INTEGER NOT NULL DEFAULT 0, stored_at INTEGER NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS oup_observations_key
  ON oup_observations (sensor_id, phenomenon_time);
CREATE UNIQUE INDEX IF NOT EXISTS oup_observations_dedupe
  ON oup_observations (dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS oup_observations_time ON oup_observations (phenomenon_time);
-- a sensor's results in time order, in the index itself: a sum over a week per sensor
-- (area-statistics) reads this and not the table, whose rows lie in arrival order
-- (10M observations: x2.4 less CPU than the time index and a sort)
CREATE INDEX IF NOT EXISTS oup_observations_series
  ON oup_observations (sensor_id, phenomenon_time, result);
CREATE TABLE IF NOT EXISTS oup_dead_letters (
  id INTEGER PRIMARY KEY, received_at INTEGER NOT NULL, topic TEXT NOT NULL,
  reason TEXT NOT NULL, payload BLOB, payload_size INTEGER NOT NULL,
  replayed INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS oup_ingest_counters (
  ingester TEXT PRIMARY KEY, received INTEGER NOT NULL DEFAULT 0,
  stored INTEGER NOT NULL DEFAULT 0, duplicates INTEGER NOT NULL DEFAULT 0,
  dead_lettered INTEGER NOT NULL DEFAULT 0, observations_stored INTEGER NOT NULL DEFAULT 0,
  observations_corrected INTEGER NOT NULL DEFAULT 0, updated_at INTEGER);
"""

# A correction needs a newer result time; without one a repeat is a duplicate. The
# revision tells, through RETURNING, an insert (0) from a correction (> 0).
_UPSERT = """
INSERT INTO oup_observations (sensor_id, phenomenon_time, result, result_time, stored_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (sensor_id, phenomenon_time) DO UPDATE SET
  result = excluded.result, result_time = excluded.result_time,
  stored_at = excluded.stored_at, revision = revision + 1
WHERE excluded.result_time IS NOT NULL
  AND (oup_observations.result_time IS NULL OR excluded.result_time > oup_observations.result_time)
RETURNING revision, id"""
_INSERT_KEYED = """
INSERT OR IGNORE INTO oup_observations (sensor_id, phenomenon_time, result, result_time,
  dedupe_key, stored_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING revision, id"""


class GeoPackageObservationStore(SqlObservations, SqlEventLog):
    def __init__(self, path: str | Path, busy_timeout: float = 30.0, schema: bool = True):
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(self.path, isolation_level=None, timeout=busy_timeout,
                                   check_same_thread=False)
        ranks.register(self.con)  # (the store is also read as a time series)
        if schema:  # (readers skip it: it needs the write lock, which a busy ingester holds)
            self.con.execute("PRAGMA journal_mode = WAL")
            self.con.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints
            self.con.executescript(SCHEMA + SQLITE_SCHEMA)
            observation_hours.ensure(self.con)

    def execute(self, sql: str, params=()) -> list[tuple]:
        return self.con.execute(sql, list(params)).fetchall()

    def close(self) -> None:
        self.con.close()

    def _executemany(self, sql: str, rows: list) -> None:
        self.con.executemany(sql, rows)

    @contextmanager
    def _transaction(self):
        self.con.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    # -- writing -------------------------------------------------------------------------
    def write_batch(self, ingester: str, messages: list[list[Observation] | DeadLetter],
                    sensor_tables: dict[str, SensorHome] | None = None) -> BatchResult:
        """Store a batch of decoded messages in one transaction, with the counters.

        ``sensor_tables`` maps a sensor id to (feature table, id field), where its latest
        value is kept. Raises ``StoreBusy`` (nothing written) if the database stays locked.
        """
        res = BatchResult(messages=len(messages))
        now = us_of(datetime.now(timezone.utc))
        latest: dict[str, list] = {}
        con = self.con
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreBusy(str(exc)) from exc
        try:
            dead = [m for m in messages if isinstance(m, DeadLetter)]
            self._insert_dead_letters(dead, now)
            res.dead_lettered = len(dead)
            for msg in messages:
                if isinstance(msg, DeadLetter):
                    continue
                new = 0
                for o in msg:
                    if o.dedupe_key is None:
                        row = con.execute(_UPSERT, (o.sensor_id, o.phenomenon_time, o.result,
                                                    o.result_time, now)).fetchone()
                    else:
                        row = con.execute(_INSERT_KEYED, (
                            o.sensor_id, o.phenomenon_time, o.result, o.result_time,
                            o.dedupe_key, now)).fetchone()
                    if row is None:
                        continue
                    new += 1
                    tally(res, latest, o, bool(row[0]), row[1])
                if new:
                    res.stored += 1
                else:
                    res.duplicates += 1
            self._update_latest(latest, sensor_tables or {})
            self._add_counters(ingester, res, now)
            self._append_events(self._batch_events(latest, sensor_tables or {}))
            con.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            con.execute("ROLLBACK")
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreBusy(str(exc)) from exc
            raise
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        return res

    def _update_latest(self, latest: dict[str, list], tables: dict[str, SensorHome]) -> None:
        for (table, id_field), rows in self._latest_by_table(latest, tables).items():
            self.con.executemany(
                f"UPDATE {quote(table)} SET latest_time = ?1, latest_result = ?2 "
                f"WHERE {quote(id_field)} = ?3 AND (latest_time IS NULL OR latest_time <= ?1)",
                rows)
