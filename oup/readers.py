"""Readers of catalogue sources: each turns one source format into (geometry in the
source CRS, properties) records and says which CRS that is. What cannot be read is an
``ImportError_``; what is skipped is counted, with its reason, in ``skipped``.
"""
from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import shape

from .catalog import Source
from .cityjson import (CityModelError, check_version, declared_crs, lod_key, lod_of, surfaces,
                       vertices_of)


class ImportError_(ValueError):
    """A source cannot be read at all (wrong format, no CRS, unreadable)."""


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


def _check_version(doc: dict, path: Path) -> None:
    try:
        check_version(doc, path.name)
    except CityModelError as exc:
        raise ImportError_(str(exc)) from None


def crs_from_cityjson(doc: dict, fallback: str | None, path: Path) -> str:
    """The model's CRS, however its file spells it (``oup.cityjson.reference_crs``)."""
    try:
        return declared_crs(doc, fallback, path)[0]
    except CityModelError as exc:
        raise ImportError_(str(exc).replace("give --crs", "give crs in the source")) from None


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
    _check_version(doc, path)
    srid = horizontal_srid(crs_from_cityjson(doc, source.crs, path))
    return srid, _cityjson_objects(doc, source, skipped)


def read_cityjsonseq(path: Path, source: Source, skipped: Counter):
    fh = path.open(encoding="utf-8")
    header = json.loads(fh.readline())
    if header.get("type") != "CityJSON":
        raise ImportError_(f"{path.name}: the first line must be a CityJSON header")
    _check_version(header, path)
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
                yield shapely.Point(x, y), {k: csv_value(v) for k, v in row.items()}
    return srid, gen()


def csv_value(v: str):
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


READERS = {"cityjson": read_cityjson, "cityjsonseq": read_cityjsonseq,
           "geojson": read_geojson, "csv": read_csv, "gpkg": read_gpkg}
