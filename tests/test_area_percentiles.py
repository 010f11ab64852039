"""Per group of sensors: count, sum, min, max and exact percentiles of a window's
results (``TimeSeries.per_group``, what ``area-statistics`` of observations reads), on
the GeoPackage and on PostGIS, against numpy over the readings written; the brackets
of ``oup.store.ranks`` alone against numpy; and a sample made to mislead, so that the
brackets miss and the other exact way answers."""
from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from oup.sensors.observations import Observation
from oup.store import ranks
from oup.store.timeseries import SensorSet, TimeSeries

T0 = 1_893_456_000_000_000  # 2030-01-01T00:00:00Z
MINUTE = 60_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
GROUPS = {0: ["s0"], 1: ["s1", "s2"], 2: ["s0", "s1", "s2", "s3"], 3: ["s9"]}
RANKS = [0, 1, 25, 50, 90, 99, 100]
_numbers = itertools.count()


@pytest.fixture(params=["gpkg", pytest.param("postgis", marks=pytest.mark.slow)])
def written(request, tmp_path):
    """A series store with four sensors' readings over three days (a reading every few
    minutes, values with ties, a sensor far off the others); (series, readings)."""
    from oup.store import open_observation_store, open_store

    if request.param == "gpkg":
        url = f"gpkg://{tmp_path / 'oup.gpkg'}"
    else:
        url = request.getfixturevalue("postgis").create(f"ranks{next(_numbers)}")
    rng = random.Random(7)
    values = {}
    for s in range(4):
        for k in range(1500):
            t = T0 + k * 3 * MINUTE + rng.randrange(3) * MINUTE
            v = round(rng.gauss(40 + 25 * (s == 3), 12), 1) if k % 11 else -5.0
            values[f"s{s}", t] = v
    obs = open_observation_store(url)
    try:
        obs.write_batch("ranks-test", [[Observation(sid, t, v, t)] for (sid, t), v
                                       in values.items()])
    finally:
        obs.close()
    store = open_store(url)
    yield TimeSeries(store, SensorSet("sensors", "sensor_id", "observed_property", {})), values
    if hasattr(store, "close"):  # (a GeoPackage store closes with its process)
        store.close()


def _at(us):
    return None if us is None else EPOCH + timedelta(microseconds=us)


def _check(series, values, windows, wanted=RANKS) -> None:
    for start, end in windows:
        got = series.per_group(GROUPS, (_at(start), _at(end)), wanted)
        for g, sids in GROUPS.items():
            vs = np.array([v for (sid, t), v in values.items() if sid in sids and
                           (start is None or t >= start) and (end is None or t <= end)])
            if not len(vs):
                assert g not in got
                continue
            n, total, lo, hi, known = got[g]
            assert (n, lo, hi) == (len(vs), vs.min(), vs.max()), (g, start, end)
            assert total == pytest.approx(vs.sum(), rel=1e-12)
            assert known == pytest.approx(dict(zip(wanted, np.percentile(vs, wanted))),
                                          rel=1e-12), (g, start, end)


WINDOWS = [(None, None), (T0 + 7 * MINUTE, T0 + 40 * 60 * MINUTE + 11),
           (T0 + 24 * 60 * MINUTE, None), (T0 + 100 * MINUTE, T0 + 104 * MINUTE)]


def test_per_group_equals_numpy(written):
    _check(*written, WINDOWS)
    _check(*written, WINDOWS, wanted=[])  # the sums alone


def test_brackets_a_sample_missed_still_give_the_exact_percentiles(written, monkeypatch):
    """Every bracket made the same narrow one, about the readings' middle: most miss,
    and those percentiles come from the other exact way (a sort)."""
    missed = []
    pick = ranks.pick

    def counted(*args):
        value = pick(*args)
        missed.append(value is None)
        return value

    monkeypatch.setattr(ranks, "bracket", lambda sample, rank: (38.0, 42.0))
    monkeypatch.setattr(ranks, "pick", counted)
    _check(*written, WINDOWS[:2])
    assert any(missed) and not all(missed)


def test_a_bracket_holds_the_rank_or_says_it_does_not():
    """``ranks.pick`` over random brackets of random values: numpy's percentile
    exactly whenever it answers, and it answers whenever the bracket holds the ranks."""
    rng = np.random.default_rng(3)
    answered = 0
    for _ in range(300):
        v = np.round(rng.normal(0, 10, int(rng.integers(1, 400))), int(rng.integers(0, 3)))
        rank = int(rng.integers(0, 101))
        sample = np.sort(rng.choice(v, min(len(v), 40)))
        lo, hi = ranks.bracket(sample, rank) if rng.random() < 0.7 else \
            tuple(sorted(rng.choice(v, 2)))
        got = ranks.pick(len(v), int((v < lo).sum()), v[(v >= lo) & (v <= hi)], rank)
        order = np.sort(v)
        at = (len(v) - 1) * rank / 100
        holds = lo <= order[int(at)] and order[min(int(at) + 1, len(v) - 1)] <= hi
        assert (got is not None) == holds
        if got is not None:
            answered += 1
            assert got == pytest.approx(np.percentile(v, rank), rel=1e-12, abs=1e-12)
    assert 100 < answered < 300
