"""What a write to a 3D collection means for its 3D Tiles (oup/writes/city.py)."""
from __future__ import annotations

import shapely

from oup.writes.city import block, merge_changes, tiles_change


def _feature(**props):
    base = {"cityobject_id": "b1", "ground_level": 0.0, "roof_level": 9.0, "height": 9.0,
            "bron_geo": "2008"}
    return {"type": "Feature", "id": 1, "geometry": {"type": "Polygon", "coordinates": [
        [[0, 0], [1, 0], [1, 1], [0, 0]]]}, "properties": {**base, **props}}


def test_an_attribute_change_is_an_attribute_change_and_a_new_roof_a_new_block():
    before, after = _feature(), _feature(bron_geo="2026")
    assert tiles_change("updated", before, after, None) == {
        "id": "b1", "attributes": {"bron_geo": "2026"}}
    assert tiles_change("updated", before, _feature(ground_level=2.5), None) == {
        "id": "b1", "attributes": {}, "footprint_height": 2.5}
    assert tiles_change("updated", before, before, None) is None  # nothing the tiles show

    class Record:
        geometry = shapely.Polygon([(10, 10), (20, 10), (20, 20), (10, 20)])

    taller = tiles_change("updated", before, _feature(roof_level=12.0, height=12.0), Record)
    assert taller["type"] == "CityJSONFeature" and taller["id"] == "b1"
    assert tiles_change("deleted", before, None, None) == {"id": "b1", "deleted": True}


def test_a_block_is_the_footprint_from_ground_to_roof_in_whole_millimetres():
    doc = block("b2", shapely.Polygon([(100, 200), (110, 200), (110, 205), (100, 205)]),
                {"ground_level": 1.0, "roof_level": 7.5, "cityobject_type": "Building",
                 "name": "x"})
    scale, origin = doc["transform"]["scale"], doc["transform"]["translate"]
    xyz = [[v[i] * scale[i] + origin[i] for i in range(3)] for v in doc["vertices"]]
    assert {round(z, 3) for _, _, z in xyz} == {1.0, 7.5}
    assert {(round(x, 3), round(y, 3)) for x, y, _ in xyz} == {
        (100, 200), (110, 200), (110, 205), (100, 205)}
    assert all(isinstance(c, int) for v in doc["vertices"] for c in v)
    [shell] = doc["CityObjects"]["b2"]["geometry"][0]["boundaries"][0]
    assert len(shell) == 2 + 4  # bottom, top and a wall per edge
    assert doc["CityObjects"]["b2"]["attributes"] == {"name": "x"}


def test_changes_in_a_row_add_up_per_building():
    merged = merge_changes([
        {"id": "a", "attributes": {"x": 1}},
        {"id": "b", "attributes": {"y": 1}},
        {"id": "a", "attributes": {"z": 2}},
        {"id": "b", "deleted": True},
        {"id": "c", "type": "CityJSONFeature", "CityObjects": {"c": {"attributes": {"k": 0}}}},
        {"id": "c", "attributes": {"k": 5}},
    ])
    assert {m["id"]: m for m in merged} == {
        "a": {"id": "a", "attributes": {"x": 1, "z": 2}},
        "b": {"id": "b", "deleted": True},
        "c": {"id": "c", "type": "CityJSONFeature",
              "CityObjects": {"c": {"attributes": {"k": 5}}}}}
