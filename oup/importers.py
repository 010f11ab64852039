"""``oup import``: catalogue sources -> store.

Readers turn each source format into ``Feature`` records (geometry in the source
CRS and, exactly transformed, in CRS84); ``import_collection`` infers the field
types and writes them in one atomic replace. What is skipped is counted with its
reason and reported, never silently dropped.
"""
from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import shape
from tqdm import tqdm

from .catalog import Collection, Source
from .cityjson import (CityModelError, check_version, declared_crs, lod_key, lod_of, surfaces,
                       vertices_of)
from .store import Feature, FeatureStore, Field

LOG = logging.getLogger(__name__)


class ImportError_(ValueError):
    """A source cannot be read at all (wrong format, no CRS, unreadable)."""


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


# -- CRS -----------------------------------------------------------------------

def horizontal_srid(crs: str | int) -> int:
    """EPSG code of the 2D part of a CRS (EPSG:7415 RD New + NAP -> 28992)."""
    import pyproj

    c = pyproj.CRS.from_user_input(crs)
    if c.is_compound:
        c = c.sub_crs_list[0]
    code = c.to_epsg()
    if code is None:
        raise ImportError_(f"CRS {crs!r} has no EPSG code")
    return code


def crs_from_cityjson(doc: dict, fallback: str | None, path: Path) -> str:
    """The model's CRS, however its file spells it (``oup.cityjson.reference_crs``)."""
    try:
        return declared_crs(doc, fallback, path)[0]
    except CityModelError as exc:
        raise ImportError_(str(exc).replace("give --crs", "give crs in the source")) from None


def to_crs84(geoms: list, srid: int) -> list:
    if srid == 4326:  # GeoJSON and CSV without a declared CRS: CRS84 order already
        return geoms
    from .store.geometry import to_crs84 as transform

    return list(transform(np.array(geoms, dtype=object), f"EPSG:{srid}"))


# -- readers: each yields (geometry in source srid, properties) ----------------

def _cityjson_objects(doc: dict, source: Source, skipped: Counter):
    """Footprints of the top-level CityObjects of one CityJSON (or CityJSONFeature) doc."""
    verts = vertices_of(doc, doc.get("transform"))
    objs = doc["CityObjects"]
    for oid, obj in objs.items():
        if obj.get("parents"):
            continue  # BuildingParts and the like belong to their parent's feature
        members = [obj] + [objs[c] for c in obj.get("children", []) if c in objs]
        geoms = [g for m in members for g in m.get("geometry", [])]
        if not geoms:
            skipped["no geometry"] += 1
            continue
        lod = source.lod or max({lod_of(g) for g in geoms}, key=lod_key)
        chosen = [g for g in geoms if lod_of(g) == lod]
        if not chosen:
            skipped[f"no LoD {lod}"] += 1
            continue
        rings2d, zs = [], []
        for g in chosen:
            for surface, _ in surfaces(g):
                pts = verts[surface[0]]
                zs.append(pts[:, 2])
                poly = shapely.Polygon(pts[:, :2], [verts[h][:, :2] for h in surface[1:]])
                if poly.is_valid and poly.area > 1e-6:
                    rings2d.append(poly)
                elif poly.area > 1e-6:
                    rings2d.append(shapely.make_valid(poly))
        if not rings2d:
            skipped["degenerate footprint (only vertical or empty surfaces)"] += 1
            continue
        footprint = shapely.union_all(rings2d)
        footprint = shapely.set_precision(footprint, 0.001)  # mm, as the source
        if footprint.is_empty:
            skipped["degenerate footprint"] += 1
            continue
        z = np.concatenate(zs)
        props = dict(obj.get("attributes") or {})
        props = {k: v for k, v in props.items() if not isinstance(v, (dict, list))}
        props.update(cityobject_id=oid, cityobject_type=obj["type"], lod=lod,
                     ground_level=round(float(z.min()), 3), roof_level=round(float(z.max()), 3),
                     height=round(float(z.max() - z.min()), 3))
        yield footprint, props


def _load_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ImportError_(f"{path.name} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ImportError_(f"{path.name}: expected a JSON object at the top")
    return doc


def read_cityjson(path: Path, source: Source, skipped: Counter, doc: dict | None = None):
    doc = doc or _load_json(path)
    try:
        check_version(doc, path.name)
    except CityModelError as exc:
        raise ImportError_(str(exc)) from None
    srid = horizontal_srid(crs_from_cityjson(doc, source.crs, path))
    return srid, _cityjson_objects(doc, source, skipped)


def read_cityjsonseq(path: Path, source: Source, skipped: Counter):
    fh = path.open(encoding="utf-8")
    header = json.loads(fh.readline())
    if header.get("type") != "CityJSON":
        raise ImportError_(f"{path.name}: the first line must be a CityJSON header")
    srid = horizontal_srid(crs_from_cityjson(header, source.crs, path))

    def gen():
        with fh:
            for n, line in enumerate(fh, start=2):
                if not line.strip():
                    continue
                try:
                    feat = json.loads(line)
                except json.JSONDecodeError:
                    skipped[f"line {n}: not valid JSON"] += 1
                    continue
                feat["transform"] = header.get("transform")
                yield from _cityjson_objects(feat, source, skipped)
    return srid, gen()


def read_geojson(path: Path, source: Source, skipped: Counter):
    doc = _load_json(path)
    if doc.get("type") == "CityJSON":  # a city model named *.json
        return read_cityjson(path, source, skipped, doc)
    if doc.get("type") != "FeatureCollection":
        raise ImportError_(f"{path.name}: expected a GeoJSON FeatureCollection, "
                           f"found type {doc.get('type')!r}")
    srid = horizontal_srid(source.crs) if source.crs else 4326

    def gen():
        for f in doc.get("features", []):
            if not f.get("geometry"):
                skipped["no geometry"] += 1
                continue
            yield shape(f["geometry"]), dict(f.get("properties") or {})
    return srid, gen()


def read_csv(path: Path, source: Source, skipped: Counter):
    srid = horizontal_srid(source.crs) if source.crs else 4326

    def gen():
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                try:
                    x, y = float(row.pop(source.x_field)), float(row.pop(source.y_field))
                except (TypeError, ValueError):
                    skipped["no coordinates"] += 1
                    continue
                yield shapely.Point(x, y), {k: _csv_value(v) for k, v in row.items()}
    return srid, gen()


def _csv_value(v: str):
    if v == "":
        return None
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def read_gpkg(path: Path, source: Source, skipped: Counter):
    import pyogrio

    df = pyogrio.read_dataframe(path)
    srid = df.crs.to_epsg() if df.crs else horizontal_srid(source.crs)

    def gen():
        for rec, geom in zip(df.drop(columns="geometry").to_dict("records"), df.geometry):
            if geom is None or geom.is_empty:
                skipped["no geometry"] += 1
                continue
            yield geom, {k: (None if v != v else v) for k, v in rec.items()}  # NaN -> None
    return srid, gen()


RESERVED = {"fid", "geom", "_geom84", "id"}  # store columns; "id" is the feature id
READERS = {"cityjson": read_cityjson, "cityjsonseq": read_cityjsonseq,
           "geojson": read_geojson, "csv": read_csv, "gpkg": read_gpkg}


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


def _joined_rows(coll: Collection, store: FeatureStore, report: ImportReport):
    """Rows of an attribute table, each with the geometry of its key in another collection."""
    from .store import Query, StoreError

    join = coll.join
    where = coll.folder / "collection.yml"
    try:
        srid = store.extent(join.collection)["source_srid"]
        names = {f.name for f in store.fields(join.collection)}
    except StoreError:
        raise ImportError_(f"{where}: join.collection: import {join.collection!r} first "
                           "(the join needs its geometries)") from None
    if join.property not in names:
        raise ImportError_(f"{where}: join.property: {join.collection!r} has no property "
                           f"{join.property!r}")
    native = store.query(join.collection, Query(limit=1_000_000, crs=f"EPSG:{srid}"))
    wgs = store.query(join.collection, Query(limit=1_000_000))
    geoms = {f["properties"][join.property]: (shape(f["geometry"]), shape(g["geometry"]))
             for f, g in zip(native.features, wgs.features)}
    rows = []
    for source in coll.sources:
        path = coll.source_path(source)
        if source.format == "csv":
            with path.open(encoding="utf-8", newline="") as fh:
                table = [{k: _csv_value(v) for k, v in r.items()} for r in csv.DictReader(fh)]
        else:
            import pyogrio

            df = pyogrio.read_dataframe(path, read_geometry=False)
            table = [{k: (None if v != v else v) for k, v in r.items()}
                     for r in df.to_dict("records")]
        if table and join.key not in table[0]:
            raise ImportError_(f"{where}: join.key: no column {join.key!r} in {path.name}")
        for row in table:
            key = row.get(join.key)
            if key in (None, ""):
                report.skipped[f"missing {join.key}"] += 1
            elif str(key) not in geoms and key not in geoms:
                report.skipped[f"unmatched {join.key} (not in {join.collection})"] += 1
            else:
                g, g84 = geoms.get(key) or geoms[str(key)]
                rows.append((g, g84, {**source.attributes, **row}))
    _numeric_columns(rows, report)
    if coll.disclosure:
        from .disclosure import DisclosurePolicy, protect

        policy = DisclosurePolicy.from_config(coll.disclosure)
        present = {k for _, _, p in rows for k in p}
        for name in sorted(policy.fields() - present):
            raise ImportError_(f"{where}: disclosure: {name!r} is in no source")
        protected = []
        for g, g84, props in rows:
            safe, hidden = protect(props, policy)
            for name in hidden:
                report.suppressed[name] += 1
            protected.append((g, g84, safe))
        rows = protected
    return rows, srid


def _numeric_columns(rows, report: ImportReport) -> None:
    """In a column of numbers, a value that is not one is a type error: counted, emptied."""
    columns = {k for _, _, p in rows for k in p}
    for name in columns:
        values = [p.get(name) for _, _, p in rows]
        numbers = sum(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        others = [v for v in values if isinstance(v, str)]
        if numbers and others and numbers >= len(others):
            report.skipped[f"type error in {name} (not a number), left empty"] += len(others)
            for _, _, p in rows:
                if isinstance(p.get(name), str):
                    p[name] = None


def import_collection(coll: Collection, store: FeatureStore, progress: bool = True) -> ImportReport:
    report = ImportReport(coll.id)
    if coll.join:
        joined, srid = _joined_rows(coll, store, report)
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
