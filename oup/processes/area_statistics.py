"""``area-statistics``: a collection aggregated over the polygons of another (buildings
over neighbourhoods, observations of a week over districts).

A feature counts in an area when its centroid lies inside it (a point: the point
itself; on the boundary: in neither). ``count`` is the number of features in the area
(with a value of ``property``, when one is named); the other statistics are over the
values of ``property``: sum, mean, min, max and percentiles ``p0`` to ``p100`` (linear
between the closest ranks). The store narrows the features to the areas' bounding box
and the time window; the geometry test is shapely's, on both stores (the GeoPackage
has no spatial SQL).

The input's disclosure control applies to the answer as it applies to what is
published (``oup.catalog.disclosure``): an area with fewer features than the input's
threshold (the largest ``min_count`` of its rules; for a restricted input without
rules, ``RESTRICTED_MIN_COUNT``) has every statistic suppressed, and counts (and the
sums of a rounded property) are rounded as its rules round.
"""
from __future__ import annotations

import re

import numpy as np

from oup.catalog import Classification, Collection
from oup.catalog.disclosure import DisclosurePolicy, DisclosureRule, protect
from oup.processes import Context, InputError, features_output
from oup.store.base import Query

STATISTIC = r"count|sum|mean|min|max|p(?:100|[1-9]?[0-9])"
RESTRICTED_MIN_COUNT = 5  # CBS's smallest publishable count, for restricted inputs

DESCRIPTION = {
    "title": "Statistics per area",
    "description": "Aggregates a collection over the polygons of another: one feature per "
                   "area with the statistics asked for. The input's disclosure rules apply "
                   "to the answer.",
    "keywords": ["statistics", "aggregation", "zonal"],
    "inputs": {
        "collection": {"title": "the collection to aggregate", "schema": {"type": "string"}},
        "areas": {"title": "the collection of the areas (polygons)",
                  "schema": {"type": "string"}},
        "statistics": {"title": "the statistics: count, sum, mean, min, max, p50, p90, ...",
                       "schema": {"type": "array", "minItems": 1, "uniqueItems": True,
                                  "items": {"type": "string", "pattern": f"^({STATISTIC})$"}}},
        "property": {"title": "the numeric property the statistics other than count are of",
                     "schema": {"type": "string"}, "minOccurs": 0},
        "datetime": {"title": "a time window: an RFC 3339 instant or interval (start/end, "
                              "'..' for an open end)",
                     "schema": {"type": "string"}, "minOccurs": 0},
    },
    "outputs": {"result": features_output(
        "one feature per area, the statistics as its properties")},
}


def check(inputs: dict, context: Context) -> dict:
    from oup.http.params import parse_datetime

    coll = context.collection(inputs["collection"], "collection")
    context.collection(inputs["areas"], "areas")
    prop = inputs.get("property")
    if prop is None and set(inputs["statistics"]) - {"count"}:
        raise InputError("input 'property': the statistics other than count are of a "
                         "property; name one", "property")
    if prop is not None and not coll.derived_from and context.store is not None:
        names = {f.name for f in context.store.fields(coll.id)}
        if prop not in names:
            raise InputError(f"input 'property': {coll.id} has no property {prop!r}; it has "
                             f"{', '.join(sorted(names))}", "property")
    if "datetime" in inputs:
        try:
            parse_datetime(inputs["datetime"])
        except InputError:
            raise
        except ValueError as exc:
            raise InputError(f"input 'datetime': {exc}", "datetime") from None
    return inputs


def execute(inputs: dict, context: Context) -> dict:
    import shapely
    from shapely.geometry import mapping, shape

    from oup.http.params import parse_datetime

    coll = context.collection(inputs["collection"], "collection")
    areas_coll = context.collection(inputs["areas"], "areas")
    prop, wanted = inputs.get("property"), list(inputs["statistics"])
    areas = [f for f in context.features(areas_coll, Query())
             if f.get("geometry") and f["geometry"]["type"] in ("Polygon", "MultiPolygon")]
    if not areas:
        raise InputError(f"input 'areas': {areas_coll.id} has no polygons", "areas")
    polygons = [shape(f["geometry"]) for f in areas]
    tree = shapely.STRtree(polygons)
    context.progress(5, f"{len(areas)} areas")
    values: list[list[float]] = [[] for _ in areas]
    counts = np.zeros(len(areas), dtype=np.int64)
    q = Query(bbox=tuple(shapely.total_bounds(polygons)),
              interval=parse_datetime(inputs.get("datetime")))
    read, batch = 0, []
    for feature in context.features(coll, q):
        batch.append(feature)
        if len(batch) == 5000:
            _count(batch, tree, prop, values, counts)
            read += len(batch)
            batch = []
            context.progress(min(90, 5 + read // 5000), f"{read} features read")
    _count(batch, tree, prop, values, counts)
    policy = _policy(coll, prop, wanted)
    out = []
    for i, area in enumerate(areas):
        stats = {name: _statistic(name, values[i], int(counts[i])) for name in wanted}
        if policy is not None:
            stats, _ = protect({**stats, "count": int(counts[i])}, policy)
            stats = {k: v for k, v in stats.items() if k in wanted}
        props = {"area": area.get("id")}
        if areas_coll.title_field:
            props[areas_coll.title_field] = (area.get("properties") or {}).get(
                areas_coll.title_field)
        out.append({"type": "Feature", "id": area.get("id"), "geometry": mapping(
            polygons[i]), "properties": {**props, **stats}})
    context.progress(100, "done")
    return {"type": "FeatureCollection", "features": out, "numberReturned": len(out)}


def _count(batch: list[dict], tree, prop: str | None, values, counts) -> None:
    import shapely

    kept = []
    for f in batch:
        if not f.get("geometry"):
            continue
        value = (f.get("properties") or {}).get(prop) if prop else 0.0
        if value is None:
            continue  # no value (or suppressed at publication): not counted
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"input 'property': {prop} is not numeric ({value!r})",
                             "property")
        kept.append((shapely.from_geojson(_json(f["geometry"])), float(value)))
    if not kept:
        return
    centroids = shapely.centroid(np.array([g for g, _ in kept]))
    inside = tree.query(centroids, predicate="within")
    for point, area in inside.T:
        values[area].append(kept[point][1])
        counts[area] += 1


def _json(geometry: dict) -> str:
    import orjson

    return orjson.dumps(geometry).decode()


def _statistic(name: str, values: list[float], count: int):
    if name == "count":
        return count
    if not values:
        return None
    a = np.asarray(values)
    if name == "sum":
        return float(a.sum())
    if name == "mean":
        return float(a.mean())
    if name == "min":
        return float(a.min())
    if name == "max":
        return float(a.max())
    return float(np.percentile(a, int(re.fullmatch(r"p(\d+)", name)[1])))


def _policy(coll: Collection, prop: str | None, wanted: list[str]) -> DisclosurePolicy | None:
    """The input's disclosure control, as it applies to statistics per area."""
    rules = coll.disclosure.rules if coll.disclosure else []
    thresholds = [r.min_count for r in rules if r.min_count]
    if not thresholds and coll.classification == Classification.restricted:
        thresholds = [RESTRICTED_MIN_COUNT]
    rounding = [r.round_to for r in rules if r.round_to]
    if not thresholds and not rounding:
        return None
    names = tuple(dict.fromkeys(["count", *wanted]))
    out = []
    if thresholds:  # the area's count is the group whose size decides
        out.append(DisclosureRule(names, min_group_size=max(thresholds)))
    if rounding:
        counted = [n for n in names if n == "count" or (
            n in ("sum", "min", "max") or n.startswith("p")) and any(
            r.round_to and prop in r.fields for r in rules)]
        out.append(DisclosureRule(tuple(counted), round_to=max(rounding)))
    return DisclosurePolicy(group_size_field="count", secret_values=(), rules=out)
