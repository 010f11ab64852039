"""Observations and dead letters, in the same SQLite/GeoPackage file as the features.

An observation's key is (sensor, phenomenon time), or its own ``dedupe_key`` where the
device gives one (LoRaWAN EUI + frame counter). Re-delivery and duplicates never make a
second row; late and out-of-order data are simply rows; a correction (same key, newer
result time) replaces the value. A batch is one transaction: the caller acknowledges
the messages only after ``write`` returns.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from iot_ingest.payloads import Observation

RAW_LIMIT = 4096  # bytes of a dead letter's payload that are kept


@dataclass
class WriteResult:
    stored: int = 0
    duplicates: int = 0
    corrected: int = 0


SCHEMA = """
CREATE TABLE IF NOT EXISTS oup_observations (
  id INTEGER PRIMARY KEY, sensor_id TEXT NOT NULL, phenomenon_time TEXT NOT NULL,
  result REAL NOT NULL, result_time TEXT, dedupe_key TEXT, stored_at TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS oup_observations_key
  ON oup_observations (sensor_id, phenomenon_time);
CREATE UNIQUE INDEX IF NOT EXISTS oup_observations_dedupe
  ON oup_observations (dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS oup_observations_time ON oup_observations (phenomenon_time);
CREATE TABLE IF NOT EXISTS oup_dead_letters (
  id INTEGER PRIMARY KEY, received_at TEXT NOT NULL, topic TEXT NOT NULL,
  reason TEXT NOT NULL, payload BLOB, payload_size INTEGER NOT NULL,
  replayed INTEGER NOT NULL DEFAULT 0);
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


class ObservationStore:
    def __init__(self, path: str | Path):
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(self.path, isolation_level=None, timeout=30,
                                   check_same_thread=False)
        self.con.execute("PRAGMA journal_mode = WAL")
        self.con.executescript(SCHEMA)

    def write(self, observations: list[Observation]) -> WriteResult:
        """Store a batch in one transaction."""
        res = WriteResult()
        now = _now()
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            for o in observations:
                if o.dedupe_key is not None:
                    cur = con.execute(
                        "INSERT OR IGNORE INTO oup_observations (sensor_id, phenomenon_time, "
                        "result, result_time, dedupe_key, stored_at) VALUES (?,?,?,?,?,?)",
                        (o.sensor_id, o.phenomenon_time, o.result, o.result_time, o.dedupe_key,
                         now))
                    if cur.rowcount:
                        res.stored += 1
                    else:
                        res.duplicates += 1
                    continue
                old = con.execute("SELECT result_time FROM oup_observations WHERE sensor_id = ? "
                                  "AND phenomenon_time = ?",
                                  (o.sensor_id, o.phenomenon_time)).fetchone()
                if old is None:
                    con.execute("INSERT INTO oup_observations (sensor_id, phenomenon_time, "
                                "result, result_time, stored_at) VALUES (?,?,?,?,?)",
                                (o.sensor_id, o.phenomenon_time, o.result, o.result_time, now))
                    res.stored += 1
                elif o.result_time and (old[0] is None or o.result_time > old[0]):
                    con.execute("UPDATE oup_observations SET result = ?, result_time = ?, "
                                "stored_at = ? WHERE sensor_id = ? AND phenomenon_time = ?",
                                (o.result, o.result_time, now, o.sensor_id, o.phenomenon_time))
                    res.corrected += 1
                else:
                    res.duplicates += 1
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return res

    def dead_letter(self, topic: str, raw: bytes, reason: str) -> None:
        self.con.execute("INSERT INTO oup_dead_letters (received_at, topic, reason, payload, "
                         "payload_size) VALUES (?,?,?,?,?)",
                         (_now(), topic[:512], reason[:512], raw[:RAW_LIMIT], len(raw)))

    def dead_letters(self, limit: int = 100) -> list[dict]:
        rows = self.con.execute("SELECT id, received_at, topic, reason, payload, payload_size, "
                                "replayed FROM oup_dead_letters ORDER BY id DESC LIMIT ?",
                                (limit,)).fetchall()
        keys = ("id", "received_at", "topic", "reason", "payload", "payload_size", "replayed")
        return [dict(zip(keys, r)) for r in rows]

    def observations(self, sensor_id: str | None = None) -> list[tuple]:
        sql = "SELECT sensor_id, phenomenon_time, result, result_time FROM oup_observations"
        args: tuple = ()
        if sensor_id:
            sql += " WHERE sensor_id = ?"
            args = (sensor_id,)
        return self.con.execute(sql + " ORDER BY sensor_id, phenomenon_time", args).fetchall()
