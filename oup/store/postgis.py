"""The production store: PostgreSQL + PostGIS, chosen by ``OUP_DATABASE_URL=postgresql://...``.

Same interface and answers as the GeoPackage store. Each collection is a table with the
source geometry (``geom``, the data of record) and ``geom84`` (CRS84, transformed once at
import), each with a GiST index, and a B-tree index per attribute; date-times are
``timestamptz``. Connections come from a pool per process (``OUP_DB_POOL_SIZE``); the
schema is versioned (``migrations.py``) and brought up to date when the store opens.

All SQL here is written as for the GeoPackage store, with ``?`` placeholders (one style
in every store); ``pg_sql`` turns them into psycopg's ``%s`` where a statement is run.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import Iterable

import shapely

from .base import (Feature, Field, InvalidQuery, Query, StaleLayer, StoreError,
                   UnknownCollection)
from .cql import quote
from .sqlquery import SqlQueries, TimeSpan, column_values
from .geometry import rows_to_features

_PG_TYPES = {"string": "text", "number": "double precision", "integer": "bigint",
             "boolean": "boolean", "date-time": "timestamptz"}
_OPS = {"intersects": "ST_Intersects", "disjoint": "ST_Disjoint", "contains": "ST_Contains",
        "within": "ST_Within", "touches": "ST_Touches", "crosses": "ST_Crosses",
        "overlaps": "ST_Overlaps", "equals": "ST_Equals"}


def pg_sql(sql: str) -> str:
    """``?`` placeholders (outside quotes) -> ``%s``; every literal ``%`` doubled."""
    out, quote_char = [], None
    for ch in sql:
        if ch == "%":
            out.append("%%")
        elif quote_char:
            out.append(ch)
            if ch == quote_char:
                quote_char = None
        elif ch in "'\"":
            quote_char = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        else:
            out.append(ch)
    return "".join(out)


class PostGISStore(SqlQueries):
    GEOMETRY = ("ST_AsBinary(geom)", "ST_AsBinary(geom84)")

    def __init__(self, url: str, pool_size: int | None = None):
        from psycopg_pool import ConnectionPool

        from .migrations import migrate

        self.url = url
        size = pool_size or int(os.environ.get("OUP_DB_POOL_SIZE", "4"))
        # autocommit: reads need no transaction; writers open their own
        self.pool = ConnectionPool(url, min_size=1, max_size=size, open=True, timeout=30,
                                   kwargs={"autocommit": True})
        with self.pool.connection() as con:
            migrate(con)
        self._meta: dict[str, dict] = {}  # layer metadata by collection (dict ops are atomic)

    # -- plumbing -----------------------------------------------------------------------
    def execute(self, sql: str, params=()) -> list[tuple]:
        """Run one statement written with ``?`` placeholders; its rows (or [])."""
        import psycopg

        try:
            with self.pool.connection() as con:
                cur = con.execute(pg_sql(sql), list(params))
                return cur.fetchall() if cur.description else []
        except psycopg.errors.DataError as exc:  # a value the column cannot hold
            raise InvalidQuery(f"a value does not fit: {exc.diag.message_primary}") from exc
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
            raise StaleLayer(f"PostGIS: {exc.diag.message_primary}") from exc
        except psycopg.OperationalError as exc:
            raise StoreError(f"PostGIS: {exc}") from exc

    def layer(self, cid: str) -> dict:
        """The layer's metadata, read once per process: a request then costs one round
        trip, not two. A table re-imported since shows as ``StaleLayer`` on the next
        query, which reads the metadata again (``SqlQueries``)."""
        meta = self._meta.get(cid)
        if meta is None:
            rows = self.execute("SELECT meta FROM oup_layers WHERE table_name = ?", (cid,))
            if not rows:
                raise UnknownCollection(f"collection {cid!r} is not in the store; "
                                        "run `oup import`")
            meta = rows[0][0]
            meta = self._meta[cid] = meta if isinstance(meta, dict) else json.loads(meta)
        return meta

    def forget_layers(self) -> None:
        self._meta.clear()

    # -- writing --------------------------------------------------------------------------
    def write_collection(self, cid: str, source_srid: int, fields: list[Field],
                         features: Iterable[Feature], time_field: str | None = None,
                         geometry_type: str = "GEOMETRY", description: str = "",
                         id_field: str | None = None) -> int:
        """Replace collection ``cid`` atomically: a new table, swapped in one transaction."""
        new = f"{cid}__new"
        t, tn = quote(cid), quote(new)
        cols = "".join(f", {quote(f.name)} {_PG_TYPES[f.type]}" for f in fields)
        names = ["geom", "geom84"] + [f.name for f in fields]
        marks = ["ST_GeomFromWKB(?, ?)", "ST_GeomFromWKB(?, 4326)"] + ["?"] * len(fields)
        insert = pg_sql(f"INSERT INTO {tn} ({', '.join(map(quote, names))}) "
                        f"VALUES ({', '.join(marks)})")
        count, bounds, span = 0, None, TimeSpan()
        with self.pool.connection() as con:
            con.execute(f"DROP TABLE IF EXISTS {tn}")
            # typed geometry columns: geometry_columns then tells GIS clients (QGIS, tipg)
            # each column's SRID
            con.execute(f"CREATE TABLE {tn} (fid bigserial PRIMARY KEY, "
                        f"geom geometry(Geometry, {int(source_srid)}), "
                        f"geom84 geometry(Geometry, 4326){cols})")
            batch = []
            with con.transaction():
                for feat in features:
                    batch.append([shapely.to_wkb(feat.geometry), source_srid,
                                  shapely.to_wkb(feat.geometry_crs84)]
                                 + column_values(fields, feat.properties, span))
                    b = feat.geometry_crs84.bounds
                    bounds = list(b) if bounds is None else [
                        min(bounds[0], b[0]), min(bounds[1], b[1]),
                        max(bounds[2], b[2]), max(bounds[3], b[3])]
                    count += 1
                    if len(batch) >= 2000:
                        con.cursor().executemany(insert, batch)
                        batch = []
                if batch:
                    con.cursor().executemany(insert, batch)
            for col in ("geom", "geom84"):
                con.execute(f"CREATE INDEX ON {tn} USING gist ({col})")
            for f in fields:
                unique = "UNIQUE " if f.name == id_field else ""
                con.execute(f"CREATE {unique}INDEX ON {tn} ({quote(f.name)})")
            con.execute(f"ANALYZE {tn}")
            meta = {"fields": [[f.name, f.type] for f in fields], "source_srid": source_srid,
                    "time_field": time_field, "id_field": id_field, "count": count,
                    "bbox": bounds, "interval": span.interval,
                    "geometry_type": geometry_type, "description": description,
                    "imported": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
            self._meta.pop(cid, None)
            with con.transaction():  # readers see the old table or the new one
                con.execute(f"DROP TABLE IF EXISTS {t}")
                con.execute(f"ALTER TABLE {tn} RENAME TO {t}")
                con.execute(pg_sql("INSERT INTO oup_layers (table_name, meta) VALUES (?, ?) "
                                   "ON CONFLICT (table_name) DO UPDATE SET meta = excluded.meta"),
                            (cid, json.dumps(meta)))
        return count

    # -- reading ----------------------------------------------------------------------------
    def collections(self) -> list[str]:
        return sorted(r[0] for r in self.execute("SELECT table_name FROM oup_layers"))

    def _spatial(self, cid: str):
        def spatial(op: str, wkb: bytes, bounds, box: bool = False) -> tuple[str, list]:
            exact = f"{_OPS[op]}(geom84, ST_GeomFromWKB(?, 4326))"
            if op == "disjoint":
                return exact, [wkb]
            # the GiST index answers the envelope test; the exact test runs on what it keeps
            return f"(geom84 && ST_MakeEnvelope(?, ?, ?, ?, 4326) AND {exact})", \
                [*bounds, wkb]

        return spatial

    @staticmethod
    def features(meta: dict, rows, select: list[str], q: Query) -> list[dict]:
        return rows_to_features(meta, rows, select, q)

    def health(self) -> dict:
        try:
            self.execute("SELECT 1")
            return {"status": "ok", "store": "postgis", "collections": len(self.collections())}
        except StoreError as exc:
            return {"status": "error", "store": "postgis", "error": str(exc)}
