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

from oup.catalog import Collection
from oup.catalog.joins import counted_rows, joined_rows
from oup.catalog.readers import READERS, ImportError_
from oup.settings import get_settings
from oup.store import Feature, FeatureStore, Field, overview

__all__ = ["ImportError_", "ImportReport", "import_collection"]
LOG = logging.getLogger(__name__)


@dataclass
class ImportReport:
    collection: str
    count: int = 0
    skipped: Counter = field(default_factory=Counter)
    suppressed: Counter = field(default_factory=Counter)  # disclosure control, per field
    notes: list[str] = field(default_factory=list)  # how a file was read, what was repaired

    def __str__(self) -> str:
        text = f"{self.collection}: {self.count} features"
        if self.notes:
            text += "; " + "; ".join(self.notes)
        if self.skipped:
            text += "; skipped " + ", ".join(f"{n} ({why})" for why, n in self.skipped.items())
        if self.suppressed:
            text += "; suppressed " + ", ".join(f"{n} {name}" for name, n in
                                                sorted(self.suppressed.items()))
        return text


def to_crs84(geoms: list, crs: str) -> list:
    """``geoms`` (None for none) from ``crs`` (``EPSG:n`` or WKT) to CRS84."""
    if crs == "EPSG:4326":  # CRS84 order already: GeoJSON, CSV, GDAL's longitude-first
        return geoms
    import pyproj

    from oup.store.geometry import to_crs84 as transform

    try:
        return list(transform(np.array(geoms, dtype=object), crs))
    except pyproj.exceptions.ProjError as exc:
        name = pyproj.CRS.from_user_input(crs).name
        raise ImportError_(f"PROJ knows no transformation from {name!r} to CRS84: "
                           f"{str(exc)[:120]}") from None


MAX_TEXT = 1_000_000  # characters in one value: more is a file read the wrong way


# -- the import ------------------------------------------------------------------

def _field_type(values: list) -> str | None:
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return None
    if kinds <= {bool}:
        return "boolean"
    if int in kinds and not all(-2**63 <= v < 2**63 for v in values if type(v) is int):
        return "string"  # past 64 bits: kept exactly, as its digits
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
    if coll.join or coll.counts:
        joined, crs = (joined_rows if coll.join else counted_rows)(coll, store, report)
        rows = [(g, _checked(p, _files(coll), n, report)) for n, (g, _, p) in
                enumerate(joined, start=1)]
        return _write(coll, store, report, rows, crs, [g84 for _, g84, _ in joined])
    rows, crss = [], set()
    for source in coll.sources:
        path = coll.source_path(source)
        crs, items = READERS[source.format](path, source, report)
        crss.add(crs)
        try:
            for n, (geom, props) in enumerate(tqdm(
                    items, desc=f"{coll.id}: {path.name}", unit=" features",
                    disable=not progress, leave=False), start=1):
                rows.append((geom, {**source.attributes, **_checked(props, path.name, n,
                                                                     report)}))
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            # a city model whose structure is not CityJSON's (the readers check the rest)
            raise ImportError_(f"{path.name}: not a valid {source.format} file "
                               f"({type(exc).__name__}: {str(exc)[:80]})") from None
    if len(crss) > 1:
        raise ImportError_(f"{_files(coll)}: the sources are in different CRSs")
    if not rows:
        raise ImportError_(f"{_files(coll)}: no features")
    return _write(coll, store, report, rows, crss.pop())


def _files(coll: Collection) -> str:
    """The files a collection is read from: what its errors name."""
    return ", ".join(s.path for s in coll.sources)


def _checked(props: dict, file: str, n: int, report: ImportReport) -> dict:
    """A feature's attributes as the store takes them: names the store can hold, NaN as
    no value (counted), no value so long that the file must have been read wrong."""
    from oup.store.base import SYSTEM_PREFIX

    for name, value in list(props.items()):
        if not isinstance(name, str) or not name.strip() or "\x00" in name:
            raise ImportError_(f"{file}: feature {n}: attribute name {str(name)[:40]!r} "
                               "cannot be stored (empty, or with a NUL character)")
        if name.lower().startswith(SYSTEM_PREFIX):  # a GeoPackage OUP wrote, read back
            del props[name]
            report.skipped[f"attribute {name} (an OUP store's own column)"] += 1
        elif isinstance(value, float) and not np.isfinite(value):
            props[name] = None
            report.skipped[f"{name}: NaN or infinite, stored as empty"] += 1
        elif isinstance(value, str) and len(value) > MAX_TEXT:
            raise ImportError_(f"{file}: feature {n}: {name} is {len(value):,} characters "
                               f"long (at most {MAX_TEXT:,})")
        elif isinstance(value, str) and "\x00" in value:
            raise ImportError_(f"{file}: feature {n}: {name} holds a NUL character")
    return props


def _write(coll: Collection, store: FeatureStore, report: ImportReport, rows: list, crs: str,
           crs84: list | None = None) -> ImportReport:
    names = list(dict.fromkeys(k for _, p in rows for k in p))
    folded = Counter(name.lower() for name in names)
    clash = [name for name in names if folded[name.lower()] > 1]
    if clash:  # SQLite column names ignore case
        raise ImportError_(f"{_files(coll)}: attributes {', '.join(clash[:6])} differ only "
                           "in case")
    fields = []
    for name in names:
        if name == coll.time_field:
            fields.append(Field(name, "date-time"))
            for n, (_, p) in enumerate(rows, start=1):
                try:
                    p[name] = _parse_time(p.get(name))
                except ImportError_ as exc:
                    raise ImportError_(f"{_files(coll)}: feature {n}: {name}: {exc}") from None
            continue
        # a column always empty is kept too (as text): the source has it
        values = [p.get(name) for _, p in rows]
        kind = _field_type(values) or "string"
        if kind == "string" and any(isinstance(v, (int, float)) for v in values):
            report.notes.append(f"{name} holds numbers and text (or numbers past 64 bits): "
                                "stored as text")
        if kind == "string":
            for _, p in rows:
                if p.get(name) is not None:
                    p[name] = str(p[name])
        fields.append(Field(name, kind))
    if coll.time_field and coll.time_field not in names:
        raise ImportError_(f"{_files(coll)}: time_field {coll.time_field!r} is in no source")
    if coll.id_field and coll.id_field not in names:
        raise ImportError_(f"{_files(coll)}: id_field {coll.id_field!r} is in no source")
    if coll.id_field:
        _check_ids(coll, rows)
    if coll.stream:
        fields += [f for f in _sensor_fields(coll, rows) if f.name not in names]
    kinds = {f.name: f.type for f in fields}
    for name in coll.search:  # free text is looked for in text (and whole numbers)
        if kinds.get(name) not in ("string", "integer"):
            raise ImportError_(f"{_files(coll)}: search: {name!r} is " + (
                f"{kinds[name]}, not text" if name in kinds else "in no source"))
    geometry_type = _geometry_type([g for g, _ in rows if g is not None])
    if geometry_type == "MULTIPOLYGON":  # one declared type means one stored type
        rows = [(shapely.MultiPolygon([g]) if g is not None and g.geom_type == "Polygon"
                 else g, p) for g, p in rows]
    if crs84 is None or geometry_type == "MULTIPOLYGON":
        crs84 = to_crs84([g for g, _ in rows], crs)
    crs84 = _valid(crs84, report)
    rows, crs84 = _one_dimension(rows, crs84, report)
    missing = sum(g is None for g, _ in rows)
    if missing:
        report.notes.append(f"{missing} features without geometry")
    features = (Feature(g, g84, p) for (g, p), g84 in zip(rows, crs84))
    report.count = store.write_collection(coll.id, crs, fields, features, coll.time_field,
                                          geometry_type=geometry_type,
                                          description=coll.description,
                                          id_field=coll.id_field, search=coll.search)
    if geometry_type in overview.POLYGONS and len(rows) >= get_settings().tile_overview_from:
        # after the features: until it is written an older overview is out of date (by
        # its time of import), and the low zooms are cut from the features themselves
        overview.write(store, coll.id, crs84)
    return report


def _one_dimension(rows: list, crs84: list, report: ImportReport) -> tuple[list, list]:
    """One coordinate dimension for the whole collection, as a GIS column has one (PostGIS's
    typmod, the GeoPackage's z flag): where any geometry has heights, the collection is 3D,
    the heights there are kept and a geometry without them is given Z = 0, as ``ogr2ogr -dim
    XYZ``, PostGIS's ``ST_Force3D`` and QGIS's "add Z" do. Counted in the report. Every
    write comes through here, so the stores only ever see one dimension per collection."""
    if not any(g is not None and g.has_z for g, _ in rows):
        return rows, crs84
    flat = sum(g is not None and not g.has_z for g, _ in rows)
    if flat:
        report.notes.append(f"{flat} geometries without heights given height 0 (others "
                            "in the collection have heights)")
    # force_3d also fills the 2D parts of a collection whose other parts have heights
    return ([(None if g is None else shapely.force_3d(g), p) for g, p in rows],
            [None if g is None else shapely.force_3d(g) for g in crs84])


def _valid(crs84: list, report: ImportReport) -> list:
    """The CRS84 copy, which answers every query and filter, made valid (``make_valid``);
    the geometry as delivered stays the data of record, as it was. Counted in the report."""
    out, repaired = [], []
    for n, g in enumerate(crs84, start=1):
        if g is not None and not g.is_valid:
            repaired.append(f"feature {n}: {shapely.is_valid_reason(g)}")
            g = shapely.make_valid(g)
        out.append(g)
    if repaired:
        report.notes.append(f"{len(repaired)} invalid geometries kept as delivered, made "
                            f"valid for queries ({repaired[0]})")
    return out


def _check_ids(coll: Collection, rows: list) -> None:
    by_value: dict = {}
    for n, (_, p) in enumerate(rows, start=1):
        value = p.get(coll.id_field)
        if value in (None, ""):
            raise ImportError_(f"{_files(coll)}: id_field: feature {n} has no {coll.id_field}")
        by_value.setdefault(str(value), []).append(n)
    twice = {v: ns for v, ns in by_value.items() if len(ns) > 1}
    if twice:
        listed = "; ".join(f"{v[:40]!r} (features {', '.join(map(str, ns[:5]))})"
                           for v, ns in list(twice.items())[:5])
        raise ImportError_(f"{_files(coll)}: id_field {coll.id_field} is not unique: {len(twice)} "
                           f"values occur more than once: {listed}")


def _sensor_fields(coll: Collection, rows: list) -> list[Field]:
    """Sensors get their unit from the stream's observed property, and empty columns
    for the latest value, which the ingester keeps current (and the next import refills)."""
    name, known = coll.stream.property_field, coll.stream.properties
    for _, p in rows:
        prop = p.get(name)
        if prop not in known:
            raise ImportError_(f"{_files(coll)}: sensor {p.get(coll.id_field)!r}: {name} "
                               f"{prop!r} is not among stream.properties ({', '.join(known)})")
        p["unit"] = known[prop].unit
        p["latest_result"] = p["latest_time"] = None
    return [Field("unit", "string"), Field("latest_result", "number", live=True),
            Field("latest_time", "date-time", live=True)]


def _geometry_type(geoms) -> str:
    kinds = {g.geom_type for g in geoms}
    if len(kinds) == 1:
        return kinds.pop().upper()
    if kinds <= {"Polygon", "MultiPolygon"}:
        return "MULTIPOLYGON"
    return "GEOMETRY"
