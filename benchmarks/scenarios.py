"""Reading a collection through a scenario against reading the collection itself, in the
store (no HTTP), on the GeoPackage and, with --postgis URL, PostGIS: the same queries,
side by side in one run, and the ratio of their medians.

A grid of --features square blocks; a scenario that adds, changes and removes
--changes of them (a third each). Queries, each --rounds times at random places: a bbox
page (100 features of a box holding ~1% of the grid), a CQL2 filter sorted by a property
(a page of 100), a feature by id. The goal: a scenario read within x1.5 of the plain one.

    .venv/bin/python benchmarks/scenarios.py --features 100000 --changes 1000
    .venv/bin/python benchmarks/scenarios.py --postgis postgresql://localhost/bench
"""
from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import shapely

from oup.store.base import Change, Feature, Field, Query

FIELDS = [Field("name", "string"), Field("height", "number")]


def _grid(n: int) -> list[Feature]:
    side = int(n ** 0.5) + 1
    out = []
    for i in range(n):
        x, y = 4.40 + (i % side) * 0.0002, 51.88 + (i // side) * 0.0002
        g = shapely.box(x, y, x + 0.00015, y + 0.00015)
        out.append(Feature(g, g, {"name": f"block {i}", "height": float(i % 97)}))
    return out


def _time(run, rounds: int) -> float:
    took = []
    for _ in range(rounds):
        t = time.perf_counter()
        run()
        took.append(time.perf_counter() - t)
    return statistics.median(took)


def measure(store, name: str, n: int, changes: int, rounds: int) -> None:
    store.write_collection("blocks", "EPSG:4326", FIELDS, _grid(n))
    sid = store.create_scenario("bench", "bench", ["blocks"], [])["id"]
    rng = random.Random(7)
    span = (n ** 0.5) * 0.0002
    for k, fid in enumerate(rng.sample(range(1, n + 1), changes)):
        if k % 3 == 0:  # a new block somewhere on the grid
            x, y = 4.40 + rng.random() * span, 51.88 + rng.random() * span
            g = shapely.box(x, y, x + 0.0001, y + 0.0001)
            change = Change("created", None, Feature(g, g, {"name": "new", "height": 50.0}))
        elif k % 3 == 1:
            change = Change("updated", fid, Feature(None, None, {"height": 99.0}))
        else:
            change = Change("deleted", fid, None)
        store.write_scenario_feature("blocks", sid, change)
    boxes = [(4.40 + a * span * 0.9, 51.88 + b * span * 0.9) for a, b in
             ((rng.random(), rng.random()) for _ in range(rounds))]
    side = span * 0.1  # ~1% of the grid

    def box() -> tuple[float, float, float, float]:
        x, y = boxes[rng.randrange(rounds)]
        return x, y, x + side, y + side

    queries = {
        "bbox page": lambda s: (lambda: store.query("blocks", Query(
            bbox=box(), limit=100, scenario=s))),
        "filter, sorted page": lambda s: (lambda: store.query("blocks", Query(
            equals={"height": str(rng.randrange(97))}, sortby=[("name", True)], limit=100,
            scenario=s))),
        "by id": lambda s: (lambda: store.get("blocks", rng.randrange(1, n), scenario=s)),
    }
    print(f"{name}: {n} features, a scenario of {changes} changes, {rounds} rounds")
    for label, make in queries.items():
        plain, layered = _time(make(None), rounds), _time(make(sid), rounds)
        print(f"  {label:22s} plain {plain * 1000:7.2f} ms   scenario {layered * 1000:7.2f} ms"
              f"   x{layered / plain:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=int, default=100_000)
    ap.add_argument("--changes", type=int, default=1_000)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--postgis", help="a PostgreSQL URL to measure PostGIS too")
    args = ap.parse_args()
    from oup.store.gpkg import GeoPackageStore

    with tempfile.TemporaryDirectory() as tmp:
        measure(GeoPackageStore(Path(tmp) / "bench.gpkg"), "GeoPackage", args.features,
                args.changes, args.rounds)
    if args.postgis:
        from oup.store.postgis import PostGISStore

        measure(PostGISStore(args.postgis), "PostGIS", args.features, args.changes,
                args.rounds)


if __name__ == "__main__":
    main()
