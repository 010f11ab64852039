"""``oup aside <job>``: a process beside each server process that does one kind of what
its writes set going (``oup.writes.after.Aside`` starts it, with the server's settings in
its environment): ``tiles3d``, a tileset's 3D tiles after its changes
(``tileset_updates``, with the tiler's ``update_tileset``, which the command line gives),
or ``overview``, the overview about changed shapes (``overview_redraws``).

Each kind has a process of its own: under a burst of new buildings the overview's redraws
(reading and merging every block about each one) held the interpreter lock for twice
as long as the 3D updates beside them, on threads of one process, and the 3D leaves
waited for it at every turn; apart, each has its own interpreter, and the kernel gives
the CPU by their nice (``OUP_TILES3D_NICE`` below ``OUP_OVERVIEW_NICE``: the 3D tiles
come first). Even at nice 10 the overview took a fifth to a third of a core from a
storm of new buildings (whenever a request waited on the store, it ran), so it also waits
for the writes to pause (``OUP_OVERVIEW_QUIET``, at most ``OUP_OVERVIEW_WAIT`` seconds).

It reads jobs on stdin, a JSON line each (``{"n": <number>, "job": "tiles3d" |
"overview", "collection": ..., "item": ...}``); one job at a time, and the jobs that come
meanwhile are done together. On stdout go, a JSON line each, the change events of what it
did, for the server to announce, and after each job the numbers of the jobs it took
(``{"done": [...]}``). When stdin closes (its server process ended) it does the jobs it
has, then ends.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import threading

from oup.settings import get_settings
from oup.writes.after import Coalesced, overview_redraws, tileset_updates, yielding

LOG = logging.getLogger("oup.writes.aside")


def lines_as_they_come(fd: int):
    """Each time something came on ``fd``: the whole lines in it (a burst of jobs, read
    at once)."""
    rest = b""
    while chunk := os.read(fd, 65536):
        *lines, rest = (rest + chunk).split(b"\n")
        yield [line for line in lines if line.strip()]


def scheduling_group_of_its_own(nice: int) -> None:
    """This process in a session of its own, its scheduling group (Linux's autogroup)
    at ``nice``. The kernel shares the CPU between groups first, then between the tasks
    of a group: beside the server's group, with its request threads, and PostgreSQL's (a
    session of its own), the 3D updater gets a share of its own, where in the server's
    group a thread at nice 5 got what a dozen busy request threads left (a storm of new
    buildings at 200,000 buildings on PostGIS: leaves p99 9.8 s there, 4.4 s in a group of
    its own at nice 5, with 17 % fewer writes a second). Where there is no autogroup (a
    kernel without it, a service's cgroup) the thread's nice alone applies."""
    try:
        os.setsid()
        with open("/proc/self/autogroup", "w") as fh:
            fh.write(str(nice))
    except OSError as e:  # not Linux, or no autogroup: as it was
        LOG.info("the 3D updater in the server's scheduling group: %s", e)


def run_aside(kind: str, update_tileset) -> None:
    """Jobs of ``kind`` (one of ``after.JOBS``) until stdin closes, then the jobs it has
    done (a server process that is gone reads no more events: what was written stands)."""
    try:
        _serve(kind, update_tileset)
    except BrokenPipeError:
        pass


def _serve(kind: str, update_tileset) -> None:
    from oup.store import open_store
    from oup.tiles.cache import TileCache

    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr)
    # stdout carries the events alone: whatever else would print goes to stderr
    events, told = os.fdopen(os.dup(1), "w", buffering=1), threading.Lock()
    os.dup2(2, 1)

    def tell(message: dict) -> None:
        with told:
            events.write(json.dumps(message) + "\n")

    def announce(event) -> None:
        tell({k: v for k, v in dataclasses.asdict(event).items() if k != "seq"})

    def finishing(work):
        """``work`` on the items of numbered jobs; then their numbers, done (the server
        sends the unfinished ones again to the next process if this one dies)."""
        def run(cid: str, jobs: list) -> None:
            work(cid, [item for _n, item in jobs])
            tell({"done": [n for n, _item in jobs]})

        return run

    def tiles3d():
        scheduling_group_of_its_own(settings.tiles3d_nice)
        tiles = tileset_updates(settings.data_dir, announce, update_tileset,
                                coarse_wait=settings.tiles3d_coarse_wait)
        return lambda cid, _kinds: tiles(cid)

    def overview():
        redraws = []  # made at the first job: the store opened then (PostGIS: its pool)

        def redraw(cid: str, boxes: list) -> None:
            if not redraws:
                try:
                    store = open_store(settings.store_url)
                except Exception:  # the writes stand; the next job tries again
                    LOG.exception("overview of %s not redone: the store cannot be opened",
                                  cid)
                    return
                redraws.append(overview_redraws(
                    store, TileCache(settings.data_dir / "tile-cache")
                    if settings.tile_cache else None, settings.data_dir / ".overview.lock"))
            redraws[0](cid, boxes)

        return redraw

    # the 3D tiles at once; the overview once writes pause (low zooms can wait)
    make, nice, settle = {
        "tiles3d": (tiles3d, settings.tiles3d_nice, {}),
        "overview": (overview, settings.overview_nice,
                     {"quiet": settings.overview_quiet, "at_most": settings.overview_wait}),
    }[kind]
    # (the job's thread at its nice: on Linux a thread has one of its own)
    work, yield_cpu = make(), yielding(nice)
    jobs = Coalesced(f"oup-{kind}", finishing(lambda cid, items: (yield_cpu(),
                                                                   work(cid, items))),
                     **settle)
    try:
        for lines in lines_as_they_come(0):
            for line in lines:
                try:
                    job = json.loads(line)
                    if job["job"] != kind:
                        raise KeyError(job["job"])
                    jobs.add(job["collection"], (job["n"], job.get("item")))
                except (ValueError, KeyError, TypeError):  # not one of the server's
                    LOG.error("not a %s job: %r", kind, line[:200])
    finally:
        jobs.close()
