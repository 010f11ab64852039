"""Questions to the twin: OGC API Processes, run as jobs by ``oup worker``.

A process is a module with ``DESCRIPTION`` (its OGC API Processes description: title,
inputs and outputs with their JSON Schemas) and ``execute(inputs, context)``, which
answers the value of its one output. ``context`` (``Context``) is the caller: who they
are, the collections they may read (through it only), and how far the job has come.
Which processes are offered, and who may run each, is declared in one file
(``OUP_PROCESSES_FILE``, default ``config/processes.yml``)::

    area-statistics:
      module: oup.processes.area_statistics
      roles: [planner]

The parts: ``jobs`` (the queue and the jobs table), ``worker`` (``oup worker``),
``endpoints`` (the HTTP face), a module per process.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oup.catalog import Catalog, Collection
from oup.errors import InvalidQuery
from oup.store.base import Query

PAGE = 5000  # features read a page at a time


class ProcessError(ValueError):
    """The processes file is wrong (names the process and the field)."""


class InputError(InvalidQuery):
    """An input of an execute request that the process cannot take (400, naming it)."""


class _Declared(BaseModel):
    model_config = ConfigDict(extra="forbid")
    module: str = Field(description="the module: DESCRIPTION and execute(inputs, context)")
    roles: list[str] = Field(min_length=1, description="who may run it (signed in)")


@dataclass(frozen=True)
class Process:
    id: str
    module: ModuleType
    roles: frozenset[str]

    @property
    def description(self) -> dict:
        return {"id": self.id, "version": "1.0.0", "jobControlOptions":
                ["sync-execute", "async-execute", "dismiss"],
                "outputTransmission": ["value"], **self.module.DESCRIPTION}

    @property
    def maps(self) -> bool:
        """Whether its result is also published as a temporary collection a map shows
        (``oup.processes.result_collections``): its module says what the map colours
        by, ``map_property(inputs)``."""
        return callable(getattr(self.module, "map_property", None))

    def check(self, inputs: Any, context: "Context") -> dict:
        """The inputs if they match the description (else ``InputError`` naming one);
        the process's own ``check(inputs, context)``, if it has one, then looks closer
        (the collections named, as the caller sees them)."""
        import jsonschema

        if not isinstance(inputs, dict):
            raise InputError("inputs must be an object of input names and values", "inputs")
        declared = self.module.DESCRIPTION["inputs"]
        for name in inputs:
            if name not in declared:
                raise InputError(f"{self.id} has no input {name!r}; it takes "
                                 f"{', '.join(declared)}", name)
        for name, spec in declared.items():
            if name not in inputs:
                if spec.get("minOccurs", 1) > 0:
                    raise InputError(f"{self.id} needs the input {name!r}", name)
                continue
            try:
                jsonschema.validate(inputs[name], spec["schema"])
            except jsonschema.ValidationError as exc:
                raise InputError(f"input {name!r}: {exc.message}", name) from None
        own = getattr(self.module, "check", None)
        return own(inputs, context) if own else inputs


def features_output(title: str) -> dict:
    """The description of an output that is a GeoJSON FeatureCollection."""
    return {"title": title, "schema": {
        "type": "object", "contentMediaType": "application/geo+json",
        "properties": {"type": {"const": "FeatureCollection"}, "features": {"type": "array"}}}}


def box_input(title: str, default: str | None = None) -> dict:
    """The description of an input that is a box, ``[minx, miny, maxx, maxy]`` in CRS84
    (``box`` checks its order); optional when it has a ``default`` (what it then is)."""
    return _optional({"title": f"{title}: [minx, miny, maxx, maxy] in CRS84", "schema": {
        "type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4}}, default)


def instant_input(title: str, default: str | None = None) -> dict:
    """The description of an input that is an RFC 3339 instant (``instant`` reads it)."""
    return _optional({"title": f"{title} (RFC 3339)",
                      "schema": {"type": "string", "format": "date-time"}}, default)


def _optional(spec: dict, default: str | None) -> dict:
    if default is None:
        return spec
    return {**spec, "title": f"{spec['title']}; default: {default}", "minOccurs": 0}


def box(value: list[float] | None, name: str, empty: bool = True) -> tuple | None:
    """Input ``name``, a box (``box_input``), with each minimum below (``empty``: or at)
    its maximum (``InputError`` naming it); None when it is not given."""
    if value is None:
        return None
    flat = value[0] >= value[2] or value[1] >= value[3]
    if value[0] > value[2] or value[1] > value[3] or (flat and not empty):
        raise InputError(f"input {name!r}: [minx, miny, maxx, maxy] with min "
                         f"{'<=' if empty else '<'} max", name)
    return tuple(value)


def instant(text: str, name: str, zoneless: str = "refused") -> datetime:
    """Input ``name``, an RFC 3339 instant (``InputError`` naming it). One without a
    time zone is refused, or taken as UTC (``zoneless="utc"``)."""
    from oup.sensors.observations import ZonelessTime, rfc3339

    try:
        return rfc3339(text, zoneless)
    except ZonelessTime:
        raise InputError(f"input {name!r}: give the time zone (e.g. Z)", name) from None
    except ValueError:
        raise InputError(f"input {name!r}: {text!r} is not an RFC 3339 instant "
                         "(e.g. 2026-01-01T00:00:00Z)", name) from None


def load_processes(file: Path) -> dict[str, Process]:
    """The processes declared in ``file``, their modules loaded (``ProcessError``)."""
    if not Path(file).exists():
        return {}
    raw = yaml.safe_load(Path(file).read_text()) or {}
    out = {}
    for pid, decl in raw.items():
        try:
            d = _Declared.model_validate(decl)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ProcessError(f"{file}: {pid}.{'.'.join(map(str, err['loc']))}: "
                               f"{err['msg']}") from None
        try:
            module = importlib.import_module(d.module)
        except ImportError as exc:
            raise ProcessError(f"{file}: {pid}.module: cannot import {d.module}: {exc}") \
                from None
        if not hasattr(module, "DESCRIPTION") or not callable(getattr(module, "execute", None)):
            raise ProcessError(f"{file}: {pid}.module: {d.module} has no DESCRIPTION and "
                               "execute(inputs, context)")
        out[pid] = Process(pid, module, frozenset(d.roles))
    return out


def pages(read: Callable[[Query], Any], q: Query) -> Iterator[dict]:
    """Every feature ``read(q)`` gives, a page at a time (``q``'s limit and offset are
    set here)."""
    offset = 0
    while True:
        q.limit, q.offset, q.count = PAGE, offset, False
        page = read(q).features
        yield from page
        if len(page) < PAGE:
            return
        offset += PAGE


@dataclass
class Context:
    """What a job may use: the caller's identity, the catalogue, the store, and the
    progress it reports. It reads through ``collection`` and ``features`` only, which
    see what the caller may see (a collection they may not see is not there)."""

    identity: Any  # oup.security.Identity
    catalog: Catalog
    store: Any  # the feature store (oup.store.protocols.FeatureStore)
    visible: frozenset[str]
    report: Callable[[int, str], None] = lambda percent, message: None
    threads: int = 1  # the job may compute on this many threads at once (OUP_JOB_THREADS)
    _series: dict = field(default_factory=dict)

    def progress(self, percent: float, message: str = "") -> None:
        """How far the job has come (0-100), shown by ``/jobs/{jobId}``."""
        self.report(max(0, min(100, int(percent))), message)

    def collection(self, cid: Any, input_name: str) -> Collection:
        """The collection named by input ``input_name``, if the caller may read it."""
        if not isinstance(cid, str) or cid not in self.visible:
            raise InputError(f"input {input_name!r}: no collection {cid!r}", input_name)
        return self.catalog[cid]

    def features(self, coll: Collection, q: Query) -> Iterator[dict]:
        """Every feature of ``coll`` matching ``q`` (its limit and offset are set
        here), as the caller may read them: a page at a time."""
        from oup.writes.endpoints import owner_of

        if coll.id not in self.visible:  # (collection() is the way in; this keeps it so)
            raise InputError(f"no collection {coll.id!r}")
        if coll.editable is not None:
            q.owner = owner_of(coll, self.identity)
        return pages(self._reader(coll), q)

    def scenario(self, sid: Any, input_name: str, coll: Collection,
                 crs: str = "OGC:CRS84") -> list[dict]:
        """What scenario ``sid`` proposes for ``coll`` (``scenario_changes`` of the store,
        in ``crs``), if the caller may see it: else 404, as on every path."""
        from oup.scenarios import covering

        if coll.id not in self.visible:
            raise InputError(f"no collection {coll.id!r}")
        try:
            found = covering(self.store, self.identity, sid, coll.id)
        except InvalidQuery as exc:  # a scenario of other collections
            raise InputError(f"input {input_name!r}: {exc}", input_name) from None
        return self.store.scenario_changes(coll.id, found["id"], crs)

    def series(self, coll: Collection):
        """The observations behind a derived collection the caller may read, for
        queries over them in SQL (``oup.store.timeseries.TimeSeries``), and its sensors
        (as the derived collection shows them: their location and observed property)."""
        if coll.id not in self.visible or not coll.derived_from:
            raise InputError(f"no observations {coll.id!r}")
        sensors = self.catalog[coll.derived_from]
        return self._series_of(coll), lambda q: self.store.query(sensors.id, q)

    def _reader(self, coll: Collection) -> Callable[[Query], Any]:
        if not coll.derived_from:
            return lambda q: self.store.query(coll.id, q)
        series = self._series_of(coll)
        if coll.observations_of:
            return series.observations
        return lambda q: series.slices(q, coll.time_slices.seconds)

    def _series_of(self, coll: Collection):
        if coll.id not in self._series:
            from oup.store.timeseries import SensorSet, TimeSeries

            sensors = self.catalog[coll.derived_from]
            st = sensors.stream
            self._series[coll.id] = TimeSeries(self.store, SensorSet(
                sensors.id, sensors.id_field, st.property_field,
                {k: p.unit for k, p in st.properties.items()}))
        return self._series[coll.id]
