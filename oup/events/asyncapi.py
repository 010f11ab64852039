"""``/asyncapi``: the AsyncAPI 3.0 document of the change events, derived from the catalogue.

As the OpenAPI document is for requests, this one is for events: where they come from
(the SSE paths of this server, the MQTT broker and its WebSocket listener), a channel per
collection the caller may see, and message schemas that carry the collection's own
property types. Only public collections have MQTT channels: nothing else goes there.
Discovery follows the OGC API - Publish-Subscribe draft as pygeoapi implements it: the
landing page links here (``service-desc``) and to the broker (``hub``).
"""
from __future__ import annotations

from urllib.parse import urlsplit

import yaml

from oup import VERSION
from oup.catalog import Catalog
from oup.http.routes import Call, Endpoint, Format
from oup.events import (CATALOGUE_TYPES, COLLECTION_IMPORTED, EVENTS_MISSED, FEATURE_TYPES,
                        MQTT_PREFIX, OBSERVATIONS_CORRECTED, OBSERVATIONS_STORED,
                        SCENARIO_CHANGED, SCENARIO_TYPES, SPEC_VERSION, TILES3D_UPDATED,
                        TOPIC_KINDS, TYPES)

MEDIA_TYPE = "application/asyncapi+json"
YAML_TYPE = "application/asyncapi+yaml"
CONFORMANCE = [
    "https://www.opengis.net/spec/ogcapi-pubsub-1/1.0/conf/message-payload-cloudevents-json",
    "https://www.opengis.net/spec/ogcapi-pubsub-1/1.0/conf/discovery",
]
_JSON_TYPES = {"string": {"type": ["string", "null"]},
               "number": {"type": ["number", "null"]},
               "integer": {"type": ["integer", "null"]},
               "boolean": {"type": ["boolean", "null"]},
               "date-time": {"type": ["string", "null"], "format": "date-time"}}
_KINDS = sorted(set(TOPIC_KINDS.values()))


def public_broker(url: str) -> str:
    """A broker URL as subscribers may be shown it: without credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"


def _host(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path or "/"


def _cloudevent(name: str, types: list[str], data: dict) -> dict:
    """A message: a CloudEvents 1.0 JSON event (structured mode) with this ``data``."""
    return {"name": name, "title": name, "contentType": "application/cloudevents+json",
            "summary": "; ".join(f"{t}: {TYPES.get(t) or SCENARIO_TYPES[t]}" for t in types),
            "payload": {"type": "object",
                        "required": ["specversion", "id", "type", "source", "subject", "time",
                                     "data"],
                        "properties": {
                            "specversion": {"const": SPEC_VERSION},
                            "id": {"type": "string", "description": "the event's number: "
                                   "grows in commit order; give it back as Last-Event-ID"},
                            "type": {"enum": types},
                            "source": {"type": "string", "format": "uri"},
                            "subject": {"type": "string"},
                            "time": {"type": "string", "format": "date-time"},
                            "datacontenttype": {"const": "application/json"},
                            "data": data}}}


def _observations_data(cid: str, fields: list) -> dict:
    props = {f.name: dict(_JSON_TYPES.get(f.type, {})) for f in fields}
    props.setdefault("latest_time", _JSON_TYPES["date-time"])
    props.setdefault("latest_result", _JSON_TYPES["number"])
    return {"type": "object", "properties": {
        "collection": {"const": cid}, "id": {"type": "string", "description": "the sensor"},
        "properties": {"type": "object", "description": f"the changed properties of the "
                       f"sensor, as {cid}'s items have them", "properties": props},
        "observations": {"type": "object", "properties": {
            "stored": {"type": "integer"}, "corrected": {"type": "integer"}}},
        "new": {"type": "array", "description": "the new observations (SensorThings "
                "Observations without their links)", "items": _STA_OBSERVATION}}}


def _features_data(coll, fields: list) -> dict:
    """A write's event: the id and the properties it changed, as the items have them (no
    personal data); only the id for a collection whose writers see only their own."""
    data = {"collection": {"const": coll.id},
            "id": {"type": ["string", "integer"], "description": "the feature's id"}}
    if not coll.editable.own:
        personal = set(coll.history.personal)
        data["properties"] = {
            "type": "object", "description": "the properties the write changed (all of "
            "them for a new feature); absent for a deletion",
            "properties": {f.name: dict(_JSON_TYPES.get(f.type, {})) for f in fields
                           if f.name not in personal}}
        data["removed"] = {"type": "array", "items": {"type": "string"},
                           "description": "the properties the write took away"}
    return {"type": "object", "required": ["collection", "id"], "properties": data}


_TILES3D = {"type": "object", "required": ["collection", "rewritten", "removed"], "properties": {
    "collection": {"type": "string"},
    "rewritten": {"type": "array", "items": {"type": "string", "format": "uri-reference"},
                  "description": "the tiles made again (content URIs): read them anew"},
    "removed": {"type": "array", "items": {"type": "string", "format": "uri-reference"},
                "description": "the tiles taken out of the tileset"}}}
_SCENARIO = {"type": "object", "required": ["scenario", "collection", "id", "kind", "feature"],
             "properties": {
                 "scenario": {"type": "string"}, "collection": {"type": "string"},
                 "id": {"type": ["string", "integer"]},
                 "kind": {"enum": sorted(FEATURE_TYPES)},
                 "feature": {"type": ["object", "null"], "description": "the feature as "
                             "/scenarios/{id}/changes has it now (oup:change, oup:tileId); "
                             "null: the scenario leaves it as the city has it"}}}


_STA_OBSERVATION = {"type": "object", "required": ["@iot.id", "phenomenonTime", "result"],
                    "properties": {"@iot.id": {"type": "integer"},
                                   "@iot.selfLink": {"type": "string", "format": "uri"},
                                   "phenomenonTime": {"type": "string", "format": "date-time"},
                                   "resultTime": {"type": ["string", "null"],
                                                  "format": "date-time"},
                                   "result": {"type": "number"}}}
_IMPORTED = {"type": "object", "properties": {
    "collection": {"type": "string"}, "version": {"type": "string", "format": "date-time"},
    "features": {"type": "integer"}, "notes": {"type": "array", "items": {"type": "string"}}}}
_CATALOGUE = {"type": "object", "properties": {
    "collection": {"type": "string"}, "title": {"type": "string"},
    "classification": {"enum": ["public", "internal", "restricted"]},
    "before": {"type": "object"}}}


def document(catalog: Catalog, fields_of, visible: set[str], base_url: str, mqtt_url: str,
             ws_url: str | None) -> dict:
    """The document for a caller who sees ``visible``; ``fields_of(cid)`` lists the
    fields (name, type) of an imported collection (empty if not imported)."""
    public = catalog.public
    scheme, host, path = _host(base_url)
    servers = {"sse": {"host": host, "protocol": scheme, "pathname": path,
                       "title": "Server-Sent Events of this API",
                       "description": "GET /events (everything the caller may see) and GET "
                       "/collections/{id}/events; the same credentials as the rest of the "
                       "API. Resume with the Last-Event-ID header (or ?after=); filter with "
                       "?sensor=, ?type=, ?filter= (CQL2 over the event's properties)."}}
    mqtt_scheme, mqtt_host, _ = _host(mqtt_url)
    servers["mqtt"] = {"host": mqtt_host, "protocol": mqtt_scheme, "title": "MQTT broker",
                       "description": "events of public collections, QoS 1; anyone may "
                       "subscribe, nobody but OUP may publish there"}
    if ws_url:
        ws_scheme, ws_host, ws_path = _host(ws_url)
        servers["mqtt-ws"] = {"host": ws_host, "protocol": ws_scheme, "pathname": ws_path,
                              "title": "MQTT over WebSocket (browsers)",
                              "description": servers["mqtt"]["description"]}
    channels, operations, messages = {}, {}, {}
    messages["collection-imported"] = _cloudevent("collection-imported",
                                                  [COLLECTION_IMPORTED], _IMPORTED)
    messages["catalogue-changed"] = _cloudevent("catalogue-changed", list(CATALOGUE_TYPES),
                                                _CATALOGUE)
    messages["events-missed"] = {
        "name": "events-missed", "title": f"SSE only: {EVENTS_MISSED}",
        "summary": f"Sent first, as Server-Sent Event type {EVENTS_MISSED} (no id), to a "
                   "stream resuming from further back than the log keeps: the events "
                   "after `after` and before `first` have expired; read the items again.",
        "contentType": "application/json",
        "payload": {"type": "object", "required": ["after", "first"], "properties": {
            "after": {"type": "integer"}, "first": {"type": "integer"},
            "detail": {"type": "string"}}}}
    missed = {"events-missed": {"$ref": "#/components/messages/events-missed"}}
    shown = [c for c in catalog if c.id in visible]
    for coll in shown:
        refs = {"collection-imported": {"$ref": "#/components/messages/collection-imported"},
                "catalogue-changed": {"$ref": "#/components/messages/catalogue-changed"}}
        if coll.stream:
            name = f"{coll.id}-observations"
            messages[name] = _cloudevent(name, [OBSERVATIONS_STORED, OBSERVATIONS_CORRECTED],
                                         _observations_data(coll.id, fields_of(coll.id)))
            refs[name] = {"$ref": f"#/components/messages/{name}"}
        if coll.editable and not coll.stream:  # (a stream's writes are observations)
            name = f"{coll.id}-features"
            messages[name] = _cloudevent(name, list(FEATURE_TYPES.values()),
                                         _features_data(coll, fields_of(coll.id)))
            refs[name] = {"$ref": f"#/components/messages/{name}"}
        if coll.tiles3d and coll.editable:  # 3D Tiles follow writes only
            name = f"{coll.id}-tiles3d"
            messages[name] = _cloudevent(name, [TILES3D_UPDATED], _TILES3D)
            refs[name] = {"$ref": f"#/components/messages/{name}"}
        channels[f"{coll.id}-sse"] = {
            "address": f"/collections/{coll.id}/events", "title": f"{coll.title}: events",
            "description": f"Server-Sent Events of {coll.id} ({coll.classification.value})",
            "servers": [{"$ref": "#/servers/sse"}], "messages": refs | missed}
        operations[f"receive-{coll.id}-sse"] = _receive(f"{coll.id}-sse", refs | missed)
        if coll.id in public:
            mqtt_servers = [{"$ref": f"#/servers/{s}"} for s in ("mqtt", "mqtt-ws")
                            if s in servers]
            channels[f"{coll.id}-mqtt"] = {
                "address": f"{MQTT_PREFIX}/{coll.id}/{{kind}}",
                "title": f"{coll.title}: events on MQTT",
                "parameters": {"kind": {"enum": _KINDS, "description":
                                        "observations, versions (imports), catalogue, "
                                        "features (writes) or tiles3d"}},
                "servers": mqtt_servers, "messages": refs}
            operations[f"receive-{coll.id}-mqtt"] = dict(
                _receive(f"{coll.id}-mqtt", refs),
                bindings={"mqtt": {"qos": 1, "bindingVersion": "0.2.0"}})
    everything = {n: {"$ref": f"#/components/messages/{n}"} for n in messages}
    channels["all-sse"] = {"address": "/events", "title": "All events the caller may see",
                           "servers": [{"$ref": "#/servers/sse"}], "messages": everything}
    operations["receive-all-sse"] = _receive("all-sse", everything)
    # a scenario's own stream: its writes only, for its owner and those it is shared with
    messages["scenario-changed"] = _cloudevent("scenario-changed", [SCENARIO_CHANGED],
                                               _SCENARIO)
    scenario = {"scenario-changed": {"$ref": "#/components/messages/scenario-changed"}}
    channels["scenario-sse"] = {
        "address": "/scenarios/{scenarioId}/events", "title": "A scenario's changes",
        "description": "Server-Sent Events of the writes into one scenario, for its owner "
                       "and the roles it is shared with (401 anonymous, 404 for anyone "
                       "else); never on /events, a collection's stream or MQTT",
        "parameters": {"scenarioId": {"description": "the scenario's id (POST /scenarios)"}},
        "servers": [{"$ref": "#/servers/sse"}], "messages": scenario | missed}
    operations["receive-scenario-sse"] = _receive("scenario-sse", scenario | missed)
    for coll in shown:
        if coll.stream and coll.id in public:  # SensorThings 1.1 over MQTT (oup.sta)
            messages["sta-observation"] = {
                "name": "sta-observation", "title": "A new SensorThings Observation",
                "summary": "Each new observation of the datastream, once, after its commit, "
                           "however it came (MQTT or HTTP); sensors send readings to "
                           "ingest/v1.1/Datastreams('{id}')/Observations, never here.",
                "contentType": "application/json", "payload": _STA_OBSERVATION}
            ref = {"sta-observation": {"$ref": "#/components/messages/sta-observation"}}
            channels[f"{coll.id}-sta"] = {
                "address": "v1.1/Datastreams('{datastreamId}')/Observations",
                "title": f"{coll.title}: SensorThings observations",
                "parameters": {"datastreamId": {"description": "the sensor's id (the "
                                                "Datastream's @iot.id)"}},
                "servers": [{"$ref": f"#/servers/{s}"} for s in ("mqtt", "mqtt-ws")
                            if s in servers], "messages": ref}
            operations[f"receive-{coll.id}-sta"] = dict(
                _receive(f"{coll.id}-sta", ref),
                bindings={"mqtt": {"qos": 1, "bindingVersion": "0.2.0"}})
    return {"asyncapi": "3.0.0", "id": f"{base_url}/asyncapi",
            "info": {"title": "OUP change events", "version": VERSION,
                     "description": "Every change to published data, told after the commit "
                     "that made it: observations stored or corrected, features written "
                     "through the API, 3D tiles made again after a write, collections "
                     "re-imported, added or removed; and a scenario's writes on its own "
                     "stream. CloudEvents 1.0 (JSON, structured "
                     "mode); event ids grow in commit order; events are kept for a while "
                     "so a subscriber that reconnects with the last id it saw misses "
                     "nothing.",
                     "externalDocs": {"url": f"{base_url}/openapi?f=html"}},
            "defaultContentType": "application/cloudevents+json",
            "servers": servers, "channels": channels, "operations": operations,
            "components": {"messages": messages}}


def _receive(channel: str, refs: dict) -> dict:
    return {"action": "receive", "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{n}"} for n in refs]}


def endpoints(catalog: Catalog, fields_of, base_url: str, mqtt_url: str,
              ws_url: str | None) -> list[Endpoint]:
    """``/asyncapi``, in JSON or YAML."""
    def serve(call: Call):
        from flask import Response

        doc = document(catalog, fields_of, call.visible, base_url, mqtt_url, ws_url)
        body, media_type = render(doc, call.format.key == "yaml")
        return Response(body, content_type=media_type)

    return [Endpoint("/asyncapi", "The AsyncAPI 3.0 document of the change events", serve,
                     "events", "getAsyncAPI", formats=(
                         Format("json", MEDIA_TYPE, ("application/json",)),
                         Format("yaml", YAML_TYPE, ("application/yaml", "text/yaml"))))]


def render(doc: dict, as_yaml: bool) -> tuple[str, str]:
    """(body, content type)."""
    if as_yaml:
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), YAML_TYPE
    import json

    return json.dumps(doc), MEDIA_TYPE


def landing_links(doc: dict, base_url: str, mqtt_url: str) -> dict:
    doc.setdefault("links", []).extend([
        {"rel": "service-desc", "type": MEDIA_TYPE, "title": "The AsyncAPI definition of "
         "the change events (JSON)", "href": f"{base_url}/asyncapi?f=json"},
        {"rel": "hub", "type": "application/json", "title": "Pub/Sub broker (events of "
         "public collections)", "href": mqtt_url, "channel": MQTT_PREFIX},
        {"rel": "alternate", "type": "text/event-stream", "title": "All change events "
         "(Server-Sent Events)", "href": f"{base_url}/events"}])
    return doc


def collection_links(doc: dict, base_url: str, mqtt_url: str, public: set[str],
                     published: set[str]) -> dict:
    """Each collection of the catalogue (``published``) in a /collections or
    /collections/{id} document links its events (the Records catalogue has none)."""
    for coll in doc.get("collections", [doc]):
        cid = coll.get("id")
        if cid not in published:
            continue
        links = coll.setdefault("links", [])
        links.append({"rel": "alternate", "type": "text/event-stream",
                      "title": "Change events (Server-Sent Events)",
                      "href": f"{base_url}/collections/{cid}/events"})
        links.append({"rel": "service-desc", "type": MEDIA_TYPE,
                      "title": "The AsyncAPI definition of the change events",
                      "href": f"{base_url}/asyncapi?f=json"})
        if cid in public:
            links.append({"rel": "hub", "type": "application/json",
                          "title": "Pub/Sub broker", "href": mqtt_url,
                          "channel": f"{MQTT_PREFIX}/{cid}"})
    return doc
