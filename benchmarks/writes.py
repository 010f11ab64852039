"""Feature writes (OGC API Features Part 4): writes a second, how soon a write shows
everywhere, and reads with the history kept. OUP on both stores, pygeoapi beside it.

One run, one machine, loopback only. A city of N buildings (``citygen.make_city``: the
853 real Delfshaven ones replicated on a grid, CityJSONSeq) goes into a catalogue
collection that stewards may edit (``editable:``, ``history:``, ``tiles3d:``), is
imported by ``oup import`` into the GeoPackage store and into a throwaway PostGIS
(``oup.store.localdb``), and tiled once by ``oup tile`` (the tileset is copied to the
second data dir). Each OUP server: ``oup serve``, 2 workers, ``OUP_TILE_CACHE=true``,
an API key of role steward (``Authorization: ApiKey <key>``).

1. Writes a second: K client threads (``requests.Session`` each) for S seconds per
   workload: PATCH (a JSON Merge Patch of one attribute), PUT (the whole feature, one
   attribute changed), POST (a new building). The peer, stock pygeoapi 0.24 with its
   ``PostgreSQL`` provider ``editable: true`` on the very table OUP's PostGIS store
   wrote, has no PATCH (its Part 4 routes are POST items, PUT and DELETE items/{id}),
   so PUT is compared with PUT and POST with POST. pygeoapi checks no credentials and
   keeps no versions, ETags, events or tiles: it does less per write.
2. Commit -> visible, one write at a time (PATCH of one attribute to a fresh value),
   timed from the moment the write's HTTP answer arrives (the commit is done by then):
   (a) a GET of the item returns the new value; (b) the change event arrives on an SSE
   subscriber of /collections/buildings/events; (c) the cached z16 vector tile over the
   building (asked for before the write) is gone from <data>/tile-cache; (d) the leaf
   glb of the building's 3D tile (found in the tileset's .oup-index) has new bytes.
   And under load: during each workload of 1., a probe PATCHes one building every
   --probe-every seconds (a value of its own) and times, from its answer, until the
   building's leaf glb holds that value (the property table's strings are plain bytes
   in the glb): the 3D leaf p50 / p99 / max of writes made while the workload runs and
   right after it, the backlog included.
3. Reads with history on: bbox items pages (wrk, as features.py) after the writes of 1.
   (topped up to --history-writes), on a restarted server, against a second server on
   a copy of the store made before any write (the GeoPackage file; PostGIS: a database
   made from the first as its template), the two read in turn (--read-rounds each,
   alternating which goes first) in the same minutes: req/s and the servers' CPU per
   request, medians.

    .venv/bin/python benchmarks/writes.py [--buildings 200000] [--seconds 20]
        [--clients 8] [--samples 50] [--rest 15] [--no-peer]

Needs wrk, PostgreSQL + PostGIS. Prints a table and ratios; writes
benchmarks/out/writes.json. Peers or phases that cannot run are reported, not hidden.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import morecantile
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import features as fb  # noqa: E402  (PostGIS, wrk, wait_up, stop, as the features benchmark)
from citygen import make_city  # noqa: E402
from oup.ports import free_port  # noqa: E402

OUT = HERE / "out"
COLL = "buildings"
TMS = morecantile.tms.get("WebMercatorQuad")
COLLECTION_YML = """\
title: Buildings (writes benchmark)
description: replicated Delfshaven buildings
license: {name: Open data Rotterdam}
owner: {name: bench}
sources: [{path: city.city.jsonl, attributes: {survey_date: "2008-11-01T00:00:00Z"}}]
time_field: survey_date
tiles3d: {source: city.city.jsonl, z_offset_attribute: TerrainHeight}
editable: {create: [steward], change: [steward], delete: [steward]}
history: {retention: P10Y}
"""
_uid = iter(range(1, 1 << 62))
_uid_lock = threading.Lock()


def uid() -> int:
    with _uid_lock:
        return next(_uid)


def pct(values: list[float], q: float) -> float | None:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else None


def ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 2)


# -- data -------------------------------------------------------------------------------

def oup_env(work: Path, data: Path, store_url: str | None) -> dict:
    env = dict(os.environ, OUP_CATALOG_DIR=str(work / "catalog"), OUP_DATA_DIR=str(data),
               OUP_API_KEYS_FILE=str(work / "api-keys.yml"), OUP_TILE_CACHE="true",
               OUP_LOG_LEVEL="ERROR")
    env.pop("OUP_DATABASE_URL", None)
    if store_url:
        env["OUP_DATABASE_URL"] = store_url
    return env


def oup(env: dict, *args: str, timeout: float = 7200) -> str:
    res = subprocess.run([sys.executable, "-m", "oup.cli", *args], env=env, text=True,
                         capture_output=True, timeout=timeout)
    if res.returncode:
        raise RuntimeError(f"oup {' '.join(args)} failed: {res.stderr[-800:]}")
    return res.stdout


def build(work: Path, n: int) -> dict:
    """The city, its catalogue collection, the GeoPackage import, the 3D tileset, a key."""
    cat = work / "catalog" / COLL
    cat.mkdir(parents=True)
    t0 = time.perf_counter()
    make_city(cat / "city.city.jsonl", n)
    (cat / "collection.yml").write_text(COLLECTION_YML)
    env = oup_env(work, work / "data-gpkg", None)
    t1 = time.perf_counter()
    oup(env, "import", "--quiet")
    t2 = time.perf_counter()
    oup(env, "tile", "--quiet")
    t3 = time.perf_counter()
    # as made, for the PostGIS server's data dir (the GeoPackage server's writes change it)
    shutil.copytree(work / "data-gpkg" / "3dtiles", work / "3dtiles-made")
    key = oup(env, "keys", "add", "bench", "--role", "steward").strip().splitlines()[0]
    print(f"data: {n} buildings: city {t1 - t0:.0f} s, GeoPackage import {t2 - t1:.0f} s, "
          f"3D tileset {t3 - t2:.0f} s", flush=True)
    return {"key": key, "import_gpkg_s": t2 - t1, "tile_s": t3 - t2}


def import_postgis(work: Path, url: str) -> float:
    data = work / "data-pg"
    data.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    oup(oup_env(work, data, url), "import", "--quiet")
    shutil.copytree(work / "3dtiles-made", data / "3dtiles")
    return time.perf_counter() - t0


# -- servers ----------------------------------------------------------------------------

class OupServer:
    def __init__(self, work: Path, data: Path, store_url: str | None, label: str):
        self.work, self.data, self.store_url, self.label = work, data, store_url, label
        self.proc, self.port = None, None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "OupServer":
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "oup.cli", "serve", "--port", str(self.port), "--workers",
             "2"], env=oup_env(self.work, self.data, self.store_url),
            stdout=subprocess.DEVNULL, stderr=open(self.work / f"{self.label}.log", "a"))
        fb.wait_up(f"{self.url}/collections/{COLL}", self.proc)
        requests.get(f"{self.url}/collections/{COLL}/items/1", timeout=60)  # warm up
        return self

    def stop(self) -> None:
        fb.stop(self.proc)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def start_pygeoapi(work: Path, pg_url: str, port: int, bounds):
    """Stock pygeoapi, its PostgreSQL provider editable on OUP's PostGIS table (the
    CRS84 column), 2 gunicorn workers of 4 threads (as in features.py)."""
    import yaml

    from oup.store.base import FID, GEOM84

    cfg = yaml.safe_load((ROOT / "config" / "pygeoapi.yml").read_text())
    cfg["server"]["url"] = f"http://127.0.0.1:{port}"
    cfg["logging"]["level"] = "ERROR"
    host_port = pg_url.split("@", 1)[1].split("/", 1)[0]
    dbname = pg_url.rsplit("/", 1)[1].split("?")[0]
    cfg["resources"] = {COLL: {
        "type": "collection", "title": "Buildings", "description": "benchmark",
        "keywords": ["b"], "links": [],
        "extents": {"spatial": {"bbox": bounds,
                                "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
        "providers": [{"type": "feature", "name": "PostgreSQL", "editable": True,
                       "data": {"host": host_port.split(":")[0],
                                "port": int(host_port.split(":")[1]), "dbname": dbname,
                                "user": "postgres", "password": "",
                                "search_path": ["public"]},
                       "table": COLL, "id_field": FID, "geom_field": GEOM84}]}}
    cfg_path = work / "pygeoapi-writes.yml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    oas = work / "openapi-writes.json"
    env = dict(os.environ, PYGEOAPI_CONFIG=str(cfg_path), PYGEOAPI_OPENAPI=str(oas))
    made = subprocess.run([sys.executable, str(HERE / "stock_pygeoapi.py"), "openapi",
                           str(cfg_path), str(oas)], env=env, capture_output=True, text=True,
                           timeout=300)
    if made.returncode:
        raise RuntimeError("pygeoapi could not make its OpenAPI document (it reads the table "
                           f"then): {made.stderr.strip().splitlines()[-1][-400:]}")
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--worker-class", "gthread", "--threads", "4", "--timeout", "600",
         "--chdir", str(HERE), "stock_pygeoapi:APP"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(work / "pygeoapi-writes.log", "w"))


# -- requests ---------------------------------------------------------------------------

def sample_features(url: str, n: int, k: int, seed: int) -> list[dict]:
    """``k`` random buildings as GeoJSON (id, geometry in CRS84, properties)."""
    rng = random.Random(seed)
    out = []
    with requests.Session() as s:
        for fid in rng.sample(range(1, n + 1), min(k, n)):
            r = s.get(f"{url}/collections/{COLL}/items/{fid}", timeout=60,
                      headers={"Accept": "application/geo+json"})
            if r.ok:
                f = r.json()
                out.append({"id": f["id"], "geometry": f["geometry"],
                            "properties": f["properties"]})
    if not out:
        raise RuntimeError(f"no building could be read from {url}")
    return out


def patch_request(n: int, rng: random.Random) -> tuple:
    return ("PATCH", f"/collections/{COLL}/items/{rng.randint(1, n)}",
            {"Content-Type": "application/merge-patch+json"},
            json.dumps({"properties": {"status": f"w{uid()}"}}))


def put_request(pool: list[dict], rng: random.Random, with_id: bool) -> tuple:
    f = rng.choice(pool)
    doc = {"type": "Feature", "geometry": f["geometry"],
           "properties": dict(f["properties"], status=f"w{uid()}")}
    if with_id:  # pygeoapi takes the id from the body, not the path
        doc["id"] = f["id"]
    return ("PUT", f"/collections/{COLL}/items/{f['id']}",
            {"Content-Type": "application/geo+json"}, json.dumps(doc))


def post_request(pool: list[dict], rng: random.Random) -> tuple:
    """A new building: a sampled one's footprint moved ~30 m east, a new object id."""
    f = rng.choice(pool)
    n = uid()

    def shift(c):
        return [shift(x) for x in c] if isinstance(c[0], list) else [c[0] + 0.0004, c[1]]

    geom = {"type": f["geometry"]["type"], "coordinates": shift(f["geometry"]["coordinates"])}
    props = dict(f["properties"], status=f"w{n}", cityobject_id=f"bench-new-{n}")
    return ("POST", f"/collections/{COLL}/items", {"Content-Type": "application/geo+json"},
            json.dumps({"type": "Feature", "geometry": geom, "properties": props}))


def share(pool: list, i: int, clients: int) -> list:
    return pool[i::clients] or pool


def load(url: str, make, clients: int, seconds: float, headers: dict,
         max_requests: int = 1_000_000) -> dict:
    """``clients`` threads sending ``make(rng, i)`` requests for ``seconds`` (or until
    ``max_requests``): writes/s (2xx answers), latency p50/p99, errors."""
    lock, deadline = threading.Lock(), time.perf_counter() + seconds
    lat, errors, first_error, sent = [], [0], [], [0]

    def client(i: int):
        rng = random.Random(1000 + i)
        with requests.Session() as s:
            s.headers.update(headers)
            while time.perf_counter() < deadline:
                with lock:
                    if sent[0] >= max_requests:
                        return
                    sent[0] += 1
                method, path, hdrs, body = make(rng, i)
                t = time.perf_counter()
                try:
                    r = s.request(method, url + path, headers=hdrs, data=body, timeout=60)
                    ok, detail = r.status_code < 300, f"{r.status_code} {r.text[:300]}"
                except requests.RequestException as exc:
                    ok, detail = False, repr(exc)[:300]
                dt = time.perf_counter() - t
                with lock:
                    if ok:
                        lat.append(dt)
                    else:
                        errors[0] += 1
                        if not first_error:
                            first_error.append(f"{method} {path}: {detail}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    elapsed = time.perf_counter() - t0
    return {"writes_s": round(len(lat) / elapsed, 1), "ok": len(lat), "errors": errors[0],
            "p50_ms": ms(pct(lat, .5)), "p99_ms": ms(pct(lat, .99)),
            **({"first_error": first_error[0]} if first_error else {})}


def wait_quiet(pid: int, limit: float) -> float | None:
    """Seconds until the server's processes stay idle (<5% of a core for 2 s): the 3D
    tile updates the writes queued are done. None if still busy after ``limit``."""
    t0, quiet = time.perf_counter(), 0
    last = fb.tree_cpu_seconds(pid)
    while time.perf_counter() - t0 < limit:
        time.sleep(1.0)
        now = fb.tree_cpu_seconds(pid)
        quiet = quiet + 1 if now - last < 0.05 else 0
        last = now
        if quiet >= 2:
            return round(time.perf_counter() - t0 - 2, 1)
    return None


# -- 2. commit -> visible ---------------------------------------------------------------

class Subscriber(threading.Thread):
    """An SSE subscriber: the arrival time of each ``status`` value the events carry."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.arrived, self.error, self.resp = url, {}, None, None
        self.ready = threading.Event()

    def run(self):
        try:
            with requests.get(self.url, stream=True, timeout=(10, 120)) as r:
                self.resp = r
                r.raise_for_status()
                self.ready.set()
                for line in r.iter_lines():
                    if line.startswith(b"data:"):
                        now = time.perf_counter()
                        e = json.loads(line[5:])
                        value = ((e.get("data") or {}).get("properties") or {}).get("status")
                        if value is not None:
                            self.arrived.setdefault(value, now)
        except Exception as exc:  # closed by close(), or the stream failed
            self.error = self.error or repr(exc)[:300]
        finally:
            self.ready.set()

    def close(self):
        self.error = self.error or "closed"
        if self.resp is not None:
            try:
                self.resp.close()
            except Exception:  # the reading thread ends either way (daemon)
                pass


def leaf_of(data: Path) -> tuple[dict, Path]:
    """CityObject id -> leaf glb of the tileset in ``data`` (from its .oup-index)."""
    from tilers.index import load_index

    folder = data / "3dtiles" / COLL
    index = load_index(folder)
    ids, leaves, nodes = index.objects["id"], index.objects["leaf"], index.nodes["id"]
    return {str(i): folder / "tiles" / f"{nodes[l]}.glb" for i, l in zip(ids, leaves)
            if l >= 0}, folder


def tile_of(geometry: dict, z: int = 16) -> tuple[int, int, int]:
    import shapely.geometry

    c = shapely.geometry.shape(geometry).representative_point()
    t = TMS.tile(c.x, c.y, z)
    return t.z, t.y, t.x


def visibility(srv: OupServer, key: str, n: int, samples: int, timeout: float) -> dict:
    """(a) item GET, (b) SSE event, (c) cached vector tile dropped, (d) 3D leaf rewritten:
    seconds from the write's answer, one write at a time."""
    leaves, _ = leaf_of(srv.data)
    sub = Subscriber(f"{srv.url}/collections/{COLL}/events")
    sub.start()
    sub.ready.wait(30)
    if sub.error:
        return {"error": f"SSE subscriber: {sub.error}"}
    time.sleep(1.0)
    rng = random.Random(77)
    got = {k: [] for k in ("item_get", "sse_event", "vector_tile_dropped", "leaf_3d_rewritten")}
    missed = {k: 0 for k in got}
    tile_gone_at_answer, notes, done = 0, [], 0
    s = requests.Session()
    auth = {"Authorization": f"ApiKey {key}"}
    deadline = time.perf_counter() + samples * (timeout + 10)
    tries = 0
    while done < samples and tries < samples * 5 and time.perf_counter() < deadline:
        tries += 1
        fid = rng.randint(1, n)
        f = s.get(f"{srv.url}/collections/{COLL}/items/{fid}", timeout=60,
                  headers={"Accept": "application/geo+json"}).json()
        leaf = leaves.get(str(f.get("properties", {}).get("cityobject_id")))
        if leaf is None or not leaf.exists() or not f.get("geometry"):
            continue  # not in the 3D tileset (e.g. nothing to draw): another one
        z, row, col = tile_of(f["geometry"])
        r = s.get(f"{srv.url}/collections/{COLL}/tiles/WebMercatorQuad/{z}/{row}/{col}",
                  timeout=60)
        cached = list((srv.data / "tile-cache" / COLL).glob(
            f"*/WebMercatorQuad/{z}/{row}/{col}.mvt"))
        if r.status_code != 200 or not cached:
            notes.append(f"tile {z}/{row}/{col}: {r.status_code}, cached {bool(cached)}")
            continue
        tile_file = cached[0]
        st = leaf.stat()
        before = (st.st_mtime_ns, st.st_size)
        value = f"v{uid()}"
        r = s.patch(f"{srv.url}/collections/{COLL}/items/{fid}", timeout=60,
                    headers={**auth, "Content-Type": "application/merge-patch+json"},
                    data=json.dumps({"properties": {"status": value}}))
        t_commit = time.perf_counter()
        if r.status_code != 200:
            return {"error": f"PATCH {fid}: {r.status_code} {r.text[:300]}"}
        res: dict[str, float] = {}
        if not tile_file.exists():  # dropped before the answer was sent
            res["vector_tile_dropped"] = time.perf_counter() - t_commit
            tile_gone_at_answer += 1
        while len(res) < 4 and time.perf_counter() - t_commit < timeout:
            if "item_get" not in res:
                g = s.get(f"{srv.url}/collections/{COLL}/items/{fid}", timeout=60,
                          headers={"Accept": "application/geo+json"})
                if g.ok and g.json()["properties"].get("status") == value:
                    res["item_get"] = time.perf_counter() - t_commit
            if "sse_event" not in res and value in sub.arrived:
                res["sse_event"] = sub.arrived[value] - t_commit
            if "vector_tile_dropped" not in res and not tile_file.exists():
                res["vector_tile_dropped"] = time.perf_counter() - t_commit
            if "leaf_3d_rewritten" not in res:
                try:
                    st = leaf.stat()
                    if (st.st_mtime_ns, st.st_size) != before:
                        res["leaf_3d_rewritten"] = time.perf_counter() - t_commit
                except FileNotFoundError:  # replaced at this very moment
                    pass
            time.sleep(0.002)
        for k in got:
            if k in res:
                got[k].append(res[k])
            else:
                missed[k] += 1
        done += 1
        time.sleep(0.05)
    sub.close()
    s.close()
    out = {"writes": done, "tile_dropped_before_answer": tile_gone_at_answer,
           "timeout_s": timeout}
    for k, v in got.items():
        out[k] = {"p50_ms": ms(pct(v, .5)), "p99_ms": ms(pct(v, .99)), "max_ms": ms(max(v))
                  if v else None, "n": len(v), "not_seen": missed[k]}
    if notes:
        out["skipped"] = notes[:5]
    return out


class LeafProbe(threading.Thread):
    """During a workload: a PATCH of one of ``buildings`` ((feature id, leaf glb)) every
    ``every`` seconds, each to a value of its own, until ``stop``; the seconds from each
    answer until the leaf glb holds the value, watched for up to ``timeout`` after the
    last probe (a leaf's bytes are read again only when its mtime changed)."""

    def __init__(self, srv: "OupServer", key: str, buildings: list, every: float,
                 timeout: float):
        super().__init__(daemon=True)
        self.srv, self.buildings, self.every, self.timeout = srv, buildings, every, timeout
        self.auth = {"Authorization": f"ApiKey {key}",
                     "Content-Type": "application/merge-patch+json"}
        self.stop = threading.Event()
        self.seen: list[float] = []
        self.sent, self.failed, self.not_seen = 0, 0, None

    def run(self):
        # each building probed once before any is probed again: a value a later probe
        # of the same building replaced would never be seen, and drop out of the p99
        rng = random.Random(99)
        turns = itertools.cycle(rng.sample(self.buildings, len(self.buildings)))
        waiting: dict[str, tuple[Path, float]] = {}  # value -> (leaf, answer time)
        stamp: dict[Path, int] = {}
        s = requests.Session()
        next_at, last_sent = time.perf_counter(), None
        while True:
            now = time.perf_counter()
            if not self.stop.is_set() and now >= next_at:
                fid, leaf = next(turns)
                value = f"p{uid()}x"
                try:
                    r = s.patch(f"{self.srv.url}/collections/{COLL}/items/{fid}", timeout=60,
                                headers=self.auth,
                                data=json.dumps({"properties": {"status": value}}))
                    ok = r.status_code == 200
                except requests.RequestException:
                    ok = False
                if ok:
                    waiting[value] = (leaf, time.perf_counter())
                    self.sent += 1
                else:
                    self.failed += 1
                next_at, last_sent = now + self.every, time.perf_counter()
            if self.stop.is_set() and (not waiting or last_sent is None or
                                       time.perf_counter() - last_sent > self.timeout):
                break
            for leaf in {lf for lf, _ in waiting.values()}:
                try:
                    m = leaf.stat().st_mtime_ns
                    if stamp.get(leaf) == m:
                        continue
                    data, stamp[leaf] = leaf.read_bytes(), m
                except FileNotFoundError:  # replaced at this very moment
                    continue
                for value, (lf, t) in list(waiting.items()):
                    if lf == leaf and value.encode() in data:
                        self.seen.append(time.perf_counter() - t)
                        del waiting[value]
            time.sleep(0.01)
        s.close()
        self.not_seen = len(waiting)

    def result(self) -> dict:
        return {"probes": self.sent, "failed": self.failed, "not_seen": self.not_seen,
                "p50_ms": ms(pct(self.seen, .5)), "p99_ms": ms(pct(self.seen, .99)),
                "max_ms": ms(max(self.seen)) if self.seen else None}


def probe_buildings(srv: "OupServer", n: int, k: int) -> list:
    """``k`` random buildings in the 3D tileset: (feature id, its leaf glb)."""
    leaves, _ = leaf_of(srv.data)
    rng, out = random.Random(31), []
    with requests.Session() as s:
        for fid in rng.sample(range(1, n + 1), min(4 * k, n)):
            f = s.get(f"{srv.url}/collections/{COLL}/items/{fid}", timeout=60,
                      headers={"Accept": "application/geo+json"}).json()
            leaf = leaves.get(str((f.get("properties") or {}).get("cityobject_id")))
            if leaf is not None and leaf.exists():
                out.append((fid, leaf))
            if len(out) == k:
                break
    return out


# -- per server -------------------------------------------------------------------------

def snapshot(srv: OupServer) -> OupServer:
    """A server on a copy of ``srv``'s data dir and store as they are now (not running)."""
    data = srv.data.with_name(srv.data.name + "-before")
    shutil.copytree(srv.data, data, ignore=shutil.ignore_patterns("tile-cache"))
    url = None
    if srv.store_url:  # a database copied from the store's (no one connected to it now)
        base, db = srv.store_url.rsplit("/", 1)
        subprocess.run(["psql", f"{base}/postgres", "-qc",
                        f'CREATE DATABASE "{db}_before" TEMPLATE "{db}"'], check=True,
                       capture_output=True, timeout=600)
        url = f"{base}/{db}_before"
    return OupServer(srv.work, data, url, srv.label + "-before")


def median_of(runs: list[dict]) -> dict:
    def med(k):
        v = sorted(r[k] for r in runs if r.get(k) is not None)
        return v[len(v) // 2] if v else None
    return {"req_s": med("req_s"), "p99_ms": med("p99_ms"), "cpu_ms": med("cpu_ms"),
            "rounds": [r["req_s"] for r in runs]}


def reads_in_turn(before: OupServer, after: OupServer, paths: list, args, work: Path) -> dict:
    """bbox reads of the two servers in turn, the first one alternating each round."""
    runs: dict = {"before": [], "after": []}
    for r in range(args.read_rounds):
        pair = [("before", before), ("after", after)]
        for label, srv in pair if r % 2 == 0 else pair[::-1]:
            runs[label].append(fb.wrk(srv.url, paths, args.read_seconds, work,
                                      f"{after.label}-{label}{r}", srv.proc.pid))
    return {k: median_of(v) for k, v in runs.items()}


def run_oup(srv: OupServer, key: str, n: int, args, work: Path) -> tuple[dict, list]:
    res: dict = {}
    before = snapshot(srv)
    try:
        srv.start()
        col = requests.get(f"{srv.url}/collections/{COLL}?f=json", timeout=60).json()
        bounds = res["bounds84"] = col["extent"]["spatial"]["bbox"][0]
        paths = fb.bbox_paths(bounds)
        res["reads_start"] = fb.wrk(srv.url, paths, args.read_seconds, work,
                                    f"{srv.label}-read0", srv.proc.pid)
        print(f"  {srv.label}: reads before {res['reads_start']['req_s']} req/s", flush=True)
        res["visible"] = visibility(srv, key, n, args.samples, args.visible_timeout)
        print(f"  {srv.label}: visible {json.dumps(res['visible'])[:300]}", flush=True)
        pool = sample_features(srv.url, n, 200, seed=5)
        auth = {"Authorization": f"ApiKey {key}"}
        # each client PUTs its own share of the sampled buildings (no two clients
        # replace one feature at once: that is a conflict, not a write rate)
        workloads = {"PATCH": lambda rng, i: patch_request(n, rng),
                     "PUT": lambda rng, i: put_request(share(pool, i, args.clients), rng,
                                                        False),
                     "POST": lambda rng, i: post_request(pool, rng)}
        written = res["visible"].get("writes", 0)
        res["writes"] = {}
        probed = probe_buildings(srv, n, 40)
        for name, make in workloads.items():
            if name not in args.workloads:
                continue
            time.sleep(args.rest)
            probe = LeafProbe(srv, key, probed, args.probe_every, args.drain)
            probe.start()
            cpu0 = fb.tree_cpu_seconds(srv.proc.pid)
            w = load(srv.url, make, args.clients, args.seconds, auth)
            cpu1 = fb.tree_cpu_seconds(srv.proc.pid)
            probe.stop.set()
            w["drain_3d_s"] = wait_quiet(srv.proc.pid, args.drain)
            # the server's CPU a write: during the load, and with what it did after
            # (3D tiles, overview) until quiet or the drain's end
            w["cpu_ms_a_write"] = round((cpu1 - cpu0) * 1000 / max(1, w["ok"]), 2)
            w["cpu_ms_a_write_drained"] = round(
                (fb.tree_cpu_seconds(srv.proc.pid) - cpu0) * 1000 / max(1, w["ok"]), 2)
            probe.join(args.drain + 60)
            w["leaf_3d_under_load"] = probe.result()
            written += probe.sent
            if w["drain_3d_s"] is None:  # a backlog of 3D updates: not into the next load
                w["restarted"] = True
                srv.restart()
            res["writes"][name] = w
            written += w["ok"]
            print(f"  {srv.label}: {name} {json.dumps(w)[:300]}", flush=True)
        if written < args.history_writes:  # top up the history before reading again
            w = load(srv.url, workloads["PATCH"], args.clients, max(60.0, args.seconds * 10),
                     auth, args.history_writes - written)
            written += w["ok"]
            res["top_up"] = w
        res["writes_total"] = written
        srv.restart()  # a fresh server, as the one on the store before the writes
        before.start()
        reads = reads_in_turn(before, srv, paths, args, work)
        res["reads_before"], res["reads_after"] = reads["before"], reads["after"]
        print(f"  {srv.label}: reads before / after {written} writes, in turn: "
              f"{json.dumps(reads)}", flush=True)
        return res, pool
    except Exception as exc:  # reported, not hidden
        res["error"] = f"{type(exc).__name__}: {exc}"
        return res, []
    finally:
        srv.stop()
        before.stop()


def run_peer(work: Path, pg_url: str, pool: list[dict], bounds, args) -> dict:
    proc, port = None, free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        proc = start_pygeoapi(work, pg_url, port, bounds)
        fb.wait_up(f"{url}/collections/{COLL}", proc)
        out = {"writes": {}}
        probe = requests.get(f"{url}/collections/{COLL}/items/{pool[0]['id']}?f=json",
                             timeout=120)
        if not probe.ok:  # seen: 500, it cannot serialise the table's other geometry
            out["note"] = (f"its GET of an item on this table answers {probe.status_code} "
                           "(it serialises every column, and OUP's table has a second "
                           "geometry column in the source CRS); its writes are measured")
        for name, make in {"PUT": lambda rng, i: put_request(share(pool, i, args.clients),
                                                             rng, True),
                           "POST": lambda rng, i: post_request(pool, rng)}.items():
            if name not in args.workloads:
                continue
            time.sleep(args.rest)
            out["writes"][name] = load(url, make, args.clients, args.seconds, {})
            print(f"  pygeoapi: {name} {json.dumps(out['writes'][name])[:300]}", flush=True)
        return out
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        fb.stop(proc)


# -- main -------------------------------------------------------------------------------

def postgis_side(work: Path, key: str, pool: list, results: dict, args) -> None:
    """A throwaway PostGIS with the city imported; OUP on it (unless --stores leaves it
    out), then the peer on the same table (unless --no-peer)."""
    prep, pg = results["prepare"], None
    try:
        pg = fb.PostGIS(work).start()
        prep["import_postgis_s"] = import_postgis(work, pg.url)
        print(f"PostGIS import {prep['import_postgis_s']:.0f} s\nOUP, PostGIS store",
              flush=True)
        if "postgis" in args.stores:
            results["OUP, PostGIS store"], pool = run_oup(
                OupServer(work, work / "data-pg", pg.url, "oup-pg"), key, args.buildings,
                args, work)
        else:  # the peer still writes the table OUP's PostGIS import made
            results["OUP, PostGIS store"] = {"error": "not run (--stores)",
                                             "bounds84": results.get(
                                                 "OUP, GeoPackage store", {}).get("bounds84")}
        if args.no_peer:
            results["pygeoapi"] = {"error": "not run (--no-peer)"}
        elif not pool:
            results["pygeoapi"] = {"error": "not run: OUP failed before the buildings "
                                            "were sampled"}
        else:
            print("pygeoapi 0.24, PostgreSQL provider (same table)", flush=True)
            results["pygeoapi"] = run_peer(work, pg.url, pool,
                                           results["OUP, PostGIS store"]["bounds84"], args)
    except Exception as exc:  # PostGIS itself could not be set up
        for k in ("OUP, PostGIS store", "pygeoapi"):
            results.setdefault(k, {"error": f"PostGIS: {type(exc).__name__}: {exc}"})
    finally:
        if pg:
            pg.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--buildings", type=int, default=200_000)
    ap.add_argument("--seconds", type=float, default=20, help="per write workload")
    ap.add_argument("--clients", type=int, default=8, help="concurrent writing clients")
    ap.add_argument("--samples", type=int, default=50, help="writes timed to visible")
    ap.add_argument("--visible-timeout", type=float, default=60,
                    help="seconds a write is watched for (a)-(d)")
    ap.add_argument("--read-seconds", type=int, default=10, help="wrk bbox reads, each")
    ap.add_argument("--read-rounds", type=int, default=3,
                    help="wrk runs of each server (before / after the writes) in turn")
    ap.add_argument("--history-writes", type=int, default=3000,
                    help="at least this many writes before the reads after")
    ap.add_argument("--drain", type=float, default=120,
                    help="seconds to wait for a workload's 3D updates (else restart)")
    ap.add_argument("--probe-every", type=float, default=0.5,
                    help="seconds between the 3D leaf probes during a workload")
    ap.add_argument("--rest", type=float, default=fb.COOLDOWN,
                    help="seconds of rest before each workload")
    ap.add_argument("--no-peer", action="store_true", help="skip pygeoapi")
    ap.add_argument("--workloads", nargs="+", choices=("PATCH", "PUT", "POST"),
                    default=["PATCH", "PUT", "POST"], help="the write workloads run")
    ap.add_argument("--stores", nargs="+", choices=("gpkg", "postgis"),
                    default=["gpkg", "postgis"], help="the OUP stores run (pygeoapi's "
                    "PostgreSQL runs whenever it is not --no-peer)")
    ap.add_argument("--work", type=Path, default=OUT / "writes-work")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("benchmarks/writes.py needs wrk: apt-get install wrk")
    fb.COOLDOWN = args.rest  # fb.wrk rests this long before each read load
    work = args.work = args.work.resolve()  # PostgreSQL wants an absolute folder
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.time()
    prep = build(work, args.buildings)
    key = prep.pop("key")
    results: dict = {"prepare": prep}
    pool: list = []
    if "gpkg" in args.stores:
        print("OUP, GeoPackage store", flush=True)
        results["OUP, GeoPackage store"], pool = run_oup(
            OupServer(work, work / "data-gpkg", None, "oup-gpkg"), key, args.buildings, args,
            work)
    if "postgis" in args.stores or not args.no_peer:
        postgis_side(work, key, pool, results, args)
    else:  # no one writes PostGIS this run: no cluster, no import
        results["OUP, PostGIS store"] = {"error": "not run (--stores)"}
        results["pygeoapi"] = {"error": "not run (--no-peer)"}
    results["minutes"] = round((time.time() - started) / 60, 1)
    report(results, args)


def report(results: dict, args) -> None:
    cpu = fb._cpu_model()
    print(f"\n{args.buildings} buildings; {args.clients} writing clients, {args.seconds:g} s "
          f"per write workload; 2 workers each; {os.cpu_count()} CPUs ({cpu})")
    print("\n1. writes a second (2xx answers), latency per write")
    print(f"{'server':<48} {'op':<6} {'writes/s':>9} {'p50':>9} {'p99':>9} {'errors':>7}"
          f" {'3D drained':>11}  server CPU a write (with what followed)")
    servers = ("OUP, GeoPackage store", "OUP, PostGIS store", "pygeoapi")
    names = {"pygeoapi": "pygeoapi 0.24, PostgreSQL provider (same table)"}
    for srv in servers:
        r = results.get(srv, {})
        if "writes" not in r:
            print(f"{names.get(srv, srv):<48} could not run: {r.get('error', 'not run')}")
            continue
        for op, w in r["writes"].items():
            drained = ("" if srv == "pygeoapi" else "restart" if w.get("restarted") else
                       f"{w.get('drain_3d_s')} s")
            print(f"{names.get(srv, srv):<48} {op:<6} {w['writes_s']:>9.1f} "
                  f"{w['p50_ms'] or 0:>7.1f}ms {w['p99_ms'] or 0:>7.1f}ms {w['errors']:>7}"
                  f" {drained:>11}" + (f"  {w['cpu_ms_a_write']:.1f} ms "
                                       f"({w['cpu_ms_a_write_drained']:.1f} ms)"
                                       if "cpu_ms_a_write" in w else ""))
            if w.get("first_error"):
                print(f"{'':<48} first error: {w['first_error'][:200]}")
        if r.get("error"):
            print(f"{names.get(srv, srv):<48} stopped: {r['error']}")
        if r.get("note"):
            print(f"  note: {r['note']}")
    peer = results.get("pygeoapi", {}).get("writes", {})
    if "PATCH" not in peer:
        print("pygeoapi 0.24 has no PATCH on items (its Part 4 routes: POST items, PUT and "
              "DELETE items/{id}): PUT is compared with PUT")
    for srv in servers[:2]:
        mine = results.get(srv, {}).get("writes", {})
        for op in ("PUT", "POST"):
            if op in mine and op in peer and peer[op]["writes_s"]:
                print(f"  {srv} / pygeoapi, {op}: writes/s x{mine[op]['writes_s'] / peer[op]['writes_s']:.2f}"
                      + (f", p99 x{mine[op]['p99_ms'] / peer[op]['p99_ms']:.2f}"
                         if mine[op]["p99_ms"] and peer[op]["p99_ms"] else ""))
            elif op in mine and op in peer:
                print(f"  {srv} / pygeoapi, {op}: no write of the peer succeeded")
    print("\n2. commit -> visible (from the moment the write's HTTP answer arrives; one "
          "PATCH at a time), p50 / p99 / max")
    kinds = (("item_get", "(a) GET item shows it"), ("sse_event", "(b) SSE event arrives"),
             ("vector_tile_dropped", "(c) cached z16 tile dropped"),
             ("leaf_3d_rewritten", "(d) 3D leaf glb rewritten"))
    for srv in servers[:2]:
        v = results.get(srv, {}).get("visible")
        if not v or "error" in v:
            print(f"  {srv}: could not run: {(v or {}).get('error') or results.get(srv, {}).get('error')}")
            continue
        print(f"  {srv}: {v['writes']} writes; the tile was already gone when the answer "
              f"arrived for {v['tile_dropped_before_answer']}")
        for k, label in kinds:
            x = v[k]
            print(f"    {label:<32} {_f(x['p50_ms']):>10} {_f(x['p99_ms']):>10} "
                  f"{_f(x['max_ms']):>10}" + (f"  (not seen within {v['timeout_s']:g} s: "
                                              f"{x['not_seen']})" if x["not_seen"] else ""))
    print("\n2b. 3D leaf of writes made during each workload of 1. (a probe PATCH every "
          f"{args.probe_every:g} s; answer -> leaf glb holds the value), p50 / p99 / max")
    for srv in servers[:2]:
        for op, w in results.get(srv, {}).get("writes", {}).items():
            x = w.get("leaf_3d_under_load")
            if x:
                print(f"  {srv:<24} {op:<6} {_f(x['p50_ms']):>10} {_f(x['p99_ms']):>10} "
                      f"{_f(x['max_ms']):>10}  ({x['probes']} probes"
                      + (f", not seen {x['not_seen']}" if x["not_seen"] else "") + ")")
    print("\n3. bbox reads (wrk -t2 -c8, items?bbox=~200 m&limit=100), history on: the "
          "store before the writes and after them, read in turn, medians")
    for srv in servers[:2]:
        r = results.get(srv, {})
        b, a = r.get("reads_before"), r.get("reads_after")
        if not b or not a:
            print(f"  {srv}: could not run: {r.get('error')}")
            continue
        ratio = f"x{a['req_s'] / b['req_s']:.2f}" if b["req_s"] else "n/a"
        cpu = (f", CPU a request {b['cpu_ms']:.2f} / {a['cpu_ms']:.2f} ms: "
               f"x{a['cpu_ms'] / b['cpu_ms']:.2f}" if b.get("cpu_ms") and a.get("cpu_ms")
               else "")
        print(f"  {srv}: before {b['req_s']:.1f} req/s (p99 {_f(b['p99_ms'])}), after "
              f"{r['writes_total']} writes {a['req_s']:.1f} req/s (p99 {_f(a['p99_ms'])}): "
              f"after/before {ratio}{cpu}; rounds {b['rounds']} / {a['rounds']}")
    OUT.mkdir(exist_ok=True)
    (OUT / "writes.json").write_text(json.dumps(
        {"machine": {"cpus": os.cpu_count(), "cpu": cpu},
         "args": vars(args) | {"work": str(args.work)}, "results": results},
        indent=1, default=str))
    print(f"\nwritten: {OUT / 'writes.json'} ({results.get('minutes')} min)")


def _f(v) -> str:
    return "-" if v is None else f"{v:,.1f} ms"


if __name__ == "__main__":
    # stopped (kill, timeout): its servers stopped too, as at the end of a run, not left
    # serving in the background (seen: two gunicorns left on a stopped run's store)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
