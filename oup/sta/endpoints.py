"""SensorThings API 1.1 at ``/sta/v1.1``, over the sensors and their observations.

Reading: every entity set, entity, navigation path, property and ``$ref``, with the
query options in SQL (``oup.sta.service``, ``oup.store.sta_sql``). One stream collection
is served (the public one, if there is one); it must be visible to the caller: otherwise
every path and method here is a 404 before anything else is looked at, as its items are
(``Endpoint.shows``). The sensors of another stream collection are not here at all.

Creating observations (``POST Observations``, ``POST Datastreams(id)/Observations``,
``POST CreateObservations`` with data arrays) takes the MQTT reading's path: the
registry of the ingester decodes and checks the reading (known sensor, declared range)
and the observation store writes the batch (dedupe on datastream and phenomenon time,
corrections, dead letters with their reason, counters, the change event). Who may:
the roles the observations collection names in ``editable: {create: [...]}``.
Things, Datastreams and the rest are the catalogue's: a write to them is refused
with a problem that says so.
"""
from __future__ import annotations

import json
import time
from typing import Callable

from oup.catalog import Catalog
from oup.errors import BadRequest, Conflict, Forbidden, MethodNotAllowed, NotFound, Unauthorized, \
    Unavailable, UnsupportedMediaType
from oup.http.routes import Call, Endpoint, Format, Param
from oup.sensors.observations import DeadLetter, iso_us, sta_ingest_topic
from oup.sta.odata import QueryError, parse_path
from oup.sta.service import Entities, key_text
from oup.store.base import StoreBusy
from oup.store.sta_sql import BY_PLURAL, ENTITIES, SensorTable, StaSql

ROOT = "/sta/v1.1"
OPTIONS = ("$filter", "$expand", "$select", "$orderby", "$top", "$skip", "$count",
           "$resultFormat")
JSON = (Format("json", "application/json"),)
CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
    # observations read ($resultFormat=dataArray) and created (CreateObservations) as arrays
    "http://www.opengis.net/spec/iot_sensing/1.1/req/data-array/data-array",
]
# (not claimed, as they hold only in part: create-update-delete, as only observations are
# created; the MQTT classes, as sensors send below ingest/ and only observations are
# told. serverSettings says what there is.)
KEPT = ("phenomenonTime", "result", "resultTime")
INGESTER = "sta-http"  # the counters' name for observations created over HTTP
def _problems(*codes: str) -> dict:
    return {c: {"$ref": f"#/components/responses/{c}"} for c in codes}


READ = _problems("400")
CREATE = _problems("400", "401", "403", "409", "415", "503")
# a property's $value is text
ANY = {"200": {"description": "the entity, the entities or a property", "content": {
    "application/json": {"schema": {"type": "object"}},
    "text/plain": {"schema": {"type": "string"}}}}}


class SensorThings:
    def __init__(self, catalog: Catalog, store, base_url: str, observations: Callable,
                 registry: Callable):
        """``observations()``: the observation store; ``registry()``: the ingester's sensor
        registry (decode and check a reading as an MQTT one is)."""
        self.catalog, self.store = catalog, store
        self.base = base_url.rstrip("/")
        self.observations, self.registry = observations, registry
        streams = [c for c in catalog if c.stream]
        # one stream collection is served: the public one if there is one (a restricted
        # one that sorts first must neither take the service from it nor be shown with it)
        self.sensors = next((c for c in streams if c.id in catalog.public),
                            streams[0] if streams else None)
        self.kept = next((c for c in catalog if self.sensors is not None
                          and c.observations_of == self.sensors.id), None)
        self._entities: Entities | None = None

    @property
    def entities(self) -> Entities:
        if self._entities is None:
            c = self.sensors
            fields = [(f.name, f.type) for f in self.store.fields(c.id)]
            skip = {c.id_field, c.title_field, c.stream.property_field}
            table = SensorTable(c.id, c.id_field, c.title_field, c.stream.property_field,
                                dict(c.stream.properties),
                                tuple(f for f in fields if f[0] not in skip))
            self._entities = Entities(StaSql(self.store, table, self.base), self.base + ROOT)
        return self._entities

    # -- the declarations -------------------------------------------------------------------
    def endpoints(self) -> list[Endpoint]:
        if self.sensors is None:
            return []
        opts = tuple(Param(o, f"SensorThings query option {o}") for o in OPTIONS)
        ident = Param("id", "the entity's id: a number, or a 'quoted string'", where="path")
        common = dict(tag="sensorthings", formats=JSON, shows=self.sensors.id)
        out = [Endpoint(ROOT, "The SensorThings service root: entity sets and the "
                        "conformance classes implemented", self.root, operation="staRoot",
                        **common)]
        for e in BY_PLURAL.values():
            out.append(Endpoint(f"{ROOT}/{e.plural}", f"The {e.plural} (query options in "
                                "SQL)", self.read, operation=f"sta{e.plural}", params=opts,
                                responses=READ, **common))
            out.append(Endpoint(f"{ROOT}/{e.plural}({{id}})", f"One {e.name}", self.read,
                                operation=f"sta{e.name}", params=(ident, *opts),
                                responses=READ, **common))
            if e.name == "Observation":
                out.append(Endpoint(f"{ROOT}/Observations", "Create an observation (it takes "
                                    "the path of an MQTT reading)", self.create,
                                    operation="staCreateObservation", methods=("POST",),
                                    consumes=("application/json", ""), responses={
                                        "201": {"description": "created; Location names it"},
                                        **CREATE}, **common))
            else:
                out.append(Endpoint(f"{ROOT}/{e.plural}", f"{e.plural} come from the catalogue",
                                    self.catalogue_only, operation=f"sta{e.plural}Create",
                                    methods=("POST",), responses=_problems("405"),
                                    **common))
            out.append(Endpoint(f"{ROOT}/{e.plural}({{id}})", "Entities are changed through "
                                "the catalogue", self.catalogue_only,
                                operation=f"sta{e.name}Change",
                                methods=("PATCH", "PUT", "DELETE"), params=(ident,),
                                responses=_problems("405"), **common))
        out += [
            Endpoint(f"{ROOT}/Datastreams({{id}})/Observations", "The observations of a "
                     "datastream", self.read, operation="staDatastreamObservations",
                     params=(ident, *opts), responses=READ, **common),
            Endpoint(f"{ROOT}/Datastreams({{id}})/Observations", "Create an observation of "
                     "this datastream", self.create, operation="staCreateDatastreamObservation",
                     methods=("POST",), params=(ident,), consumes=("application/json", ""),
                     responses={"201": {"description": "created"}, **CREATE}, **common),
            Endpoint(f"{ROOT}/CreateObservations", "Create observations from data arrays "
                     "(the Data Array extension); answers their links, or 'error'",
                     self.create_many, operation="staCreateObservations", methods=("POST",),
                     consumes=("application/json", ""),
                     responses={"201": {"description": "created"}, **CREATE}, **common),
            Endpoint(f"{ROOT}/{{path}}", "Navigation (Things('x')/Datastreams), a property "
                     "(.../name, .../name/$value) or references ($ref)", self.read,
                     operation="staPath", params=(Param("path", "the resource path",
                                                        where="path", spans=True), *opts),
                     responses={**ANY, **READ}, **common),
        ]
        return out

    # -- reading --------------------------------------------------------------------------
    def root(self, call: Call):
        root = self.base + ROOT
        settings = {"conformance": CONFORMANCE, "oup": {
            "createObservations": {
                "paths": [f"{root}/Observations", f"{root}/Datastreams(id)/Observations",
                          f"{root}/CreateObservations (data arrays)"],
                "roles": sorted(self.kept.editable.create)
                if self.kept and self.kept.editable else []},
            "mqtt": {"notifications": "v1.1/Datastreams(id)/Observations",
                     "ingest": sta_ingest_topic("id").replace("'id'", "id")}}}
        return _json({"value": [{"name": e.plural, "url": f"{root}/{e.plural}"}
                                for e in BY_PLURAL.values()], "serverSettings": settings})

    def read(self, call: Call):
        path = call.request.path[len(ROOT) + 1:]
        raw = {k: v for k, v in call.query.items() if k in OPTIONS}
        doc = self.entities.answer(path, raw, self.base + call.request.path)
        if isinstance(doc, str):
            from flask import Response

            return Response(doc, content_type="text/plain; charset=utf-8")
        return _json(doc)

    def catalogue_only(self, call: Call):
        raise MethodNotAllowed(
            f"{call.request.method} {call.request.path}: Things, Locations, Datastreams, "
            "Sensors, ObservedProperties and FeaturesOfInterest are the sensors of the "
            f"catalogue (collections/{self.sensors.id}/); change them there and run `oup "
            "import`. Here only observations are created (POST Observations).",
            ["GET", "HEAD"])

    # -- creating -------------------------------------------------------------------------
    def _may_create(self, call: Call) -> None:
        identity = call.identity
        if identity is None or not identity.authenticated:
            raise Unauthorized("sign in to create observations (Authorization: Bearer "
                               "<token>, or X-API-Key: <key>)")
        roles = set(self.kept.editable.create) if self.kept and self.kept.editable else set()
        if not identity.roles & roles:
            raise Forbidden("your roles may not create observations; that takes one of "
                            f"{', '.join(sorted(roles)) or 'no role (none is declared)'}")

    def _body(self, call: Call):
        if call.request.mimetype not in ("application/json", ""):
            raise UnsupportedMediaType(f"send JSON, not {call.request.mimetype}")
        try:
            return json.loads(call.request.get_data() or b"null")
        except (ValueError, RecursionError) as exc:  # (nested a thousand deep: not JSON here)
            raise BadRequest(f"the body is not JSON: {str(exc)[:120]}") from None

    def _datastream(self, ref, where: str) -> str:
        if not isinstance(ref, dict) or "@iot.id" not in ref:
            raise BadRequest(f"{where} must be {{\"@iot.id\": <datastream id>}}", "Datastream")
        key = ref["@iot.id"]
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            raise BadRequest(f"{where}: @iot.id must be a string or a number", "Datastream")
        return str(key)

    def _known(self, datastreams: list[str]) -> None:
        """404 for the first datastream that is not there (one statement for all)."""
        found = self.entities.existing(ENTITIES["Datastream"], list(dict.fromkeys(datastreams)))
        for d in datastreams:
            if d not in found:
                raise NotFound(f"no Datastream {key_text(d)}")

    def _reading(self, doc: dict, datastream: str) -> tuple[str, str, dict]:
        """A reading as the MQTT message of the SensorThings format that would carry it:
        (its topic, the datastream, the payload's document)."""
        foi = doc.get("FeatureOfInterest")
        if foi is not None and (not isinstance(foi, dict) or str(foi.get("@iot.id"))
                                != datastream):
            raise BadRequest("FeatureOfInterest: an observation's feature is its sensor's "
                             f"(@iot.id {datastream!r}); leave it out", "FeatureOfInterest")
        reading = {k: doc[k] for k in KEPT if k in doc}
        if "phenomenonTime" not in reading:  # (SensorThings: the time it arrives)
            reading["phenomenonTime"] = iso_us(time.time_ns() // 1000)
        return sta_ingest_topic(datastream), datastream, reading

    def _write(self, messages: list[tuple[str, str, dict]]):
        """Check and store the readings in one batch, as the ingester does (parsed once:
        the body's JSON is not written and read again); for each: its observation's
        (sensor, time), or the reason it was not stored; and the batch's result (the new
        observations' ids, the repeats)."""
        registry = self.registry()
        decoded = [registry.decode_reading(*m) for m in messages]
        sensors = {o.sensor_id for m in decoded if isinstance(m, list) for o in m}
        try:
            res = self.observations().write_batch(INGESTER, decoded, registry.tables(sensors))
        except StoreBusy:
            raise Unavailable("the observation store is busy; send again",
                              headers={"Retry-After": "1"}) from None
        return [m.reason if isinstance(m, DeadLetter) else (m[0].sensor_id, m[0].phenomenon_time)
                for m in decoded], res

    def _ids(self, keys: list[tuple[str, int]]) -> dict:
        """The ids of stored observations (repeats, corrections) by (sensor, time)."""
        if not keys:
            return {}
        where = " OR ".join("(sensor_id = ? AND phenomenon_time = ?)" for _ in keys)
        rows = self.store.execute(f"SELECT sensor_id, phenomenon_time, id FROM "
                                  f"oup_observations WHERE {where}", [v for k in keys for v in k])
        return {(s, t): i for s, t, i in rows}

    def create(self, call: Call):
        self._may_create(call)
        doc = self._body(call)
        if not isinstance(doc, dict):
            raise BadRequest("send one Observation as a JSON object")
        unknown = set(doc) - {*KEPT, "Datastream", "FeatureOfInterest"}
        if unknown:
            raise BadRequest(f"unknown or unkept Observation properties: "
                             f"{', '.join(sorted(unknown))}; an observation here has "
                             f"{', '.join(KEPT)} and its Datastream", sorted(unknown)[0])
        if "id" in call.path:
            datastream = self._datastream({"@iot.id": _key(call.path["id"])}, "the path")
        else:
            datastream = self._datastream(doc.get("Datastream"), "Datastream")
        self._known([datastream])
        if "result" not in doc:
            raise BadRequest("result is required", "result")
        outcomes, res = self._write([self._reading(doc, datastream)])
        outcome = outcomes[0]
        if isinstance(outcome, str):
            raise BadRequest(f"not stored (kept as a dead letter): {outcome}")
        if res.duplicates:  # the store kept the earlier one
            raise Conflict(f"Datastream {key_text(datastream)} has an observation at "
                           f"{iso_us(outcome[1])} already (send a newer resultTime to "
                           "correct it)")
        # new, or a correction (a newer resultTime): the observation it replaced answers
        oid = res.ids.get(outcome) or self._ids([outcome])[outcome]
        link = f"{self.base}{ROOT}/Observations({oid})"
        body = self.entities.answer(f"Observations({oid})", {}, link)
        resp = _json(body, 201 if outcome in res.ids else 200)
        resp.headers["Location"] = link
        return resp

    def create_many(self, call: Call):
        self._may_create(call)
        doc = self._body(call)
        if not isinstance(doc, list):
            raise BadRequest("send a JSON array of {Datastream, components, dataArray}")
        messages, datastreams = [], []
        for i, group in enumerate(doc):
            where = f"item {i}"
            if not isinstance(group, dict):
                raise BadRequest(f"{where} is not an object")
            datastream = self._datastream(group.get("Datastream"), f"{where}: Datastream")
            datastreams.append(datastream)
            components = group.get("components")
            if not isinstance(components, list) or "result" not in components:
                raise BadRequest(f"{where}: components must list at least result "
                                 f"(and phenomenonTime, resultTime)", "components")
            extra = [c for c in components if c not in (*KEPT, "FeatureOfInterest/id")]
            if extra:
                raise BadRequest(f"{where}: unknown components {', '.join(map(str, extra))}; "
                                 f"take {', '.join(KEPT)}", "components")
            rows = group.get("dataArray")
            if not isinstance(rows, list):
                raise BadRequest(f"{where}: dataArray must be an array", "dataArray")
            for j, row in enumerate(rows):
                if not isinstance(row, list) or len(row) != len(components):
                    raise BadRequest(f"{where}: dataArray[{j}] must hold {len(components)} "
                                     "values, one per component", "dataArray")
                reading = dict(zip(components, row))
                foi = reading.pop("FeatureOfInterest/id", None)
                if foi is not None:
                    reading["FeatureOfInterest"] = {"@iot.id": foi}
                messages.append(self._reading(reading, datastream))
        self._known(datastreams)
        outcomes, res = self._write(messages)
        # (a repeat or a correction of a stored reading answers the stored one's link)
        ids = {**self._ids([o for o in outcomes if isinstance(o, tuple) and o not in res.ids]),
               **res.ids}
        links = [f"{self.base}{ROOT}/Observations({ids[o]})"
                 if isinstance(o, tuple) and o in ids else "error" for o in outcomes]
        return _json(links, 201)


def _key(text: str):
    try:
        return parse_path(f"Datastreams({text})")[0][0].key
    except QueryError:
        raise NotFound(f"no Datastream {text}") from None


def _json(doc, status: int = 200):
    from flask import Response

    return Response(json.dumps(doc), status=status, content_type="application/json")

