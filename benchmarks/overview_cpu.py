"""CPU per low-zoom vector tile on PostGIS, in-process: where a z10-z12 tile's time goes.

The data and tiles of benchmarks/tiles.py (N buildings, its z10-z12 overview tiles and
the first 60 of its z14-z16 tiles), in a throwaway PostGIS cluster with the overview
made as `oup import` makes it (each level's blocks on its zoom's grid). Each tile's
statement as OUP sends it is run in two ways, interleaved pass by pass so that a busy
machine weighs on each alike: every block clipped and repaired by ST_AsMVTGeom (as
before), and the blocks inside the tile's buffer only moved into its units (what OUP does
now; z14-z16 read the buildings, the same statement both ways). CPU is this process's
plus the cluster's (from /proc), not wall clock. Then the parts of the first way's
statement, by leaving one out at a time: the MVT encoding (ST_AsMVT), the clipping and
repair (ST_AsMVTGeom), the simplification.

    .venv/bin/python benchmarks/overview_cpu.py [--work benchmarks/out/tiles-work]
        [--buildings 200000] [--passes 3]

Prints CPU ms per tile by zoom for each way and for each part; writes
benchmarks/out/overview_cpu.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import features as fb  # noqa: E402  (data builder, PostGIS cluster, /proc CPU)
import tiles as tb  # noqa: E402  (the tile lists, the overviews)
from oup.store.mvt import TileQuery, tile_layer  # noqa: E402
from oup.store.placeholders import pg_sql  # noqa: E402
from oup.tiles import matrix_sets as grids  # noqa: E402

# whether the blocks on the tile's grid are only moved (``TileQuery.grid``)
WAYS = {"before: every block cut (ST_AsMVTGeom)": False,
        "now: blocks on the grid moved": True}
_CUT = re.compile(r"ST_AsMVTGeom\(ST_Simplify\((\w+), \?, true\),\s*ST_MakeEnvelope\(\?, \?, \?, "
                  r"\?, (\d+)\), (\d+), (\d+),\s*true\)")
_ENCODE = re.compile(r"SELECT ST_AsMVT\(mvt, \?, \d+, '[^']+', '[^']+'\) FROM \(")
# each statement with one part left out (the parameters stay, so the plans compare)
PARTS = {
    "whole": lambda s: s,
    "without encoding": lambda s: _ENCODE.sub(
        "SELECT count(*) FILTER (WHERE ?::text IS NOT NULL AND mvt._oup_g IS NOT NULL) FROM (",
        s, count=1),
    "without clipping": lambda s: _CUT.sub(
        lambda m: f"(SELECT ST_Simplify({m[1]}, ?, true) WHERE ST_MakeEnvelope(?, ?, ?, ?, "
                  f"{m[2]}) IS NOT NULL)", PARTS["without encoding"](s)),
    "without clipping, simplifying": lambda s: _CUT.sub(
        lambda m: f"(SELECT {m[1]} WHERE ?::float8 IS NOT NULL AND ST_MakeEnvelope(?, ?, ?, ?, "
                  f"{m[2]}) IS NOT NULL)", PARTS["without encoding"](s)),
}


def statements(store, lists: dict, grid: bool) -> list[tuple[int, list]]:
    """(zoom, [(sql, params)]) of each tile, as the store sends them (``grid``: with the
    blocks on the tile's grid only moved, else every block cut)."""
    from oup.store import overview

    out = []
    fields = tuple(n for n, _ in store.layer("buildings")["fields"])
    for z, row, col in lists["z10-12 overview"] + lists["z14-16"][:60]:
        t = grids.Tile("WebMercatorQuad", z, row, col)
        q = TileQuery("buildings", () if z <= 12 else fields, t.bounds, t.srid, t.crs,
                      t.crs84_envelope)
        sent, execute, on_grid = [], store.execute, overview.on_grid
        store.execute = lambda sql, params=(): sent.append((sql, list(params))) or \
            execute(sql, params)
        overview.on_grid = lambda *args: grid and on_grid(*args)
        try:
            tile_layer(store, q)
        finally:
            store.execute, overview.on_grid = execute, on_grid
        out.append((z, [(s, p) for s, p in sent if "ST_AsMVT" in s]))
    return out


def measure(con, cpu, ways: dict, passes: int) -> dict:
    """CPU ms per tile by zoom for each way ({way: (rewrite, tiles)}): {way: {zoom: [ms]}}."""
    got: dict = {w: {} for w in ways}
    deadline = time.monotonic() + 1800  # a bound, whatever the machine's load
    con.execute("SET jit = off")  # as OUP's connections
    for _ in range(passes):
        for way, (rewrite, tiles) in ways.items():
            for z, stmts in tiles:
                c0 = cpu()
                for sql, params in stmts:
                    con.execute(pg_sql(rewrite(sql)), params).fetchall()
                got[way].setdefault(z, []).append((cpu() - c0) * 1000)
            if time.monotonic() > deadline:
                return got
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=fb.OUT / "tiles-work")
    ap.add_argument("--buildings", type=int, default=200_000, help="if the data is missing")
    ap.add_argument("--passes", type=int, default=3)
    args = ap.parse_args()
    from oup.store.postgis import PostGISStore

    work = args.work
    data = tb.data_in(work, args.buildings)
    pg = fb.PostGIS(work).start()
    try:
        fb.copy_to_postgis(Path(data["oup"]), pg.url)
        blocks = tb.make_overviews(Path(data["oup"]), pg.url)
        postmaster = int((pg.db.dir / "data" / "postmaster.pid").read_text().split()[0])
        store = PostGISStore(pg.url)
        lists = tb.tile_lists(data["bounds84"])
        tiles = {w: statements(store, lists, grid) for w, grid in WAYS.items()}
        cpu = lambda: time.process_time() + fb.tree_cpu_seconds(postmaster)  # noqa: E731
        low = [(z, s) for z, s in next(iter(tiles.values())) if z <= 12]
        with store.pool.connection() as con:
            ways = measure(con, cpu, {w: (lambda s: s, t) for w, t in tiles.items()},
                           args.passes)
            parts = measure(con, cpu, {p: (f, low) for p, f in PARTS.items()}, args.passes)
        store.close()
    finally:
        pg.stop()
    report(ways, parts, blocks)
    fb.OUT.mkdir(exist_ok=True)
    (fb.OUT / "overview_cpu.json").write_text(json.dumps(
        {"args": vars(args) | {"work": str(args.work)}, "load": os.getloadavg(),
         "blocks": blocks, "ways": ways, "parts": parts}, indent=1))


def report(ways: dict, parts: dict, blocks: dict) -> None:
    print(f"\noverview blocks per level: {blocks}; load average {os.getloadavg()[0]:.1f}")
    print("CPU ms per tile (mean), this process + PostgreSQL's:")
    before = next(iter(ways.values()))
    for name, got in [*ways.items(), *parts.items()]:
        print(f"  {name:<34} " + "  ".join(
            f"z{z} {statistics.fmean(v):6.1f}" + (f" (x{statistics.fmean(v) / statistics.fmean(before[z]):.2f})"
                                                 if name in ways else "")
            for z, v in sorted(got.items())))


if __name__ == "__main__":
    main()
