"""How long versions are kept, and the erasure of personal data (GDPR): blanking
properties in the versions of a collection (``versions.py``), as its catalogue entry's
``history`` block says."""
from __future__ import annotations

import json
from datetime import datetime

from oup.store.base import FID, KIND, OWNER, VALID_FROM, VALID_TO, VERSION, InvalidQuery
from oup.store.cql import quote
from oup.store.version_schema import history_table, key_value, meta_in


class VersionRetention:
    """``prune_history`` and ``erase`` over a ``versions.FeatureVersions`` store (its
    ``_writing``, ``_stamp``, ``_rows_blanked`` and ``_written``)."""

    def _personal(self, meta: dict, personal: list[str]) -> tuple[str, str]:
        """(``SET`` that blanks the ``personal`` properties, a condition true where one
        of them still has a value); ('', '') for none."""
        names = {n for n, _ in meta["fields"]}
        unknown = [p for p in personal if p not in names]
        if unknown:
            raise InvalidQuery(f"no property {unknown[0]!r} to blank", unknown[0])
        if meta.get("id_field") in personal:
            raise InvalidQuery("the id field cannot be blanked: it names the feature",
                               meta["id_field"])
        return (", ".join(f"{quote(p)} = NULL" for p in personal),
                "(" + " OR ".join(f"{quote(p)} IS NOT NULL" for p in personal) + ")")

    def prune_history(self, cid: str, keep_before: datetime | None, personal: list[str],
                      personal_before: datetime) -> int:
        with self._writing(cid) as run:
            meta = meta_in(run, cid)
            blank, valued = self._personal(meta, personal)
            h = quote(history_table(cid))
            dropped = blanked = 0
            if keep_before is not None:  # None: kept for ever
                old = self._stamp(keep_before)
                dropped = len(run(f"DELETE FROM {h} WHERE {VALID_TO} < ? OR ({KIND} = "
                                  f"'deleted' AND {VALID_FROM} < ?) RETURNING 1", (old, old)))
            if blank:
                blanked = len(run(f"UPDATE {h} SET {blank} WHERE {VALID_TO} < ? AND {valued} "
                                  f"RETURNING 1", (self._stamp(personal_before),)))
        return dropped + blanked

    def erase(self, cid: str, personal: list[str], fid=None, owner: str | None = None) -> int:
        if (fid is None) == (owner is None):
            raise InvalidQuery("erase one feature (fid) or an owner's (owner), not both")
        with self._writing(cid) as run:
            meta = meta_in(run, cid)
            blank, valued = self._personal(meta, personal)
            if not blank:
                return 0
            if fid is not None:
                kv = key_value(meta, fid)
                if kv is None:
                    return 0
                where, params = f"{quote(kv[0])} = ?", [kv[1]]
            else:
                where, params = f"{OWNER} = ?", [owner]
            # the current version takes a new number (its ETag changes) but no history row:
            # the history would keep what is erased
            rows = [r[0] for r in run(f"UPDATE {quote(cid)} SET {blank}, {VERSION} = "
                                      f"{VERSION} + 1 WHERE {where} AND {valued} "
                                      f"RETURNING {FID}", params)]
            read = json.dumps(meta)
            self._rows_blanked(run, cid, meta, rows)
            if json.dumps(meta) != read:  # (a metadata row written as read could undo
                # what was folded into it meanwhile: pg_growth)
                run("UPDATE oup_layers SET meta = ? WHERE table_name = ?",
                    (json.dumps(meta), cid))
            past = run(f"UPDATE {quote(history_table(cid))} SET {blank} WHERE {where} "
                       f"AND {valued} RETURNING 1", params)
        self._written(cid)
        return len(rows) + len(past)
