"""OGC API Features Part 4 on the collections the catalogue makes ``editable``: POST
creates, PUT replaces (or creates, where the collection takes client ids), PATCH applies a
JSON Merge Patch (RFC 7396), DELETE deletes; ``.../items/{id}/history`` lists a feature's
versions.

Who may: a collection one may not see is a 404 for every method (the gate answers that
first); an anonymous write is a 401; a caller without one of the roles ``editable``
names for the action is a 403. A write is an import of one feature: the body becomes the
importer's record (``features``), and the store writes it, and the version it replaces,
in one transaction (``FeatureWriter``). After the commit: the audit log (who, what,
before, after), a change event, and the cached vector tiles the old and new geometry
touch are dropped.

No lost updates: every answer carries the feature's ``ETag``; ``If-Match`` with a stale
one is a 412. ``If-Match`` is optional (QGIS and OWSLib do not send it): without it the
last writer wins, but a PATCH is still applied to the version it read.

With ``?scenario={id}`` the same write, checked the same way, lands in that scenario's
layer of the collection (``oup.scenarios``) instead: who may is the scenario's rule (its
owner and the roles it is shared with, holding one of the collection's ``scenarios``
roles), and after the commit come the audit and a change event on the scenario's own
stream (``/scenarios/{id}/events``) - the collection, its change events and its tiles are
not touched.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Callable

from oup.catalog import Catalog, Collection, Editable
from oup.errors import Forbidden, MethodNotAllowed, NotFound, OUPError, PreconditionFailed, \
    Unauthorized, Unavailable, Unprocessable, UnsupportedMediaType
from oup.events import feature_event, scenario_event
from oup.http.routes import Call, Endpoint, Format, Param
from oup import scenarios
from oup.scenarios.changes import proposed
from oup.store.base import Change, FeatureNotFound, StoreBusy, StoreError
from oup.store.geometry import geojson_bounds
from oup.writes.city import CITY_JSON, CityRecord, city_record
from oup.writes.features import content_crs, feature_record, merge_patch, parse_body

LOG = logging.getLogger(__name__)
# A POST of plain JSON to items is a CQL2 JSON search (pygeoapi's), so a new feature comes
# as GeoJSON. OWSLib sends a PUT with no Content-Type at all: a body is JSON here anyway.
CREATE = ("application/geo+json", CITY_JSON)
REPLACE = ("application/geo+json", "application/json", "", CITY_JSON)
MERGE_PATCH = ("application/merge-patch+json", "application/geo+json", "application/json", "")
ACTIONS = {"POST": "create", "PUT": "change", "PATCH": "change", "DELETE": "delete"}
PRUNE_SECONDS = 60.0
_ITEM = re.compile(r"^/collections/(?P<cid>[^/]+)/items/(?P<fid>[^/]+)$")


class Writes:
    def __init__(self, catalog: Catalog, store, base_url: str, audit, events: Callable,
                 tile_cache=None, on_change: Callable | None = None):
        self.catalog, self.store, self.base = catalog, store, base_url.rstrip("/")
        self.audit, self.events, self.tile_cache = audit, events, tile_cache
        self.on_change = on_change  # e.g. the 3D tiles of a changed building
        self._logging = threading.Lock()  # one event log connection for the worker's threads
        self._pruned: dict[str, float] = {}

    def endpoints(self) -> list[Endpoint]:
        editable = lambda: [c.id for c in self.catalog  # noqa: E731
                            if c.editable and not c.derived_from]  # (observations: /sta)
        fid = Param("featureId", "the id of a feature", where="path")
        crs = Param("Content-Crs", "the CRS of the coordinates sent (OGC API Features "
                    "Part 2); default CRS84", where="header")
        match = Param("If-Match", "the ETag of the version the change is made to (412 "
                      "when it is no longer current); optional", where="header")
        scenario = Param("scenario", "write into this scenario (its id) instead of the "
                         "collection: a proposed change, layered over it (see /scenarios)")
        feature = (Format("json", "application/geo+json"),)
        common = dict(tag="edit", collections=editable, access=self._may, beside=True)
        return [
            Endpoint("/collections/{collectionId}/items", "Add a feature (Part 4)",
                     self.create, operation="createItem", methods=("POST",),
                     params=(crs, scenario), consumes=CREATE, formats=feature, responses={
                         "201": {"description": "created; Location names it"},
                         **_PROBLEMS}, **common),
            Endpoint("/collections/{collectionId}/items/{featureId}",
                     "Replace a feature (Part 4); where the collection takes client ids, "
                     "a new id creates it", self.replace, operation="replaceItem",
                     methods=("PUT",), params=(fid, crs, match, scenario), consumes=REPLACE,
                     formats=feature, responses={"201": {"description": "created"},
                                                 **_PROBLEMS}, **common),
            Endpoint("/collections/{collectionId}/items/{featureId}",
                     "Update a feature with a JSON Merge Patch (RFC 7396)", self.update,
                     operation="updateItem", methods=("PATCH",),
                     params=(fid, crs, match, scenario),
                     consumes=MERGE_PATCH, formats=feature, responses=_PROBLEMS, **common),
            Endpoint("/collections/{collectionId}/items/{featureId}/history",
                     "The versions of a feature, newest first (each valid from, valid to, "
                     "the kind of change)", self.history, "edit", "getItemHistory",
                     params=(fid,), formats=(Format("json", "application/geo+json"),),
                     collections=lambda: [c.id for c in self.catalog
                                          if not c.derived_from]),
            Endpoint("/collections/{collectionId}/items/{featureId}", "Delete a feature",
                     self.delete, operation="deleteItem", methods=("DELETE",),
                     params=(fid, match, scenario), responses={"204": {"description": "deleted"},
                                                     **_PROBLEMS}, **common),
        ]

    def announce(self, event) -> None:
        """Log a change event, after the commit it tells of."""
        try:
            with self._logging:
                self.events().append_events([event])
        except Exception:  # the write stands; a subscriber resumes from the next event
            LOG.exception("change event %s of %s not logged", event.type, event.subject)

    def etag_for(self, path: str, args) -> str | None:
        """The ETag of the item at ``path`` (a GET of pygeoapi's, now), for its answer."""
        m = _ITEM.match(path)
        if m is None or "asof" in args or m["cid"] not in self.catalog.collections \
                or self.catalog[m["cid"]].derived_from:
            return None
        try:
            if "scenario" in args:  # (the gate let the caller see it)
                return self.store.scenario_etag(m["cid"], args["scenario"], m["fid"])
            return self.store.etag(m["cid"], m["fid"])
        except (OUPError, StoreError):  # (imported before versions were kept): no ETag
            return None

    # -- who may -------------------------------------------------------------------------
    def _may(self, call: Call) -> None:
        coll = self.catalog.collections.get(call.collection)
        if coll is None:
            raise NotFound(f"no collection {call.collection!r}")
        if "scenario" in call.query:
            scenarios.covering(self.store, call.identity, call.query["scenario"], coll.id)
            scenarios.may_propose(coll, call.identity)
            return
        if coll.editable is None:
            raise MethodNotAllowed(f"{call.collection} is read-only",
                                   ["GET", "HEAD"] + (["POST"] if call.endpoint.methods ==
                                                      ("POST",) else []))
        identity = call.identity
        if identity is None or not identity.authenticated:
            raise Unauthorized(f"sign in to change {call.collection} (Authorization: "
                               "Bearer <token>, or X-API-Key: <key>)")
        action = ACTIONS[call.endpoint.methods[0]]
        roles = set(getattr(coll.editable, action)) | set(coll.editable.own)
        if not identity.roles & roles:
            raise Forbidden(f"your roles may not {action} features of {call.collection}; "
                            f"that takes one of {', '.join(sorted(roles)) or 'no role'}")

    def _owner(self, coll: Collection, identity) -> str | None:
        return owner_of(coll, identity) if coll.editable else None

    def _write(self, call: Call, coll: Collection, change: Change):
        """The change, into the collection, or into the scenario the call names."""
        sid = call.query.get("scenario")
        try:
            if sid is None:
                return self.store.write_feature(coll.id, change)
            return self.store.write_scenario_feature(coll.id, sid, change)
        except StoreBusy as exc:  # another process held the file too long: nothing written
            raise Unavailable(f"{coll.id}: the store is busy with another writer; "
                              f"nothing was written, try again ({exc})") from exc

    def _get(self, call: Call, coll: Collection, fid, owner: str | None = None):
        return self.store.get(coll.id, fid, owner=owner, scenario=call.query.get("scenario"))

    # -- the methods ---------------------------------------------------------------------
    def create(self, call: Call):
        coll = self.catalog[call.collection]
        record = self._record(call, coll, parse_body(call.request.get_data()))
        written = self._write(call, coll, Change(
            "created", None, record, None, call.identity.who,
            self._owner(coll, call.identity)))
        return self._answer(call, coll, written, 201, record)

    def replace(self, call: Call):
        coll = self.catalog[call.collection]
        fid = call.path["featureId"]
        body = parse_body(call.request.get_data())
        expected = self._expected(call, coll, fid, must_exist=not _rules(coll).client_ids)
        kind = "replaced" if expected is not None else "created"
        current = self._get(call, coll, fid) if expected and _rules(coll).author_field \
            else None
        record = self._record(call, coll, body, fid, current, creating=kind == "created")
        written = self._write(call, coll, Change(
            kind, fid, record, expected, call.identity.who, self._owner(coll, call.identity)))
        return self._answer(call, coll, written, 200 if kind == "replaced" else 201, record)

    def update(self, call: Call):
        coll = self.catalog[call.collection]
        fid = call.path["featureId"]
        patch = parse_body(call.request.get_data())
        # If-Match checked now (412, 404); the store checks both under its lock, and
        # without If-Match finds the feature (404) there alone: no read before it
        expected = self._expected(call, coll, fid, must_exist=True) \
            if call.request.headers.get("If-Match") else None
        # read now: the patch is made under the store's lock, on the write's connection,
        # and a read there of its own would wait for one of the pool that patches of
        # this feature, waiting at the lock, may all hold
        schema = self.store.layer(coll.id), self.store.fields(coll.id)
        made = []

        def patched(current: dict):
            """The patch applied to the version the store locked for the write: without
            If-Match, another write that came in first is patched, not undone."""
            doc = merge_patch({"type": "Feature", "geometry": current["geometry"],
                               "properties": current["properties"]}, patch)
            record = self._record(call, coll, doc, fid, current, schema=schema)
            for name in current["properties"].keys() - record.properties.keys():
                record.properties[name] = None  # a null in the patch: the value goes
            made.append(record)
            return record

        written = self._write(call, coll, Change(
            "updated", fid, None, expected, call.identity.who,
            self._owner(coll, call.identity), patch=patched))
        return self._answer(call, coll, written, 200, made[-1])

    def delete(self, call: Call):
        from flask import Response

        coll = self.catalog[call.collection]
        fid = call.path["featureId"]
        expected = self._expected(call, coll, fid, must_exist=True)
        owner = self._owner(coll, call.identity)
        written = self._write(call, coll, Change(
            "deleted", fid, None, expected, call.identity.who, owner))
        if owner is not None and coll.history.personal and "scenario" not in call.query:
            # the data subject withdrew it: their personal data goes from every version
            self.store.erase(coll.id, coll.history.personal, fid=written.fid)
        self._after(call, coll, "deleted", written, 204, None)
        return Response(status=204)

    def history(self, call: Call):
        from flask import jsonify

        coll = self.catalog[call.collection]
        if coll.derived_from:
            raise NotFound(f"{coll.id} is read live from the sensors: it keeps no versions")
        fid = call.path["featureId"]
        owner = self._owner(coll, call.identity) if coll.editable else None
        versions = self.store.history(coll.id, fid)
        if not versions or (owner is not None and self.store.get(coll.id, fid, owner=owner)
                            is None):
            raise FeatureNotFound(f"no item {fid!r} in {coll.id}")
        writer = coll.editable is not None and call.identity is not None and bool(
            call.identity.roles & {*coll.editable.change, *coll.editable.delete})
        features = []
        for v in versions:
            feature = dict(v["feature"] or {"type": "Feature", "id": fid, "geometry": None,
                                            "properties": {}})
            props = dict(feature.get("properties") or {})
            props.update({"oup:version": v["version"], "oup:validFrom": _iso(v["valid_from"]),
                          "oup:validTo": _iso(v["valid_to"]), "oup:change": v["kind"]})
            if writer:  # who changed it is for those who may change it too
                props["oup:actor"] = v["actor"]
            feature["properties"] = props
            features.append(feature)
        resp = jsonify({"type": "FeatureCollection", "features": features,
                        "numberReturned": len(features)})
        resp.mimetype = "application/geo+json"
        return resp

    # -- parts ---------------------------------------------------------------------------
    def _record(self, call: Call, coll: Collection, doc: dict, fid: str | None = None,
                current: dict | None = None, creating: bool = False,
                schema: tuple | None = None):
        """The importer's record of the feature sent (``current``: the one it replaces;
        ``schema``: the layer's metadata and fields, if read already)."""
        mimetype = call.request.mimetype
        if mimetype not in call.endpoint.consumes:
            raise UnsupportedMediaType(f"send the feature as {' or '.join(
                filter(None, call.endpoint.consumes))}, not {mimetype}")
        crs = content_crs(call.request.headers.get("Content-Crs"))
        city = None
        if mimetype == CITY_JSON:
            doc, city, crs = *self._city(call, coll, doc, fid, current, creating), None
        props = doc.get("properties")
        author = _rules(coll).author_field
        if author and isinstance(props, dict):  # the server says who; a client cannot
            props.pop(author, None)
        meta, fields = schema or (self.store.layer(coll.id), self.store.fields(coll.id))
        record = feature_record(doc, fields, meta,
                                crs or meta["source_crs"], time_field=coll.time_field,
                                id_field=coll.id_field, fid=fid)
        if city is not None:
            record = CityRecord(record.geometry, record.geometry_crs84, record.properties, city)
        for name, values in _rules(coll).allowed.items():
            value = record.properties.get(name)
            if value is not None and value not in values:
                raise Unprocessable(f"{name} must be one of {', '.join(map(str, values))}, "
                                    f"got {value!r}", name)
        if author:
            record.properties[author] = (call.identity.who if fid is None or creating else
                                         (current or {}).get("properties", {}).get(author))
        return record

    def _city(self, call: Call, coll: Collection, doc, fid: str | None, current: dict | None,
              creating: bool) -> tuple[dict, dict]:
        """A CityJSONFeature written to a 3D collection: (its GeoJSON form, itself)."""
        if coll.tiles3d is None:
            raise UnsupportedMediaType(f"{coll.id} is not a 3D collection: send the feature "
                                       f"as GeoJSON (application/geo+json)")
        # the LoD the import takes the footprint and the heights from
        feature, city = city_record(doc, next((s.lod for s in coll.sources if s.lod), None))
        if fid is not None and not creating:  # the city object's id is the building's
            current = current or self._get(call, coll, fid)
            was = ((current or {}).get("properties") or {}).get("cityobject_id")
            now = feature["properties"]["cityobject_id"]
            if was is not None and str(was) != str(now):
                raise Unprocessable(f"feature {fid} is city object {was}; a CityJSONFeature "
                                    f"replacing it names that object, not {now}",
                                    "CityObjects")
        return feature, city

    def _expected(self, call: Call, coll: Collection, fid: str, must_exist: bool) -> str | None:
        """The version the change is made to: the current one, if ``If-Match`` (when
        sent) names it; None when there is none (and may be none)."""
        owner, sid = self._owner(coll, call.identity), call.query.get("scenario")
        current = None if owner is not None and self._get(call, coll, fid, owner) is None \
            else self.store.etag(coll.id, fid) if sid is None \
            else self.store.scenario_etag(coll.id, sid, fid)
        if current is None and must_exist:
            raise FeatureNotFound(f"no item {fid!r} in {coll.id}")
        match = call.request.if_match
        if call.request.headers.get("If-Match") and not (
                (match.star_tag and current is not None) or match.contains(current or "")):
            raise PreconditionFailed(f"If-Match: {fid} has changed since (its ETag is now "
                                     f"\"{current}\"); read it again", "If-Match")
        return current

    def _answer(self, call: Call, coll: Collection, written, status: int, record):
        from flask import jsonify

        kind = {201: "created"}.get(status) or ("updated" if call.request.method == "PATCH"
                                                else "replaced")
        self._after(call, coll, kind, written, status, record)
        resp = jsonify(written.after)
        resp.status_code = status
        resp.mimetype = "application/geo+json"
        resp.headers["ETag"] = f'"{written.etag}"'
        if status == 201:
            sid = call.query.get("scenario")
            resp.headers["Location"] = f"{self.base}/collections/{coll.id}/items/" \
                f"{written.fid}" + (f"?scenario={sid}" if sid else "")
        return resp

    def _after(self, call: Call, coll: Collection, kind: str, written, status: int,
               record) -> None:
        """After the commit: the audit, the change event, the tiles it touches."""
        personal, sid = set(coll.history.personal), call.query.get("scenario")
        self.audit.write(call.identity.who, coll.id, f"{call.request.method} "
                         f"{call.endpoint.path}", status, call.request_id or "",
                         id=written.fid, before=_public(written.before, personal),
                         after=_public(written.after, personal),
                         **({"scenario": sid} if sid else {}))
        if sid is not None:  # proposed, not made: the collection, its events and tiles stay
            change = proposed(self.catalog, self.store, sid, coll.id, written.fid)
            self.announce(scenario_event(coll.id, sid, kind, written.fid,
                                         change[0] if change else None))
            return
        self.announce(feature_event(coll.id, kind, written.fid, written.before, written.after,
                                    personal, bare=bool(coll.editable.own)))
        if self.tile_cache is not None:
            for box in {geojson_bounds((side or {}).get("geometry"))
                        for side in (written.before, written.after)} - {None}:
                self.tile_cache.drop_area(coll.id, list(box))
        if self.on_change is not None:
            self.on_change(coll, kind, written, record)
        self._prune(coll)

    def _prune(self, coll: Collection) -> None:
        """Keep the history to its declared retention (at most once a minute a
        collection, as its writes come)."""
        now = time.monotonic()
        if now - self._pruned.get(coll.id, -PRUNE_SECONDS) < PRUNE_SECONDS:
            return
        self._pruned[coll.id] = now
        h, today = coll.history, datetime.now(timezone.utc)
        if h.retention is None and not h.personal:
            return
        keep = today - duration(h.retention) if h.retention else None  # None: for ever
        try:
            self.store.prune_history(coll.id, keep, list(h.personal),
                                     today - duration(h.personal_retention))
        except Exception:  # the write stands; the next one prunes again
            LOG.exception("history of %s not pruned", coll.id)


_PROBLEMS = {code: {"$ref": f"#/components/responses/{code}"} for code in
             ("401", "403", "412", "415", "422")}


def _rules(coll: Collection) -> Editable:
    """How the collection takes writes (a collection written only through scenarios:
    the defaults)."""
    return coll.editable or _NO_RULES


_NO_RULES = Editable()


def owner_of(coll: Collection, identity) -> str | None:
    """A caller who may only touch what they created (a resident): their own name."""
    if not coll.editable.own or not identity.roles & set(coll.editable.own):
        return None
    others = {*coll.editable.create, *coll.editable.change, *coll.editable.delete}
    return None if identity.roles & (others - set(coll.editable.own)) else identity.who


def _public(feature: dict | None, personal: set[str]) -> dict | None:
    if feature is None:
        return None
    props = {k: v for k, v in (feature.get("properties") or {}).items() if k not in personal}
    return {**feature, "properties": props}


def duration(text: str) -> timedelta:
    """An ISO 8601 duration of years, months, weeks and days (P2Y, P30D), as days."""
    parts = {unit: int(n) for n, unit in re.findall(r"(\d+)([YMWD])", text)}
    return timedelta(days=365 * parts.get("Y", 0) + 30 * parts.get("M", 0)
                     + 7 * parts.get("W", 0) + parts.get("D", 0))


def _iso(value) -> str | None:
    return value if value is None or isinstance(value, str) else \
        value.isoformat().replace("+00:00", "Z")
