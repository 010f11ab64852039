"""Observations, dead letters and ingest counters, in the same GeoPackage file as the features.

An observation's key is (sensor, phenomenon time), or its own ``dedupe_key`` where the
device gives one (LoRaWAN EUI + frame counter). Re-delivery and duplicates never make a
second row; late and out-of-order data are simply rows; a correction (same key, newer
result time) replaces the value. A batch of messages is one transaction, together with
the counters and the sensors' latest values: the ingester acknowledges the messages only
after ``write_batch`` returns, so what is counted is exactly what is stored.

Times are integers: microseconds since 1970-01-01 UTC (exact, and slices are integer
division).
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from iot_ingest.payloads import MAX_PAYLOAD, Observation

from .cql import quote

TRUNCATED_LIMIT = 4096  # bytes kept of a payload too large to decode (it cannot be replayed)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def iso_us(us: int | None) -> str | None:
    """Microseconds since the epoch as RFC 3339 UTC ('Z'), seconds precision when exact."""
    if us is None:
        return None
    t = EPOCH + timedelta(microseconds=us)
    spec = "seconds" if us % 1_000_000 == 0 else "microseconds"
    return t.isoformat(timespec=spec).replace("+00:00", "Z")


def us_of(t: datetime) -> int:
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return (t - EPOCH) // timedelta(microseconds=1)


@dataclass
class DeadLetter:
    topic: str
    payload: bytes
    reason: str


@dataclass
class BatchResult:
    """Per message: stored (>= 1 observation new or corrected), duplicate, dead-lettered."""

    messages: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    observations_stored: int = 0
    observations_corrected: int = 0


def tally(res: BatchResult, latest: dict[str, tuple], o: Observation, corrected: bool) -> None:
    """Count one observation written (new or a correction) and keep its sensor's latest."""
    if corrected:
        res.observations_corrected += 1
    else:
        res.observations_stored += 1
    seen = latest.get(o.sensor_id)
    if seen is None or o.phenomenon_time >= seen[0]:
        latest[o.sensor_id] = (o.phenomenon_time, o.result)


COUNTERS = ("received", "stored", "duplicates", "dead_lettered", "observations_stored",
            "observations_corrected")

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
RETURNING revision"""
_INSERT_KEYED = """
INSERT OR IGNORE INTO oup_observations (sensor_id, phenomenon_time, result, result_time,
  dedupe_key, stored_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING revision"""


class StoreBusy(RuntimeError):
    """The database stayed locked (another writer, a backup): the batch was not written."""


class ObservationStore:
    def __init__(self, path: str | Path, busy_timeout: float = 30.0):
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(self.path, isolation_level=None, timeout=busy_timeout,
                                   check_same_thread=False)
        self.con.execute("PRAGMA journal_mode = WAL")
        self.con.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints, never corrupt
        self.con.executescript(SCHEMA)

    def execute(self, sql: str, params=()) -> list[tuple]:
        return self.con.execute(sql, list(params)).fetchall()

    # -- writing -------------------------------------------------------------------------
    def write_batch(self, ingester: str, messages: list[list[Observation] | DeadLetter],
                    sensor_tables: dict[str, tuple[str, str]] | None = None) -> BatchResult:
        """Store a batch of decoded messages in one transaction, with the counters.

        ``sensor_tables`` maps a sensor id to (feature table, id field), where its latest
        value is kept. Raises ``StoreBusy`` (nothing written) if the database stays locked.
        """
        res = BatchResult(messages=len(messages))
        now = us_of(datetime.now(timezone.utc))
        latest: dict[str, tuple[int, float]] = {}
        con = self.con
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreBusy(str(exc)) from exc
        try:
            for msg in messages:
                if isinstance(msg, DeadLetter):
                    self._dead_letter(msg, now)
                    res.dead_lettered += 1
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
                    tally(res, latest, o, bool(row[0]))
                if new:
                    res.stored += 1
                else:
                    res.duplicates += 1
            self._update_latest(latest, sensor_tables or {})
            con.execute(
                "INSERT INTO oup_ingest_counters (ingester) VALUES (?) ON CONFLICT DO NOTHING",
                (ingester,))
            con.execute(
                "UPDATE oup_ingest_counters SET received = received + ?, stored = stored + ?, "
                "duplicates = duplicates + ?, dead_lettered = dead_lettered + ?, "
                "observations_stored = observations_stored + ?, "
                "observations_corrected = observations_corrected + ?, updated_at = ? "
                "WHERE ingester = ?",
                (res.messages, res.stored, res.duplicates, res.dead_lettered,
                 res.observations_stored, res.observations_corrected, now, ingester))
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

    def _dead_letter(self, d: DeadLetter, now: int) -> None:
        # a payload we could decode is kept whole (so it can be replayed); a larger one,
        # refused for its size, only as a sample
        keep = d.payload if len(d.payload) <= MAX_PAYLOAD else d.payload[:TRUNCATED_LIMIT]
        self.con.execute("INSERT INTO oup_dead_letters (received_at, topic, reason, payload, "
                         "payload_size) VALUES (?,?,?,?,?)",
                         (now, d.topic[:1024], d.reason[:1024], keep, len(d.payload)))

    def _update_latest(self, latest: dict[str, tuple[int, float]],
                       tables: dict[str, tuple[str, str]]) -> None:
        by_table: dict[tuple[str, str], list] = {}
        for sensor, (t, value) in latest.items():
            if sensor in tables:
                by_table.setdefault(tables[sensor], []).append((iso_us(t), value, sensor))
        for (table, id_field), rows in by_table.items():
            self.con.executemany(
                f"UPDATE {quote(table)} SET latest_time = ?1, latest_result = ?2 "
                f"WHERE {quote(id_field)} = ?3 AND (latest_time IS NULL OR latest_time <= ?1)",
                rows)

    def refresh_latest(self, table: str, id_field: str) -> int:
        """Fill a (re-imported) sensors table's latest values from the observations."""
        rows = self.con.execute(
            "SELECT o.sensor_id, o.phenomenon_time, o.result FROM oup_observations o JOIN "
            "(SELECT sensor_id, MAX(phenomenon_time) AS t FROM oup_observations "
            "GROUP BY sensor_id) m ON m.sensor_id = o.sensor_id AND m.t = o.phenomenon_time"
        ).fetchall()
        self.con.execute("BEGIN IMMEDIATE")
        try:
            self.con.executemany(
                f"UPDATE {quote(table)} SET latest_time = ?, latest_result = ? "
                f"WHERE {quote(id_field)} = ?", [(iso_us(t), v, s) for s, t, v in rows])
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return len(rows)

    # -- dead letters ---------------------------------------------------------------------
    def dead_letters(self, limit: int = 100, replayed: bool = False,
                     ids: list[int] | None = None) -> list[dict]:
        sql = ("SELECT id, received_at, topic, reason, payload, payload_size, replayed "
               "FROM oup_dead_letters WHERE (replayed = 0 OR ?)")
        args: list = [int(replayed)]
        if ids:
            sql += f" AND id IN ({','.join('?' * len(ids))})"
            args += ids
        rows = self.con.execute(sql + " ORDER BY id LIMIT ?", args + [limit]).fetchall()
        keys = ("id", "received_at", "topic", "reason", "payload", "payload_size", "replayed")
        return [dict(zip(keys, r)) for r in rows]

    def mark_replayed(self, outcomes: dict[int, str | None]) -> None:
        """After a replay: ``None`` marks a dead letter done, a string is its new reason."""
        with self.con:
            self.con.executemany("UPDATE oup_dead_letters SET replayed = 1 WHERE id = ?",
                                 [(i,) for i, why in outcomes.items() if why is None])
            self.con.executemany("UPDATE oup_dead_letters SET reason = ? WHERE id = ?",
                                 [(why[:1024], i) for i, why in outcomes.items() if why])

    # -- counters ----------------------------------------------------------------------------
    def counters(self) -> dict[str, dict[str, int]]:
        """Committed counters per ingester (client id)."""
        rows = self.con.execute(f"SELECT ingester, {', '.join(COUNTERS)} "
                                "FROM oup_ingest_counters ORDER BY ingester").fetchall()
        return {r[0]: dict(zip(COUNTERS, r[1:])) for r in rows}

    # -- reading (tests, tools) ------------------------------------------------------------
    def observations(self, sensor_id: str | None = None) -> list[tuple]:
        sql = "SELECT sensor_id, phenomenon_time, result, result_time FROM oup_observations"
        args: tuple = ()
        if sensor_id:
            sql += " WHERE sensor_id = ?"
            args = (sensor_id,)
        return self.con.execute(sql + " ORDER BY sensor_id, phenomenon_time", args).fetchall()

    def first_time(self) -> str | None:
        t = self.con.execute("SELECT MIN(phenomenon_time) FROM oup_observations").fetchone()[0]
        return iso_us(t)

    def count(self) -> int:
        return self.con.execute("SELECT COUNT(*) FROM oup_observations").fetchone()[0]
