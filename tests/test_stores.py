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


def test_postgis_rewrites_the_latest_values_of_sensors_in_place(postgis):
    """A batch of readings updates each sensor's latest value; those columns are live (not
    indexed, room left on each page), so a row is rewritten on its page without a new
    entry in the table's other indexes: PostgreSQL counts the update as HOT."""
    from oup.sensors.observations import Observation, SensorHome
    from oup.store.pg_observations import PostGISObservationStore

    url = postgis.create("live")
    store = PostGISStore(url, pool_size=1)
    fields = [Field("sensor_id", "string"), Field("name", "string"),
              Field("latest_result", "number", live=True),
              Field("latest_time", "date-time", live=True)]
    n = 300  # rows on several pages
    pt = shapely.Point(4.45, 51.9)
    store.write_collection("sensors", "EPSG:4326", fields, (
        Feature(pt, pt, {"sensor_id": f"s{i}", "name": f"sensor {i}", "latest_result": None,
                         "latest_time": None}) for i in range(n)), id_field="sensor_id")
    observations = PostGISObservationStore(url)
    homes = {f"s{i}": SensorHome("sensors", "sensor_id") for i in range(n)}

    def batch(minute: int) -> list:
        return [[Observation(f"s{i}", 1_893_456_000_000_000 + minute * 60_000_000,
                             float(i))] for i in range(n)]

    observations.write_batch("test", batch(0), homes)  # the first values (rows grow)
    # the next batch in a transaction (rolled back) whose connection's counters say what
    # the two did (those of the first, if not sent to the statistics yet, and its own)
    with observations.con.transaction(force_rollback=True):
        observations.write_batch("test", batch(1), homes)
        (updated, hot), = observations.execute(
            "SELECT pg_stat_get_xact_tuples_updated('sensors'::regclass), "
            "pg_stat_get_xact_tuples_hot_updated('sensors'::regclass)")
        latest = observations.execute("SELECT count(*) FROM sensors WHERE latest_result = "
                                      "CAST(substr(sensor_id, 2) AS float8)")
    assert latest == [(n,)]
    # (a row's new version that finds no room on its page moves: a few do)
    assert updated in (n, 2 * n) and hot >= 0.9 * updated
    # the fields that are not live stay indexed
    indexed = {r[0] for r in observations.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'sensors'::regclass")}
    assert {"sensor_id", "name"} <= indexed and not indexed & {"latest_result", "latest_time"}
