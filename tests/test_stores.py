"""Store behaviour that needs a real database: PostGIS keeps each layer's metadata per
process, and reads it again when the table changed under it."""
from __future__ import annotations

import shapely

from oup.store import Field, Query
from oup.store.base import Feature
from oup.store.postgis import PostGISStore


def _write(store, fields, values):
    pt = shapely.Point(4.45, 51.9)
    store.write_collection("things", "EPSG:4326", fields,
                           (Feature(pt, pt, dict(zip([f.name for f in fields], v)))
                            for v in values))


def test_postgis_reads_a_layer_again_after_another_process_reimported_it(postgis):
    url = postgis.create("stale")
    server, importer = PostGISStore(url, pool_size=1), PostGISStore(url, pool_size=1)
    _write(importer, [Field("a", "integer")], [(1,), (2,)])
    assert [f["properties"] for f in server.query("things", Query()).features] == \
        [{"a": 1}, {"a": 2}]
    assert server.get("things", 1)["properties"] == {"a": 1}
    # re-imported elsewhere with other columns: the cached metadata is stale
    _write(importer, [Field("b", "string")], [("x",)])
    assert [f["properties"] for f in server.query("things", Query()).features] == [{"b": "x"}]
    _write(importer, [Field("c", "number")], [(1.5,)])
    assert server.get("things", 1)["properties"] == {"c": 1.5}


def test_postgis_keeps_a_crs_without_an_epsg_code_as_one_srid_of_its_own(postgis):
    """A source in a CRS only WKT names (e.g. a local grid) gets an SRID in PostGIS's user
    range once, and the same one at the next import; its geometry is kept as it was."""
    import pyproj

    local = pyproj.CRS.from_proj4("+proj=tmerc +lat_0=51.9 +lon_0=4.45 +k=1 +x_0=1000 "
                                  "+y_0=2000 +ellps=GRS80 +units=m +no_defs").to_wkt()
    store = PostGISStore(postgis.create("own_crs"), pool_size=1)
    srids = []
    for name in ("first", "second"):
        native, crs84 = shapely.Point(1010, 2020), shapely.Point(4.45, 51.9)
        store.write_collection(name, local, [Field("a", "integer")],
                               [Feature(native, crs84, {"a": 1})])
        srids.append(store.execute(f"SELECT ST_SRID(_oup_geom) FROM {name}")[0][0])
        assert store.execute(f"SELECT ST_AsText(_oup_geom) FROM {name}") == [("POINT(1010 2020)",)]
    assert srids[0] == srids[1] and PostGISStore.OWN_SRIDS[0] <= srids[0] <= PostGISStore.OWN_SRIDS[1]
    assert store.execute("SELECT auth_name FROM spatial_ref_sys WHERE srid = ?", (srids[0],)) \
        == [("OUP",)]
