"""The sun-and-shadow computation on a dense square kilometre: one midsummer day (the
longest, so the most sunlit time steps) at 15-minute steps, ~5,000 buildings, a 10 m grid.

    .venv/bin/python benchmarks/sun_shadow.py [--buildings 5000] [--seed 1] [--threads N]

The made-up district, seeded: blocks of 88 m between 12 m streets, filled with rows of
rectangles 6-20 m wide and 8-14 m deep, 6-40 m high (uniform, so more tall ones than a
real district), thinned at random to the count asked. Prints wall-clock and CPU seconds of
runs: sun hours only; sun hours and the shadow polygons of every step; both for the
city and a scenario (20 towers added, 20 buildings removed). Then the same day over the
real Delfshaven district (853 LoD2 buildings as prisms, many footprints not convex).
``--threads``: how many steps' shadows are united at once (``OUP_JOB_THREADS``).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from datetime import datetime, timedelta, timezone

import numpy as np
import shapely

from oup.processes.sun_shadow import Building, site_of, sun_and_shadow

AREA = shapely.box(92000, 437000, 93000, 438000)  # 1 km2 of Rotterdam, RD New
DELFSHAVEN = Path(__file__).resolve().parent.parent / "collections" / "buildings" / \
    "rotterdam-delfshaven.city.json"
DAY = datetime(2026, 6, 21, tzinfo=timezone.utc)


def district(count: int, seed: int) -> list[Building]:
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = AREA.bounds
    lots = []
    for bx in np.arange(x0, x1, 100.0):
        for by in np.arange(y0, y1, 100.0):
            y = by
            while y < by + 88 - 8:  # rows of buildings, back to back
                depth = min(rng.uniform(8, 14), by + 88 - y)
                x = bx
                while x < bx + 88 - 6:
                    width = min(rng.uniform(6, 20), bx + 88 - x)
                    lots.append((x, y, x + width, y + depth))
                    x += width
                y += depth
    if len(lots) < count:
        raise SystemExit(f"the blocks hold {len(lots)} buildings, fewer than {count}")
    chosen = np.array(lots)[np.sort(rng.choice(len(lots), count, replace=False))]
    heights = rng.uniform(6, 40, count)
    return [Building(str(i), shapely.box(*b), float(h))
            for i, (b, h) in enumerate(zip(chosen, heights))]


def delfshaven() -> list[Building]:
    """The real district's footprints, heights and ground levels, as ``oup import`` reads
    them (Rotterdam 3D puts every building on z = 0; its ground is TerrainHeight)."""
    from oup.catalog import Source
    from oup.catalog.importers import ImportReport
    from oup.catalog.readers import read_city_model

    _, records = read_city_model(DELFSHAVEN, Source(path=DELFSHAVEN.name),
                                 ImportReport("delfshaven"))
    return [Building(p["cityobject_id"], f, p["height"], p.get("TerrainHeight") or 0.0)
            for f, p in records]


def run(label: str, buildings, area=AREA, **kw) -> None:
    site = site_of(area)
    w0, c0 = time.perf_counter(), time.process_time()
    r = sun_and_shadow(buildings, area, DAY, DAY + timedelta(days=1), timedelta(minutes=15),
                       latitude=site.latitude, longitude=site.longitude,
                       grid_convergence=site.grid_convergence, grid_spacing=10.0, **kw)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    sunny = sum(s.direct_sun for s in r.steps)
    print(f"{label:<38} {wall:6.2f} s wall  {cpu:6.2f} s CPU  (load {os.getloadavg()[0]:4.1f})  "
          f"{len(r.points):,} points, "
          f"{sunny}/{len(r.steps)} steps with direct sun, mean {r.sun_hours.mean():.2f} h sun")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--buildings", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    buildings = district(args.buildings, args.seed)
    cover = shapely.union_all([b.footprint for b in buildings]).area / AREA.area
    print(f"{len(buildings):,} buildings on 1 km2 ({cover:.0%} built), {DAY:%Y-%m-%d}, "
          f"15 min steps, 10 m grid, {args.threads} threads, load {os.getloadavg()[0]:.1f}")
    rng = np.random.default_rng(args.seed + 1)
    corners = rng.uniform(0, 980, (20, 2)) + AREA.bounds[:2]
    towers = [Building(f"tower-{i}", shapely.box(x, y, x + 20, y + 20), 90.0)
              for i, (x, y) in enumerate(corners)]
    removed = [Building(b.id, b.footprint, 0.0) for b in buildings[::250]]
    sun_and_shadow(buildings[:10], AREA, DAY, DAY + timedelta(hours=1), timedelta(hours=1),
                   latitude=52, longitude=4.5)  # warm-up: imports, pvlib's first call
    run("sun hours", buildings, shadows=False)
    run("sun hours + shadow polygons", buildings, threads=args.threads)
    run("city and scenario, sun hours", buildings, scenario=towers + removed, shadows=False)
    run("city and scenario, + shadow polygons", buildings, scenario=towers + removed,
        threads=args.threads)

    real = delfshaven()
    bounds = shapely.total_bounds([b.footprint for b in real])
    area = shapely.box(*bounds)
    concave = sum(b.footprint.convex_hull.area > b.footprint.area * 1.001 for b in real)
    print(f"Delfshaven: {len(real)} buildings ({concave} not convex) on "
          f"{area.area / 1e6:.2f} km2")
    run("Delfshaven, sun hours", real, area=area, shadows=False)
    run("Delfshaven, + shadow polygons", real, area=area, threads=args.threads)


if __name__ == "__main__":
    main()
