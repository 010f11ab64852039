"""Where a tile's content lies on the globe: exact geodesy from the source CRS, each
tile's own east-north-up frame, and the geodetic regions that bound it.

A tile's content is stored in metres of its own ENU frame (anchored at its centre, at
its lowest height), so 32-bit and quantised coordinates keep millimetres; the frame is
the tile's ``transform``. 3D Tiles composes a tile's transform with its parents', so
``relative`` expresses a child's frame in its parent's.
"""
from __future__ import annotations

import math

import numpy as np


class Geodesy:
    """Source CRS -> geodetic (lon, lat, ellipsoidal h) and ECEF, exactly."""

    def __init__(self, src: str):
        import pyproj

        from oup.geodesy import transformer

        # RD New + NAP goes through RDNAPTRANS(TM)2018 (oup.geodesy routes it via ETRS89)
        self.to_geodetic = transformer(src, "EPSG:4979")
        self.to_ecef = pyproj.Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)

    def geodetic(self, xyz: np.ndarray) -> np.ndarray:
        lon, lat, h = self.to_geodetic.transform(xyz[:, 0], xyz[:, 1], xyz[:, 2])
        out = np.column_stack([lon, lat, h])
        if not np.isfinite(out).all():
            raise ValueError("coordinates outside the area the CRS transformation covers")
        return out

    def ecef(self, llh: np.ndarray) -> np.ndarray:
        return np.column_stack(self.to_ecef.transform(llh[:, 0], llh[:, 1], llh[:, 2]))


def enu_frame(lon_deg: float, lat_deg: float, ecef: np.ndarray) -> np.ndarray:
    """4x4 ENU-to-ECEF matrix (float64) at ``ecef``."""
    lon, lat = math.radians(lon_deg), math.radians(lat_deg)
    east = np.array([-math.sin(lon), math.cos(lon), 0.0])
    north = np.array([-math.sin(lat) * math.cos(lon), -math.sin(lat) * math.sin(lon),
                      math.cos(lat)])
    up = np.array([math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)])
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = east, north, up, ecef
    return m


def local_frame(geo: Geodesy, llh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A tile's ENU frame (anchored at its centre, lowest height) and its vertices in it."""
    lon0, lat0 = (llh[:, 0].min() + llh[:, 0].max()) / 2, (llh[:, 1].min() + llh[:, 1].max()) / 2
    anchor = geo.ecef(np.array([[lon0, lat0, llh[:, 2].min()]]))[0]
    frame = enu_frame(lon0, lat0, anchor)
    return frame, (geo.ecef(llh) - anchor) @ frame[:3, :3]  # rows: ECEF offsets -> E, N, U


def region_of(llh: np.ndarray, margin: float = 0.0) -> list[float]:
    """The geodetic region (radians, metres) of some points, ``margin`` metres wider
    every way (where the content drawn may lie that far from them: quantised)."""
    lat = math.radians(float(np.abs(llh[:, 1]).max()))
    dlat = margin / 6_356_752.0
    dlon = margin / (6_378_137.0 * max(math.cos(lat), 1e-6))
    return [math.radians(llh[:, 0].min()) - dlon, math.radians(llh[:, 1].min()) - dlat,
            math.radians(llh[:, 0].max()) + dlon, math.radians(llh[:, 1].max()) + dlat,
            float(llh[:, 2].min()) - margin, float(llh[:, 2].max()) + margin]


def union(regions: list[list[float]]) -> list[float]:
    r = np.array(regions, float)
    return [float(v) for v in (r[:, 0].min(), r[:, 1].min(), r[:, 2].max(), r[:, 3].max(),
                               r[:, 4].min(), r[:, 5].max())]


def region_error(region: list[float]) -> float:
    """Half the diagonal of a region in metres: the error of drawing nothing of it."""
    w, s, e, n = region[:4]
    width = (e - w) * 6_378_137 * math.cos((s + n) / 2)
    return max(1.0, math.hypot(width, (n - s) * 6_378_137) / 2)


def as_transform(m: np.ndarray) -> list[float]:
    """A 4x4 matrix as 3D Tiles writes it (column-major)."""
    return [float(v) for v in m.T.reshape(-1)]


def relative(parent_world: np.ndarray | None, world: np.ndarray) -> np.ndarray:
    """A child's frame expressed in its parent's (3D Tiles multiplies them back)."""
    return world if parent_world is None else np.linalg.inv(parent_world) @ world
