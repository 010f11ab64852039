"""The OData query language of SensorThings API 1.1, parsed: ``$filter`` and ``$orderby``
expressions, ``$select``, ``$expand`` with its nested options, ``$top``, ``$skip``,
``$count``, and the resource path (``Things('x')/Datastreams/$ref``).

A real parser (a tokenizer and recursive descent by precedence), so every error names
the option, what was found and where: a client's mistake is a 400 that says what to fix.
The trees it makes are plain tuples that the store compiles to SQL
(``oup.store.sta_sql``); nothing here knows the entities.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from oup.errors import InvalidQuery
from oup.sensors.observations import ZonelessTime, rfc3339, us_of

MAX_DEPTH = 40  # nesting of a $filter (parentheses, not): deeper is refused, not recursed

# The tree: ("lit", value, type) with type number | string | bool | time | null | geometry;
# ("path", ("Datastream", "name")); ("call", name, (args...)); ("op", op, lhs, rhs)
# for eq ne gt ge lt le and or add sub mul div mod; ("not", x); ("neg", x).
COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
ARITHMETIC = ("add", "sub", "mul", "div", "mod")
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<geo>(?:geography|geometry)'(?:[^']|'')*')
  | (?P<time>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2}))
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<string>'(?:[^']|'')*')
  | (?P<name>[A-Za-z_@$][A-Za-z0-9_.@$]*)
  | (?P<punct>[()/,;=-])
""", re.VERBOSE)


class QueryError(InvalidQuery):
    """A query option that cannot be parsed or does not fit the entity."""


def _tokens(text: str, option: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise QueryError(f"{option}: unexpected {text[pos:pos + 12]!r} at position {pos}",
                             option)
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group(), pos))
        pos = m.end()
    return out


def parse_time(text: str, option: str) -> int:
    """An RFC 3339 instant with its zone, as microseconds since the epoch."""
    try:
        return us_of(rfc3339(text))
    except ZonelessTime:
        raise QueryError(f"{option}: {text!r} needs a time zone (e.g. Z)", option) from None
    except ValueError:
        raise QueryError(f"{option}: {text!r} is not an RFC 3339 time", option) from None


class _Parser:
    def __init__(self, text: str, option: str):
        self.option, self.text = option, text
        self.toks = _tokens(text, option)
        self.i = 0
        self.depth = 0

    # -- helpers ------------------------------------------------------------------------
    def peek(self, k: int = 0):
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else ("end", "", len(self.text))

    def take(self):
        tok = self.peek()
        self.i += 1
        return tok

    def fail(self, what: str, tok=None):
        kind, value, pos = tok or self.peek()
        found = "the end" if kind == "end" else repr(value)
        raise QueryError(f"{self.option}: expected {what}, found {found} at position {pos}",
                         self.option)

    def expect(self, value: str):
        tok = self.take()
        if tok[1] != value:
            self.fail(repr(value), tok)

    def word(self, *words: str) -> str | None:
        kind, value, _ = self.peek()
        if kind == "name" and value in words:
            self.i += 1
            return value
        return None

    def done(self):
        if self.peek()[0] != "end":
            self.fail("the end of the expression")

    # -- expressions, loosest first ------------------------------------------------------
    def expression(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QueryError(f"{self.option}: nested deeper than {MAX_DEPTH}", self.option)
        node = self._and()
        while self.word("or"):
            node = ("op", "or", node, self._and())
        self.depth -= 1
        return node

    def _and(self):
        node = self._not()
        while self.word("and"):
            node = ("op", "and", node, self._not())
        return node

    def _not(self):
        if self.word("not"):
            return ("not", self._not())
        return self._compare()

    def _compare(self):
        node = self._additive()
        op = self.word(*COMPARISONS)
        if op:
            node = ("op", op, node, self._additive())
            if self.peek()[1] in COMPARISONS:
                self.fail("'and', 'or' or ')' (comparisons do not chain)")
        return node

    def _additive(self):
        node = self._multiplicative()
        while op := self.word("add", "sub"):
            node = ("op", op, node, self._multiplicative())
        return node

    def _multiplicative(self):
        node = self._unary()
        while op := self.word("mul", "div", "mod"):
            node = ("op", op, node, self._unary())
        return node

    def _unary(self):
        if self.peek()[1] == "-":
            self.take()
            return ("neg", self._unary())
        return self._primary()

    def _primary(self):
        kind, value, pos = tok = self.take()
        if value == "(":
            node = self.expression()
            self.expect(")")
            return node
        if kind == "number":
            return ("lit", float(value) if any(c in value for c in ".eE") else int(value),
                    "number")
        if kind == "string":
            return ("lit", value[1:-1].replace("''", "'"), "string")
        if kind == "time":
            return ("lit", parse_time(value, self.option), "time")
        if kind == "geo":
            return ("lit", _wkt(value[value.index("'") + 1:-1].replace("''", "'"),
                                self.option), "geometry")
        if kind == "name":
            if value in ("true", "false"):
                return ("lit", value == "true", "bool")
            if value == "null":
                return ("lit", None, "null")
            if self.peek()[1] == "(":
                self.take()
                args = []
                if self.peek()[1] != ")":
                    args.append(self.expression())
                    while self.peek()[1] == ",":
                        self.take()
                        args.append(self.expression())
                self.expect(")")
                return ("call", value.lower(), tuple(args))
            parts = [value]
            while self.peek()[1] == "/":
                self.take()
                k, v, _ = self.take()
                if k != "name":
                    self.fail("a property name after '/'", (k, v, _))
                parts.append(v)
            return ("path", tuple(parts))
        self.fail("a property, a literal, a function or '('", tok)


def _wkt(text: str, option: str):
    import shapely

    try:
        return shapely.from_wkt(re.sub(r"^SRID=\d+;", "", text.strip()))
    except Exception as exc:  # shapely raises its own GEOSException for bad text
        raise QueryError(f"{option}: {text[:60]!r} is not WKT ({exc})", option) from None


def parse_filter(text: str, option: str = "$filter"):
    p = _Parser(text, option)
    if p.peek()[0] == "end":
        raise QueryError(f"{option} is empty", option)
    node = p.expression()
    p.done()
    return node


def parse_orderby(text: str, option: str = "$orderby") -> list[tuple[object, bool]]:
    """[(expression, ascending)]."""
    p = _Parser(text, option)
    out = []
    while True:
        expr = p.expression()
        kind, value, _ = p.peek()
        desc = False
        if kind == "name" and value.lower() in ("asc", "desc"):  # (clients send ASC too)
            p.take()
            desc = value.lower() == "desc"
        out.append((expr, not desc))
        if p.peek()[1] != ",":
            break
        p.take()
    p.done()
    return out


@dataclass
class Options:
    """The query options of one entity set (or of one $expand, nested)."""

    filter: object = None
    orderby: list = field(default_factory=list)
    select: list[str] | None = None
    expand: dict[str, "Options"] = field(default_factory=dict)
    top: int | None = None
    skip: int = 0
    count: bool = False
    result_format: str | None = None  # "dataArray" (the Data Array extension), or as JSON
    raw: dict = field(default_factory=dict)  # as sent (an $expand's nextLink repeats them)


MAX_TOP = 10_000
DATA_ARRAY = "dataArray"


def _int(value: str, option: str, limit: int) -> int:
    if not re.fullmatch(r"\d{1,9}", value.strip()):
        raise QueryError(f"{option} must be a whole number from 0, got {value!r}", option)
    n = int(value)
    if n > limit:
        raise QueryError(f"{option} must be at most {limit}, got {n}", option)
    return n


def options(raw: dict[str, str], where: str = "") -> Options:
    """The options of a request (``raw``: '$filter' -> text), or of an ``$expand`` item."""
    o = Options(raw=dict(raw))
    for name, value in raw.items():
        option = where + name
        if name == "$filter":
            o.filter = parse_filter(value, option)
        elif name == "$orderby":
            o.orderby = parse_orderby(value, option)
        elif name == "$select":
            names = [s.strip() for s in value.split(",")]
            if not all(re.fullmatch(r"[A-Za-z@][A-Za-z0-9_.@/]*", n) for n in names):
                raise QueryError(f"{option}: expected property names separated by commas, "
                                 f"got {value!r}", option)
            o.select = names
        elif name == "$expand":
            o.expand = parse_expand(value, option)
        elif name == "$top":
            o.top = _int(value, option, MAX_TOP)
        elif name == "$skip":
            o.skip = _int(value, option, 10 ** 9)
        elif name == "$count":
            if value not in ("true", "false"):
                raise QueryError(f"{option} must be true or false, got {value!r}", option)
            o.count = value == "true"
        elif name == "$resultFormat" and not where:  # (an answer's form, not an expansion's)
            if value != DATA_ARRAY:
                raise QueryError(f"{option} takes {DATA_ARRAY}, got {value!r}", option)
            o.result_format = value
        else:
            raise QueryError(f"unknown query option {option!r}; SensorThings takes $filter, "
                             "$expand, $select, $orderby, $top, $skip, $count"
                             + ("" if where else ", $resultFormat"), option)
    return o


def _split(text: str, sep: str, option: str) -> list[str]:
    """``text`` split at ``sep`` outside parentheses and quotes."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
            if depth < 0:
                raise QueryError(f"{option}: unbalanced ')' at position {i}", option)
        elif not quoted and depth == 0 and ch == sep:
            parts.append(text[start:i])
            start = i + 1
    if depth or quoted:
        raise QueryError(f"{option}: unbalanced {'quote' if quoted else '('}", option)
    parts.append(text[start:])
    return parts


def parse_expand(text: str, option: str = "$expand") -> dict[str, Options]:
    """``Datastreams($top=1;$expand=Observations),Locations`` and the path form
    ``Datastreams/Observations``, as {navigation property: its options}."""
    out: dict[str, Options] = {}
    for item in _split(text, ",", option):
        item = item.strip()
        m = re.fullmatch(r"([A-Za-z]+)(?:\((.*)\))?(?:/(.+))?", item, re.S)
        if m is None:
            raise QueryError(f"{option}: {item!r} is not a navigation property, optionally "
                             "with (options) or /a deeper one", option)
        name, inner, deeper = m.groups()
        raw = {}
        for part in _split(inner, ";", option) if inner else []:
            key, eq, value = part.partition("=")
            if not eq:
                raise QueryError(f"{option}: {part!r} in {name}(...) is not $option=value",
                                 option)
            raw[key.strip()] = value
        opts = options(raw, f"{option} {name}: ")
        if deeper:
            for k, v in parse_expand(deeper, option).items():
                opts.expand[k] = v
        if name in out:  # Datastreams/Sensor,Datastreams/Thing: one expansion, both inside
            out[name].expand.update(opts.expand)
        else:
            out[name] = opts
    return out


# -- the resource path -----------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    name: str
    key: str | int | None = None


def parse_path(path: str) -> tuple[list[Segment], str | None]:
    """``Things('x')/Datastreams/$ref`` as segments and the suffix ($ref, $value) if any."""
    parts = [p for p in path.split("/") if p]
    suffix = None
    if parts and parts[-1] in ("$ref", "$value"):
        suffix = parts.pop()
    segments = []
    for part in parts:
        m = re.fullmatch(r"([A-Za-z]+)(?:\((.*)\))?", part)
        if m is None:
            raise QueryError(f"{part!r} is not an entity set, an entity or a property")
        name, key = m.groups()
        if key is not None:
            if re.fullmatch(r"-?\d{1,18}", key):
                key = int(key)
            elif len(key) >= 2 and key[0] == key[-1] == "'":
                key = key[1:-1].replace("''", "'")
            else:
                raise QueryError(f"{part}: an id is a number or a 'quoted string'")
        segments.append(Segment(name, key))
    return segments, suffix
