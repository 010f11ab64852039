"""What a scenario proposes, as maps and viewers draw it: the features of
``/scenarios/{id}/changes``, and of the change events its writes send
(``oup.events.scenario_event``), one and the same, so a page that applies the events
holds what a fresh read of the changes would give.
"""
from __future__ import annotations


def proposed(catalog, store, sid: str, cid: str, fid=None) -> list[dict]:
    """The changes scenario ``sid`` makes to collection ``cid`` (to feature ``fid`` only,
    if given): each with its ``oup:collection``, and for a 3D collection ``oup:base`` and
    ``oup:top``."""
    coll = catalog[cid]
    features = store.scenario_changes(cid, sid, fid=fid)
    for f in features:
        f["properties"]["oup:collection"] = cid
        if coll.tiles3d is not None and f.get("geometry"):
            f["properties"].update(heights(f, coll.tiles3d.z_offset_attribute))
    return features


def heights(feature: dict, z_offset_attribute: str | None) -> dict:
    """``oup:base`` and ``oup:top`` of a building (its ground and roof in NAP, from its
    ``ground_level`` and ``height`` or ``roof_level``, plus the z offset its city model
    has) above the ETRS89 ellipsoid, at its footprint's centre, by RDNAPTRANS(TM)2018."""
    import shapely.geometry

    from oup.geodesy import transformer

    p = feature["properties"]
    number = lambda v: float(v) if isinstance(v, (int, float)) and not isinstance(  # noqa: E731
        v, bool) else None
    ground = (number(p.get("ground_level")) or 0.0) + \
        (number(p.get(z_offset_attribute)) or 0.0 if z_offset_attribute else 0.0)
    height = number(p.get("height"))
    if height is None and number(p.get("roof_level")) is not None:
        height = number(p["roof_level"]) - (number(p.get("ground_level")) or 0.0)
    centre = shapely.geometry.shape(feature["geometry"]).centroid
    x, y = transformer("OGC:CRS84", "EPSG:28992").transform(centre.x, centre.y)
    _, _, base = transformer("EPSG:7415", "EPSG:4937").transform(x, y, ground)
    return {"oup:base": round(base, 3), "oup:top": round(base + (height or 0.0), 3)}
