"""A feature a client sends, checked against its collection and made into the record
the importer writes (``oup.store.base.Feature``): a write is an import of one feature.

What the collection takes is what its import made of it: its fields and their types, its
geometry type, its coordinate dimension and its CRS of record. A body that does not fit
gets a 400 (not a feature at all) or a 422 (a feature, but not one this collection takes)
that names the property at fault.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import numpy as np
import shapely
import shapely.geometry

from oup.errors import InvalidQuery, Unprocessable
from oup.store.base import Feature, Field
from oup.store.geometry import SUPPORTED_CRS, crs_code, from_crs84, to_crs84

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
# a declared geometry type -> the GeoJSON types a feature may have (the single form is
# stored as the multi form, as the import does)
_TAKES = {"POINT": {"Point"}, "LINESTRING": {"LineString"}, "POLYGON": {"Polygon"},
          "MULTIPOINT": {"MultiPoint", "Point"},
          "MULTILINESTRING": {"MultiLineString", "LineString"},
          "MULTIPOLYGON": {"MultiPolygon", "Polygon"}}
_MULTI = {"Point": shapely.MultiPoint, "LineString": shapely.MultiLineString,
          "Polygon": shapely.MultiPolygon}


def parse_body(raw: bytes, what: str = "a GeoJSON Feature") -> dict:
    """The JSON object a client sent, or a 400 saying why it is not one (``what``: what
    it should be)."""
    try:
        doc = json.loads(raw or b"null")
    except ValueError as exc:
        raise InvalidQuery(f"the body is not JSON: {exc}", "body") from None
    if not isinstance(doc, dict):
        raise InvalidQuery(f"the body must be a JSON object ({what})", "body")
    return doc


def content_crs(header: str | None) -> str:
    """The CRS of the sent coordinates (OGC API Features Part 2 ``Content-Crs``, in
    angle brackets or bare); CRS84 when not said."""
    if not header:
        return CRS84
    uri = header.strip().removeprefix("<").removesuffix(">")
    if uri not in SUPPORTED_CRS:
        raise InvalidQuery(f"Content-Crs {uri!r} is not one OUP reads; use one of "
                           f"{', '.join(SUPPORTED_CRS)}", "Content-Crs")
    return uri


def merge_patch(target, patch):
    """JSON Merge Patch (RFC 7396)."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def feature_record(doc: dict, fields: list[Field], meta: dict, crs: str, *,
                   time_field: str | None = None, id_field: str | None = None,
                   fid: str | None = None) -> Feature:
    """The stored form of the GeoJSON Feature ``doc`` (coordinates in ``crs``) for a
    collection with ``fields`` and layer metadata ``meta``; ``fid``: the id in the path."""
    if doc.get("type") != "Feature":
        raise InvalidQuery("the body must be a GeoJSON Feature (\"type\": \"Feature\")", "type")
    props = doc.get("properties") or {}
    if not isinstance(props, dict):
        raise InvalidQuery("properties must be an object", "properties")
    if fid is not None and doc.get("id") not in (None, fid) and str(doc.get("id")) != str(fid):
        raise InvalidQuery(f"the body's id {doc.get('id')!r} is not the id in the path "
                           f"{fid!r}", "id")
    props = _typed(props, fields, time_field)
    if id_field and fid is not None:
        if props.get(id_field) not in (None, fid) and str(props.get(id_field)) != str(fid):
            raise Unprocessable(f"{id_field} {props[id_field]!r} is not the id in the path",
                                id_field)
        props[id_field] = _as(fields, id_field, fid)
    geometry, geometry84 = _geometry(doc.get("geometry"), meta, crs)
    return Feature(geometry, geometry84, props)


def _typed(props: dict, fields: list[Field], time_field: str | None) -> dict:
    kinds = {f.name: f.type for f in fields}
    out = {}
    for name, value in props.items():
        if name not in kinds:
            raise Unprocessable(f"unknown property {name!r}; the collection has "
                                f"{', '.join(sorted(kinds)) or 'no properties'}", name)
        if value is not None:
            value = _check(name, kinds[name], value)
        out[name] = value
    if time_field and out.get(time_field) is None:  # the time of the thing: now, if unsaid
        out[time_field] = datetime.now(timezone.utc).replace(microsecond=0)
    return out


def _check(name: str, kind: str, value):
    ok = {"string": isinstance(value, str),
          "integer": isinstance(value, int) and not isinstance(value, bool)
          and -2**63 <= value < 2**63,
          "number": isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value),
          "boolean": isinstance(value, bool),
          "date-time": isinstance(value, str)}.get(kind, True)
    if not ok:
        raise Unprocessable(f"{name} must be {'a' if kind != 'integer' else 'an'} {kind}, got "
                            f"{json.dumps(value)[:60]}", name)
    if kind == "date-time":
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise Unprocessable(f"{name} must be an RFC 3339 date-time, got {value!r}",
                                name) from None
    return value


def _as(fields: list[Field], name: str, text: str):
    kind = next((f.type for f in fields if f.name == name), "string")
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise Unprocessable(f"{name} is a whole number here, not {text!r}", name) from None
    return text


def _geometry(raw, meta: dict, crs: str):
    if raw is None:
        return None, None
    try:
        geom = shapely.geometry.shape(raw)
    except Exception as exc:  # shapely raises several kinds for a malformed geometry
        raise InvalidQuery(f"geometry is not GeoJSON: {str(exc)[:120]}", "geometry") from None
    declared = (meta.get("geometry_type") or "GEOMETRY").upper()
    takes = _TAKES.get(declared)
    if takes is not None and geom.geom_type not in takes:
        raise Unprocessable(f"geometry: the collection takes {declared.title()}, not "
                            f"{geom.geom_type}", "geometry")
    if geom.is_empty or not all(math.isfinite(c) for c in shapely.get_coordinates(
            geom, include_z=geom.has_z).ravel()):
        raise Unprocessable("geometry has no coordinates, or coordinates that are not "
                            "finite numbers", "geometry")
    if not geom.is_valid:
        raise Unprocessable(f"geometry is not valid: {shapely.is_valid_reason(geom)}",
                            "geometry")
    if declared.startswith("MULTI") and geom.geom_type in _MULTI:
        geom = _MULTI[geom.geom_type]([geom])
    if meta.get("has_z") and not geom.has_z:  # as the import: the collection is 3D
        geom = shapely.force_3d(geom)
    elif meta.get("has_z") is False and geom.has_z:
        raise Unprocessable("geometry has heights and this collection has none; send x, y "
                            "only", "geometry")
    source = meta.get("source_crs") or "OGC:CRS84"
    source = crs_code(source) if source in SUPPORTED_CRS else source
    # sent in the CRS of record (a CityJSONFeature is in its model's), whatever that is
    code = source if crs == meta.get("source_crs") else crs_code(crs)
    geom84 = _with_heights(to_crs84(geom, code), geom)
    if source in _LONGITUDE_FIRST:
        # stored as imported: longitude first, whatever the authority's axis order says
        # (and WGS 84 and ETRS89 taken equal, as everywhere in OUP: oup.geodesy)
        return geom84, geom84
    if source == code:  # the data of record as it was sent
        return geom, geom84
    return from_crs84(np.array([geom84]), source)[0], geom84


_LONGITUDE_FIRST = ("OGC:CRS84", "EPSG:4326", "EPSG:4258")


def _with_heights(moved, original):
    """``moved`` (x, y reprojected) with the heights of ``original``, vertex for vertex."""
    if not original.has_z:
        return moved
    z = shapely.get_coordinates(original, include_z=True)[:, 2]
    return shapely.set_coordinates(shapely.force_3d(moved),
                                   np.column_stack([shapely.get_coordinates(moved), z]))
