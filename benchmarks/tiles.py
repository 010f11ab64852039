"""Vector tiles throughput: OUP (PostGIS store, GeoPackage store, disk cache warm) vs tipg.

Same data (N buildings replicated from the 853 real Delfshaven ones, written by OUP's
PostGIS store; tipg serves that very table), same machine, same run, same load: 2
server workers, 8 concurrent keep-alive clients (wrk) on loopback, two tile lists in
WebMercatorQuad: random z14-z16 tiles over the city, and the z10-z12 overview tiles;
each workload is run once for 5 s, not counted (warm-up), then measured, each run after
the benchmarks' usual rest.

    .venv/bin/python benchmarks/tiles.py [--buildings 200000] [--seconds 20] [--reuse]
        [--servers postgis,tipg]

Needs `wrk` and `pip install -e '.[bench]'` (tipg). Prints tiles/s, p50, p99 and tile
sizes per zoom, and the ratios the goals name; writes benchmarks/out/tiles.json.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

import morecantile
import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import features as fb  # noqa: E402  (data, servers and wrk, as the features benchmark)
from oup.store.base import FID, GEOM84  # noqa: E402

TMS = morecantile.tms.get("WebMercatorQuad")
WARMUP = 5  # seconds of load before each measured workload
# the features benchmark's wrk script, asking for tiles
fb.LUA = fb.LUA.replace("application/geo+json", "application/vnd.mapbox-vector-tile")


def tile_lists(bounds84, k: int = 500, seed: int = 7) -> dict[str, list[tuple[int, int, int]]]:
    """(z, row, col): ``k`` random z14-z16 tiles over the city, and every z10-z12 tile."""
    x0, y0, x1, y1 = bounds84
    rng = random.Random(seed)
    detail = []
    for _ in range(k):
        t = TMS.tile(rng.uniform(x0, x1), rng.uniform(y0, y1), rng.choice((14, 15, 16)))
        detail.append((t.z, t.y, t.x))
    overview = [(t.z, t.y, t.x) for t in TMS.tiles(x0, y0, x1, y1, [10, 11, 12])]
    return {"z14-16": detail, "z10-12 overview": overview}


def paths(kind: str, tiles) -> list[str]:
    if kind == "oup":
        return [f"/collections/buildings/tiles/WebMercatorQuad/{z}/{r}/{c}" for z, r, c in tiles]
    return [f"/collections/public.buildings/tiles/WebMercatorQuad/{z}/{c}/{r}"
            f"?geom-column={GEOM84}" for z, r, c in tiles]


def sizes(url: str, kind: str, tiles) -> dict:
    """Tile sizes (bytes) per zoom: p50 and max, one request per tile."""
    by_zoom: dict[int, list[int]] = {}
    for (z, _, _), path in zip(tiles, paths(kind, tiles)):
        by_zoom.setdefault(z, []).append(len(requests.get(url + path, timeout=600).content))
    return {z: {"p50": int(statistics.median(v)), "max": max(v), "tiles": len(v)}
            for z, v in sorted(by_zoom.items())}


def run(label: str, start, url: str, kind: str, lists: dict, seconds: int, work: Path,
        warm: bool = False) -> dict:
    proc = None
    try:
        proc = start()
        fb.wait_up(url + "/collections", proc)
        out = {}
        for name, tiles in lists.items():
            if warm or name == "z10-12 overview":  # warm the cache; and know the sizes
                out[f"{name} sizes"] = sizes(url, kind, tiles)
            # the same load for WARMUP seconds first, not counted: a server's first
            # second (its connections opening, PostgreSQL's backends loading PROJ) is not
            # its steady rate, and would land in the p99 of one server more than another
            fb.wrk(url, paths(kind, tiles), WARMUP, work, f"{label}-{name.split()[0]}-warm")
            out[name] = fb.wrk(url, paths(kind, tiles), seconds, work,
                               f"{label}-{name.split()[0]}", proc.pid)
        out["z14-16 sizes"] = out.get("z14-16 sizes") or sizes(url, kind, lists["z14-16"][:150])
        return out
    except Exception as exc:  # a server that cannot run is reported as such
        return {"error": str(exc)}
    finally:
        fb.stop(proc)


def data_in(work: Path, buildings: int) -> dict:
    """The data of an earlier run in ``work`` (its data.json), else made there anew
    (``buildings`` buildings), for the benchmarks that read it in-process."""
    saved = work / "data.json"
    fb.install_grids(work)
    if saved.exists():
        return json.loads(saved.read_text())
    work.mkdir(parents=True, exist_ok=True)
    data = {k: str(v) if k != "bounds84" else v
            for k, v in fb.build_data(work, buildings, []).items()}
    saved.write_text(json.dumps(data))
    return data


def make_overviews(gpkg: Path, url: str) -> dict[int, int]:
    """The buildings' overview in both stores, as `oup import` makes it (``overview``);
    its blocks per level."""
    import shapely

    from oup.store import overview
    from oup.store.gpkg import GeoPackageStore
    from oup.store.postgis import PostGISStore

    src = GeoPackageStore(gpkg)
    geoms = shapely.from_wkb([g for (g,) in src.con.execute(
        f"SELECT {GEOM84} FROM buildings ORDER BY {FID}")])
    overview.write(PostGISStore(url), "buildings", list(geoms))
    return overview.write(src, "buildings", list(geoms))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--buildings", type=int, default=200_000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--work", type=Path, default=fb.OUT / "tiles-work")
    ap.add_argument("--reuse", action="store_true", help="reuse the data in --work")
    ap.add_argument("--servers", default="postgis,tipg,gpkg,cache",
                    help="which to run, of postgis,tipg,gpkg,cache (default: all four)")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("benchmarks/tiles.py needs wrk: apt-get install wrk")
    work, saved = args.work, args.work / "data.json"
    if args.reuse and saved.exists():
        data = json.loads(saved.read_text())
        fb.install_grids(work)
    else:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        fb.install_grids(work)
        data = {k: str(v) if k != "bounds84" else v
                for k, v in fb.build_data(work, args.buildings, []).items()}
        saved.write_text(json.dumps(data))
    lists = tile_lists(data["bounds84"])
    results = {}
    pg = fb.PostGIS(work).start()
    try:
        t0 = time.perf_counter()
        fb.copy_to_postgis(Path(data["oup"]), pg.url)
        print(f"PostGIS: {args.buildings} buildings written in {time.perf_counter() - t0:.0f} s")
        t0 = time.perf_counter()
        blocks = make_overviews(Path(data["oup"]), pg.url)
        print(f"overviews (blocks per zoom: {blocks}) made in each store in "
              f"{time.perf_counter() - t0:.0f} s")
        servers = {
            "postgis": ("OUP, PostGIS store", "oup",
                        lambda port: fb.start_oup(work, pg.url, port), False),
            "tipg": ("tipg 1.6 on the same table", "tipg",
                     lambda port: fb.start_tipg(work, pg.url, port), False),
            "gpkg": ("OUP, GeoPackage store", "oup",
                     lambda port: fb.start_oup(work, Path(data["oup"]), port), False),
            "cache": ("OUP, PostGIS store, disk cache warm", "oup",
                      lambda port: fb.start_oup(work, pg.url, port), True),
        }
        servers = [servers[k] for k in args.servers.split(",")]
        os.environ["TIPG_MAX_FEATURES_PER_TILE"] = "1000000"  # every feature, as OUP's
        for label, kind, start, warm in servers:
            os.environ["OUP_TILE_CACHE"] = "true" if warm else "false"
            shutil.rmtree(work / "tile-cache", ignore_errors=True)
            port = fb.free_port()
            results[label] = run(label.split(",")[0].split()[0].lower() + str(len(results)),
                                 lambda: start(port), f"http://127.0.0.1:{port}", kind, lists,
                                 args.seconds, work, warm)
            print(label, json.dumps(results[label])[:400], flush=True)
    finally:
        pg.stop()
    report(results, args, lists)


def report(results: dict, args, lists: dict) -> None:
    print(f"\n{args.buildings} buildings, 2 workers, 8 clients, {args.seconds} s per workload "
          f"({len(lists['z14-16'])} random z14-16 tiles; {len(lists['z10-12 overview'])} "
          "z10-12 overview tiles)\n")
    print(f"{'server':<38} " + "  ".join(f"{w + ' t/s':>14} {'p50':>8} {'p99':>9}"
                                         for w in ("z14-16", "z10-12")))
    for name, r in results.items():
        cells = [f"{r[w]['req_s']:>14.1f} {r[w]['p50_ms'] or 0:>6.1f}ms {r[w]['p99_ms'] or 0:>7.1f}ms"
                 + (f" (non-2xx {r[w]['non_2xx']})" if r[w]["non_2xx"] else "")
                 for w in ("z14-16", "z10-12 overview")] if "error" not in r else [
                     f"could not run: {r['error']}"]
        print(f"{name:<38} " + "  ".join(cells))
    print("\ntile sizes, bytes (p50 / max per zoom):")
    for name, r in results.items():
        if "error" not in r:
            merged = {**r.get("z10-12 overview sizes", {}), **r.get("z14-16 sizes", {})}
            print(f"  {name:<38} " + "  ".join(f"z{z}: {s['p50']}/{s['max']}"
                                               for z, s in sorted(merged.items())))
    base, peer = results.get("OUP, PostGIS store", {}), results.get("tipg 1.6 on the same table", {})

    def ratio(a: dict, b: dict, workload: str, key: str = "req_s") -> str:
        return f"x{a[workload][key] / b[workload][key]:.2f}" if b[workload][key] else "n/a"

    if "z14-16" in base and "z14-16" in peer:
        print(f"\nOUP on PostGIS / tipg (goal: tiles/s >= x1, p99 < x1): z14-16 "
              f"{ratio(base, peer, 'z14-16')} (p99 {ratio(base, peer, 'z14-16', 'p99_ms')}), "
              f"z10-12 {ratio(base, peer, 'z10-12 overview')}")
    for name, goal in (("OUP, GeoPackage store", "x0.7"),
                       ("OUP, PostGIS store, disk cache warm", "x10")):
        if "z14-16" in base and "z14-16" in results.get(name, {}):
            r = results[name]
            print(f"{name} / OUP on PostGIS (goal >= {goal}): z14-16 "
                  f"{ratio(r, base, 'z14-16')}, z10-12 {ratio(r, base, 'z10-12 overview')}")
    fb.OUT.mkdir(exist_ok=True)
    (fb.OUT / "tiles.json").write_text(json.dumps({"args": vars(args) | {"work": str(args.work)},
                                                   "results": results}, indent=1, default=str))


if __name__ == "__main__":
    main()
