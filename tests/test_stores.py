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
