"""Exact percentiles of millions of values without sorting them (``area-statistics`` of a
week of readings): a small sample says about where each percentile lies, one scan counts
the values below a bracket around it and returns only those inside, and numpy picks the
rank among them (``np.partition``, linear time).

The sample only guides; the counts decide. A bracket ``[lo, hi]`` holds ranks ``r`` to
``r + 1`` when fewer than ``r + 1`` values lie below ``lo`` and the ones inside reach past
``r + 1``: the values below come first in the order, so rank ``r`` is the inside values'
rank ``r - below``. Where a sample misled and a bracket missed, the caller computes that
percentile another exact way (a sort); with the margin below that is rare (a bracket is
some 3.5 standard deviations of the sample's rank wide either side).
"""
from __future__ import annotations

import math
from array import array

import numpy as np

SAMPLE = 1024  # values sampled per group of sensors
MARGIN = 3.5  # half a bracket, in standard deviations of the sampled rank
MOST_PER_SENSOR = 128  # a group of one sensor reads no more of it


def per_sensor(sensors: int) -> int:
    """How many readings to sample of each of a group's ``sensors``."""
    return max(2, min(MOST_PER_SENSOR, math.ceil(SAMPLE / max(1, sensors))))


def times(start: int, end: int, k: int) -> list[int]:
    """``k`` instants spread evenly over ``[start, end]`` (each the start of its share):
    the sample is each sensor's first reading at or after each."""
    step = (end - start + 1) / k
    return sorted({start + int(i * step) for i in range(k)})


def bracket(sample: np.ndarray, rank: int) -> tuple[float, float]:
    """Bounds around percentile ``rank`` (0-100) of what ``sample`` (sorted) is a sample
    of; open (infinite) where the margin runs past the sample's ends."""
    m = len(sample)
    if not m:
        return -math.inf, math.inf
    p = rank / 100
    at = p * (m - 1)
    half = MARGIN * math.sqrt(m * p * (1 - p)) + 1
    lo, hi = math.floor(at - half), math.ceil(at + half)
    return (float(sample[lo]) if lo >= 0 else -math.inf,
            float(sample[hi]) if hi < m else math.inf)


def positions(n: int, rank: int) -> tuple[float, int, int]:
    """Where percentile ``rank`` of ``n`` values lies in their order: its fractional
    position and the two ranks around it (numpy's default, linear)."""
    at = (n - 1) * rank / 100
    lo = int(at)
    return at, lo, min(lo + 1, n - 1)


def between(a: float, b: float, at: float) -> float:
    """The value at fractional position ``at`` between the ranks holding ``a`` and ``b``."""
    return float(a + (b - a) * (at - int(at)))


def pick(n: int, below: int, inside: np.ndarray, rank: int) -> float | None:
    """Percentile ``rank`` of ``n`` values, of which ``below`` lie below the bracket and
    ``inside`` in it; None when the bracket does not hold the ranks needed."""
    at, lo, hi = positions(n, rank)
    if lo < below or hi >= below + len(inside):
        return None
    a, b = np.partition(inside, [lo - below, hi - below])[[lo - below, hi - below]]
    return between(a, b, at)


class Doubles:
    """SQLite aggregate ``oup_doubles(x)``: the values as one BLOB of float64s, so a
    bracket's values leave SQLite exact (SQLite writes a REAL as text with 15 digits)
    and in one piece, not a row each."""

    def __init__(self):
        self.values = array("d")

    def step(self, value) -> None:
        self.values.append(value)

    def finalize(self) -> bytes:
        return self.values.tobytes()


def register(con) -> None:
    """Give a SQLite connection ``oup_doubles``."""
    con.create_aggregate("oup_doubles", 1, Doubles)


def doubles(blob: bytes | None) -> np.ndarray:
    return np.frombuffer(blob or b"", np.float64)
