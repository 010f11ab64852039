"""What a write sets going beside its answer (a request does not wait for it): the 3D
Tiles of a changed building, the low-zoom overview of a changed area, and the counts made
from a changed collection.

Each runs one job at a time (the 3D Tiles and the overview each in a process of its own,
``Aside``; the counts on a thread), and what comes in while a job runs goes into the next
job together: under many writes the work is done once for all of them, not once for each
(each job costs about the same whatever it holds)."""
from __future__ import annotations

import fcntl
import json
import logging
import os
import subprocess
import threading
import time
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import shapely.geometry

from oup.catalog import Catalog, Collection

LOG = logging.getLogger("oup.writes.after")

#: The kinds of work done in a process beside each server process (``Aside``), each in
#: one of its own.
JOBS = ("tiles3d", "overview")


class Coalesced:
    """Work by key, one job at a time: ``work(key, items)`` gets every item added for
    ``key`` since the last job for it, in order.

    With ``quiet`` seconds, a job first waits until no item has come for that long, or
    for ``at_most`` seconds since its first item (0: no waiting): under a burst the items
    wait and are done together, once, after it (the overview about new buildings: redrawn
    at every turn of a storm it kept a core busy beside the writes, and drew the same
    cells again and again)."""

    def __init__(self, name: str, work: Callable[[str, list], None], *,
                 quiet: float = 0.0, at_most: float = 0.0):
        self._queue = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: dict[str, list] = {}
        self._came: dict[str, tuple[float, float]] = {}  # key: (first, last) item's time
        self._lock = threading.Lock()
        self._work = work
        self._quiet, self._at_most = quiet, at_most

    def add(self, key: str, item) -> None:
        with self._lock:
            self._pending.setdefault(key, []).append(item)
            now = time.monotonic()
            self._came[key] = (self._came.get(key, (now,))[0], now)
        self._queue.submit(self._run, key)

    def waiting(self, key: str) -> bool:
        """Whether items for ``key`` wait for the next job."""
        with self._lock:
            return bool(self._pending.get(key))

    def close(self) -> None:
        """Once the jobs added are done (those settling too: no waiting then)."""
        self._quiet = 0.0
        self._queue.shutdown(wait=True)

    def _settle(self, key: str) -> None:
        while self._quiet:
            with self._lock:
                first, last = self._came.get(key, (0.0, 0.0))
            wait = min(last + self._quiet, first + self._at_most) - time.monotonic()
            if wait <= 0:
                return
            time.sleep(min(wait, self._quiet))  # (a close() ends the wait within that)

    def _run(self, key: str) -> None:
        self._settle(key)
        with self._lock:
            items = self._pending.pop(key, [])
            self._came.pop(key, None)
        if items:  # else an earlier job took them along
            self._work(key, items)


def tileset_updates(data_dir, announce: Callable, update_tileset: Callable, *,
                    coarse_wait: float = 30.0) -> Callable[[str], None]:
    """``work(cid)``: the 3D Tiles of collection ``cid`` after the changes that wait in
    its tileset's queue (``TileQueue``): the changed buildings' leaves and the tiles
    above them made again (``update_tileset``: the tiler's, given by the composition
    root); a change event says which (``announce``: /viewer loads them again): one as
    soon as the leaves are out, another once the coarse tiles above them (seconds more
    in a large city) are.

    One process of the server at a time updates a tileset, with all the changes that
    wait: its leaves first, then the coarse tiles above them. When more changes wait, it
    stops before a coarse tile (the next update makes that tile anyway, and makes its
    own leaves first): a leaf waits for at most the one coarse tile being made, however
    many writes came. Under writes that do not stop, the coarse tiles are made all the
    same once they have waited ``coarse_wait`` seconds, one an update (the oldest
    first)."""
    from oup.events import tiles3d_event
    from oup.tiles.tiles3d import tileset_dir
    from oup.writes.city import merge_changes
    from oup.writes.tilequeue import TileQueue

    def one(cid: str, folder, changes: list, interrupt: Callable[[], bool]):
        told: set = set()

        def tell(report) -> None:  # what is out and not yet told
            rewritten = [u for u in report.rewritten if u not in told]
            removed = [u for u in report.removed if u not in told]
            told.update(rewritten, removed)
            if rewritten or removed:
                try:
                    announce(tiles3d_event(cid, rewritten, removed))
                except Exception:  # (its server process gone): the update goes on, or the
                    # leaves it wrote would not be in the index it saves at the end
                    LOG.exception("3D tiles of %s: the change event not sent", cid)

        try:
            report = update_tileset(folder, merge_changes(changes), published=tell,
                                    interrupt=interrupt)
            LOG.info("3D tiles of %s after %d changes: %s", cid, len(changes), report)
            tell(report)
            return report
        except Exception:  # the writes stand; `oup tile` makes the tileset whole again
            LOG.exception("3D tiles of %s not updated after %d changes", cid, len(changes))
            return None

    def work(cid: str) -> None:
        folder = tileset_dir(data_dir, cid)
        queue = TileQueue(folder)
        while True:
            with queue.updater() as mine:
                if not mine:  # the updater takes ours along (it looks once more as it stops)
                    return
                postponed_since = None
                while True:
                    changes = queue.take()
                    if not changes and postponed_since is None:
                        break
                    overdue = postponed_since is not None and \
                        time.monotonic() - postponed_since >= coarse_wait
                    report = one(cid, folder, changes, _after_one(queue.waiting)
                                 if overdue else queue.waiting)
                    queue.done()  # in the tileset, or refused (logged): not tried again
                    if report is None or not report.postponed:
                        postponed_since = None
                    elif postponed_since is None:
                        postponed_since = time.monotonic()
            if not queue.waiting():  # else one came as this process let go
                return

    return work


def tileset_updater(data_dir, add: Callable[[str, str], None]) -> Callable:
    """After a write to a 3D collection: the change waits in its tileset's queue, and
    ``add(cid, kind)`` has the tileset updated (``tileset_updates``; in the server, in
    its ``Aside`` process)."""
    from oup.tiles.tiles3d import tileset_dir
    from oup.writes.city import tiles_change
    from oup.writes.tilequeue import INDEX_DIR, TileQueue

    def update(coll: Collection, kind: str, written, record=None) -> None:
        folder = tileset_dir(data_dir, coll.id)
        if coll.tiles3d is None or not (folder / INDEX_DIR).is_dir():
            return
        change = tiles_change(kind, written.before, written.after, record,
                              coll.tiles3d.z_offset_attribute)
        if change is not None:
            TileQueue(folder).put(change)
            add(coll.id, kind)

    return update


class Aside:
    """What the writes of a server process set going, done in a child process of its
    own (``command``: ``oup aside tiles3d``, ``oup aside overview``: one ``Aside`` for
    each).

    Done on threads beside the requests, this work held the process's interpreter lock
    for about half the CPU a write set going (a leaf's property table, an overview cell:
    Python work), and a request waited for it whatever the thread's nice: under writes
    the requests, the 3D tiles and the overview slowed each other down. In a process of
    its own the work has its own interpreter, and its threads' nice is honoured by the
    kernel against the requests.

    ``add(job, cid, item)`` sends the child a job, a JSON line on its stdin, numbered;
    jobs that come while one runs are done together (``Coalesced``, in the child). The
    child writes on its stdout, a JSON line each, the events of what it did, which this
    process announces, and the numbers of the jobs it finished. It is started at the
    first job, and it ends when this process does (its stdin closes), after the jobs it
    has. When it dies (killed, out of memory), another is started at once with the jobs
    it left unfinished: those it was doing, and those still in its pipe (a job written as
    it died is not lost either). A job is sent twice at most: one that ends its process
    each time is dropped (logged), or it would do so for ever."""

    def __init__(self, command: list[str], env: dict, announce: Callable):
        self.command, self.env, self.announce = command, env, announce
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._serial = 0
        self._unfinished: dict[int, _Job] = {}  # by number, in the order they came

    def add(self, job: str, cid: str, item=None) -> None:
        with self._lock:
            self._serial += 1
            self._unfinished[self._serial] = _Job(self._serial, json.dumps(
                {"n": self._serial, "job": job, "collection": cid, "item": item}).encode())
            self._send([self._unfinished[self._serial]])

    def _send(self, jobs: list) -> None:
        """``jobs`` to the child; to a child started because there was none, or it died,
        every unfinished job (under ``_lock``)."""
        for _attempt in range(2):  # once more with a fresh child if this one died
            if self._proc is None or self._proc.poll() is not None:
                self._start()
                jobs = list(self._unfinished.values())
            try:
                for job in jobs:
                    if job.sent_to is self._proc:
                        continue
                    if job.sends == 2:
                        LOG.error("a job of the writes' work dropped: its process ended "
                                  "twice with it: %r", job.line[:200])
                        del self._unfinished[job.n]
                        continue
                    self._proc.stdin.write(job.line + b"\n")
                    job.sent_to, job.sends = self._proc, job.sends + 1
                self._proc.stdin.flush()
                return
            except OSError:  # BrokenPipeError: it died meanwhile
                LOG.warning("the process of writes' work (pid %s) is gone: starting "
                            "another", self._proc.pid)
                self._proc = None
        # what is left is sent with the next job; a change of 3D tiles also waits in the
        # tileset's queue

    def _start(self) -> None:
        self._proc = subprocess.Popen(self.command, env=self.env, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE)
        threading.Thread(target=self._relay, args=(self._proc,), daemon=True,
                         name="oup-aside-events").start()

    def _relay(self, proc: subprocess.Popen) -> None:
        from oup.events import ChangeEvent

        for line in proc.stdout:  # until the child ends
            try:
                message = json.loads(line)
                if "done" in message:
                    with self._lock:
                        for n in message["done"]:
                            self._unfinished.pop(n, None)
                else:
                    self.announce(ChangeEvent(**message))
            except Exception:  # one event lost, not the relay
                LOG.exception("event of the writes' work not announced: %r", line[:200])
        code = proc.wait()
        with self._lock:
            if self._proc is proc:  # it died: this process still runs, so its stdin is open
                LOG.warning("the process of writes' work (pid %s) ended (%s) with %d jobs "
                            "unfinished", proc.pid, code, len(self._unfinished))
                self._proc = None
                if self._unfinished:
                    self._send([])  # (a new child gets every unfinished job)


@dataclass
class _Job:
    n: int
    line: bytes
    sent_to: subprocess.Popen | None = None  # the child it was last written to
    sends: int = 0


def yielding(nice: int) -> Callable[[], None]:
    """What a job's thread calls first: it runs at ``nice`` from then on (this thread
    only: on Linux a thread has a nice value of its own)."""
    niced = threading.local()

    def yield_cpu() -> None:
        if nice and not getattr(niced, "done", False) and hasattr(os, "setpriority"):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
            niced.done = True

    return yield_cpu


def _after_one(waiting: Callable[[], bool]) -> Callable[[], bool]:
    """An interrupt that lets one coarse tile be made, then asks ``waiting``."""
    asked = []

    def interrupt() -> bool:
        if not asked:
            asked.append(True)
            return False
        return waiting()

    return interrupt


@contextmanager
def one_process_at_a_time(lock: Path):
    """The block runs in one process at a time: the others wait at ``lock`` (a file; it
    is let go as the block ends, or as the process does)."""
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def overview_redraws(store, tile_cache, lock: Path) -> Callable[[str, list], None]:
    """``work(cid, boxes)``: the overview's cells (a collection's low zooms) that
    ``boxes`` touch drawn again, then the cached tiles that show those cells dropped up
    to the overview's deepest zoom (the write's own answer dropped those over the
    feature itself, at every zoom).

    One process of the server redraws at a time (``lock``, a file): two drawing one
    cell at once, each from what it read before the other wrote, would write blocks
    over each other's; the other process's boxes wait and are drawn together."""
    from oup.store import overview

    def work(cid: str, boxes: list) -> None:
        try:
            with one_process_at_a_time(lock):
                cells = overview.refresh(store, cid, boxes)
            for box in cells if tile_cache is not None else ():
                tile_cache.drop_area(cid, box, max_zoom=overview.OVERVIEW_ZOOM)
            LOG.info("overview of %s after %d boxes: %d cells", cid, len(boxes), len(cells))
        except Exception:  # the writes stand; the next import makes the overview anew
            LOG.exception("overview of %s not redone after %d writes", cid, len(boxes))

    return work


def overview_updater(add: Callable[[str, list], None]) -> Callable:
    """After a write that changes a shape: ``add(cid, box)`` for the box of the old and
    of the new geometry (``overview_redraws``; in the server, in its ``Aside`` process:
    under a burst of new buildings the redraws are most of the CPU a write sets going,
    and the writes' own answers come first). A change of attributes alone adds none."""

    def update(coll: Collection, kind: str, written, record=None) -> None:
        if written.before and written.after and \
                written.before.get("geometry") == written.after.get("geometry"):
            return  # the same coordinates (as stored, both): the common attribute change
        shapes = [shapely.geometry.shape(side["geometry"])
                  for side in (written.before, written.after) if side and side.get("geometry")]
        if len(shapes) == 2 and shapes[0].equals(shapes[1]):
            return  # the overview is the shapes alone: a change of attributes leaves it
        for box in {g.bounds for g in shapes}:
            add(coll.id, list(box))

    return update


def counts_updater(catalog: Catalog, store, announce: Callable, lock: Path) -> Callable:
    """After a write to a collection others count (``counts:``, e.g. reports per
    neighbourhood): those counted again, as their import does (disclosure rules and
    all); then an event says they were.

    One process of the server counts at a time (``lock``, a file), each reading what the
    one before it wrote: two counting at once, the one that read first could write last,
    and a report the other counted would stay uncounted until the next write."""
    from oup.catalog.importers import import_collection
    from oup.events import imported_event

    counted_by: dict[str, list[Collection]] = {}
    for c in catalog:
        if c.counts:
            counted_by.setdefault(c.counts.of, []).append(c)

    def work(cid: str, _writes: list) -> None:
        coll = catalog[cid]
        try:
            with one_process_at_a_time(lock):
                report = import_collection(coll, store, progress=False)
            announce(imported_event(cid, report.count, report.notes))
        except Exception:  # the writes stand; `oup import` counts again
            LOG.exception("%s not counted again", cid)

    jobs = Coalesced("oup-counts", work)

    def update(coll: Collection, kind: str, written, record=None) -> None:
        for counts in counted_by.get(coll.id, ()):
            jobs.add(counts.id, kind)

    return update


def both(*updates: Callable) -> Callable:
    def update(*args) -> None:
        for u in updates:
            u(*args)

    return update
