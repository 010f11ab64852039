"""CPU per vector tile, in-process: what one tile of the buildings layer costs each store.

CPU time, not wall clock, so that a machine busy with other jobs still gives comparable
figures: the GeoPackage store's is this process's CPU (time.process_time); the PostGIS
store's is this process's plus that of the PostgreSQL cluster's processes (the backend
that cuts the tile), read from /proc. The tiles are benchmarks/tiles.py's (its random
z14-z16 tiles over the city, and the z10-z12 overview tiles), on its data.

    .venv/bin/python benchmarks/tile_cpu.py [--work benchmarks/out/tiles-work]
        [--detail 60] [--postgis] [--profile 10]

--postgis copies the buildings into a throwaway PostGIS cluster first (minutes);
--cut-all measures the GeoPackage again with every overview block cut (clipped and
repaired as any feature), not those on the tile's grid only moved: before and after;
--profile N prints cProfile's top N functions of the GeoPackage tiles, by own time.
Prints CPU ms per tile by zoom (and the GeoPackage store's MVT encoding in it); writes
benchmarks/out/tile_cpu.json. Runs on a checkout from before OUP's own encoder too.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import features as fb  # noqa: E402  (data builder, PostGIS cluster, /proc CPU)
import tiles as tb  # noqa: E402  (the tile lists)
from oup.tiles import matrix_sets as grids  # noqa: E402
from oup.store.gpkg import GeoPackageStore  # noqa: E402
from oup.store.mvt import TileQuery, tile_layer  # noqa: E402

MAX_SECONDS = 900  # a bound on each pass, whatever the machine's load


def queries(store, lists: dict) -> list[tuple[int, TileQuery]]:
    props = tuple(n for n, _ in store.layer("buildings")["fields"])  # all, as the server's
    out = []
    for z, row, col in lists["z10-12 overview"] + lists["z14-16"]:
        t = grids.Tile("WebMercatorQuad", z, row, col)
        out.append((z, TileQuery("buildings", props, t.bounds, t.srid, t.crs,
                                 t.crs84_envelope)))
    return out


class EncodeClock:
    """The CPU the GeoPackage store spends in its MVT encoder (OUP's own, or before it
    mapbox-vector-tile's), counted by wrapping whichever this checkout calls."""

    def __init__(self):
        self.seconds = 0.0
        try:
            from oup.store import mvt_encode as module
            name = "encode_layer"
        except ImportError:  # before OUP had its own encoder
            import mapbox_vector_tile as module
            name = "encode"
        inner = getattr(module, name)

        def timed(*args, **kwargs):
            c0 = time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds += time.process_time() - c0

        setattr(module, name, timed)


def measure(store, qs, cpu, profile: cProfile.Profile | None = None,
            clock: EncodeClock | None = None) -> dict:
    """CPU ms per tile by zoom (one pass, after a warm-up pass), of which encoding (if
    ``clock``), and tile bytes."""
    deadline = time.monotonic() + MAX_SECONDS
    for _, q in qs[:5]:  # warm-up: caches, first connections, imports
        tile_layer(store, q)
    by_zoom: dict[int, list[float]] = {}
    encoding: dict[int, list[float]] = {}
    sizes: dict[int, list[int]] = {}
    for z, q in qs:
        if time.monotonic() > deadline:
            print(f"stopped after {MAX_SECONDS} s", file=sys.stderr)
            break
        e0 = clock.seconds if clock else 0.0
        c0 = cpu()
        if profile:
            profile.enable()
        data = tile_layer(store, q)
        if profile:
            profile.disable()
        by_zoom.setdefault(z, []).append((cpu() - c0) * 1000)
        encoding.setdefault(z, []).append(((clock.seconds if clock else 0.0) - e0) * 1000)
        sizes.setdefault(z, []).append(len(data))
    return {z: {"tiles": len(v), "mean_ms": statistics.fmean(v), "p50_ms": statistics.median(v),
                "max_ms": max(v), "encode_mean_ms": statistics.fmean(encoding[z]),
                "p50_bytes": int(statistics.median(sizes[z]))}
            for z, v in sorted(by_zoom.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=fb.OUT / "tiles-work")
    ap.add_argument("--buildings", type=int, default=200_000, help="if the data is missing")
    ap.add_argument("--detail", type=int, default=60, help="how many of the z14-16 tiles")
    ap.add_argument("--postgis", action="store_true")
    ap.add_argument("--profile", type=int, default=0)
    ap.add_argument("--cut-all", action="store_true")
    args = ap.parse_args()
    work = args.work
    data = tb.data_in(work, args.buildings)
    lists = tb.tile_lists(data["bounds84"])
    lists["z14-16"] = lists["z14-16"][:args.detail]
    store = GeoPackageStore(Path(data["oup"]))
    qs = queries(store, lists)
    prof = cProfile.Profile() if args.profile else None
    results = {"GeoPackage": measure(store, qs, time.process_time, prof, EncodeClock())}
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(args.profile)
    if args.cut_all:
        from oup.store import overview

        on_grid, overview.on_grid = overview.on_grid, lambda *_: False
        try:
            results["GeoPackage, every block cut"] = measure(store, qs, time.process_time)
        finally:
            overview.on_grid = on_grid
    if args.postgis:
        results["PostGIS"] = measure_postgis(work, Path(data["oup"]), qs)
    report(results)
    fb.OUT.mkdir(exist_ok=True)
    (fb.OUT / "tile_cpu.json").write_text(json.dumps(
        {"args": vars(args) | {"work": str(args.work)}, "load": os.getloadavg(),
         "results": results}, indent=1))


def measure_postgis(work: Path, gpkg: Path, qs) -> dict:
    from oup.store.postgis import PostGISStore

    pg = fb.PostGIS(work).start()
    try:
        t0 = time.perf_counter()
        fb.copy_to_postgis(gpkg, pg.url)
        print(f"PostGIS: buildings written in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        postmaster = int((pg.db.dir / "data" / "postmaster.pid").read_text().split()[0])
        store = PostGISStore(pg.url)
        try:
            return measure(store, qs,
                           lambda: time.process_time() + fb.tree_cpu_seconds(postmaster))
        finally:
            store.close()
    finally:
        pg.stop()


def report(results: dict) -> None:
    print(f"\nCPU ms per tile: mean / p50 (mean encoding); tile bytes p50; "
          f"load average {os.getloadavg()[0]:.1f}")
    for name, r in results.items():
        print(f"  {name}")
        for z, s in r.items():
            enc = f" ({s['encode_mean_ms']:.1f})" if s["encode_mean_ms"] else ""
            print(f"    z{z} ({s['tiles']} tiles): {s['mean_ms']:.1f} / {s['p50_ms']:.1f} ms{enc};"
                  f" {s['p50_bytes']} B")
    if "PostGIS" in results:
        g, p = results["GeoPackage"], results["PostGIS"]
        print("  GeoPackage/PostGIS throughput by CPU (PostGIS CPU / GeoPackage CPU): " + "  ".join(
            f"z{z} x{p[z]['mean_ms'] / g[z]['mean_ms']:.2f}" for z in g if z in p))


if __name__ == "__main__":
    main()
