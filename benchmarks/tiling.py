"""City-scale tiling: a CityJSONSeq of N buildings -> a 3D Tiles 1.1 tileset with levels
of detail and Draco-compressed glb, and the same leaves compressed by the reference.

The N buildings are the 853 real Delfshaven ones, replicated and shifted on a grid
(``citygen.make_city``). Prints buildings/s, peak memory, bytes per building, tiles and
bytes per level, and OUP's leaf bytes against glTF Transform (npm, the reference glTF
compressor, `tests/js/reference.mjs`) re-compressing those very leaves in the same run
with its defaults for Draco and for meshopt.

    .venv/bin/python benchmarks/tiling.py [--buildings 50000]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
JS = HERE.parent / "tests" / "js"

from citygen import make_city  # noqa: E402


def reference(tileset: Path) -> dict:
    """glTF Transform's bytes for the leaves of ``tileset`` (tiles without children)."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from tileset_reader import content_tiles

    leaves = [str(tileset / t["content"]["uri"]) for t, _, _ in content_tiles(tileset)
              if not t.get("children")]
    out = {"ours": sum(os.path.getsize(p) for p in leaves)}
    for i in range(0, len(leaves), 50):  # a few node processes, not one per file
        res = subprocess.run(["node", "reference.mjs", *leaves[i:i + 50]], cwd=JS, text=True,
                             capture_output=True, check=True, timeout=1800)
        for k, v in json.loads(res.stdout.strip().splitlines()[-1]).items():
            out[k] = out.get(k, 0) + v
    return out


def _cpu() -> float:
    """CPU time of this process and its finished worker processes."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--buildings", type=int, default=50_000)
    ap.add_argument("--work", type=Path, default=HERE / "out" / "tiling-work")
    ap.add_argument("--no-reference", action="store_true", help="skip glTF Transform")
    args = ap.parse_args()
    from oup.geodesy import install_grids
    from tilers import tile

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    install_grids(args.work)
    seq = make_city(args.work / "city.city.jsonl", args.buildings)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu0 = _cpu()
    t0 = time.perf_counter()
    report = tile([seq], args.work / "tileset", progress=True)
    seconds = time.perf_counter() - t0
    cpu = _cpu() - cpu0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # largest worker
    st = next(iter(report.tilesets.values()))
    n = report.objects
    print(f"\n{n} buildings tiled in {seconds:.1f} s: {n / seconds:,.0f} buildings/s "
          f"(goal 2,000) on {os.cpu_count()} cores; {cpu:.1f} CPU-seconds, "
          f"{n / cpu:,.0f} buildings per CPU-second (what the cores gave, whatever else ran)")
    print(f"peak RSS {peak / 1024:,.0f} MB (before tiling {before / 1024:,.0f} MB), "
          f"largest worker {child / 1024:,.0f} MB")
    print(f"tileset {st['bytes'] / 1e6:.1f} MB in {st['tiles']} tiles = "
          f"{st['bytes'] / n:,.0f} bytes per building (leaves {st['leaf_bytes'] / n:,.0f})")
    for level, lv in sorted(st["levels"].items()):
        print(f"  level {level}: {lv['tiles']} tiles, {lv['bytes'] / 1e6:.2f} MB")
    result = {"buildings": n, "seconds": seconds, "buildings_per_s": n / seconds,
              "cpu_seconds": cpu,
              "peak_rss_mb": peak / 1024, "worker_peak_rss_mb": child / 1024,
              "bytes": st["bytes"], "leaf_bytes": st["leaf_bytes"], "tiles": st["tiles"],
              "levels": st["levels"]}
    if not args.no_reference:
        ref = reference(args.work / "tileset")
        print(f"leaves: OUP {ref['ours'] / 1e6:.2f} MB; glTF Transform draco "
              f"{ref['draco'] / 1e6:.2f} MB (OUP = {ref['ours'] / ref['draco']:.2f} x), meshopt "
              f"{ref['meshopt'] / 1e6:.2f} MB (OUP = {ref['ours'] / ref['meshopt']:.2f} x); "
              f"{ref['files']} files")
        print(f"decoding the leaves (draco3d / meshoptimizer WASM, as in CesiumJS): OUP's Draco "
              f"{ref['decodeDracoMs']:,.0f} ms, glTF Transform's Draco "
              f"{ref['decodeReferenceDracoMs']:,.0f} ms, meshopt {ref['decodeMeshoptMs']:,.0f} ms")
        result["reference"] = ref
    (HERE / "out" / "tiling.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
