"""A DEM (GeoTIFF) as terrain mesh tiles that line up with the city model.

The raster is cut into square chunks of cells; each chunk is one ``CityObjectMesh``
(type ``Terrain``, every vertex a ground surface) so the terrain goes through the
same quadtree, geodesy and glb writer as the buildings. Cell centres are the
vertices; cells with nodata corners are left out.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .cityjson import GROUND, CityModelError, CityObjectMesh

CHUNK = 64  # cells per chunk side


def open_dem(path: Path, crs: str | None):
    """(CRS, iterator of CityObjectMesh). A DEM in RD New is taken as RD New + NAP."""
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        ds = rasterio.open(path)
    except RasterioIOError as exc:
        raise CityModelError(f"{path.name} is not a readable GeoTIFF ({exc})") from None
    if crs is None:
        if ds.crs is None:
            raise CityModelError(f"{path.name} has no CRS: give --crs (e.g. EPSG:7415)")
        epsg = ds.crs.to_epsg()
        crs = "EPSG:7415" if epsg == 28992 else f"EPSG:{epsg}"  # heights in NAP
    return crs, _chunks(ds, path.stem)


def _chunks(ds, name: str):
    with ds:
        z = ds.read(1, masked=True).astype(float).filled(np.nan)
        t = ds.transform
    rows, cols = z.shape
    for r0 in range(0, rows - 1, CHUNK):
        for c0 in range(0, cols - 1, CHUNK):
            r1, c1 = min(r0 + CHUNK, rows - 1), min(c0 + CHUNK, cols - 1)
            block = z[r0:r1 + 1, c0:c1 + 1]
            rr, cc = np.mgrid[r0:r1 + 1, c0:c1 + 1]
            x = t.c + (cc + 0.5) * t.a + (rr + 0.5) * t.b
            y = t.f + (cc + 0.5) * t.d + (rr + 0.5) * t.e
            h, w = block.shape
            idx = np.arange(h * w).reshape(h, w)
            a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
            c, d = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
            tris = np.concatenate([np.column_stack([a, c, b]), np.column_stack([b, c, d])])
            flat = block.ravel()
            tris = tris[np.isfinite(flat[tris]).all(axis=1)]
            if not len(tris):
                continue
            used, inverse = np.unique(tris, return_inverse=True)
            verts = np.column_stack([x.ravel(), y.ravel(), flat])[used]
            yield CityObjectMesh(f"{name}-{r0}-{c0}", "Terrain", {}, verts,
                                 inverse.reshape(-1, 3).astype(np.uint32),
                                 np.full(len(verts), GROUND, np.uint8))
