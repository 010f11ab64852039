"""Request counters in the Prometheus text format (per worker process)."""
from __future__ import annotations

import os
import threading
from collections import defaultdict

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests = defaultdict(int)  # (route, status) -> count
        self.buckets = defaultdict(lambda: [0] * (len(_BUCKETS) + 1))
        self.sums = defaultdict(float)

    def observe(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, status)] += 1
            b = self.buckets[route]
            for i, edge in enumerate(_BUCKETS):
                if seconds <= edge:
                    b[i] += 1
            b[-1] += 1
            self.sums[route] += seconds

    def render(self) -> str:
        pid = os.getpid()
        lines = ["# HELP oup_http_requests_total HTTP requests answered, by route and status",
                 "# TYPE oup_http_requests_total counter"]
        with self._lock:
            for (route, status), n in sorted(self.requests.items()):
                lines.append(f'oup_http_requests_total{{route="{route}",status="{status}",'
                             f'worker="{pid}"}} {n}')
            lines += ["# HELP oup_http_request_seconds time to answer, by route",
                      "# TYPE oup_http_request_seconds histogram"]
            for route, b in sorted(self.buckets.items()):
                for edge, n in zip(_BUCKETS, b):
                    lines.append(f'oup_http_request_seconds_bucket{{route="{route}",le="{edge}",'
                                 f'worker="{pid}"}} {n}')
                lines.append(f'oup_http_request_seconds_bucket{{route="{route}",le="+Inf",'
                             f'worker="{pid}"}} {b[-1]}')
                lines.append(f'oup_http_request_seconds_sum{{route="{route}",worker="{pid}"}} '
                             f'{self.sums[route]:.6f}')
                lines.append(f'oup_http_request_seconds_count{{route="{route}",worker="{pid}"}} '
                             f'{b[-1]}')
        return "\n".join(lines) + "\n"
