"""Request counters in the Prometheus text format, summed over all worker processes.

Each worker keeps its own counters and leaves a snapshot in a shared folder after every
request (a small atomic file write); /metrics adds up the snapshots of every worker, so
whichever worker answers, the totals are the service's. The folder is the server's: one
per run of the gunicorn master (its pid and start time), and a new run removes the
folders of runs that have ended.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
from collections import defaultdict
from pathlib import Path

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def process_run(pid: int) -> str | None:
    """``<pid>-<start time>``: names one run of a process (a pid alone is reused, and in a
    container every start has the same pid); None if no such process runs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)  # no /proc (not Linux): the pid alone
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return str(pid)
    return f"{pid}-{stat.rsplit(')', 1)[1].split()[19]}"  # field 22: start time in ticks


def server_folder(root: Path, master_pid: int) -> Path:
    """This server's snapshot folder under ``root``; the folders of ended runs are removed."""
    mine = process_run(master_pid) or str(master_pid)
    if root.is_dir():
        for d in root.iterdir():
            pid = d.name.split("-", 1)[0]
            if d.name != mine and pid.isdigit() and process_run(int(pid)) != d.name:
                shutil.rmtree(d, ignore_errors=True)
    return root / mine


class Metrics:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.requests: dict[str, int] = defaultdict(int)  # "route|status" -> count
        self.buckets: dict[str, list] = defaultdict(lambda: [0] * (len(_BUCKETS) + 1))
        self.sums: dict[str, float] = defaultdict(float)

    def observe(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[f"{route}|{status}"] += 1
            b = self.buckets[route]
            for i, edge in enumerate(_BUCKETS):
                if seconds <= edge:
                    b[i] += 1
            b[-1] += 1
            self.sums[route] += seconds
            snapshot = json.dumps({"requests": self.requests, "buckets": self.buckets,
                                   "sums": self.sums})
            # under the lock: the threads of one worker share its snapshot file
            mine = self.folder / f"{os.getpid()}.json"
            tmp = mine.with_suffix(".tmp")
            try:
                tmp.write_text(snapshot)
                os.replace(tmp, mine)
            except OSError:  # counting must never fail a request; the next one retries
                pass

    def _totals(self):
        requests, buckets, sums = defaultdict(int), {}, defaultdict(float)
        for f in self.folder.glob("*.json"):
            try:
                snap = json.loads(f.read_text())
            except (OSError, ValueError):
                continue  # a worker writing right now: its next snapshot will count
            for key, n in snap["requests"].items():
                requests[key] += n
            for route, b in snap["buckets"].items():
                buckets[route] = [x + y for x, y in zip(buckets.get(route, [0] * len(b)), b)]
            for route, v in snap["sums"].items():
                sums[route] += v
        return requests, buckets, sums

    def render(self) -> str:
        requests, buckets, sums = self._totals()
        lines = ["# HELP oup_http_requests_total HTTP requests answered, by route and status",
                 "# TYPE oup_http_requests_total counter"]
        for key, n in sorted(requests.items()):
            route, status = key.rsplit("|", 1)
            lines.append(f'oup_http_requests_total{{route="{route}",status="{status}"}} {n}')
        lines += ["# HELP oup_http_request_seconds time to answer, by route",
                  "# TYPE oup_http_request_seconds histogram"]
        for route, b in sorted(buckets.items()):
            for edge, n in zip(_BUCKETS, b):
                lines.append(f'oup_http_request_seconds_bucket{{route="{route}",le="{edge}"}} {n}')
            lines.append(f'oup_http_request_seconds_bucket{{route="{route}",le="+Inf"}} {b[-1]}')
            lines.append(f'oup_http_request_seconds_sum{{route="{route}"}} {sums[route]:.6f}')
            lines.append(f'oup_http_request_seconds_count{{route="{route}"}} {b[-1]}')
        return "\n".join(lines) + "\n"
