"""PostgreSQL sessions of ``oup worker``: the jobs' statements give way to the API's.

A job's statement may read millions of rows; the API's are short and a person waits for
them. On the jobs' connections PostgreSQL plans no parallel workers (a job's scan would
otherwise take every core), stops a statement that runs longer than a job may
(``OUP_JOBS_TIMEOUT_SECONDS``), and, where the database runs on this machine and the
worker may (root, or CAP_SYS_NICE), the backend process serving the connection is
scheduled as the jobs' threads are: low priority, the jobs' cores (``oup.job_cpu``).
Elsewhere that last part is the operator's: jobs against a replica, or a PostgreSQL of
their own (docs: operations).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from oup.job_cpu import JobCPU

LOG = logging.getLogger("oup.worker")
_LOCAL = {"", "localhost", "127.0.0.1", "::1"}


def job_session(url: str, timeout_s: float, cpu: JobCPU) -> Callable:
    """What each new connection of the jobs runs first (psycopg_pool's ``configure``)."""
    local = (urlsplit(url).hostname or "") in _LOCAL
    warned: list[bool] = []

    def configure(con) -> None:
        con.execute("SET max_parallel_workers_per_gather = 0")
        con.execute(f"SET statement_timeout = {max(1, int(timeout_s * 1000))}")
        if cpu and local:
            pid = con.execute("SELECT pg_backend_pid()").fetchone()[0]
            reason = _schedule(pid, cpu)
            if reason and not warned:
                warned.append(True)
                LOG.warning("the jobs' PostgreSQL backends take the CPU from the API's "
                            "(%s): beside the API, give the jobs a replica", reason)

    return configure


def _schedule(pid: int, cpu: JobCPU) -> str | None:
    """Schedule PostgreSQL backend ``pid`` of this machine as the jobs' threads; why
    not all of it, if not."""
    try:  # the same number in another PID namespace (a container) is another process
        if Path(f"/proc/{pid}/comm").read_text().strip() not in ("postgres", "postmaster"):
            return f"process {pid} is not a PostgreSQL backend here"
    except OSError as exc:
        return str(exc)
    return cpu.apply(pid)
