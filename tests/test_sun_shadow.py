"""The sun-and-shadow computation against independent references: the sun's position from
pvlib read directly (and pvlib itself checked once against NOAA's published algorithm,
written out here), shadow geometry from the plain trigonometry of a box, sun hours from
pvlib's sunrise and sunset."""
from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import shapely
from pvlib.solarposition import get_solarposition, sun_rise_set_transit_spa

from conftest import ROOT
from oup.errors import InvalidQuery
from oup.processes.sun_shadow import (Building, SunShadowInputError, crs84_of, site_of,
                                      sun_and_shadow, sun_positions, to_geojson)
from test_cityjson import grids  # noqa: F401  (RDNAPTRANS(TM)2018, as the CRS84 output uses)

LAT, LON = 51.9225, 4.4792  # Rotterdam, Coolsingel
UTC = timezone.utc
MIDSUMMER = datetime(2026, 6, 21, tzinfo=UTC)
WIDE = shapely.box(-1000, -1000, 1000, 1000)  # an area that holds every shadow whole


def noaa_sun(t: datetime, lat: float, lon: float) -> tuple[float, float]:
    """Geometric elevation and azimuth (degrees) by NOAA's solar calculator spreadsheet
    (Meeus, Astronomical Algorithms), written out from its published formulas."""
    jd = t.timestamp() / 86400 + 2440587.5
    c = (jd - 2451545) / 36525
    l0 = (280.46646 + c * (36000.76983 + c * 0.0003032)) % 360
    m = 357.52911 + c * (35999.05029 - 0.0001537 * c)
    e = 0.016708634 - c * (0.000042037 + 0.0000001267 * c)
    mr = math.radians(m)
    centre = (math.sin(mr) * (1.914602 - c * (0.004817 + 0.000014 * c))
              + math.sin(2 * mr) * (0.019993 - 0.000101 * c) + math.sin(3 * mr) * 0.000289)
    apparent_long = l0 + centre - 0.00569 - 0.00478 * math.sin(math.radians(125.04 - 1934.136 * c))
    obliquity = 23 + (26 + (21.448 - c * (46.815 + c * (0.00059 - c * 0.001813))) / 60) / 60
    obliq = obliquity + 0.00256 * math.cos(math.radians(125.04 - 1934.136 * c))
    decl = math.asin(math.sin(math.radians(obliq)) * math.sin(math.radians(apparent_long)))
    y = math.tan(math.radians(obliq / 2)) ** 2
    l0r = math.radians(l0)
    eq_time = 4 * math.degrees(y * math.sin(2 * l0r) - 2 * e * math.sin(mr)
                               + 4 * e * y * math.sin(mr) * math.cos(2 * l0r)
                               - 0.5 * y * y * math.sin(4 * l0r) - 1.25 * e * e * math.sin(2 * mr))
    minutes = t.hour * 60 + t.minute + t.second / 60
    true_solar = (minutes + eq_time + 4 * lon) % 1440
    hour_angle = math.radians(true_solar / 4 - 180)
    latr = math.radians(lat)
    cos_zenith = (math.sin(latr) * math.sin(decl)
                  + math.cos(latr) * math.cos(decl) * math.cos(hour_angle))
    zenith = math.acos(cos_zenith)
    azimuth = math.degrees(math.acos((math.sin(latr) * cos_zenith - math.sin(decl))
                                     / (math.cos(latr) * math.sin(zenith))))
    azimuth = (azimuth + 180) % 360 if hour_angle > 0 else (540 - azimuth) % 360
    return 90 - math.degrees(zenith), azimuth


def pvlib_sun(t: datetime) -> tuple[float, float]:
    pos = get_solarposition(pd.DatetimeIndex([t]), LAT, LON)
    return float(pos["apparent_elevation"].iloc[0]), float(pos["azimuth"].iloc[0])


def one_moment(buildings, t, **kw):
    """The computation at the single instant ``t``."""
    return sun_and_shadow(buildings, kw.pop("area", WIDE), t, t + timedelta(minutes=1),
                          timedelta(minutes=1), latitude=LAT, longitude=LON, **kw).steps[0]


@pytest.mark.parametrize("t", [datetime(2026, 6, 21, 9, 0, tzinfo=UTC),
                               datetime(2026, 3, 20, 14, 30, tzinfo=UTC)])
def test_pvlib_agrees_with_the_noaa_algorithm(t):
    pos = get_solarposition(pd.DatetimeIndex([t]), LAT, LON)
    elevation, azimuth = noaa_sun(t, LAT, LON)
    assert float(pos["elevation"].iloc[0]) == pytest.approx(elevation, abs=0.02)
    assert float(pos["azimuth"].iloc[0]) == pytest.approx(azimuth, abs=0.02)
    # and the module's sun is pvlib's apparent one, refraction (< 0.1 degree up there) aside
    el, az = sun_positions([t], LAT, LON)
    assert el[0] == pytest.approx(elevation, abs=0.1) and az[0] == pytest.approx(azimuth, abs=0.02)


@pytest.mark.parametrize("t", [datetime(2026, 6, 21, 6, 0, tzinfo=UTC),
                               datetime(2026, 6, 21, 11, 40, tzinfo=UTC),
                               datetime(2026, 12, 21, 14, 0, tzinfo=UTC)])
def test_a_lone_box_casts_h_over_tan_elevation_away_from_the_sun(t):
    h = 20.0
    box = shapely.box(0, 0, 10, 10)
    step = one_moment([Building("box", box, h)], t)
    elevation, azimuth = pvlib_sun(t)
    length = h / math.tan(math.radians(elevation))
    away = math.radians(azimuth + 180)
    expected = length * np.array([math.sin(away), math.cos(away)])
    # the corner of the box farthest from the sun, and the shadow's point farthest from it
    u = expected / length
    corners = shapely.get_coordinates(box)
    tips = shapely.get_coordinates(step.shadow)
    measured = tips[np.argmax(tips @ u)] - corners[np.argmax(corners @ u)]
    assert np.linalg.norm(measured - expected) <= 0.01 * length
    assert step.shadow.area == pytest.approx(box.area + length * np.ptp(corners @ [u[1], -u[0]]),
                                             rel=0.01)


L_SHAPE = shapely.Polygon([(0, 0), (30, 0), (30, 8), (8, 8), (8, 30), (0, 30)])
COURTYARD = shapely.Polygon([(0, 0), (0, 40), (40, 40), (40, 0)],  # clockwise, as given
                            [[(10, 10), (10, 30), (35, 30), (35, 10)]])
E_SHAPE = shapely.Polygon([(0, 0), (30, 0), (30, 6), (6, 6), (6, 12), (30, 12), (30, 18),
                           (6, 18), (6, 24), (30, 24), (30, 30), (0, 30)])


@pytest.mark.parametrize("footprint, t", [
    (L_SHAPE, datetime(2026, 6, 21, 16, 0, tzinfo=UTC)),  # sun in the west: the notch is swept
    (L_SHAPE, datetime(2026, 6, 21, 5, 0, tzinfo=UTC)),  # sun in the north-east
    (COURTYARD, datetime(2026, 6, 21, 9, 0, tzinfo=UTC)),
    (E_SHAPE, datetime(2026, 6, 21, 6, 0, tzinfo=UTC)),  # the notches open to the sun
])
def test_a_block_that_is_not_convex_shadows_what_its_footprint_sweeps(footprint, t):
    step = one_moment([Building("L", footprint, 12.0)], t)
    elevation, azimuth = pvlib_sun(t)
    length = 12.0 / math.tan(math.radians(elevation))
    dx, dy = length * math.sin(math.radians(azimuth + 180)), length * math.cos(
        math.radians(azimuth + 180))
    swept = shapely.union_all([shapely.affinity.translate(footprint, k * dx, k * dy)
                               for k in np.linspace(0, 1, 400)])
    assert step.shadow.symmetric_difference(swept).area < 0.005 * swept.area
    assert step.shadow.area < shapely.convex_hull(step.shadow).area - 20  # not a hull


def test_a_surveyed_outline_bent_by_millimetres_casts_the_shadow_of_its_shape():
    # a 30 x 12 m block whose long sides carry a vertex every metre, each up to 3 mm off
    # the line, as surveyed outlines do: its shadow is the plain block's, in few vertices
    xs = np.arange(0.0, 31.0)
    bend = 0.003 * np.sin(xs)
    ring = [(x, b) for x, b in zip(xs, bend)] + [(x, 12 + b) for x, b in zip(xs[::-1], bend[::-1])]
    surveyed, plain = shapely.Polygon(ring), shapely.box(0, 0, 30, 12)
    t = datetime(2026, 6, 21, 8, 0, tzinfo=UTC)
    bent = one_moment([Building("s", surveyed, 15.0)], t).shadow
    reference = one_moment([Building("p", plain, 15.0)], t).shadow
    assert bent.symmetric_difference(reference).area < 0.01 * 30  # 1 cm along a side at most
    assert shapely.get_num_coordinates(bent) <= shapely.get_num_coordinates(reference) + 4


@pytest.mark.parametrize("threads", [1, 3])
def test_a_district_shadows_what_its_buildings_shadow_one_by_one(threads):
    # two blocks of rows that touch (united block by block), a building with a part in
    # each block, one standing alone, one with a courtyard; three moments of the day
    rows = [Building(f"r{i}", shapely.box(x, y, x + w, y + 12), h)
            for i, (x, y, w, h) in enumerate([(0, 0, 10, 9), (10, 0, 14, 25), (24, 0, 8, 6),
                                              (0, 12, 16, 14), (16, 12, 16, 31),
                                              (60, 0, 12, 18), (72, 0, 9, 7)])]
    split = Building("split", shapely.MultiPolygon([shapely.box(32, 4, 40, 10),
                                                    shapely.box(50, 4, 60, 10)]), 20.0)
    alone = Building("alone", shapely.box(0, 80, 15, 95), 12.0)
    yard = Building("yard", shapely.affinity.translate(COURTYARD, 100, 0), 16.0)
    district = rows + [split, alone, yard]
    for t in [MIDSUMMER + timedelta(hours=h) for h in (5, 11, 17)]:
        step = sun_and_shadow(district, WIDE, t, t + timedelta(minutes=1), timedelta(minutes=1),
                              latitude=LAT, longitude=LON, points=[(0, 0)],
                              threads=threads).steps[0]
        each = shapely.union_all([one_moment([b], t, points=[(0, 0)]).shadow for b in district])
        assert step.shadow.symmetric_difference(each).area < 1e-6 * each.area
        assert each.area > 1.5 * shapely.union_all([b.footprint for b in district]).area


SHARED_AREA = textwrap.dedent("""
    import sys
    from datetime import datetime, timedelta, timezone
    import numpy as np, shapely
    from oup.processes.sun_shadow import Building, sun_and_shadow
    rng = np.random.default_rng(7)
    city = [Building(str(i), shapely.box(x, y, x + 8, y + 8), h) for i, (x, y, h)
            in enumerate(rng.uniform((0, 0, 5), (400, 400, 40), (300, 3)))]
    area = shapely.Point(200, 200).buffer(190, 64)  # many vertices: an index worth building
    t = datetime(2026, 6, 21, 4, tzinfo=timezone.utc)
    runs = [sun_and_shadow(city, area, t, t + timedelta(hours=16), timedelta(minutes=15),
                           latitude=51.92, longitude=4.48, grid_spacing=20, threads=n)
            for n in (2, 2, 2, 1)]
    for run in runs[:3]:  # each as one thread computes it
        assert np.array_equal(run.sun_hours, runs[-1].sun_hours)
        for a, b in zip(run.steps, runs[-1].steps):
            assert (a.shadow is None) == (b.shadow is None)
            assert a.shadow is None or a.shadow.symmetric_difference(b.shadow).area < 1e-6
    print(sum(s.shadow is not None for s in runs[0].steps), "shadows")
""")


def test_threads_uniting_shadows_at_once_share_no_prepared_geometry():
    """The unions of several steps run at once on threads. They once shared the area's
    prepared geometry, which GEOS does not make safe between threads: the process died
    (SIGSEGV) in 8 of 10 runs of one day. In a child process, so that a crash is a failure
    and not the end of the test run."""
    done = subprocess.run([sys.executable, "-c", SHARED_AREA], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert int(done.stdout.split()[0]) > 40  # a day of sun at 15-minute steps


def test_a_point_behind_a_block_gets_less_sun_than_one_in_the_open():
    block = Building("b", shapely.box(0, 0, 20, 10), 25.0)
    behind, open_ = (10, 15), (400, 400)  # north of the block: shaded around noon
    r = sun_and_shadow([block], WIDE, MIDSUMMER, MIDSUMMER + timedelta(days=1),
                       timedelta(minutes=15), latitude=LAT, longitude=LON,
                       points=[behind, open_], shadows=False)
    assert 0 < r.sun_hours[0] < r.sun_hours[1] - 2


def test_the_open_ground_has_sun_from_sunrise_to_sunset():
    r = sun_and_shadow([], WIDE, MIDSUMMER, MIDSUMMER + timedelta(days=1),
                       timedelta(minutes=15), latitude=LAT, longitude=LON,
                       points=[(0, 0)], min_elevation=0.0)
    day = pd.DatetimeIndex([pd.Timestamp("2026-06-21", tz="Europe/Amsterdam")])
    rise_set = sun_rise_set_transit_spa(day, LAT, LON)
    day_length = (rise_set["sunset"].iloc[0] - rise_set["sunrise"].iloc[0]) / pd.Timedelta(hours=1)
    assert r.sun_hours[0] == pytest.approx(day_length, abs=0.25)
    # the low sun does not count by default: the first and last half hours or so go
    low = sun_and_shadow([], WIDE, MIDSUMMER, MIDSUMMER + timedelta(days=1),
                         timedelta(minutes=15), latitude=LAT, longitude=LON, points=[(0, 0)])
    assert day_length - 1.5 < low.sun_hours[0] < day_length - 0.25


def test_a_scenario_shades_what_it_adds_and_frees_what_it_removes():
    old = Building("old", shapely.box(200, 0, 220, 10), 30.0)
    tower = Building("tower", shapely.box(0, 0, 20, 20), 60.0)
    points = [(10, 30), (210, 15), (-600, -600)]  # behind the tower, behind old, far away
    r = sun_and_shadow([old], WIDE, MIDSUMMER, MIDSUMMER + timedelta(days=1),
                       timedelta(minutes=30), latitude=LAT, longitude=LON, points=points,
                       scenario=[tower, Building("old", old.footprint, 0.0)])
    assert r.difference[0] < -1
    assert r.difference[1] > 1
    assert r.difference[2] == 0
    sun_in_the_south = [s for s in r.steps if s.direct_sun and 160 < s.azimuth < 200]
    assert len(sun_in_the_south) >= 2
    assert all(s.scenario_shadow.contains(shapely.Point(10, 30)) for s in sun_in_the_south)
    assert not any(s.shadow.contains(shapely.Point(10, 30)) for s in sun_in_the_south)
    assert all(s.shadow.contains(shapely.Point(210, 15)) for s in sun_in_the_south)
    assert not any(s.scenario_shadow.contains(shapely.Point(210, 15)) for s in sun_in_the_south)


def test_no_sun_no_shadow_at_night():
    night = datetime(2026, 12, 21, 18, 0, tzinfo=UTC)
    r = sun_and_shadow([Building("b", shapely.box(0, 0, 10, 10), 10.0)], WIDE, night,
                       night + timedelta(hours=6), timedelta(hours=1), latitude=LAT,
                       longitude=LON, grid_spacing=50.0)
    assert len(r.steps) == 6 and len(r.points) > 1000
    assert not any(s.direct_sun or s.shadow is not None for s in r.steps)
    assert not r.sun_hours.any()


def test_the_grid_is_the_ground_between_the_buildings_and_progress_is_told():
    area = shapely.box(0, 0, 100, 50)
    told = []
    t = datetime(2026, 6, 21, 10, 0, tzinfo=UTC)
    r = sun_and_shadow([Building("b", shapely.box(0, 0, 40, 50), 10.0)], area, t,
                       t + timedelta(hours=2), timedelta(minutes=30), latitude=LAT,
                       longitude=LON, progress=told.append)
    assert sorted(map(tuple, r.points)) == [(x, y) for x in range(45, 100, 10)
                                            for y in range(5, 50, 10)]
    assert told == [k / 8 for k in range(1, 9)]  # 4 steps, then their 4 shadows
    assert all(area.covers(s.shadow) for s in r.steps)


@pytest.mark.parametrize("change, parameter", [
    (dict(start=datetime(2026, 6, 21)), "time"),
    (dict(end=MIDSUMMER), "time"),
    (dict(step=timedelta(seconds=1)), "step"),
    (dict(buildings=[Building("x", shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)]), 5)]),
     "buildings"),
    (dict(buildings=[Building("x", shapely.box(0, 0, 1, 1), -3)]), "buildings"),
    (dict(grid_spacing=0.01), "grid_spacing"),
    (dict(area=shapely.LineString([(0, 0), (1, 1)])), "area"),
    (dict(buildings=[Building("x", shapely.box(0, 0, 1, 1), "tall")]), "buildings"),
    (dict(points=[(0, 0, 1)]), "points"),
    (dict(latitude=95.0), "area"),
])
def test_bad_input_is_a_client_error_that_names_it(change, parameter):
    args = dict(buildings=[], area=WIDE, start=MIDSUMMER, end=MIDSUMMER + timedelta(days=1),
                step=timedelta(hours=1)) | change
    with pytest.raises(SunShadowInputError) as e:
        sun_and_shadow(**{"latitude": LAT, "longitude": LON} | args)
    assert isinstance(e.value, InvalidQuery) and e.value.status == 400
    assert e.value.parameter == parameter


def test_the_site_turns_rd_grid_north_to_true_north():
    area = shapely.box(92000, 437000, 93000, 438000)
    site = site_of(area)
    # RD New's stereographic projection is conformal about 5.3872 E: there the convergence
    # of the meridians is (lon - lon0) sin(lat), grid north seen from true north
    assert site.latitude == pytest.approx(51.93, abs=0.02)
    assert site.grid_convergence == pytest.approx(
        -(site.longitude - 5.38720621) * math.sin(math.radians(site.latitude)), abs=0.01)


def test_geojson_outputs_in_crs84(grids):
    import pyproj

    area = shapely.box(92000, 437000, 92100, 437100)
    site = site_of(area)
    start = datetime(2026, 6, 21, 3, 0, tzinfo=UTC)  # before sunrise, then sun
    r = sun_and_shadow([Building("b", shapely.box(92040, 437040, 92060, 437060), 20.0)], area,
                       start, start + timedelta(hours=3), timedelta(hours=1),
                       latitude=site.latitude, longitude=site.longitude,
                       grid_convergence=site.grid_convergence, grid_spacing=20.0,
                       scenario=[Building("n", shapely.box(92000, 437000, 92010, 437010), 9.0)])
    out = to_geojson(r, crs84_of("EPSG:28992"))
    shadows, points = out["shadows"]["features"], out["sunHours"]["features"]
    assert [(f["properties"]["scenario"], f["geometry"] is None) for f in shadows] == \
        [(False, True), (True, True)] + [(False, False), (True, False)] * 2
    assert shadows[0]["properties"]["time"] == "2026-06-21T03:00:00+00:00"
    assert len(points) == len(r.points) == 24  # 25 cells, one under the building
    ballpark = pyproj.Transformer.from_crs("EPSG:28992", "OGC:CRS84", always_xy=True)
    lon, lat = ballpark.transform(*r.points[0])
    assert points[0]["geometry"]["coordinates"] == pytest.approx([lon, lat], abs=2e-5)
    assert points[0]["properties"]["difference"] == pytest.approx(
        r.scenario_sun_hours[0] - r.sun_hours[0])
    x0, y0, x1, y1 = shapely.geometry.shape(shadows[2]["geometry"]).bounds
    assert 4.4 < x0 < x1 < 4.6 and 51.9 < y0 < y1 < 52.0
