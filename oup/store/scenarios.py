"""Scenarios: named sets of proposed changes layered over collections, never written
into them (what both SQL stores share).

``oup_scenarios`` holds each scenario: its id, title, owner, the collections it changes
and the roles it is shared with. A collection's proposed changes live beside its
history: ``{cid}__scenario`` (``version_schema.scenario_ddl``) has the history table's
columns and the scenario's id, one row per feature a scenario touches, as the scenario
has it. Its kind says what the scenario did: "created" (a feature it adds, numbered
below zero, where no imported or written row is), "replaced" or "updated" (a feature of
the collection, changed; its row number), "deleted" (one it removes; the row keeps the
feature as the collection has it, so a map can draw what would go).

A write to a scenario is a transaction of the collection's (``_writing``), with the
checks a write to the collection has (ETag, the collection's fields, ids), and touches
nothing of the collection itself: not its rows, history, tiles or change events.

Read through a scenario, a collection is one relation: its rows that no row of the
scenario's stands for, then the scenario's rows that are not removals; each side is
filtered by the query (the collection's side through its spatial index), and sorting,
paging and counting run over the two, in SQL, as they do over the collection.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

from oup.store.base import (ACTOR, FID, GEOM, GEOM84, KIND, OWNER, VALID_FROM, VERSION,
                            Change, Feature, FeatureExists, Field, FeatureNotFound, InvalidQuery,
                            Query, StaleVersion, Unprocessable, Written)
from oup.store.cql import quote
from oup.store.sqlquery import Spatial, TimeSpan, column_values
from oup.store.version_schema import (ENVELOPE, SCENARIO, VERSION_COLUMNS, Run, key_value,
                                      meta_in, scenario_ddl, scenario_table, versioned)

REGISTRY = "oup_scenarios"
REGISTRY_DDL = (f"CREATE TABLE IF NOT EXISTS {REGISTRY} (id TEXT PRIMARY KEY, "
                "title TEXT NOT NULL, owner TEXT NOT NULL, collections TEXT NOT NULL, "
                "shared_with TEXT NOT NULL, created TEXT NOT NULL)")
# how the scenario's rows name what it does to a feature, as its changes list them
CHANGE_OF = {"created": "added", "replaced": "changed", "updated": "changed",
             "deleted": "removed"}


def _scenario(row) -> dict:
    sid, title, owner, collections, shared, created = row
    return {"id": sid, "title": title, "owner": owner, "collections": json.loads(collections),
            "shared_with": json.loads(shared), "created": created}


class ScenarioLayers:
    """Scenarios over a ``versions.FeatureVersions`` store (its ``_writing``,
    ``_lock_collection``, ``_stamp``, geometry marks and ``_versions_of``)."""

    # the backend's: the store's SQL types of version columns (``version_schema``)
    VERSION_TYPES: dict[str, str] = {}

    def _exists(self, table: str) -> bool:
        """Whether ``table`` is in the store (the backend's spelling)."""
        raise NotImplementedError

    def _columns(self, run: Run, table: str) -> set[str]:
        """The names of ``table``'s columns (the backend's spelling)."""
        raise NotImplementedError

    def _has(self, table: str) -> bool:
        # made once, never dropped: a table seen is there from then on
        known = self.__dict__.setdefault("_tables_seen", set())
        if table not in known and self._exists(table):
            known.add(table)
        return table in known

    def _layer_of(self, cid: str, meta: dict) -> bool:
        """Whether ``cid`` has a layer of scenarios, with a column for each of its fields:
        a re-import may have brought fields the layer was made without (they are added,
        empty, once an import)."""
        table = scenario_table(cid)
        if not self._has(table):
            return False
        fitted = self.__dict__.setdefault("_layers_fitted", set())
        if (table, meta.get("import_id")) not in fitted:
            with self._writing(cid) as run:
                self._lock_collection(run, cid)
                have = self._columns(run, table)
                for name, kind in [*meta["fields"], *((c, "number") for c in ENVELOPE)]:
                    if name not in have:
                        run(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(name)} "
                            f"{self.VERSION_TYPES[kind]}")
            fitted.add((table, meta.get("import_id")))
        return True

    # -- the scenarios ---------------------------------------------------------------------
    def create_scenario(self, title: str, owner: str, collections: list[str],
                        shared_with: list[str]) -> dict:
        row = (uuid.uuid4().hex, title, owner, json.dumps(collections),
               json.dumps(shared_with),
               datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        with self._writing(REGISTRY) as run:
            self._lock_collection(run, REGISTRY)  # one maker of the table
            run(REGISTRY_DDL)
            run(f"INSERT INTO {REGISTRY} VALUES (?, ?, ?, ?, ?, ?)", row)
        return _scenario(row)

    def scenario(self, sid: str) -> dict | None:
        if not self._has(REGISTRY):
            return None
        rows = self.execute(f"SELECT * FROM {REGISTRY} WHERE id = ?", (str(sid),))
        return _scenario(rows[0]) if rows else None

    def scenarios(self, owner: str, roles) -> list[dict]:
        """The scenarios ``owner`` made or that are shared with one of ``roles``, newest
        first."""
        if not self._has(REGISTRY):
            return []
        rows = self.execute(f"SELECT * FROM {REGISTRY} WHERE owner = ? OR shared_with <> '[]' "
                            f"ORDER BY created DESC, id", (owner,))
        found = [_scenario(r) for r in rows]
        return [s for s in found if s["owner"] == owner or set(s["shared_with"]) & set(roles)]

    def delete_scenario(self, sid: str) -> None:
        """The scenario and every change it holds."""
        found = self.scenario(sid)
        if found is None:
            return
        with self._writing(REGISTRY) as run:
            run(f"DELETE FROM {REGISTRY} WHERE id = ?", (sid,))
        for cid in found["collections"]:
            if self._has(scenario_table(cid)):
                with self._writing(cid) as run:
                    run(f"DELETE FROM {quote(scenario_table(cid))} WHERE {SCENARIO} = ?",
                        (sid,))

    # -- reading through a scenario -------------------------------------------------------
    def scenario_source(self, cid: str, meta: dict, q: Query,
                        filtered: bool) -> tuple[str, list, bool]:
        """(the relation, its parameters, whether the query's filters are in it): the
        collection as scenario ``q.scenario`` has it, filtered by ``q`` if ``filtered``."""
        versioned(meta, cid)
        if q.asof is not None:
            raise InvalidQuery("scenario cannot be combined with asof: a scenario is "
                               "layered over the collection as it is now", "scenario")
        if q.text is not None:
            raise InvalidQuery("q cannot be combined with scenario: free text searches the "
                               "collection as it is", "q")
        if not self._layer_of(cid, meta):  # no scenario has changed this collection yet
            return quote(cid), [], False
        t, o = quote(cid), quote(scenario_table(cid))
        # a feature is the same one by its id: the id field where there is one (a re-import
        # numbers the rows anew), else the row number
        same = quote(meta.get("id_field") or FID)
        cols = ", ".join([FID, GEOM, GEOM84, OWNER] + [quote(n) for n, _ in meta["fields"]])
        live, live_params = self._where(cid, meta, q, self._spatial(cid)) if filtered \
            else ("", [])
        mine, mine_params = self._where(cid, meta, q, _boxed(self._spatial_scan(cid))) \
            if filtered else ("", [])
        sql = (f"(SELECT {cols} FROM {t} WHERE NOT EXISTS (SELECT 1 FROM {o} s WHERE "
               f"s.{SCENARIO} = ? AND s.{same} = {t}.{same}){_and(live)} UNION ALL "
               f"SELECT {cols} FROM {o} WHERE {SCENARIO} = ? AND {KIND} <> 'deleted'"
               f"{_and(mine)}) AS _oup_in_scenario")
        return sql, [q.scenario] + live_params + [q.scenario] + mine_params, True

    def scenario_etag(self, cid: str, sid: str, fid) -> str | None:
        """The ETag of feature ``fid`` as scenario ``sid`` has it (the collection's own
        when the scenario leaves it as it is); None: not there."""
        meta = self.layer(cid)
        kv = key_value(meta, fid)
        if kv is None:
            return None
        if self._layer_of(cid, meta):
            rows = self.execute(f"SELECT {VERSION}, {KIND} FROM {quote(scenario_table(cid))} "
                                f"WHERE {SCENARIO} = ? AND {quote(kv[0])} = ?", (sid, kv[1]))
            if rows:
                return None if rows[0][1] == "deleted" else f"{sid}-{rows[0][0]}"
        return self.etag(cid, fid)

    def scenario_changes(self, cid: str, sid: str, crs: str = "OGC:CRS84",
                         fid=None) -> list[dict]:
        """What scenario ``sid`` does to collection ``cid`` (to feature ``fid`` only, if
        given): GeoJSON features (``crs``), each with ``oup:change`` ("added", "changed",
        "removed"; a removed one as the collection has it) and, for a feature of the
        collection's, ``oup:tileId``: the id its vector tiles give it (the row number,
        which is not the feature's id where the collection has an ``id_field``), so a map
        can leave it out."""
        meta = self.layer(cid)
        if not self._layer_of(cid, meta):
            return []
        where, params = f"{SCENARIO} = ?", [sid]
        if fid is not None:
            kv = key_value(meta, fid)
            if kv is None:
                return []
            where, params = f"{where} AND {quote(kv[0])} = ?", params + [kv[1]]
        key, o = meta.get("id_field"), quote(scenario_table(cid))
        # the collection's row of the feature now (a re-import numbers the rows anew)
        row = f"(SELECT c.{FID} FROM {quote(cid)} c WHERE c.{quote(key)} = {o}.{quote(key)})" \
            if key else FID
        row += " AS _oup_tile_id"  # (a name of its own: ORDER BY names the row number)
        out = []
        for feature, (kind, row) in self._versions_of(
                self.execute, meta, scenario_table(cid), f"{where} ORDER BY {FID}",
                params, [KIND, row], Query(crs=crs)):
            feature["properties"]["oup:change"] = CHANGE_OF[kind]
            if kind != "created" and row is not None:  # (one it adds is in no tile)
                feature["properties"]["oup:tileId"] = row
            out.append(feature)
        return out

    # -- writing into a scenario ----------------------------------------------------------
    def write_scenario_feature(self, cid: str, sid: str, change: Change) -> Written:
        """``write_feature`` (``protocols.FeatureWriter``), into scenario ``sid``'s layer
        of ``cid`` instead of ``cid``."""
        self._layer_of(cid, self.layer(cid))
        with self._writing(cid) as run:
            meta = meta_in(run, cid)
            self._lock_collection(run, cid)  # the layer made once; ids made once
            if not self._has(scenario_table(cid)):
                for sql in scenario_ddl(cid, [Field(n, k) for n, k in meta["fields"]],
                                        self.VERSION_TYPES, meta.get("id_field")):
                    run(sql)
            now = self._stamp(datetime.now(timezone.utc))
            if change.kind == "created":
                return self._scenario_create(run, cid, sid, meta, change, now)
            return self._scenario_change(run, cid, sid, meta, change, now)

    def _scenario_create(self, run: Run, cid: str, sid: str, meta: dict, change: Change,
                         now) -> Written:
        self._check_id(meta, change, change.feature)
        key, o = meta.get("id_field"), quote(scenario_table(cid))
        # below every row number: never one of the collection's, whatever it adds later
        row = run(f"SELECT COALESCE(MIN({FID}), 0) - 1 FROM {o} WHERE {FID} < 0")[0][0]
        feature, props = change.feature, dict(change.feature.properties)
        if key:
            given = change.fid if change.fid is not None else props.get(key)
            if given is None:
                given = row if dict(meta["fields"])[key] == "integer" else str(uuid.uuid4())
            kv = key_value(meta, given)
            if kv is None:
                raise Unprocessable(f"{key} must be an integer, got {given!r}", key)
            if run(f"SELECT 1 FROM {quote(cid)} WHERE {quote(key)} = ?", (kv[1],)) or run(
                    f"SELECT 1 FROM {o} WHERE {SCENARIO} = ? AND {quote(key)} = ?",
                    (sid, kv[1])):
                raise FeatureExists(f"a feature with {key} {given} exists; replace it (PUT) "
                                    f"or create one with another id")
            props[key] = kv[1]
            feature = Feature(feature.geometry, feature.geometry_crs84, props)
        elif change.fid is not None:
            raise Unprocessable("this collection's features are numbered by the server: "
                                "create one without an id")
        fields = self._properties(meta, feature, merge=False)
        names = [SCENARIO, FID, GEOM, GEOM84] + [f.name for f in fields] + list(VERSION_COLUMNS)
        marks = ["?", "?", *self._geometry_marks(meta)] + ["?"] * (len(names) - 4)
        run(f"INSERT INTO {o} ({', '.join(map(quote, names))}) VALUES ({', '.join(marks)})",
            [sid, row] + self._geometry_values(meta, feature)
            + column_values(fields, props, TimeSpan())
            + [1, now, "created", change.actor, change.owner])
        after = self._scenario_row(run, cid, sid, meta, row)
        _keep_box(run, cid, sid, row, after)
        return Written(after["id"], f"{sid}-1", None, after)

    def _scenario_row(self, run: Run, cid: str, sid: str, meta: dict, row: int) -> dict:
        return self._versions_of(run, meta, scenario_table(cid),
                                 f"{SCENARIO} = ? AND {FID} = ?", [sid, row], [])[0][0]

    def _scenario_change(self, run: Run, cid: str, sid: str, meta: dict, change: Change,
                         now) -> Written:
        kv = key_value(meta, change.fid)
        o, t = quote(scenario_table(cid)), quote(cid)
        if kv is None:
            raise FeatureNotFound(f"no feature {change.fid} in {cid}")
        mine = run(f"SELECT {FID}, {VERSION}, {KIND}, {OWNER} FROM {o} WHERE {SCENARIO} = ? "
                   f"AND {quote(kv[0])} = ?", (sid, kv[1]))
        if mine:
            row, version, kind, owner = mine[0]
            current = f"{sid}-{version}"
        else:
            live = run(f"SELECT {FID}, {VERSION}, {OWNER} FROM {t} WHERE {quote(kv[0])} = ?",
                       (kv[1],))
            (row, version, owner), kind = (live[0] if live else (None,) * 3), None
            current = f"{meta['import_id']}-{version}"
        if row is None or kind == "deleted" or (change.owner is not None
                                                and owner != change.owner):
            raise FeatureNotFound(f"no feature {change.fid} in {cid} (in this scenario)")
        if change.expected is not None and change.expected != current:
            raise StaleVersion(f"feature {change.fid} has changed in this scenario since it "
                               f"was read (its ETag is now {current}): read it again, then "
                               f"write", headers={"ETag": f'"{current}"'})
        before = self._scenario_row(run, cid, sid, meta, row) if mine else \
            self._versions_of(run, meta, cid, f"{FID} = ?", [row], [])[0][0]
        feature = None if change.kind == "deleted" else change.written_over(before)
        self._check_id(meta, change, feature)
        copied = [FID, GEOM, GEOM84] + [quote(n) for n, _ in meta["fields"]] + \
            list(VERSION_COLUMNS)
        if change.kind == "deleted":
            run(f"DELETE FROM {o} WHERE {SCENARIO} = ? AND {FID} = ?", (sid, row))
            if kind != "created":  # one of the collection's: kept, marked as going
                run(f"INSERT INTO {o} ({SCENARIO}, {', '.join(copied)}) SELECT ?, "
                    f"{', '.join(copied)} FROM {t} WHERE {FID} = ?", (sid, row))
                run(f"UPDATE {o} SET {VERSION} = ?, {VALID_FROM} = ?, {KIND} = 'deleted', "
                    f"{ACTOR} = ? WHERE {SCENARIO} = ? AND {FID} = ?",
                    (version + 1, now, change.actor, sid, row))
            return Written(before["id"], None, before, None)
        if not mine:  # the collection's feature, copied into the scenario to change there
            run(f"INSERT INTO {o} ({SCENARIO}, {', '.join(copied)}) SELECT ?, "
                f"{', '.join(copied)} FROM {t} WHERE {FID} = ?", (sid, row))
        merge = change.kind == "updated"
        props = dict(feature.properties)
        props.pop(meta.get("id_field"), None)  # the id stays what it is
        fields = [f for f in self._properties(meta, Feature(None, None, props), merge)
                  if f.name != meta.get("id_field")]
        sets = [f"{quote(f.name)} = ?" for f in fields]
        params = column_values(fields, props, TimeSpan())
        if not merge or feature.geometry is not None:
            marks = self._geometry_marks(meta)
            sets = [f"{GEOM} = {marks[0]}", f"{GEOM84} = {marks[1]}"] + sets
            params = self._geometry_values(meta, feature) + params
        # a feature the scenario added stays one it added, however often it is changed
        sets += [f"{VERSION} = ?", f"{VALID_FROM} = ?", f"{KIND} = ?", f"{ACTOR} = ?"]
        params += [version + 1, now, "created" if kind == "created" else change.kind,
                   change.actor]
        run(f"UPDATE {o} SET {', '.join(sets)} WHERE {SCENARIO} = ? AND {FID} = ?",
            params + [sid, row])
        after = self._scenario_row(run, cid, sid, meta, row)
        _keep_box(run, cid, sid, row, after)
        return Written(after["id"], f"{sid}-{version + 1}", before, after)


def _keep_box(run: Run, cid: str, sid: str, row: int, feature: dict) -> None:
    """The box of a proposed feature as written (``ENVELOPE``)."""
    import shapely.geometry

    box = shapely.geometry.shape(feature["geometry"]).bounds if feature.get("geometry") \
        else (None,) * 4
    run(f"UPDATE {quote(scenario_table(cid))} SET {', '.join(f'{c} = ?' for c in ENVELOPE)} "
        f"WHERE {SCENARIO} = ? AND {FID} = ?", [*box, sid, row])


def _boxed(spatial: Spatial) -> Spatial:
    """``spatial`` over the rows of a scenario (no spatial index): their boxes first, so
    the exact test runs only where the boxes meet."""
    def boxed(op: str, wkb: bytes, bounds, box: bool = False) -> tuple[str, list]:
        sql, params = spatial(op, wkb, bounds, box)
        if op == "disjoint":
            return sql, params
        minx, miny, maxx, maxy = bounds
        x0, y0, x1, y1 = ENVELOPE
        return (f"({x0} <= ? AND {x1} >= ? AND {y0} <= ? AND {y1} >= ? AND {sql})",
                [maxx, minx, maxy, miny, *params])

    return boxed


def _and(where: str) -> str:
    """`` WHERE a AND b`` (or '') as `` AND a AND b``."""
    return " AND " + where.removeprefix(" WHERE ") if where else ""
