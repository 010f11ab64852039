"""Which events a subscriber wants: sensor ids, event types, and a CQL2 expression over
the event's properties (``ChangeEvent.properties``), evaluated here in OUP.

The expression is parsed once, when the subscriber connects (``params.parse_filter``,
the parser of the items' ``filter``), and checked against the properties an event of
the subscribed collections can have, so a mistyped name is a 400 and not a stream that
stays silent. Spatial and temporal operators are refused: events carry no geometry.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timezone
from typing import Any, Callable

from pygeofilter import ast

from oup.events import ChangeEvent
from oup.http.params import parse_filter
from oup.errors import InvalidQuery

EVENT_PROPERTIES = {"type", "subject", "collection"}  # every event has these
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Equal: lambda a, b: a == b, ast.NotEqual: lambda a, b: a != b,
    ast.LessThan: lambda a, b: a < b, ast.LessEqual: lambda a, b: a <= b,
    ast.GreaterThan: lambda a, b: a > b, ast.GreaterEqual: lambda a, b: a >= b,
}
Predicate = Callable[[dict], bool]


def _instant(value):
    """Times in event properties are RFC 3339 text; a CQL2 timestamp compares as one."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    return value


def _compile(node, names: set[str]) -> Callable[[dict], Any]:
    """A node as a function of the event's properties."""
    if isinstance(node, ast.Attribute):
        if node.name not in names:
            raise InvalidQuery(f"filter: an event has no property {node.name!r}; it has "
                               f"{', '.join(sorted(names))}", "filter")
        return lambda p, name=node.name: p.get(name)
    if isinstance(node, (ast.And, ast.Or)):
        lhs, rhs = _compile(node.lhs, names), _compile(node.rhs, names)
        if isinstance(node, ast.And):
            return lambda p: bool(lhs(p)) and bool(rhs(p))
        return lambda p: bool(lhs(p)) or bool(rhs(p))
    if isinstance(node, ast.Not):
        sub = _compile(node.sub_node, names)
        return lambda p: not sub(p)
    if type(node) in _COMPARE:
        op, lhs, rhs = _COMPARE[type(node)], _compile(node.lhs, names), _compile(node.rhs, names)
        return lambda p: _safe(op, lhs(p), rhs(p))
    if isinstance(node, ast.Between):
        v, lo, hi = (_compile(n, names) for n in (node.lhs, node.low, node.high))
        return lambda p: _safe(lambda a, b: b[0] <= a <= b[1], v(p), (lo(p), hi(p))) != node.not_
    if isinstance(node, ast.In):
        v, options = _compile(node.lhs, names), [_compile(n, names) for n in node.sub_nodes]
        return lambda p: (v(p) in [o(p) for o in options]) != node.not_
    if isinstance(node, ast.IsNull):
        v = _compile(node.lhs, names)
        return lambda p: (v(p) is None) != node.not_
    if isinstance(node, ast.Like):
        v = _compile(node.lhs, names)
        regex = re.compile(_like_regex(node), re.IGNORECASE if node.nocase else 0)
        return lambda p: (isinstance(x := v(p), str) and bool(regex.fullmatch(x))) != node.not_
    if isinstance(node, (bool, int, float, str)) or node is None:
        return lambda p: node
    if isinstance(node, (datetime, date)):
        value = _instant(node)
        return lambda p: value
    raise InvalidQuery(f"filter: {type(node).__name__} is not supported on events (they "
                       "have no geometry); use comparisons, LIKE, IN, BETWEEN, IS NULL, "
                       "AND, OR, NOT", "filter")


def _safe(op, a, b) -> bool:
    """Compare; values of different kinds (or a missing one) simply do not match."""
    if isinstance(b, datetime) and isinstance(a, str):
        try:
            a = datetime.fromisoformat(a.replace("Z", "+00:00"))
        except ValueError:
            return False
    try:
        return a is not None and b is not None and bool(op(a, b))
    except TypeError:
        return False


def _like_regex(node: ast.Like) -> str:
    out = []
    chars = iter(node.pattern)
    for c in chars:
        if c == node.escapechar:
            out.append(re.escape(next(chars, "")))
        elif c == node.wildcard:
            out.append(".*")
        elif c == node.singlechar:
            out.append(".")
        else:
            out.append(re.escape(c))
    return "".join(out)


class EventFilter:
    """A subscriber's choice; ``matches(event)`` says if it gets the event."""

    def __init__(self, sensors: list[str] | None = None, types: list[str] | None = None,
                 cql2: str | None = None, lang: str | None = None,
                 properties: set[str] | None = None):
        self.sensors = set(sensors) if sensors else None
        self.types = set(types) if types else None
        self.predicate: Predicate | None = None
        if cql2:
            node = parse_filter(cql2, lang)
            self.predicate = _compile(node, EVENT_PROPERTIES | (properties or set()))

    def matches(self, event: ChangeEvent) -> bool:
        if self.sensors is not None and event.subject not in self.sensors:
            return False
        if self.types is not None and event.type not in self.types:
            return False
        return self.predicate is None or bool(self.predicate(event.properties))
