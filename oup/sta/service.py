"""Reading SensorThings entities: the resource path walked link by link, the query options
applied in SQL (``oup.store.sta_sql``), the answer in the SensorThings JSON form
(``@iot.id``, ``@iot.selfLink``, navigation links, ``@iot.count``, ``@iot.nextLink``).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable
from urllib.parse import urlencode

from oup.errors import NotFound
from oup.sensors.observations import iso_us
from oup.sta.odata import DATA_ARRAY, Options, QueryError, Segment, options as parse_options, parse_path
from oup.store.sta_sql import BY_PLURAL, ENTITIES, Entity, Select, StaSql

DEFAULT_TOP = 100


def key_text(key) -> str:
    """An id as it stands in a path: a number bare, a string quoted."""
    return str(key) if isinstance(key, int) else "'" + str(key).replace("'", "''") + "'"


class Entities:
    def __init__(self, sql: StaSql, root: str):
        self.sql, self.root = sql, root.rstrip("/")

    def self_link(self, entity: Entity, key) -> str:
        return f"{self.root}/{entity.plural}({key_text(key)})"

    # -- one request ----------------------------------------------------------------------
    def answer(self, path: str, raw: dict[str, str], url: str) -> dict | str | None:
        """The document for ``path`` (below the service root) with options ``raw``."""
        try:
            return self._answer(path, raw, url)
        except RecursionError:  # (a filter or an $expand nested a thousand deep)
            raise QueryError("the query options are nested too deeply") from None

    def _answer(self, path: str, raw: dict[str, str], url: str) -> dict | str | None:
        segments, suffix = parse_path(path)
        if not segments:
            raise NotFound("no entity set named")
        opts = parse_options(raw)
        entity, sel, single, prop, missing = self._walk(segments)
        if opts.result_format is not None:
            _arrays_fit(entity, single or prop is not None or suffix is not None, opts)
        if prop is not None:
            return self._property(entity, sel, prop, suffix, missing)
        if suffix == "$value":
            raise QueryError("$value follows a property (Things('x')/name/$value)")
        if single:
            rows = self._rows(entity, sel, opts, 1, 0)
            if not rows:
                self._absent(missing)
                raise NotFound(f"no such {entity.name} at {path}")
            if suffix == "$ref":
                return {"@iot.selfLink": self.self_link(entity, rows[0]["_id"])}
            return self._render(entity, rows[0], opts)
        self._apply(entity, sel, opts)
        top = DEFAULT_TOP if opts.top is None else opts.top
        rows = self._rows(entity, sel, opts, top + 1, opts.skip, applied=True)
        if not rows:
            self._absent(missing)
        doc: dict = {}
        if opts.count:
            doc["@iot.count"] = self.sql.count(sel)
        if len(rows) > top:
            rows = rows[:top]
            doc["@iot.nextLink"] = _next(url, raw, opts.skip + top, top)
        if suffix == "$ref":
            doc["value"] = [{"@iot.selfLink": self.self_link(entity, r["_id"])} for r in rows]
        elif opts.result_format == DATA_ARRAY:
            doc["value"] = self._arrays(rows, opts)
        else:
            self._expand(entity, rows, opts)
            render = self._renderer(entity, opts)
            doc["value"] = [render(r) for r in rows]
        return doc

    def existing(self, entity: Entity, keys: list) -> set:
        """Which of ``keys`` (text) are ids of ``entity``: PostgreSQL in one statement with
        the keys as one array (a thousand parameters cost more to send and plan than the
        look-up), SQLite in one per 500."""
        id_sql = self.sql.id_sql(entity)
        if self.sql.dialect.name == "postgresql":
            sel = Select(entity, [f"{id_sql} = ANY(CAST(? AS text[]))"], [list(map(str, keys))])
            return {r["_id"] for r in self.sql.fetch(sel, [], len(keys) + 1, 0)}
        found = set()
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            sel = Select(entity, [f"{id_sql} IN ({', '.join('?' * len(chunk))})"], list(chunk))
            found |= {r["_id"] for r in self.sql.fetch(sel, [], len(chunk), 0)}
        return found

    # -- the path -----------------------------------------------------------------------
    def _walk(self, segments: list[Segment]):
        first = segments[0]
        entity = BY_PLURAL.get(first.name)
        if entity is None:
            raise NotFound(f"no entity set {first.name!r}; there are "
                           f"{', '.join(BY_PLURAL)}")
        sel = Select(entity)
        missing = None  # (a parent not read, the 404 if it is not there)
        single = first.key is not None
        if single:
            self._key(entity, sel, first.key)
        for i, seg in enumerate(segments[1:], 1):
            if not single:
                raise QueryError(f"{seg.name} follows a set: name one entity first "
                                 f"({segments[i - 1].name}(id)/{seg.name})")
            link = entity.links.get(seg.name)
            if link is None:
                if seg.key is None and i == len(segments) - 1:
                    return entity, sel, True, seg.name, missing
                raise NotFound(f"{entity.name} has no {seg.name!r}; it links to "
                               f"{', '.join(entity.links)}")
            child = ENTITIES[link[0]]
            column, key = self.sql.link_column(child, entity)
            where = f"no such {entity.name} at {'/'.join(s.name for s in segments[:i])}"
            if i == 1 and entity.kind == "sensor" and key == "_sid":
                # the link holds the id the path names (Datastreams('x')/Observations):
                # whether that entity is there is asked only if nothing is found
                missing = (sel, where)
                value = str(first.key)
            else:
                parent = self.sql.fetch(sel, [], 1, 0)
                if not parent:
                    raise NotFound(where)
                value = parent[0][key]
            sel = Select(child, [f"{column} = ?"], [value])
            entity, single = child, not link[1]
            if seg.key is not None:
                if single:
                    raise QueryError(f"{seg.name} is one entity: it takes no id")
                self._key(entity, sel, seg.key)
                single = True
        return entity, sel, single, None, missing

    def _absent(self, missing) -> None:
        """404 when a parent the path names is not there (asked once its children are
        not found)."""
        if missing is not None and not self.sql.fetch(missing[0], [], 1, 0):
            raise NotFound(missing[1])

    def _key(self, entity: Entity, sel: Select, key) -> None:
        if entity.kind == "observation" and not isinstance(key, int):
            raise NotFound(f"an Observation's id is a number, not {key_text(key)}")
        sel.where.append(f"{self.sql.id_sql(entity)} = ?")
        # the other entities are named by text (a sensor's id, a property's name): a
        # number there is that text (PostgreSQL compares no text with a number)
        sel.params.append(key if entity.kind == "observation" else str(key))

    def _property(self, entity: Entity, sel: Select, prop: str, suffix: str | None,
                  missing=None):
        props = self.sql.props(entity)
        names = [n for n in props if n == prop or n.startswith(prop + "/")]
        if not names or prop == "id":
            raise NotFound(f"{entity.name} has no property {prop!r}")
        rows = self.sql.fetch(sel, names, 1, 0)
        if not rows:
            self._absent(missing)
            raise NotFound(f"no such {entity.name}")
        value = self._values(entity, rows[0], names).get(prop)
        if suffix == "$value":
            return "" if value is None else str(value)
        return {prop: value}

    # -- rows -----------------------------------------------------------------------------
    def _apply(self, entity: Entity, sel: Select, opts: Options) -> None:
        if opts.filter is not None:
            sql, kind = self.sql.compile(entity, opts.filter, sel.params)
            if kind not in ("bool", "null"):
                raise QueryError(f"$filter must be a condition, not a {kind} value", "$filter")
            sel.where.append(sql)
        if opts.orderby:
            sel.order, sel.order_params = self.sql.order(entity, opts.orderby)

    def _names(self, entity: Entity, opts: Options) -> list[str]:
        props = self.sql.props(entity)
        if opts.select is None:
            return [n for n in props if n != "id"]  # (the id is @iot.id)
        tops = {n.split("/")[0] for n in props}
        for name in opts.select:
            if name not in tops and name not in entity.links and name not in (
                    "id", "@iot.id", "@iot.selfLink"):
                raise QueryError(f"$select: {entity.name} has no property {name!r}; it has "
                                 f"{', '.join(sorted(tops | set(entity.links)))}", "$select")
        return [n for n in props if n.split("/")[0] in opts.select and n != "id"]

    def _rows(self, entity: Entity, sel: Select, opts: Options, limit: int, offset: int,
              applied: bool = False) -> list[dict]:
        if not applied:
            self._apply(entity, sel, opts)
        rows = self.sql.fetch(sel, self._names(entity, opts), limit, offset)
        if not applied:
            self._expand(entity, rows, opts)
        return rows

    def _expand(self, entity: Entity, rows: list[dict], opts: Options) -> None:
        for nav, sub in opts.expand.items():
            link = entity.links.get(nav)
            if link is None:
                raise QueryError(f"$expand: {entity.name} has no link {nav!r}; it links to "
                                 f"{', '.join(entity.links)}", "$expand")
            child, many = ENTITIES[link[0]], link[1]
            column, key = self.sql.link_column(child, entity)
            child_key = "_p" if column in (self.sql.P, "p.pid") else "_sid"
            keys = list(dict.fromkeys(r[key] for r in rows if r[key] is not None))
            sel = Select(child)
            self._apply(child, sel, sub)
            names = self._names(child, sub)
            top = DEFAULT_TOP if sub.top is None else sub.top
            if not keys:
                found = []
            elif many:  # one more than asked: whether a parent has more (its nextLink)
                found = self.sql.fetch_per_key(sel, column, keys, names, top + 1, sub.skip)
            else:
                found = []
                for i in range(0, len(keys), 500):
                    chunk = keys[i:i + 500]
                    part = Select(child, [f"{column} IN ({', '.join('?' * len(chunk))})",
                                          *sel.where], chunk + sel.params)
                    found += self.sql.fetch(part, names, len(chunk) + 1, 0)
            self._expand(child, found, sub)
            by_key: dict = {}
            for r in found:
                by_key.setdefault(r[child_key], []).append(r)
            counts = self.sql.count_per_key(sel, column, keys) if many and sub.count and keys \
                else {}
            render = self._renderer(child, sub)
            for r in rows:
                mine = by_key.get(r[key], [])
                rendered = [render(c) for c in mine[:top]]
                if many:
                    r[("expanded", nav)] = rendered
                    if len(mine) > top:
                        url = f"{self.self_link(entity, r['_id'])}/{nav}"
                        r[("next", nav)] = _next(url, sub.raw, sub.skip + top, top)
                    if sub.count:
                        r[("count", nav)] = counts.get(r[key], 0)
                else:
                    r[("expanded", nav)] = rendered[0] if rendered else None

    # -- the answer ---------------------------------------------------------------------
    def _arrays(self, rows: list[dict], opts: Options) -> list[dict]:
        """Observations as data arrays, one per Datastream in the order it first comes
        (the page's rows, its order within each)."""
        entity = ENTITIES["Observation"]
        components = _components(opts)
        converters = self._converters(entity, [c for c in components if c != "id"])
        groups: dict = {}
        for r in rows:
            values = _values(r, converters)
            groups.setdefault(r["_sid"], []).append(
                [r["_id"] if c == "id" else values[c] for c in components])
        datastream = ENTITIES["Datastream"]
        return [{"Datastream@iot.navigationLink": self.self_link(datastream, sid),
                 "components": components, "dataArray@iot.count": len(array),
                 "dataArray": array} for sid, array in groups.items()]

    def _values(self, entity: Entity, row: dict, names: list[str]) -> dict:
        return _values(row, self._converters(entity, names))

    def _converters(self, entity: Entity, names: list[str]) -> list[tuple]:
        """Per property: (its name, the parts before and after a '/', the function that
        makes its JSON value from the stored one, or None when it is that already)."""
        props = self.sql.props(entity)
        out = []
        for name in names:
            kind = props[name].type
            convert = {"time": iso_us, "geometry": self.sql.geometry, "string": _text}.get(kind)
            head, _, tail = name.partition("/")
            out.append((name, head, tail, convert))
        return out

    def _render(self, entity: Entity, row: dict, opts: Options) -> dict:
        return self._renderer(entity, opts)(row)

    def _renderer(self, entity: Entity, opts: Options) -> Callable[[dict], dict]:
        """The function that writes a row of ``entity`` as JSON: what holds for every row
        of an answer (the properties, their forms, the links) is worked out once."""
        sel = opts.select
        with_id = sel is None or "id" in sel or "@iot.id" in sel
        with_link = sel is None or "@iot.selfLink" in sel
        converters = self._converters(entity, self._names(entity, opts))
        navs = [nav for nav in entity.links]
        linked = {nav for nav in navs if sel is None or nav in sel}
        prefix = f"{self.root}/{entity.plural}("

        def render(row: dict) -> dict:
            doc: dict = {}
            link = prefix + key_text(row["_id"]) + ")"
            if with_id:
                doc["@iot.id"] = row["_id"]
            if with_link:
                doc["@iot.selfLink"] = link
            doc.update(_values(row, converters))
            for nav in navs:
                if ("expanded", nav) in row:
                    if ("count", nav) in row:
                        doc[f"{nav}@iot.count"] = row[("count", nav)]
                    if ("next", nav) in row:
                        doc[f"{nav}@iot.nextLink"] = row[("next", nav)]
                    doc[nav] = row[("expanded", nav)]
                elif nav in linked:
                    doc[f"{nav}@iot.navigationLink"] = f"{link}/{nav}"
            return doc

        return render


def _text(value):
    """A text column's value; a PostGIS timestamptz in the store's text form."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def _values(row: dict, converters: list[tuple]) -> dict:
    out: dict = {}
    for name, head, tail, convert in converters:
        value = row[name] if convert is None else convert(row[name])
        if tail:
            out.setdefault(head, {})[tail] = value
        else:
            out[name] = value
    return out


ARRAY_COMPONENTS = ("id", "phenomenonTime", "result", "resultTime")


def _components(opts: Options) -> list[str]:
    """A data array's columns: the ones $select names, in its order, else them all."""
    if opts.select is None:
        return list(ARRAY_COMPONENTS)
    return list(dict.fromkeys("id" if n == "@iot.id" else n for n in opts.select))


def _arrays_fit(entity: Entity, not_a_set: bool, opts: Options) -> None:
    """400 for a $resultFormat=dataArray that has no data arrays to answer."""
    if entity.name != "Observation" or not_a_set:
        raise QueryError("$resultFormat=dataArray answers a set of Observations "
                         "(Observations, Datastreams(id)/Observations, "
                         "FeaturesOfInterest(id)/Observations), not this path", "$resultFormat")
    if opts.expand:
        raise QueryError("$expand does not go with $resultFormat=dataArray: a data array "
                         "holds an observation's own properties", "$expand")
    odd = [n for n in _components(opts) if n not in ARRAY_COMPONENTS]
    if odd:
        raise QueryError(f"$select with $resultFormat=dataArray takes "
                         f"{', '.join(ARRAY_COMPONENTS)}, not {', '.join(odd)}", "$select")


def _next(url: str, raw: dict[str, str], skip: int, top: int) -> str:
    args = {k: v for k, v in raw.items() if k not in ("$skip", "$top")}
    args.update({"$top": str(top), "$skip": str(skip)})
    return f"{url}?{urlencode(args, safe='$(),;=/\'')}"

