"""Extensions joined to their geometry: an attribute table (CSV, or any table GDAL reads)
whose key names a feature of another collection (e.g. CBS region codes and the
neighbourhood polygons), with the declared disclosure control applied to every row.
"""
from __future__ import annotations

from shapely.geometry import shape

from oup.catalog import Collection
from oup.catalog.readers import ImportError_, read_rows
from oup.catalog.tables import TableError
from oup.store import FeatureStore


def joined_rows(coll: Collection, store: FeatureStore, report):
    """Rows of an attribute table, each with the geometry of its key in another collection."""
    from oup.store import Query, StoreError
    from oup.store.geometry import native_crs

    join = coll.join
    where = coll.folder / "collection.yml"
    try:
        extent = store.extent(join.collection)
        names = {f.name for f in store.fields(join.collection)}
    except StoreError:
        raise ImportError_(f"{where}: join.collection: import {join.collection!r} first "
                           "(the join needs its geometries)") from None
    if join.property not in names:
        raise ImportError_(f"{where}: join.property: {join.collection!r} has no property "
                           f"{join.property!r}")
    native = store.query(join.collection, Query(limit=1_000_000, crs=native_crs(extent)))
    wgs = store.query(join.collection, Query(limit=1_000_000))
    geoms = {f["properties"][join.property]: (shape(f["geometry"]), shape(g["geometry"]))
             for f, g in zip(native.features, wgs.features)}
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
                g, g84 = geoms.get(key) or geoms[str(key)]
                rows.append((g, g84, {**source.attributes, **row}))
    _numeric_columns(rows, report)
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
    return rows, extent["source_crs"]


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
