"""SensorThings ``$filter`` and ``$orderby`` trees (``oup.sta.odata``) as parameterised SQL
with ``?`` placeholders, type-checked as they compile (a comparison of a number with a
string, an unknown function, a geometry where a value goes: a 400 that says so). The few
spellings that differ between SQLite and PostgreSQL are in ``Dialect``; what a property
path means is the entities' (``sta_sql.StaSql._path``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import shapely

from oup.errors import InvalidQuery

if TYPE_CHECKING:
    from oup.store.sta_sql import Entity

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


def bad(option: str, text: str):
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



class FilterCompiler:
    """Compiles filter trees for ``StaSql`` (which supplies ``dialect``, ``store``, ``t``
    and ``_path``)."""

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
                bad(option, "a geometry literal is only an argument of geo.intersects "
                             "or st_*")
            if kind == "number" and isinstance(value, int) and abs(value) >= 2 ** 63:
                bad(option, f"{value} is too large")
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
            bad(option, f"{where} takes {'a boolean' if wanted == 'bool' else wanted}, "
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
                bad(option, "geometries are compared with geo.intersects or st_*")
            if "null" in (lk, rk):
                if op not in ("eq", "ne"):
                    bad(option, f"null is compared with eq or ne, not {op}")
                other = rs if lk == "null" else ls
                return f"({other} IS {'NOT ' if op == 'ne' else ''}NULL)", "bool"
            if lk != rk:
                bad(option, f"cannot compare {lk} with {rk} ({op})")
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
                bad(option, "substring takes 2 or 3 arguments")
        elif name not in arity:
            bad(option, f"unknown or unsupported function {name!r}; functions: "
                         f"{', '.join(sorted([*arity, 'substring']))}")
        elif len(args) != arity[name]:
            bad(option, f"{name} takes {arity[name]} argument(s), got {len(args)}")
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
            bad(option, "a spatial function takes a geometry property and a geometry "
                         "literal (geography'POINT(4.47 51.92)')")
        sql, kind = self._path(entity, a[1], option)
        if kind != "geometry":
            bad(option, f"{'/'.join(a[1])} is not a geometry")
        geom = b[1]
        spatial = self.store.spatial_predicate(self.t.collection)
        where, p = spatial(op, shapely.to_wkb(geom), geom.bounds)
        params += p
        return f"({where})", "bool"

    def order(self, entity: Entity, orderby, option: str = "$orderby") -> tuple[list[str], list]:
        params: list = []
        out = []
        for expr, asc in orderby:
            sql, kind = self.compile(entity, expr, params, option)
            if kind == "geometry":
                bad(option, "cannot order by a geometry")
            # nulls first ascending, as SQLite has them; a column that holds none is left
            # bare, so that PostgreSQL reads it in its index's order (no sort)
            nulls = "" if sql in self.not_null() else " NULLS FIRST" if asc else " NULLS LAST"
            out.append(f"{sql} {'ASC' if asc else 'DESC'}{nulls}")
        return out, params

    def not_null(self) -> set[str]:
        """The SQL of the columns that hold no nulls."""
        return set()
