"""Request counters in the Prometheus text format, summed over all worker processes.

Each worker keeps its counters in a memory-mapped file of its own in a shared folder
(counting a request is a few stores to memory, not a file write: that cost ~1 ms of CPU a
request); /metrics adds up the files of every worker, so whichever worker answers, the
totals are the service's. The folder is the server's: one
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


_STATUSES = range(100, 600)
# per route: a count per status, the histogram buckets (+Inf last), the sum of seconds
_STRIDE = len(_STATUSES) + len(_BUCKETS) + 2


class Metrics:
    """One worker's counters, by route (the URL rule) and status."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._index: dict[str, int] = {}
        self._counts = None

    def open(self, routes: list[str]) -> None:
        """Lay out this worker's file for ``routes`` (the app's URL rules; anything else
        counts as "(unmatched)"); the layout is written beside it, for the readers."""
        import mmap

        routes = sorted(set(routes) | {"(unmatched)"})
        self._index = {r: i * _STRIDE for i, r in enumerate(routes)}
        mine = self.folder / f"{os.getpid()}.counts"
        with open(mine, "wb") as fh:
            fh.truncate(len(routes) * _STRIDE * 8)
        with open(mine, "r+b") as fh:
            self._map = mmap.mmap(fh.fileno(), 0)
        self._counts = memoryview(self._map).cast("d")
        layout = self.folder / f"{os.getpid()}.json"
        tmp = layout.with_suffix(".tmp")
        tmp.write_text(json.dumps({"routes": routes}))
        os.replace(tmp, layout)

    def observe(self, route: str, status: int, seconds: float) -> None:
        c = self._counts
        if c is None:
            return
        base = self._index.get(route, self._index["(unmatched)"])
        bucket = next((i for i, edge in enumerate(_BUCKETS) if seconds <= edge), len(_BUCKETS))
        with self._lock:  # the threads of one worker share its counters
            if status in _STATUSES:
                c[base + status - 100] += 1
            at = base + len(_STATUSES)
            for i in range(bucket, len(_BUCKETS) + 1):  # cumulative, as Prometheus reads them
                c[at + i] += 1
            c[at + len(_BUCKETS) + 1] += seconds

    def _totals(self):
        import numpy as np

        requests, buckets, sums = defaultdict(int), {}, defaultdict(float)
        for layout in self.folder.glob("*.json"):
            try:
                routes = json.loads(layout.read_text())["routes"]
                counts = np.fromfile(layout.with_suffix(".counts"), dtype=np.float64)
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not a worker's layout (or one just starting)
            if len(counts) != len(routes) * _STRIDE:
                continue
            for i, route in enumerate(routes):
                row = counts[i * _STRIDE:(i + 1) * _STRIDE]
                for k in np.flatnonzero(row[:len(_STATUSES)]):
                    requests[f"{route}|{k + 100}"] += int(row[k])
                b = row[len(_STATUSES):len(_STATUSES) + len(_BUCKETS) + 1]
                if b[-1]:
                    buckets[route] = [x + int(y) for x, y in
                                      zip(buckets.get(route, [0] * len(b)), b)]
                    sums[route] += float(row[-1])
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
