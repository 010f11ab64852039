"""``oup aside``: the process beside each server process that does what its writes set
going (``oup.writes.after.Aside`` starts it, with the server's settings in its
environment): a tileset's 3D tiles after its changes (``tileset_updates``, with the
tiler's ``update_tileset``, which the command line gives), and the overview about changed
shapes (``overview_redraws``).

It reads jobs on stdin, a JSON line each (``{"n": <number>, "job": "tiles3d" |
"overview", "collection": ..., "item": ...}``); each kind runs on a thread of its own at
its nice (``OUP_TILES3D_NICE``, ``OUP_OVERVIEW_NICE``), one job at a time, and the jobs
that come meanwhile are done together. On stdout go, a JSON line each, the change events
of what it did, for the server to announce, and after each job the numbers of the jobs it
took (``{"done": [...]}``). When stdin closes (its server process ended) it does the jobs
it has, then ends.
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


def run_aside(update_tileset) -> None:
    """Until stdin closes, then the jobs it has done (a server process that is gone
    reads no more events: what was written stands)."""
    try:
        _serve(update_tileset)
    except BrokenPipeError:
        pass


def _serve(update_tileset) -> None:
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

    tiles = tileset_updates(settings.data_dir, announce, update_tileset,
                            coarse_wait=settings.tiles3d_coarse_wait)
    redraws = []  # made at the first job: the store opened then (PostGIS: its pool)

    def redraw(cid: str, boxes: list) -> None:
        if not redraws:
            try:
                store = open_store(settings.store_url)
            except Exception:  # the writes stand; the next job tries again
                LOG.exception("overview of %s not redone: the store cannot be opened", cid)
                return
            redraws.append(overview_redraws(
                store, TileCache(settings.data_dir / "tile-cache") if settings.tile_cache
                else None, settings.data_dir / ".overview.lock"))
        redraws[0](cid, boxes)

    tiles_nice, overview_nice = yielding(settings.tiles3d_nice), yielding(settings.overview_nice)
    jobs = {"tiles3d": Coalesced("oup-3dtiles", finishing(
                lambda cid, _kinds: (tiles_nice(), tiles(cid)))),
            "overview": Coalesced("oup-overview", finishing(
                lambda cid, boxes: (overview_nice(), redraw(cid, boxes))))}
    try:
        for lines in lines_as_they_come(0):
            for line in lines:
                try:
                    job = json.loads(line)
                    jobs[job["job"]].add(job["collection"], (job["n"], job.get("item")))
                except (ValueError, KeyError, TypeError):  # not one of the server's
                    LOG.error("not a job: %r", line[:200])
    finally:
        for coalesced in jobs.values():
            coalesced.close()
