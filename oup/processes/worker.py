"""``oup worker``: runs the jobs, beside (not inside) the API workers. Start as many as
the load needs, on as many machines as share the database: each takes one job at a time
per thread from the queue (``jobs``).

A job runs as its caller: the collections it reads are those the caller may see (their
roles when they asked), and the owner rules of editable collections apply. A job that
raises fails with the reason; every run is audited (who, process, job, outcome).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass

from oup.errors import OUPError
from oup.job_cpu import JobCPU
from oup.processes import Context, Process, load_processes
from oup.processes.jobs import JobDismissed, Jobs
from oup.settings import Settings

LOG = logging.getLogger("oup.worker")


class Gated:
    """The store as the jobs of one worker read it: ``n`` of their statements at a time.
    Jobs wait on the store, so four running jobs take about a core, not every one; the
    API's statements (other processes) never wait here."""

    GATED = frozenset({"execute", "query"})  # the ways a job reads

    def __init__(self, store, n: int):
        self._store, self._gate = store, threading.BoundedSemaphore(n)

    def __getattr__(self, name: str):
        value = getattr(self._store, name)
        if name not in self.GATED:
            return value

        def gated(*args, **kwargs):
            with self._gate:
                return value(*args, **kwargs)

        return gated


def open_jobs(s: Settings) -> Jobs:
    return Jobs(s.jobs_database, s.jobs_retention_hours * 3600, s.jobs_stale_seconds,
                s.jobs_attempts, s.jobs_timeout_seconds)


@dataclass
class Worker:
    jobs: Jobs
    processes: dict[str, Process]
    catalog: object
    store: object
    audit: object
    threads: int = 1  # a job's own threads (OUP_JOB_THREADS)
    cpu: JobCPU = JobCPU()  # how the jobs' threads are scheduled (oup.job_cpu)
    name: str = f"{socket.gethostname()}:{os.getpid()}"
    _warned: bool = False  # that the jobs' threads are not scheduled as asked

    def run_job(self, job_id: str) -> None:
        from oup.security import Identity, visible_collections

        job = self.jobs.claim(job_id, self.name)
        if job is None:  # dismissed while queued, or another worker has it
            return
        if self.cpu:  # this thread, and the threads the job starts from it
            self._schedule()
        identity = Identity(job.who, job.roles, True)
        context = Context(identity, self.catalog, self.store,
                          frozenset(visible_collections(identity, self.catalog)),
                          lambda pct, msg: self.jobs.report(job_id, pct, msg), self.threads)
        process = self.processes.get(job.process)
        try:
            if process is None:
                raise LookupError(f"the process {job.process!r} is no longer offered")
            value = process.module.execute(process.check(job.inputs, context), context)
        except JobDismissed:
            self._audit(job, "dismissed")
            return
        except (OUPError, LookupError, TimeoutError) as exc:  # an answer for the caller
            self.jobs.fail(job_id, getattr(exc, "detail", None) or str(exc))
            self._audit(job, "failed")
            return
        except Exception as exc:  # a fault of the process: the reason, and the log
            LOG.exception("job %s (%s) failed", job_id, job.process)
            self.jobs.fail(job_id, f"the process failed ({type(exc).__name__}); "
                                   "it has been logged")
            self._audit(job, "failed")
            return
        self._audit(job, "successful" if self.jobs.finish(job_id, value) else "dismissed")

    def _schedule(self) -> None:
        reason = self.cpu.apply()
        if reason and not self._warned:
            self._warned = True
            LOG.warning("the jobs' threads are not scheduled as OUP_WORKER_* ask (%s): "
                        "they take more of the CPU from the API", reason)

    def _audit(self, job, outcome: str) -> None:
        names = {v for k, v in job.inputs.items() if k in ("collection", "areas")}
        self.audit.write(job.who, ",".join(sorted(map(str, names))) or "-",
                         f"job {job.process}", outcome, job.id, attempt=job.attempts)

    def housekeeping(self, stop: threading.Event) -> None:
        """The heartbeat of this worker's jobs; jobs of stopped workers taken back;
        expired results dropped."""
        every = max(0.2, self.jobs.stale_s / 3)
        while not stop.wait(every):
            try:
                self.jobs.beat(self.name)
                for job_id, fate in self.jobs.reap():
                    LOG.warning("job %s: its worker stopped; %s", job_id, fate)
                self.jobs.expire()
            except Exception:  # the database away for a moment: beat again next time
                LOG.exception("jobs housekeeping")


def run_worker(s: Settings, threads: int) -> None:
    """Run jobs until SIGINT or SIGTERM (then the running ones finish first)."""
    from oup.catalog import load_catalog
    from oup.security import AuditLog
    from oup.store import open_job_store

    logging.basicConfig(level=s.log_level)
    if s.worker_nice and hasattr(os, "nice"):  # a job waits; a map in a browser should not
        os.nice(s.worker_nice)
    jobs, cpu = open_jobs(s), s.job_cpu
    store = Gated(open_job_store(s.store_url, s.jobs_timeout_seconds, cpu),
                  s.worker_statements)
    worker = Worker(jobs, load_processes(s.processes_file), load_catalog(s.catalog_dir),
                    store, AuditLog(s.audit_log or s.data_dir / "audit.log"), s.job_threads,
                    cpu)
    jobs.runner = worker.run_job
    stop = threading.Event()
    keeper = threading.Thread(target=worker.housekeeping, args=(stop,), daemon=True,
                              name="oup-jobs-housekeeping")
    keeper.start()
    consumer = jobs.huey.create_consumer(workers=threads, worker_type="thread",
                                         periodic=False, initial_delay=0.05, backoff=1.5,
                                         max_delay=0.5)
    try:
        consumer.run()
    finally:
        stop.set()
