"""The store's data types and errors: what crosses its Protocols (``protocols.py``)."""
from __future__ import annotations

from contextlib import AbstractContextManager

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from shapely.geometry.base import BaseGeometry

#: JSON-schema types a field can have.
FIELD_TYPES = ("string", "number", "integer", "boolean", "date-time")

# The store's own columns live under a prefix no source attribute may use, so a steward's
# ``id``, ``fid``, ``geom`` or ``geometry`` is stored and served under its own name.
SYSTEM_PREFIX = "_oup_"
FID, GEOM, GEOM84 = "_oup_fid", "_oup_geom", "_oup_geom84"  # row id, source CRS, CRS84
GEOM3857 = "_oup_geom3857"  # web mercator, for WebMercatorQuad tiles (PostGIS store only)
# a feature's property values as numbers into its collection's tile values (GeoPackage only)
VALUES = "_oup_values"
# each row's version: its number (the ETag's), since when it holds, how it came to be
# ("imported", "created", "replaced", "updated"), who made it, and who created the
# feature (for collections whose residents see only their own). History tables
# (``versions.py``) hold these too, with ``VALID_TO``.
VERSION, VALID_FROM, VALID_TO = "_oup_version", "_oup_valid_from", "_oup_valid_to"
KIND, ACTOR, OWNER = "_oup_kind", "_oup_actor", "_oup_owner"


class StoreError(RuntimeError):
    """The store cannot do what was asked (server side)."""


class UnknownCollection(StoreError):
    """No such collection in the store (not imported yet?)."""


class StaleLayer(StoreError):
    """A table changed under the metadata read for it (re-imported by another process)."""


# what a client asked that cannot be answered: an error of the core's (oup.errors), which
# the store raises too
from oup.errors import Conflict, InvalidQuery, NotFound, PreconditionFailed  # noqa: E402,F401
from oup.errors import Unavailable, Unprocessable  # noqa: E402,F401


class NotVersioned(Unavailable):
    """The collection was imported before the store kept versions: no writes, history,
    ``asof`` or owners until it is imported again."""


class StaleVersion(PreconditionFailed):
    """A write's expected ETag (If-Match) is not the feature's current one: someone
    wrote it since it was read. Nothing was written."""


class FeatureNotFound(NotFound):
    """No such feature (or not one the writer owns) to replace, update or delete."""


class FeatureExists(Conflict):
    """A create named an id a feature already has."""


def check_int64(value: int, parameter: str) -> int:
    """SQLite (and PostgreSQL) integers are 64-bit: a larger one is the client's error."""
    if not -2**63 <= value < 2**63:
        raise InvalidQuery(f"{parameter}: {value} is out of the 64-bit integer range",
                           parameter)
    return value


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # one of FIELD_TYPES
    # rewritten in place by every reading that is newer (a sensor's latest value): not
    # indexed, so that the write touches no index (on PostgreSQL, a HOT update)
    live: bool = False


@dataclass
class Feature:
    """One feature as imported: geometry in the source CRS and in CRS84."""

    geometry: BaseGeometry  # source CRS (what the data of record says)
    geometry_crs84: BaseGeometry
    properties: dict[str, Any]


@dataclass
class Query:
    """A features query, everything in CRS84 unless said otherwise."""

    bbox: tuple[float, float, float, float] | None = None
    # (start, end): both None-able for open ends; start == end for an instant
    interval: tuple[datetime | None, datetime | None] | None = None
    equals: dict[str, Any] = field(default_factory=dict)
    filter: Any = None  # a pygeofilter AST, spatial literals in CRS84
    sortby: list[tuple[str, bool]] = field(default_factory=list)  # (field, ascending)
    select: list[str] | None = None
    skip_geometry: bool = False
    limit: int = 10
    offset: int = 0
    crs: str = "OGC:CRS84"  # output: OGC:CRS84, EPSG:28992, EPSG:4258, EPSG:4326, EPSG:3857
    count: bool = True
    # the collection as it was at this instant (aware), from its versions; None: now
    asof: datetime | None = None
    owner: str | None = None  # only the features this owner created
    # free text: the features whose searched attributes hold every word (as a prefix),
    # best first (``text.py``); the page then has their ranks
    text: str | None = None
    # the collection as this scenario has it (``scenarios.py``): its proposed changes
    # layered over the collection as it is; None: the collection itself
    scenario: str | None = None


#: How a change came to be, as ``Change.kind`` and the history say it.
CHANGE_KINDS = ("created", "replaced", "updated", "deleted")


@dataclass
class Change:
    """One feature written, as the importer would write it (``Feature``: geometry in the
    collection's source CRS and in CRS84, properties typed for its fields).

    ``kind``: "created" (``fid`` None: the store makes the id), "replaced" (the whole
    feature), "updated" (a merge patch: only ``feature.properties``' keys are set, a None
    value clears one; the geometry only if ``feature.geometry`` is not None), "deleted"
    (``feature`` None). ``expected``: the ETag the writer read (If-Match), None: the
    last writer wins. ``actor``: who writes, pseudonymous. ``owner``: on a create, who
    owns the feature; on any other change, the owner the feature must have (else it is
    not found). ``patch`` (kind "updated", in place of ``feature``): makes the feature
    from the version the write locked (CRS84 GeoJSON), so that a merge patch applies to
    the version it replaces: two patches of one feature at once wait their turn at the
    lock, and neither undoes the other."""

    kind: str
    fid: int | str | None
    feature: Feature | None
    expected: str | None = None
    actor: str = ""
    owner: str | None = None
    patch: Callable[[dict], Feature] | None = None

    def written_over(self, before: dict) -> Feature:
        """The feature this change writes over ``before``, the version it locked."""
        return self.feature if self.patch is None else self.patch(before)


@dataclass
class Written:
    """What a write did: the feature's id and new ETag (None after a delete), and the
    feature before and after as GeoJSON in CRS84 (None where there is none)."""

    fid: int | str
    etag: str | None
    before: dict | None
    after: dict | None


@dataclass
class Page:
    features: list[dict]
    number_matched: int | None
    ranks: list[float] | None = None  # with ``Query.text``: each feature's, higher better


class StoreBusy(RuntimeError):
    """The database stayed locked (another writer, a backup): the batch was not written."""


#: The ingest counters, per ingester: ``BatchResult``'s counts (``received`` its messages).
COUNTERS = ("received", "stored", "duplicates", "dead_lettered", "observations_stored",
            "observations_corrected")


@dataclass
class BatchResult:
    """Per message: stored (>= 1 observation new or corrected), duplicate, dead-lettered."""

    messages: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    observations_stored: int = 0
    observations_corrected: int = 0
    # the new observations' ids by (sensor, phenomenon time): a SensorThings create
    # answers them (not counted, so not summed by who adds results up)
    ids: dict = field(default_factory=dict, compare=False)


class SqlTables:
    """What the side tables' SQL (observations, events), written once with ``?``
    placeholders, needs of a store: statements, batches, transactions."""

    def execute(self, sql: str, params=()) -> list[tuple]:
        raise NotImplementedError

    def _executemany(self, sql: str, rows: list) -> None:
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager:
        raise NotImplementedError
