"""The embedded store: one GeoPackage file, readable by QGIS and GDAL as it is.

Each collection is a GeoPackage feature table whose geometry column (``_oup_geom``)
holds the source geometry (e.g. RD New, the data of record) with the standard R*Tree
index, plus ``_oup_geom84``, the same geometry in CRS84 (exactly transformed once, at
import), with its own R*Tree. Requests then never transform coordinates for CRS84 or the
source CRS, and bbox / spatial filters are answered from an index. A source CRS without
an EPSG code gets a ``gpkg_spatial_ref_sys`` row of its own (organisation NONE, from
srs_id 100000 on, as GDAL numbers them).

For vector tiles, import also numbers every distinct property value of a collection and
encodes each once (``oup_tile_values``); ``_oup_values`` holds each feature's numbers. A
tile then reads one small column instead of every property, and encodes no value: at
z14 that was a quarter of a tile's CPU. A row edited by another program (QGIS) loses its
numbers (a trigger), and tiles holding it read the properties themselves.

Features written one at a time (``versions.py``, ``gpkg_writes.py``) keep each version:
the table has the current one (``_oup_version`` ... ``_oup_owner``), ``{cid}__history``
(a plain table, not a GeoPackage layer) the ones replaced.

Python's sqlite3 cannot load SpatiaLite here, so the few SQL functions the
GeoPackage R*Tree triggers and our spatial filters call are registered in Python.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import numpy as np
import shapely

from oup.store.base import (FID, GEOM, GEOM84, OWNER, VALUES, Feature, Field, Query,
                            StoreError, UnknownCollection)
from oup.store.cql import quote
from oup.store.geometry import gpb_envelope, gpb_wkb, native_crs, rows_to_features, to_gpb
from oup.store import mvt_gpkg, ranks
from oup.store.gpkg_writes import ADDED_VALUES, TYPES, GeoPackageWrites, stamp
from oup.store.mvt import TileQuery
from oup.store.mvt_encode import ValueCoder, ValueTable
from oup.store.mvt_gpkg import tile_column
from oup.store.reimport import carry_history, keep_previous
from oup.store.sqlquery import SqlQueries, TimeSpan, column_values, current_layout
from oup.store.text import fts5_query, searched, weight
from oup.store.version_schema import history_ddl, history_table, version_columns

log = logging.getLogger(__name__)

_SQL_TYPES = {"string": "TEXT", "number": "DOUBLE", "integer": "INTEGER",
              "boolean": "BOOLEAN", "date-time": "DATETIME"}
_SRS = {
    4326: ("WGS 84 geodetic", "EPSG", 4326, 'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",'
           '6378137,298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433],'
           'AUTHORITY["EPSG","4326"]]'),
    28992: ("Amersfoort / RD New", "EPSG", 28992, None),
    -1: ("Undefined cartesian SRS", "NONE", -1, "undefined"),
    0: ("Undefined geographic SRS", "NONE", 0, "undefined"),
}
_BATCH = 2000
_OWN_SRS = 100000  # the first srs_id of a CRS without an EPSG code


def _srs_wkt(crs: str) -> str:
    import pyproj

    c = pyproj.CRS.from_user_input(crs)
    try:  # the GeoPackage 1.2 core holds WKT 1; PROJ writes it for nearly every CRS
        return c.to_wkt("WKT1_GDAL", pretty=False) or c.to_wkt()
    except pyproj.exceptions.CRSError:
        return c.to_wkt()


class _PreparedCache:
    """Filter literals parsed once per thread, not once per row. Per thread: a prepared
    geometry is not safe to share between threads (GEOS builds its index on first use,
    and two threads at once can crash the process)."""

    def __init__(self, size: int = 64):
        self.size, self._local = size, threading.local()

    def get(self, wkb: bytes):
        items = getattr(self._local, "items", None)
        if items is None:  # (asked once a row: no dict made to be thrown away)
            items = self._local.items = OrderedDict()
        g = items.get(wkb)
        if g is None:
            g = shapely.from_wkb(wkb)
            shapely.prepare(g)
            items[wkb] = g
            if len(items) > self.size:
                items.popitem(last=False)
        return g


_PREPARED = _PreparedCache()


def _spatial_predicate(op: str, wkb: bytes | None, literal: bytes) -> int:
    if wkb is None:
        return 0
    geom = shapely.from_wkb(wkb)
    lit = _PREPARED.get(literal)
    # prepared literal: ask the question from its side where the predicate allows
    if op == "intersects":
        return int(lit.intersects(geom))
    if op == "disjoint":
        return int(lit.disjoint(geom))
    if op == "within":  # feature within literal
        return int(lit.contains(geom))
    if op == "contains":  # feature contains literal
        return int(lit.within(geom))
    return int(getattr(geom, op)(lit))


def _envelope_fn(i: int):
    def fn(blob):
        env = gpb_envelope(blob)
        return None if env is None else env[i]
    return fn


def _connect(path: str, readonly: bool = False) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    con = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None,
                          timeout=30)
    con.execute("PRAGMA case_sensitive_like = ON")  # CQL2 LIKE is case-sensitive
    for i, name in enumerate(("ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY")):
        con.create_function(name, 1, _envelope_fn(i), deterministic=True)
    con.create_function("ST_IsEmpty", 1, lambda b: 1 if gpb_envelope(b) is None else 0,
                        deterministic=True)
    con.create_function("oup_spatial", 3, _spatial_predicate, deterministic=True)
    ranks.register(con)
    return con


def text_table(cid: str) -> str:
    return f"{cid}__search"


def _text_index(con: sqlite3.Connection, cid: str, names: list[str]) -> None:
    """The collection's free-text index (``text.py``): an FTS5 table over its rows
    (external content: the words, not a copy of the text), filled once, then kept right
    by triggers on whatever writes the table - OUP's writes, or QGIS editing the file."""
    t, fts = quote(cid), quote(text_table(cid))
    cols = ", ".join(map(quote, names))
    try:
        con.execute(f"CREATE VIRTUAL TABLE {fts} USING fts5({cols}, content={t}, "
                    f"content_rowid={FID}, tokenize='unicode61 remove_diacritics 2')")
    except sqlite3.OperationalError as exc:
        if "fts5" not in str(exc):
            raise
        raise StoreError(f"{cid}: search: this Python's SQLite {sqlite3.sqlite_version} has "
                         "no FTS5 (free-text index); use a build with it, or PostGIS") from None
    con.execute(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")
    new = ", ".join(f"NEW.{quote(n)}" for n in names)
    old = ", ".join(f"OLD.{quote(n)}" for n in names)
    drop = f"INSERT INTO {fts}({fts}, rowid, {cols}) VALUES ('delete', OLD.{FID}, {old});"
    add = f"INSERT INTO {fts}(rowid, {cols}) VALUES (NEW.{FID}, {new});"
    for name, when, body in (("insert", f"AFTER INSERT ON {t}", add),
                             ("delete", f"AFTER DELETE ON {t}", drop),
                             ("update", f"AFTER UPDATE OF {cols} ON {t}", drop + " " + add)):
        con.execute(f"CREATE TRIGGER {quote(f'oup_{cid}_search_{name}')} {when} "
                    f"BEGIN {body} END")


class GeoPackageStore(GeoPackageWrites, SqlQueries):
    """A GeoPackage file behind the ``FeatureStore`` Protocol."""

    GEOMETRY = (quote(GEOM), quote(GEOM84))
    SQL_DIALECT = "sqlite"  # the spellings of the SensorThings queries (sta_sql.py)

    def __init__(self, path: str | Path):
        self.path = str(Path(path).resolve())
        # connections and the layer metadata they read are per thread: sqlite3
        # connections must not be shared, and PRAGMA data_version is per connection
        self._local = threading.local()
        self._tables: dict[str, tuple[str, ValueTable]] = {}  # tile values, by collection
        self._tables_lock = threading.Lock()

    # -- connections --------------------------------------------------------
    @property
    def con(self) -> sqlite3.Connection:
        return self._connection("con")

    def _writer(self) -> sqlite3.Connection:
        # its own, kept: a new connection reads the file's schema again (every table,
        # index and trigger of a GeoPackage) before its first statement
        return self._connection("writer")

    def _connection(self, use: str) -> sqlite3.Connection:
        """This thread's connection for ``use`` (opened on first use)."""
        con = getattr(self._local, use, None)
        if con is None:
            if not Path(self.path).exists():
                raise StoreError(f"no store at {self.path}: run `oup import` first")
            con = _connect(self.path)
            setattr(self._local, use, con)
        return con

    def execute(self, sql: str, params=()) -> list[tuple]:
        """Run one statement (``?`` placeholders); its rows."""
        return self.con.execute(sql, list(params)).fetchall()

    def layer(self, cid: str) -> dict:
        local = self._local
        version = self.con.execute("PRAGMA data_version").fetchone()[0]
        meta = getattr(local, "meta", None)
        if meta is None or version != local.meta_version or cid not in meta:
            # with the declared geometry type (the tiles' speck test needs it)
            meta = local.meta = {row[0]: {**json.loads(row[1]), "geometry_type": row[2]}
                                 for row in self.con.execute(
                "SELECT l.table_name, l.meta, g.geometry_type_name FROM oup_layers l "
                "LEFT JOIN gpkg_geometry_columns g ON g.table_name = l.table_name")} \
                if self._has_layers() else {}
            local.meta_version = version
        if cid not in meta:
            raise UnknownCollection(f"collection {cid!r} is not in the store; run `oup import`")
        return current_layout(cid, meta[cid])

    def _has_layers(self) -> bool:
        return self.con.execute("SELECT 1 FROM sqlite_master WHERE name='oup_layers'").fetchone() \
            is not None

    # -- writing --------------------------------------------------------------
    def _init_schema(self, con: sqlite3.Connection) -> None:
        con.execute("PRAGMA application_id = 1196444487")  # 'GPKG'
        con.execute("PRAGMA user_version = 10200")
        con.execute("PRAGMA journal_mode = WAL")
        con.executescript("""
        CREATE TABLE IF NOT EXISTS gpkg_spatial_ref_sys (
          srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL,
          organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT);
        CREATE TABLE IF NOT EXISTS gpkg_contents (
          table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE,
          description TEXT DEFAULT '', last_change DATETIME NOT NULL DEFAULT
          (strftime('%Y-%m-%dT%H:%M:%fZ','now')), min_x DOUBLE, min_y DOUBLE, max_x DOUBLE,
          max_y DOUBLE, srs_id INTEGER);
        CREATE TABLE IF NOT EXISTS gpkg_geometry_columns (
          table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
          srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
          CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name));
        CREATE TABLE IF NOT EXISTS gpkg_extensions (
          table_name TEXT, column_name TEXT, extension_name TEXT NOT NULL,
          definition TEXT NOT NULL, scope TEXT NOT NULL,
          CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name));
        CREATE TABLE IF NOT EXISTS oup_layers (table_name TEXT PRIMARY KEY, meta TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS oup_tile_values (table_name TEXT PRIMARY KEY,
          value_bytes BLOB NOT NULL, value_lengths BLOB NOT NULL);
        """ + ADDED_VALUES + ";")

    def _ensure_srs(self, con, srid: int) -> None:
        if con.execute("SELECT 1 FROM gpkg_spatial_ref_sys WHERE srs_id=?", (srid,)).fetchone():
            return
        name, org, code, wkt = _SRS.get(srid, (f"EPSG:{srid}", "EPSG", srid, None))
        con.execute("INSERT INTO gpkg_spatial_ref_sys VALUES (?,?,?,?,?,?)",
                    (name, srid, org, code, wkt or _srs_wkt(f"EPSG:{srid}"), None))

    def _srs_id(self, con, crs: str) -> int:
        """The srs_id of ``crs`` (``EPSG:n`` or WKT) in this file, added if new."""
        if crs.startswith("EPSG:"):
            self._ensure_srs(con, int(crs[5:]))
            return int(crs[5:])
        wkt = _srs_wkt(crs)
        row = con.execute("SELECT srs_id FROM gpkg_spatial_ref_sys WHERE organization = 'NONE' "
                          "AND definition = ?", (wkt,)).fetchone()
        if row:
            return row[0]
        srid = max(_OWN_SRS, con.execute("SELECT COALESCE(MAX(srs_id) + 1, 0) FROM "
                                          "gpkg_spatial_ref_sys").fetchone()[0])
        import pyproj

        con.execute("INSERT INTO gpkg_spatial_ref_sys VALUES (?,?,?,?,?,?)",
                    (pyproj.CRS.from_user_input(crs).name, srid, "NONE", srid, wkt, None))
        return srid

    def write_collection(self, cid: str, source_crs: str, fields: list[Field],
                         features: Iterable[Feature], time_field: str | None = None,
                         geometry_type: str = "GEOMETRY", description: str = "",
                         id_field: str | None = None, search: list[str] = ()) -> int:
        """Replace collection ``cid`` with ``features``, atomically (readers see old or new)."""
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = _connect(self.path)
        try:
            self._init_schema(con)
            con.execute("BEGIN IMMEDIATE")
            for srid in (-1, 0, 4326):
                self._ensure_srs(con, srid)
            source_srid = self._srs_id(con, source_crs)
            def run(sql: str, params=()) -> list:
                return con.execute(sql, list(params)).fetchall()

            previous = run("SELECT meta FROM oup_layers WHERE table_name = ?", (cid,))
            previous = json.loads(previous[0][0]) if previous else None
            carry = keep_previous(run, cid, previous, id_field, "TEMP TABLE")
            self._drop(con, cid)
            t, rt, rt84 = quote(cid), quote(f"rtree_{cid}_{GEOM}"), quote(f"rtree_{cid}_{GEOM84}")
            cols = "".join(f", {quote(f.name)} {_SQL_TYPES[f.type]}" for f in fields)
            imported = datetime.now(timezone.utc)
            con.execute(f"CREATE TABLE {t} ({FID} INTEGER PRIMARY KEY AUTOINCREMENT, "
                        f"{GEOM} {geometry_type}, {GEOM84} BLOB{cols}, {VALUES} BLOB, "
                        f"{version_columns(TYPES, stamp(imported))})")
            for sql in history_ddl(cid, fields, TYPES, id_field):
                con.execute(sql)
            con.execute(f"CREATE VIRTUAL TABLE {rt} USING rtree(id, minx, maxx, miny, maxy)")
            con.execute(f"CREATE VIRTUAL TABLE {rt84} USING rtree(id, minx, maxx, miny, maxy)")
            names = [GEOM, GEOM84] + [f.name for f in fields]
            insert = (f"INSERT INTO {t} ({', '.join(map(quote, names))}) "
                      f"VALUES ({', '.join('?' * len(names))})")
            count, bounds84, span = 0, [np.inf, np.inf, -np.inf, -np.inf], TimeSpan()
            has_z = False  # the import gives a collection one dimension: its z flag
            batch, envs, envs84 = [], [], []

            def flush():
                nonlocal batch, envs, envs84
                cur = con.execute(f"SELECT COALESCE(MAX({FID}), 0) FROM {t}").fetchone()[0]
                con.executemany(insert, batch)
                # a feature without geometry has no entry in the indexes
                con.executemany(f"INSERT INTO {rt} VALUES (?,?,?,?,?)",
                                [(cur + i, *e) for i, e in envs])
                con.executemany(f"INSERT INTO {rt84} VALUES (?,?,?,?,?)",
                                [(cur + i, *e) for i, e in envs84])
                batch, envs, envs84 = [], [], []

            for feat in features:
                g, g84 = feat.geometry, feat.geometry_crs84
                batch.append([None if g is None else to_gpb(g, source_srid),
                              None if g84 is None else shapely.to_wkb(g84)]
                             + column_values(fields, feat.properties, span))
                if g is not None:
                    has_z = has_z or g.has_z
                    minx, miny, maxx, maxy = g.bounds
                    envs.append((len(batch), (minx, maxx, miny, maxy)))
                    a, b, c, d = g84.bounds
                    envs84.append((len(batch), (a, c, b, d)))
                    bounds84 = [min(bounds84[0], a), min(bounds84[1], b),
                                max(bounds84[2], c), max(bounds84[3], d)]
                count += 1
                if len(batch) >= _BATCH:
                    flush()
            if batch:
                flush()
            values_token = self._write_tile_values(con, cid, fields)
            if search:
                _text_index(con, cid, list(search))
            # equality filters and sorting stay indexed at any size (not a live field:
            # its rewrite with every reading would cost more than the look-ups it saves)
            for f in fields:
                if f.live:
                    continue
                unique = "UNIQUE " if f.name == id_field else ""
                con.execute(f"CREATE {unique}INDEX {quote(f'idx_{cid}_{f.name}')} "
                            f"ON {t} ({quote(f.name)})")
            # "a resident sees only their own": few rows have an owner
            con.execute(f"CREATE INDEX {quote(f'idx_{cid}_{OWNER}')} ON {t} ({OWNER}) "
                        f"WHERE {OWNER} IS NOT NULL")
            self._register(con, cid, source_srid, geometry_type, description, has_z)
            meta = {"fields": [[f.name, f.type] for f in fields], "source_srid": source_srid,
                    "source_crs": source_crs,
                    "time_field": time_field, "id_field": id_field, "count": count,
                    "bbox": bounds84 if np.isfinite(bounds84).all() else None,
                    "interval": span.interval, "tile_values": values_token,
                    "has_z": has_z,  # the collection's one dimension (writes keep to it)
                    "search": list(search),  # the attributes in its free-text index
                    "imported": imported.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    # the ETags' first part: a feature's versions restart at each import
                    "import_id": os.urandom(6).hex()}
            con.execute("INSERT INTO oup_layers VALUES (?, ?)", (cid, json.dumps(meta)))
            if carry:
                log.info("%s: %s", cid, carry_history(run, cid, previous, meta,
                                                      stamp(imported), "IS"))
            con.execute("COMMIT")
            return count
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def _write_tile_values(self, con, cid: str, fields: list[Field]) -> str:
        """Number the collection's property values, as its rows hold them, and keep each
        value encoded once (see the module's docstring); a token naming this numbering."""
        t, coder, last = quote(cid), ValueCoder(), 0
        select = (f"SELECT {FID}{''.join(', ' + quote(f.name) for f in fields)} FROM {t} "
                  f"WHERE {FID} > ? ORDER BY {FID} LIMIT {_BATCH}")
        while rows := con.execute(select, (last,)).fetchall():
            columns = list(zip(*rows))
            codes = coder.codes([tile_column(c, f.type) for c, f in zip(columns[1:], fields)],
                                len(rows)).astype("<i4")
            con.executemany(f"UPDATE {t} SET {VALUES} = ? WHERE {FID} = ?",
                            zip(map(bytes, codes), columns[0]))
            last = rows[-1][0]
        table = coder.table()
        con.execute("INSERT INTO oup_tile_values VALUES (?, ?, ?)",
                    (cid, table.data.tobytes(), table.lens.astype("<i8").tobytes()))
        if fields:  # an edited property is read from its row again
            con.execute(f"CREATE TRIGGER {quote(f'oup_{cid}_values')} AFTER UPDATE OF "
                        f"{', '.join(quote(f.name) for f in fields)} ON {t} BEGIN "
                        f"UPDATE {t} SET {VALUES} = NULL WHERE {FID} = NEW.{FID}; END")
        return os.urandom(8).hex()

    def tile_values(self, cid: str) -> ValueTable | None:
        """Collection ``cid``'s tile values (None for a collection imported before them):
        the import's, read once per import, and those writes added since, read as they
        come; shared by the threads."""
        token = self.layer(cid).get("tile_values")
        if token is None:
            return None
        try:
            top = self.con.execute("SELECT MAX(n) FROM oup_tile_values_added "
                                   "WHERE table_name = ?", (cid,)).fetchone()[0]
        except sqlite3.OperationalError:  # a store from before values were added
            top = None
        with self._tables_lock:
            held = self._tables.get(cid)
            if held is None or held[0] != token:
                row = self.con.execute("SELECT value_bytes, value_lengths FROM oup_tile_values "
                                       "WHERE table_name = ?", (cid,)).fetchone()
                if row is None:  # removed by hand: the tiles read the properties
                    return None
                held = self._tables[cid] = (token, ValueTable(
                    np.frombuffer(row[0], np.uint8),
                    np.frombuffer(row[1], "<i8").astype(np.int64)))
            table = held[1]
            if top is not None and top >= len(table.lens):
                more = self.con.execute(
                    "SELECT value FROM oup_tile_values_added WHERE table_name = ? AND n >= ? "
                    "ORDER BY n", (cid, len(table.lens))).fetchall()
                table = ValueTable(
                    np.concatenate([table.data, np.frombuffer(b"".join(v for v, in more),
                                                              np.uint8)]),
                    np.concatenate([table.lens, np.array([len(v) for v, in more], np.int64)]))
                self._tables[cid] = (token, table)
        return table

    def _register(self, con, cid, srid, geometry_type, description, has_z) -> None:
        t, rt = quote(cid), quote(f"rtree_{cid}_{GEOM}")
        row = con.execute(f"SELECT MIN(minx), MIN(miny), MAX(maxx), MAX(maxy) FROM {rt}").fetchone()
        con.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, description, "
                    "min_x, min_y, max_x, max_y, srs_id) VALUES (?,?,?,?,?,?,?,?,?)",
                    (cid, "features", cid, description, *row, srid))
        con.execute("INSERT INTO gpkg_geometry_columns VALUES (?,?,?,?,?,0)",
                    (cid, GEOM, geometry_type, srid, int(has_z)))  # z: 0 none, 1 all
        con.execute("INSERT INTO gpkg_extensions VALUES (?,?,?,?,?)",
                    (cid, GEOM, "gpkg_rtree_index",
                     "http://www.geopackage.org/spec120/#extension_rtree", "write-only"))
        # The standard triggers keep the index right when QGIS or GDAL edit the file.
        g, fid = GEOM, FID
        for name, when, body in (
            ("insert", f"AFTER INSERT ON {t} WHEN (new.{g} NOT NULL AND NOT ST_IsEmpty(NEW.{g}))",
             f"INSERT OR REPLACE INTO {rt} VALUES (NEW.{fid}, ST_MinX(NEW.{g}), "
             f"ST_MaxX(NEW.{g}), ST_MinY(NEW.{g}), ST_MaxY(NEW.{g}))"),
            ("update1", f"AFTER UPDATE OF {g} ON {t} WHEN OLD.{fid} = NEW.{fid} AND "
             f"(NEW.{g} NOTNULL AND NOT ST_IsEmpty(NEW.{g}))",
             f"INSERT OR REPLACE INTO {rt} VALUES (NEW.{fid}, ST_MinX(NEW.{g}), "
             f"ST_MaxX(NEW.{g}), ST_MinY(NEW.{g}), ST_MaxY(NEW.{g}))"),
            ("delete", f"AFTER DELETE ON {t} WHEN old.{g} NOT NULL",
             f"DELETE FROM {rt} WHERE id = OLD.{fid}"),
        ):
            con.execute(f"CREATE TRIGGER {quote(f'rtree_{cid}_{g}_{name}')} {when} "
                        f"BEGIN {body}; END")

    def _drop(self, con, cid: str) -> None:
        for name in (f"rtree_{cid}_{GEOM}", f"rtree_{cid}_{GEOM84}", cid, history_table(cid),
                     text_table(cid)):
            con.execute(f"DROP TABLE IF EXISTS {quote(name)}")
        for table in ("gpkg_contents", "gpkg_geometry_columns", "gpkg_extensions", "oup_layers",
                      "oup_tile_values", "oup_tile_values_added"):
            con.execute(f"DELETE FROM {table} WHERE table_name = ?", (cid,))

    # -- reading --------------------------------------------------------------
    def collections(self) -> list[str]:
        return sorted(self._layer_names())

    def _layer_names(self):
        if not Path(self.path).exists() or not self._has_layers():
            return []
        return [r[0] for r in self.con.execute("SELECT table_name FROM oup_layers")]

    def _spatial(self, cid: str):
        t, rt84 = quote(cid), quote(f"rtree_{cid}_{GEOM84}")

        def spatial(op: str, wkb: bytes, bounds, box: bool = False) -> tuple[str, list]:
            minx, miny, maxx, maxy = bounds
            exact = f"oup_spatial(?, {GEOM84}, ?)"
            if op == "disjoint":
                return exact, [op, wkb]
            # Every other predicate implies the envelopes meet: the R*Tree narrows first.
            # For a box, a feature whose envelope lies inside it intersects it, so only
            # the ones straddling its edges get the exact test. (The R*Tree keeps float32
            # envelopes rounded outwards: "inside" there is inside for real.)
            inside = "(r.minx >= ? AND r.maxx <= ? AND r.miny >= ? AND r.maxy <= ?) OR " \
                if box and op == "intersects" else ""
            sql = (f"{FID} IN (SELECT r.id FROM {rt84} r JOIN {t} f ON f.{FID} = r.id "
                   f"WHERE r.minx <= ? AND r.maxx >= ? AND r.miny <= ? AND r.maxy >= ? "
                   f"AND ({inside}oup_spatial(?, f.{GEOM84}, ?)))")
            p = [maxx, minx, maxy, miny] + ([minx, maxx, miny, maxy] if inside else [])
            return sql, p + [op, wkb]

        return spatial

    def _text_join(self, cid: str, meta: dict, text: str) -> tuple[str, list, str]:
        names, fts = searched(meta, cid), quote(text_table(cid))
        weights = ", ".join(str(weight(i)[1]) for i in range(len(names)))
        # BM25 is smaller for a better match: its negative ranks as PostgreSQL's does
        return (f" JOIN (SELECT rowid AS _oup_hit, -bm25({fts}, {weights}) AS _oup_rank "
                f"FROM {fts} WHERE {fts} MATCH ?) AS _oup_hits ON _oup_hits._oup_hit = {FID}",
                [fts5_query(text)], "_oup_hits._oup_rank")

    @staticmethod
    def features(meta: dict, rows, select: list[str], q: Query) -> list[dict]:
        native = q.crs == native_crs(meta)
        return rows_to_features(meta, rows, select, q, gpb_wkb if native else None)

    # -- vector tiles ---------------------------------------------------------------
    def cut_tile(self, q: TileQuery) -> bytes:
        return mvt_gpkg.cut(self, q)

    def import_stamp(self, cid: str) -> str:
        """The collection's last change (milliseconds; each import registers it anew)."""
        rows = self.execute("SELECT last_change FROM gpkg_contents WHERE table_name = ?",
                            (cid,))
        return str(rows[0][0]) if rows else ""

    def health(self) -> dict:
        try:
            self.con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return {"status": "ok", "store": "geopackage", "path": self.path,
                    "collections": len(self._layer_names())}
        except (sqlite3.Error, StoreError) as exc:
            return {"status": "error", "store": "geopackage", "error": str(exc)}

