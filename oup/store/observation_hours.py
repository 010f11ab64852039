"""Sums of the observations per sensor and hour, kept in the GeoPackage as they are
written: count, sum, min and max of a sensor's results in each hour.

A week of a thousand sensors reading once a minute is 10M observations but 168,000
hours: an aggregate over a window (``area-statistics``) reads the hours the window
covers whole and the observations only at its two ragged ends, and is exact (counts,
minima and maxima are the same numbers; a sum is the same values added in another
order). SQLite triggers keep the hours right on every path that writes an
observation: a new one adds itself to its hour, a correction (or a removal) has its
hour summed again from the observations (an index range of one sensor-hour). A file
made before the hours existed gets them from its observations once, in the
transaction that makes the table, so no hour misses a reading written meanwhile.

PostgreSQL reads its (sensor, time) index fast enough (10M: under 2 s): it keeps none.
"""
from __future__ import annotations

import sqlite3

HOUR = 3_600_000_000  # microseconds, the unit of phenomenon_time
TABLE = "oup_observation_hours"
MAKING_S = 900  # how long a process waits for another that makes the hours


def _hour(t: str) -> str:
    """The hour number of ``t`` in SQL: floor division (SQLite's '/' truncates)."""
    return f"(({t}) - ((({t}) % {HOUR}) + {HOUR}) % {HOUR}) / {HOUR}"


def _summed_again(row: str) -> str:
    """Statements that sum the hour of ``row`` (OLD or NEW) again from the observations."""
    h = _hour(f"{row}.phenomenon_time")
    return (f"DELETE FROM {TABLE} WHERE sensor_id = {row}.sensor_id AND hour = {h}; "
            f"INSERT INTO {TABLE} (sensor_id, hour, n, total, lo, hi) "
            f"SELECT sensor_id, {h}, COUNT(*), SUM(result), MIN(result), MAX(result) "
            f"FROM oup_observations WHERE sensor_id = {row}.sensor_id "
            f"AND phenomenon_time >= {h} * {HOUR} AND phenomenon_time < ({h} + 1) * {HOUR} "
            f"GROUP BY sensor_id;")


SCHEMA = f"""
CREATE TABLE {TABLE} (
  sensor_id TEXT NOT NULL, hour INTEGER NOT NULL, n INTEGER NOT NULL, total REAL NOT NULL,
  lo REAL NOT NULL, hi REAL NOT NULL, PRIMARY KEY (sensor_id, hour)) WITHOUT ROWID;
CREATE TRIGGER {TABLE}_insert AFTER INSERT ON oup_observations BEGIN
  INSERT INTO {TABLE} (sensor_id, hour, n, total, lo, hi)
  VALUES (NEW.sensor_id, {_hour("NEW.phenomenon_time")}, 1, NEW.result, NEW.result, NEW.result)
  ON CONFLICT (sensor_id, hour) DO UPDATE SET n = n + 1, total = total + excluded.total,
    lo = min(lo, excluded.lo), hi = max(hi, excluded.hi);
END;
CREATE TRIGGER {TABLE}_update AFTER UPDATE OF sensor_id, phenomenon_time, result
ON oup_observations BEGIN {_summed_again("OLD")} {_summed_again("NEW")} END;
CREATE TRIGGER {TABLE}_delete AFTER DELETE ON oup_observations BEGIN
  {_summed_again("OLD")} END;
"""

_BACKFILL = (f"INSERT INTO {TABLE} (sensor_id, hour, n, total, lo, hi) "
             f"SELECT sensor_id, {_hour('phenomenon_time')} AS h, COUNT(*), SUM(result), "
             f"MIN(result), MAX(result) FROM oup_observations GROUP BY sensor_id, h")


def exists(execute) -> bool:
    """Whether the store has the hours (``execute``: the store's, of a GeoPackage)."""
    return bool(execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (TABLE,)))


def ensure(con: sqlite3.Connection) -> None:
    """Make the hours (and sum the observations already there) if the file has none.
    Run after the observations table exists, outside a transaction."""
    if exists(lambda sql, p: con.execute(sql, p).fetchall()):
        return
    # another process may be making them (10M observations: about 40 s): the others
    # wait for it, longer than for a batch of readings
    (usual,), = con.execute("PRAGMA busy_timeout").fetchall()
    con.execute(f"PRAGMA busy_timeout = {MAKING_S * 1000}")
    try:
        con.execute("BEGIN IMMEDIATE")
        try:
            if not exists(lambda sql, p: con.execute(sql, p).fetchall()):
                for statement in _statements(SCHEMA):
                    con.execute(statement)
                con.execute(_BACKFILL)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.execute(f"PRAGMA busy_timeout = {int(usual)}")


def _statements(script: str) -> list[str]:
    """The script's statements (a trigger's body is part of its statement)."""
    out, part = [], ""
    for line in script.strip().splitlines(keepends=True):
        part += line
        if sqlite3.complete_statement(part):
            out.append(part.strip())
            part = ""
    return out


def split(start: int | None, end: int | None):
    """The window ``[start, end]`` (microseconds; None: open) as the hours it covers
    whole, ``(first, last)`` (None for an open end), and its ragged ends, read as
    observations: ``[(from, to), ...]``, both ends included. None when the window
    covers no hour whole."""
    first = None if start is None else -(-start // HOUR)
    last = None if end is None else (end + 1) // HOUR - 1
    if first is not None and last is not None and first > last:
        return None
    ends = []
    if start is not None and start < first * HOUR:
        ends.append((start, first * HOUR - 1))
    if end is not None and (last + 1) * HOUR <= end:
        ends.append(((last + 1) * HOUR, end))
    return (first, last), ends
