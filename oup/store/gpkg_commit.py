"""Group commit of a GeoPackage's writes. The file has one writer at a time, and each
commit of it waits for the disk (an fsync of the write-ahead log): under concurrent
writes, that wait, once a write, bounds the writes a second. So the writes of one
process take turns on one connection, and a write that finds others in line after it
leaves its transaction open for them: the last of the line commits them all at once,
and each write is answered only once that commit is done.

Each write runs in a SAVEPOINT of its own: one that fails (a stale ETag, a bad value) is
undone alone, and the others of its group still commit. A group is never larger than
the threads that write (each waits for its commit before it writes again), and at most
``MAX_GROUP``: the file is never held longer than that many writes take.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from oup.store.base import StoreBusy, StoreError

MAX_GROUP = 32
#: how long a write waits for another process's transaction, and how often it looks
BUSY_S, POLL_S = 30.0, 0.001


class _Group:
    """The writes of one transaction, until its commit."""

    def __init__(self) -> None:
        self.size = 0
        self.committed = threading.Event()
        self.error: BaseException | None = None

    def close(self, error: BaseException | None) -> None:
        self.error = error
        self.committed.set()

    def outcome(self) -> None:
        """Once committed: nothing, or the reason the commit failed."""
        self.committed.wait()
        if self.error is not None:
            raise StoreError(f"GeoPackage: the commit failed: {self.error}") from self.error


class GroupCommit:
    """One process's writes to one file: ``write()`` is a transaction's context."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]):
        self._connect = connect
        self._con: sqlite3.Connection | None = None
        self._pid = 0
        self._turn = threading.Lock()  # the connection's, one write at a time
        self._waiting = 0  # writes in line for the turn
        self._count = threading.Lock()
        self._group: _Group | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._con is None or self._pid != os.getpid():  # (never one of a parent's)
            self._con, self._pid = self._connect(), os.getpid()
        return self._con

    @contextmanager
    def write(self) -> Iterator[Callable]:
        with self._count:
            self._waiting += 1
        self._turn.acquire()
        with self._count:
            self._waiting -= 1
        try:
            con = self._connection()
            group = self._joined(con)
        except BaseException:
            self._turn.release()
            raise
        failed = None
        try:
            con.execute("SAVEPOINT oup_write")
        except BaseException as exc:  # nothing of this write to undo; the group ends
            self._end(con, group, exc, begun=False)
            raise
        try:
            yield lambda sql, params=(): con.execute(sql, list(params)).fetchall()
        except BaseException as exc:
            failed = exc
        self._end(con, group, failed)
        if failed is not None:
            raise failed
        group.outcome()

    def _joined(self, con: sqlite3.Connection) -> _Group:
        """The open group, or a new one (its transaction begun)."""
        group = self._group
        if group is not None and not con.in_transaction:  # SQLite gave it up (I/O error)
            group.close(StoreError("the transaction was rolled back by SQLite"))
            group = self._group = None
        if group is None:
            _begin(con)
            group = self._group = _Group()
        group.size += 1
        return group

    def _end(self, con: sqlite3.Connection, group: _Group, failed: BaseException | None,
             begun: bool = True):
        """This write's savepoint (if ``begun``) kept or undone; then the group
        committed, or left open for the next write in line. Gives up the turn."""
        try:
            if con.in_transaction and begun:
                if failed is not None:
                    con.execute("ROLLBACK TO oup_write")
                con.execute("RELEASE oup_write")
            with self._count:
                more = self._waiting > 0
            if more and group.size < MAX_GROUP and con.in_transaction:
                return  # the next in line goes on in this transaction
            self._group = None
            try:
                con.execute("COMMIT")
            except sqlite3.Error as exc:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                group.close(exc)
            else:
                group.close(None)
        except BaseException as exc:  # the connection itself failed: the group with it
            self._group = None
            try:
                if con.in_transaction:
                    con.execute("ROLLBACK")
            finally:
                group.close(exc)
        finally:
            self._turn.release()


def _begin(con: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE: the file's one writer from here to COMMIT (the ETag checks hold).
    Another process holding it is looked for every millisecond: SQLite's own busy wait
    sleeps longer and longer (to 100 ms a time), and a process whose writes follow each
    other closely would take the file again and again before it looked."""
    deadline = time.monotonic() + BUSY_S
    con.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                con.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise StoreBusy(f"GeoPackage: {exc}") from exc
            time.sleep(POLL_S)
    finally:
        con.execute(f"PRAGMA busy_timeout = {int(BUSY_S * 1000)}")
