"""What a store backend does, as Protocols: all that the rest of OUP (and the store
package's own shared code) may ask of a store. A backend is chosen by URL
(``backends.py``); nothing outside its own modules names its classes or reaches into
them, so a new one is its module and a line in ``backends.BACKENDS``.

A backend supplies two classes:

- a feature store, ``FeatureStore`` (with ``TileSource`` and ``SqlSource``), made as
  ``cls(location)``;
- an observation store, ``ObservationStore`` (with ``EventLog``), made as
  ``cls(location, busy_timeout, schema)``, in the same database as its features.

``location`` is the URL, or for a file backend the path after its scheme.
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Iterable, Protocol

from oup.store.base import BatchResult, Change, Feature, Field, Page, Query, Written

if TYPE_CHECKING:  # the types only: neither module imports this one
    from oup.events import ChangeEvent
    from oup.sensors.observations import DeadLetter, Observation, SensorHome
    from oup.store.mvt import TileQuery


class TileSource(Protocol):
    """Vector tiles (``mvt.tile_layer`` keeps the byte budget, the rule is in ``mvt``)."""

    def cut_tile(self, q: TileQuery) -> bytes:
        """Layer ``q.layer`` of one tile, MVT-encoded by ``mvt``'s rule at the speck size
        ``q.speck`` (b'' when nothing is drawn)."""

    def import_stamp(self, cid: str) -> str:
        """What changes whenever collection ``cid`` is written again (imported), as the
        store says now: tiles cut before it changed are out of date."""


class SqlSource(Protocol):
    """What the queries over observations (``timeseries.py``) build on: SQL with ``?``
    placeholders, over the tables ``oup_observations`` and the collections."""

    def execute(self, sql: str, params=()) -> list[tuple]:
        """Run one statement written with ``?`` placeholders; its rows (or [])."""

    def layer(self, cid: str) -> dict:
        """A collection's metadata: fields, source SRID, time and id field, extent."""

    def where(self, cid: str, meta: dict, q: Query) -> tuple[str, list]:
        """`` WHERE ...`` (or '') and its parameters for the bbox, datetime, property
        and CQL2 parts of ``q``."""

    def geometry_column(self, meta: dict, q: Query) -> str:
        """The geometry as SQL selects it for ``q`` (its CRS, or NULL to skip it)."""

    def features(self, meta: dict, rows, select: list[str], q: Query) -> list[dict]:
        """GeoJSON features from rows ``(fid, geometry column, *select[, id])``."""


class FeatureWriter(Protocol):
    """Features written one at a time (OGC API Features Part 4), each version kept: the
    current one in the collection's table, the ones it replaced in its history."""

    def write_feature(self, cid: str, change: Change) -> Written:
        """One transaction: checks ``change.expected`` against the current ETag
        (``StaleVersion``), writes the row and what reads and tiles derive from it, keeps
        the version it replaces, updates the count and extent. ``FeatureNotFound``,
        ``FeatureExists``, ``Unprocessable`` (a property the collection has not); on any
        error nothing is written."""

    def write_features(self, cid: str, changes: list[Change], versions: bool = True,
                       answered: bool = True) -> list[Written]:
        """``write_feature`` of each change, in order, in one transaction (all or none);
        ``versions=False`` keeps no version of what they replace (data made again from
        other data, such as an overview's blocks); ``answered=False`` gives back their
        ids and ETags, not the features (``Written.before``, ``after``: None)."""

    def etag(self, cid: str, fid: int | str) -> str | None:
        """The current version's ETag (opaque, unquoted); None: no such feature. It
        changes with every write and every import."""

    def get_tagged(self, cid: str, fid: int | str, crs: str = "OGC:CRS84",
                   owner: str | None = None) -> tuple[dict | None, str | None]:
        """``get`` as of now, with the feature's ETag read in the same statement ((None,
        None): no such feature; an ETag of None: a collection without versions)."""

    def history(self, cid: str, fid: int | str) -> list[dict]:
        """The feature's versions, newest first: ``version``, ``valid_from``,
        ``valid_to`` (None: current), ``kind`` ("imported", "created", "replaced",
        "updated", "deleted"), ``actor``, ``feature`` (GeoJSON in CRS84; None for a
        deletion). [] for a feature never there."""

    def prune_history(self, cid: str, keep_before: datetime | None, personal: list[str],
                      personal_before: datetime) -> int:
        """Drops the versions replaced before ``keep_before`` (and deletions older than
        it; None: keeps them for ever), blanks ``personal`` properties in versions replaced before
        ``personal_before``; the number of versions dropped or blanked."""

    def erase(self, cid: str, personal: list[str], fid: int | str | None = None,
              owner: str | None = None) -> int:
        """Blanks ``personal`` properties of feature ``fid`` (or of every feature
        ``owner`` created) in every version, current and past (the current one takes a
        new ETag); the versions changed (ones with nothing left to blank do not count)."""


class ScenarioLayers(Protocol):
    """Scenarios: named sets of proposed changes layered over collections, never written
    into them (``scenarios.py``); ``Query.scenario`` reads a collection through one."""

    def create_scenario(self, title: str, owner: str, collections: list[str],
                        shared_with: list[str]) -> dict:
        """A new scenario: ``id``, ``title``, ``owner``, ``collections``, ``shared_with``,
        ``created``."""

    def scenario(self, sid: str) -> dict | None: ...

    def scenarios(self, owner: str, roles) -> list[dict]:
        """Those ``owner`` made or that are shared with one of ``roles``."""

    def delete_scenario(self, sid: str) -> None: ...

    def write_scenario_feature(self, cid: str, sid: str, change: Change) -> Written:
        """``write_feature``, into the scenario's layer of ``cid`` (``cid`` untouched)."""

    def scenario_etag(self, cid: str, sid: str, fid: int | str) -> str | None: ...

    def scenario_changes(self, cid: str, sid: str, crs: str = "OGC:CRS84",
                         fid: int | str | None = None) -> list[dict]:
        """The scenario's features of ``cid`` (of feature ``fid`` only, if given), each
        with ``oup:change`` (added, changed or removed) and, for one of the collection's,
        ``oup:tileId`` (its id in the collection's vector tiles)."""


class FeatureStore(TileSource, SqlSource, FeatureWriter, ScenarioLayers, Protocol):
    """Where features live: what ``open_store`` gives."""

    def write_collection(self, cid: str, source_crs: str, fields: list[Field],
                         features: Iterable[Feature], time_field: str | None = None,
                         geometry_type: str = "GEOMETRY", description: str = "",
                         id_field: str | None = None, search: list[str] = ()) -> int:
        """Replace collection ``cid`` atomically (readers see the old or the new), with a
        free-text index of the attributes ``search`` (``Query.text``) that every write
        keeps right."""

    def collections(self) -> list[str]: ...

    def fields(self, cid: str) -> list[Field]: ...

    def extent(self, cid: str) -> dict: ...

    def query(self, cid: str, q: Query) -> Page: ...

    def shapes(self, cid: str, q: Query) -> list[tuple]:
        """``(id, CRS84 WKB)`` of the features ``q`` matches, without their properties
        and without making GeoJSON: for work on the shapes themselves."""

    def get(self, cid: str, fid: int | str, crs: str = "OGC:CRS84",
            asof: datetime | None = None, owner: str | None = None,
            scenario: str | None = None) -> dict | None: ...

    def health(self) -> dict: ...


class EventLog(Protocol):
    """Change events, numbered in commit order (``events.py``). It lives in the
    observation store: an ingest batch and its events are one transaction."""

    event_retention_us: int  # how long an event is kept (microseconds)

    def append_events(self, events: list[ChangeEvent]) -> None: ...

    def record_catalogue(self, current: dict[str, dict]) -> list[ChangeEvent]: ...

    def events_after(self, seq: int, limit: int = 1000) -> list[ChangeEvent]: ...

    def last_event(self) -> int: ...

    def first_event(self) -> int: ...

    def event_state(self, name: str) -> str | None: ...

    def set_event_state(self, name: str, value: str) -> None: ...


class ObservationStore(EventLog, Protocol):
    """The observations, dead letters and ingest counters beside the features: what
    ``open_observation_store`` gives, and what the ingesters are written against."""

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
