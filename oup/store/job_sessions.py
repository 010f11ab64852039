"""PostgreSQL sessions of ``oup worker``: the jobs' statements give way to the API's.

A job's statement may read millions of rows; the API's are short and a person waits for
them. On the jobs' connections PostgreSQL plans no parallel workers (a job's scan would
otherwise take every core), stops a statement that runs longer than a job may
(``OUP_JOBS_TIMEOUT_SECONDS``), and, where the database runs on this machine and the
worker may (root, or CAP_SYS_NICE), the backend process serving the connection runs at
the worker's low CPU priority (``OUP_WORKER_NICE``, and ``OUP_WORKER_IDLE_CLASS``).
Elsewhere that last part is the operator's: jobs against a replica, or a PostgreSQL of
their own (docs: operations).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

LOG = logging.getLogger("oup.worker")
_LOCAL = {"", "localhost", "127.0.0.1", "::1"}


def job_session(url: str, timeout_s: float, nice: int, idle: bool = False) -> Callable:
    """What each new connection of the jobs runs first (psycopg_pool's ``configure``)."""
    local = (urlsplit(url).hostname or "") in _LOCAL
    warned: list[bool] = []

    def configure(con) -> None:
        con.execute("SET max_parallel_workers_per_gather = 0")
        con.execute(f"SET statement_timeout = {max(1, int(timeout_s * 1000))}")
        if (nice or idle) and local:
            pid = con.execute("SELECT pg_backend_pid()").fetchone()[0]
            reason = _renice(pid, nice, idle)
            if reason and not warned:
                warned.append(True)
                LOG.warning("the jobs' PostgreSQL backends run at normal priority (%s): "
                            "beside the API, give the jobs a replica", reason)

    return configure


def _renice(pid: int, nice: int, idle: bool = False) -> str | None:
    """Lower the priority of PostgreSQL backend ``pid`` of this machine (to ``nice``,
    and into the idle scheduling class if ``idle``); why not, if not."""
    try:  # the same number in another PID namespace (a container) is another process
        if Path(f"/proc/{pid}/comm").read_text().strip() not in ("postgres", "postmaster"):
            return f"process {pid} is not a PostgreSQL backend here"
        os.setpriority(os.PRIO_PROCESS, pid, max(nice, os.getpriority(os.PRIO_PROCESS, pid)))
        if idle:
            os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
    except PermissionError:
        return "this user may not lower another user's process"
    except OSError as exc:
        return str(exc)
    return None
