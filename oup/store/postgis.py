"""The production store: PostgreSQL + PostGIS, chosen by ``OUP_DATABASE_URL=postgresql://...``.

Same interface and answers as the GeoPackage store. Each collection is a table with the
source geometry (``_oup_geom``, the data of record) and ``_oup_geom84`` (CRS84, transformed
once at import), each with a GiST index, and a B-tree index per attribute; date-times are
``timestamptz``. Features written one at a time keep their versions (``versions.py``):
the current one in the table, the ones replaced in ``{cid}__history``. Connections come
from a pool per process (``OUP_DB_POOL_SIZE``); the schema is versioned
(``migrations.py``) and brought up to date when the store opens.

All SQL here is written as for the GeoPackage store, with ``?`` placeholders (one style
in every store); ``placeholders.pg_sql`` turns them into psycopg's ``%s`` where a
statement is run.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import time
import warnings
from contextlib import contextmanager
from datetime import datetime, timezone
from itertools import chain
from typing import Callable, Iterable

import shapely

from oup.store.base import (FID, GEOM, GEOM84, GEOM3857, OWNER, SYSTEM_PREFIX, Feature,
                            Field, InvalidQuery, Query, StaleLayer, StoreError,
                            UnknownCollection, Unprocessable)
from oup.store.cql import quote
from oup.store import pg_growth
from oup.store.mvt import BUFFER, EXTENT, TileQuery, native_grid
from oup.store.placeholders import pg_sql
from oup.store.reimport import carry_history, keep_previous
from oup.store.sqlquery import SqlQueries, TimeSpan, column_values, current_layout
from oup.store.geometry import rows_to_features
from oup.store.version_schema import history_ddl, history_table, version_columns
from oup.store.text import TEXT_COLUMN, searched, tsquery, weight
from oup.store.versions import FeatureVersions

log = logging.getLogger(__name__)

_PG_TYPES = {"string": "text", "number": "double precision", "integer": "bigint",
             "boolean": "boolean", "date-time": "timestamptz"}
# the SQL types of the version and history columns
_VERSION_TYPES = {**_PG_TYPES, "instant": "timestamptz", "geometry": "geometry",
                  "serial": "bigserial"}
_OPS = {"intersects": "ST_Intersects", "disjoint": "ST_Disjoint", "contains": "ST_Contains",
        "within": "ST_Within", "touches": "ST_Touches", "crosses": "ST_Crosses",
        "overlaps": "ST_Overlaps", "equals": "ST_Equals"}


# The geometry in web mercator (EPSG:3857), computed by PostgreSQL as each row is written:
# WebMercatorQuad tiles, the ones web maps ask for, then read it as it is instead of
# transforming every feature of every tile (a seventh of the tile statement's CPU, for
# a table about a third larger).
# (``kind``: the collection's, as of its other geometry columns)
_WEB_MERCATOR_COLUMN = (f"{GEOM3857} geometry({{kind}}, 3857) "
                        f"GENERATED ALWAYS AS (ST_Transform({GEOM84}, 3857)) STORED")
# per cent of a page the import fills in a table with live fields: the rest is room for
# a new version of each row on it, which stays on its page (at 70 %, a row whose first
# latest value made it grow found none half the time)
LIVE_FILLFACTOR = 50


def _without_jit(con) -> None:
    con.execute("SET jit = off")


def _text_config(con) -> str:
    """The text search configuration the words are parsed with: Dutch (stemmed) where
    the server has it."""
    row = con.execute("SELECT 1 FROM pg_ts_config WHERE cfgname = 'dutch'").fetchone()
    return "dutch" if row else "simple"


def _text_column(config: str, names: list[str]) -> str:
    """The free-text index's words (``text.py``): a column PostgreSQL computes as each
    row is written, so every write keeps it right; the first attribute weighs most."""
    parts = [f"setweight(to_tsvector('{config}'::regconfig, coalesce({quote(n)}::text, '')), "
             f"'{weight(i)[0]}')" for i, n in enumerate(names)]
    return f", {TEXT_COLUMN} tsvector GENERATED ALWAYS AS ({' || '.join(parts)}) STORED"


def _with_dimension(features: Iterable[Feature]) -> tuple[Iterable[Feature], str]:
    """The features, all of them, and their geometry columns' kind: ``GeometryZ`` where
    they have heights. The import gives a collection one dimension (``_one_dimension`` in
    ``oup.catalog.importers``): the first geometry tells it."""
    features, ahead = iter(features), []
    for feat in features:
        ahead.append(feat)
        if feat.geometry is not None:
            return chain(ahead, features), "GeometryZ" if feat.geometry.has_z else "Geometry"
    return ahead, "Geometry"


class PostGISStore(FeatureVersions, SqlQueries):
    GEOMETRY = (f"ST_AsBinary({GEOM})", f"ST_AsBinary({GEOM84})")
    LOCK_ROW = " FOR UPDATE"
    SQL_DIALECT = "postgresql"  # the spellings of the SensorThings queries (sta_sql.py)
    META_IMPORT_ID = "l.meta->>'import_id'"
    OWN_SRIDS = (910000, 998999)  # a CRS without an EPSG code: PostGIS's user range
    VERSION_TYPES = _VERSION_TYPES

    def __init__(self, url: str, pool_size: int | None = None,
                 session: Callable | None = None):
        """``session``: what each new connection runs first, after the store's own
        settings (``oup worker``'s: ``job_sessions``)."""
        import psycopg
        from psycopg_pool import ConnectionPool

        from oup.settings import get_settings
        from oup.store.migrations import migrate

        self.url = url
        size = pool_size or get_settings().db_pool_size
        # one connection first: no database there is one line at once, not a pool
        # retrying in the background for 30 s
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as con:
                migrate(con)
        except psycopg.OperationalError as exc:
            reason = (str(exc).splitlines() or [""])[0]
            raise StoreError(f"PostGIS at {url.split('@')[-1]}: {reason}") from None
        # autocommit: reads need no transaction; writers open their own. Statements run
        # often are prepared on the server (psycopg's default; a vector tile ~17% faster
        # than planned each time); one prepared before a re-import changed its table fails
        # and is retried (``execute``)
        # No JIT: PostgreSQL compiles a statement whose estimated cost passes jit_above_cost,
        # and the spatial functions' high declared costs put every low-zoom tile there:
        # 15-18 ms of compiling a statement of ~50 ms CPU, which it did not win back
        # (measured: benchmarks/README.md, "Overviews for the low zooms")
        def configure(con) -> None:
            _without_jit(con)
            if session is not None:
                session(con)

        self.pool = ConnectionPool(url, min_size=1, max_size=size, open=True, timeout=30,
                                   kwargs={"autocommit": True}, configure=configure)
        # closed while the interpreter still runs threads: left to the garbage collector at
        # exit, the pool waits 5 s for each of its threads and warns that it could not stop
        atexit.register(self.close)
        # layer metadata by collection, with when it was read (dict ops are atomic)
        self._meta: dict[str, tuple[float, dict]] = {}

    def close(self) -> None:
        self.pool.close()

    # -- plumbing -----------------------------------------------------------------------
    def execute(self, sql: str, params=()) -> list[tuple]:
        """Run one statement written with ``?`` placeholders; its rows (or [])."""
        import psycopg

        try:
            with self.pool.connection() as con:
                try:
                    cur = con.execute(pg_sql(sql), list(params))
                except psycopg.errors.FeatureNotSupported as exc:
                    if "cached plan" not in str(exc):
                        raise
                    # prepared before a re-import (by another process) changed the table's
                    # columns: this connection forgets its prepared statements (psycopg
                    # too, on seeing DEALLOCATE ALL), and the caller reads the layer again
                    con.execute("DEALLOCATE ALL")
                    raise StaleLayer(f"PostGIS: {exc.diag.message_primary}") from exc
                return cur.fetchall() if cur.description else []
        except psycopg.errors.DataError as exc:  # a value the column cannot hold
            raise InvalidQuery(f"a value does not fit: {exc.diag.message_primary}") from exc
        except psycopg.errors.QueryCanceled as exc:  # statement_timeout (a job's sessions)
            raise TimeoutError(f"PostGIS: {exc.diag.message_primary}") from exc
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
            raise StaleLayer(f"PostGIS: {exc.diag.message_primary}") from exc
        except psycopg.OperationalError as exc:
            raise StoreError(f"PostGIS: {exc}") from exc

    # How long a process trusts the layer metadata it read. A write in another process
    # grows the count, extent and time span (``pg_growth``); this process shows it at
    # most this long after, and meanwhile a request costs one round trip, not two.
    META_SECONDS = 1.0

    def layer(self, cid: str) -> dict:
        """The layer's metadata, read at most once per ``META_SECONDS`` per process. A
        table re-imported since shows as ``StaleLayer`` on the next query, which reads
        the metadata again (``SqlQueries``)."""
        read, meta = self._meta.get(cid, (0.0, None))
        if meta is None or time.monotonic() - read > self.META_SECONDS:
            rows = self.execute(pg_growth.READ, (cid,))
            if not rows:
                raise UnknownCollection(f"collection {cid!r} is not in the store; "
                                        "run `oup import`")
            meta = rows[0][0]
            meta = meta if isinstance(meta, dict) else json.loads(meta)
            meta = current_layout(cid, pg_growth.with_growth(meta, rows[0][1:]))
            if rows[0][1] > pg_growth.FOLD_ROWS:
                with self._writing(cid) as run:
                    pg_growth.fold(run, cid)
            self._meta[cid] = (time.monotonic(), meta)
        return meta

    def forget_layers(self) -> None:
        self._meta.clear()

    # -- writing --------------------------------------------------------------------------
    def _srid(self, con, crs: str) -> int:
        """The SRID of ``crs`` (``EPSG:n`` or WKT) in ``spatial_ref_sys``, added if new."""
        if crs.startswith("EPSG:"):
            return int(crs[5:])
        import pyproj

        c = pyproj.CRS.from_user_input(crs)
        # srtext is WKT 1 and holds 2048 characters; the layer metadata keeps the full WKT 2
        wkt = c.to_wkt("WKT1_GDAL") or ""
        wkt = wkt if len(wkt) <= 2048 else ""
        with warnings.catch_warnings():  # PROJ strings are lossy: a hint for GIS clients only
            warnings.simplefilter("ignore", UserWarning)
            proj4 = (c.to_proj4() or "")[:2048]
        row = con.execute(pg_sql("SELECT srid FROM spatial_ref_sys WHERE auth_name = 'OUP' "
                                 "AND srtext = ? AND proj4text = ?"), (wkt, proj4)).fetchone()
        if row:
            return row[0]
        low, high = self.OWN_SRIDS
        srid = con.execute(pg_sql("SELECT COALESCE(MAX(srid) + 1, ?) FROM spatial_ref_sys "
                                  "WHERE srid BETWEEN ? AND ?"), (low, low, high)).fetchone()[0]
        con.execute(pg_sql("INSERT INTO spatial_ref_sys (srid, auth_name, auth_srid, srtext, "
                           "proj4text) VALUES (?, 'OUP', ?, ?, ?)"), (srid, srid, wkt, proj4))
        return srid

    def write_collection(self, cid: str, source_crs: str, fields: list[Field],
                         features: Iterable[Feature], time_field: str | None = None,
                         geometry_type: str = "GEOMETRY", description: str = "",
                         id_field: str | None = None, search: list[str] = ()) -> int:
        """Replace collection ``cid`` atomically: a new table, written and swapped in one
        transaction, so no other session sees it half-written (nor left behind by a failure)."""
        new = f"{cid}__new"
        t, tn = quote(cid), quote(new)
        cols = "".join(f", {quote(f.name)} {_PG_TYPES[f.type]}" for f in fields)
        names = [GEOM, GEOM84] + [f.name for f in fields]
        marks = ["ST_GeomFromWKB(?, ?)", "ST_GeomFromWKB(?, 4326)"] + ["?"] * len(fields)
        insert = pg_sql(f"INSERT INTO {tn} ({', '.join(map(quote, names))}) "
                        f"VALUES ({', '.join(marks)})")
        count, bounds, span = 0, None, TimeSpan()
        with self.pool.connection() as con, con.transaction():
            source_srid = self._srid(con, source_crs)
            con.execute(f"DROP TABLE IF EXISTS {tn}")
            # typed geometry columns: geometry_columns then tells GIS clients (QGIS, tipg)
            # each column's SRID and dimension
            features, kind = _with_dimension(features)
            imported = datetime.now(timezone.utc)
            config = _text_config(con) if search else None
            text = _text_column(config, search) if search else ""
            con.execute(f"CREATE TABLE {tn} ({FID} bigserial PRIMARY KEY, "
                        f"{GEOM} geometry({kind}, {int(source_srid)}), "
                        f"{GEOM84} geometry({kind}, 4326), "
                        f"{_WEB_MERCATOR_COLUMN.format(kind=kind)}{cols}{text}, "
                        f"{version_columns(_VERSION_TYPES, imported.isoformat())})"
                        # room on each page for the new version of a row whose live
                        # fields change: an update that touches no index stays on its
                        # page (HOT), instead of adding an entry to every index
                        + (f" WITH (fillfactor = {LIVE_FILLFACTOR})"
                           if any(f.live for f in fields) else ""))
            batch = []
            with con.transaction():
                for feat in features:
                    g, g84 = feat.geometry, feat.geometry_crs84
                    batch.append([None if g is None else shapely.to_wkb(g), source_srid,
                                  None if g84 is None else shapely.to_wkb(g84)]
                                 + column_values(fields, feat.properties, span))
                    b = None if g84 is None else g84.bounds
                    if b is not None:  # a feature without geometry adds nothing to the bbox
                        bounds = list(b) if bounds is None else [
                            min(bounds[0], b[0]), min(bounds[1], b[1]),
                            max(bounds[2], b[2]), max(bounds[3], b[3])]
                    count += 1
                    if len(batch) >= 2000:
                        con.cursor().executemany(insert, batch)
                        batch = []
                if batch:
                    con.cursor().executemany(insert, batch)
            for col in (GEOM, GEOM84):
                con.execute(f"CREATE INDEX ON {tn} USING gist ({col})")
            for f in fields:
                if f.live:
                    continue
                unique = "UNIQUE " if f.name == id_field else ""
                con.execute(f"CREATE {unique}INDEX ON {tn} ({quote(f.name)})")
            # "a resident sees only their own": few rows have an owner
            con.execute(f"CREATE INDEX ON {tn} ({OWNER}) WHERE {OWNER} IS NOT NULL")
            if search:
                con.execute(f"CREATE INDEX ON {tn} USING gin ({TEXT_COLUMN})")
            con.execute(f"ANALYZE {tn}")
            meta = {"fields": [[f.name, f.type] for f in fields], "source_srid": source_srid,
                    "source_crs": source_crs,
                    "time_field": time_field, "id_field": id_field, "count": count,
                    "bbox": bounds, "interval": span.interval,
                    "geometry_type": geometry_type, "description": description,
                    "has_z": kind == "GeometryZ",  # the collection's one dimension
                    "web_mercator": True,
                    # the attributes in its free-text index, and the words' language
                    "search": list(search), "text_config": config,
                    "imported": imported.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    # the ETags' first part: a feature's versions restart at each import
                    "import_id": os.urandom(6).hex()}
            self._meta.pop(cid, None)
            with con.transaction():  # readers see the old table or the new one
                def run(sql: str, params=()) -> list:
                    cur = con.execute(pg_sql(sql), list(params), prepare=False)
                    return cur.fetchall() if cur.description else []

                # no write runs while the versions are carried over and the tables swapped
                # (the writes hold this lock shared)
                run("SELECT pg_advisory_xact_lock(hashtext(?))", (f"oup.write:{cid}",))
                # (the count and extent of the table replaced, and what its writes grew)
                run("DELETE FROM oup_layer_growth WHERE table_name = ?", (cid,))
                previous = run("SELECT meta FROM oup_layers WHERE table_name = ?", (cid,))
                previous = previous[0][0] if previous else None
                carry = keep_previous(run, cid, previous, id_field, "TEMP TABLE")
                con.execute(f"DROP TABLE IF EXISTS {t}")
                con.execute(f"ALTER TABLE {tn} RENAME TO {t}")
                # the versions of the table replaced go with it
                con.execute(f"DROP TABLE IF EXISTS {quote(history_table(cid))}")
                for sql in history_ddl(cid, fields, _VERSION_TYPES, id_field):
                    con.execute(sql)
                con.execute(pg_sql("INSERT INTO oup_layers (table_name, meta) VALUES (?, ?) "
                                   "ON CONFLICT (table_name) DO UPDATE SET meta = excluded.meta"),
                            (cid, json.dumps(meta)))
                if carry:
                    log.info("%s: %s", cid, carry_history(run, cid, previous, meta, imported,
                                                          "IS NOT DISTINCT FROM"))
        return count

    # -- writing features one at a time (``versions.py``) -----------------------------------
    @contextmanager
    def _writing(self, cid: str):
        import psycopg

        try:
            with self.pool.connection() as con, con.transaction():
                def run(sql: str, params=()) -> list:
                    # not prepared: a statement prepared before a re-import would fail
                    cur = con.execute(pg_sql(sql), list(params), prepare=False)
                    return cur.fetchall() if cur.description else []

                # writes run side by side (each locks its row); a re-import waits for them
                # and they for it (it holds this lock alone)
                run("SELECT pg_advisory_xact_lock_shared(hashtext(?))", (f"oup.write:{cid}",))
                yield run
        except psycopg.errors.DataError as exc:  # a value or geometry the column cannot hold
            raise Unprocessable(f"a value does not fit: {exc.diag.message_primary}") from exc
        except psycopg.errors.UndefinedTable as exc:
            raise UnknownCollection(f"PostGIS: {exc.diag.message_primary}") from exc
        except psycopg.OperationalError as exc:
            raise StoreError(f"PostGIS: {exc}") from exc

    def _columns(self, run, table: str) -> set[str]:
        return {r[0] for r in run("SELECT column_name FROM information_schema.columns WHERE "
                                  "table_schema = current_schema() AND table_name = ?",
                                  (table,))}

    def _exists(self, table: str) -> bool:
        return bool(self.execute("SELECT to_regclass(?)::oid::text", (quote(table),))[0][0])

    def _lock_collection(self, run, cid: str) -> None:
        # the one creator until COMMIT: a server-made id is not made twice
        run("SELECT pg_advisory_xact_lock(hashtext(?))", (f"oup.create:{cid}",))

    def _grow_layer(self, run, cid: str, read: dict, written: dict) -> None:
        if not pg_growth.grow(run, cid, read, written):
            super()._grow_layer(run, cid, read, written)

    def _written(self, cid: str) -> None:
        self._meta.pop(cid, None)

    def _stamp(self, when: datetime) -> datetime:
        return when if when.tzinfo else when.replace(tzinfo=timezone.utc)

    def _geometry_marks(self, meta: dict) -> tuple[str, str]:
        return f"ST_GeomFromWKB(?, {int(meta['source_srid'])})", "ST_GeomFromWKB(?, 4326)"

    def _geometry_values(self, meta: dict, feature: Feature) -> list:
        g, g84 = feature.geometry, feature.geometry_crs84
        return [None if g is None else shapely.to_wkb(g),
                None if g84 is None else shapely.to_wkb(g84)]

    # -- reading ----------------------------------------------------------------------------
    def collections(self) -> list[str]:
        return sorted(r[0] for r in self.execute("SELECT table_name FROM oup_layers"))

    def _spatial(self, cid: str):
        def spatial(op: str, wkb: bytes, bounds, box: bool = False) -> tuple[str, list]:
            exact = f"{_OPS[op]}({GEOM84}, ST_GeomFromWKB(?, 4326))"
            if op == "disjoint":
                return exact, [wkb]
            # the GiST index answers the envelope test; the exact test runs on what it keeps
            return f"({GEOM84} && ST_MakeEnvelope(?, ?, ?, ?, 4326) AND {exact})", \
                [*bounds, wkb]

        return spatial

    def _text_join(self, cid: str, meta: dict, text: str) -> tuple[str, list, str]:
        searched(meta, cid)
        return (f" JOIN to_tsquery(?::regconfig, ?) AS _oup_tsq ON {TEXT_COLUMN} @@ _oup_tsq",
                [meta["text_config"], tsquery(text)], f"ts_rank({TEXT_COLUMN}, _oup_tsq)")

    @staticmethod
    def features(meta: dict, rows, select: list[str], q: Query) -> list[dict]:
        return rows_to_features(meta, rows, select, q)

    # -- vector tiles: one statement ------------------------------------------------------
    def cut_tile(self, q: TileQuery) -> bytes:
        return self._fresh(self._cut_tile, q)

    def _cut_tile(self, q: TileQuery) -> bytes:
        meta = self.layer(q.source)
        types = dict(meta["fields"])
        native = native_grid(meta, q)
        cols = []
        for name in q.properties:
            col = quote(name)
            if types[name] == "date-time":  # the store's text form, as the features answer it
                col = f"to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
            cols.append(f"{col} AS {quote(name)}")
        # the index first (GiST on the stored column), then the exact test in the grid's CRS
        if native:
            geom, index, index_params = GEOM, f"{GEOM} && ST_MakeEnvelope(?, ?, ?, ?, {q.srid})", \
                list(q.bounds)
        else:
            # web mercator is stored (_WEB_MERCATOR_COLUMN) by tables written since
            geom = GEOM3857 if q.srid == 3857 and meta.get("web_mercator") else \
                f"ST_Transform({GEOM84}, {q.srid})"
            index, index_params = f"{GEOM84} && ST_MakeEnvelope(?, ?, ?, ?, 4326)", \
                list(q.envelope84)
        px = q.speck_size
        x0, y0, x1, y1 = q.bounds
        # MATERIALIZED: the transformed geometry is computed once a row, not once a use.
        # A feature whose box lies inside the tile meets it: only the others take GEOS's
        # exact (and costly) test. No "WHERE geometry IS NOT NULL" around the rows: ST_AsMVT
        # skips a row whose ST_AsMVTGeom came out empty (NULL) by itself, and PostgreSQL,
        # pulling the subquery up, would compute ST_AsMVTGeom twice a row for that test
        # (a fifth of the statement's CPU).
        g = f"{SYSTEM_PREFIX}g"  # the store's own names, so no attribute of a steward's clashes
        shape = f"""ST_AsMVTGeom(ST_Simplify({g}, ?, true),
                                   ST_MakeEnvelope(?, ?, ?, ?, {q.srid}), {EXTENT}, {BUFFER},
                                   true)"""
        shape_params = [q.unit, *q.bounds]
        if q.grid:
            # Blocks stored on the tile's grid, valid and wound: one inside the buffer is
            # only moved into the tile's units (whole numbers again to the metres'
            # rounding); clipping and repairing it (ST_AsMVTGeom, GEOS's overlay) was
            # three quarters of the tile. Those across the buffer's edge are cut.
            k, b = 1 / q.unit, BUFFER * q.unit
            shape = f"""CASE WHEN ST_XMin({g}) >= ? AND ST_XMax({g}) <= ? AND ST_YMin({g}) >= ?
                                  AND ST_YMax({g}) <= ?
                             THEN ST_SnapToGrid(ST_Affine({g}, ?, 0, 0, ?, ?, ?), 1)
                             ELSE {shape} END"""
            shape_params = [x0 - b, x1 + b, y0 - b, y1 + b, k, -k, -x0 * k, y1 * k,
                            *shape_params]
        sql = f"""
        WITH hit AS MATERIALIZED (
          SELECT {FID}, {geom} AS {g}{''.join(', ' + c for c in cols)}
          FROM {quote(q.source)} WHERE {index})
        SELECT ST_AsMVT(mvt, ?, {EXTENT}, '{g}', '{FID}') FROM (
          SELECT {FID}, {shape} AS {g}{''.join(', ' + quote(n) for n in q.properties)}
          FROM hit
          WHERE (ST_Dimension({g}) = 0 OR ST_XMax({g}) - ST_XMin({g}) >= ?
                 OR ST_YMax({g}) - ST_YMin({g}) >= ?)
            AND CASE WHEN ST_XMin({g}) >= ? AND ST_XMax({g}) <= ? AND ST_YMin({g}) >= ?
                          AND ST_YMax({g}) <= ?
                     THEN true ELSE ST_Intersects({g}, ST_MakeEnvelope(?, ?, ?, ?, {q.srid})) END
          ORDER BY {FID}  -- the same bytes whatever the plan: the ETag is their hash
        ) AS mvt"""
        rows = self.execute(sql, [*index_params, q.layer, *shape_params, px, px,
                                   x0, x1, y0, y1, *q.bounds])
        return bytes(rows[0][0] or b"") if rows else b""

    def import_stamp(self, cid: str) -> str:
        """The table's oid: each import makes a new table."""
        rows = self.execute("SELECT to_regclass(?)::oid::text", (quote(cid),))
        return str(rows[0][0]) if rows else ""

    def health(self) -> dict:
        try:
            self.execute("SELECT 1")
            return {"status": "ok", "store": "postgis", "collections": len(self.collections())}
        except StoreError as exc:
            return {"status": "error", "store": "postgis", "error": str(exc)}
