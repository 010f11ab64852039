"""Where a feature write's time goes: POST, PUT and PATCH through the app, in process,
on both stores, one write at a time (the costs of one write, not of contention).

The benchmark's collection (``writes.py``: steward-editable, history kept, 3D) of N
replicated Delfshaven buildings, imported into a GeoPackage and into a throwaway
PostGIS. For each store and method: K writes through Flask's test client, with

- the statements the store ran per write (in the write's transaction, and outside it),
- the CPU of this process per write, and PostgreSQL's (its processes' CPU, from /proc),
- with ``--profile``, cProfile's top functions by cumulative time.

    .venv/bin/python benchmarks/write_profile.py [--buildings 3000] [--writes 200]
        [--stores gpkg,postgis] [--profile]

Not a throughput figure (``writes.py`` is): no server, no concurrency.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from citygen import make_city  # noqa: E402
from writes import COLL, COLLECTION_YML, post_request, put_request  # noqa: E402


def cpu_of(pids: set[int]) -> float:
    """CPU seconds (user + system) of the processes ``pids`` so far."""
    ticks, total = os.sysconf("SC_CLK_TCK"), 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def postgres_pids(data: Path) -> set[int]:
    """The cluster's processes: its postmaster (``data``/postmaster.pid) and children
    (its backends come and go: read at each measurement)."""
    top = int((data / "postmaster.pid").read_text().split()[0])
    out = {top}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == top:
                    out.add(int(d.name))
            except OSError:
                continue
    return out


class Counting:
    """The store's statements, counted: in write transactions and outside them."""

    def __init__(self, store):
        self.store, self.counts = store, Counter()
        writing, execute = store._writing, store.execute

        @contextmanager
        def counted_writing(cid):
            with writing(cid) as run:
                def counted(sql, params=()):
                    self.counts["in the write's transaction"] += 1
                    self.counts[" ".join(sql.split()[:3])[:40]] += 1
                    return run(sql, params)
                yield counted

        def counted_execute(sql, params=()):
            self.counts["outside it"] += 1
            return execute(sql, params)

        store._writing, store.execute = counted_writing, counted_execute


def oup(env: dict, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "oup.cli", *args], env=env, text=True,
                          capture_output=True, check=True, timeout=1800).stdout


def measure(env: dict, n: int, writes: int, profile: bool, pg_data: Path | None) -> dict:
    os.environ.update(env)
    from oup.settings import get_settings
    get_settings.cache_clear()
    from oup.http.app import create_app

    app = create_app()
    writer = next(e.handler.__self__ for e in app.extensions["oup"].routes.endpoints
                  if e.operation == "createItem")
    counting = Counting(writer.store)
    client = app.test_client()
    key = env["BENCH_KEY"]
    auth = {"Authorization": f"ApiKey {key}"}
    pool = []
    for fid in random.Random(5).sample(range(1, n + 1), 100):
        f = client.get(f"/collections/{COLL}/items/{fid}?f=json").get_json()
        pool.append({"id": f["id"], "geometry": f["geometry"], "properties": f["properties"]})
    rng = random.Random(9)
    makes = {"POST": lambda: post_request(pool, rng),
             "PUT": lambda: put_request(pool, rng, False),
             "PATCH": lambda: ("PATCH", f"/collections/{COLL}/items/{rng.randint(1, n)}",
                               {"Content-Type": "application/merge-patch+json"},
                               json.dumps({"properties": {"status": f"p{rng.random()}"}}))}
    out = {}
    for name, make in makes.items():
        for _ in range(5):  # warm: first-use caches, prepared paths
            method, path, headers, body = make()
            r = client.open(path, method=method, headers={**auth, **headers}, data=body)
            assert r.status_code < 300, r.get_data(as_text=True)[:300]
        counting.counts.clear()
        prof = cProfile.Profile() if profile else None
        pg0 = cpu_of(postgres_pids(pg_data)) if pg_data else 0.0
        c0, t0 = time.process_time(), time.perf_counter()
        if prof:
            prof.enable()
        for _ in range(writes):
            method, path, headers, body = make()
            r = client.open(path, method=method, headers={**auth, **headers}, data=body)
            assert r.status_code < 300, r.get_data(as_text=True)[:300]
        if prof:
            prof.disable()
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        pg = cpu_of(postgres_pids(pg_data)) - pg0 if pg_data else None
        out[name] = {"wall_ms": round(wall / writes * 1000, 2),
                     "app_cpu_ms": round(cpu / writes * 1000, 2),
                     **({"postgres_cpu_ms": round(pg / writes * 1000, 2)} if pg_data else {}),
                     "statements": {k: round(v / writes, 2) for k, v in
                                    counting.counts.most_common()}}
        if prof:
            s = io.StringIO()
            pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(35)
            out[name]["profile"] = s.getvalue()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--buildings", type=int, default=3000)
    ap.add_argument("--writes", type=int, default=200)
    ap.add_argument("--stores", default="gpkg,postgis")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "write-profile")
    args = ap.parse_args()
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    (work / "catalog" / COLL).mkdir(parents=True)
    make_city(work / "catalog" / COLL / "city.city.jsonl", args.buildings)
    (work / "catalog" / COLL / "collection.yml").write_text(COLLECTION_YML)
    results, pg = {}, None
    try:
        for store in args.stores.split(","):
            env = dict(os.environ, OUP_CATALOG_DIR=str(work / "catalog"),
                       OUP_DATA_DIR=str(work / f"data-{store}"),
                       OUP_API_KEYS_FILE=str(work / "api-keys.yml"), OUP_TILE_CACHE="true",
                       OUP_LOG_LEVEL="ERROR")
            env.pop("OUP_DATABASE_URL", None)
            data = None
            if store == "postgis":
                from oup.store.localdb import LocalPostGIS
                pg = LocalPostGIS(work / "pg").start()
                env["OUP_DATABASE_URL"], data = pg.create("bench"), pg.dir / "data"
            oup(env, "import", "--quiet")
            if not (work / "api-keys.yml").exists():
                env["BENCH_KEY"] = oup(env, "keys", "add", "bench", "--role",
                                       "steward").strip().splitlines()[0]
            else:
                env["BENCH_KEY"] = os.environ["BENCH_KEY"]
            os.environ["BENCH_KEY"] = env["BENCH_KEY"]
            results[store] = measure(env, args.buildings, args.writes, args.profile, data)
            for name, r in results[store].items():
                print(f"\n== {store} {name}: {json.dumps({k: v for k, v in r.items() if k != 'profile'})}")
                if "profile" in r:
                    print(r["profile"])
    finally:
        if pg:
            pg.stop()


if __name__ == "__main__":
    main()
