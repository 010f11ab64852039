"""Stores: where features live. Chosen by URL (``OUP_DATABASE_URL``)."""
from __future__ import annotations

from functools import cache

from .base import (Feature, FeatureStore, Field, Page, Query, StoreError, UnknownCollection,
                   InvalidQuery)

__all__ = ["Feature", "FeatureStore", "Field", "Page", "Query", "StoreError",
           "UnknownCollection", "InvalidQuery", "open_store"]


@cache
def open_store(url: str) -> FeatureStore:
    """The store behind ``url``: ``gpkg:///path/file.gpkg`` (embedded default)."""
    if url.startswith("gpkg://") or url.endswith(".gpkg"):
        from .gpkg import GeoPackageStore

        return GeoPackageStore(url.removeprefix("gpkg://"))
    raise StoreError(f"unsupported store URL {url!r}: use gpkg:///path/to/file.gpkg")


def open_observation_store(url: str):
    """The observations (and dead letters, ingest counters) beside the features of ``url``."""
    from .observations import ObservationStore

    if url.startswith("gpkg://") or url.endswith(".gpkg"):
        return ObservationStore(url.removeprefix("gpkg://"))
    raise StoreError(f"unsupported store URL {url!r}: use gpkg:///path/to/file.gpkg")
