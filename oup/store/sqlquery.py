"""What both SQL stores share: one WHERE builder (bbox, datetime, properties, CQL2),
one paged query, one lookup by id, and the column values of a feature written. A store
supplies ``execute`` (``?`` placeholders), ``layer``, ``GEOMETRY``, ``features`` and
``_spatial`` - the one spelling that differs: how a spatial predicate meets its index
(SQLite R*Tree, PostGIS GiST).
``layer``, ``where``, ``geometry_column``, ``features`` and ``execute`` are public: the
queries over observations (``timeseries.py``) build on them.
"""
from __future__ import annotations

from datetime import datetime
from typing import Callable

import shapely

from oup.store.base import (FID, OWNER, VERSION, Field, InvalidQuery, Page, Query, StaleLayer,
                            check_int64)
from oup.store.cql import SqlCompiler, iso, quote
from oup.store.geometry import native_crs

Spatial = Callable[..., tuple[str, list]]  # (op, wkb, bounds, box=False) -> (sql, params)


class SqlQueries:
    # the geometry as SQL: in the source CRS, in CRS84
    GEOMETRY: tuple[str, str]

    def execute(self, sql: str, params=()) -> list[tuple]:
        """Run one statement written with ``?`` placeholders; its rows (or [])."""
        raise NotImplementedError

    def layer(self, cid: str) -> dict:
        """A collection's metadata: fields, source SRID, time and id field, extent."""
        raise NotImplementedError

    def fields(self, cid: str) -> list[Field]:
        return _fields(self.layer(cid))

    def extent(self, cid: str) -> dict:
        m = self.layer(cid)
        return {"bbox": m["bbox"], "interval": m["interval"], "count": m["count"],
                "time_field": m["time_field"], "source_srid": m["source_srid"],
                "source_crs": m.get("source_crs", f"EPSG:{m['source_srid']}")}

    def features(self, meta: dict, rows, select: list[str], q: Query) -> list[dict]:
        """GeoJSON features from rows ``(fid, geometry column, *select[, id])``."""
        raise NotImplementedError

    def _spatial(self, cid: str) -> Spatial:
        raise NotImplementedError

    def spatial_predicate(self, cid: str) -> Spatial:
        """The SQL of a spatial predicate against ``cid``'s CRS84 geometry, through its
        index (the SensorThings filters, ``sta_sql.py``)."""
        return self._spatial(cid)

    def _spatial_scan(self, cid: str) -> Spatial:
        """``_spatial`` for a relation other than the table (its versions ``asof``)."""
        return self._spatial(cid)

    def _text_join(self, cid: str, meta: dict, text: str) -> tuple[str, list, str]:
        """Free text (``text.py``): `` JOIN ...`` that keeps the rows matching ``text``,
        its parameters, and the rank of a row as SQL (higher is better)."""
        raise NotImplementedError

    def versions_source(self, cid: str, meta: dict, asof: datetime) -> tuple[str, list]:
        """The collection as it was at ``asof``: a relation and its parameters
        (``versions.FeatureVersions``)."""
        raise NotImplementedError

    def _source(self, cid: str, meta: dict, q: Query) -> tuple[str, list]:
        """What a query reads: the table, or its versions as of ``q.asof``."""
        if q.asof is None:
            return quote(cid), []
        return self.versions_source(cid, meta, q.asof)

    def geometry_column(self, meta: dict, q: Query) -> str:
        if q.skip_geometry:
            return "NULL"
        return self.GEOMETRY[0 if q.crs == native_crs(meta) else 1]

    def forget_layers(self) -> None:
        """Read the layers' metadata again on next use (a store that caches it)."""

    def _fresh(self, read, *args):
        """``read(*args)``, once more with the metadata read again if the table changed
        under it (re-imported by another process)."""
        try:
            return read(*args)
        except StaleLayer:
            self.forget_layers()
            return read(*args)

    def get(self, cid: str, fid: int | str, crs: str = "OGC:CRS84",
            asof: datetime | None = None, owner: str | None = None,
            scenario: str | None = None) -> dict | None:
        """One feature by its id: the row number, or the value of the layer's id field
        (``asof``: as it was then; ``owner``: only if this owner created it;
        ``scenario``: as that scenario has it)."""
        return self._fresh(self._get, cid, fid, Query(crs=crs, asof=asof, owner=owner,
                                                      scenario=scenario))

    def get_tagged(self, cid: str, fid: int | str, crs: str = "OGC:CRS84",
                   owner: str | None = None) -> tuple[dict | None, str | None]:
        """One feature as it is now, and its ETag (``FeatureWriter.etag``), read together
        in one statement (an item's answer costs one round trip, not two)."""
        return self._fresh(self._get, cid, fid, Query(crs=crs, owner=owner), True)

    def query(self, cid: str, q: Query) -> Page:
        return self._fresh(self._query, cid, q)

    def shapes(self, cid: str, q: Query) -> list[tuple]:
        """``(id, CRS84 WKB or None)`` of the features ``q`` matches (its bbox, equals, filter,
        asof, limit and offset), in the order of ``query``: the shapes alone, for work on
        them (the overview's redraws). Made into GeoJSON and parsed back, they cost the
        overview most of its time under a burst of writes."""
        if q.scenario is not None or q.text is not None:
            raise ValueError("shapes: a scenario or free text is for query()")
        return self._fresh(self._shapes, cid, q)

    def _get(self, cid: str, fid: int | str, q: Query, tagged: bool = False):
        meta = self.layer(cid)
        tagged = tagged and "import_id" in meta and q.asof is None
        fields = [f.name for f in _fields(meta)]
        key = meta.get("id_field")
        if key is None:
            try:
                fid = check_int64(int(fid), "id")
            except ValueError:  # not a row number: no such feature
                return (None, None) if tagged else None
        else:
            fid = str(fid)
        cols = [FID, self.geometry_column(meta, q)] + [quote(n) for n in fields + [key or FID]]
        if q.scenario is not None:
            source, params, _ = self.scenario_source(cid, meta, q, filtered=False)
        else:
            source, params = self._source(cid, meta, q)
        if tagged:  # the version, and the import id read with the row (not a cached one)
            cols += [VERSION, f"(SELECT {self.META_IMPORT_ID} FROM oup_layers l "
                              f"WHERE l.table_name = ?)"]
            params = [cid] + params
        where = f"{quote(key or FID)} = ?"
        if q.owner is not None:
            versioned(meta, cid)
            where += f" AND {OWNER} = ?"
            params = params + [fid, q.owner]
        else:
            params = params + [fid]
        rows = self.execute(f"SELECT {', '.join(cols)} FROM {source} WHERE {where}", params)
        if not tagged:
            return self.features(meta, rows, fields, q)[0] if rows else None
        if not rows:
            return None, None
        *row, version, import_id = rows[0]
        return self.features(meta, [row], fields, q)[0], f"{import_id}-{version}"

    def _shapes(self, cid: str, q: Query) -> list[tuple]:
        meta = self.layer(cid)
        source, source_params = self._source(cid, meta, q)
        where, params = self.where(cid, meta, q)
        key = quote(meta["id_field"]) if meta.get("id_field") else FID
        rows = self.execute(f"SELECT {key}, {self.GEOMETRY[1]} FROM {source}{where} "
                            f"ORDER BY {FID} LIMIT ? OFFSET ?",
                            source_params + params + [q.limit, q.offset])
        return [(fid, None if wkb is None else bytes(wkb)) for fid, wkb in rows]

    def where(self, cid: str, meta: dict, q: Query) -> tuple[str, list]:
        return self._where(cid, meta, q, self._spatial(cid) if q.asof is None
                           else self._spatial_scan(cid))

    def scenario_source(self, cid: str, meta: dict, q: Query,
                        filtered: bool) -> tuple[str, list, bool]:
        """The collection as scenario ``q.scenario`` has it (``scenarios.py``)."""
        raise NotImplementedError

    def _where(self, cid: str, meta: dict, q: Query, spatial: Spatial) -> tuple[str, list]:
        fields = _fields(meta)
        names = {f.name: f for f in fields}
        clauses, params = [], []
        if q.owner is not None:
            versioned(meta, cid)
            clauses.append(f"{OWNER} = ?")
            params.append(q.owner)

        if q.bbox is not None:
            sql, p = spatial("intersects", shapely.to_wkb(shapely.box(*q.bbox)), q.bbox, box=True)
            clauses.append(sql)
            params += p
        if q.interval is not None:
            tf = meta["time_field"]
            if tf is None:
                raise InvalidQuery("this collection has no time; drop datetime", "datetime")
            start, end = q.interval
            if start is not None and start == end:
                clauses.append(f"{quote(tf)} = ?")
                params.append(iso(start))
            else:
                if start is not None:
                    clauses.append(f"{quote(tf)} >= ?")
                    params.append(iso(start))
                if end is not None:
                    clauses.append(f"{quote(tf)} <= ?")
                    params.append(iso(end))
        for name, value in q.equals.items():
            field = names.get(name)
            if field is None:
                raise InvalidQuery(f"unknown property {name!r}; see /queryables", name)
            clauses.append(f"{quote(name)} = ?")
            params.append(_coerce(field, value))
        if q.filter is not None:
            sql, p = SqlCompiler(fields, spatial).compile(q.filter)
            clauses.append(sql)
            params += p
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def _query(self, cid: str, q: Query) -> Page:
        meta = self.layer(cid)
        fields = _fields(meta)
        names = {f.name for f in fields}
        select = q.select if q.select is not None else [f.name for f in fields]
        for name in select:
            if name not in names:
                raise InvalidQuery(f"unknown property {name!r} in properties", "properties")
        order, rank = [], None
        for name, asc in q.sortby:
            if name not in names:
                raise InvalidQuery(f"cannot sort by unknown property {name!r}", "sortby")
            # NULLs smallest, in both stores, so both page alike
            order.append(f"{quote(name)} {'ASC NULLS FIRST' if asc else 'DESC NULLS LAST'}")
        filtered = False
        if q.scenario is not None:  # the filters go into each side of the scenario
            t, source_params, filtered = self.scenario_source(cid, meta, q, filtered=True)
        else:
            t, source_params = self._source(cid, meta, q)
        where, params = ("", []) if filtered else self.where(cid, meta, q)
        if q.text is not None:
            if q.asof is not None:  # the index holds the current versions only
                raise InvalidQuery("q cannot be combined with asof: free text searches "
                                   "the collection as it is now", "q")
            join, join_params, rank = self._text_join(cid, meta, q.text)
            t, source_params = t + join, source_params + join_params
            order.append(f"{rank} DESC")  # after the keys asked for: best first
        order.append(FID)
        params = source_params + params
        geom_col = self.geometry_column(meta, q)
        cols = [FID, geom_col] + [quote(n) for n in select]
        if meta.get("id_field"):  # the feature id, whatever properties were selected
            cols.append(quote(meta["id_field"]))
        if rank is not None:
            cols.append(rank)
        rows = self.execute(
            f"SELECT {', '.join(cols)} FROM {t}{where} ORDER BY {', '.join(order)} "
            f"LIMIT ? OFFSET ?", params + [q.limit, q.offset]) if q.limit else []
        matched = None
        if q.count:
            # a page that is not full, and not past the end, tells the total itself: most
            # bbox pages of a map are, and counting runs the whole filter a second time
            partial = len(rows) < q.limit and (rows or not q.offset)
            matched = q.offset + len(rows) if partial else \
                self.execute(f"SELECT COUNT(*) FROM {t}{where}", params)[0][0]
        ranks = None
        if rank is not None:
            ranks = [r[-1] for r in rows]
            rows = [r[:-1] for r in rows]
        return Page(self.features(meta, rows, select, q), matched, ranks)


def versioned(meta: dict, cid: str) -> dict:
    """``meta``, if its table has the version columns (``versions.py``); else
    ``NotVersioned``: the collection is to be imported again."""
    from oup.store.base import NotVersioned

    if "import_id" not in meta:
        raise NotVersioned(f"collection {cid!r} was imported before OUP kept versions: "
                           f"run `oup import {cid}` before writing to it or asking for its "
                           f"history or owners")
    return meta


def current_layout(cid: str, meta: dict) -> dict:
    """``meta``, if its table has the store's columns under their ``_oup_`` names (every
    import since the source CRS is kept as ``source_crs``); else the collection is as
    good as absent until it is imported again."""
    from oup.store.base import UnknownCollection

    if "source_crs" not in meta:
        raise UnknownCollection(f"collection {cid!r} was imported by an older OUP (columns "
                                f"fid, geom): run `oup import {cid}`")
    return meta


class TimeSpan:
    """The first and last date-time a collection holds, as it is written."""

    def __init__(self):
        self.first: str | None = None
        self.last: str | None = None

    def add(self, t: str) -> None:  # the store's text form sorts as time does
        self.first = t if self.first is None or t < self.first else self.first
        self.last = t if self.last is None or t > self.last else self.last

    @property
    def interval(self) -> list[str] | None:
        return [self.first, self.last] if self.first else None


def column_values(fields: list[Field], props: dict, span: TimeSpan) -> list:
    """A feature's properties as both stores' columns hold them: date-times in the one
    text form (noted in ``span``), booleans as booleans."""
    out = []
    for f in fields:
        v = props.get(f.name)
        if v is not None and f.type == "date-time":
            v = iso(v)
            span.add(v)
        elif v is not None and f.type == "boolean":
            v = bool(v)
        out.append(v)
    return out


def _fields(meta: dict) -> list[Field]:
    return [Field(n, t) for n, t in meta["fields"]]


def _coerce(field: Field, value):
    """A query-string value as the field's type, or a clear error."""
    if field.type == "integer" and str(value).lstrip("-").isdigit():
        return check_int64(int(value), field.name)
    try:
        if field.type == "integer":
            return int(value)
        if field.type == "number":
            return float(value)
        if field.type == "boolean":
            if str(value).lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return str(value).lower() in ("true", "1")
        if field.type == "date-time":
            return iso(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        raise InvalidQuery(f"{field.name} must be {field.type}, got {value!r}",
                           field.name) from None
    return str(value)
