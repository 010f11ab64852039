"""Observations: the core's types for them, and their times.

Shared by the ingesters (``iot_ingest``), which write observations, and the core, which
stores and serves them: so they live here, and ``iot_ingest`` imports them. What a store
offers for them (``ObservationStore``, ``BatchResult``, ``StoreBusy``) is the store's
contract, in ``oup.store``. This module imports nothing of OUP, so the store can use its
types without an import cycle.

Times are integers: microseconds since 1970-01-01 UTC (exact, and slices are integer
division).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

MAX_PAYLOAD = 64 * 1024  # bytes; larger messages are dead letters, not parsed
TRUNCATED_LIMIT = 4096  # bytes kept of a payload too large to decode (it cannot be replayed)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


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


class SensorHome(NamedTuple):
    """Where a sensor's latest value is kept: its collection (the table), the id field,
    and properties of the sensor its change events carry (what it measures)."""

    collection: str
    id_field: str
    properties: dict = {}


# SensorThings over MQTT: the platform tells of each new observation on the standard topic
# (only the event relay may publish there); sensors send readings to the same path below
# ``ingest/``, so the ingester never takes a notification for a reading.
STA_INGEST_PREFIX = "ingest/"


def sta_topic(sensor_id: str) -> str:
    """Where subscribers hear of a sensor's new observations (SensorThings 1.1)."""
    return "v1.1/Datastreams('" + sensor_id.replace("'", "''") + "')/Observations"


def sta_ingest_topic(sensor_id: str) -> str:
    """Where a sensor sends a SensorThings Observation (and HTTP readings are filed)."""
    return STA_INGEST_PREFIX + sta_topic(sensor_id)


def iso_us(us: int | None) -> str | None:
    """Microseconds since the epoch as RFC 3339 UTC ('Z'), seconds precision when exact."""
    if us is None:
        return None
    seconds, fraction = divmod(us, 1_000_000)
    # (the C library's calendar: a listing writes a few hundred of these per answer; its
    # fields, not strftime's %Y, which does not pad a year before 1000 to four digits)
    head = "%04d-%02d-%02dT%02d:%02d:%02d" % time.gmtime(seconds)[:6]
    return f"{head}.{fraction:06d}Z" if fraction else head + "Z"


class ZonelessTime(ValueError):
    """An RFC 3339 time without its zone, where one is needed."""


def rfc3339(text: str, zoneless: str = "refused") -> datetime:
    """An RFC 3339 instant ('Z' or an offset); one without a zone is taken as UTC
    (``zoneless="utc"``) or refused (``ZonelessTime``). Not a time: ``ValueError``."""
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is not None:
        return t
    if zoneless == "utc":
        return t.replace(tzinfo=timezone.utc)
    raise ZonelessTime(text)


def us_of(t: datetime) -> int:
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return (t - EPOCH) // timedelta(microseconds=1)
