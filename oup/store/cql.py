"""CQL2 (as a pygeofilter AST) to parameterised SQL.

Shared by the store backends; a dialect supplies the few spellings that differ
(spatial predicate calls, the envelope prefilter). Anything the client gets wrong
(unknown property, wrong type, unsupported operator) is an ``InvalidQuery``.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, Callable

import shapely
from pygeofilter import ast, values

from oup.store.base import GEOM, GEOM84, Field, InvalidQuery, check_int64

SPATIAL_OPS = {
    ast.GeometryIntersects: "intersects", ast.GeometryDisjoint: "disjoint",
    ast.GeometryContains: "contains", ast.GeometryWithin: "within",
    ast.GeometryTouches: "touches", ast.GeometryCrosses: "crosses",
    ast.GeometryOverlaps: "overlaps", ast.GeometryEquals: "equals",
}
_COMPARE = {ast.Equal: "=", ast.NotEqual: "<>", ast.LessThan: "<", ast.LessEqual: "<=",
            ast.GreaterThan: ">", ast.GreaterEqual: ">="}
GEOMETRY_NAMES = ("geometry", GEOM, GEOM84)


def iso(value: datetime | date) -> str:
    """The one text form of instants in the store: UTC, second precision, 'Z'."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{value.isoformat()}T00:00:00Z"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqlCompiler:
    """Compile one filter against one table's fields.

    ``spatial(op, wkb)`` returns the SQL for a spatial predicate against the
    table's CRS84 geometry, with its parameters.
    """

    def __init__(self, fields: list[Field],
                 spatial: Callable[[str, bytes, tuple], tuple[str, list]]):
        self.fields = {f.name: f for f in fields}
        self.spatial = spatial

    def compile(self, node) -> tuple[str, list]:
        params: list = []
        return self._node(node, params), params

    # -- predicates -------------------------------------------------------
    def _node(self, node, params: list) -> str:
        if isinstance(node, ast.And):
            return f"({self._node(node.lhs, params)} AND {self._node(node.rhs, params)})"
        if isinstance(node, ast.Or):
            return f"({self._node(node.lhs, params)} OR {self._node(node.rhs, params)})"
        if isinstance(node, ast.Not):
            return f"(NOT {self._node(node.sub_node, params)})"
        if isinstance(node, ast.Include):
            return "FALSE" if node.not_ else "TRUE"
        if type(node) in _COMPARE:
            field = self._field(node.lhs)
            params.append(self._value(field, node.rhs))
            return f"{quote(field.name)} {_COMPARE[type(node)]} ?"
        if isinstance(node, ast.Between):
            field = self._field(node.lhs)
            params += [self._value(field, node.low), self._value(field, node.high)]
            return f"{quote(field.name)} {'NOT ' if node.not_ else ''}BETWEEN ? AND ?"
        if isinstance(node, ast.Like):
            field = self._field(node.lhs)
            if field.type != "string":
                raise InvalidQuery(f"LIKE needs a text property; {field.name} is {field.type}",
                                   "filter")
            params.append(self._like_pattern(node))
            return f"{quote(field.name)} {'NOT ' if node.not_ else ''}LIKE ? ESCAPE '\\'"
        if isinstance(node, ast.In):
            field = self._field(node.lhs)
            params += [self._value(field, v) for v in node.sub_nodes]
            marks = ", ".join("?" * len(node.sub_nodes))
            return f"{quote(field.name)} {'NOT ' if node.not_ else ''}IN ({marks})"
        if isinstance(node, ast.IsNull):
            field = self._field(node.lhs)
            return f"{quote(field.name)} IS {'NOT ' if node.not_ else ''}NULL"
        if type(node) in SPATIAL_OPS:
            return self._spatial(SPATIAL_OPS[type(node)], node.lhs, node.rhs, params)
        if isinstance(node, ast.BBox):
            env = shapely.box(node.minx, node.miny, node.maxx, node.maxy)
            return self._spatial("intersects", node.lhs, env, params)
        if isinstance(node, ast.TemporalPredicate):
            return self._temporal(node, params)
        raise InvalidQuery(f"filter: {type(node).__name__} is not supported here", "filter")

    def _spatial(self, op: str, lhs, rhs, params: list) -> str:
        if not (isinstance(lhs, ast.Attribute) and lhs.name in GEOMETRY_NAMES):
            lhs, rhs = rhs, lhs  # S_INTERSECTS(<literal>, geometry) reads the same
            op = {"within": "contains", "contains": "within"}.get(op, op)
        if not (isinstance(lhs, ast.Attribute) and lhs.name in GEOMETRY_NAMES):
            raise InvalidQuery("filter: a spatial predicate needs the property 'geometry'",
                               "filter")
        geom = literal_geometry(rhs)
        sql, p = self.spatial(op, shapely.to_wkb(geom), geom.bounds)
        params += p
        return sql

    def _temporal(self, node, params: list) -> str:
        field = self._field(node.lhs)
        if field.type != "date-time":
            raise InvalidQuery(f"filter: {field.name} is not a temporal property", "filter")
        start, end = _time_bounds(node.rhs)
        col = quote(field.name)
        name = type(node).__name__

        def bound(sql_op: str, value):
            params.append(value)
            return f"{col} {sql_op} ?"

        if name == "TimeAfter":
            return bound(">", end) if end is not None else "FALSE"
        if name == "TimeBefore":
            return bound("<", start) if start is not None else "FALSE"
        if name == "TimeEquals":
            if start != end:
                return "FALSE"  # an instant never equals a proper interval
            return bound("=", start)
        # pygeofilter parses T_INTERSECTS as TimeOverlaps. The store's temporal
        # properties are instants, for which Allen's "overlaps" never holds, so
        # TimeOverlaps is answered as T_INTERSECTS.
        if name in ("TimeOverlaps", "TimeDisjoint", "TimeDuring"):
            op_lo, op_hi = (">", "<") if name == "TimeDuring" else (">=", "<=")
            parts = []
            if start is not None:
                parts.append(bound(op_lo, start))
            if end is not None:
                parts.append(bound(op_hi, end))
            inside = f"({' AND '.join(parts)})" if parts else f"({col} = {col})"  # NULL stays unknown
            return f"(NOT {inside})" if name == "TimeDisjoint" else inside
        raise InvalidQuery(f"filter: {name} is not supported; use T_AFTER, T_BEFORE, "
                           "T_EQUALS, T_INTERSECTS, T_DISJOINT or T_DURING", "filter")

    # -- operands ---------------------------------------------------------
    def _field(self, node) -> Field:
        if not isinstance(node, ast.Attribute):
            raise InvalidQuery("filter: the left side of a comparison must be a property "
                               "(arithmetic and functions are not supported)", "filter")
        field = self.fields.get(node.name)
        if field is None:
            raise InvalidQuery(f"filter: unknown property {node.name!r}; see /queryables",
                               "filter")
        return field

    def _value(self, field: Field, value) -> Any:
        t = field.type
        if isinstance(value, bool):
            if t == "boolean":
                return value
        elif isinstance(value, (int, float)):
            if isinstance(value, int):
                check_int64(value, "filter")
            if t in ("number", "integer"):
                return value
        elif isinstance(value, str):
            if t == "string":
                return value
        elif isinstance(value, (datetime, date)):
            if t == "date-time":
                return iso(value)
        raise InvalidQuery(f"filter: {field.name} is {t}; cannot compare it with {value!r}",
                           "filter")

    @staticmethod
    def _like_pattern(node) -> str:
        """CQL2 LIKE: '%' any run, '_' one character, '\\' escapes. (pygeofilter's
        parsers label '.' as the single-character wildcard, which CQL2 does not.)"""
        out = []
        pattern = node.pattern
        i = 0
        while i < len(pattern):
            ch = pattern[i]
            if ch == "\\" and i + 1 < len(pattern):
                nxt = pattern[i + 1]
                out.append("\\" + nxt if nxt in "%_\\" else nxt)
                i += 2
                continue
            out.append(ch)
            i += 1
        return "".join(out)


def literal_geometry(value):
    """A filter's geometry literal as a shapely geometry."""
    if isinstance(value, values.Geometry):
        return shapely.geometry.shape(value.geometry)
    if isinstance(value, values.Envelope):
        return shapely.box(value.x1, value.y1, value.x2, value.y2)
    if isinstance(value, ast.Function) and value.name.lower() == "bbox":
        a = value.arguments
        return shapely.box(a[0], a[1], a[-2] if len(a) == 6 else a[2], a[-1])
    if isinstance(value, shapely.Geometry):
        return value
    raise InvalidQuery(f"filter: expected a geometry literal, got {value!r}", "filter")


def _time_bounds(value) -> tuple[str | None, str | None]:
    if isinstance(value, values.Interval):
        start = None if value.start in (None, "..") else iso(value.start)
        end = None if value.end in (None, "..") else iso(value.end)
        return start, end
    if isinstance(value, (datetime, date)):
        t = iso(value)
        return t, t
    raise InvalidQuery(f"filter: expected a timestamp, date or interval, got {value!r}",
                       "filter")
