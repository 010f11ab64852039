"""``area-statistics``: a collection aggregated over the polygons of another (buildings
over neighbourhoods, observations of a week over districts).

A feature counts in an area when its centroid lies inside it (a point: the point
itself; on the boundary: in neither). ``count`` is the number of features in the area
(with a value of ``property``, when one is named); the other statistics are over the
values of ``property``: sum, mean, min, max and percentiles ``p0`` to ``p100`` (linear
between the closest ranks). The store narrows the features to the areas' bounding box
and the time window; the geometry test is shapely's, on both stores (the GeoPackage
has no spatial SQL). Of observations, ``property`` is an observed property (say
``NO2``): each of its sensors goes to the area it stands in, and the store sums their
results per area in SQL (the GeoPackage: a seek per sensor in its sums per hour, and
the (sensor, time) index at the window's ragged ends; PostgreSQL: one scan) and finds
the percentiles exactly without sorting the values (``oup.store.ranks``: a sample
brackets each, one scan counts below and hands over the few inside), so the values
never come to the worker one by one.

The input's disclosure control applies to the answer as it applies to what is
published (``oup.catalog.disclosure``): an area with fewer features than the input's
threshold (the largest ``min_count`` of its rules; for a restricted input without
rules, ``RESTRICTED_MIN_COUNT``) has every statistic suppressed, and counts (and the
sums of a rounded property) are rounded as its rules round.
"""
from __future__ import annotations

import math

import numpy as np

from oup.catalog import Classification, Collection
from oup.catalog.disclosure import DisclosurePolicy, DisclosureRule, protect
from oup.processes import PAGE, Context, InputError, features_output, pages
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


def map_property(inputs: dict) -> str:
    """What a map of the answer colours the areas by: the first statistic asked for."""
    return inputs["statistics"][0]


def check(inputs: dict, context: Context) -> dict:
    from oup.http.params import parse_datetime

    coll = context.collection(inputs["collection"], "collection")
    context.collection(inputs["areas"], "areas")
    prop = inputs.get("property")
    if prop is None and set(inputs["statistics"]) - {"count"}:
        raise InputError("input 'property': the statistics other than count are of a "
                         "property; name one", "property")
    if prop is not None and coll.observations_of:
        observed = context.catalog[coll.observations_of].stream.properties
        if prop not in observed:
            raise InputError(f"input 'property': of observations, an observed property: "
                             f"one of {', '.join(observed)}", "property")
    elif prop is not None and coll.time_slices:
        raise InputError("input 'property': time slices are summaries already; ask the "
                         "observations", "collection")
    elif prop is not None and context.store is not None:
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


class Tally:
    """What the statistics of one area are made of."""

    def __init__(self, keep_values: bool):
        self.count, self.sum = 0, 0.0
        self.min, self.max = math.inf, -math.inf
        self.values: list[float] | None = [] if keep_values else None
        self.percentiles: dict[int, float] = {}  # known already (the store's), by rank

    def add(self, values: np.ndarray) -> None:
        if len(values):
            self.merge(len(values), float(values.sum()), float(values.min()),
                       float(values.max()))
            if self.values is not None:
                self.values.extend(values.tolist())

    def merge(self, count: int, total: float, lo: float, hi: float) -> None:
        self.count += count
        self.sum += total
        self.min, self.max = min(self.min, lo), max(self.max, hi)

    def statistic(self, name: str):
        if name == "count":
            return self.count
        if not self.count:
            return None
        if name in ("sum", "min", "max"):
            return float(getattr(self, name))
        if name == "mean":
            return self.sum / self.count
        rank = int(name[1:])
        if rank in self.percentiles:
            return float(self.percentiles[rank])
        return float(np.percentile(np.asarray(self.values), rank))


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
    interval = parse_datetime(inputs.get("datetime"))
    ranks = sorted({int(n[1:]) for n in wanted if n.startswith("p")})
    tallies = [Tally(bool(ranks) and not coll.observations_of) for _ in areas]
    if coll.observations_of:
        _observations(context, coll, prop, interval, tree, tallies, ranks)
    else:
        # the one property counted (none for counts alone): not every column of every row
        q = Query(bbox=tuple(shapely.total_bounds(polygons)), interval=interval,
                  select=[prop] if prop else [])
        read, batch = 0, []
        for feature in context.features(coll, q):
            batch.append(feature)
            if len(batch) == PAGE:
                _count(batch, tree, prop, tallies)
                read += len(batch)
                batch = []
                context.progress(min(90, 5 + read // PAGE), f"{read} features read")
        _count(batch, tree, prop, tallies)
    policy = _policy(coll, prop, wanted)
    out = []
    for i, area in enumerate(areas):
        stats = {name: tallies[i].statistic(name) for name in wanted}
        if policy is not None:
            stats, _ = protect({**stats, "count": tallies[i].count}, policy)
            stats = {k: v for k, v in stats.items() if k in wanted}
        props = {"area": area.get("id")}
        if areas_coll.title_field:
            props[areas_coll.title_field] = (area.get("properties") or {}).get(
                areas_coll.title_field)
        out.append({"type": "Feature", "id": area.get("id"), "geometry": mapping(
            polygons[i]), "properties": {**props, **stats}})
    context.progress(100, "done")
    return {"type": "FeatureCollection", "features": out, "numberReturned": len(out)}


def _count(batch: list[dict], tree, prop: str | None, tallies: list[Tally]) -> None:
    import shapely

    shapes, values = [], []
    for f in batch:
        if not f.get("geometry"):
            continue
        value = (f.get("properties") or {}).get(prop) if prop else 0.0
        if value is None:
            continue  # no value (or suppressed at publication): not counted
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"input 'property': {prop} is not numeric ({value!r})",
                             "property")
        shapes.append(_json(f["geometry"]))
        values.append(float(value))
    if not shapes:
        return
    _tally(tree, shapely.centroid(shapely.from_geojson(shapes)), np.asarray(values), tallies)


def _tally(tree, points, values: np.ndarray, tallies: list[Tally]) -> None:
    """Each value to the area its point lies in."""
    point, area = tree.query(points, predicate="within")
    order = np.argsort(area, kind="stable")
    point, area = point[order], area[order]
    bounds = np.flatnonzero(np.diff(area)) + 1
    for idx, members in zip(np.split(area, bounds), np.split(point, bounds)):
        if len(idx):
            tallies[idx[0]].add(values[members])


def _observations(context: Context, coll: Collection, prop: str | None, interval, tree,
                  tallies: list[Tally], ranks: list[int]) -> None:
    """Observations: each sensor to its area, then the store gives each area's count,
    sum, min, max and percentiles ``ranks`` of its sensors' results."""
    import shapely

    series, read_sensors = context.series(coll)
    sensors = context.catalog[coll.derived_from]
    q = Query(equals={sensors.stream.property_field: prop} if prop else {})
    located = [(f["properties"][sensors.id_field], _json(f["geometry"]))
               for f in pages(read_sensors, q) if f.get("geometry")]
    if not located:
        return
    ids = [sid for sid, _ in located]
    point, area = tree.query(shapely.centroid(shapely.from_geojson([g for _, g in located])),
                             predicate="within")
    area_of = {ids[p]: int(a) for p, a in zip(point, area)}
    context.progress(20, f"{len(area_of)} sensors in the areas")
    members: dict[int, list[str]] = {}
    for sid, a in sorted(area_of.items()):
        members.setdefault(a, []).append(sid)
    for a, (n, total, lo, hi, known) in series.per_group(members, interval, ranks).items():
        tallies[a].merge(int(n), float(total), float(lo), float(hi))
        tallies[a].percentiles = known


def _json(geometry: dict) -> str:
    import orjson

    return orjson.dumps(geometry).decode()


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
