"""OGC API Processes: area-statistics over many observations, and what running jobs cost
the API.

    python benchmarks/processes.py [--store gpkg|postgis] [--observations 10000000]
                                   [--requests 1000 (0: no latency part)] [--rounds 4]
                                   [--work DIR [--reuse]]

With ``--work`` the data stay in DIR (one folder per store and size); ``--reuse`` then
skips loading them again (10M observations take minutes to load).

1. area-statistics of N observations (1,000 sensors, one reading a minute, a week) over
   100 districts (a 10 x 10 grid over the sensors), for that week: count, mean, max, and
   again with p90. Timed from the execute request to its answer (a real server, a real
   `oup worker`), against the raw ceiling: the one SQL aggregate over the week's
   observations per sensor that any answer must read, in the same store, run directly.
   Budget: under 5 s.
2. API latency beside jobs: p99 of bbox requests on the sensors' items, idle and while
   4 area-statistics jobs keep running (the worker with 4 threads), in rounds that take
   turns. Budget: +20 %.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from oup.ports import free_port  # noqa: E402

T0 = 1_893_456_000_000_000  # 2030-01-01T00:00:00Z, in microseconds
WEEK = "2030-01-01T00:00:00Z/2030-01-08T00:00:00Z"
BOX = (4.35, 51.86, 4.60, 51.96)


def oup(env, *args):
    return subprocess.run([sys.executable, "-m", "oup.cli", *args], env=env, check=True,
                          capture_output=True, text=True)


def catalogue(cat: Path, n_sensors: int) -> None:
    shutil.copytree(ROOT / "collections" / "sensors", cat / "sensors")
    shutil.copytree(ROOT / "collections" / "observations", cat / "observations")
    rng = random.Random(29)
    sensors = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [
        BOX[0] + rng.random() * (BOX[2] - BOX[0]), BOX[1] + rng.random() * (BOX[3] - BOX[1])]},
        "properties": {"sensor_id": f"s{i:04d}", "name": f"sensor {i}",
                       "observed_property": "NO2", "owner": "bench", "format": "flat"}}
        for i in range(n_sensors)]
    (cat / "sensors" / "sensors.geojson").write_text(json.dumps(
        {"type": "FeatureCollection", "features": sensors}))
    dx, dy = (BOX[2] - BOX[0]) / 10, (BOX[3] - BOX[1]) / 10
    cells = [{"type": "Feature", "properties": {"name": f"district {r}-{c}"}, "geometry": {
        "type": "Polygon", "coordinates": [[
            [BOX[0] + c * dx, BOX[1] + r * dy], [BOX[0] + (c + 1) * dx, BOX[1] + r * dy],
            [BOX[0] + (c + 1) * dx, BOX[1] + (r + 1) * dy],
            [BOX[0] + c * dx, BOX[1] + (r + 1) * dy], [BOX[0] + c * dx, BOX[1] + r * dy]]]}}
        for r in range(10) for c in range(10)]
    (cat / "districts").mkdir()
    (cat / "districts" / "districts.geojson").write_text(json.dumps(
        {"type": "FeatureCollection", "features": cells}))
    (cat / "districts" / "collection.yml").write_text(
        "title: Districts (benchmark)\ndescription: a 10 x 10 grid\nlicense: {name: CC0}\n"
        "owner: {name: bench}\nsynthetic: true\nsources: [{path: districts.geojson}]\n"
        "title_field: name\n")


def load(url: str, n_sensors: int, n_obs: int) -> float:
    """N observations straight into the store's table (the ingest path is benchmarked in
    sensors.py); seconds taken."""
    from oup.sensors.observations import Observation
    from oup.store import open_observation_store

    store = open_observation_store(url)
    # one reading through the store: it makes what the table needs (a month's partition)
    store.write_batch("bench", [[Observation("s0000", T0, 1.0, T0)]])
    per = n_obs // n_sensors
    rows = ((f"s{i:04d}", T0 + m * 60_000_000, (i * 7 + m) % 90 + 0.5, 0)
            for m in range(1, per + 1) for i in range(n_sensors))
    started = time.perf_counter()
    if url.startswith("gpkg://"):
        con = store.con
        con.execute("BEGIN")
        con.executemany("INSERT INTO oup_observations (sensor_id, phenomenon_time, result, "
                        "stored_at) VALUES (?,?,?,?)", rows)
        con.execute("COMMIT")
        con.execute("ANALYZE")
    else:
        import psycopg

        with psycopg.connect(url) as con, con.cursor() as cur:
            with cur.copy("COPY oup_observations (sensor_id, phenomenon_time, result, "
                          "stored_at) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute("ANALYZE oup_observations")
    store.close()
    return time.perf_counter() - started


def raw_ceiling(url: str, n_sensors: int) -> tuple[float, float]:
    """The week's observations summed per sensor, one SQL statement as the store runs
    it (each sensor named); (seconds, CPU seconds of this process: all of it for the
    GeoPackage, whose SQLite runs here)."""
    from oup.store import open_store

    store = open_store(url)
    ids = [f"s{i:04d}" for i in range(n_sensors)]
    started, cpu = time.perf_counter(), time.process_time()
    store.execute(f"SELECT sensor_id, COUNT(result), SUM(result), MIN(result), MAX(result) "
                  f"FROM oup_observations WHERE sensor_id IN ({','.join('?' * len(ids))}) "
                  f"AND phenomenon_time >= ? AND phenomenon_time <= ? GROUP BY sensor_id",
                  ids + [T0, T0 + 7 * 86_400_000_000])
    return time.perf_counter() - started, time.process_time() - cpu


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process (all its threads) so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pg_cpu(work: Path):
    """CPU seconds so far of the benchmark's PostgreSQL cluster (all its processes)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from features import tree_cpu_seconds

    postmaster = int((work / "pg" / "data" / "postmaster.pid").read_text().split()[0])

    def reaped() -> float:  # processes that have ended (parallel workers), as counted
        fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")

    return lambda: tree_cpu_seconds(postmaster) + reaped()


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def execute(url: str, key: str, statistics_: list[str], respond_async=False):
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    if respond_async:
        headers["Prefer"] = "respond-async"
    return requests.post(f"{url}/processes/area-statistics/execution", headers=headers,
                         json={"inputs": {"collection": "observations", "areas": "districts",
                                          "property": "NO2", "statistics": statistics_,
                                          "datetime": WEEK}}, timeout=600)


def keep_busy(url: str, key: str, stop, queue: str | None) -> None:
    """A client that keeps a job running on the worker until ``stop`` is set: through
    the API's synchronous execute, as a caller would, or (``queue``: the jobs database)
    straight into the queue, waiting on the jobs table itself, so that the API does
    nothing for the jobs and what is left is the worker's own cost."""
    if queue is None:
        while not stop.is_set():
            r = execute(url, key, ["count", "mean", "p90"])
            # answered as asynchronous (the server's threads that wait are taken): wait
            # for the job as a client of the job's status would
            for _ in range(1200 if r.status_code == 201 else 0):
                if requests.get(r.headers["Location"], headers={"X-API-Key": key},
                                timeout=60).json()["status"] in ("successful", "failed"):
                    break
                time.sleep(0.5)
        return
    from oup.processes.jobs import Jobs

    jobs = Jobs(queue, 3600, 30, 1, 600)
    J = jobs.Job
    model = J.select().where(J.process == "area-statistics").order_by(J.created.desc()).get()
    inputs = dict(json.loads(model.inputs), statistics=["count", "mean", "p90"])
    while not stop.is_set():
        job = jobs.submit(model.process, model.who, frozenset(json.loads(model.roles)),
                          inputs, "raw")
        for _ in range(6000):  # 600 s at most, as the execute's own timeout
            if jobs.get(job.id, model.who).done:
                break
            time.sleep(0.1)


def sched_seconds(pid: int, tree: bool = True) -> tuple[float, float]:
    """(CPU, waiting on a run queue) seconds so far of every thread of process ``pid``
    and, with ``tree``, of its descendants (Linux's schedstat): whether a request got
    slower because it had more to do, or because it waited for a core."""
    pids, todo = set(), [pid]
    while todo:
        p = todo.pop()
        pids.add(p)
        if tree:
            for task in Path(f"/proc/{p}/task").glob("*"):
                try:
                    todo += [int(c) for c in (task / "children").read_text().split()]
                except OSError:  # ended meanwhile
                    pass
    cpu = wait = 0
    for p in pids:
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                run, queued, _ = (task / "schedstat").read_text().split()
            except (OSError, ValueError):
                continue
            cpu, wait = cpu + int(run), wait + int(queued)
    return cpu / 1e9, wait / 1e9


def bbox_times(url: str, n: int, seed: int) -> list[float]:
    """Seconds each of ``n`` bbox requests took, one after the other (``seed``: which)."""
    rng, session, times = random.Random(seed), requests.Session(), []
    for _ in range(n):
        x, y = BOX[0] + rng.random() * 0.2, BOX[1] + rng.random() * 0.08
        started = time.perf_counter()
        r = session.get(f"{url}/collections/sensors/items", params={
            "bbox": f"{x},{y},{x + 0.02},{y + 0.02}", "limit": 100}, timeout=60)
        times.append(time.perf_counter() - started)
        assert r.status_code == 200
    return times


def p99_ms(times: list[float]) -> float:
    return sorted(times)[int(len(times) * 0.99)] * 1e3


class Tally:
    """Bbox requests of one condition: their times, and per request the server's CPU and
    run-queue wait (all its threads, whatever else they did meanwhile) and this client's
    run-queue wait."""

    def __init__(self):
        self.times, self.cpu, self.wait, self.client_wait = [], 0.0, 0.0, 0.0

    def add(self, url: str, server: int, n: int, seed: int) -> "Tally":
        before, mine = sched_seconds(server), sched_seconds(os.getpid(), tree=False)
        self.times += bbox_times(url, n, seed)
        after, mine_after = sched_seconds(server), sched_seconds(os.getpid(), tree=False)
        self.cpu += after[0] - before[0]
        self.wait += after[1] - before[1]
        self.client_wait += mine_after[1] - mine[1]
        return self

    def __str__(self) -> str:
        n = len(self.times) / 1e3
        return (f"p99 {p99_ms(self.times):.1f} ms (server CPU {self.cpu / n:.2f}, waiting "
                f"for a core {self.wait / n:.2f}, client waiting {self.client_wait / n:.2f} "
                f"ms a request)")


def job_keepers(url: str, key: str, queue: str | None):
    """Four clients keeping four jobs running, and the event that stops them."""
    stop = multiprocessing.Event()
    clients = [multiprocessing.Process(target=keep_busy, args=(url, key, stop, queue),
                                       daemon=True) for _ in range(4)]
    for c in clients:
        c.start()
    return stop, clients


def beside_jobs(url: str, key: str, server: int, n: int, rounds: int,
                queue: str | None) -> tuple[list[Tally], list[Tally]]:
    """Rounds of ``n`` bbox requests idle, then the same ``n`` while four clients keep
    four jobs running: the two conditions take turns, so that the machine's own drift
    falls on both alike. The four clients are processes of their own, so the timed
    client shares no interpreter (GIL) with them; a busy phase ends when their last
    jobs have."""
    idle, busy = [], []
    for r in range(rounds):
        idle.append(Tally().add(url, server, n, seed=r))
        stop, clients = job_keepers(url, key, queue)
        time.sleep(2)
        busy.append(Tally().add(url, server, n, seed=r))
        stop.set()
        for c in clients:
            c.join(timeout=600)
        print(f"  round {r + 1}: idle {idle[-1]}; beside 4 jobs {busy[-1]}; "
              f"{100 * (p99_ms(busy[-1].times) / p99_ms(idle[-1].times) - 1):+.0f} %; "
              f"load average {load_average()}", flush=True)
    return idle, busy


def paused_in_turns(url: str, key: str, server: int, jobs_side, n: int, block: int,
                    queue: str | None) -> tuple[Tally, Tally]:
    """``n`` bbox requests each way while four jobs keep running, their processes
    (``jobs_side()``: the worker, and on PostGIS the jobs' backends) stopped (SIGSTOP)
    and continued in turns every ``block`` requests: the machine's drift, a fraction
    of a second, falls on both alike. Whatever the API itself does for the jobs goes
    on in both; what differs is the jobs' own work."""
    import signal

    paused, running = Tally(), Tally()
    stop, clients = job_keepers(url, key, queue)
    time.sleep(2)
    try:
        for b in range(2 * (n // block)):
            pause = b % 2 == 0
            for pid in jobs_side():
                os.kill(pid, signal.SIGSTOP if pause else signal.SIGCONT)
            (paused if pause else running).add(url, server, block, seed=b)
    finally:
        for pid in jobs_side():
            os.kill(pid, signal.SIGCONT)
        stop.set()
        for c in clients:
            c.join(timeout=600)
    return paused, running


def backends_at_nice(postmaster: int) -> list[int]:
    """The PostgreSQL backends running at a lowered priority: the jobs' (job_sessions)."""
    out = []
    for c in Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split():
        try:
            if int(Path(f"/proc/{c}/stat").read_text().rsplit(")", 1)[1].split()[16]) > 0:
                out.append(int(c))
        except OSError:  # ended meanwhile
            pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", choices=("gpkg", "postgis"), default="gpkg")
    ap.add_argument("--observations", type=int, default=10_000_000)
    ap.add_argument("--sensors", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=1000,
                    help="bbox requests a round, each way (0: no latency part)")
    ap.add_argument("--rounds", type=int, default=4,
                    help="rounds of idle, then beside jobs, taking turns")
    ap.add_argument("--alternate", type=int, default=0, metavar="BLOCK",
                    help="instead of rounds: the jobs run throughout, their processes "
                         "stopped and continued in turns every BLOCK requests")
    ap.add_argument("--clients", choices=("execute", "queue"), default="execute",
                    help="how the job-keeping clients start their jobs: the API's "
                         "synchronous execute, or straight into the jobs queue")
    ap.add_argument("--idle-class", action="store_true", help="the worker's jobs in the "
                    "idle scheduling class (OUP_WORKER_IDLE_CLASS)")
    ap.add_argument("--job-cpus", metavar="LIST", help="the cores the jobs run on "
                    "(OUP_WORKER_CPUS, e.g. 1: the API keeps core 0 to itself)")
    ap.add_argument("--work", type=Path, help="keep the data here (default: a temporary "
                                               "folder, removed at the end)")
    ap.add_argument("--reuse", action="store_true",
                    help="use the data loaded into --work by an earlier run")
    args = ap.parse_args()
    if args.work:
        work = args.work / f"{args.store}-{args.sensors}-{args.observations}"
        work.mkdir(parents=True, exist_ok=True)
        loaded = work / "loaded"
        reuse = args.reuse and loaded.exists()
    else:
        work = Path(tempfile.mkdtemp(prefix="oup-bench-processes-"))
        loaded, reuse = None, False
    work.chmod(0o755)  # the postgres user reaches its cluster through it
    if not reuse:
        shutil.rmtree(work / "catalogue", ignore_errors=True)
        shutil.rmtree(work / "data", ignore_errors=True)
        catalogue(work / "catalogue", args.sensors)
    # the subprocesses run the OUP beside this script, whatever the working folder
    env = dict(os.environ, OUP_DATA_DIR=str(work / "data"), OUP_CATALOG_DIR=str(
        work / "catalogue"), OUP_LOG_LEVEL="WARNING", OUP_JOBS_SYNC_SECONDS="600",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.pop("OUP_DATABASE_URL", None)
    pg = None
    if args.store == "postgis":
        from oup.store.localdb import LocalPostGIS

        pg = LocalPostGIS(work / "pg", free_port()).start(keep=reuse)
        env["OUP_DATABASE_URL"] = pg.url("oup") if reuse else pg.create("oup")
    store_url = env.get("OUP_DATABASE_URL") or f"gpkg://{work / 'data' / 'oup.gpkg'}"
    procs = []
    try:
        print(f"machine: {os.cpu_count()} CPUs; store: {args.store}; {args.sensors:,} "
              f"sensors, {args.observations:,} observations, 100 districts"
              + ("; the jobs in the idle scheduling class" if args.idle_class else "")
              + (f"; the jobs on cores {args.job_cpus}" if args.job_cpus else ""))
        if reuse:
            print(f"  the data loaded before in {work}")
            # what `oup serve` does first: a store of an earlier version is brought up
            # to date (the GeoPackage's sums per hour made from its observations)
            from oup.store import open_observation_store

            started = time.perf_counter()
            open_observation_store(store_url).close()
            print(f"  store opened (brought up to date) in {time.perf_counter() - started:.1f} s")
        else:
            oup(env, "import", "--quiet")
            print(f"  loaded in {load(store_url, args.sensors, args.observations):.0f} s")
            if loaded is not None:
                loaded.touch()
        key_name = f"bench-{os.getpid()}"  # (a reused folder has the keys of earlier runs)
        key = oup(env, "keys", "add", key_name, "--role", "planner").stdout.strip()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = open(work / "server.log", "w")
        procs.append(subprocess.Popen([sys.executable, "-m", "oup.cli", "serve", "--port",
                                       str(port)], env=env, stdout=log, stderr=log))
        scheduled = dict(env, OUP_WORKER_IDLE_CLASS=str(args.idle_class).lower(),
                         OUP_WORKER_CPUS=args.job_cpus or "")
        procs.append(subprocess.Popen([sys.executable, "-m", "oup.cli", "worker", "--threads",
                                       "4"], env=scheduled, stdout=log, stderr=log))
        for _ in range(600):
            try:
                if requests.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # not up yet
                pass
            time.sleep(0.3)
        execute(url, key, ["count"])  # warm: the worker's first job loads what it needs
        ceiling, ceiling_cpu = min(raw_ceiling(store_url, args.sensors) for _ in range(3))
        worker = procs[1].pid
        # PostgreSQL's share: the CPU of the cluster's processes (its backends run the
        # jobs' statements), from /proc
        cluster = pg_cpu(work) if pg is not None else (lambda: 0.0)
        for wanted in (["count", "mean", "max"], ["count", "mean", "max", "p90"]):
            runs, cpus, pg_cpus = [], [], []
            for _ in range(3):
                started, cpu, in_pg = time.perf_counter(), cpu_seconds(worker), cluster()
                r = execute(url, key, wanted)
                runs.append(time.perf_counter() - started)
                cpus.append(cpu_seconds(worker) - cpu)
                pg_cpus.append(cluster() - in_pg)
                assert r.status_code == 200, r.text[:500]
            total = sum(f["properties"]["count"] or 0 for f in r.json()["features"])
            best = min(runs)
            # the wall clock of a shared machine says little: the worker's CPU time is
            # the job's own work (all of it for the GeoPackage, whose SQLite runs there)
            print(f"area-statistics {'+'.join(wanted)}: {best:.2f} s (median "
                  f"{statistics.median(runs):.2f} s; worker CPU {min(cpus):.2f} s"
                  f"{f', PostgreSQL CPU {min(pg_cpus):.2f} s' if pg is not None else ''}; "
                  f"{total:,} observations counted) - x{best / ceiling:.1f} the raw SQL "
                  f"aggregate ({ceiling:.2f} s, CPU here {ceiling_cpu:.2f} s); load "
                  f"average {load_average()}")
        if not args.requests:  # (--requests 0: the jobs alone)
            return
        queue = None
        if args.clients == "queue":
            from oup.settings import Settings

            queue = Settings(data_dir=work / "data", catalog_dir=work / "catalogue",
                             database_url=env.get("OUP_DATABASE_URL")).jobs_database
        if args.alternate:
            postmaster = pg and int((work / "pg" / "data" / "postmaster.pid").read_text()
                                    .split()[0])
            paused, running = paused_in_turns(
                url, key, procs[0].pid, lambda: [worker] + (backends_at_nice(postmaster)
                                                           if pg else []),
                args.requests, args.alternate, queue)
            print(f"jobs paused: {paused}\njobs running: {running}\n"
                  f"{100 * (p99_ms(running.times) / p99_ms(paused.times) - 1):+.0f} %; "
                  f"blocks of {args.alternate} requests in turns; load average "
                  f"{load_average()}")
            return
        idle, busy = beside_jobs(url, key, procs[0].pid, args.requests, args.rounds, queue)
        whole_idle = p99_ms(sum((r.times for r in idle), []))
        whole_busy = p99_ms(sum((r.times for r in busy), []))
        print(f"bbox p99 idle {whole_idle:.1f} ms, with 4 jobs running {whole_busy:.1f} ms: "
              f"{100 * (whole_busy / whole_idle - 1):+.0f} % (budget +20 %); "
              f"{args.rounds} rounds of {args.requests} requests each way, taking turns; "
              f"a round's p99 idle / busy: "
              + ", ".join(f"{p99_ms(i.times):.1f} / {p99_ms(b.times):.1f}"
                          for i, b in zip(idle, busy)))
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=60)
        if pg is not None:
            pg.stop()
        if loaded is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
