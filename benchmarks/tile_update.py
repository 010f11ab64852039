"""3D tiles after a write: ``tilers.update.update_tileset`` on a city of N buildings, for
one building at a time, as ``oup/writes/after.py`` runs it after a Part 4 write.

Two kinds of change, each on a fresh copy of the same tileset (the copy is not timed),
each run a different building: a changed attribute (a text and a number: the tiles keep
their meshes) and a changed shape (the building raised 1 m: its leaf and every coarse
tile above it are meshed again; the root holds a block of every building). Prints wall
and CPU seconds of each run until its leaf is out (``published``: the leaf's glb and a
tileset.json that holds it; a viewer can load it) and until the whole update is done,
their medians and the largest. Then, as a write's 3D update does when more writes wait
(``interrupt``), the first shape change once more, one coarse tile an update: what a
leaf of the next write can wait for is one of these. The city and its tileset are kept
in ``--work`` and reused.

With ``--storm U K``: what the server's 3D updates do under a storm of new buildings
(``writes.py``'s POST workload), in process: U updates of K new buildings each (copies
of buildings spread over the city, 30 m east), each stopped before its coarse tiles as
when more writes wait (every third lets one be made, as one overdue), then one update
that makes every coarse tile left: seconds until each update's leaves are out and until
it is done, and cProfile's top functions over the updates.

    .venv/bin/python benchmarks/tile_update.py [--buildings 30000] [--runs 5]
    .venv/bin/python benchmarks/tile_update.py --buildings 200000 --storm 6 400
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from citygen import make_city  # noqa: E402


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def _changes(source: Path, runs: int) -> tuple[dict, list[dict], list[dict]]:
    """The model's transform, and ``runs`` attribute and shape changes of buildings
    spread over the city."""
    lines = source.read_text().splitlines()
    header, features = json.loads(lines[0]), lines[1:]
    picked = [json.loads(features[i * len(features) // runs]) for i in range(runs)]
    attributes = [{"id": f["id"], "attributes": {"status": f"run {i}", "TerrainHeight": 1.5 + i}}
                  for i, f in enumerate(picked)]
    scale = header["transform"]["scale"][2]
    for f in picked:  # raised 1 m: a new shape, the same footprint
        f["vertices"] = [[x, y, z + round(1 / scale)] for x, y, z in f["vertices"]]
    return header["transform"], attributes, picked


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--buildings", type=int, default=30_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--work", type=Path, default=HERE / "out" / "tile-update-work")
    ap.add_argument("--storm", type=int, nargs=2, metavar=("UPDATES", "BUILDINGS"),
                    help="updates of new buildings, each stopped before its coarse tiles")
    args = ap.parse_args()
    from oup.geodesy import install_grids
    from tilers import tile
    from tilers.update import update_tileset

    args.work.mkdir(parents=True, exist_ok=True)
    install_grids(args.work)
    source = args.work / f"city-{args.buildings}.city.jsonl"
    tileset = args.work / f"tiles-{args.buildings}"
    if not tileset.is_dir():
        make_city(source, args.buildings)
        tile([source], tileset, progress=False)
    transform, attributes, shapes = _changes(source, args.runs)
    scratch = args.work / "scratch"
    if args.storm:
        _storm(tileset, scratch, source, transform, *args.storm)
        return
    for kind, changes in (("attribute", attributes), ("shape", shapes)):
        runs = {"leaf": ([], []), "all": ([], [])}  # (walls, cpus)
        for change in changes:
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.copytree(tileset, scratch)
            wall, cpu = time.perf_counter(), _cpu()

            def leaf_out(_report, wall=wall, cpu=cpu):
                runs["leaf"][0].append(time.perf_counter() - wall)
                runs["leaf"][1].append(_cpu() - cpu)

            report = update_tileset(scratch, [change], transform=transform, published=leaf_out)
            runs["all"][0].append(time.perf_counter() - wall)
            runs["all"][1].append(_cpu() - cpu)
            print(f"{kind}: {report}; leaf out after {runs['leaf'][0][-1]:.2f} s (cpu "
                  f"{runs['leaf'][1][-1]:.2f} s); cpu {runs['all'][1][-1]:.2f} s", flush=True)
        for when, (walls, cpus) in runs.items():
            print(f"{kind} change, {args.buildings} buildings, {len(walls)} runs, "
                  f"{'leaf out' if when == 'leaf' else 'all done'}: wall median "
                  f"{statistics.median(walls):.2f} s, max {max(walls):.2f} s; cpu median "
                  f"{statistics.median(cpus):.2f} s, max {max(cpus):.2f} s", flush=True)
    _one_by_one(tileset, scratch, shapes[0], transform)
    shutil.rmtree(scratch, ignore_errors=True)


def _one_by_one(tileset: Path, scratch: Path, change: dict, transform: dict) -> None:
    """A shape change interrupted before every coarse tile but the first, and then
    updates without changes until none is left: wall and CPU seconds of each step."""
    from tilers.update import update_tileset

    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(tileset, scratch)
    todo, steps = [change], []
    for _ in range(64):  # a tileset is at most 16 levels deep
        wall, cpu = time.perf_counter(), _cpu()
        report = update_tileset(scratch, todo, transform=transform, interrupt=lambda: True)
        steps.append((time.perf_counter() - wall, _cpu() - cpu))
        print(f"one by one: {report}; cpu {steps[-1][1]:.2f} s", flush=True)
        todo = []
        if not report.postponed:
            break
    print(f"one coarse tile an update: {len(steps)} updates, wall "
          f"{', '.join(f'{w:.2f}' for w, _ in steps)} s; cpu "
          f"{', '.join(f'{c:.2f}' for _, c in steps)} s", flush=True)


def _storm(tileset: Path, scratch: Path, source: Path, transform: dict, updates: int,
           per: int) -> None:
    """``updates`` updates of ``per`` new buildings each, interrupted as under a storm
    of writes (every third lets one coarse tile be made), then the drain."""
    import cProfile
    import pstats

    from tilers.update import update_tileset

    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(tileset, scratch)
    lines = source.read_text().splitlines()[1:]
    step = round(30 / transform["scale"][0])  # 30 m east
    profile = cProfile.Profile()
    for u in range(updates):
        changes = []
        for k in range(per):
            n = u * per + k
            doc = json.loads(lines[n * 7919 % len(lines)])  # spread over the city
            doc = json.loads(json.dumps(doc).replace(doc["id"], f"storm-{n}"))
            doc["vertices"] = [[x + step, y, z] for x, y, z in doc["vertices"]]
            changes.append(doc)
        asked = []

        def interrupt(every_third=(u % 3 == 2)) -> bool:  # one overdue coarse tile
            asked.append(1)
            return not (every_third and len(asked) == 1)

        wall, cpu, out = time.perf_counter(), _cpu(), []
        profile.enable()
        report = update_tileset(scratch, changes, transform=transform, interrupt=interrupt,
                                published=lambda _r: out.append(time.perf_counter() - wall))
        profile.disable()
        print(f"storm update {u}: {per} new, leaves out {out[0] if out else float('nan'):.2f} s, "
              f"done {time.perf_counter() - wall:.2f} s (cpu {_cpu() - cpu:.2f} s); "
              f"{len(report.rewritten)} tiles rewritten, {len(report.postponed)} postponed",
              flush=True)
    wall, cpu = time.perf_counter(), _cpu()
    report = update_tileset(scratch, [])
    print(f"drain: {len(report.rewritten)} coarse tiles in {time.perf_counter() - wall:.2f} s "
          f"(cpu {_cpu() - cpu:.2f} s)", flush=True)
    pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
