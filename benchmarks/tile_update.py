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

    .venv/bin/python benchmarks/tile_update.py [--buildings 30000] [--runs 5]
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


if __name__ == "__main__":
    main()
