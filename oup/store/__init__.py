"""Stores: where features live. Chosen by URL (``OUP_DATABASE_URL``), through
``backends.BACKENDS``; everything a store does is in ``protocols.py``."""
from __future__ import annotations

from functools import cache

from oup.job_cpu import JobCPU
from oup.store.backends import backend_of
from oup.store.base import (BatchResult, Change, Feature, FeatureExists, FeatureNotFound, Field,
                            InvalidQuery, NotVersioned, Page, Query, StaleVersion, StoreBusy,
                            StoreError, UnknownCollection, Written)
from oup.store.protocols import EventLog, FeatureStore, FeatureWriter, ObservationStore

__all__ = ["BatchResult", "Change", "EventLog", "Feature", "FeatureExists", "FeatureNotFound",
           "FeatureStore", "FeatureWriter", "Field", "InvalidQuery", "NotVersioned",
           "ObservationStore", "Page", "Query", "StaleVersion", "StoreBusy", "StoreError",
           "UnknownCollection", "Written", "open_job_store", "open_observation_store",
           "open_store"]


@cache
def open_store(url: str) -> FeatureStore:
    """The store behind ``url``: ``gpkg:///path/file.gpkg`` (embedded default),
    ``postgresql://user@host/db``."""
    return backend_of(url).open_features(url)


def open_job_store(url: str, timeout_s: float, cpu: JobCPU = JobCPU()) -> FeatureStore:
    """The store behind ``url`` as ``oup worker``'s jobs read it: where the database
    has sessions of its own (PostgreSQL), they give way to the API's
    (``job_sessions``): no parallel workers, ``timeout_s`` a statement at most, the
    backends scheduled as ``cpu`` says where the worker may."""
    return backend_of(url).open_for_jobs(url, timeout_s, cpu)


def open_observation_store(url: str, busy_timeout: float = 30.0,
                           schema: bool = True) -> ObservationStore:
    """The observations (and dead letters, ingest counters) beside the features of ``url``.
    ``busy_timeout``: seconds a write waits for a lock before it raises ``StoreBusy``.
    It carries the event log too (``oup.store.events``). ``schema=False``: a reader that
    leaves the schema to the writers (``oup serve`` and ``oup import`` make it)."""
    from oup.settings import get_settings

    store = backend_of(url).open_observations(url, busy_timeout, schema)
    store.event_retention_us = int(get_settings().events_retention_hours * 3_600_000_000)
    return store
