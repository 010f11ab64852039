"""OGC API Features throughput: OUP on its GeoPackage store vs stock pygeoapi providers.

Same data (N buildings replicated from the 853 real Delfshaven ones), same machine,
same run, same load: 2 server workers, 8 concurrent keep-alive clients (wrk) on
loopback, `items?bbox=<~200 m square>&limit=100` and `items/{id}`.

    .venv/bin/python benchmarks/features.py [--buildings 200000] [--seconds 20]
        [--peers geojson,sqlite]

Needs `wrk` (apt-get install wrk); the SQLiteGPKG peer needs libsqlite3-mod-spatialite
and the pysqlite3-binary package. Peers that cannot run are reported, not hidden.
Prints a table and ratios; writes benchmarks/out/features.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import shapely

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from oup.geodesy import install_grids, transformer  # noqa: E402
from oup.ports import free_port  # noqa: E402
from oup.store import Feature, Field, Query  # noqa: E402
from oup.store.base import FID, GEOM, GEOM84  # noqa: E402
from oup.store.gpkg import GeoPackageStore  # noqa: E402

OUT = HERE / "out"
LUA = """
local paths = {}
for line in io.lines("%s") do paths[#paths + 1] = line end
math.randomseed(%d)
request = function()
  return wrk.format("GET", paths[math.random(#paths)], {["Accept"] = "application/geo+json"})
end
"""


# -- data ------------------------------------------------------------------------------

def source_buildings(work: Path):
    """The 853 real footprints (RD New) and attributes, via OUP's own import."""
    from oup.catalog import load_collection
    from oup.catalog.importers import import_collection

    store = GeoPackageStore(work / "source.gpkg")
    import_collection(load_collection(ROOT / "collections" / "buildings" / "collection.yml"),
                      store, progress=False)
    page = store.query("buildings", Query(limit=10_000, crs="EPSG:28992"))
    geoms = [shapely.geometry.shape(f["geometry"]) for f in page.features]
    props = [f["properties"] for f in page.features]
    for p in props:  # back to a datetime, as an importer hands it over
        p["survey_date"] = datetime.fromisoformat(p["survey_date"].replace("Z", "+00:00"))
    return geoms, props, [Field(f.name, f.type) for f in store.fields("buildings")]


def replicate(geoms, props, n: int):
    """n footprints: copies of the real ones on a grid of shifted blocks (RD New)."""
    minx, miny, maxx, maxy = shapely.total_bounds(np.array(geoms, dtype=object))
    w, h = maxx - minx + 50, maxy - miny + 50
    per_row = int(np.ceil(np.sqrt(n / len(geoms))))
    for i in range(n):
        block, k = divmod(i, len(geoms))
        dx, dy = (block % per_row) * w, (block // per_row) * h
        yield shapely.affinity.translate(geoms[k], dx, dy), dict(props[k], copy=block)


def build_data(work: Path, n: int, peers: list[str]) -> dict:
    from tqdm import tqdm

    geoms, props, fields = source_buildings(work)
    to84 = transformer("EPSG:28992", "OGC:CRS84")
    rows = list(tqdm(replicate(geoms, props, n), total=n, desc="replicating", unit=" bldg"))
    g = np.array([r[0] for r in rows], dtype=object)
    g84 = shapely.transform(g, lambda c: np.column_stack(to84.transform(c[:, 0], c[:, 1])))
    fields = fields + [Field("copy", "integer")]
    store_path = work / "oup.gpkg"
    store = GeoPackageStore(store_path)
    store.write_collection("buildings", "EPSG:28992", fields,
                           (Feature(a, b, p) for (a, p), b in zip(rows, g84)),
                           "survey_date", geometry_type="MULTIPOLYGON")
    out = {"oup": store_path, "bounds84": shapely.total_bounds(g84).tolist()}
    if peers:
        import geopandas as gpd

        df = gpd.GeoDataFrame([p for _, p in rows], geometry=list(g84), crs="OGC:CRS84")
        df["fid_"] = np.arange(1, n + 1)
        if "sqlite" in peers:
            df.to_file(work / "peer.gpkg", layer="buildings", driver="GPKG")
            out["sqlite"] = work / "peer.gpkg"
        if "geojson" in peers:
            df.to_file(work / "peer.geojson", driver="GeoJSON")
            out["geojson"] = work / "peer.geojson"
    return out


# -- PostGIS (for the PostgreSQL provider and tipg peers) --------------------------------

class PostGIS:
    """A throwaway PostgreSQL + PostGIS cluster in the work folder (oup.store.localdb), durable
    settings as in production, with a database "bench"."""

    def __init__(self, work: Path):
        from oup.store.localdb import LocalPostGIS

        self.db = LocalPostGIS(work / "pg", free_port())

    def start(self):
        self.db.start()
        self.url = self.db.create("bench")
        return self

    def load(self, gpkg: Path):
        subprocess.run(["ogr2ogr", "-f", "PostgreSQL", f"PG:{self.url}",
                        str(gpkg), "buildings", "-nln", "buildings", "-lco", "GEOMETRY_NAME=geom",
                        "-lco", "FID=fid", "-lco", "SPATIAL_INDEX=GIST", "-t_srs", "EPSG:4326",
                        "-nlt", "MULTIPOLYGON"], check=True, capture_output=True)
        subprocess.run(["psql", self.url, "-qc", "VACUUM ANALYZE buildings"], check=True,
                       capture_output=True)

    def stop(self):
        self.db.stop()


# -- servers ----------------------------------------------------------------------------

def wait_up(url: str, proc, seconds: float = 300) -> None:
    import requests

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=5).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer in {seconds} s")


def copy_to_postgis(gpkg: Path, url: str) -> None:
    """OUP's buildings, as imported into the GeoPackage, written by OUP's PostGIS store."""
    from oup.store.geometry import gpb_wkb
    from oup.store.postgis import PostGISStore

    src = GeoPackageStore(gpkg)
    meta = src.layer("buildings")
    fields = [Field(n, t) for n, t in meta["fields"]]
    cols = ", ".join(f'"{f.name}"' for f in fields)
    rows = src.con.execute(f"SELECT {GEOM}, {GEOM84}, {cols} FROM buildings ORDER BY {FID}")
    times = {f.name for f in fields if f.type == "date-time"}

    def props(values):
        return {name: datetime.fromisoformat(v.replace("Z", "+00:00"))
                if name in times and v else v for name, v in zip([f.name for f in fields], values)}

    feats = (Feature(shapely.from_wkb(gpb_wkb(g)), shapely.from_wkb(g84), props(rest))
             for g, g84, *rest in rows)
    PostGISStore(url).write_collection("buildings", "EPSG:28992", fields, feats, meta["time_field"],
                                       geometry_type="MULTIPOLYGON")


def start_oup(work: Path, store: Path | str, port: int):
    cat = work / "catalog" / "buildings"
    cat.mkdir(parents=True, exist_ok=True)
    (cat / "placeholder.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    (cat / "collection.yml").write_text(
        "title: Buildings (benchmark)\ndescription: replicated Delfshaven buildings\n"
        "license: {name: Open data Rotterdam}\nowner: {name: bench}\n"
        "sources: [{path: placeholder.geojson}]\ntime_field: survey_date\n")
    env = dict(os.environ, OUP_CATALOG_DIR=str(work / "catalog"), OUP_DATA_DIR=str(work),
               OUP_DATABASE_URL=store if str(store).startswith("postgresql")
               else f"gpkg://{store}", OUP_LOG_LEVEL="ERROR")
    return subprocess.Popen([sys.executable, "-m", "oup.cli", "serve", "--port", str(port),
                             "--workers", "2"], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(work / "oup-server.log", "w"))


def start_pygeoapi(work: Path, provider: str, data: Path, port: int, bounds,
                   geom_field: str = "geom"):
    import yaml

    cfg = yaml.safe_load((ROOT / "config" / "pygeoapi.yml").read_text())
    cfg["server"]["url"] = f"http://127.0.0.1:{port}"
    cfg["logging"]["level"] = "ERROR"
    pdef = {"type": "feature", "name": provider, "data": str(data), "id_field": "fid_"}
    if provider == "SQLiteGPKG":
        pdef.update(table="buildings", id_field="fid")
    if provider == "PostgreSQL":
        host_port = data.split("@", 1)[1].split("/", 1)[0]
        pdef.update(data={"host": host_port.split(":")[0], "port": int(host_port.split(":")[1]),
                          "dbname": "bench", "user": "postgres", "password": "",
                          "search_path": ["public"]},
                    table="buildings", id_field="fid", geom_field=geom_field)
    cfg["resources"] = {"buildings": {
        "type": "collection", "title": "Buildings", "description": "benchmark",
        "keywords": ["b"], "links": [],
        "extents": {"spatial": {"bbox": bounds, "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
        "providers": [pdef]}}
    cfg_path = work / f"pygeoapi-{provider}.yml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    oas = work / f"openapi-{provider}.json"
    env = dict(os.environ, PYGEOAPI_CONFIG=str(cfg_path), PYGEOAPI_OPENAPI=str(oas))
    subprocess.run([sys.executable, str(HERE / "stock_pygeoapi.py"), "openapi", str(cfg_path),
                    str(oas)], env=env, check=True, capture_output=True)
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--worker-class", "gthread", "--threads", "4", "--timeout", "600",
         "--chdir", str(HERE), "stock_pygeoapi:APP"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(work / f"{provider}.log", "w"))


def start_tipg(work: Path, url: str, port: int):
    env = dict(os.environ, DATABASE_URL=url, TIPG_NAME="tipg", TIPG_MAX_FEATURES_PER_QUERY="10000")
    return subprocess.Popen([sys.executable, "-m", "uvicorn", "tipg.main:app", "--host",
                             "127.0.0.1", "--port", str(port), "--workers", "2",
                             "--log-level", "error"], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(work / "tipg.log", "w"))


# -- load -------------------------------------------------------------------------------

def bbox_paths(bounds84, k: int = 500, seed: int = 1, coll: str = "buildings",
               extra: str = "") -> list[str]:
    rng = random.Random(seed)
    minx, miny, maxx, maxy = bounds84
    dx, dy = 200 / 68_700, 200 / 111_250  # ~200 m at 51.9 N
    out = []
    for _ in range(k):
        x, y = rng.uniform(minx, maxx - dx), rng.uniform(miny, maxy - dy)
        out.append(f"/collections/{coll}/items?bbox={x:.6f},{y:.6f},{x + dx:.6f},"
                   f"{y + dy:.6f}&limit=100{extra}")
    return out


def id_paths(n: int, k: int = 2000, seed: int = 2, coll: str = "buildings") -> list[str]:
    rng = random.Random(seed)
    return [f"/collections/{coll}/items/{rng.randint(1, n)}" for _ in range(k)]


COOLDOWN = 15  # seconds of rest before each workload: this kind of machine throttles
               # sustained load, and back-to-back runs measured up to 2x slower


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process ``pid`` and all its descendants so far: the
    server's application CPU (its database, if any, is not counted)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(d.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    tree, total = {pid}, 0
    for _ in range(8):  # descendants, level by level (a server is a few levels deep)
        tree |= {p for p, (ppid, _) in stats.items() if ppid in tree}
    for p in tree:
        total += stats.get(p, (0, 0))[1]
    return total / ticks


def wrk(url: str, paths: list[str], seconds: int, work: Path, name: str,
        server_pid: int | None = None) -> dict:
    time.sleep(COOLDOWN)
    plist = work / f"{name}.paths"
    plist.write_text("\n".join(paths) + "\n")
    script = work / f"{name}.lua"
    script.write_text(LUA % (plist, 42))
    cpu0 = tree_cpu_seconds(server_pid) if server_pid else None
    res = subprocess.run(["wrk", "-t", "2", "-c", "8", "-d", f"{seconds}s", "--timeout", "60s",
                          "--latency", "-s", str(script), url], capture_output=True, text=True,
                         timeout=seconds + 120)
    cpu = tree_cpu_seconds(server_pid) - cpu0 if server_pid else None
    text = res.stdout
    done = re.search(r"(\d+) requests in", text)
    requests_done = int(done.group(1)) if done else 0

    def ms(label):
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", text, re.M)
        if not m:
            return None
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    timeouts = re.search(r"timeout (\d+)", text)
    return {"req_s": float(rps.group(1)) if rps else 0.0, "p50_ms": ms("50"),
            "p99_ms": ms("99"), "non_2xx": int(errors.group(1)) if errors else 0,
            "timeouts": int(timeouts.group(1)) if timeouts else 0,
            "cpu_ms": cpu * 1000 / requests_done if cpu is not None and requests_done else None}


def run_server(label, start, url, n, bounds, seconds, work, coll="buildings",
               extra: str = "") -> dict:
    proc = None
    try:
        proc = start()
        wait_up(url + f"/collections/{coll}", proc)
        # one warm-up request each way, so first-request costs are not measured
        import requests

        try:
            requests.get(url + bbox_paths(bounds, 1, coll=coll, extra=extra)[0],
                         timeout=seconds * 3)
            requests.get(url + id_paths(n, 1, coll=coll)[0], timeout=seconds * 3)
        except requests.Timeout:
            return {"error": f"one request took over {seconds * 3} s (warm-up)"}
        return {"bbox": wrk(url, bbox_paths(bounds, coll=coll, extra=extra), seconds, work,
                            f"{label}-bbox", proc.pid),
                "by_id": wrk(url, id_paths(n, coll=coll), seconds, work, f"{label}-id",
                             proc.pid)}
    except Exception as exc:  # a peer that cannot run is reported as such
        return {"error": str(exc)}
    finally:
        stop(proc)


def stop(proc) -> None:
    """End a server this script started (if it did)."""
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--buildings", type=int, default=200_000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--peers", default="oup-postgis,tipg,postgres,sqlite,geojson",
                    help="comma list of peers: oup-postgis (OUP on its PostGIS store), tipg "
                         "(on PostGIS), postgres (pygeoapi's PostgreSQL provider), sqlite, "
                         "geojson (pygeoapi's stock providers). With oup-postgis, tipg and "
                         "pygeoapi serve the very table OUP wrote (its CRS84 column)")
    ap.add_argument("--work", type=Path, default=OUT / "features-work")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse the data of the previous run in --work (same --buildings)")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("benchmarks/features.py needs wrk: apt-get install wrk")
    peers = [p for p in args.peers.split(",") if p]
    work = args.work
    saved = work / "data.json"
    if args.reuse and saved.exists():
        data = {k: (Path(v) if k != "bounds84" else v)
                for k, v in json.loads(saved.read_text()).items()}
        install_grids(work)
    else:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        install_grids(work)
        t0 = time.perf_counter()
        data = build_data(work, args.buildings, peers)
        print(f"data: {args.buildings} buildings in {time.perf_counter() - t0:.0f} s")
        saved.write_text(json.dumps({k: str(v) if k != "bounds84" else v
                                     for k, v in data.items()}))
    bounds = data["bounds84"]
    results = {}
    port = free_port()
    results["OUP (GeoPackage store)"] = run_server(
        "oup", lambda: start_oup(work, data["oup"], port), f"http://127.0.0.1:{port}",
        args.buildings, bounds, args.seconds, work)
    pg = None
    same_table = "oup-postgis" in peers
    if {"tipg", "postgres", "oup-postgis"} & set(peers):
        try:
            pg = PostGIS(work).start()
            if same_table:
                t0 = time.perf_counter()
                copy_to_postgis(data["oup"], pg.url)
                print(f"PostGIS: {args.buildings} buildings written by OUP's PostGIS store "
                      f"in {time.perf_counter() - t0:.0f} s")
            else:
                pg.load(data["sqlite"] if "sqlite" in data else data["oup"])
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or ""
            for peer in ("tipg", "postgres"):
                results[peer] = {"error": f"PostGIS could not be set up: {exc} {detail[-300:]}"}
            pg = None
    try:
        if pg and same_table:
            port = free_port()
            results["OUP (PostGIS store)"] = run_server(
                "oup-pg", lambda: start_oup(work, pg.url, port), f"http://127.0.0.1:{port}",
                args.buildings, bounds, args.seconds, work)
        if pg and "tipg" in peers:
            port = free_port()
            results["tipg 1.6 on PostGIS"] = run_server(
                "tipg", lambda: start_tipg(work, pg.url, port), f"http://127.0.0.1:{port}",
                args.buildings, bounds, args.seconds, work, coll="public.buildings",
                extra=f"&geom-column={GEOM84}" if same_table else "")
        if pg and "postgres" in peers:
            port = free_port()
            results["pygeoapi 0.24 stock PostgreSQL"] = run_server(
                "postgres", lambda: start_pygeoapi(work, "PostgreSQL", pg.url, port, bounds,
                                                   GEOM84 if same_table else "geom"),
                f"http://127.0.0.1:{port}", args.buildings, bounds, args.seconds, work)
    finally:
        if pg:
            pg.stop()
    for peer, provider in (("sqlite", "SQLiteGPKG"), ("geojson", "GeoJSON")):
        if peer in peers:
            port = free_port()
            results[f"pygeoapi 0.24 stock {provider}"] = run_server(
                peer, lambda: start_pygeoapi(work, provider, data[peer], port, bounds),
                f"http://127.0.0.1:{port}", args.buildings, bounds, args.seconds, work)
    report(results, args)


def report(results: dict, args) -> None:
    machine = {"cpus": os.cpu_count(), "cpu": platform.processor() or _cpu_model(),
               "python": platform.python_version()}
    print(f"\n{args.buildings} buildings, 2 workers, 8 clients, {args.seconds} s per workload; "
          f"{machine['cpus']} CPUs ({machine['cpu']})\n")
    print(f"{'server':<34} {'bbox req/s':>11} {'bbox p50':>9} {'bbox p99':>9} {'bbox CPU':>9} "
          f"{'id req/s':>9} {'id p99':>8} {'id CPU':>8}")
    base = results.get("OUP (GeoPackage store)", {})
    for name, r in results.items():
        if "error" in r:
            print(f"{name:<34} could not run: {r['error']}")
            continue
        b, i = r["bbox"], r["by_id"]
        print(f"{name:<34} {b['req_s']:>11.1f} {b['p50_ms'] or 0:>8.1f}ms {b['p99_ms'] or 0:>8.1f}ms "
              f"{b.get('cpu_ms') or 0:>7.2f}ms {i['req_s']:>9.1f} {i['p99_ms'] or 0:>6.1f}ms "
              f"{i.get('cpu_ms') or 0:>6.2f}ms"
              + (f"  (non-2xx: {b['non_2xx'] + i['non_2xx']})" if b['non_2xx'] + i['non_2xx'] else ""))
    for label in ("OUP (GeoPackage store)", "OUP (PostGIS store)"):
        base = results.get(label, {})
        if "bbox" not in base:
            continue
        print(f"\nratios ({label} / peer, higher is better for OUP):")
        for name, r in results.items():
            if name == label or "bbox" not in r:
                continue
            if not r["bbox"]["req_s"] or not r["by_id"]["req_s"]:
                print(f"  vs {name}: no request of the peer completed within the run")
                continue
            rb = base["bbox"]["req_s"] / r["bbox"]["req_s"]
            ri = base["by_id"]["req_s"] / r["by_id"]["req_s"]
            p99 = (base["bbox"]["p99_ms"] or 0) / (r["bbox"]["p99_ms"] or 1)
            print(f"  vs {name}: bbox x{rb:.2f} (p99 x{p99:.2f}), by-id x{ri:.2f}")
    OUT.mkdir(exist_ok=True)
    (OUT / "features.json").write_text(json.dumps({"machine": machine, "args": vars(args) | {
        "work": str(args.work)}, "results": results}, indent=1))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
