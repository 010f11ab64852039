"""``oup import``: catalogue sources -> store.

Readers (``readers.py``) turn each source format into records (geometry in the source
CRS, properties); an extension is joined to the geometry of another collection and
protected by its disclosure rules (``joins.py``); ``import_collection`` infers the field
types and writes them in one atomic replace, with the geometry exactly transformed to
CRS84. What is skipped is counted with its reason and reported, never silently dropped.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import shapely
from tqdm import tqdm

from .catalog import Collection
from .joins import joined_rows
from .readers import READERS, ImportError_
from .store import Feature, FeatureStore, Field

__all__ = ["ImportError_", "ImportReport", "import_collection"]
LOG = logging.getLogger(__name__)


@dataclass
class ImportReport:
    collection: str
    count: int = 0
    skipped: Counter = field(default_factory=Counter)
    suppressed: Counter = field(default_factory=Counter)  # disclosure control, per field

    def __str__(self) -> str:
        text = f"{self.collection}: {self.count} features"
        if self.skipped:
            text += "; skipped " + ", ".join(f"{n} ({why})" for why, n in self.skipped.items())
        if self.suppressed:
            text += "; suppressed " + ", ".join(f"{n} {name}" for name, n in
                                                sorted(self.suppressed.items()))
        return text


def to_crs84(geoms: list, srid: int) -> list:
    if srid == 4326:  # GeoJSON and CSV without a declared CRS: CRS84 order already
        return geoms
    from .store.geometry import to_crs84 as transform

    return list(transform(np.array(geoms, dtype=object), f"EPSG:{srid}"))


RESERVED = {"fid", "geom", "_geom84", "id"}  # store columns; "id" is the feature id


# -- the import ------------------------------------------------------------------

def _field_type(values: list) -> str | None:
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return None
    if kinds <= {bool}:
        return "boolean"
    if kinds <= {int}:
        return "integer"
    if kinds <= {int, float}:
        return "number"
    return "string"


def _parse_time(value):
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ImportError_(f"time value {value!r} is not ISO 8601") from None


def import_collection(coll: Collection, store: FeatureStore, progress: bool = True) -> ImportReport:
    report = ImportReport(coll.id)
    if coll.join:
        joined, srid = joined_rows(coll, store, report)
        rows = [(g, p) for g, _, p in joined]
        return _write(coll, store, report, rows, srid, [g84 for _, g84, _ in joined])
    rows, srids = [], set()
    for source in coll.sources:
        path = coll.source_path(source)
        srid, items = READERS[source.format](path, source, report.skipped)
        srids.add(srid)
        for geom, props in tqdm(items, desc=f"{coll.id}: {path.name}", unit=" features",
                                disable=not progress, leave=False):
            props = {**source.attributes, **props}
            rows.append((geom, props))
    if len(srids) > 1:
        raise ImportError_(f"{coll.id}: sources are in different CRSs {sorted(srids)}")
    return _write(coll, store, report, rows, srids.pop())


def _write(coll: Collection, store: FeatureStore, report: ImportReport, rows: list, srid: int,
           crs84: list | None = None) -> ImportReport:
    names = []
    for name in dict.fromkeys(k for _, p in rows for k in p):
        if name.lower() in RESERVED:
            report.skipped[f"attribute {name} (reserved name)"] += 1
        else:
            names.append(name)
    fields = []
    for name in names:
        if name == coll.time_field:
            fields.append(Field(name, "date-time"))
            for _, p in rows:
                p[name] = _parse_time(p.get(name))
            continue
        kind = _field_type([p.get(name) for _, p in rows])
        if kind is None:
            report.skipped[f"attribute {name} (always empty)"] += 1
            continue
        if kind == "string":
            for _, p in rows:
                if p.get(name) is not None:
                    p[name] = str(p[name])
        fields.append(Field(name, kind))
    if coll.time_field and coll.time_field not in names:
        raise ImportError_(f"{coll.id}: time_field {coll.time_field!r} is in no source")
    if coll.id_field:
        _check_ids(coll, rows)
    if coll.stream:
        fields += [f for f in _sensor_fields(coll, rows) if f.name not in names]
    geometry_type = _geometry_type([g for g, _ in rows])
    if geometry_type == "MULTIPOLYGON":  # one declared type means one stored type
        rows = [(shapely.MultiPolygon([g]) if g.geom_type == "Polygon" else g, p)
                for g, p in rows]
    if crs84 is None or geometry_type == "MULTIPOLYGON":
        crs84 = to_crs84([g for g, _ in rows], srid)
    features = (Feature(g, g84, p) for (g, p), g84 in zip(rows, crs84))
    report.count = store.write_collection(coll.id, srid, fields, features, coll.time_field,
                                          geometry_type=geometry_type,
                                          description=coll.description,
                                          id_field=coll.id_field)
    return report


def _check_ids(coll: Collection, rows: list) -> None:
    seen = set()
    for _, p in rows:
        value = p.get(coll.id_field)
        if value in (None, ""):
            raise ImportError_(f"{coll.id}: id_field: a feature has no {coll.id_field}")
        if value in seen:
            raise ImportError_(f"{coll.id}: id_field: {coll.id_field} {value!r} is not unique")
        seen.add(value)


def _sensor_fields(coll: Collection, rows: list) -> list[Field]:
    """Sensors get their unit from the stream's observed property, and empty columns
    for the latest value, which the ingester keeps current (and the next import refills)."""
    name, known = coll.stream.property_field, coll.stream.properties
    for _, p in rows:
        prop = p.get(name)
        if prop not in known:
            raise ImportError_(f"{coll.id}: sensor {p.get(coll.id_field)!r}: {name} {prop!r} "
                               f"is not among stream.properties ({', '.join(known)})")
        p["unit"] = known[prop].unit
        p["latest_result"] = p["latest_time"] = None
    return [Field("unit", "string"), Field("latest_result", "number"),
            Field("latest_time", "date-time")]


def _geometry_type(geoms) -> str:
    kinds = {g.geom_type for g in geoms}
    if len(kinds) == 1:
        return kinds.pop().upper()
    if kinds <= {"Polygon", "MultiPolygon"}:
        return "MULTIPOLYGON"
    return "GEOMETRY"
