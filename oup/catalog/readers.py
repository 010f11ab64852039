"""Readers of catalogue sources: each turns one source format into (geometry in the
source CRS or None, properties) records and says which CRS that is. What cannot be read
is an ``ImportError_`` naming the file (and the row or feature); what is skipped is
counted, with its reason, in ``report.skipped``. GDAL (pyogrio) reads every format but
the city models, GeoJSON and CSV, which are read here to keep what GDAL would rename.
``read_rows`` reads the attribute tables extensions are joined from, in any of these.
"""
from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import shape

from oup.catalog import Source
from oup.catalog.tables import TableError, read_csv_rows
from oup.cityjson import (CityModelError, city_model_of, lod_key, lod_of, open_city_model,
                       surfaces)


class ImportError_(ValueError):
    """A source cannot be read at all (wrong format, no CRS, unreadable). The message
    names the file, and the row or feature where known."""


# -- CRS -----------------------------------------------------------------------

def source_crs(crs, where: str) -> str:
    """The horizontal CRS of a source as the store keeps it: ``EPSG:n`` where the EPSG
    registry has it, else its WKT2. Whatever PROJ reads is taken (OGC:CRS84, CRS84h, ESRI
    codes, a GeoPackage's own definitions); CRS84 and EPSG:4326 are both kept as 4326,
    the GeoPackage's longitude-first convention."""
    import pyproj

    try:
        c = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError:
        raise ImportError_(f"{where}: PROJ cannot read the CRS {str(crs)[:80]!r}") from None
    if c.is_compound:
        c = c.sub_crs_list[0]
    if c.is_geographic and len(c.axis_info) == 3:
        c = c.to_2d()
    if c.equals("OGC:CRS84", ignore_axis_order=True):
        return "EPSG:4326"
    code = c.to_epsg(min_confidence=100)
    return f"EPSG:{code}" if code else c.to_wkt()


def _city_model(path: Path, source: Source, seq: bool, doc: dict | None):
    """The opened city model (``oup.cityjson``, as the tiler opens it), or why not."""
    try:
        return (open_city_model(path, source.crs, seq) if doc is None
                else city_model_of(doc, path, source.crs))
    except CityModelError as exc:
        raise ImportError_(str(exc).replace("give --crs", "give crs in the source")) from None


# -- readers: each yields (geometry in source srid, properties) ----------------

def city_object_footprints(objs: dict, verts: np.ndarray, lod: str | None, report):
    """(footprint, properties) of each top-level CityObject of a city model's part (with
    the vertices they index, in the model's CRS) at ``lod`` (default: the highest each
    has): its attributes, and ground_level, roof_level and height from its geometry."""
    for oid, obj in objs.items():
        if obj.get("parents"):
            continue  # BuildingParts and the like belong to their parent's feature
        members = [obj] + [objs[c] for c in obj.get("children", []) if c in objs]
        geoms = [g for m in members for g in m.get("geometry", [])]
        if not geoms:
            report.skipped["no geometry"] += 1
            continue
        chosen_lod = lod or max({lod_of(g) for g in geoms}, key=lod_key)
        chosen = [g for g in geoms if lod_of(g) == chosen_lod]
        if not chosen:
            report.skipped[f"no LoD {chosen_lod}"] += 1
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
            report.skipped["degenerate footprint (only vertical or empty surfaces)"] += 1
            continue
        footprint = shapely.union_all(rings2d)
        footprint = shapely.set_precision(footprint, 0.001)  # mm, as the source
        if footprint.is_empty:
            report.skipped["degenerate footprint"] += 1
            continue
        z = np.concatenate(zs)
        props = dict(obj.get("attributes") or {})
        props = {k: v for k, v in props.items() if not isinstance(v, (dict, list))}
        props.update(cityobject_id=oid, cityobject_type=obj["type"], lod=chosen_lod,
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


def read_city_model(path: Path, source: Source, report, seq: bool = False,
                    doc: dict | None = None):
    """CityJSON, or CityJSONSeq (``seq``): the footprints of its top-level CityObjects. A
    CityJSONSeq line that is not JSON is skipped and counted. ``doc``: the CityJSON
    document, where it has been read already."""
    model = _city_model(path, source, seq, doc)
    report.notes.extend(model.warnings)
    crs = source_crs(model.crs, path.name)

    def skipped(n: int) -> None:
        report.skipped[f"line {n}: not valid JSON"] += 1

    def records():
        for unit in model.units:
            for doc, verts in unit.documents(skipped):
                yield from city_object_footprints(doc["CityObjects"], verts, source.lod,
                                                  report)
    return crs, records()


def _geometry(value, where: str):
    """A GeoJSON geometry as shapely; None for none (a feature may have no geometry)."""
    if value is None:
        return None
    try:
        geom = shape(value)
    except (shapely.errors.ShapelyError, ValueError, TypeError, KeyError, AttributeError,
            IndexError) as exc:
        raise ImportError_(f"{where}: unparsable geometry ({type(exc).__name__}: "
                           f"{str(exc)[:80]})") from None
    return _checked(geom, where)


def _checked(geom, where: str):
    if geom is None or geom.is_empty:
        return None
    if not np.isfinite(shapely.get_coordinates(geom)).all():
        raise ImportError_(f"{where}: the geometry has NaN or infinite coordinates")
    return geom


def read_geojson(path: Path, source: Source, report):
    doc = _load_json(path)
    if doc.get("type") == "CityJSON":  # a city model named *.json
        return read_city_model(path, source, report, doc=doc)
    if doc.get("type") != "FeatureCollection":
        raise ImportError_(f"{path.name}: expected a GeoJSON FeatureCollection, "
                           f"found type {str(doc.get('type'))[:40]!r}")
    features = doc.get("features")
    if not isinstance(features, list):
        raise ImportError_(f"{path.name}: features must be a list")
    crs = source_crs(source.crs, path.name) if source.crs else "EPSG:4326"

    def gen():
        for n, f in enumerate(features, start=1):
            where = f"{path.name}: feature {n}"
            props = f.get("properties") if isinstance(f, dict) else None
            if not isinstance(f, dict) or not isinstance(props or {}, dict):
                raise ImportError_(f"{where}: not a GeoJSON Feature with properties")
            yield _geometry(f.get("geometry"), where), dict(props or {})
    return crs, gen()


def _points(path: Path, source: Source, names: list[str], rows: list[dict]):
    """Rows of a table as features: a point from x_field/y_field, or no geometry."""
    if not source.x_field:
        return ((None, row) for row in rows)
    for column in (source.x_field, source.y_field):
        if column not in names:
            raise ImportError_(f"{path.name}: no column {column!r} (x_field/y_field); the "
                               f"columns are {', '.join(map(repr, names))[:200]}")

    def gen():
        for n, row in enumerate(rows, start=2):
            x, y = row.pop(source.x_field), row.pop(source.y_field)
            if x is None and y is None:
                yield None, row
                continue
            for name, v in ((source.x_field, x), (source.y_field, y)):
                if not isinstance(v, (int, float)) or isinstance(v, bool):
                    raise ImportError_(f"{path.name}: row {n}: {name} {str(v)[:40]!r} is not "
                                       "a number")
            yield _checked(shapely.Point(x, y), f"{path.name}: row {n}"), row
    return gen()


def read_csv(path: Path, source: Source, report):
    crs = source_crs(source.crs, path.name) if source.crs else "EPSG:4326"
    try:
        names, rows = read_csv_rows(path, source, report)
    except TableError as exc:
        raise ImportError_(str(exc)) from None
    return crs, _points(path, source, names, rows)


# what GDAL calls each format: a file that opens as another one is not what its name says
_DRIVERS = {"gpkg": "GPKG", "shapefile": "ESRI Shapefile", "flatgeobuf": "FlatGeobuf",
            "gml": "GML", "kml": ("KML", "LIBKML"), "geojsonseq": "GeoJSONSeq",
            "xlsx": "XLSX", "ods": "ODS"}


def open_gdal(path: Path, source: Source, report, read_geometry: bool = True):
    """pyogrio's raw read of one layer: (meta, fids, WKB geometries, columns). What GDAL
    warns about goes to the report, not to stderr."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        read = _open_gdal(path, source, read_geometry)
    report.notes += [f"{path.name}: GDAL: {str(w.message)[:160]}" for w in caught[:3]]
    return read


def _open_gdal(path: Path, source: Source, read_geometry: bool):
    import pyogrio
    from pyogrio import errors

    if path.stat().st_size == 0:
        raise ImportError_(f"{path.name} is empty")
    expected = _DRIVERS.get(source.format)
    expected = expected if isinstance(expected, tuple) else (expected,)
    try:
        info = pyogrio.read_info(path, layer=source.layer)
        if info.get("driver") in expected:
            return pyogrio.raw.read(path, layer=source.layer, read_geometry=read_geometry,
                                    datetime_as_string=True)
    except (errors.DataSourceError, errors.DataLayerError) as exc:
        if path.suffix.lower() == ".zip":
            raise ImportError_(f"{path.name}: the zip holds no dataset GDAL reads (a .shp "
                               "with its .dbf and .shx?)") from None
        raise ImportError_(f"{path.name}: {_first_line(exc, path)}") from None
    except Exception as exc:  # noqa: BLE001 - pyogrio's own code fails on some damaged
        # files (an IndexError on a broken zip): whatever fails in there is the file's fault
        raise ImportError_(f"{path.name}: GDAL cannot read it ({type(exc).__name__}: "
                           f"{_first_line(exc, path)})") from None
    raise ImportError_(f"{path.name} is a {info.get('driver')} dataset, not {source.format}: "
                       "rename it or give format in the source")


def _declared_crs(found, source: Source, path: Path) -> str:
    """The CRS a file declares (``found``), else the source's ``crs``, as the store keeps it."""
    if not (found or source.crs):
        raise ImportError_(f"{path.name} does not say its CRS: give crs in the source")
    return source_crs(found or source.crs, path.name)


def _first_line(exc: Exception, path: Path) -> str:
    return (str(exc).splitlines() or [""])[0][:200].replace(str(path), path.name)


def gdal_value(value):
    """A value as pyogrio gives it, as the store takes it: NaN is no value."""
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return value.hex()
    return value


def read_rows(path: Path, source: Source, report) -> tuple[list[str], list[dict]]:
    """The header and rows of any attribute table: CSV here, every other format by GDAL."""
    if source.format == "csv":
        return read_csv_rows(path, source, report)
    meta, _, _, columns = open_gdal(path, source, report, read_geometry=False)
    names = list(meta["fields"])
    return names, [{k: gdal_value(v) for k, v in zip(names, values)}
                   for values in zip(*columns)] if names else []


def read_gdal(path: Path, source: Source, report):
    """Any vector format GDAL reads (Shapefile, zipped too, FlatGeobuf, GML, KML,
    GeoJSONSeq, GeoPackage), and sheets (XLSX, ODS) with x/y columns."""
    meta, _, wkbs, columns = open_gdal(path, source, report)
    names = list(meta["fields"])
    rows = [{k: gdal_value(v) for k, v in zip(names, values)} for values in zip(*columns)] \
        if names else [{} for _ in range(0 if wkbs is None else len(wkbs))]
    if wkbs is None or source.format in ("xlsx", "ods"):
        crs = source_crs(source.crs, path.name) if source.crs else "EPSG:4326"
        return crs, _points(path, source, names, rows)
    crs = _declared_crs(meta.get("crs"), source, path)

    def gen():
        for n, (wkb, row) in enumerate(zip(wkbs, rows), start=1):
            try:
                geom = None if wkb is None else shapely.from_wkb(wkb)
            except shapely.errors.GEOSException as exc:
                raise ImportError_(f"{path.name}: feature {n}: unparsable geometry "
                                   f"({str(exc)[:80]})") from None
            yield _checked(geom, f"{path.name}: feature {n}"), row
    return crs, gen()


def read_geoparquet(path: Path, source: Source, report):
    """GeoParquet. The GDAL inside pyogrio has no Parquet driver, so geopandas reads it
    with pyarrow: the file's ``geo`` metadata names the geometry column and its CRS."""
    import geopandas
    import pandas

    if path.stat().st_size == 0:
        raise ImportError_(f"{path.name} is empty")
    try:
        frame = geopandas.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow and geopandas fail in many ways on
        # a file that is not GeoParquet; each of them is the file's fault
        raise ImportError_(f"{path.name}: not a GeoParquet file ({type(exc).__name__}: "
                           f"{_first_line(exc, path)})") from None
    crs = _declared_crs(frame.crs.to_wkt() if frame.crs else None, source, path)
    names = [c for c in frame.columns if c != frame.geometry.name]
    columns = [[None if pandas.isna(v) else v.isoformat() if hasattr(v, "isoformat")
                else gdal_value(v) for v in frame[n].astype(object)] for n in names]
    rows = [dict(zip(names, values)) for values in zip(*columns)] if names \
        else [{} for _ in range(len(frame))]

    def gen():
        for n, (geom, row) in enumerate(zip(frame.geometry.values, rows), start=1):
            yield _checked(geom, f"{path.name}: feature {n}"), row
    return crs, gen()


READERS = {"cityjson": read_city_model, "cityjsonseq": partial(read_city_model, seq=True),
           "geojson": read_geojson, "csv": read_csv, "geoparquet": read_geoparquet, **dict.fromkeys(_DRIVERS, read_gdal)}
