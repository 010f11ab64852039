"""Extensions joined to their geometry: an attribute table (CSV, or any table GDAL reads)
whose key names a feature of another collection (e.g. CBS region codes and the
neighbourhood polygons), or counts of another collection's features per area (e.g.
residents' reports per neighbourhood); with the declared disclosure control applied to
every row.
"""
from __future__ import annotations

from shapely.geometry import shape

from oup.catalog import Collection
from oup.catalog.readers import ImportError_, read_rows
from oup.catalog.tables import TableError
from oup.store import FeatureStore


def _areas(coll: Collection, store: FeatureStore, cid: str, key: str,
           fields: tuple[str, str]):
    """Collection ``cid``'s features by their property ``key``: (geometry in its own CRS,
    in CRS84, properties); and its source CRS. ``fields``: what the errors name (the
    declaration of ``cid``, of ``key``)."""
    from oup.store import Query, StoreError
    from oup.store.geometry import native_crs

    where = coll.folder / "collection.yml"
    try:
        extent = store.extent(cid)
        names = {f.name for f in store.fields(cid)}
    except StoreError:
        raise ImportError_(f"{where}: {fields[0]}: import {cid!r} first (its geometries "
                           "are needed)") from None
    if key not in names:
        raise ImportError_(f"{where}: {fields[1]}: {cid!r} has no property {key!r}")
    native = store.query(cid, Query(limit=1_000_000, crs=native_crs(extent)))
    wgs = store.query(cid, Query(limit=1_000_000))
    return {f["properties"][key]: (shape(f["geometry"]), shape(g["geometry"]), f["properties"])
            for f, g in zip(native.features, wgs.features)}, extent["source_crs"]


def joined_rows(coll: Collection, store: FeatureStore, report):
    """Rows of an attribute table, each with the geometry of its key in another collection."""
    join = coll.join
    where = coll.folder / "collection.yml"
    geoms, crs = _areas(coll, store, join.collection, join.property,
                         ("join.collection", "join.property"))
    rows = []
    for source in coll.sources:
        path = coll.source_path(source)
        try:
            names, table = read_rows(path, source, report)
        except TableError as exc:
            raise ImportError_(str(exc)) from None
        if join.key not in names:
            raise ImportError_(f"{where}: join.key: no column {join.key!r} in {path.name}")
        for row in table:
            key = row.get(join.key)
            if key in (None, ""):
                report.skipped[f"missing {join.key}"] += 1
            elif str(key) not in geoms and key not in geoms:
                report.skipped[f"unmatched {join.key} (not in {join.collection})"] += 1
            else:
                g, g84, _ = geoms.get(key) or geoms[str(key)]
                rows.append((g, g84, {**source.attributes, **row}))
    _numeric_columns(rows, report)
    return _protected(coll, rows, report), crs


def counted_rows(coll: Collection, store: FeatureStore, report):
    """Per area of ``counts.areas``: its geometry, its key and title, and how many
    features of ``counts.of`` lie in it (counted by the store, in SQL), protected."""
    from pygeofilter import ast

    from oup.store import Query

    counts = coll.counts
    areas, crs = _areas(coll, store, counts.areas, counts.key, ("counts.areas", "counts.key"))
    title = coll.title_field  # e.g. the area's name, copied from it
    rows = []
    for key, (g, g84, props) in areas.items():
        inside = ast.GeometryIntersects(ast.Attribute("geometry"), g84)
        found = store.query(counts.of, Query(filter=inside, limit=1, skip_geometry=True))
        row = {counts.key: key, "count": found.number_matched}
        if title and title != counts.key and title in props:
            row[title] = props[title]
        rows.append((g, g84, row))
    return _protected(coll, rows, report), crs


def _protected(coll: Collection, rows: list, report) -> list:
    """``rows`` under the collection's disclosure rules (if it declares any)."""
    where = coll.folder / "collection.yml"
    if coll.disclosure:
        from oup.catalog.disclosure import DisclosurePolicy, protect

        policy = DisclosurePolicy.from_config(coll.disclosure)
        present = {k for _, _, p in rows for k in p}
        for name in sorted(policy.fields() - present):
            raise ImportError_(f"{where}: disclosure: {name!r} is in no source")
        protected = []
        for g, g84, props in rows:
            safe, hidden = protect(props, policy)
            for name in hidden:
                report.suppressed[name] += 1
            protected.append((g, g84, safe))
        rows = protected
    return rows


def _numeric_columns(rows, report) -> None:
    """In a column of numbers, a value that is not one is a type error: counted, emptied."""
    columns = {k for _, _, p in rows for k in p}
    for name in columns:
        values = [p.get(name) for _, _, p in rows]
        numbers = sum(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        others = [v for v in values if isinstance(v, str)]
        if numbers and others and numbers >= len(others):
            report.skipped[f"type error in {name} (not a number), left empty"] += len(others)
            for _, _, p in rows:
                if isinstance(p.get(name), str):
                    p[name] = None
