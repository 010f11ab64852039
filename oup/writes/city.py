"""What a write to a 3D collection means for its 3D Tiles, as the tiler's update takes it
(``tilers.update.update_tileset``; the app wires the two together).

A building's feature is its footprint with the attributes of its CityObject and the
numbers the import derived from the 3D geometry (``oup.catalog.readers``: ground_level,
roof_level, height, lod, cityobject_id, cityobject_type). So a GeoJSON write carries:

- new attribute values -> the same values in the 3D tiles' property tables;
- a new ground_level -> the building moved up or down to it;
- a new footprint, or a new roof_level or height -> the building made again as an LoD1
  block: the footprint extruded from its ground level to its roof (a GeoJSON feature
  holds no more of a 3D shape than that);
- a new feature -> an LoD1 block the same way; a deleted one -> gone from the tiles.

A write in CityJSONFeature form (``application/city+json``) carries the full 3D shape:
the feature is what the import makes of its city object (footprint, attributes, the
derived numbers), and the tiles take the city object itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import shapely
import shapely.geometry

from oup.errors import InvalidQuery, Unprocessable
from oup.store.base import Feature

CITY_JSON = "application/city+json"
MM = 0.001
DERIVED = ("cityobject_id", "cityobject_type", "lod", "ground_level", "roof_level", "height")


@dataclass
class CityRecord(Feature):
    """The stored form of a CityJSONFeature written, with the feature (for the tiles)."""

    city: dict | None = None


def city_record(doc, lod: str | None = None) -> tuple[dict, dict]:
    """A CityJSONFeature sent to a 3D collection, checked: (the GeoJSON Feature its import
    makes: the footprint, in the model's CRS, and the properties; the CityJSONFeature).
    One building a write: one top-level city object (with its parts, if any). The
    vertices are whole numbers under the feature's own ``transform``, as ``oup tile
    --update`` takes them (a CityJSONSeq keeps it in its header)."""
    from oup.catalog.importers import ImportReport
    from oup.catalog.readers import city_object_footprints
    from oup.cityjson import vertices_of

    if not isinstance(doc, dict) or doc.get("type") != "CityJSONFeature":
        raise InvalidQuery('the body must be a CityJSONFeature ("type": "CityJSONFeature")',
                           "type")
    objs = doc.get("CityObjects")
    if not isinstance(objs, dict) or not all(isinstance(o, dict) for o in objs.values()):
        raise InvalidQuery("CityObjects must be an object of city objects", "CityObjects")
    tops = [k for k, o in objs.items() if not o.get("parents")]
    if len(tops) != 1:
        raise Unprocessable(f"a write is one building: give one top-level city object (with "
                            f"its parts), not {len(tops)}", "CityObjects")
    t = doc.get("transform")
    if not (isinstance(t, dict) and all(isinstance(t.get(k), list) and len(t[k]) == 3
                                        for k in ("scale", "translate"))):
        raise InvalidQuery('give the vertices\' transform in the feature: "transform": '
                           '{"scale": [sx, sy, sz], "translate": [tx, ty, tz]}', "transform")
    report = ImportReport("write")
    try:
        verts = vertices_of(doc, t)
        found = list(city_object_footprints(objs, verts, lod, report))
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise Unprocessable(f"the city object's geometry cannot be read ({type(exc).__name__}: "
                            f"{str(exc)[:80]}): vertices are [x, y, z] whole numbers and "
                            f"boundaries index them", "CityObjects") from None
    if not found:
        raise Unprocessable(f"the city object has no footprint ("
                            f"{', '.join(report.skipped) or 'no geometry'})", "CityObjects")
    footprint, props = found[0]
    return ({"type": "Feature", "geometry": shapely.geometry.mapping(footprint),
             "properties": props}, doc)


def tiles_change(kind: str, before: dict | None, after: dict | None, record,
                 z_offset: str | None = None) -> dict | None:
    """The tiler's change for one write (``record``: the stored form, its geometry in the
    collection's CRS of record), or None when the 3D tiles do not show what changed."""
    if kind != "deleted" and getattr(record, "city", None) is not None:
        return record.city  # the full 3D shape, as sent
    old = (before or {}).get("properties") or {}
    new = (after or {}).get("properties") or {}
    oid = str(new.get("cityobject_id") or old.get("cityobject_id") or
              (after or before or {}).get("id"))
    if kind == "deleted":
        return {"id": oid, "deleted": True}
    shape_changed = kind == "created" or (before or {}).get("geometry") != (after or {}).get(
        "geometry") or any(old.get(k) != new.get(k) for k in ("roof_level", "height"))
    if shape_changed and record is not None and record.geometry is not None:
        return block(oid, record.geometry, new)
    attributes = {k: v for k, v in new.items() if k not in DERIVED and old.get(k) != v}
    change: dict = {"id": oid, "attributes": attributes}
    if old.get("ground_level") != new.get("ground_level") and new.get("ground_level") is not None \
            and not z_offset:
        change["footprint_height"] = float(new["ground_level"])
    return change if attributes or "footprint_height" in change else None


def block(oid: str, footprint, props: dict) -> dict:
    """A CityJSONFeature: ``footprint`` (x, y in the model's CRS) extruded from
    ground_level to roof_level (or ground_level + height) as an LoD1 Solid."""
    ground = float(props.get("ground_level") or 0.0)
    roof = float(props.get("roof_level") or ground + float(props.get("height") or 3.0))
    polygons = list(getattr(footprint, "geoms", [footprint]))
    vertices: list[list[float]] = []
    shells = []
    for poly in polygons:
        ring = shapely.geometry.polygon.orient(poly, 1.0).exterior.coords[:-1]
        base = len(vertices)
        n = len(ring)
        vertices += [[x, y, ground] for x, y, *_ in ring] + [[x, y, roof] for x, y, *_ in ring]
        bottom = [list(reversed(range(base, base + n)))]
        top = [list(range(base + n, base + 2 * n))]
        walls = [[[base + i, base + (i + 1) % n, base + n + (i + 1) % n, base + n + i]]
                 for i in range(n)]
        shells.append([bottom, top, *walls])
    attributes = {k: v for k, v in props.items() if k not in DERIVED}
    # CityJSON keeps vertices as whole numbers under a transform: millimetres here
    origin = [min(v[i] for v in vertices) for i in range(3)]
    whole = [[round((v[i] - origin[i]) / MM) for i in range(3)] for v in vertices]
    return {"type": "CityJSONFeature", "id": oid, "vertices": whole,
            "transform": {"scale": [MM, MM, MM], "translate": origin},
            "CityObjects": {oid: {"type": props.get("cityobject_type") or "Building",
                                  "attributes": attributes,
                                  "geometry": [{"type": "MultiSolid", "lod": "1",
                                                "boundaries": [[shell] for shell in shells]}]}}}


def merge_changes(changes: list[dict]) -> list[dict]:
    """Changes that came in one after another, as one list the tiler applies together
    (it keeps the last change of each id): attribute changes of one building add up, onto
    an earlier new form of it too; a new form or a deletion replaces what came before."""
    out: dict[str, dict] = {}
    for change in changes:
        before = out.pop(change["id"], None)
        if before is not None and "attributes" in change and not before.get("deleted"):
            if before.get("type") == "CityJSONFeature":
                obj = before["CityObjects"][change["id"]]
                obj["attributes"] = {**obj.get("attributes", {}), **change["attributes"]}
                change = before
            else:
                change = {**before, **change,
                          "attributes": {**before["attributes"], **change["attributes"]}}
        out[change["id"]] = change
    return list(out.values())
