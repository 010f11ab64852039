"""The changes that wait for a 3D tileset, shared by every worker process of the server.

A write's change is a file in the tileset's ``.oup-index/pending/`` (named by when it
came, so they are taken in order). One process at a time updates the tileset: the one
that holds ``.oup-index/updater`` (a lock the others do not wait for: their changes are
in the folder, and the updater takes them along). It takes all that wait at once, so
under many writes, from any worker, one update does the leaves of all of them and the
tiles above those once; and whether more wait is a look at the folder, so an update can
make way for the next one (``tilers.update``'s ``interrupt``) whichever worker took the
write. The lock goes with the process: a worker that dies holds nothing, and the changes
it had taken (``.oup-index/taken/``) go to the next updater."""
from __future__ import annotations

import fcntl
import itertools
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

import orjson

LOG = logging.getLogger("oup.writes.tilequeue")
AGAIN = ".again.json"  # a change taken by an updater that died: tried once more
INDEX_DIR = ".oup-index"  # the tiler's folder beside a tileset (tilers.index), never served
_serial = itertools.count()


class TileQueue:
    def __init__(self, folder: Path):
        self.pending = Path(folder) / INDEX_DIR / "pending"
        self.taken = Path(folder) / INDEX_DIR / "taken"
        self._lock = Path(folder) / INDEX_DIR / "updater"

    def put(self, change: dict) -> None:
        """``change`` waits (written whole, then named: a reader never sees half of it)."""
        self.pending.mkdir(exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(_serial)}"
        part = self.pending / f".{name}.part"
        part.write_bytes(orjson.dumps(change, option=orjson.OPT_SERIALIZE_NUMPY))
        os.replace(part, self.pending / f"{name}.json")

    def _names(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.pending) if n.endswith(".json"))
        except FileNotFoundError:
            return []

    def waiting(self) -> bool:
        try:
            with os.scandir(self.pending) as entries:
                return any(e.name.endswith(".json") for e in entries)
        except FileNotFoundError:
            return False

    def take(self) -> list[dict]:
        """Every change that waits, oldest first; they wait no more, and are kept aside
        (``taken/``) until ``done``: an updater that dies before that (killed, its
        process gone) leaves them to the next one, whose ``take`` gives them first.
        Only the updater takes (it holds the lock), so what it finds aside is its
        dead predecessor's. They are tried once more, not for ever: a change that kills
        its updater each time would otherwise stop the tileset's updates."""
        self.taken.mkdir(exist_ok=True)
        for name in os.listdir(self.taken):  # a dead updater's
            if name.endswith(AGAIN):
                LOG.error("a change to %s dropped: its update ended twice with its process",
                          self.taken.parent.parent)
                (self.taken / name).unlink(missing_ok=True)
            elif name.endswith(".json"):
                os.replace(self.taken / name, self.taken / (name[:-5] + AGAIN))
        for name in self._names():
            os.replace(self.pending / name, self.taken / name)
        out = []
        for name in sorted(n for n in os.listdir(self.taken) if n.endswith(".json")):
            try:
                out.append(orjson.loads((self.taken / name).read_bytes()))
            except orjson.JSONDecodeError:  # not one of ours: dropped, not retried forever
                (self.taken / name).unlink(missing_ok=True)
        return out

    def done(self) -> None:
        """The changes taken are in the tileset (or were refused): they go."""
        for name in os.listdir(self.taken) if self.taken.is_dir() else ():
            (self.taken / name).unlink(missing_ok=True)

    @contextmanager
    def updater(self):
        """True when this process is now the tileset's updater (until the block ends),
        False when another one is."""
        with open(self._lock, "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
