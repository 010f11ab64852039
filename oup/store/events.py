"""The event log: change events in the store, numbered in commit order, kept for a while.

Both observation stores carry it (``SqlEventLog`` is mixed into them), so an ingest batch
and its events are one transaction: an event is there exactly when the change it tells
of is. The sequence must grow in commit order, or a subscriber reading "after n" could
pass over an event that commits late with a smaller number. SQLite has one writer at a
time, so that holds by itself; PostgreSQL numbers an event under a transaction-level
advisory lock held to the commit, taken as the last statement of a transaction.
"""
from __future__ import annotations

import time

import orjson

from oup.events import ChangeEvent, catalogue_events
from oup.store.base import SqlTables

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS oup_events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, collection TEXT NOT NULL, type TEXT NOT NULL,
  subject TEXT NOT NULL, time INTEGER NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS oup_events_time ON oup_events (time);
CREATE TABLE IF NOT EXISTS oup_event_state (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
POSTGIS_SCHEMA = """
CREATE TABLE oup_events (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, collection text NOT NULL,
  type text NOT NULL, subject text NOT NULL, time bigint NOT NULL, data text NOT NULL);
CREATE INDEX ON oup_events (time);
CREATE TABLE oup_event_state (name text PRIMARY KEY, value text NOT NULL);
"""
EVENTS_LOCK = 7_400_393  # advisory lock id: "oup event numbering"
PRUNE_EVERY = 60.0  # seconds between deletions of expired events (per process)
CATALOGUE = "catalogue"  # the state name of the collections last published
_COLUMNS = "seq, collection, type, subject, time, data"


class SqlEventLog(SqlTables):
    """Mixed into the observation stores (their connections, their transactions)."""

    numbered_under_lock = False  # PostgreSQL: take EVENTS_LOCK before numbering
    event_retention_us = 24 * 3600 * 1_000_000
    _pruned_at = 0.0

    # -- writing ------------------------------------------------------------------------
    def append_events(self, events: list[ChangeEvent]) -> None:
        """Log events in a transaction of their own (after an import or a reload)."""
        with self._transaction():
            self._append_events(events)

    def _append_events(self, events: list[ChangeEvent]) -> None:
        """Inside the caller's transaction, as its last statements."""
        if not events:
            return
        if self.numbered_under_lock:
            self.execute("SELECT pg_advisory_xact_lock(?)", (EVENTS_LOCK,))
        self._executemany(
            "INSERT INTO oup_events (collection, type, subject, time, data) "
            "VALUES (?, ?, ?, ?, ?)",
            [(e.collection, e.type, e.subject, e.time, orjson.dumps(e.data).decode())
             for e in events])
        now = time.monotonic()
        if now - self._pruned_at > PRUNE_EVERY:
            self._pruned_at = now
            self.execute("DELETE FROM oup_events WHERE time < ?",
                         (events[-1].time - self.event_retention_us,))

    def record_catalogue(self, current: dict[str, dict]) -> list[ChangeEvent]:
        """Compare the catalogue being published with the one last recorded, log what
        changed, and record it; one transaction. The first record logs nothing."""
        with self._transaction():
            if self.numbered_under_lock:  # two reloads at once: one after the other
                self.execute("SELECT pg_advisory_xact_lock(?)", (EVENTS_LOCK,))
            before = self.event_state(CATALOGUE)
            events = [] if before is None else catalogue_events(orjson.loads(before), current)
            self._append_events(events)
            self.set_event_state(CATALOGUE, orjson.dumps(current).decode())
        return events

    # -- reading ------------------------------------------------------------------------
    def events_after(self, seq: int, limit: int = 1000) -> list[ChangeEvent]:
        """The next ``limit`` events after ``seq``, in order."""
        rows = self.execute(f"SELECT {_COLUMNS} FROM oup_events WHERE seq > ? "
                            "ORDER BY seq LIMIT ?", (seq, limit))
        return [ChangeEvent(c, t, s, orjson.loads(d), tm, q) for q, c, t, s, tm, d in rows]

    def last_event(self) -> int:
        """The newest event's number (0: none yet)."""
        return self.execute("SELECT COALESCE(MAX(seq), 0) FROM oup_events")[0][0]

    def first_event(self) -> int:
        """The oldest event's number the log still holds (0: none)."""
        return self.execute("SELECT COALESCE(MIN(seq), 0) FROM oup_events")[0][0]

    # -- small named state: the relay's cursor, the catalogue last published -------------
    def event_state(self, name: str) -> str | None:
        rows = self.execute("SELECT value FROM oup_event_state WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    def set_event_state(self, name: str, value: str) -> None:
        self.execute("INSERT INTO oup_event_state (name, value) VALUES (?, ?) ON CONFLICT "
                     "(name) DO UPDATE SET value = excluded.value", (name, value))
