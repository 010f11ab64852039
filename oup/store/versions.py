"""Features written one at a time, every version kept: what both SQL stores share.

A collection's table holds each feature's current version, with a few columns of its
own (``base.VERSION`` ... ``base.OWNER``: set by the import's column defaults, so an
import writes nothing more per row). ``{cid}__history`` holds the versions a write
replaced, the same columns plus ``VALID_TO``, and a row of kind "deleted" (no geometry,
no properties but the id) for each deletion. Present-time reads never look at it;
``asof`` reads take the current rows valid then and the history rows valid then.

A write is one transaction. Two writers holding one ETag cannot both pass the check: the
feature's row is locked for the write (SQLite: the file, BEGIN IMMEDIATE; PostgreSQL: the
row, FOR UPDATE), and a creation that gives its id, or takes the next integer, locks the
collection (``_lock_collection``: an id is made once; a row number or a UUID needs no
lock). Writes to different features of one collection run side by side where the store
can; the layer's count, extent and time span are grown last (``_grow_layer``): on the
metadata row read again and locked (``LOCK_ROW``), so no two writes lose each other's,
or, where the store keeps them so, as a row of growth of their own that no other write
waits for. The feature written comes back from its INSERT or UPDATE (``RETURNING``;
read back where that is not the row as stored: ``RETURNS_AS_STORED``).
A backend supplies the transaction (``_writing``), how a geometry is written (``_geometry_marks`` and
``_geometry_values``), how an instant is stored (``_stamp``) and what else a row
written or deleted needs (``_row_written``, ``_row_deleted``: the GeoPackage's R*Trees
and tile values). Where versions live: ``version_schema.py``; how long they are kept,
and erasure: ``retention.py``.
"""
from __future__ import annotations

import json
import uuid
from contextlib import AbstractContextManager
from datetime import datetime, timedelta, timezone

from oup.store.base import (ACTOR, CHANGE_KINDS, FID, GEOM, GEOM84, KIND, OWNER, VALID_FROM,
                            VALID_TO, VERSION, Change, Feature, FeatureExists, FeatureNotFound,
                            Field, InvalidQuery, StaleVersion, Unprocessable, Written)
from oup.store.cql import quote
from oup.store.retention import VersionRetention
from oup.store.scenarios import ScenarioLayers
from oup.store.sqlquery import TimeSpan, column_values
from oup.store.version_schema import (VERSION_COLUMNS, Run, history_table, key_value,
                                      meta_in, versioned)

_TICK = timedelta(microseconds=1)  # the least time between two versions


def _fields(meta: dict) -> list[Field]:
    return [Field(n, t) for n, t in meta["fields"]]


def _etag(meta: dict, version: int) -> str:
    return f"{meta['import_id']}-{version}"


class FeatureVersions(ScenarioLayers, VersionRetention):
    """``FeatureWriter`` (``protocols.py``) over a SQL store (``SqlQueries``)."""

    # the backend's: in ``_writing``, the current row locked for the write
    LOCK_ROW = ""
    # the backend's: the layer's import id out of ``oup_layers.meta`` as ``l``
    META_IMPORT_ID = "json_extract(l.meta, '$.import_id')"

    def _writing(self, cid: str) -> AbstractContextManager[Run]:
        raise NotImplementedError

    def _lock_collection(self, run: Run, cid: str) -> None:
        """In a write's transaction: no other write to ``cid`` until the commit (a store
        whose transactions lock the whole store needs nothing more)."""

    def _geometry_marks(self, meta: dict) -> tuple[str, str]:
        raise NotImplementedError

    def _geometry_values(self, meta: dict, feature: Feature) -> list:
        raise NotImplementedError

    def _stamp(self, when: datetime):
        """An instant as the store's version columns hold it."""
        raise NotImplementedError

    def _row_written(self, run: Run, cid: str, meta: dict, row: int,
                     feature: Feature | None, values: list) -> None:
        """After row ``row`` was written (``feature``: its new geometry, None if it kept
        its geometry; ``values``: its properties as stored, in the order of the layer's
        fields): what the backend derives from it."""

    def _row_deleted(self, run: Run, cid: str, meta: dict, row: int) -> None: ...

    def _rows_blanked(self, run: Run, cid: str, meta: dict, rows: list[int]) -> None:
        """After properties of current rows ``rows`` were blanked."""

    def _written(self, cid: str) -> None:
        """After a write committed (a store that caches the layer forgets it)."""

    # -- reading versions --------------------------------------------------------------
    @staticmethod
    def _instant(value) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.astimezone(timezone.utc)
        return datetime.fromisoformat(value.replace("Z", "+00:00"))

    def _versions_of(self, run: Run, meta: dict, table: str, where: str, params: list,
                     extra: list[str], q=None) -> list[tuple[dict, list]]:
        """(GeoJSON feature in CRS84, or in ``q.crs``; the ``extra`` columns) of the rows
        of ``table`` ``where`` ..."""
        cols, q = self._feature_columns(meta, q)
        rows = run(f"SELECT {', '.join(cols + extra)} FROM {quote(table)} WHERE {where}",
                   params)
        n = len(cols)
        feats = self.features(meta, [r[:n] for r in rows], [f.name for f in _fields(meta)], q)
        return [(f, list(r[n:])) for f, r in zip(feats, rows)]

    def _feature_columns(self, meta: dict, q=None) -> tuple[list[str], object]:
        """The columns (SQL) a GeoJSON feature of the collection is made from (``features``),
        and the query they are read for (default: the feature in CRS84)."""
        from oup.store.base import Query

        q = q or Query()
        key = meta.get("id_field")
        return [FID, self.geometry_column(meta, q)] + [quote(f.name) for f in _fields(meta)] \
            + ([quote(key)] if key else []), q

    #: the backend's: whether ``RETURNING`` gives a row's values as stored (SQLite's gives
    #: them as sent, before the column's type affinity: 3.0 for 3, 1.0 for true)
    RETURNS_AS_STORED = True

    def _as_stored(self, run: Run, cid: str, meta: dict, returned: list) -> list:
        """The row a write's ``RETURNING`` (of ``_feature_columns``) gave back, as stored."""
        if self.RETURNS_AS_STORED:
            return returned
        return run(f"SELECT {', '.join(self._feature_columns(meta)[0])} FROM {quote(cid)} "
                   f"WHERE {FID} = ?", (returned[0][0],))

    def _feature_written(self, meta: dict, rows: list) -> dict:
        """The feature a write's ``RETURNING`` (of ``_feature_columns``) gave back."""
        _, q = self._feature_columns(meta)
        return self.features(meta, rows, [f.name for f in _fields(meta)], q)[0]

    def etag(self, cid: str, fid) -> str | None:
        meta = self.layer(cid)
        kv = key_value(meta, fid)
        if kv is None or "import_id" not in meta:
            return None
        # the import id read with the row: a re-import between two reads cannot pair
        # the old import with a new row
        rows = self.execute(f"SELECT t.{VERSION}, {self.META_IMPORT_ID} FROM {quote(cid)} t "
                            f"JOIN oup_layers l ON l.table_name = ? WHERE t.{quote(kv[0])} = ?",
                            (cid, kv[1]))
        return f"{rows[0][1]}-{rows[0][0]}" if rows else None

    def history(self, cid: str, fid) -> list[dict]:
        meta = versioned(self.layer(cid), cid)
        kv = key_value(meta, fid)
        if kv is None:
            return []
        where, extra = f"{quote(kv[0])} = ?", list(VERSION_COLUMNS)
        out = []
        for table, to in ((cid, []), (history_table(cid), [VALID_TO])):
            for feat, (version, since, kind, actor, _owner, *until) in self._versions_of(
                    self.execute, meta, table, where, [kv[1]], extra + to):
                out.append({"version": version, "valid_from": self._instant(since),
                            "valid_to": self._instant(until[0]) if until else None,
                            "kind": kind, "actor": actor,
                            "feature": None if kind == "deleted" else feat})
        out.sort(key=lambda v: (v["valid_from"], v["version"]), reverse=True)
        return out

    def versions_source(self, cid: str, meta: dict, asof: datetime) -> tuple[str, list]:
        """The collection as it was at ``asof``, as a relation (SQL and its parameters)
        with the table's columns: the current rows valid then, and the versions they
        replaced that were valid then."""
        versioned(meta, cid)
        cols = ", ".join([FID, GEOM, GEOM84, OWNER] + [quote(n) for n, _ in meta["fields"]])
        at = self._stamp(asof if asof.tzinfo else asof.replace(tzinfo=timezone.utc))
        return (f"(SELECT {cols} FROM {quote(cid)} WHERE {VALID_FROM} <= ? UNION ALL "
                f"SELECT {cols} FROM {quote(history_table(cid))} WHERE {VALID_FROM} <= ? "
                f"AND {VALID_TO} > ? AND {KIND} <> 'deleted') AS asof", [at, at, at])

    # -- writing ------------------------------------------------------------------------
    def write_feature(self, cid: str, change: Change) -> Written:
        return self.write_features(cid, [change])[0]

    def write_features(self, cid: str, changes: list[Change], versions: bool = True,
                       answered: bool = True) -> list[Written]:
        """``write_feature`` of each of ``changes``, in order, in one transaction (all or
        none); ``versions=False``: the versions they replace are not kept (what is made
        again from other data, as the overview's blocks: no one asks for their past);
        ``answered=False``: the features are not given back (``Written.before`` and
        ``after`` None: a GeoJSON of each, made for no one, was a sixth of the
        overview's CPU)."""
        for change in changes:
            if change.kind not in CHANGE_KINDS:
                raise InvalidQuery(f"unknown kind of change {change.kind!r}")
            if change.kind != "deleted" and change.feature is None and change.patch is None:
                raise InvalidQuery(f"a change of kind {change.kind!r} needs a feature")
        with self._writing(cid) as run:
            meta = meta_in(run, cid)
            read = json.loads(json.dumps(meta))
            written = []
            for change in changes:
                now = datetime.now(timezone.utc)
                written.append(self._create(run, cid, meta, change, now, answered)
                               if change.kind == "created" else
                               self._change(run, cid, meta, change, now, versions, answered))
            if meta != read:
                self._grow_layer(run, cid, read, meta)
        if meta != read:  # (a store that caches the layer's metadata reads it again)
            self._written(cid)
        return written

    def _grow_layer(self, run: Run, cid: str, read: dict, written: dict) -> None:
        """In the write's transaction, last: the layer's metadata as the write left it
        (``read`` before it, ``written`` after), onto the metadata as it is now, not as
        it was read (the row locked until the commit: ``LOCK_ROW``)."""
        now = meta_in(run, cid, self.LOCK_ROW)
        grown = _grown(now, read, written)
        if grown != now:
            run("UPDATE oup_layers SET meta = ? WHERE table_name = ?", (json.dumps(grown), cid))

    def _properties(self, meta: dict, feature: Feature, merge: bool) -> list[Field]:
        """The fields ``feature`` sets (all of them unless ``merge``)."""
        fields = _fields(meta)
        names = {f.name for f in fields}
        unknown = sorted(set(feature.properties) - names)
        if unknown:
            raise Unprocessable(f"the collection has no such property: {', '.join(unknown)} "
                                f"(see its /queryables)", unknown[0])
        return [f for f in fields if f.name in feature.properties] if merge else fields

    def _check_id(self, meta: dict, change: Change, feature: Feature | None) -> None:
        """A feature's id property, if it has one, is the id it is written under."""
        key = meta.get("id_field")
        if key and feature is not None and change.fid is not None:
            given = feature.properties.get(key)
            if given is not None and str(given) != str(change.fid):
                raise Unprocessable(f"{key} is the feature's id ({change.fid}); it cannot "
                                    f"be changed to {given}", key)

    def _new_id(self, run: Run, cid: str, meta: dict, change: Change):
        """The id a created feature takes: given, or made (a UUID or the next integer
        for an id field; without one, the row number, made by the insert). A given id and
        a next integer lock the collection (``_lock_collection``); the others need not."""
        key = meta.get("id_field")
        if key is None:
            if change.fid is not None:
                raise Unprocessable("this collection's features are numbered by the server: "
                                    "create one without an id")
            return None
        given = change.fid if change.fid is not None else change.feature.properties.get(key)
        if given is not None:
            self._lock_collection(run, cid)  # (its versions go on: once at a time)
            kv = key_value(meta, given)
            if kv is None:
                raise Unprocessable(f"{key} must be an integer, got {given!r}", key)
            if run(f"SELECT 1 FROM {quote(cid)} WHERE {quote(key)} = ?", (kv[1],)):
                raise FeatureExists(f"a feature with {key} {given} exists; replace it (PUT) "
                                    f"or create one with another id")
            return kv[1]
        if dict(meta["fields"])[key] == "integer":  # never one a deleted feature had
            self._lock_collection(run, cid)  # made once
            return max(run(f"SELECT COALESCE(MAX({quote(key)}), 0) + 1 FROM {quote(t)}")[0][0]
                       for t in (cid, history_table(cid)))
        return str(uuid.uuid4())

    def _create(self, run: Run, cid: str, meta: dict, change: Change, now: datetime,
                answered: bool = True) -> Written:
        self._check_id(meta, change, change.feature)
        fid = self._new_id(run, cid, meta, change)
        key = meta.get("id_field")
        feature = change.feature
        props = dict(feature.properties)
        if key:
            props[key] = fid
            feature = Feature(feature.geometry, feature.geometry_crs84, props)
        fields = self._properties(meta, feature, merge=False)
        version, h = 1, quote(history_table(cid))
        if key:  # a feature created again under the id of one deleted: its versions go on
            last = run(f"SELECT MAX({VERSION}) FROM {h} WHERE {quote(key)} = ?", (fid,))[0][0]
            version = (last or 0) + 1
            run(f"UPDATE {h} SET {VALID_TO} = ? WHERE {quote(key)} = ? AND {KIND} = 'deleted' "
                f"AND {VALID_TO} IS NULL", (self._stamp(now), fid))
        span = TimeSpan()
        names = [GEOM, GEOM84] + [f.name for f in fields] + list(VERSION_COLUMNS)
        marks = list(self._geometry_marks(meta)) + ["?"] * (len(names) - 2)
        returned = self._as_stored(run, cid, meta, run(
            f"INSERT INTO {quote(cid)} ({', '.join(map(quote, names))}) VALUES "
            f"({', '.join(marks)}) RETURNING {', '.join(self._feature_columns(meta)[0])}",
            self._geometry_values(meta, feature) + column_values(fields, props, span)
            + [version, self._stamp(now), "created", change.actor, change.owner]))
        row = returned[0][0]
        self._row_written(run, cid, meta, row, feature, _values(meta, returned))
        meta["count"] = meta.get("count", 0) + 1
        _grow(meta, feature, span)
        after = self._feature_written(meta, returned) if answered else None
        return Written(fid if key else row, _etag(meta, version), None, after)

    def _change(self, run: Run, cid: str, meta: dict, change: Change, now: datetime,
                versions: bool = True, answered: bool = True) -> Written:
        kv = key_value(meta, change.fid)
        cols, q = self._feature_columns(meta)
        # the version read and locked, with the feature it replaces (``before``)
        found = [] if kv is None else run(
            f"SELECT {', '.join(cols)}, {VERSION}, {VALID_FROM}, {OWNER} FROM {quote(cid)} "
            f"WHERE {quote(kv[0])} = ?{self.LOCK_ROW}", (kv[1],))
        if not found or (change.owner is not None and found[0][-1] != change.owner):
            raise FeatureNotFound(f"no feature {change.fid} in {cid}")
        row, (version, since, owner) = found[0][0], found[0][len(cols):]
        current = _etag(meta, version)
        if change.expected is not None and change.expected != current:
            raise StaleVersion(f"feature {change.fid} has changed since it was read (its "
                               f"ETag is now {current}): read it again, then write",
                               headers={"ETag": f'"{current}"'})
        # a version holds from its write to the next one: never an empty or reversed span
        since = self._instant(since)
        now = max(now, since + _TICK)
        stamp, t, h = self._stamp(now), quote(cid), quote(history_table(cid))
        before = self._feature_written(meta, [found[0][:len(cols)]]) \
            if answered or change.patch else None
        feature = None if change.kind == "deleted" else change.written_over(before)
        self._check_id(meta, change, feature)
        copied = [FID, GEOM, GEOM84] + [quote(n) for n, _ in meta["fields"]] + \
            list(VERSION_COLUMNS)
        if versions:
            run(f"INSERT INTO {h} ({', '.join(copied)}, {VALID_TO}) SELECT "
                f"{', '.join(copied)}, ? FROM {t} WHERE {FID} = ?", (stamp, row))
        if change.kind == "deleted":
            key = meta.get("id_field")
            run(f"DELETE FROM {t} WHERE {FID} = ?", (row,))
            cols = [FID] + ([quote(key)] if key else []) + list(VERSION_COLUMNS)
            if versions:
                run(f"INSERT INTO {h} ({', '.join(cols)}) VALUES "
                    f"({', '.join('?' * len(cols))})", [row] + ([kv[1]] if key else []) +
                    [version + 1, stamp, "deleted", change.actor, owner])
            self._row_deleted(run, cid, meta, row)
            meta["count"] = max(0, meta.get("count", 1) - 1)
            return Written(change.fid if key else row, None, before, None)
        merge = change.kind == "updated"
        props = dict(feature.properties)
        if meta.get("id_field"):
            props.pop(meta["id_field"], None)  # the id stays what it is
        fields = [f for f in self._properties(meta, Feature(None, None, props), merge)
                  if f.name != meta.get("id_field")]
        span = TimeSpan()
        sets = [f"{quote(f.name)} = ?" for f in fields]
        params = column_values(fields, props, span)
        moved = not merge or feature.geometry is not None
        if moved:
            marks = self._geometry_marks(meta)
            sets = [f"{GEOM} = {marks[0]}", f"{GEOM84} = {marks[1]}"] + sets
            params = self._geometry_values(meta, feature) + params
        sets += [f"{VERSION} = ?", f"{VALID_FROM} = ?", f"{KIND} = ?", f"{ACTOR} = ?"]
        params += [version + 1, stamp, change.kind, change.actor]
        returned = self._as_stored(run, cid, meta, run(
            f"UPDATE {t} SET {', '.join(sets)} WHERE {FID} = ? "
            f"RETURNING {', '.join(self._feature_columns(meta)[0])}", params + [row]))
        self._row_written(run, cid, meta, row, feature if moved else None,
                          _values(meta, returned))
        _grow(meta, feature if moved else None, span)
        if not answered:
            return Written(kv[1], _etag(meta, version + 1), None, None)
        after = self._feature_written(meta, returned)
        return Written(after["id"], _etag(meta, version + 1), before, after)


def _values(meta: dict, returned: list) -> list:
    """The properties of a row written, out of its ``RETURNING`` (``_feature_columns``)."""
    return list(returned[0][2:2 + len(meta["fields"])])


def _grown(now: dict, read: dict, written: dict) -> dict:
    """The layer's metadata ``now`` with what one write did to it (``read`` before the
    write, ``written`` after): its count moved by as much, its box and span grown, and
    what else the write set (e.g. a store's tile value numbering) as it set it."""
    out = dict(now)
    lows = {"bbox": (0, 1), "interval": (0,)}
    for key, mine in written.items():
        theirs = now.get(key)
        if mine == read.get(key):
            continue
        if key == "count":
            out[key] = max(0, (theirs or 0) + mine - read.get(key, 0))
        elif key in lows and mine is not None and theirs is not None:
            out[key] = [min(theirs[i], mine[i]) if i in lows[key] else max(theirs[i], mine[i])
                        for i in range(len(mine))]
        else:
            out[key] = mine
    return out


def _grow(meta: dict, feature: Feature | None, span: TimeSpan) -> None:
    """The layer's extent and time span, grown to hold what was written (never shrunk:
    a bbox that holds more than the features is still a bbox of them)."""
    g = None if feature is None else feature.geometry_crs84
    if g is not None and not g.is_empty:
        a, b, c, d = g.bounds
        box = meta.get("bbox")
        meta["bbox"] = [a, b, c, d] if box is None else [
            min(box[0], a), min(box[1], b), max(box[2], c), max(box[3], d)]
    if span.first is not None:
        first, last = meta.get("interval") or [span.first, span.last]
        meta["interval"] = [min(first, span.first), max(last, span.last)]
