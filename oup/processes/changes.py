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
from functools import partial

from oup.processes import (Context, InputError, box, box_input, features_output, instant,
                           instant_input)
from oup.store.base import Query

_instant = partial(instant, zoneless="utc")  # a time without a zone: UTC, as the store's

DESCRIPTION = {
    "title": "Changes in an area",
    "description": "The features added, changed and removed in an area between two "
                   "instants, with their attributes before and after, from the history "
                   "kept of written collections.",
    "keywords": ["history", "changes", "versions"],
    "inputs": {
        "collection": {"title": "the collection", "schema": {"type": "string"}},
        "from": instant_input("the first instant"),
        "to": instant_input("the second instant", default="now"),
        "bbox": box_input("the area", default="all"),
    },
    "outputs": {"result": features_output(
        "the features that changed: change (added, changed, removed), before and after")},
}


def check(inputs: dict, context: Context) -> dict:
    coll = context.collection(inputs["collection"], "collection")
    if coll.derived_from:
        raise InputError(f"input 'collection': {coll.id} is read live from sensors; it "
                         "keeps no versions", "collection")
    start = _instant(inputs["from"], "from")
    end = _instant(inputs["to"], "to") if "to" in inputs else datetime.now(timezone.utc)
    if start >= end:
        raise InputError("input 'from': must be before 'to'", "from")
    box(inputs.get("bbox"), "bbox")
    return inputs


def execute(inputs: dict, context: Context) -> dict:
    coll = context.collection(inputs["collection"], "collection")
    area = box(inputs.get("bbox"), "bbox")
    start = _instant(inputs["from"], "from")
    end = _instant(inputs["to"], "to") if "to" in inputs else None  # None: as it is now
    before = {f["id"]: f for f in context.features(coll, Query(bbox=area, asof=start))}
    context.progress(45, f"{len(before)} features at {inputs['from']}")
    after = {f["id"]: f for f in context.features(coll, Query(bbox=area, asof=end))}
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
