"""The jobs: a queue (huey) and a table of ours that says how each job stands.

The queue holds what is still to run; huey keeps it in the database OUP already has:
an SQLite file beside the GeoPackage (one machine), or the PostgreSQL database of the
store, in a schema of its own (``FOR UPDATE SKIP LOCKED``: workers on many machines
take a job each). huey
forgets a task the moment a worker takes it, and keeps neither progress nor who asked,
so the table ``oup_jobs`` does: status, progress, the caller, inputs and results. A
worker marks the jobs it runs with a heartbeat; a job whose worker stopped beating
(killed, its machine gone) goes back to the queue, up to ``attempts`` runs, and then
fails with that reason: never lost, never running for ever.
"""
from __future__ import annotations

import contextlib
import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from oup.errors import NotFound, Unavailable

SCHEMA = "oup_jobs"  # PostgreSQL: where the queue and the jobs table are
SCHEMA_PATH = f"-c search_path={SCHEMA}"
STATUSES = ("accepted", "running", "successful", "failed", "dismissed")
DONE = ("successful", "failed", "dismissed")


def database(url: str):
    """The peewee database of ``url``: ``sqlite:///path`` or ``postgresql://...``."""
    import peewee

    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_ahead(path)
        return peewee.SqliteDatabase(path, timeout=10, pragmas={"busy_timeout": 10000})
    from playhouse.db_url import connect

    # a schema of their own: huey's tables (task, schedule, ...) beside the collections'
    # could take a collection's name
    return connect(url, prefer_psycopg3=True,  # psycopg 3 is the store's driver
                   options=SCHEMA_PATH)


def _write_ahead(path: Path) -> None:
    """The queue's file in WAL mode (the API's readers do not wait for a worker's write),
    switched once and kept by the file. Two server workers starting at once both switch
    it, and SQLite refuses a switch while another connection has the file open, at once,
    without waiting for the busy timeout: the second worker failed to start (seen in the
    suite). So it is tried again, for at most ten seconds."""
    import sqlite3

    for _ in range(100):
        try:
            with contextlib.closing(sqlite3.connect(path, timeout=10)) as con:
                if con.execute("PRAGMA journal_mode = wal").fetchone()[0] == "wal":
                    return
        except sqlite3.OperationalError:
            pass
        time.sleep(0.1)
    raise Unavailable(f"the jobs queue {path} cannot be put in WAL mode: it stays locked")


def _models(db):
    import peewee

    class Job(peewee.Model):
        id = peewee.CharField(primary_key=True, max_length=32)
        process = peewee.CharField()
        who = peewee.CharField(index=True)
        roles = peewee.TextField()  # JSON: the caller's roles when they asked
        inputs = peewee.TextField()  # JSON
        response = peewee.CharField(default="raw")  # raw or document (OGC: response)
        status = peewee.CharField(index=True, default="accepted")
        message = peewee.TextField(default="")
        progress = peewee.IntegerField(default=0)
        created = peewee.DoubleField()  # Unix seconds
        started = peewee.DoubleField(null=True)
        finished = peewee.DoubleField(null=True)
        updated = peewee.DoubleField()  # the worker's heartbeat while it runs
        attempts = peewee.IntegerField(default=0)
        worker = peewee.CharField(null=True)
        result = peewee.TextField(null=True)  # JSON: the value of the output

        class Meta:
            database = db
            table_name = "oup_jobs"

    return Job


def _created(db, make, tries: int = 5):
    """``make()`` (which creates tables if they are missing), again if another process
    created them at the same moment (PostgreSQL's CREATE TABLE IF NOT EXISTS is not
    safe against that)."""
    import peewee

    for attempt in range(tries):
        try:
            with db.connection_context():
                return make()
        except (peewee.IntegrityError, peewee.ProgrammingError):
            if attempt == tries - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


@dataclass(frozen=True)
class JobState:
    """A job as ``/jobs/{jobId}`` tells it."""

    id: str
    process: str
    who: str
    roles: frozenset[str]
    inputs: dict
    response: str
    status: str
    message: str
    progress: int
    created: float
    started: float | None
    finished: float | None
    updated: float
    attempts: int

    @property
    def done(self) -> bool:
        return self.status in DONE


def _state(row) -> JobState:
    return JobState(row.id, row.process, row.who, frozenset(json.loads(row.roles)),
                    json.loads(row.inputs), row.response, row.status, row.message,
                    row.progress, row.created, row.started, row.finished, row.updated,
                    row.attempts)


def iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


class JobDismissed(Exception):
    """The caller dismissed the job while it ran: stop."""


class Jobs:
    """The queue and the jobs table in the database at ``url``."""

    def __init__(self, url: str, retention_s: float, stale_s: float, attempts: int,
                 timeout_s: float):
        from huey.contrib.sql_huey import SqlHuey

        self.db = database(url)
        self.Job = _models(self.db)
        self.retention_s, self.stale_s = retention_s, stale_s
        self.attempts, self.timeout_s = attempts, timeout_s
        # huey's own results store stays off: the table above keeps what a job answers
        if not url.startswith("sqlite:"):
            _created(self.db, lambda: self.db.execute_sql(
                f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        self.huey = _created(self.db, lambda: SqlHuey("oup-jobs", database=self.db,
                                                      results=False, utc=True))
        _created(self.db, lambda: self.db.create_tables([self.Job], safe=True))
        self.runner: Callable[[str], None] | None = None  # the worker's (``oup worker``)
        self._task = self.huey.task(name="oup.job")(self._run)

    def _run(self, job_id: str) -> None:
        if self.runner is not None:
            self.runner(job_id)

    # -- the API's side ---------------------------------------------------------------
    def submit(self, process: str, who: str, roles: frozenset[str], inputs: dict,
               response: str) -> JobState:
        now = time.time()
        job = self.Job.create(id=uuid.uuid4().hex, process=process, who=who,
                              roles=json.dumps(sorted(roles)), inputs=json.dumps(inputs),
                              response=response, created=now, updated=now,
                              message="waiting for a worker")
        self._task(job.id)
        return _state(job)

    def get(self, job_id: str, who: str) -> JobState:
        """The caller's job (another's, or one past its retention: ``NotFound``)."""
        row = self.Job.get_or_none((self.Job.id == job_id) & (self.Job.who == who))
        if row is None or (row.finished is not None
                           and row.finished < time.time() - self.retention_s):
            raise NotFound(f"no job {job_id!r} (a job is seen by who started it, "
                           "until its results expire)")
        return _state(row)

    def of(self, who: str, limit: int, offset: int) -> list[JobState]:
        J = self.Job
        cutoff = time.time() - self.retention_s
        rows = J.select().where((J.who == who) & ((J.finished.is_null())
                                                  | (J.finished >= cutoff))) \
            .order_by(J.created.desc()).limit(limit).offset(offset)
        return [_state(r) for r in rows]

    def result(self, job_id: str, who: str):
        state = self.get(job_id, who)
        row = self.Job.get_by_id(job_id)
        return state, None if row.result is None else json.loads(row.result)

    def dismiss(self, job_id: str, who: str) -> JobState:
        """Dismissed: a queued job does not run, a running one stops at its next
        progress report, and the results of a finished one are dropped."""
        state = self.get(job_id, who)
        if state.status != "dismissed":
            J = self.Job
            J.update(status="dismissed", message="dismissed by the caller", result=None,
                     finished=state.finished or time.time(), updated=time.time()) \
                .where(J.id == job_id).execute()
        return self.get(job_id, who)

    # -- the worker's side ------------------------------------------------------------
    def claim(self, job_id: str, worker: str) -> JobState | None:
        """Marks the job running on ``worker``; None if it is not waiting (dismissed,
        or another worker took it)."""
        J, now = self.Job, time.time()
        n = J.update(status="running", worker=worker, started=now, updated=now,
                     attempts=J.attempts + 1, message="running", progress=0) \
            .where((J.id == job_id) & (J.status == "accepted")).execute()
        return _state(J.get_by_id(job_id)) if n else None

    def report(self, job_id: str, percent: int, message: str) -> None:
        """Progress; ``JobDismissed`` when the caller dismissed the job meanwhile, and
        a ``TimeoutError`` when it has run longer than allowed."""
        J, now = self.Job, time.time()
        n = J.update(progress=percent, message=message or "running", updated=now) \
            .where((J.id == job_id) & (J.status == "running")).execute()
        if not n:
            raise JobDismissed(job_id)
        started = J.get_by_id(job_id).started or now
        if now - started > self.timeout_s:
            raise TimeoutError(f"the job ran longer than {self.timeout_s:g} s")

    def finish(self, job_id: str, value) -> bool:
        J, now = self.Job, time.time()
        return bool(J.update(status="successful", progress=100, message="done",
                             result=json.dumps(value, separators=(",", ":")), finished=now,
                             updated=now)
                    .where((J.id == job_id) & (J.status == "running")).execute())

    def fail(self, job_id: str, reason: str) -> bool:
        J, now = self.Job, time.time()
        return bool(J.update(status="failed", message=reason, finished=now, updated=now)
                    .where((J.id == job_id) & (J.status == "running")).execute())

    def beat(self, worker: str) -> None:
        J = self.Job
        J.update(updated=time.time()).where((J.worker == worker)
                                            & (J.status == "running")).execute()

    def reap(self) -> list[tuple[str, str]]:
        """Jobs whose worker stopped beating: queued again, or failed after their last
        attempt; (job id, what became of it)."""
        J, now = self.Job, time.time()
        out = []
        stale = J.select(J.id, J.attempts, J.updated).where(
            (J.status == "running") & ((J.updated < now - self.stale_s)
                                       | (J.started < now - self.timeout_s - self.stale_s)))
        for row in stale:
            still = (J.id == row.id) & (J.status == "running") & (J.updated == row.updated)
            if row.attempts < self.attempts:
                if J.update(status="accepted", worker=None, updated=now,
                            message=f"its worker stopped (attempt {row.attempts}); "
                                    "queued again").where(still).execute():
                    self._task(row.id)
                    out.append((row.id, "queued again"))
            elif J.update(status="failed", finished=now, updated=now,
                          message=f"its worker stopped during attempt {row.attempts} of "
                                  f"{self.attempts}, or it ran too long").where(still).execute():
                out.append((row.id, "failed"))
        return out

    def expire(self) -> int:
        """Drops the jobs whose results are past their retention."""
        J = self.Job
        return J.delete().where(J.finished < time.time() - self.retention_s).execute()
