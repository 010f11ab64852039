"""SensorThings entities as SQL over the sensors' table and ``oup_observations``, no copy.

The mapping: a sensor (a row of the stream collection) is a Thing, its Location, its one
HistoricalLocation, its Datastream, its Sensor and its FeatureOfInterest, all with the
sensor's id; its observed property is an ObservedProperty (id: the property's name);
its readings are Observations (id: the row id). So every link between two entities of a
sensor keeps the sensor id, and a ``$filter`` path such as ``Datastream/Thing/name`` from
an Observation is a column of the sensor row joined to it (alias ``s``), and the
observed property's fields are a ``CASE`` on the sensor's property field.

``$filter`` and ``$orderby`` trees (``oup.sta.odata``) compile to parameterised SQL with
``?`` placeholders; the few spellings that differ between SQLite and PostgreSQL are in
``Dialect``. Paging, counts and the per-parent limits of ``$expand`` are SQL too.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import shapely

from oup.errors import InvalidQuery
from oup.store.base import Query
from oup.store.cql import quote

OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
GEOJSON = "application/geo+json"
MIN_TIME, MAX_TIME = -62135596800000000, 253402300799999999  # 0001-01-01, 9999-12-31
_SPATIAL = {"st_equals": "equals", "st_disjoint": "disjoint", "st_touches": "touches",
            "st_within": "within", "st_overlaps": "overlaps", "st_crosses": "crosses",
            "st_intersects": "intersects", "st_contains": "contains",
            "geo.intersects": "intersects"}
_SQL_OPS = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<=",
            "add": "+", "sub": "-", "mul": "*"}
_US = {"hour": (3_600_000_000, 24), "minute": (60_000_000, 60), "second": (1_000_000, 60)}


class FilterError(InvalidQuery):
    """A ``$filter`` or ``$orderby`` that does not fit the entity."""


def _bad(option: str, text: str):
    raise FilterError(f"{option}: {text}", option)


@dataclass(frozen=True)
class Dialect:
    name: str  # sqlite | postgresql

    def real(self, x: str) -> str:
        return f"CAST({x} AS {'REAL' if self.name == 'sqlite' else 'double precision'})"

    def position(self, haystack: str, needle: str) -> str:
        return (f"instr({haystack}, {needle})" if self.name == "sqlite"
                else f"strpos({haystack}, {needle})")

    def calendar(self, part: str, us: str) -> str:
        if self.name == "sqlite":
            fmt = {"year": "%Y", "month": "%m", "day": "%d"}[part]
            return f"CAST(strftime('{fmt}', {us} / 1000000, 'unixepoch') AS INTEGER)"
        return (f"CAST(EXTRACT({part.upper()} FROM to_timestamp({us} / 1000000) "
                f"AT TIME ZONE 'UTC') AS INTEGER)")

    def round(self, x: str) -> str:  # half away from zero in both
        return f"round({x})" if self.name == "sqlite" else \
            f"CAST(round(CAST({x} AS numeric)) AS double precision)"

    def ceiling(self, x: str) -> str:
        return f"ceil({x})"

    def boolean(self, value: bool) -> str:
        return "TRUE" if value else "FALSE"


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


class StaSql:
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

    # -- $filter and $orderby ----------------------------------------------------------------
    def compile(self, entity: Entity, node, params: list, option: str = "$filter"):
        """(sql, type) of a filter tree on ``entity``; ``params`` gets its values."""
        c = self.compile
        tag = node[0]
        if tag == "lit":
            value, kind = node[1], node[2]
            if kind == "null":
                return "NULL", "null"
            if kind == "bool":
                return self.dialect.boolean(value), "bool"
            if kind == "geometry":
                _bad(option, "a geometry literal is only an argument of geo.intersects "
                             "or st_*")
            if kind == "number" and isinstance(value, int) and abs(value) >= 2 ** 63:
                _bad(option, f"{value} is too large")
            params.append(value)
            # typed: PostgreSQL cannot choose length() or lower() for an untyped parameter
            return ("CAST(? AS TEXT)" if kind == "string" else "?"), kind
        if tag == "path":
            return self._path(entity, node[1], option)
        if tag == "not":
            sql, kind = c(entity, node[1], params, option)
            self._want(kind, "bool", "not", option)
            return f"(NOT {sql})", "bool"
        if tag == "neg":
            sql, kind = c(entity, node[1], params, option)
            self._want(kind, "number", "-", option)
            return f"(-{sql})", "number"
        if tag == "op":
            return self._op(entity, node, params, option)
        return self._call(entity, node[1], node[2], params, option)

    @staticmethod
    def _want(kind: str, wanted: str, where: str, option: str):
        if kind not in (wanted, "null"):
            _bad(option, f"{where} takes {'a boolean' if wanted == 'bool' else wanted}, "
                         f"not {kind}")

    def _op(self, entity, node, params, option):
        _, op, lhs, rhs = node
        if op in ("and", "or"):
            ls, lk = self.compile(entity, lhs, params, option)
            rs, rk = self.compile(entity, rhs, params, option)
            self._want(lk, "bool", op, option)
            self._want(rk, "bool", op, option)
            return f"({ls} {op.upper()} {rs})", "bool"
        mark = len(params)
        ls, lk = self.compile(entity, lhs, params, option)
        rs, rk = self.compile(entity, rhs, params, option)
        if op in ("eq", "ne", "gt", "ge", "lt", "le"):
            if "geometry" in (lk, rk):
                _bad(option, "geometries are compared with geo.intersects or st_*")
            if "null" in (lk, rk):
                if op not in ("eq", "ne"):
                    _bad(option, f"null is compared with eq or ne, not {op}")
                other = rs if lk == "null" else ls
                return f"({other} IS {'NOT ' if op == 'ne' else ''}NULL)", "bool"
            if lk != rk:
                _bad(option, f"cannot compare {lk} with {rk} ({op})")
            return f"({ls} {_SQL_OPS[op]} {rs})", "bool"
        for kind in (lk, rk):
            self._want(kind, "number", op, option)
        if op == "div":
            return f"({self.dialect.real(ls)} / NULLIF({rs}, 0))", "number"
        if op == "mod":  # the remainder with the sign of the dividend, in real numbers
            del params[mark:]  # the operands appear twice: their values go in twice
            ls, _ = self.compile(entity, lhs, params, option)
            rs, _ = self.compile(entity, rhs, params, option)
            ls2, _ = self.compile(entity, lhs, params, option)
            rs2, _ = self.compile(entity, rhs, params, option)
            return (f"({self.dialect.real(ls)} - {rs} * trunc({self.dialect.real(ls2)} / "
                    f"NULLIF({rs2}, 0)))", "number")
        return f"({ls} {_SQL_OPS[op]} {rs})", "number"

    def _call(self, entity, name, args, params, option):
        d = self.dialect
        arity = {"substringof": 2, "startswith": 2, "endswith": 2, "length": 1, "indexof": 2,
                 "tolower": 1, "toupper": 1, "trim": 1, "concat": 2, "year": 1, "month": 1,
                 "day": 1, "hour": 1, "minute": 1, "second": 1, "fractionalseconds": 1,
                 "now": 0, "mindatetime": 0, "maxdatetime": 0, "round": 1, "floor": 1,
                 "ceiling": 1, **{k: 2 for k in _SPATIAL}}
        if name == "substring":
            if len(args) not in (2, 3):
                _bad(option, "substring takes 2 or 3 arguments")
        elif name not in arity:
            _bad(option, f"unknown or unsupported function {name!r}; functions: "
                         f"{', '.join(sorted([*arity, 'substring']))}")
        elif len(args) != arity[name]:
            _bad(option, f"{name} takes {arity[name]} argument(s), got {len(args)}")
        if name in _SPATIAL:
            return self._spatial(entity, _SPATIAL[name], args, params, option)
        if name == "now":
            params.append(time.time_ns() // 1000)
            return "?", "time"
        if name in ("mindatetime", "maxdatetime"):
            params.append(MIN_TIME if name == "mindatetime" else MAX_TIME)
            return "?", "time"
        mark = len(params)
        compiled = [self.compile(entity, a, params, option) for a in args]
        sqls = [s for s, _ in compiled]

        def want(i: int, kind: str):
            self._want(compiled[i][1], kind, f"{name} argument {i + 1}", option)

        def again(*nodes) -> list[str]:
            """The operands compiled once more each time they appear, in that order (their
            parameters go in again)."""
            del params[mark:]
            return [self.compile(entity, args[k], params, option)[0] for k in nodes]

        if name in ("substringof", "startswith", "endswith", "indexof", "concat"):
            want(0, "string")
            want(1, "string")
            a, b = sqls
            if name == "substringof":  # substringof(needle, haystack): haystack first
                b1, a1 = again(1, 0)
                return f"({d.position(b1, a1)} > 0)", "bool"
            if name == "indexof":
                return f"({d.position(a, b)} - 1)", "number"
            if name == "concat":
                return f"({a} || {b})", "string"
            if name == "startswith":
                a1, b1, b2 = again(0, 1, 1)
                return f"(substr({a1}, 1, length({b1})) = {b2})", "bool"
            a1, b1, a2, a3, b2, b3 = again(0, 1, 0, 0, 1, 1)
            return (f"(length({a1}) >= length({b1}) AND "
                    f"substr({a2}, length({a3}) - length({b2}) + 1) = {b3})"), "bool"
        if name == "substring":
            want(0, "string")
            for i in range(1, len(args)):
                want(i, "number")
            start = f"CAST({sqls[1]} AS INTEGER) + 1"
            if len(sqls) == 3:
                return f"substr({sqls[0]}, {start}, CAST({sqls[2]} AS INTEGER))", "string"
            return f"substr({sqls[0]}, {start})", "string"
        if name in ("length", "tolower", "toupper", "trim"):
            want(0, "string")
            fn = {"tolower": "lower", "toupper": "upper"}.get(name, name)
            return f"{fn}({sqls[0]})", "number" if name == "length" else "string"
        if name in ("year", "month", "day"):
            want(0, "time")
            return d.calendar(name, sqls[0]), "number"
        if name in _US:
            want(0, "time")
            unit, modulo = _US[name]
            return f"(({sqls[0]} / {unit}) % {modulo})", "number"
        if name == "fractionalseconds":
            want(0, "time")
            return f"({d.real(f'({sqls[0]} % 1000000)')} / 1000000)", "number"
        want(0, "number")
        if name == "round":
            return d.round(sqls[0]), "number"
        if name == "floor":
            return f"floor({sqls[0]})", "number"
        return d.ceiling(sqls[0]), "number"

    def _spatial(self, entity, op, args, params, option):
        a, b = args
        if a[0] == "lit" and b[0] == "path":
            a, b = b, a
            op = {"within": "contains", "contains": "within"}.get(op, op)
        if a[0] != "path" or b[0] != "lit" or b[2] != "geometry":
            _bad(option, "a spatial function takes a geometry property and a geometry "
                         "literal (geography'POINT(4.47 51.92)')")
        sql, kind = self._path(entity, a[1], option)
        if kind != "geometry":
            _bad(option, f"{'/'.join(a[1])} is not a geometry")
        geom = b[1]
        spatial = self.store.spatial_predicate(self.t.collection)
        where, p = spatial(op, shapely.to_wkb(geom), geom.bounds)
        params += p
        return f"({where})", "bool"

    def _path(self, entity: Entity, parts: tuple[str, ...], option: str) -> tuple[str, str]:
        """A property path's SQL: links between a sensor's entities stay on its row."""
        current = entity
        i = 0
        while i < len(parts) and parts[i] in current.links:
            target, many = current.links[parts[i]]
            nxt = ENTITIES[target]
            if nxt.kind == "observation" or (current.kind == "property"):
                _bad(option, f"{'/'.join(parts[:i + 1])} leads to many "
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
            _bad(option, f"{current.name} has no property {name or '(none)'!r}; it has "
                         f"{', '.join(known)}")
        p = props[name]
        return p.sql, p.type

    def order(self, entity: Entity, orderby, option: str = "$orderby") -> tuple[list[str], list]:
        params: list = []
        out = []
        for expr, asc in orderby:
            sql, kind = self.compile(entity, expr, params, option)
            if kind == "geometry":
                _bad(option, "cannot order by a geometry")
            out.append(f"{sql} {'ASC NULLS FIRST' if asc else 'DESC NULLS LAST'}")
        return out, params

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
        ``offset``, in one statement per 200 keys (a UNION ALL of limited selects)."""
        labels, cols = self.columns(sel.entity, names)
        order = sel.order + [f"{self.id_sql(sel.entity)} ASC"]
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
