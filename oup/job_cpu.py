"""Where and how the work of ``oup worker``'s jobs runs beside the API's (Linux).

Three settings, each for a worker on the API's machine:

- ``OUP_WORKER_NICE``: the jobs come after the API. A request still waits for a job's
  thread to give up its core (about 1 ms more a request beside 4 jobs on 2 cores).
- ``OUP_WORKER_IDLE_CLASS``: the jobs take a core only when nothing else wants it.
  Linux's idle scheduling class (``SCHED_IDLE``) orders the threads of one scheduling
  group, but the kernel shares the CPU between groups first: between sessions'
  autogroups (``kernel.sched_autogroup_enabled``) and between cgroups (a systemd service
  each). A job's PostgreSQL backend is in the database server's group and the API in
  another, so in the idle class alone the backend still takes its group's share from the
  API. A cgroup whose ``cpu.idle`` is 1 is itself idle beside the other groups. Measured
  on 2 cores: a probe in another session waited 0.6-0.7 ms a wakeup beside two
  idle-class loops, 0.01 ms with the loops in such a group (benchmarks/LOG.md,
  2026-12-06 21:40). So the jobs' threads and backends also go into the group
  ``oup-jobs``, where cgroup v1's cpu controller is mounted and the worker may (root).
  (cgroup v2 is not handled: there a thread moves with its process, and the worker's
  heartbeat thread must keep its share.)
- ``OUP_WORKER_CPUS``: the cores the jobs may use. A job that gives way at once still
  leaves the core it ran on with cold caches: with the jobs on one core of two, the API's
  p99 beside 4 jobs grew +6 %, +30 % and +17 % in three PostGIS runs, +8 % on the
  GeoPackage, against +28 % with the idle class and group alone.

A thread the job starts inherits all three from the thread that starts it.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

GROUP = "oup-jobs"


@dataclass(frozen=True)
class JobCPU:
    nice: int = 0
    idle: bool = False
    cpus: frozenset[int] | None = None  # None: every core

    def __bool__(self) -> bool:  # anything to set at all
        return bool(self.nice or self.idle or self.cpus)

    def apply(self, tid: int = 0) -> str | None:
        """Schedule thread ``tid`` so (0: the calling thread; a single-threaded process
        such as a PostgreSQL backend: its pid). Returns why not all of it, if not."""
        try:
            if self.nice:  # (Linux: a thread's own nice; never raised back)
                os.setpriority(os.PRIO_PROCESS, tid,
                               max(self.nice, os.getpriority(os.PRIO_PROCESS, tid)))
            if self.cpus:
                os.sched_setaffinity(tid, self.cpus)
            if self.idle:
                os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
                return _join_idle_group(tid or threading.get_native_id())
        except PermissionError:
            return "this user may not lower another user's process"
        except OSError as exc:
            return str(exc)
        return None


def cpu_list(text: str) -> frozenset[int]:
    """The cores of a Linux CPU list such as ``1-3,5``; ``ValueError`` naming what is
    wrong, or which cores this machine lacks."""
    cpus: set[int] = set()
    for part in text.replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if not first.isdigit() or not (last or first).isdigit() or int(last or first) < int(first):
            raise ValueError(f"{part!r} is not a core or a range of cores (as in 1-3,5)")
        cpus.update(range(int(first), int(last or first) + 1))
    usable = os.sched_getaffinity(0)
    if cpus - usable:
        raise ValueError(f"this machine has no core {sorted(cpus - usable)} for this "
                         f"process (it has {sorted(usable)})")
    return frozenset(cpus)


def _join_idle_group(tid: int) -> str | None:
    group = idle_group()
    if isinstance(group, str):
        return group
    try:  # (v1: "tasks" moves the one thread)
        (group / "tasks").write_text(str(tid))
    except OSError as exc:
        return f"{group}: {exc.strerror or exc}"
    return None


@cache
def idle_group() -> Path | str:
    """The idle CPU group, made on first use; or why there is none."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, where, kind, options, *_ = line.split()
        if kind == "cgroup" and "cpu" in options.split(","):
            group = Path(where) / GROUP
            try:
                group.mkdir(exist_ok=True)
                (group / "cpu.idle").write_text("1")
            except OSError as exc:  # not root, or a kernel before 5.15 (no cpu.idle)
                return f"{group}: {exc.strerror or exc}"
            return group
    return "no cpu controller of cgroup v1 is mounted"
