"""A PostGIS layer's count, extent and time span, grown by feature writes without one
write waiting for another: each write that grows them adds a row of its growth to
``oup_layer_growth`` (a feature more or less, the box and the span it wrote), and a
reader takes the layer's metadata with the sum of those rows. Updating the metadata row
itself would lock it until the commit, and every creation (each one counts) would then
wait for the one before it to commit.

The rows are folded into the metadata row now and then (``FOLD_ROWS``), in a transaction
that holds that row; an import deletes its table's rows with the table it replaces.
"""
from __future__ import annotations

import json

from oup.store.version_schema import Run

SCHEMA = """
CREATE TABLE oup_layer_growth (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, table_name text NOT NULL,
  count bigint NOT NULL, minx double precision, miny double precision,
  maxx double precision, maxy double precision, first text, last text);
CREATE INDEX ON oup_layer_growth (table_name);
"""

#: what a write's growth holds; another change of the metadata locks its row
GROWN = frozenset({"count", "bbox", "interval"})
#: rows of growth of one layer that a reader folds into its metadata row
FOLD_ROWS = 1000

_SUM = ("count(*), sum(count), min(minx), min(miny), max(maxx), max(maxy), min(first), "
        "max(last)")
#: the layer's metadata and the sum of its growth (``with_growth``)
READ = (f"SELECT l.meta, g.* FROM oup_layers l, LATERAL (SELECT {_SUM} FROM oup_layer_growth "
        f"WHERE table_name = l.table_name) g WHERE l.table_name = ?")


def grow(run: Run, cid: str, read: dict, written: dict) -> bool:
    """A write's growth (``read``: the metadata before it, ``written``: after), as a row
    of its own; False if the write changed more than ``GROWN`` (then the caller locks
    the metadata row)."""
    changed = {k for k in read.keys() | written.keys() if read.get(k) != written.get(k)}
    if not changed <= GROWN:
        return False
    box = written.get("bbox") if "bbox" in changed else None
    span = written.get("interval") if "interval" in changed else None
    run("INSERT INTO oup_layer_growth (table_name, count, minx, miny, maxx, maxy, first, "
        "last) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [cid, written.get("count", 0) - read.get("count", 0), *(box or [None] * 4),
         *(span or [None] * 2)])
    return True


def with_growth(meta: dict, growth) -> dict:
    """``meta`` with the sum of its growth rows (``READ``'s columns after the metadata:
    rows, count, minx, miny, maxx, maxy, first, last)."""
    rows, count, minx, miny, maxx, maxy, first, last = growth
    if not rows:
        return meta
    out = dict(meta, count=max(0, meta.get("count", 0) + int(count or 0)))
    if minx is not None:
        box = meta.get("bbox")
        out["bbox"] = [minx, miny, maxx, maxy] if box is None else [
            min(box[0], minx), min(box[1], miny), max(box[2], maxx), max(box[3], maxy)]
    if first is not None:
        span = meta.get("interval")
        out["interval"] = [first, last] if span is None else [min(span[0], first),
                                                              max(span[1], last)]
    return out


def fold(run: Run, cid: str) -> None:
    """In a transaction: the layer's growth rows into its metadata row (held until the
    commit: two folds do not both add the same rows)."""
    rows = run("SELECT meta FROM oup_layers WHERE table_name = ? FOR UPDATE", (cid,))
    if not rows:
        return
    meta = rows[0][0] if isinstance(rows[0][0], dict) else json.loads(rows[0][0])
    growth = run(f"WITH gone AS (DELETE FROM oup_layer_growth WHERE table_name = ? "
                 f"RETURNING *) SELECT {_SUM} FROM gone", (cid,))[0]
    if growth[0]:
        run("UPDATE oup_layers SET meta = ? WHERE table_name = ?",
            (json.dumps(with_growth(meta, growth)), cid))
