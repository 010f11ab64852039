"""The broker-restart test many times in a row, with CPU burners alongside.

    python benchmarks/broker_restart_loop.py [--runs 20] [--burners 2] [--store gpkg|postgis|both]

Each run is one pytest process running
``tests/test_ingest.py::test_broker_restart_mid_stream_loses_nothing`` (plain and shared
subscription, on the chosen store or both) while ``--burners`` processes spin on the CPU,
as a busy CI machine would. Every run prints pass or fail and its time; a failed run's
pytest folder (the Mosquitto log at ``log_type all``, the ingester's log, the keys it
missed) is kept and named. The loop stops at the first failure unless ``--keep-going``.
It is not part of ``make test``: 20 runs took 32 to 71 minutes on 2 cores (figures in
benchmarks/README.md).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/test_ingest.py::test_broker_restart_mid_stream_loses_nothing"


def burners(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def run_pytest(args: list[str], log: Path, timeout: float) -> int | str:
    """pytest in a process group of its own. Cut short (a timeout, or this script stopped),
    pytest gets SIGINT first: its teardown stops the Mosquitto, ingesters and PostgreSQL it
    started. Then the group gets SIGCONT (a frozen ingester), SIGTERM and SIGKILL."""
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(timeout)
        except BaseException as exc:
            for send, grace in ((lambda: proc.send_signal(signal.SIGINT), 120),
                                (lambda: [os.killpg(proc.pid, s) for s in
                                          (signal.SIGCONT, signal.SIGTERM)], 30),
                                (lambda: os.killpg(proc.pid, signal.SIGKILL), 10)):
                with contextlib.suppress(ProcessLookupError):
                    send()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(grace)
                    break
            if isinstance(exc, subprocess.TimeoutExpired):
                return "timeout"
            raise


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--burners", type=int, default=2)
    ap.add_argument("--store", choices=["gpkg", "postgis", "both"], default="both")
    ap.add_argument("--run-timeout", type=float, default=1200, help="seconds a run may take")
    ap.add_argument("--max-minutes", type=float, default=240, help="no new run after this")
    ap.add_argument("--keep-going", action="store_true", help="go on after a failure")
    ap.add_argument("--work", type=Path, help="folder for the runs (default: a new temp one)")
    a = ap.parse_args()

    work = a.work or Path(tempfile.mkdtemp(prefix="oup-restart-loop-"))
    work.mkdir(parents=True, exist_ok=True)
    select = [TEST] if a.store == "both" else [TEST, "-k", a.store]
    print(f"{a.runs} runs of {TEST} ({a.store}), {a.burners} CPU burners, "
          f"{os.cpu_count()} CPUs; runs in {work}", flush=True)
    # stopped with SIGTERM: unwind, so that the burners and the running pytest are ended
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    spinning = burners(a.burners)
    times, failed = [], []
    t_loop = time.monotonic()
    try:
        for n in range(1, a.runs + 1):
            if time.monotonic() - t_loop > a.max_minutes * 60:
                print(f"stopped after {a.max_minutes:.0f} min", flush=True)
                break
            base, log = work / f"run-{n:02d}", work / f"run-{n:02d}.log"
            t0 = time.monotonic()
            rc = run_pytest(["-q", "-p", "no:cacheprovider", "--basetemp", str(base), *select],
                            log, a.run_timeout)
            took = time.monotonic() - t0
            times.append(took)
            tail = log.read_text().strip().splitlines()[-1:] or [""]
            if rc == 0:
                shutil.rmtree(base, ignore_errors=True)
                print(f"run {n:2d}: pass  {took:6.1f} s  {tail[0]}", flush=True)
                continue
            failed.append(n)
            print(f"run {n:2d}: FAIL ({rc})  {took:6.1f} s  {tail[0]}\n"
                  f"        output {log}, folder {base} (Mosquitto: "
                  f"{', '.join(map(str, base.glob('**/mosquitto.log'))) or 'none'})", flush=True)
            if not a.keep_going:
                break
    finally:
        for p in spinning:
            p.kill()
            p.wait()
    runs = len(times)
    if times:
        print(f"{runs - len(failed)}/{runs} passed; per run min {min(times):.1f} s, median "
              f"{statistics.median(times):.1f} s, max {max(times):.1f} s; total "
              f"{(time.monotonic() - t_loop) / 60:.1f} min", flush=True)
    return 1 if failed or runs < a.runs else 0


if __name__ == "__main__":
    sys.exit(main())
