"""Observations, the core's types for them, and what an observation store offers.

Shared by the ingesters (``iot_ingest``), which write observations, and the core, which
stores and serves them: so they live here, and ``iot_ingest`` imports them.

Times are integers: microseconds since 1970-01-01 UTC (exact, and slices are integer
division).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import NamedTuple, Protocol

MAX_PAYLOAD = 64 * 1024  # bytes; larger messages are dead letters, not parsed
TRUNCATED_LIMIT = 4096  # bytes kept of a payload too large to decode (it cannot be replayed)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
COUNTERS = ("received", "stored", "duplicates", "dead_lettered", "observations_stored",
            "observations_corrected")


@dataclass(frozen=True)
class Observation:
    sensor_id: str
    phenomenon_time: int  # microseconds since 1970-01-01T00:00:00Z
    result: float
    result_time: int | None = None  # same unit
    dedupe_key: str | None = None  # e.g. LoRaWAN device EUI + frame counter


@dataclass
class DeadLetter:
    topic: str
    payload: bytes
    reason: str

    def kept_payload(self) -> bytes:
        """What is stored: a payload that could be decoded whole (so it can be replayed),
        a larger one, refused for its size, only as a sample."""
        return self.payload if len(self.payload) <= MAX_PAYLOAD else \
            self.payload[:TRUNCATED_LIMIT]


@dataclass
class BatchResult:
    """Per message: stored (>= 1 observation new or corrected), duplicate, dead-lettered."""

    messages: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    observations_stored: int = 0
    observations_corrected: int = 0


class SensorHome(NamedTuple):
    """Where a sensor's latest value is kept: its collection (the table), the id field,
    and properties of the sensor its change events carry (what it measures)."""

    collection: str
    id_field: str
    properties: dict = {}


class StoreBusy(RuntimeError):
    """The database stayed locked (another writer, a backup): the batch was not written."""


def tally(res: BatchResult, latest: dict[str, list], o: Observation, corrected: bool) -> None:
    """Count one observation written (new or a correction) and keep, per sensor, its
    latest (time, value) and how many were stored and corrected: [t, value, new, fixed]."""
    if corrected:
        res.observations_corrected += 1
    else:
        res.observations_stored += 1
    seen = latest.get(o.sensor_id)
    if seen is None:
        seen = latest[o.sensor_id] = [o.phenomenon_time, o.result, 0, 0]
    elif o.phenomenon_time >= seen[0]:
        seen[0], seen[1] = o.phenomenon_time, o.result
    seen[3 if corrected else 2] += 1


def iso_us(us: int | None) -> str | None:
    """Microseconds since the epoch as RFC 3339 UTC ('Z'), seconds precision when exact."""
    if us is None:
        return None
    t = EPOCH + timedelta(microseconds=us)
    spec = "seconds" if us % 1_000_000 == 0 else "microseconds"
    return t.isoformat(timespec=spec).replace("+00:00", "Z")


def us_of(t: datetime) -> int:
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return (t - EPOCH) // timedelta(microseconds=1)


class ObservationStore(Protocol):
    """What both observation stores (GeoPackage, PostGIS) offer."""

    def write_batch(self, ingester: str, messages: list[list[Observation] | DeadLetter],
                    sensor_tables: dict[str, SensorHome] | None = None) -> BatchResult:
        """One transaction: the messages, the counters, the sensors' latest values, and
        a change event per sensor written (``oup.events``).
        ``StoreBusy`` (nothing written) if the database stays locked."""

    def refresh_latest(self, table: str, id_field: str) -> int: ...

    def dead_letters(self, limit: int = 100, replayed: bool = False,
                     ids: list[int] | None = None) -> list[dict]: ...

    def mark_replayed(self, outcomes: dict[int, str | None]) -> None: ...

    def counters(self) -> dict[str, dict[str, int]]: ...

    def observations(self, sensor_id: str | None = None) -> list[tuple]: ...

    def first_time(self) -> str | None: ...

    def count(self) -> int: ...

    def close(self) -> None: ...
