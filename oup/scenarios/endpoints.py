"""The HTTP face of scenarios: ``POST /scenarios`` makes one (201, ``Location``),
``GET /scenarios`` lists the caller's (and those shared with their roles),
``GET``/``DELETE /scenarios/{scenarioId}`` read or drop one, and
``/scenarios/{scenarioId}/changes`` lists what it proposes, for maps and viewers.

What a scenario proposes is written through the collections' own write path
(``oup.writes``, with ``?scenario={id}``), and read through their items
(``items?scenario={id}``); ``/map?scenario=`` and ``/viewer?scenario=`` show it next to
the city as it is. Every write is in the audit log.
"""
from __future__ import annotations

import json

from oup.errors import Forbidden, InvalidQuery, UnsupportedMediaType
from oup.http.routes import Call, Endpoint, Format, Param
from oup.scenarios import may_propose, readable, signed_in
from oup.scenarios.changes import proposed

JSON = (Format("json", "application/json"),)
GEOJSON = (Format("json", "application/geo+json"),)
TITLE_CHARS = 200
_PROBLEMS = {code: {"$ref": f"#/components/responses/{code}"} for code in ("401", "403")}
_INPUT = {code: {"$ref": f"#/components/responses/{code}"} for code in ("400", "415")}


class Scenarios:
    def __init__(self, catalog, store, base_url: str, audit):
        self.catalog, self.store, self.base, self.audit = catalog, store, \
            base_url.rstrip("/"), audit

    def endpoints(self) -> list[Endpoint]:
        sid = Param("scenarioId", "a scenario (see /scenarios)", where="path")
        common = dict(access=self._signed_in, responses=_PROBLEMS)
        return [
            Endpoint("/scenarios", "Make a scenario: a named set of proposed changes "
                     "layered over collections, never written into them", self.create,
                     "scenarios", "createScenario", methods=("POST",), formats=JSON,
                     consumes=("application/json",), **{**common, "responses": {
                         "201": {"description": "made; Location names it"}, **_PROBLEMS,
                         **_INPUT}},
                     description="The body: `title`, `collections` (the ones it proposes "
                                 "changes to) and `shared_with` (roles that may see it "
                                 "and write into it; default none). Changes go through "
                                 "the collections' write path with `?scenario={id}`."),
            Endpoint("/scenarios", "Your scenarios, and those shared with your roles",
                     self.list, "scenarios", "getScenarios", formats=JSON, **common),
            Endpoint("/scenarios/{scenarioId}", "A scenario", self.read, "scenarios",
                     "getScenario", params=(sid,), formats=JSON, **common),
            Endpoint("/scenarios/{scenarioId}", "Drop a scenario and what it proposes "
                     "(its owner only)", self.delete, "scenarios", "deleteScenario",
                     methods=("DELETE",), params=(sid,), **{**common, "responses": {
                         "204": {"description": "dropped"}, **_PROBLEMS}}),
            Endpoint("/scenarios/{scenarioId}/changes", "What a scenario proposes: a "
                     "feature per change, its oup:collection and oup:change (added, "
                     "changed, removed)", self.changes, "scenarios", "getScenarioChanges",
                     params=(sid,), formats=GEOJSON, **common,
                     description="A feature of a 3D collection also has `oup:base` and "
                                 "`oup:top`: the heights of its ground and its top above "
                                 "the ETRS89 ellipsoid (metres), as 3D viewers place it. "
                                 "One the collection has (changed or removed) has "
                                 "`oup:tileId`: its id in the collection's vector tiles, "
                                 "by which a map leaves it out."),
        ]

    @staticmethod
    def _signed_in(call: Call) -> None:
        signed_in(call.identity, "make and see scenarios")

    # -- the handlers ----------------------------------------------------------------------
    def create(self, call: Call):
        from flask import Response

        if call.request.mimetype != "application/json":
            raise UnsupportedMediaType(f"send the scenario as application/json, not "
                                       f"{call.request.mimetype or 'nothing'}")
        body = _object(call.request.get_data())
        title = body.get("title")
        if not isinstance(title, str) or not title.strip() or len(title) > TITLE_CHARS:
            raise InvalidQuery(f"title: a name for the scenario (1 to {TITLE_CHARS} "
                               f"characters)", "title")
        collections = _names(body.get("collections"), "collections", minimum=1)
        shared = _names(body.get("shared_with", []), "shared_with")
        for cid in collections:
            if cid not in call.visible:
                raise InvalidQuery(f"collections: no collection {cid!r}", "collections")
            coll = self.catalog[cid]
            if not coll.scenarios:
                raise InvalidQuery(f"collections: {cid} takes no scenarios (its catalogue "
                                   f"entry names no `scenarios` roles)", "collections")
            may_propose(coll, call.identity)
        made = self.store.create_scenario(title.strip(), call.identity.who, collections,
                                          shared)
        self.audit.write(call.identity.who, ",".join(collections), "POST /scenarios", 201,
                         call.request_id, scenario=made["id"], title=made["title"],
                         shared_with=shared)
        resp = Response(json.dumps(self._document(made)), status=201,
                        mimetype="application/json")
        resp.headers["Location"] = f"{self.base}/scenarios/{made['id']}"
        return resp

    def list(self, call: Call):
        found = self.store.scenarios(call.identity.who, call.identity.roles)
        return {"scenarios": [self._document(s) for s in found],
                "links": [{"rel": "self", "type": "application/json",
                           "href": f"{self.base}/scenarios"}]}

    def read(self, call: Call):
        return self._document(readable(self.store, call.identity, call.path["scenarioId"]))

    def delete(self, call: Call):
        from flask import Response

        found = readable(self.store, call.identity, call.path["scenarioId"])
        if found["owner"] != call.identity.who:
            raise Forbidden("only the scenario's owner may drop it")
        self.store.delete_scenario(found["id"])
        self.audit.write(call.identity.who, ",".join(found["collections"]),
                         "DELETE /scenarios/{scenarioId}", 204, call.request_id,
                         scenario=found["id"])
        return Response(status=204)

    def changes(self, call: Call):
        from flask import jsonify

        found = readable(self.store, call.identity, call.path["scenarioId"])
        features = [f for cid in found["collections"]
                    if cid in call.visible  # (not: shared with a role that may not see it)
                    for f in proposed(self.catalog, self.store, found["id"], cid)]
        resp = jsonify({"type": "FeatureCollection", "features": features,
                        "numberReturned": len(features)})
        resp.mimetype = "application/geo+json"
        return resp

    def _document(self, s: dict) -> dict:
        url = f"{self.base}/scenarios/{s['id']}"
        links = [{"rel": "self", "type": "application/json", "href": url},
                 {"rel": "related", "type": "application/geo+json", "title": "its changes",
                  "href": f"{url}/changes"},
                 {"rel": "alternate", "type": "text/html", "title": "on the map",
                  "href": f"{self.base}/map?scenario={s['id']}"},
                 {"rel": "alternate", "type": "text/html", "title": "in 3D",
                  "href": f"{self.base}/viewer?scenario={s['id']}"}]
        links += [{"rel": "items", "type": "application/geo+json",
                   "title": f"{cid} as the scenario has it",
                   "href": f"{self.base}/collections/{cid}/items?scenario={s['id']}"}
                  for cid in s["collections"]]
        return {**s, "links": links}


def _object(data: bytes) -> dict:
    from oup.writes.features import parse_body

    body = parse_body(data, "title, collections, shared_with")
    unknown = sorted(set(body) - {"title", "collections", "shared_with"})
    if unknown:
        raise InvalidQuery(f"a scenario has no {unknown[0]!r}; it takes title, collections "
                           f"and shared_with", unknown[0])
    return body


def _names(value, name: str, minimum: int = 0) -> list[str]:
    if not isinstance(value, list) or len(value) < minimum or not all(
            isinstance(v, str) and v for v in value):
        raise InvalidQuery(f"{name}: a list of names" + (" (at least one)" if minimum else ""),
                           name)
    return list(dict.fromkeys(value))
