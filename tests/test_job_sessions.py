"""``oup worker``'s PostgreSQL sessions give way to the API's (``oup.store.job_sessions``)
and its jobs run one statement at a time (``oup.processes.worker.Gated``): on a real
PostgreSQL, watched from its own catalogue (``pg_stat_activity``, ``/proc``)."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import psycopg
import pytest

from conftest import cpu_group_of
from oup.job_cpu import GROUP, JobCPU, idle_group
from oup.processes.worker import Gated
from oup.store import open_job_store, open_store

SLEEP = "SELECT pg_sleep(0.4)"


@pytest.fixture(scope="module")
def url(postgis) -> str:
    return postgis.create("jobsessions")


def _nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_jobs_sessions_plan_no_parallel_workers_stop_long_statements_and_yield_the_cpu(url):
    api, jobs = open_store(url), open_job_store(url, timeout_s=0.5, cpu=JobCPU(nice=15))
    assert api.execute("SHOW max_parallel_workers_per_gather") != [("0",)]
    assert jobs.execute("SHOW max_parallel_workers_per_gather") == [("0",)]
    assert jobs.execute("SHOW statement_timeout") == [("500ms",)]
    with pytest.raises(TimeoutError, match="statement timeout"):
        jobs.execute("SELECT pg_sleep(2)")
    (pid,), = jobs.execute("SELECT pg_backend_pid()")
    (api_pid,), = api.execute("SELECT pg_backend_pid()")
    if os.geteuid() == 0:  # (another user's process: only root, or CAP_SYS_NICE, may)
        assert _nice(pid) == 15
    assert _nice(api_pid) == 0
    jobs.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="another user's process: only root (or "
                    "CAP_SYS_NICE) may set its scheduling class")
def test_jobs_sessions_in_the_idle_class_and_on_the_jobs_cores_when_the_worker_is(url):
    everywhere = os.sched_getaffinity(0)
    cores = frozenset({max(everywhere)})
    api = open_store(url)
    jobs = open_job_store(url, timeout_s=5, cpu=JobCPU(nice=10, idle=True, cpus=cores))
    (pid,), = jobs.execute("SELECT pg_backend_pid()")
    (api_pid,), = api.execute("SELECT pg_backend_pid()")
    assert os.sched_getscheduler(pid) == os.SCHED_IDLE and _nice(pid) == 10
    assert os.sched_getscheduler(api_pid) == os.SCHED_OTHER
    assert os.sched_getaffinity(pid) == cores and os.sched_getaffinity(api_pid) == everywhere
    # and out of the database server's CPU group, which the API's backends share: the
    # class alone orders a group's own threads only
    if not isinstance(idle_group(), str):  # (cgroup v1's cpu controller)
        assert cpu_group_of(pid) == f"/{GROUP}" and cpu_group_of(api_pid) != f"/{GROUP}"
    jobs.close()


@pytest.mark.parametrize("at_once", [1, 2])
def test_the_jobs_of_a_worker_run_so_many_statements_at_once(url, at_once):
    store = Gated(open_job_store(url, timeout_s=60), at_once)
    jobs = [threading.Thread(target=store.execute, args=(SLEEP,)) for _ in range(4)]
    most = 0
    with psycopg.connect(url, autocommit=True) as watcher:
        for job in jobs:
            job.start()
        deadline = time.monotonic() + 30
        while any(j.is_alive() for j in jobs) and time.monotonic() < deadline:
            (running,), = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = %s",
                (SLEEP,)).fetchall()
            most = max(most, running)
            time.sleep(0.02)
    for job in jobs:
        job.join(timeout=30)
    assert most == at_once
    store.close()


def test_the_jobs_cores_are_read_from_a_linux_cpu_list():
    from pydantic import ValidationError

    from oup.settings import Settings

    everywhere = os.sched_getaffinity(0)
    assert Settings(worker_cpus=f"0-{max(everywhere)}").job_cpu.cpus == everywhere
    assert Settings(worker_cpus="").job_cpu.cpus is None  # every core
    for wrong, says in (("3-1", "not a core or a range"), ("x", "not a core or a range"),
                        (str(max(everywhere) + 1), "has no core")):
        with pytest.raises(ValidationError, match=says) as error:
            Settings(worker_cpus=wrong)
        assert "worker_cpus" in str(error.value)
