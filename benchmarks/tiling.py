"""End-to-end LoD2 tiling throughput: CityJSONSeq of N buildings -> 3D Tiles 1.1.

The N buildings are the 853 real Delfshaven ones, replicated and shifted on a grid.
Prints buildings/s, peak memory, tileset size and vertices per tile.

    .venv/bin/python benchmarks/tiling.py [--buildings 50000]

py3dtiles 12 has no CityJSON (mesh) input to compare with: its `convert` takes point
clouds, so the peer figure is the issue's pg2b3dm reference (~1,400 buildings/s).
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
SOURCE = HERE.parent / "collections" / "buildings" / "rotterdam-delfshaven.city.json"


def make_seq(path: Path, n: int) -> None:
    doc = json.loads(SOURCE.read_text())
    tr = doc["transform"]
    header = {k: v for k, v in doc.items() if k not in ("CityObjects", "vertices")}
    header.update(CityObjects={}, vertices=[])
    objs = list(doc["CityObjects"].items())
    w = int(1100 / tr["scale"][0])  # block offset, in quantised units (1.1 km)
    per_row = int((n / len(objs)) ** 0.5) + 1
    with path.open("w") as fh:
        fh.write(json.dumps(header) + "\n")
        for i in range(n):
            block, k = divmod(i, len(objs))
            oid, obj = objs[k]
            dx, dy = (block % per_row) * w, (block // per_row) * w
            used = sorted({v for g in obj["geometry"] for sh in g["boundaries"] for s in sh
                           for r in s for v in r})
            remap = {old: new for new, old in enumerate(used)}
            geoms = [dict(g, boundaries=[[[[remap[v] for v in r] for r in s] for s in sh]
                                         for sh in g["boundaries"]]) for g in obj["geometry"]]
            verts = [[doc["vertices"][v][0] + dx, doc["vertices"][v][1] + dy,
                      doc["vertices"][v][2]] for v in used]
            fid = f"{oid}-{block}"
            fh.write(json.dumps({"type": "CityJSONFeature", "id": fid,
                                 "CityObjects": {fid: dict(obj, geometry=geoms)},
                                 "vertices": verts}) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--buildings", type=int, default=50_000)
    ap.add_argument("--work", type=Path, default=HERE / "out" / "tiling-work")
    args = ap.parse_args()
    from oup.geodesy import install_grids
    from tilers import tile

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    install_grids(args.work)
    seq = args.work / "city.city.jsonl"
    make_seq(seq, args.buildings)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    report = tile([seq], args.work / "tileset", progress=True)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # largest worker
    st = next(iter(report.tilesets.values()))
    v = st["vertices_per_tile"]
    print(f"\n{report.objects} buildings tiled in {seconds:.1f} s: "
          f"{report.objects / seconds:,.0f} buildings/s (goal 2,000; pg2b3dm ~1,400)")
    print(f"peak RSS {peak / 1024:,.0f} MB (before tiling {before / 1024:,.0f} MB), "
          f"largest worker {child / 1024:,.0f} MB; "
          f"tileset {st['bytes'] / 1e6:.1f} MB in {st['tiles']} tiles, "
          f"{min(v):,}-{max(v):,} vertices per tile (mean {sum(v) / len(v):,.0f})")
    (HERE / "out" / "tiling.json").write_text(json.dumps({
        "buildings": report.objects, "seconds": seconds, "peak_rss_mb": peak / 1024,
        "worker_peak_rss_mb": child / 1024,
        "bytes": st["bytes"], "tiles": st["tiles"]}))


if __name__ == "__main__":
    main()
