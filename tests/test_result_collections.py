"""A job's result as a temporary collection (oup.processes.result_collections) lives as
long as the job's results: past the declared keep time it is gone, as the job is. (The
collection end to end, on both stores, with a real server, worker, tiles and map, is in
test_processes.py.)"""
from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from oup.errors import NotFound
from oup.http.routes import Call, Endpoint, Format
from oup.processes import Process
from oup.processes import area_statistics
from oup.processes.jobs import Jobs
from oup.processes.result_collections import ResultCollections, classes


def _square(i: int) -> dict:
    x = 4.45 + i * 0.01
    return {"type": "Feature", "id": f"A{i}", "properties": {"area": f"A{i}", "count": i},
            "geometry": {"type": "Polygon", "coordinates": [[
                [x, 51.9], [x + 0.005, 51.9], [x + 0.005, 51.905], [x, 51.905], [x, 51.9]]]}}


def _call(job_id: str, who: str) -> Call:
    endpoint = Endpoint("/x", "x", None, "processes", "x",
                        formats=(Format("json", "application/json"),))
    return Call(endpoint, {"jobId": job_id}, {"limit": 10}, endpoint.formats[0],
                frozenset(), identity=SimpleNamespace(who=who, authenticated=True))


def test_the_collection_goes_with_the_results(tmp_path):
    jobs = Jobs(f"sqlite:///{tmp_path / 'jobs.sqlite'}", retention_s=3600, stale_s=30,
                attempts=1, timeout_s=60)
    published = ResultCollections({"area-statistics": Process(
        "area-statistics", area_statistics, frozenset({"planner"}))}, jobs, "http://oup")
    job = jobs.submit("area-statistics", "key:p", frozenset({"planner"}), {
        "collection": "buildings", "areas": "neighbourhoods", "statistics": ["count"]}, "raw")
    jobs.claim(job.id, "w")
    features = [_square(i) for i in range(3)]
    jobs.finish(job.id, {"type": "FeatureCollection", "features": features})

    linked = {x["href"] for x in published.links(jobs.get(job.id, "key:p"))}
    assert f"http://oup/collections/job-{job.id}" in linked
    page = json.loads(published.items(_call(job.id, "key:p")).get_data())
    assert page["features"] == features and page["numberMatched"] == 3
    with pytest.raises(NotFound):  # another caller
        published.items(_call(job.id, "key:q"))
    J = jobs.Job  # finished longer ago than results are kept
    J.update(finished=time.time() - 3601).where(J.id == job.id).execute()
    with pytest.raises(NotFound):
        published.items(_call(job.id, "key:p"))


def test_classes_of_the_mapped_statistic():
    assert classes([None, None]) is None  # every area suppressed: one fill, no classes
    breaks, colours = classes([3, 3, 3])
    assert breaks == [3.0] and len(colours) == 2
    values = list(range(100))
    breaks, colours = classes(values + [None])
    assert breaks == sorted(breaks) and len(colours) == len(breaks) + 1 == 5
    # each class holds a fifth of the areas (quantiles)
    counts = [sum(1 for v in values if lo <= v < hi)
              for lo, hi in zip([-1, *breaks], [*breaks, 1000])]
    assert counts == [20] * 5
