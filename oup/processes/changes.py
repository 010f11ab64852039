"""``changes``: what was added, changed and removed in an area between two instants,
read from the feature history (``asof``: the store's versions of the collection).

The area is a bounding box (CRS84); a feature is in it when it touches it. A feature in
the area at the second instant and not at the first was ``added`` (created, or moved
in); one there at the first and not at the second was ``removed`` (deleted, or moved
out); one there at both whose geometry or properties differ was ``changed``. Each comes
with its properties before and after (and its geometry: the one after, or before for
a removed one).
"""
from __future__ import annotations

from datetime import datetime, timezone

from oup.processes import Context, InputError, features_output
from oup.store.base import Query

_INSTANT = {"type": "string", "format": "date-time"}

DESCRIPTION = {
    "title": "Changes in an area",
    "description": "The features added, changed and removed in an area between two "
                   "instants, with their attributes before and after, from the history "
                   "kept of written collections.",
    "keywords": ["history", "changes", "versions"],
    "inputs": {
        "collection": {"title": "the collection", "schema": {"type": "string"}},
        "from": {"title": "the first instant (RFC 3339)", "schema": _INSTANT},
        "to": {"title": "the second instant (RFC 3339); default: now", "schema": _INSTANT,
               "minOccurs": 0},
        "bbox": {"title": "the area: [minx, miny, maxx, maxy] in CRS84; default: all",
                 "schema": {"type": "array", "items": {"type": "number"}, "minItems": 4,
                            "maxItems": 4}, "minOccurs": 0},
    },
    "outputs": {"result": features_output(
        "the features that changed: change (added, changed, removed), before and after")},
}


def _instant(text: str, name: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"input {name!r}: {text!r} is not an RFC 3339 instant "
                         "(e.g. 2026-01-01T00:00:00Z)", name) from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def check(inputs: dict, context: Context) -> dict:
    coll = context.collection(inputs["collection"], "collection")
    if coll.derived_from:
        raise InputError(f"input 'collection': {coll.id} is read live from sensors; it "
                         "keeps no versions", "collection")
    start = _instant(inputs["from"], "from")
    end = _instant(inputs["to"], "to") if "to" in inputs else datetime.now(timezone.utc)
    if start >= end:
        raise InputError("input 'from': must be before 'to'", "from")
    box = inputs.get("bbox")
    if box is not None and (box[0] > box[2] or box[1] > box[3]):
        raise InputError("input 'bbox': [minx, miny, maxx, maxy] with min <= max", "bbox")
    return inputs


def execute(inputs: dict, context: Context) -> dict:
    coll = context.collection(inputs["collection"], "collection")
    box = tuple(inputs["bbox"]) if inputs.get("bbox") else None
    start = _instant(inputs["from"], "from")
    end = _instant(inputs["to"], "to") if "to" in inputs else None  # None: as it is now
    before = {f["id"]: f for f in context.features(coll, Query(bbox=box, asof=start))}
    context.progress(45, f"{len(before)} features at {inputs['from']}")
    after = {f["id"]: f for f in context.features(coll, Query(bbox=box, asof=end))}
    context.progress(90, f"{len(after)} features at {inputs.get('to', 'now')}")
    out = []
    for fid in sorted(before.keys() | after.keys(), key=str):
        old, new = before.get(fid), after.get(fid)
        if old is None:
            kind = "added"
        elif new is None:
            kind = "removed"
        elif old.get("geometry") != new.get("geometry") or \
                old.get("properties") != new.get("properties"):
            kind = "changed"
        else:
            continue
        shown = new or old
        out.append({"type": "Feature", "id": fid, "geometry": shown.get("geometry"),
                    "properties": {
                        "change": kind,
                        "geometry_changed": kind == "changed"
                        and old.get("geometry") != new.get("geometry"),
                        "before": old.get("properties") if old else None,
                        "after": new.get("properties") if new else None}})
    return {"type": "FeatureCollection", "features": out, "numberReturned": len(out)}
