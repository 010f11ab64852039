"""SensorThings entities as SQL over the sensors' table and ``oup_observations``, no copy.

The mapping: a sensor (a row of the stream collection) is a Thing, its Location, its one
HistoricalLocation, its Datastream, its Sensor and its FeatureOfInterest, all with the
sensor's id; its observed property is an ObservedProperty (id: the property's name);
its readings are Observations (id: the row id). So every link between two entities of a
sensor keeps the sensor id, and a ``$filter`` path such as ``Datastream/Thing/name`` from
an Observation is a column of the sensor row joined to it (alias ``s``), and the
observed property's fields are a ``CASE`` on the sensor's property field.

``$filter`` and ``$orderby`` trees compile to SQL in ``sta_filter.py``; paging, counts
and the per-parent limits of ``$expand`` are SQL here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from oup.store.base import Query
from oup.store.cql import quote
from oup.store.sta_filter import Dialect, FilterCompiler, bad

OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
GEOJSON = "application/geo+json"
@dataclass(frozen=True)
class SensorTable:
    """The stream collection behind the service, as the catalogue declares it."""

    collection: str
    id_field: str
    title_field: str | None
    property_field: str
    properties: dict  # name -> ObservedProperty (title, unit, min, max)
    extra: tuple[tuple[str, str], ...] = ()  # other fields (name, type): a Thing's properties


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Prop:
    sql: str
    type: str  # number | string | time | geometry | bool


@dataclass(frozen=True)
class Entity:
    name: str
    plural: str
    kind: str  # sensor | observation | property
    links: dict  # navigation property -> (entity name, to many)


ENTITIES = {e.name: e for e in (
    Entity("Thing", "Things", "sensor", {"Datastreams": ("Datastream", True),
                                         "Locations": ("Location", True),
                                         "HistoricalLocations": ("HistoricalLocation", True)}),
    Entity("Location", "Locations", "sensor", {"Things": ("Thing", True),
                                               "HistoricalLocations": ("HistoricalLocation",
                                                                       True)}),
    Entity("HistoricalLocation", "HistoricalLocations", "sensor",
           {"Thing": ("Thing", False), "Locations": ("Location", True)}),
    Entity("Datastream", "Datastreams", "sensor",
           {"Thing": ("Thing", False), "Sensor": ("Sensor", False),
            "ObservedProperty": ("ObservedProperty", False),
            "Observations": ("Observation", True)}),
    Entity("Sensor", "Sensors", "sensor", {"Datastreams": ("Datastream", True)}),
    Entity("ObservedProperty", "ObservedProperties", "property",
           {"Datastreams": ("Datastream", True)}),
    Entity("Observation", "Observations", "observation",
           {"Datastream": ("Datastream", False),
            "FeatureOfInterest": ("FeatureOfInterest", False)}),
    Entity("FeatureOfInterest", "FeaturesOfInterest", "sensor",
           {"Observations": ("Observation", True)}),
)}
BY_PLURAL = {e.plural: e for e in ENTITIES.values()}


@dataclass
class Select:
    """One statement's parts: FROM, WHERE (with parameters), ORDER BY."""

    entity: Entity
    where: list[str] = field(default_factory=list)
    params: list = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    order_params: list = field(default_factory=list)


class StaSql(FilterCompiler):
    """The entities' SQL for one store (``execute`` with ``?``; ``dialect``)."""

    def __init__(self, store, table: SensorTable, base_url: str):
        self.store, self.t, self.base = store, table, base_url.rstrip("/")
        self.dialect = Dialect(getattr(store, "SQL_DIALECT", "sqlite"))
        t = table
        self.I = f"s.{quote(t.id_field)}"
        self.N = f"COALESCE(CAST(s.{quote(t.title_field)} AS TEXT), {self.I})" \
            if t.title_field else self.I
        self.P = f"s.{quote(t.property_field)}"
        self._props: dict[str, dict[str, Prop]] = {}

    # -- the entities' properties ----------------------------------------------------------
    def _case(self, key: str, values: dict[str, str]) -> str:
        whens = " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in values.items())
        return f"(CASE {key} {whens} END)"

    def property_props(self, key: str) -> dict[str, Prop]:
        """An ObservedProperty's fields, for the property named by ``key``."""
        ps = self.t.properties
        title = self._case(key, {k: p.title for k, p in ps.items()})
        return {"id": Prop(key, "string"), "name": Prop(title, "string"),
                "definition": Prop(f"({_lit(self.base + '/sta/v1.1/ObservedProperties(')} || "
                                   f"{_lit(chr(39))} || {key} || {_lit(chr(39) + ')')})",
                                   "string"),
                "description": Prop(self._case(key, {
                    k: f"{p.title}, in {p.unit}, plausible from {p.min:g} to {p.max:g}"
                    for k, p in ps.items()}), "string")}

    def props(self, entity: Entity) -> dict[str, Prop]:
        """The entity's properties as SQL (made once: they follow from the catalogue)."""
        made = self._props.get(entity.name)
        if made is None:
            made = self._props[entity.name] = self._make_props(entity)
        return made

    def _make_props(self, entity: Entity) -> dict[str, Prop]:
        I, N, P, s = self.I, self.N, self.P, "string"
        title = self._case(P, {k: p.title for k, p in self.t.properties.items()})
        geometry = Prop(self.store.geometry_column(self.store.layer(self.t.collection),
                                                   Query()), "geometry")
        name = entity.name
        if name == "Thing":
            out = {"id": Prop(I, s), "name": Prop(N, s),
                   "description": Prop(f"({title} || ' at ' || {N})", s)}
            for col, kind in self.t.extra:
                out[f"properties/{col}"] = Prop(f"s.{quote(col)}", _type(kind))
            return out
        if name == "Location":
            return {"id": Prop(I, s), "name": Prop(N, s),
                    "description": Prop(f"('The place of ' || {N})", s),
                    "encodingType": Prop(_lit(GEOJSON), s), "location": geometry}
        if name == "HistoricalLocation":
            return {"id": Prop(I, s), "time": Prop(
                f"(SELECT MIN(h.phenomenon_time) FROM oup_observations h "
                f"WHERE h.sensor_id = {I})", "time")}
        if name == "Datastream":
            unit = self._case(P, {k: p.unit for k, p in self.t.properties.items()})
            return {"id": Prop(I, s), "name": Prop(f"({N} || ' ' || {P})", s),
                    "description": Prop(f"({title} || ' at ' || {N})", s),
                    "observationType": Prop(_lit(OM_MEASUREMENT), s),
                    "unitOfMeasurement/name": Prop(unit, s),
                    "unitOfMeasurement/symbol": Prop(unit, s),
                    "unitOfMeasurement/definition": Prop(
                        f"('https://ucum.org/ucum#' || {unit})", s),
                    "properties/observedProperty": Prop(P, s)}
        if name == "Sensor":
            return {"id": Prop(I, s), "name": Prop(N, s),
                    "description": Prop(f"('The sensor ' || {I} || ' at ' || {N})", s),
                    "encodingType": Prop(_lit(GEOJSON), s),
                    "metadata": Prop(f"({_lit(self.base + '/collections/' + self.t.collection
                                              + '/items/')} || {I})", s)}
        if name == "FeatureOfInterest":
            return {"id": Prop(I, s), "name": Prop(N, s),
                    "description": Prop(f"('The place of ' || {N})", s),
                    "encodingType": Prop(_lit(GEOJSON), s), "feature": geometry}
        if name == "ObservedProperty":
            return self.property_props("p.pid")
        return {"id": Prop("o.id", "number"), "phenomenonTime": Prop("o.phenomenon_time", "time"),
                "resultTime": Prop("o.result_time", "time"), "result": Prop("o.result", "number")}

    def not_null(self) -> set[str]:
        return {"o.id", "o.phenomenon_time", "o.result", "o.sensor_id", "p.pid"}

    def source(self, entity: Entity) -> str:
        table = quote(self.t.collection)
        if entity.kind == "observation":
            return f"oup_observations o JOIN {table} s ON {self.I} = o.sensor_id"
        if entity.kind == "property":
            keys = ", ".join(_lit(k) for k in self.t.properties)
            return (f"(SELECT DISTINCT {self.P} AS pid FROM {table} s "
                    f"WHERE {self.P} IN ({keys})) p")
        return f"{table} s"

    def keys(self, entity: Entity) -> dict[str, str]:
        """The hidden columns that links follow: the sensor and the property."""
        if entity.kind == "observation":
            return {"_sid": "o.sensor_id", "_p": self.P}
        if entity.kind == "property":
            return {"_p": "p.pid"}
        return {"_sid": self.I, "_p": self.P}

    def id_sql(self, entity: Entity) -> str:
        return {"observation": "o.id", "property": "p.pid"}.get(entity.kind, self.I)

    def link_column(self, child: Entity, parent: Entity) -> tuple[str, str]:
        """(the child's column, the parent's hidden key) joining a child to its parent."""
        if child.kind == "observation":
            return "o.sensor_id", "_sid"
        if child.kind == "property":
            return "p.pid", "_p"
        if parent.kind == "property":
            return self.P, "_p"
        return self.I, "_sid"

    def _path(self, entity: Entity, parts: tuple[str, ...], option: str) -> tuple[str, str]:
        """A property path's SQL: links between a sensor's entities stay on its row."""
        current = entity
        i = 0
        while i < len(parts) and parts[i] in current.links:
            target, many = current.links[parts[i]]
            nxt = ENTITIES[target]
            if nxt.kind == "observation" or (current.kind == "property"):
                bad(option, f"{'/'.join(parts[:i + 1])} leads to many "
                             f"{nxt.plural}: filter them from that side")
            current = nxt
            i += 1
        name = "/".join(parts[i:])
        if current.kind == "property" and entity.kind != "property":
            props = self.property_props(self.P)
        else:
            props = self.props(current)
        if name not in props:
            known = sorted({p.split("/")[0] for p in props} | set(current.links))
            bad(option, f"{current.name} has no property {name or '(none)'!r}; it has "
                         f"{', '.join(known)}")
        p = props[name]
        return p.sql, p.type

    # -- statements --------------------------------------------------------------------------
    def columns(self, entity: Entity, names: list[str]) -> tuple[list[str], list[str]]:
        """(labels, SQL) of the hidden keys and the properties ``names``."""
        props = self.props(entity)
        keys = self.keys(entity)
        labels = ["_id", *keys, *names]
        sql = [self.id_sql(entity), *keys.values(), *(props[n].sql for n in names)]
        return labels, sql

    def fetch(self, sel: Select, names: list[str], limit: int, offset: int) -> list[dict]:
        labels, cols = self.columns(sel.entity, names)
        where = f" WHERE {' AND '.join(sel.where)}" if sel.where else ""
        order = sel.order + [f"{self.id_sql(sel.entity)} ASC"]
        rows = self.store.execute(
            f"SELECT {', '.join(cols)} FROM {self.source(sel.entity)}{where} "
            f"ORDER BY {', '.join(order)} LIMIT ? OFFSET ?",
            sel.params + sel.order_params + [limit, offset])
        return [dict(zip(labels, r)) for r in rows]

    def count(self, sel: Select) -> int:
        where = f" WHERE {' AND '.join(sel.where)}" if sel.where else ""
        return self.store.execute(f"SELECT COUNT(*) FROM {self.source(sel.entity)}{where}",
                                  sel.params)[0][0]

    def fetch_per_key(self, sel: Select, column: str, keys: list, names: list[str],
                      limit: int, offset: int) -> list[dict]:
        """The rows of each key (``column = key``), at most ``limit`` of each after
        ``offset``: PostgreSQL in one statement (a LATERAL join on the keys, planned
        once), SQLite in one per 200 keys (a UNION ALL of limited selects: it has no
        LATERAL). Either reads each key's rows through the index and stops at the limit."""
        labels, cols = self.columns(sel.entity, names)
        order = sel.order + [f"{self.id_sql(sel.entity)} ASC"]
        if self.dialect.name == "postgresql":
            where = " AND ".join([f"{column} = k.key", *sel.where])
            # (a lateral subquery runs once per key, in the keys' order: its rows come
            # out grouped and in its own order)
            rows = self.store.execute(
                f"SELECT q.* FROM unnest(CAST(? AS text[])) AS k(key) CROSS JOIN LATERAL "
                f"(SELECT {', '.join(cols)} FROM {self.source(sel.entity)} WHERE {where} "
                f"ORDER BY {', '.join(order)} LIMIT ? OFFSET ?) AS q",
                [[str(k) for k in keys]] + sel.params + sel.order_params + [limit, offset])
            return [dict(zip(labels, r)) for r in rows]
        out = []
        where = " AND ".join([f"{column} = ?", *sel.where])
        one = (f"SELECT * FROM (SELECT {', '.join(cols)} FROM {self.source(sel.entity)} "
               f"WHERE {where} ORDER BY {', '.join(order)} LIMIT ? OFFSET ?) AS q")
        for i in range(0, len(keys), 200):
            chunk = keys[i:i + 200]
            sql = " UNION ALL ".join(f"{one}{j}" for j in range(len(chunk)))
            params = [v for k in chunk for v in
                      ([k] + sel.params + sel.order_params + [limit, offset])]
            out += [dict(zip(labels, r)) for r in self.store.execute(sql, params)]
        return out

    def count_per_key(self, sel: Select, column: str, keys: list) -> dict:
        where = " AND ".join([f"{column} IN ({', '.join('?' * len(keys))})", *sel.where])
        rows = self.store.execute(f"SELECT {column}, COUNT(*) FROM {self.source(sel.entity)} "
                                  f"WHERE {where} GROUP BY {column}", list(keys) + sel.params)
        return dict(rows)

    def geometry(self, value) -> dict | None:
        """A geometry column's value as GeoJSON (the store decodes its own form)."""
        if value is None:
            return None
        meta = self.store.layer(self.t.collection)
        return self.store.features(meta, [(None, value)], [], Query())[0]["geometry"]


def _type(kind: str) -> str:
    return {"integer": "number", "number": "number", "boolean": "bool",
            "date-time": "string"}.get(kind, "string")
