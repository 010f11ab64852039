"""The GeoPackage store's write transaction alone under concurrent writers: K threads in
one process, each updating a feature of its own (a JSON Merge Patch of one attribute,
through ``write_feature``: version, history row, R*Trees, tile values) for S seconds.
No HTTP, no 3D or overview work: what the store's transaction and its commits allow.

    .venv/bin/python benchmarks/gpkg_writers.py [--features 2000] [--threads 1 4 8]
        [--seconds 5]

Run it with the code to compare on ``PYTHONPATH``; prints writes a second and the
process's CPU a write for each thread count.
"""
from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import shapely

from oup.store import Field
from oup.store.base import Change, Feature
from oup.store.gpkg import GeoPackageStore


def make(path: Path, n: int) -> GeoPackageStore:
    store = GeoPackageStore(path)
    feats = []
    for i in range(n):
        g = shapely.box(4.4 + (i % 100) * 1e-3, 51.9 + (i // 100) * 1e-3,
                        4.4 + (i % 100) * 1e-3 + 5e-4, 51.9 + (i // 100) * 1e-3 + 5e-4)
        feats.append(Feature(g, g, {"name": f"b{i}", "count": i}))
    store.write_collection("blocks", "EPSG:4326", [Field("name", "string"),
                                                   Field("count", "integer")], feats)
    return store


def run(store: GeoPackageStore, threads: int, seconds: float) -> tuple[float, float]:
    done = [0] * threads
    deadline = time.perf_counter() + seconds

    def writer(k: int) -> None:
        n = 0
        while time.perf_counter() < deadline:
            n += 1
            store.write_feature("blocks", Change("updated", 1 + k, Feature(
                None, None, {"name": f"w{k}-{n}"})))
        done[k] = n

    cpu, t0 = time.process_time(), time.perf_counter()
    pool = [threading.Thread(target=writer, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(seconds + 60)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu
    return sum(done) / wall, 1000 * cpu / max(1, sum(done))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=int, default=2000)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--seconds", type=float, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = make(Path(tmp) / "writers.gpkg", args.features)
        for k in args.threads:
            rate, cpu = run(store, k, args.seconds)
            print(f"{k} writer threads: {rate:7.1f} writes/s, {cpu:5.2f} ms CPU a write",
                  flush=True)


if __name__ == "__main__":
    main()
