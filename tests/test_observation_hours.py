"""The GeoPackage's sums per sensor and hour (``oup.store.observation_hours``): kept
right by every write (new readings, corrections, removals), made for a file that had
none, and an aggregate over a window read from them equal to the one over the
observations, computed here in Python from what was written."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from oup.sensors.observations import Observation
from oup.store.observation_hours import HOUR, TABLE
from oup.store.observations import GeoPackageObservationStore
from oup.store.timeseries import SensorSet, TimeSeries

T0 = 1_893_456_000_000_000  # 2030-01-01T00:00:00Z
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _written(rng: random.Random, store) -> dict[tuple[str, int], float]:
    """Readings of three sensors over about ten hours, in batches, with corrections (a
    newer result time) and repeats (ignored); the values that stand, by key."""
    kept: dict[tuple[str, int], tuple[float, int]] = {}
    for batch in range(20):
        msgs = []
        for _ in range(50):
            key = (f"s{rng.randrange(3)}", T0 - HOUR + rng.randrange(11 * HOUR // 60_000_000)
                   * 60_000_000)
            value, rt = round(rng.uniform(-20, 90), 3), batch
            msgs.append([Observation(key[0], key[1], value, rt)])
            if key not in kept or kept[key][1] < rt:
                kept[key] = (value, rt)
        store.write_batch("test", msgs)
    return {k: v for k, (v, _) in kept.items()}


def _hours(values: dict[tuple[str, int], float]) -> dict:
    out: dict = {}
    for (sid, t), v in values.items():
        out.setdefault((sid, t // HOUR), []).append(v)
    return out


def _check_table(store, values) -> None:
    rows = store.execute(f"SELECT sensor_id, hour, n, total, lo, hi FROM {TABLE}")
    expected = _hours(values)
    assert {(sid, h) for sid, h, *_ in rows} == set(expected)
    for sid, h, n, total, lo, hi in rows:
        vs = expected[sid, h]
        assert (n, lo, hi) == (len(vs), min(vs), max(vs))
        assert total == pytest.approx(sum(vs), abs=1e-9)


def test_hours_follow_inserts_corrections_and_removals(tmp_path):
    store = GeoPackageObservationStore(tmp_path / "oup.gpkg")
    values = _written(random.Random(3), store)
    _check_table(store, values)
    # a removal (no path of OUP removes readings yet; the hours must not depend on it)
    gone = sorted(values)[::7]
    for sid, t in gone:
        store.execute("DELETE FROM oup_observations WHERE sensor_id = ? AND "
                      "phenomenon_time = ?", (sid, t))
        del values[sid, t]
    _check_table(store, values)


def test_a_file_without_hours_gets_them_once(tmp_path):
    store = GeoPackageObservationStore(tmp_path / "oup.gpkg")
    values = _written(random.Random(4), store)
    for statement in (f"DROP TRIGGER {TABLE}_insert", f"DROP TRIGGER {TABLE}_update",
                      f"DROP TRIGGER {TABLE}_delete", f"DROP TABLE {TABLE}"):
        store.execute(statement)
    store.close()
    store = GeoPackageObservationStore(tmp_path / "oup.gpkg")
    _check_table(store, values)


@pytest.mark.parametrize("seed", range(4))
def test_windows_read_from_the_hours_equal_the_observations(tmp_path, seed):
    rng = random.Random(seed)
    store = GeoPackageObservationStore(tmp_path / "oup.gpkg")
    values = _written(rng, store)
    series = TimeSeries(store, SensorSet("sensors", "sensor_id", "observed_property", {}))
    assert series._has_hours()

    def at(us):
        return None if us is None else EPOCH + timedelta(microseconds=us)

    windows = [(None, None), (T0, T0 + 5 * HOUR), (T0 - 1, None), (None, T0 + 3 * HOUR - 1)]
    windows += [sorted(T0 - HOUR + rng.randrange(12 * HOUR) for _ in range(2))
                for _ in range(12)]
    windows += [(T0 + 17 * 60_000_000, T0 + 43 * 60_000_000)]  # inside one hour
    for start, end in windows:
        got = {sid: rest for sid, *rest in series.per_sensor(["s0", "s1", "s2", "s9"],
                                                            (at(start), at(end)))}
        inside: dict[str, list[float]] = {}
        for (sid, t), v in values.items():
            if (start is None or t >= start) and (end is None or t <= end):
                inside.setdefault(sid, []).append(v)
        assert set(got) == set(inside), (start, end)
        for sid, vs in inside.items():
            n, total, lo, hi = got[sid]
            assert (n, lo, hi) == (len(vs), min(vs), max(vs)), (start, end, sid)
            assert total == pytest.approx(sum(vs), abs=1e-9)


def test_percentiles_of_groups_equal_numpys(tmp_path):
    """The GeoPackage's percentiles (bracketed by a sample, picked among the values in
    the bracket) against numpy's over the values written, for groups of sensors and
    windows."""
    import numpy as np

    rng = random.Random(11)
    store = GeoPackageObservationStore(tmp_path / "oup.gpkg")
    values = _written(rng, store)
    series = TimeSeries(store, SensorSet("sensors", "sensor_id", "observed_property", {}))
    groups = {0: ["s0"], 1: ["s1", "s2"], 2: ["s0", "s1", "s2"], 3: ["s9"]}
    ranks = [0, 1, 25, 50, 90, 99, 100]
    for start, end in [(None, None), (T0 + 7 * 60_000_000, T0 + 4 * HOUR + 11)]:
        window = (None if start is None else EPOCH + timedelta(microseconds=start),
                  None if end is None else EPOCH + timedelta(microseconds=end))
        got = {g: known for g, (*_, known) in series.per_group(groups, window, ranks).items()}
        for g, sids in groups.items():
            vs = [v for (sid, t), v in values.items() if sid in sids and
                  (start is None or t >= start) and (end is None or t <= end)]
            if not vs:
                assert g not in got
                continue
            assert got[g] == pytest.approx(dict(zip(ranks, np.percentile(vs, ranks))),
                                           rel=1e-12), (g, start, end)
