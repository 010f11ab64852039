"""The GeoPackage's part of feature writes (``versions.py``): the transaction, the
geometry as the file holds it, and what a row written derives - both R*Trees and the
row's numbers into its collection's tile values. A value the import's table does not
hold is added as a row of ``oup_tile_values_added``, numbered after it: the import's
table (megabytes at city scale) is never rewritten by a write, and readers take in only
the rows added since they last looked. A row the tiles find without numbers still draws
(its properties are read), but every row written here gets them.
"""
from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone

import numpy as np
import shapely

from oup.store.base import FID, GEOM, GEOM84, VALUES, Feature, StoreBusy
from oup.store.cql import quote
from oup.store.geometry import to_gpb
from oup.store.mvt_encode import encode_value
from oup.store.mvt_gpkg import tile_column
from oup.store.versions import FeatureVersions, Run

#: The SQL types of the version and history columns.
TYPES = {"string": "TEXT", "number": "DOUBLE", "integer": "INTEGER", "boolean": "BOOLEAN",
         "date-time": "DATETIME", "instant": "TEXT", "geometry": "BLOB",
         "serial": "INTEGER"}


def stamp(when: datetime) -> str:
    """An instant as the version columns hold it: UTC text to the microsecond, which
    sorts as time does."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: Values written after the import, numbered on from the import's table (its length).
ADDED_VALUES = """CREATE TABLE IF NOT EXISTS oup_tile_values_added (
  table_name TEXT NOT NULL, n INTEGER NOT NULL, value BLOB NOT NULL,
  PRIMARY KEY (table_name, n));
CREATE UNIQUE INDEX IF NOT EXISTS oup_tile_values_added_value
  ON oup_tile_values_added (table_name, value)"""


class _WriteTurns:
    """The feature writes to one file take turns, in order, through locks that wake the
    next writer as the last one commits: a thread lock among this process's threads,
    and a lock on a file beside the GeoPackage (``flock``) among the server's processes.
    Without them each writer meets the others at SQLite's own lock, whose waiting is a
    sleep of 1 ms, then 2, 5, 10, ... up to 100 ms between tries: under concurrent
    writes the file stood idle while the waiters slept (p99 0.4-0.6 s a write, from 3
    ms of work each). Other writers (an import, the ingester) still meet them at
    SQLite's lock, as before."""

    def __init__(self, path: str):
        self._thread_turn = threading.Lock()
        self._fd = os.open(f"{path}.writes.lock", os.O_RDWR | os.O_CREAT, 0o644)

    @contextmanager
    def __call__(self):
        with self._thread_turn:
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # lets go of the GIL while it waits
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


_turns: dict[tuple[int, str], _WriteTurns] = {}
_turns_lock = threading.Lock()


def write_turn(path: str):
    """The turn of a feature write to the GeoPackage at ``path`` (a context manager).
    A process has turns of its own, a forked one too: a lock taken through a descriptor
    inherited across the fork is shared with the parent, and a thread lock copied while
    held would never be let go in the child."""
    key = (os.getpid(), path)
    with _turns_lock:
        if key not in _turns:
            _turns[key] = _WriteTurns(path)
        return _turns[key]()


class GeoPackageWrites(FeatureVersions):
    #: the import's value numbers, by collection: (its token, value -> number), read once
    _numbers: dict[str, tuple[str, dict[bytes, int]]]
    _numbers_lock = threading.Lock()

    VERSION_TYPES = TYPES
    RETURNS_AS_STORED = False
    _values_added_made = False  # whether oup_tile_values_added is known to be there

    def _columns(self, run: Run, table: str) -> set[str]:
        return {r[0] for r in run("SELECT name FROM pragma_table_info(?)", (table,))}

    def _exists(self, table: str) -> bool:
        return bool(self.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                 "name = ?", (table,)))

    def _writer(self) -> sqlite3.Connection:
        raise NotImplementedError  # the store's: this thread's connection to the file

    @contextmanager
    def _writing(self, cid: str):
        con = self._writer()
        with write_turn(self.path):
            try:
                try:  # the file's one writer from here to COMMIT: the ETag check holds
                    con.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    raise StoreBusy(f"GeoPackage: {exc}") from exc
                yield lambda sql, params=(): con.execute(sql, list(params)).fetchall()
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise

    def _grow_layer(self, run: Run, cid: str, read: dict, written: dict) -> None:
        # the metadata read in this transaction is current: the file has one writer
        run("UPDATE oup_layers SET meta = ? WHERE table_name = ?", (json.dumps(written), cid))

    def _stamp(self, when: datetime) -> str:
        return stamp(when)

    def _geometry_marks(self, meta: dict) -> tuple[str, str]:
        return "?", "?"

    def _geometry_values(self, meta: dict, feature: Feature) -> list:
        g, g84 = feature.geometry, feature.geometry_crs84
        return [None if g is None else to_gpb(g, meta["source_srid"]),
                None if g84 is None else shapely.to_wkb(g84)]

    def _spatial_scan(self, cid: str):
        # the R*Trees index the current rows only: the versions take the exact test
        def spatial(op: str, wkb: bytes, bounds, box: bool = False) -> tuple[str, list]:
            return f"oup_spatial(?, {GEOM84}, ?)", [op, wkb]

        return spatial

    def _row_written(self, run: Run, cid: str, meta: dict, row: int,
                     feature: Feature | None, values: list) -> None:
        if feature is not None:
            for column, g in ((GEOM, feature.geometry), (GEOM84, feature.geometry_crs84)):
                rtree = quote(f"rtree_{cid}_{column}")
                run(f"DELETE FROM {rtree} WHERE id = ?", (row,))
                if g is not None and not g.is_empty:
                    minx, miny, maxx, maxy = g.bounds
                    run(f"INSERT INTO {rtree} VALUES (?, ?, ?, ?, ?)",
                        (row, minx, maxx, miny, maxy))
        self._number_values(run, cid, meta, [row], [values])

    def _row_deleted(self, run: Run, cid: str, meta: dict, row: int) -> None:
        for column in (GEOM, GEOM84):
            run(f"DELETE FROM {quote(f'rtree_{cid}_{column}')} WHERE id = ?", (row,))

    def _rows_blanked(self, run: Run, cid: str, meta: dict, rows: list[int]) -> None:
        self._number_values(run, cid, meta, rows)

    def _number_values(self, run: Run, cid: str, meta: dict, rows: list[int],
                       known: list[list] | None = None) -> None:
        """Rows ``rows``' numbers into the collection's tile values (``known``: their
        properties, if the caller has them; else read); a value the import's table lacks
        is looked up among, or added to, the values added since."""
        if meta.get("tile_values") is None or not rows:
            return
        numbers = self._import_numbers(run, cid, meta["tile_values"])
        if numbers is None:
            return
        if not self._values_added_made:  # looked for until found: it is there to stay
            self._values_added_made = self._exists("oup_tile_values_added")
            if not self._values_added_made:  # a store imported before there were any
                for statement in ADDED_VALUES.split(";"):
                    run(statement)
        fields, t = meta["fields"], quote(cid)
        for k, row in enumerate(rows):
            values = [known[k]] if known else [r[1:] for r in run(
                f"SELECT {', '.join([FID] + [quote(n) for n, _ in fields])} FROM {t} "
                f"WHERE {FID} = ?", (row,))]
            if not values:
                continue
            out = np.full(len(fields), -1, "<i4")
            for j, (v, (_, ty)) in enumerate(zip(values[0], fields)):
                body = encode_value(tile_column([v], ty)[0])
                if body is not None:
                    out[j] = self._value_number(run, cid, numbers, body)
            run(f"UPDATE {t} SET {VALUES} = ? WHERE {FID} = ?", (out.tobytes(), row))

    @staticmethod
    def _value_number(run: Run, cid: str, numbers: dict[bytes, int], value: bytes) -> int:
        n = numbers.get(value)
        if n is not None:
            return n
        found = run("SELECT n FROM oup_tile_values_added WHERE table_name = ? AND value = ?",
                    (cid, value))
        if found:
            return found[0][0]
        # numbered on from the import's values, one after the other (the writer holds the
        # file: no race); the last number from the key, not a count of all the rows
        n = run("SELECT COALESCE(MAX(n) + 1, ?) FROM oup_tile_values_added "
                "WHERE table_name = ?", (len(numbers), cid))[0][0]
        run("INSERT INTO oup_tile_values_added VALUES (?, ?, ?)", (cid, n, value))
        return n

    def _import_numbers(self, run: Run, cid: str, token: str) -> dict[bytes, int] | None:
        """The number of each value in the import's table of ``cid`` (None: it has none)."""
        with self._numbers_lock:
            if not hasattr(self, "_numbers"):
                self._numbers = {}
            held = self._numbers.get(cid)
            if held is not None and held[0] == token:
                return held[1]
            stored = run("SELECT value_bytes, value_lengths FROM oup_tile_values "
                         "WHERE table_name = ?", (cid,))
            if not stored:
                return None
            lens = np.frombuffer(stored[0][1], "<i8")
            ends = np.cumsum(lens)
            data = stored[0][0]
            numbers: dict[bytes, int] = {}
            for n, (a, b) in enumerate(zip((ends - lens).tolist(), ends.tolist())):
                numbers.setdefault(data[a:b], n)
            self._numbers[cid] = (token, numbers)
            return numbers
