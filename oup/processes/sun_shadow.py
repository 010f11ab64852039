"""Sun and shadow over a district: where the buildings cast shadow at each time step, and
how many hours of direct sun the ground gets, for the city as it is and with a scenario.

The model is LoD1-like: every building is a prism, its footprint (a polygon in a projected
metric CRS, RD New in OUP) extruded to its roof height, standing on flat ground. On flat
ground the shadow of a prism is the Minkowski sum of its footprint with the shadow vector
``v`` (length ``h / tan(elevation)``, pointing away from the sun): a ground point ``x`` is
shaded when the segment from ``x`` towards the sun hits the prism, that is when some
``x - t v`` (0 <= t <= 1) lies in the footprint. Either ``x`` itself is in the footprint, or
that segment crosses the footprint's boundary, so ``x`` lies in what an edge sweeps along
``v``: shadow = footprint + swept edges (only the edges facing away from the sun). For a
convex footprint that union is the convex hull of the footprint and its translate: one
cheap vectorised hull; other footprints get a polygon per run of edges facing away.
Roof shapes, terrain and trees are not modelled; footprints are simplified by 1 cm
(``OUTLINE_TOLERANCE``); the sun is the apparent (refracted) sun of pvlib, at the site's
latitude and longitude.

Low sun: below ``min_elevation`` (2 degrees by default) the sun counts as giving no direct
sun. Shadows there are 30 times the building heights and longer, so the ground is in the
shade of whatever stands on the horizon, which a district's buildings do not tell.

Pure computation: no HTTP, no store. ``sun_and_shadow`` is the process's work;
``to_geojson`` its outputs.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

import numpy as np
import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from oup.errors import InvalidQuery

MIN_ELEVATION = 2.0  # degrees; lower sun gives no direct sun (see the module's docstring)
MAX_TIME_STEPS = 5_000  # a month at 15 minutes is ~3,000
MAX_POINTS = 250_000  # 5 km x 5 km at 10 m
OUTLINE_TOLERANCE = 0.01  # metres; footprint vertices that bend the outline less are left out


class SunShadowInputError(InvalidQuery):
    """An input of the sun-and-shadow process that cannot be computed with."""


@dataclass(frozen=True)
class Building:
    """A prism: ``footprint`` (Polygon or MultiPolygon, metric CRS) extruded ``height``
    metres above the ground it stands on (``ground``, e.g. metres NAP)."""

    id: str
    footprint: BaseGeometry
    height: float
    ground: float = 0.0


@dataclass(frozen=True)
class SunStep:
    """One time step: the sun (apparent elevation, azimuth clockwise from true north, both
    in degrees) and the shadow on the ground inside the area, as it is and with the scenario
    (``None`` when the sun gives no direct sun, or shadows were not asked for)."""

    time: datetime
    elevation: float
    azimuth: float
    direct_sun: bool
    shadow: BaseGeometry | None
    scenario_shadow: BaseGeometry | None = None


@dataclass(frozen=True)
class SunShadowResult:
    steps: list[SunStep]
    points: np.ndarray  # (n, 2) x, y of the ground points, in the buildings' CRS
    sun_hours: np.ndarray  # (n,) hours of direct sun, the city as it is
    scenario_sun_hours: np.ndarray | None = None  # (n,) with the scenario

    @property
    def difference(self) -> np.ndarray | None:
        """Hours of direct sun with the scenario minus without, per point."""
        if self.scenario_sun_hours is None:
            return None
        return self.scenario_sun_hours - self.sun_hours


class _Prisms:
    """The buildings of both cities (as it is, and with the scenario) as flat arrays, made
    once, so that each time step's shadows are a few vectorised shapely calls."""

    def __init__(self, buildings: list[Building], in_city: np.ndarray, in_scenario: np.ndarray):
        footprints = np.array([b.footprint for b in buildings], dtype=object)
        bad = [b.id for b, f in zip(buildings, footprints)
               if f is None or f.is_empty or f.geom_type not in ("Polygon", "MultiPolygon")
               or not f.is_valid]
        if bad:
            raise SunShadowInputError(
                f"buildings {', '.join(map(str, bad[:5]))} have no valid polygon footprint",
                "buildings")
        try:
            heights = np.array([b.height for b in buildings], dtype=float)
            grounds = np.array([b.ground for b in buildings], dtype=float)
        except (TypeError, ValueError):
            heights = grounds = np.array([np.nan])
        if not np.all(np.isfinite(heights)) or np.any(heights < 0) \
                or not np.all(np.isfinite(grounds)):
            raise SunShadowInputError("building heights must be numbers >= 0, and ground "
                                      "levels numbers", "buildings")
        # Shadows fall on one flat plane: the city's typical ground. A building on higher
        # ground stands taller above it (and one in a dip shorter).
        plane = float(np.median(grounds[in_city])) if in_city.any() else 0.0
        self.height = np.maximum(grounds + heights - plane, 0.0)
        self.in_city, self.in_scenario = in_city, in_scenario

        parts, owner = shapely.get_parts(footprints, return_index=True)
        # Surveyed footprints carry many vertices that bend the outline by millimetres;
        # each stays in every step's shadows, and the union's cost follows the vertices.
        parts = shapely.simplify(parts, OUTLINE_TOLERANCE)
        convex = shapely.area(shapely.convex_hull(parts)) - shapely.area(parts) \
            <= 1e-9 * np.maximum(shapely.area(parts), 1.0)

        # Convex parts: their vertices, and each vertex's translate, grouped per part (as
        # a line string: shapely makes one from coordinates 4x faster than a multipoint).
        xy, ring = shapely.get_coordinates(parts[convex], return_index=True)
        twice = np.concatenate([ring, ring])
        self._hull_order = np.argsort(twice, kind="stable")
        self._hull_of = twice[self._hull_order]
        self._hull_xy = xy
        self._hull_building = owner[convex][ring]
        self._hull_owner = owner[convex]

        # Other parts (L shapes, courtyards): their edges, the exterior counter-clockwise
        # and the courtyards clockwise, so that the building is always left of an edge.
        concave = shapely.orient_polygons(parts[~convex], exterior_cw=False)
        rings = shapely.get_rings(concave)
        rings_owner = np.repeat(owner[~convex], shapely.get_num_interior_rings(concave) + 1)
        xy, r = shapely.get_coordinates(rings, return_index=True)
        same_ring = r[:-1] == r[1:]
        self._edge_a, self._edge_b = xy[:-1][same_ring], xy[1:][same_ring]
        self._edge_ring = r[:-1][same_ring]
        self._edge_owner = rings_owner[self._edge_ring]
        self._concave, self._concave_owner = concave, owner[~convex]
        self._parts, self._part_owner = parts, owner

    @cached_property
    def block(self) -> np.ndarray:
        """Each building's city block: the buildings whose footprints touch make one.
        Their shadows overlap the most, so a step's shadows are united block by block,
        then the blocks. GEOS's own cascade pairs pieces by its STRtree, across streets,
        into unions of parts that do not touch, its slowest case (this is 9-15 % less CPU
        on the benchmark's district)."""
        blocks = shapely.get_parts(shapely.union_all(self._parts))
        part, block = shapely.STRtree(blocks).query(shapely.point_on_surface(self._parts),
                                                     predicate="intersects")
        of = np.arange(len(self.height)) + len(blocks)  # in no block: a block of its own
        of[self._part_owner[part[::-1]]] = block[::-1]  # (a building's first part wins)
        return of

    def shadows(self, elevation: float, bearing: float) -> tuple[np.ndarray, np.ndarray]:
        """The pieces whose union is the shadow of every building, and each piece's
        building, for the sun at ``elevation`` and grid ``bearing`` (degrees)."""
        away = math.radians(bearing + 180.0)
        unit = np.array([math.sin(away), math.cos(away)]) / math.tan(math.radians(elevation))
        offset = self.height[:, None] * unit  # the shadow vector of each building

        xy = np.vstack([self._hull_xy, self._hull_xy + offset[self._hull_building]])
        hulls = shapely.convex_hull(shapely.linestrings(xy[self._hull_order],
                                                        indices=self._hull_of))

        ribbons, ribbon_owner = self._ribbons(offset)
        pieces = np.concatenate([hulls, self._concave, ribbons])
        owner = np.concatenate([self._hull_owner, self._concave_owner, ribbon_owner])
        return pieces, owner

    def _ribbons(self, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What the edges of the non-convex footprints sweep, as few polygons as can be.

        Walking from a shaded point towards the sun, one enters the building through an
        edge that faces away from the sun, so only those sweep shadow. A run of such edges
        along a ring is monotone across the shadow's direction, so the run and its
        translate bound one simple polygon (a ribbon): a piece per run, not per edge.
        """
        a, b, ring = self._edge_a, self._edge_b, self._edge_ring
        v = offset[self._edge_owner]
        e = b - a
        away = np.flatnonzero(e[:, 1] * v[:, 0] - e[:, 0] * v[:, 1] > 1e-9)  # normal . v > 0
        if len(away) == 0:
            return np.empty(0, dtype=object), np.empty(0, dtype=int)
        first = np.ones(len(away), dtype=bool)
        first[1:] = (np.diff(away) != 1) | (ring[away[1:]] != ring[away[:-1]])
        last = np.append(first[1:], True)
        run = np.cumsum(first) - 1
        # each run's points in ring order (every edge's start, then the last edge's end),
        # then the same points moved by the shadow vector, in reverse
        ahead = np.concatenate([a[away], b[away[last]]])
        shift = np.concatenate([v[away], v[away[last]]])
        order = np.concatenate([2 * away, 2 * away[last] + 1])
        runs = np.concatenate([run, run[last]])
        xy = np.concatenate([ahead, ahead + shift])
        key = np.lexsort((np.concatenate([order, -order]),
                          np.repeat([0, 1], len(ahead)), np.tile(runs, 2)))
        ribbons = shapely.polygons(shapely.linearrings(xy[key], indices=np.tile(runs, 2)[key]))
        return ribbons, self._edge_owner[away[first]]


def ground_points(area: BaseGeometry, spacing: float, buildings: Sequence[Building]) -> np.ndarray:
    """Cell centres of a ``spacing`` grid (aligned on multiples of it, so that two runs over
    overlapping areas share points) inside ``area`` and outside every footprint: the ground."""
    if not spacing > 0:
        raise SunShadowInputError("grid spacing must be > 0 metres", "grid_spacing")
    x0, y0, x1, y1 = area.bounds
    nx, ny = math.ceil((x1 - x0) / spacing) + 1, math.ceil((y1 - y0) / spacing) + 1
    if nx * ny > 4 * MAX_POINTS:
        raise SunShadowInputError(
            f"a {spacing} m grid over this area has more than {MAX_POINTS} points; "
            "use a larger spacing or a smaller area", "grid_spacing")
    xs = math.floor(x0 / spacing) * spacing + spacing / 2 + spacing * np.arange(nx)
    ys = math.floor(y0 / spacing) * spacing + spacing / 2 + spacing * np.arange(ny)
    x, y = (c.ravel() for c in np.meshgrid(xs, ys))
    inside = shapely.contains_xy(area, x, y)
    xy = np.column_stack([x[inside], y[inside]])
    if buildings:
        tree = shapely.STRtree([b.footprint for b in buildings])
        on_roof = tree.query(shapely.points(xy), predicate="within")[0]
        xy = np.delete(xy, np.unique(on_roof), axis=0)
    if len(xy) > MAX_POINTS:
        raise SunShadowInputError(
            f"a {spacing} m grid over this area has {len(xy)} points, more than {MAX_POINTS}",
            "grid_spacing")
    return xy


def _given_points(points) -> np.ndarray:
    try:
        xy = np.asarray(points, dtype=float).reshape(-1, 2)
    except (TypeError, ValueError):
        raise SunShadowInputError("points must be pairs of numbers (x, y)", "points") from None
    if not np.all(np.isfinite(xy)) or len(xy) > MAX_POINTS:
        raise SunShadowInputError(f"points must be finite, at most {MAX_POINTS} of them",
                                  "points")
    return xy


def sun_positions(times: Sequence[datetime], latitude: float, longitude: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Apparent elevation and azimuth (degrees) of the sun at ``times``, from pvlib (NREL SPA)."""
    import pandas as pd
    from pvlib.solarposition import get_solarposition

    pos = get_solarposition(pd.DatetimeIndex(times), latitude, longitude)
    return pos["apparent_elevation"].to_numpy(), pos["azimuth"].to_numpy()


def _time_steps(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    if start.tzinfo is None or end.tzinfo is None:
        raise SunShadowInputError("start and end need a time zone (e.g. Z or +01:00)", "time")
    if not end > start:
        raise SunShadowInputError("the end of the period must be after its start", "time")
    if not step > timedelta(0):
        raise SunShadowInputError("the time step must be positive", "step")
    count = math.ceil((end - start) / step)
    if count > MAX_TIME_STEPS:
        raise SunShadowInputError(
            f"{count} time steps; at most {MAX_TIME_STEPS}: use a longer step or a shorter "
            "period", "step")
    return [start + k * step for k in range(count)]


def _united(pieces: np.ndarray, block: np.ndarray) -> BaseGeometry:
    """The union of ``pieces``: those of each city block (``block``) first, then the blocks'."""
    order = np.argsort(block, kind="stable")
    cuts = np.flatnonzero(np.diff(block[order])) + 1
    return shapely.union_all([shapely.union_all(group) for group in np.split(pieces[order], cuts)])


def _shadows_on(area: BaseGeometry, pieces: np.ndarray, block: np.ndarray, city: np.ndarray,
                scenario: np.ndarray | None) -> tuple[BaseGeometry, BaseGeometry | None]:
    """The ground in shadow inside ``area``, for the city as it is and with the scenario
    (``city``, ``scenario``: which pieces belong to each; ``block``: each piece's city
    block). A scenario changes few buildings: the shadows the two share are united once,
    then each city's own are added.

    The unions run on several threads at once, and a prepared geometry is not safe to
    share between them (GEOS builds its index on first use: two unions on one prepared
    area crashed the worker), so each prepares a copy of its own."""
    area = shapely.from_wkb(shapely.to_wkb(area))
    shapely.prepare(area)
    near = shapely.intersects(area, pieces)
    shared = near & (city if scenario is None else city & scenario)
    common = _united(pieces[shared], block[shared])

    def shadow(own: np.ndarray) -> BaseGeometry:
        extra = pieces[near & own & ~shared]
        whole = shapely.union_all(np.append(extra, common)) if len(extra) else common
        return shapely.intersection(whole, area)

    return shadow(city), None if scenario is None else shadow(scenario)


def sun_and_shadow(buildings: Sequence[Building], area: BaseGeometry, start: datetime,
                   end: datetime, step: timedelta, *, latitude: float, longitude: float,
                   grid_convergence: float = 0.0, points: np.ndarray | None = None,
                   grid_spacing: float = 10.0, scenario: Sequence[Building] | None = None,
                   min_elevation: float = MIN_ELEVATION, shadows: bool = True, threads: int = 2,
                   progress: Callable[[float], None] | None = None) -> SunShadowResult:
    """Shadows at ``start``, ``start + step``, ... (before ``end``) and hours of direct sun
    on the ground, each time step standing for the ``step`` after it (cut at ``end``).

    ``points``: (n, 2) ground points in the buildings' CRS; by default the cells of a
    ``grid_spacing`` grid over ``area`` that no building stands on. ``scenario``: buildings
    that replace the one with the same id, or are added; one of height 0 removes it. A point
    under a new building is shaded all the time there. ``grid_convergence``: the angle
    (degrees, clockwise) from grid north to true north at the site (``site_of`` gives it).
    ``shadows=False`` skips the shadow polygons (their union is most of the work);
    ``threads`` unite that many steps' shadows at once.
    ``progress(fraction)`` is called after every time step and every shadow union.
    """
    if not area.is_valid or area.is_empty or area.geom_type not in ("Polygon", "MultiPolygon"):
        raise SunShadowInputError("the area must be a valid polygon", "area")
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise SunShadowInputError("latitude and longitude must be degrees on the Earth", "area")
    if not 0 <= min_elevation < 90:
        raise SunShadowInputError("min_elevation must be in [0, 90) degrees", "min_elevation")
    times = _time_steps(start, end, step)
    elevation, azimuth = sun_positions(times, latitude, longitude)
    hours = np.array([min(step, end - t) / timedelta(hours=1) for t in times])

    buildings = list(buildings)
    changed = {b.id for b in scenario} if scenario is not None else set()
    added = [b for b in scenario or () if b.height > 0]
    prisms = _Prisms(buildings + added,
                     in_city=np.arange(len(buildings) + len(added)) < len(buildings),
                     in_scenario=np.array([b.id not in changed for b in buildings]
                                          + [True] * len(added), dtype=bool))
    xy = ground_points(area, grid_spacing, buildings) if points is None else \
        _given_points(points)
    tree = shapely.STRtree(shapely.points(xy))  # made once: the points stay, shadows move

    sun_hours = np.zeros(len(xy))
    scenario_hours = np.zeros(len(xy)) if scenario is not None else None
    cities = [(prisms.in_city, sun_hours)] + \
        ([(prisms.in_scenario, scenario_hours)] if scenario is not None else [])
    sunny = elevation >= min_elevation  # night and low-sun steps cost nothing
    # The union of a step's shadows costs ten times the rest of the step: the unions run
    # beside the loop, on as many cores as the job may take (GEOS lets go of the GIL).
    unions = ThreadPoolExecutor(max_workers=max(1, threads))
    shades: list[Future | None] = []
    done, work = 0, len(times) + shadows * int(sunny.sum())
    try:
        for i in range(len(times)):
            shades.append(None)
            if sunny[i]:
                pieces, owner = prisms.shadows(elevation[i], azimuth[i] + grid_convergence)
                piece, point = tree.query(pieces, predicate="intersects")
                for member, hours_of in cities:
                    shaded = np.zeros(len(xy), dtype=bool)
                    shaded[point[member[owner][piece]]] = True
                    hours_of[~shaded] += hours[i]
                if shadows:
                    shades[i] = unions.submit(
                        _shadows_on, area, pieces, prisms.block[owner], prisms.in_city[owner],
                        prisms.in_scenario[owner] if scenario is not None else None)
            done += 1
            if progress is not None:
                progress(done / work)
        steps = []
        for i, t in enumerate(times):
            shadow, scenario_shadow = shades[i].result() if shades[i] else (None, None)
            steps.append(SunStep(t, float(elevation[i]), float(azimuth[i]), bool(sunny[i]),
                                 shadow, scenario_shadow))
            if shades[i] and progress is not None:
                done += 1
                progress(done / work)
    finally:
        unions.shutdown(cancel_futures=True)
    return SunShadowResult(steps, xy, sun_hours, scenario_hours)


@dataclass(frozen=True)
class Site:
    latitude: float
    longitude: float
    grid_convergence: float  # degrees clockwise from grid north to true north


def site_of(area: BaseGeometry, crs: str = "EPSG:28992") -> Site:
    """Where the sun is seen from: the area's centre in degrees, and how the CRS's grid
    north turns to true north there (about +0.7 degrees in Rotterdam on RD New: left out,
    every shadow would be turned by that much)."""
    import pyproj

    # Metres of accuracy are plenty for the sun's position: no need for the exact grids.
    to_deg = pyproj.Transformer.from_crs(crs, "OGC:CRS84", always_xy=True)
    c = area.centroid
    lon, lat = to_deg.transform(c.x, c.y)
    north_x, north_y = to_deg.transform(lon, lat + 0.001, direction="INVERSE")
    return Site(lat, lon, math.degrees(math.atan2(north_x - c.x, north_y - c.y)))


def to_geojson(result: SunShadowResult,
               reproject: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, dict]:
    """The outputs as GeoJSON FeatureCollections: ``shadows`` (a feature per time step, and
    one more per step for the scenario) and ``sunHours`` (a point per ground point, with
    ``scenarioSunHours`` and ``difference`` when there is a scenario). Coordinates are in
    the buildings' CRS unless ``reproject`` (an array of geometries -> the same, e.g.
    ``crs84_of("EPSG:28992")``) turns them."""
    move = reproject or (lambda geoms: geoms)
    shadows = []
    for i, s in enumerate(result.steps):
        for scenario, geom in ((False, s.shadow), (True, s.scenario_shadow)):
            if scenario and result.scenario_sun_hours is None:
                continue
            shadows.append({
                "type": "Feature", "id": f"{i}-scenario" if scenario else str(i),
                "geometry": mapping(move(np.array([geom]))[0]) if geom is not None else None,
                "properties": {"time": s.time.isoformat(), "sunElevation": round(s.elevation, 3),
                               "sunAzimuth": round(s.azimuth, 3), "directSun": s.direct_sun,
                               "scenario": scenario}})
    xy = shapely.get_coordinates(move(shapely.points(result.points)))
    columns = {"sunHours": result.sun_hours}
    if result.scenario_sun_hours is not None:
        columns.update(scenarioSunHours=result.scenario_sun_hours, difference=result.difference)
    values = {k: np.round(v, 4).tolist() for k, v in columns.items()}
    points = [{"type": "Feature", "id": str(i),
               "geometry": {"type": "Point", "coordinates": [x, y]},
               "properties": {k: v[i] for k, v in values.items()}}
              for i, (x, y) in enumerate(xy.tolist())]
    return {"shadows": {"type": "FeatureCollection", "features": shadows},
            "sunHours": {"type": "FeatureCollection", "features": points}}


def crs84_of(crs: str = "EPSG:28992") -> Callable[[np.ndarray], np.ndarray]:
    """A ``reproject`` for ``to_geojson``: from ``crs`` to CRS84 the platform's exact way."""
    from oup.store.geometry import to_crs84

    return lambda geoms: to_crs84(geoms, crs)
