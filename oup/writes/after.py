"""What a write sets going beside its answer (a request does not wait for it): the 3D
Tiles of a changed building, the low-zoom overview of a changed area, and the counts made
from a changed collection.

Each runs on a thread of its own, one job at a time, and what comes in while a job runs
goes into the next job together: under many writes the work is done once for all of
them, not once for each (each job costs about the same whatever it holds)."""
from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import shapely.geometry

from oup.catalog import Catalog, Collection

LOG = logging.getLogger("oup.writes.after")


class Coalesced:
    """Work by key, one job at a time: ``work(key, items)`` gets every item added for
    ``key`` since the last job for it, in order."""

    def __init__(self, name: str, work: Callable[[str, list], None]):
        self._queue = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: dict[str, list] = {}
        self._lock = threading.Lock()
        self._work = work

    def add(self, key: str, item) -> None:
        with self._lock:
            self._pending.setdefault(key, []).append(item)
        self._queue.submit(self._run, key)

    def waiting(self, key: str) -> bool:
        """Whether items for ``key`` wait for the next job."""
        with self._lock:
            return bool(self._pending.get(key))

    def _run(self, key: str) -> None:
        with self._lock:
            items = self._pending.pop(key, [])
        if items:  # else an earlier job took them along
            self._work(key, items)


def tileset_updater(data_dir, announce: Callable, update_tileset: Callable, *,
                    nice: int = 0, coarse_wait: float = 30.0) -> Callable:
    """After a write to a 3D collection: its 3D Tiles, the changed buildings' leaves and
    the tiles above them made again (``update_tileset``: the tiler's, given by the
    composition root); a change event says which (``announce``: /viewer loads them
    again): one as soon as the leaves are out, another once the coarse tiles above them
    (seconds more in a large city) are.

    The changes wait in the tileset's queue (``TileQueue``), and one process of the
    server at a time updates it with all that wait: its leaves first, then the coarse
    tiles above them. When more changes wait, it stops before a coarse tile (the next
    update makes that tile anyway, and makes its own leaves first): a leaf waits for
    at most the one coarse tile being made, however many writes came. Under writes that
    do not stop, the coarse tiles are made all the same once they have waited
    ``coarse_wait`` seconds, one an update (the oldest first). The updating thread runs
    at ``nice`` (it yields the CPU to the requests; with one updater a server, at most
    one core goes to 3D tiles)."""
    from oup.events import tiles3d_event
    from oup.tiles.tiles3d import tileset_dir
    from oup.writes.city import merge_changes, tiles_change
    from oup.writes.tilequeue import INDEX_DIR, TileQueue

    yield_cpu = _yielding(nice)

    def one(cid: str, folder, changes: list, interrupt: Callable[[], bool]):
        told: set = set()

        def tell(report) -> None:  # what is out and not yet told
            rewritten = [u for u in report.rewritten if u not in told]
            removed = [u for u in report.removed if u not in told]
            told.update(rewritten, removed)
            if rewritten or removed:
                announce(tiles3d_event(cid, rewritten, removed))

        try:
            report = update_tileset(folder, merge_changes(changes), published=tell,
                                    interrupt=interrupt)
            LOG.info("3D tiles of %s after %d changes: %s", cid, len(changes), report)
            tell(report)
            return report
        except Exception:  # the writes stand; `oup tile` makes the tileset whole again
            LOG.exception("3D tiles of %s not updated after %d changes", cid, len(changes))
            return None

    def work(cid: str, _signals: list) -> None:
        folder = tileset_dir(data_dir, cid)
        queue = TileQueue(folder)
        yield_cpu()
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
                    if report is None or not report.postponed:
                        postponed_since = None
                    elif postponed_since is None:
                        postponed_since = time.monotonic()
            if not queue.waiting():  # else one came as this process let go
                return

    jobs = Coalesced("oup-3dtiles", work)

    def update(coll: Collection, kind: str, written, record=None) -> None:
        folder = tileset_dir(data_dir, coll.id)
        if coll.tiles3d is None or not (folder / INDEX_DIR).is_dir():
            return
        change = tiles_change(kind, written.before, written.after, record,
                              coll.tiles3d.z_offset_attribute)
        if change is not None:
            TileQueue(folder).put(change)
            jobs.add(coll.id, kind)

    return update


def _yielding(nice: int) -> Callable[[], None]:
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


def overview_updater(store, tile_cache, lock: Path, *, nice: int = 0) -> Callable:
    """After a write that changes a shape in a collection with an overview (its low
    zooms): the overview's cells the old and the new geometry touch drawn again, then the cached tiles that
    show those cells dropped up to the overview's deepest zoom (the write's own answer
    dropped those over the feature itself, at every zoom). The boxes that come while a
    redraw runs are drawn together by the next one.

    One process of the server redraws at a time (``lock``, a file): two drawing one
    cell at once, each from what it read before the other wrote, would write blocks
    over each other's; the other process's boxes wait and are drawn together. The
    thread runs at ``nice``: under a burst of new buildings the redraws are most of the
    CPU a write sets going, and the writes' own answers come first."""
    from oup.store import overview

    yield_cpu = _yielding(nice)

    def work(cid: str, boxes: list) -> None:
        yield_cpu()
        try:
            with open(lock, "a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)  # released as the file closes, or the process ends
                cells = overview.refresh(store, cid, boxes)
            for box in cells if tile_cache is not None else ():
                tile_cache.drop_area(cid, box, max_zoom=overview.OVERVIEW_ZOOM)
            LOG.info("overview of %s after %d boxes: %d cells", cid, len(boxes), len(cells))
        except Exception:  # the writes stand; the next import makes the overview anew
            LOG.exception("overview of %s not redone after %d writes", cid, len(boxes))

    jobs = Coalesced("oup-overview", work)

    def update(coll: Collection, kind: str, written, record=None) -> None:
        shapes = [shapely.geometry.shape(side["geometry"])
                  for side in (written.before, written.after) if side and side.get("geometry")]
        if len(shapes) == 2 and shapes[0].equals(shapes[1]):
            return  # the overview is the shapes alone: a change of attributes leaves it
        for box in {g.bounds for g in shapes}:
            jobs.add(coll.id, list(box))

    return update


def counts_updater(catalog: Catalog, store, announce: Callable) -> Callable:
    """After a write to a collection others count (``counts:``, e.g. reports per
    neighbourhood): those counted again, as their import does (disclosure rules and
    all); then an event says they were."""
    from oup.catalog.importers import import_collection
    from oup.events import imported_event

    counted_by: dict[str, list[Collection]] = {}
    for c in catalog:
        if c.counts:
            counted_by.setdefault(c.counts.of, []).append(c)

    def work(cid: str, _writes: list) -> None:
        coll = catalog[cid]
        try:
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
