"""The jobs table and the processes file, in-process on an SQLite queue (the slow tests,
tests/test_processes.py, run them with a real server and workers on both stores)."""
from __future__ import annotations

import time

import pytest

from oup.errors import NotFound
from oup.processes import InputError, ProcessError, load_processes
from oup.processes.jobs import JobDismissed, Jobs
from oup.settings import ROOT


def _jobs(tmp_path, **kw) -> Jobs:
    settings = dict(retention_s=3600, stale_s=0.2, attempts=2, timeout_s=60) | kw
    return Jobs(f"sqlite:///{tmp_path / 'jobs.sqlite'}", **settings)


def test_a_job_from_queued_to_done(tmp_path):
    jobs = _jobs(tmp_path)
    job = jobs.submit("area-statistics", "key:a", frozenset({"planner"}), {"x": 1}, "raw")
    assert (job.status, job.inputs, job.roles) == ("accepted", {"x": 1}, {"planner"})
    assert len(jobs.huey) == 1  # queued once
    assert jobs.claim(job.id, "w1").status == "running"
    assert jobs.claim(job.id, "w2") is None  # one worker only
    jobs.report(job.id, 40, "reading")
    assert (jobs.get(job.id, "key:a").progress, jobs.get(job.id, "key:a").message) == \
        (40, "reading")
    assert jobs.finish(job.id, {"type": "FeatureCollection", "features": []})
    state, value = jobs.result(job.id, "key:a")
    assert state.status == "successful" and value["features"] == []
    with pytest.raises(NotFound):
        jobs.get(job.id, "key:b")  # another caller's
    assert [j.id for j in jobs.of("key:a", 10, 0)] == [job.id] and not jobs.of("key:b", 10, 0)


def test_dismissed_jobs_do_not_run_and_stop_running(tmp_path):
    jobs = _jobs(tmp_path)
    queued = jobs.submit("p", "key:a", frozenset(), {}, "raw")
    jobs.dismiss(queued.id, "key:a")
    assert jobs.claim(queued.id, "w1") is None
    running = jobs.submit("p", "key:a", frozenset(), {}, "raw")
    jobs.claim(running.id, "w1")
    jobs.dismiss(running.id, "key:a")
    with pytest.raises(JobDismissed):
        jobs.report(running.id, 50, "")
    assert not jobs.finish(running.id, {})  # its late answer is not kept
    assert jobs.get(running.id, "key:a").status == "dismissed"


def test_a_stopped_workers_job_is_queued_again_then_fails(tmp_path):
    jobs = _jobs(tmp_path)
    job = jobs.submit("p", "key:a", frozenset(), {}, "raw")
    jobs.claim(job.id, "w1")
    assert jobs.reap() == []  # its worker beats
    time.sleep(0.3)
    assert jobs.reap() == [(job.id, "queued again")]
    assert jobs.get(job.id, "key:a").status == "accepted" and len(jobs.huey) == 2
    assert jobs.claim(job.id, "w2").attempts == 2
    jobs.beat("w2")
    assert jobs.reap() == []
    time.sleep(0.3)
    assert jobs.reap() == [(job.id, "failed")]
    failed = jobs.get(job.id, "key:a")
    assert failed.status == "failed" and "attempt 2 of 2" in failed.message


def test_results_go_after_their_retention(tmp_path):
    jobs = _jobs(tmp_path, retention_s=0.2)
    job = jobs.submit("p", "key:a", frozenset(), {}, "raw")
    jobs.claim(job.id, "w1")
    jobs.finish(job.id, {})
    assert jobs.get(job.id, "key:a").status == "successful"
    time.sleep(0.3)
    with pytest.raises(NotFound):
        jobs.get(job.id, "key:a")
    assert jobs.expire() == 1


def test_the_processes_file(tmp_path):
    offered = load_processes(ROOT / "config" / "processes.yml")
    assert {"area-statistics", "changes"} <= set(offered)
    assert offered["area-statistics"].roles == {"planner"}
    described = offered["changes"].description
    assert described["id"] == "changes" and "async-execute" in described["jobControlOptions"]
    bad = tmp_path / "processes.yml"
    bad.write_text("x:\n  module: oup.processes.nowhere\n  roles: [planner]\n")
    with pytest.raises(ProcessError, match="x.module"):
        load_processes(bad)
    bad.write_text("x:\n  module: oup.processes.changes\n  roles: []\n")
    with pytest.raises(ProcessError, match="x.roles"):
        load_processes(bad)


@pytest.mark.parametrize("inputs, named", [
    ({"collection": "b", "areas": "n", "statistics": ["median"]}, "statistics"),
    ({"collection": "b", "areas": "n", "statistics": "count"}, "statistics"),
    ({"collection": 3, "areas": "n", "statistics": ["count"]}, "collection"),
    ({"areas": "n", "statistics": ["count"]}, "collection"),
])
def test_inputs_are_checked_against_the_description(inputs, named):
    process = load_processes(ROOT / "config" / "processes.yml")["area-statistics"]
    with pytest.raises(InputError) as err:
        process.check(inputs, None)
    assert err.value.parameter == named
