"""The store's loops compiled by numba: ``mvt_kernels`` (the GeoPackage's vector tiles)
and ``wkb`` (GeoJSON from the stores' WKB).

numba compiles a loop the first time it runs and keeps it in its cache beside the
module; the setup (``make``) compiles them all once, so that no request waits for it
(~15 s on 2 cores). A process loads them from the cache in a fraction of a second: the
app does so as each worker starts (``oup.http.app``), before its first request.
"""
from __future__ import annotations


def compile_all() -> None:
    """Run every compiled loop once, with the types the store gives it."""
    import numpy as np
    import shapely

    from oup.store.mvt import EXTENT, TileQuery, _tile_geometry
    from oup.store.mvt_encode import encode_layer
    from oup.store.wkb import geojson

    q = TileQuery("warm", (), (0.0, 0.0, float(EXTENT), float(EXTENT)), 0, "", (0, 0, 1, 1))
    _, geoms = _tile_geometry(np.array([shapely.box(10, 10, 100, 90)]), q, True)
    encode_layer("warm", geoms, ids=[1], properties={"a": [1]})
    geojson([shapely.to_wkb(shapely.box(4.4, 51.9, 4.5, 52.0))])


if __name__ == "__main__":
    compile_all()
