"""History across a re-import: what an import replaces is kept as versions.

An import swaps a collection's table whole (readers see the old one or the new one). When
the collection has an id field (``id_field``: features keep their identity from one
import to the next), the swap also carries the versions over, as a write would have:

- a feature the new import holds unchanged keeps its version, its valid-from, its kind,
  its actor and its owner (its ETag's version part stays; the import part changes);
- a changed feature's old version goes to the history, valid until the import, and the
  new one follows it (version + 1, kind "imported", the same owner);
- a feature the import no longer holds is deleted as of the import (its last version
  and a "deleted" row, as ``versions.py`` writes them);
- a feature that comes back after a deletion goes on from its deleted row;
- the history the old table had stays.

Without an id field the features are numbered by row, nothing says which new feature an
old one became, and the history starts again at the import.

Both SQL stores run this, with the old tables copied aside first (``keep_previous``) and
then, once the new table and its empty history exist, ``carry_history``.
"""
from __future__ import annotations

from dataclasses import dataclass

from oup.store.base import FID, GEOM, GEOM84, KIND, OWNER, VALID_TO, VERSION
from oup.store.cql import quote
from oup.store.version_schema import VERSION_COLUMNS, Run, history_table

PREVIOUS, PREVIOUS_HISTORY = "oup_previous", "oup_previous_history"


@dataclass
class Carried:
    """What a re-import did to the versions."""
    unchanged: int = 0
    changed: int = 0
    removed: int = 0

    def __str__(self) -> str:
        return (f"history kept: {self.unchanged} unchanged, {self.changed} changed, "
                f"{self.removed} removed")


def keep_previous(run: Run, cid: str, old_meta: dict | None, id_field: str | None,
                  temp: str) -> bool:
    """Copy collection ``cid``'s current and history tables aside (``temp``: the store's
    words for a table that ends with the transaction) before the import drops them;
    whether there is a history to carry."""
    if not old_meta or "import_id" not in old_meta or id_field is None \
            or old_meta.get("id_field") != id_field:
        return False
    for name, source in ((PREVIOUS, cid), (PREVIOUS_HISTORY, history_table(cid))):
        run(f"DROP TABLE IF EXISTS {name}")
        run(f"CREATE {temp} {name} AS SELECT * FROM {quote(source)}")
    run(f"CREATE INDEX {PREVIOUS}_key ON {PREVIOUS} ({quote(id_field)})")
    return True


def carry_history(run: Run, cid: str, old_meta: dict, new_meta: dict, imported,
                  same: str) -> Carried:
    """Carry the versions of the tables ``keep_previous`` copied into ``cid``'s new table
    and history. ``imported``: the import's instant as the store holds instants;
    ``same``: the store's null-safe equality operator (SQLite ``IS``, PostgreSQL ``IS NOT
    DISTINCT FROM``)."""
    key = quote(new_meta["id_field"])
    t, h = quote(cid), quote(history_table(cid))
    old_types = dict(old_meta["fields"])
    common = [quote(n) for n, kind in new_meta["fields"] if old_types.get(n) == kind]

    def unchanged(n: str) -> str:
        """The same fields, the same values, the same geometry: the same version."""
        if old_types != dict(new_meta["fields"]):
            return "FALSE"
        return " AND ".join(f"{n}.{c} {same} o.{c}" for c in [GEOM, GEOM84] + common)

    # a geometry in another CRS than the new table's would be read as if it were not
    geom = f"o.{GEOM}" if old_meta.get("source_srid") == new_meta.get("source_srid") else "NULL"
    names = [FID, GEOM, GEOM84, *common, *VERSION_COLUMNS] + ([] if key in common else [key])
    values = ", ".join(geom if c == GEOM else f"o.{c}" for c in names)
    into = f"INSERT INTO {h} ({', '.join(names)}, {VALID_TO})"
    gone = f"NOT EXISTS (SELECT 1 FROM {t} n WHERE n.{key} = o.{key})"

    out = Carried(
        unchanged=_count(run, f"{t} n JOIN {PREVIOUS} o ON o.{key} = n.{key} "
                              f"WHERE {unchanged('n')}"),
        removed=_count(run, f"{PREVIOUS} o WHERE {gone}"))
    out.changed = _count(run, f"{t} n JOIN {PREVIOUS} o ON o.{key} = n.{key}") - out.unchanged
    # the history the old table had, as it was
    run(f"{into} SELECT {values}, o.{VALID_TO} FROM {PREVIOUS_HISTORY} o")
    # changed or removed: the old version holds until the import
    run(f"{into} SELECT {values}, ? FROM {PREVIOUS} o LEFT JOIN {t} n ON n.{key} = o.{key} "
        f"WHERE n.{key} IS NULL OR NOT ({unchanged('n')})", [imported])
    # removed: deleted as of the import
    run(f"INSERT INTO {h} ({FID}, {key}, {', '.join(VERSION_COLUMNS)}) "
        f"SELECT o.{FID}, o.{key}, o.{VERSION} + 1, ?, 'deleted', NULL, o.{OWNER} "
        f"FROM {PREVIOUS} o WHERE {gone}", [imported])
    # unchanged: the version goes on as it was; changed: the next version, the same owner
    run(f"UPDATE {t} SET {', '.join(f'{c} = o.{c}' for c in VERSION_COLUMNS)} "
        f"FROM {PREVIOUS} o WHERE o.{key} = {t}.{key} AND {unchanged(t)}")
    run(f"UPDATE {t} SET {VERSION} = o.{VERSION} + 1, {OWNER} = o.{OWNER} "
        f"FROM {PREVIOUS} o WHERE o.{key} = {t}.{key} AND NOT ({unchanged(t)})")
    # back after a deletion: its versions go on from the deleted row, which ends
    run(f"UPDATE {t} SET {VERSION} = d.{VERSION} + 1 FROM {h} d WHERE d.{key} = {t}.{key} "
        f"AND d.{KIND} = 'deleted' AND d.{VALID_TO} IS NULL")
    run(f"UPDATE {h} SET {VALID_TO} = ? WHERE {KIND} = 'deleted' AND {VALID_TO} IS NULL "
        f"AND {key} IN (SELECT {key} FROM {t})", [imported])
    for name in (PREVIOUS, PREVIOUS_HISTORY):
        run(f"DROP TABLE {name}")
    return out


def _count(run: Run, relation: str) -> int:
    return run(f"SELECT COUNT(*) FROM {relation}")[0][0]
