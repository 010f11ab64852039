"""Where versions live (``versions.py``): the current table's version columns, the
history table beside it, and how a feature id finds its rows."""
from __future__ import annotations

import json
from typing import Callable

from oup.store.base import (ACTOR, FID, GEOM, GEOM84, KIND, OWNER, VALID_FROM, VALID_TO,
                            VERSION, Field, check_int64)
from oup.store.cql import quote
from oup.store.sqlquery import versioned

__all__ = ["ENVELOPE", "SCENARIO", "VERSION_COLUMNS", "Run", "history_ddl", "history_table", "key_value",
           "meta_in", "scenario_ddl", "scenario_table", "version_columns", "versioned"]

Run = Callable[..., list]  # (sql with ? placeholders, params) -> rows, in the write's transaction

# the columns of a version besides the geometry and the properties
VERSION_COLUMNS = (VERSION, VALID_FROM, KIND, ACTOR, OWNER)
SCENARIO = "_oup_scenario"  # the scenario a proposed change belongs to (``scenarios.py``)
# a proposed feature's box in CRS84: what a spatial test looks at before the exact one
ENVELOPE = ("_oup_minx", "_oup_miny", "_oup_maxx", "_oup_maxy")


def history_table(cid: str) -> str:
    return f"{cid}__history"


def version_columns(types: dict[str, str], imported: str) -> str:
    """The current table's version columns (SQL DDL, after a comma): the import's
    rows take their values from the defaults (``imported``: the import's instant as a
    literal the store's instants compare with)."""
    return (f"{VERSION} {types['integer']} NOT NULL DEFAULT 1, "
            f"{VALID_FROM} {types['instant']} NOT NULL DEFAULT '{imported}', "
            f"{KIND} {types['string']} NOT NULL DEFAULT 'imported', "
            f"{ACTOR} {types['string']}, {OWNER} {types['string']}")


def _version_row(fields: list[Field], types: dict[str, str], until: bool) -> str:
    """The columns (SQL DDL) of a version kept beside the current table: the row's
    number, geometries and fields, and the version columns (``until``: with ``VALID_TO``)."""
    cols = "".join(f", {quote(f.name)} {types[f.type]}" for f in fields)
    return (f"{FID} {types['integer']} NOT NULL, {GEOM} {types['geometry']}, "
            f"{GEOM84} {types['geometry']}{cols}, {VERSION} {types['integer']} NOT NULL, "
            f"{VALID_FROM} {types['instant']} NOT NULL, "
            + (f"{VALID_TO} {types['instant']}, " if until else "")
            + f"{KIND} {types['string']} NOT NULL, {ACTOR} {types['string']}, "
              f"{OWNER} {types['string']}")


def history_ddl(cid: str, fields: list[Field], types: dict[str, str],
                id_field: str | None) -> list[str]:
    """The statements that make collection ``cid``'s (empty) history table."""
    h = quote(history_table(cid))
    out = [f"CREATE TABLE {h} (_oup_hid {types['serial']} PRIMARY KEY, "
           f"{_version_row(fields, types, until=True)})",
           f"CREATE INDEX {quote(f'{cid}__history_fid')} ON {h} ({FID})",
           f"CREATE INDEX {quote(f'{cid}__history_owner')} ON {h} ({OWNER}) "
           f"WHERE {OWNER} IS NOT NULL"]
    if id_field:
        out.append(f"CREATE INDEX {quote(f'{cid}__history_id')} ON {h} ({quote(id_field)})")
    return out


def scenario_table(cid: str) -> str:
    return f"{cid}__scenario"


def scenario_ddl(cid: str, fields: list[Field], types: dict[str, str],
                 id_field: str | None) -> list[str]:
    """The statements that make collection ``cid``'s layer of scenarios, if it has none
    (``scenarios.py``): the history table's columns, and the scenario's id."""
    s = quote(scenario_table(cid))
    box = "".join(f", {c} {types['number']}" for c in ENVELOPE)
    out = [f"CREATE TABLE IF NOT EXISTS {s} ({SCENARIO} {types['string']} NOT NULL, "
           f"{_version_row(fields, types, until=False)}{box}, "
           f"PRIMARY KEY ({SCENARIO}, {FID}))",
           f"CREATE INDEX IF NOT EXISTS {quote(f'{cid}__scenario_fid')} ON {s} ({FID})"]
    if id_field:
        out.append(f"CREATE INDEX IF NOT EXISTS {quote(f'{cid}__scenario_id')} ON {s} "
                   f"({SCENARIO}, {quote(id_field)})")
    return out


def key_value(meta: dict, fid):
    """(the column that holds the feature id, ``fid`` as that column holds it), or None
    for an id no feature can have."""
    key = meta.get("id_field")
    if key is None:
        try:
            return FID, check_int64(int(fid), "id")
        except (TypeError, ValueError):
            return None
    if dict(meta["fields"])[key] == "integer":
        try:
            return key, check_int64(int(fid), "id")
        except (TypeError, ValueError):
            return None
    return key, str(fid)


def meta_in(run: Run, cid: str, lock: str = "") -> dict:
    """The layer's metadata as the write's transaction sees it (not a cached copy);
    ``lock``: the store's words to lock the row until the commit."""
    from oup.store.base import UnknownCollection

    rows = run(f"SELECT meta FROM oup_layers WHERE table_name = ?{lock}", (cid,))
    if not rows:
        raise UnknownCollection(f"collection {cid!r} is not in the store; run `oup import`")
    meta = rows[0][0] if isinstance(rows[0][0], dict) else json.loads(rows[0][0])
    return versioned(meta, cid)
