"""The store backends, by URL: one record each. A new backend is its module (the two
classes of ``protocols.py``) and one line in ``BACKENDS``."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import import_module

from oup.store.base import StoreError


@dataclass(frozen=True)
class Backend:
    name: str
    example: str  # a URL it opens, for the message naming the ones there are
    prefixes: tuple[str, ...]  # the URLs it opens start so...
    suffixes: tuple[str, ...]  # ...or end so
    feature_store: str  # "module:Class", a FeatureStore: Class(location)
    observation_store: str  # an ObservationStore: Class(location, busy_timeout, schema)
    by_path: bool = False  # location: the URL without its prefix (a file), else the URL
    # "module:function(url, timeout_s, cpu)": the jobs' session settings, a
    # callable the feature store takes as ``session`` (none: the jobs' store is the API's)
    job_session: str = ""

    def opens(self, url: str) -> bool:
        return url.startswith(self.prefixes) or url.endswith(self.suffixes)

    def location(self, url: str) -> str:
        if self.by_path:
            for prefix in self.prefixes:
                if url.startswith(prefix):
                    return url[len(prefix):]
        return url

    # the classes are imported on first use: a process loads no driver (psycopg) it
    # does not use
    def open_features(self, url: str):
        return _load(self.feature_store)(self.location(url))

    def open_for_jobs(self, url: str, timeout_s: float, cpu):
        if not self.job_session:
            return self.open_features(url)
        return _load(self.feature_store)(self.location(url), session=_load(
            self.job_session)(url, timeout_s, cpu))

    def open_observations(self, url: str, busy_timeout: float, schema: bool):
        return _load(self.observation_store)(self.location(url), busy_timeout, schema)


BACKENDS: tuple[Backend, ...] = (
    Backend("geopackage", "gpkg:///path/to/file.gpkg", ("gpkg://",), (".gpkg",),
            "oup.store.gpkg:GeoPackageStore",
            "oup.store.observations:GeoPackageObservationStore", by_path=True),
    Backend("postgis", "postgresql://user@host/db", ("postgresql://", "postgres://"), (),
            "oup.store.postgis:PostGISStore",
            "oup.store.pg_observations:PostGISObservationStore",
            job_session="oup.store.job_sessions:job_session"),
)


def backend_of(url: str) -> Backend:
    """The first backend (in ``BACKENDS``' order) that opens ``url``."""
    for backend in BACKENDS:
        if backend.opens(url):
            return backend
    raise StoreError(f"unsupported store URL {url!r}: use "
                     f"{' or '.join(b.example for b in BACKENDS)}")


@cache
def _load(name: str) -> type:
    module, _, attr = name.partition(":")
    return getattr(import_module(module), attr)
