"""``sun-and-shadow``: the shadows buildings cast over an area, step by step through a day
or a span of days, and the hours of direct sun on the ground there; with proposed
buildings, the difference they make. The computation is ``sun_shadow``'s (buildings as
prisms: footprint and height); this module reads the buildings the caller may see.

The area is a bounding box in CRS84. The buildings read are those within 300 m of it
(shadows reach out of the area they are cast from: 300 m holds a 40 m building's with
the sun above 7.6 degrees). A building's height is its ``height`` property (else
``roof_level`` - ``ground_level``). Proposed buildings (``scenario``) are a GeoJSON
FeatureCollection of footprints in CRS84, each with its ``height`` in metres; one with
the ``id`` of an existing building replaces it, and a height of 0 takes it away. Or
``scenario`` is the id of a named scenario of the buildings (``/scenarios``), read as the
caller may see it: what it adds and changes stands as it proposes, what it removes is
taken away.
"""
from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from shapely.geometry import shape

from oup.processes import Context, InputError, box, box_input, instant, instant_input
from oup.processes.sun_shadow import (Building, SunShadowInputError, crs84_of, site_of,
                                      sun_and_shadow, to_geojson)
from oup.store.base import Query

RD = "EPSG:28992"
REACH = 300.0  # metres around the area whose buildings can shade it
LOCAL = ZoneInfo("Europe/Amsterdam")  # a date means the local day

DESCRIPTION = {
    "title": "Sun and shadow",
    "description": "The shadows the buildings cast over an area at each time step, and the "
                   "hours of direct sun on a grid of ground points (or on given points), "
                   "for a day or a span of time; with proposed buildings, the same for the "
                   "city with them, and the difference.",
    "keywords": ["sun", "shadow", "daylight", "planning", "scenario"],
    "inputs": {
        "area": box_input("the area"),
        "date": {"title": "a day (local time, Europe/Amsterdam), e.g. 2026-06-21",
                 "schema": {"type": "string", "format": "date"}, "minOccurs": 0},
        "start": instant_input("or the start of a span", default="the date's start"),
        "end": instant_input("and its end", default="the date's end"),
        "step": {"title": "the time step in minutes (default 15)",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 1440},
                 "minOccurs": 0},
        "collection": {"title": "the buildings (default: buildings)",
                       "schema": {"type": "string"}, "minOccurs": 0},
        "points": {"title": "points to give sun hours for, [[lon, lat], ...] (default: a "
                            "grid over the area)",
                   "schema": {"type": "array", "items": {
                       "type": "array", "items": {"type": "number"}, "minItems": 2,
                       "maxItems": 2}}, "minOccurs": 0},
        "grid_spacing": {"title": "the grid's spacing in metres (default 10)",
                         "schema": {"type": "number", "minimum": 1, "maximum": 1000},
                         "minOccurs": 0},
        "shadows": {"title": "give the shadow polygons of each step (default true)",
                    "schema": {"type": "boolean"}, "minOccurs": 0},
        "scenario": {"title": "proposed buildings: a GeoJSON FeatureCollection (CRS84), "
                              "each with its height in metres; or the id of a scenario of "
                              "the buildings (see /scenarios)",
                     "schema": {"oneOf": [{"type": "object"}, {"type": "string"}]},
                     "minOccurs": 0},
    },
    "outputs": {"result": {
        "title": "shadows (a FeatureCollection, a feature per step) and sunHours (a "
                 "FeatureCollection of points: sunHours, and with a scenario "
                 "scenarioSunHours and difference)",
        "schema": {"type": "object", "properties": {
            "shadows": {"type": "object"}, "sunHours": {"type": "object"}}}}},
}


def _span(inputs: dict) -> tuple[datetime, datetime]:
    if "date" in inputs:
        if "start" in inputs or "end" in inputs:
            raise InputError("input 'date': give a date, or start and end, not both", "date")
        try:
            day = date.fromisoformat(inputs["date"])
        except ValueError:
            raise InputError(f"input 'date': {inputs['date']!r} is not a date (YYYY-MM-DD)",
                             "date") from None
        start = datetime.combine(day, time(0), LOCAL)
        return start, datetime.combine(day + timedelta(days=1), time(0), LOCAL)
    if "start" not in inputs or "end" not in inputs:
        raise InputError("input 'date': give a date, or start and end", "date")
    return instant(inputs["start"], "start"), instant(inputs["end"], "end")


def _to_rd(geoms: np.ndarray) -> np.ndarray:
    from oup.store.geometry import from_crs84

    return from_crs84(geoms, RD)


def check(inputs: dict, context: Context) -> dict:
    coll = context.collection(inputs.get("collection", "buildings"), "collection")
    if isinstance(inputs.get("scenario"), str):  # one the caller may not see: a 404
        context.scenario(inputs["scenario"], "scenario", coll)
    box(inputs["area"], "area", empty=False)
    start, end = _span(inputs)
    if end <= start:
        raise InputError("input 'end': must come after 'start'", "end")
    if not isinstance(inputs.get("scenario"), str):
        _scenario(inputs.get("scenario"))
    return inputs


def _scenario(doc) -> list[Building] | None:
    """The proposed buildings, as prisms in RD."""
    if doc is None:
        return None
    if doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        raise InputError("input 'scenario': a GeoJSON FeatureCollection", "scenario")
    out = []
    for n, f in enumerate(doc["features"]):
        props = (f or {}).get("properties") or {}
        height = props.get("height")
        try:
            footprint = shape(f["geometry"])
        except Exception:  # shapely raises several kinds for a malformed geometry
            raise InputError(f"input 'scenario': feature {n} has no GeoJSON geometry",
                             "scenario") from None
        if footprint.geom_type not in ("Polygon", "MultiPolygon") or not footprint.is_valid:
            raise InputError(f"input 'scenario': feature {n} is not a valid (multi)polygon",
                             "scenario")
        if not isinstance(height, (int, float)) or isinstance(height, bool) or height < 0:
            raise InputError(f"input 'scenario': feature {n} needs its height (metres, >= 0)",
                             "scenario")
        out.append(Building(str(f.get("id", f"proposed-{n}")),
                            _to_rd(np.array([footprint]))[0], float(height)))
    return out


def _named_scenario(changes: list[dict], reach) -> list[Building]:
    """A named scenario's buildings (``Context.scenario``, in RD) near the area, as
    proposed buildings: one it removes has height 0."""
    out = []
    for f in changes:
        if f.get("geometry") is None:
            continue
        footprint = shape(f["geometry"])
        height = 0.0 if f["properties"]["oup:change"] == "removed" else _height(f["properties"])
        if height is not None and footprint.intersects(reach):
            out.append(Building(str(f["id"]), footprint, max(0.0, height)))
    return out


def _height(props: dict) -> float | None:
    h = props.get("height")
    if isinstance(h, (int, float)) and not isinstance(h, bool):
        return float(h)
    roof, ground = props.get("roof_level"), props.get("ground_level")
    if isinstance(roof, (int, float)) and isinstance(ground, (int, float)):
        return float(roof) - float(ground)
    return None


def execute(inputs: dict, context: Context) -> dict:
    coll = context.collection(inputs.get("collection", "buildings"), "collection")
    start, end = _span(inputs)
    area84 = shapely.box(*inputs["area"])
    area = _to_rd(np.array([area84]))[0]
    reach = area.buffer(REACH)
    from oup.store.geometry import to_crs84

    wide = to_crs84(reach.envelope, RD).bounds
    buildings = []
    for f in context.features(coll, Query(bbox=tuple(wide), crs=RD)):
        height = _height(f["properties"])
        if f.get("geometry") is None or height is None or height <= 0:
            continue
        footprint = shape(f["geometry"])
        if footprint.geom_type in ("Polygon", "MultiPolygon") and footprint.intersects(reach):
            buildings.append(Building(str(f["id"]), footprint, height))
    proposed = inputs.get("scenario")
    proposed = _named_scenario(context.scenario(proposed, "scenario", coll, RD), reach) \
        if isinstance(proposed, str) else _scenario(proposed)
    context.progress(10, f"{len(buildings)} buildings read")
    points = None
    if inputs.get("points"):
        points = shapely.get_coordinates(_to_rd(shapely.points(inputs["points"])))
    try:
        result = sun_and_shadow(
            buildings, area, start, end, timedelta(minutes=inputs.get("step", 15)),
            points=points, grid_spacing=inputs.get("grid_spacing", 10.0),
            scenario=proposed, shadows=inputs.get("shadows", True), threads=context.threads,
            progress=lambda done: context.progress(10 + 85 * done, "sun and shadow"),
            **asdict(site_of(area)))
    except SunShadowInputError as exc:
        raise InputError(str(exc), getattr(exc, "parameter", None)) from None
    return to_geojson(result, crs84_of(RD))
