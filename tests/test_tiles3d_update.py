"""A tileset follows a changed building without tiling the city again (tilers.update):
only the building's leaf and the coarse tiles above it get new bytes, every other file
keeps its bytes (and so its ETag), and what changed reads back in loaders.gl and passes
the Khronos glTF validator."""
import hashlib
import json
import math
import shutil
import subprocess

import numpy as np
import pyproj
import pytest

from conftest import CITY_MODELS, GRID_CACHE, ROOT
from tileset_reader import content_tiles, ecef_of
from tilers import tile
from tilers.index import INDEX_DIR, NoIndex
from tilers.update import UpdateError, update_tileset

# real clients (loaders.gl, the Khronos validator: `make test` installs them)
pytestmark = pytest.mark.slow

JS = ROOT / "tests" / "js"
BUILDINGS = 150


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The first buildings of the demo city, and a tileset of them with a few levels."""
    from oup.geodesy import install_grids

    work = tmp_path_factory.mktemp("update")
    (work / "proj").mkdir()
    for grid in GRID_CACHE.glob("*.tif"):
        shutil.copy(grid, work / "proj" / grid.name)
    install_grids(work)  # (builds them where the cache has none)
    doc = json.loads(CITY_MODELS["rotterdam-delfshaven.city.json"].read_text())
    tops = [k for k, o in doc["CityObjects"].items() if not o.get("parents")][:BUILDINGS]
    keep = {}
    for k in tops:
        keep[k] = doc["CityObjects"][k]
        keep.update({c: doc["CityObjects"][c] for c in keep[k].get("children", [])})
    doc = dict(doc, CityObjects=keep)
    src = work / "subset.city.json"
    src.write_text(json.dumps(doc))
    tile([src], work / "tiles", vertex_budget=3000, progress=False)
    return doc, work / "tiles"


@pytest.fixture
def tileset(model, tmp_path):
    out = tmp_path / "tiles"
    shutil.copytree(model[1], out)
    return out


def node(*args) -> list[dict]:
    res = subprocess.run(["node", *args], capture_output=True, text=True, timeout=300, cwd=JS)
    assert res.returncode == 0, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


def files(folder):
    """SHA-256 and mtime of every file a client can fetch (the index is the tiler's)."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                         p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file() and INDEX_DIR not in p.parts}


def tree(folder):
    """uri -> (tile, parent uri) of every content tile."""
    out = {}

    def walk(t, up):
        out[t["content"]["uri"]] = (t, up)
        for c in t.get("children", []):
            walk(c, t["content"]["uri"])
    walk(json.loads((folder / "tileset.json").read_text())["root"], None)
    return out


def ancestors(folder, uri):
    t = tree(folder)
    up = []
    while (uri := t[uri][1]) is not None:
        up.append(uri)
    return up


def where(folder, oid) -> list[dict]:
    """Every tile loaders.gl finds ``oid`` in, with its decoded properties."""
    [result] = node("metadata.mjs", str(folder / "tileset.json"), "id", oid)
    return result["matches"]


def leaves(folder) -> set:
    return {u for u, (t, _) in tree(folder).items() if not t.get("children")}


def check_valid(folder):
    """Every glb passes the Khronos validator; the tileset is whole: each content file
    there, each tile's region holds its content and its children's, refining never
    raises the error."""
    results = node("validate.mjs", str(folder / "tiles"))
    assert len(results) == len(list((folder / "tiles").glob("*.glb")))
    for r in results:
        assert r["errors"] == 0 and r["warnings"] == 0, r
    ts = json.loads((folder / "tileset.json").read_text())
    assert ts["asset"]["version"] == "1.1"
    assert ts["geometricError"] >= ts["root"]["geometricError"]
    to_llh = pyproj.Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)
    for t, world, _ in content_tiles(folder):
        assert (folder / t["content"]["uri"]).is_file()
        w, s, e, n, h0, h1 = t["boundingVolume"]["region"]
        xyz = ecef_of(folder, t, world)
        lon, lat, h = to_llh.transform(xyz[:, 0], xyz[:, 1], xyz[:, 2])
        eps = 1e-8  # radians (6 cm): the glb's 2 mm quantisation is well inside
        assert (np.radians(lon) >= w - eps).all() and (np.radians(lon) <= e + eps).all()
        assert (np.radians(lat) >= s - eps).all() and (np.radians(lat) <= n + eps).all()
        assert (h >= h0 - 0.05).all() and (h <= h1 + 0.05).all()
        for c in t.get("children", []):
            cw, cs, ce, cn, ch0, ch1 = c["boundingVolume"]["region"]
            assert w <= cw and s <= cs and ce <= e and cn <= n and h0 <= ch0 and ch1 <= h1
            assert c["geometricError"] <= t["geometricError"]


def largest(doc) -> str:
    """The largest building: a coarse tile carries the largest first, so it stands in
    every tile above its leaf."""
    verts = np.asarray(doc["vertices"], float)

    def size(obj):
        used = verts[sorted({v for g in obj["geometry"] for sh in g["boundaries"] for s in sh
                             for r in s for v in r})]
        return np.ptp(used, axis=0).max()
    return max((k for k, o in doc["CityObjects"].items() if not o.get("parents")),
               key=lambda k: size(doc["CityObjects"][k]))


def test_the_tiler_keeps_an_index_of_every_building(model):
    doc, folder = model
    from tilers.index import load_index

    index = load_index(folder)
    assert sorted(index.objects["id"].tolist()) == sorted(
        k for k, o in doc["CityObjects"].items() if not o.get("parents"))
    on_disk = {f"tiles/{i}.glb" for i in index.nodes["id"].tolist()}
    assert on_disk == set(tree(folder)) and len(on_disk) >= 5
    assert {f"tiles/{i}.glb" for i in index.nodes["id"][index.objects["leaf"]]} == leaves(folder)
    assert len(ancestors(folder, sorted(leaves(folder))[0])) >= 1  # levels above the leaves


def test_changed_attributes_rewrite_its_leaf_and_the_tiles_above_only(model, tileset):
    doc, _ = model
    oid = largest(doc)
    before = where(tileset, oid)
    [leaf] = [m["uri"] for m in before if m["uri"] in leaves(tileset)]
    assert {m["uri"] for m in before} == {leaf, *ancestors(tileset, leaf)}
    old = files(tileset)
    report = update_tileset(tileset, [{"id": oid, "attributes": {
        "bron_geo": "survey of 2025", "TerrainHeight": 3.25}}])
    new = files(tileset)
    changed = {k for k in old if old[k] != new[k]}
    assert changed == {leaf, *ancestors(tileset, leaf)}, changed
    assert set(new) == set(old)
    for k in changed:  # new bytes, a new mtime: the served ETag (path, mtime, size) changes
        assert old[k][0] != new[k][0] and old[k][1] != new[k][1]
    assert report.changed == [oid] and set(report.rewritten) == changed
    after = where(tileset, oid)
    assert {m["uri"] for m in after} == {m["uri"] for m in before}
    for m in after:  # at every level it is drawn
        assert m["props"]["bron_geo"] == "survey of 2025"
        assert m["props"]["TerrainHeight"] == 3.25
        assert m["props"]["status"] == before[0]["props"]["status"]
    check_valid(tileset)


def draco_bytes(path) -> bytes:
    return draco_bytes_of(path.read_bytes())


def draco_bytes_of(glb: bytes) -> bytes:
    """The compressed mesh of a glb: the bytes of its Draco buffer view."""
    from tilers.gltf import unpack_glb

    gltf, binary = unpack_glb(glb)
    prim = gltf["meshes"][0]["primitives"][0]
    view = gltf["bufferViews"][prim["extensions"]["KHR_draco_mesh_compression"]["bufferView"]]
    return binary[view["byteOffset"]:view["byteOffset"] + view["byteLength"]]


def test_a_changed_value_keeps_every_mesh_and_matches_tiling_afresh(model, tileset, tmp_path):
    """An attribute change rewrites only the property tables: every tile that draws the
    building keeps its Draco bytes, and each glb is what tiling the changed city gives."""
    doc, _ = model
    oid = largest(doc)
    holding = {m["uri"] for m in where(tileset, oid)}
    assert len(holding) >= 2  # its leaf and a coarse tile at least
    meshes = {u: draco_bytes(tileset / u) for u in holding}
    report = update_tileset(tileset, [{"id": oid, "attributes": {"TerrainHeight": 7.125}}])
    assert set(report.rewritten) == holding
    for u in holding:
        assert draco_bytes(tileset / u) == meshes[u], u
    found = where(tileset, oid)
    assert {m["uri"] for m in found} == holding
    assert all(m["props"]["TerrainHeight"] == 7.125 for m in found)
    # the reference: the city with the new value, tiled from scratch as `oup tile` does
    # (a number changed: the schema stays, so the bytes can be compared)
    changed = json.loads(json.dumps(doc))
    changed["CityObjects"][oid]["attributes"]["TerrainHeight"] = 7.125
    (tmp_path / "changed.city.json").write_text(json.dumps(changed))
    tile([tmp_path / "changed.city.json"], tmp_path / "afresh", vertex_budget=3000,
         progress=False)
    ours, afresh = files(tileset), files(tmp_path / "afresh")
    assert set(ours) == set(afresh)
    assert [k for k in ours if ours[k][0] != afresh[k][0]] == []
    check_valid(tileset)


def test_a_tile_that_is_not_the_glb_the_index_describes_is_made_again(model, tileset):
    doc, _ = model
    oid = largest(doc)
    root = tree(tileset)
    [root_uri] = [u for u, (_, up) in root.items() if up is None]
    good = (tileset / root_uri).read_bytes()
    (tileset / root_uri).write_bytes(b"not a glb")
    update_tileset(tileset, [{"id": oid, "attributes": {"TerrainHeight": 4.5}}])
    assert draco_bytes(tileset / root_uri) == draco_bytes_of(good)
    assert {m["props"]["TerrainHeight"] for m in where(tileset, oid)} == {4.5}


def test_a_deleted_building_is_gone_from_every_tile(model, tileset):
    doc, _ = model
    oid = largest(doc)
    old = files(tileset)
    above = {m["uri"] for m in where(tileset, oid)}
    report = update_tileset(tileset, [{"id": oid, "deleted": True},
                                      {"id": "no-such-building", "deleted": True}])
    assert report.deleted == [oid] and report.unknown == ["no-such-building"]
    assert where(tileset, oid) == []
    new = files(tileset)
    changed = {k for k in old if old[k] != new[k]} - {"tileset.json"}
    assert changed == above  # its leaf and every tile above it: each drew it
    check_valid(tileset)


def _moved_copy(doc, oid, new_id, dx, dy) -> dict:
    """``oid`` as a CityJSONFeature of its own, ``dx``, ``dy`` metres away, under the
    model's transform (integer vertices)."""
    obj = json.loads(json.dumps(doc["CityObjects"][oid]))
    used = sorted({v for g in obj["geometry"] for sh in g["boundaries"] for s in sh
                   for r in s for v in r})
    at = {v: i for i, v in enumerate(used)}
    for g in obj["geometry"]:
        g["boundaries"] = [[[[at[v] for v in r] for r in s] for s in sh] for sh in g["boundaries"]]
    scale = doc["transform"]["scale"]
    shift = [round(dx / scale[0]), round(dy / scale[1]), 0]
    verts = [[a + b for a, b in zip(doc["vertices"][v], shift)] for v in used]
    return {"type": "CityJSONFeature", "id": new_id, "CityObjects": {new_id: obj},
            "vertices": verts}


def test_an_added_building_appears_in_one_leaf_and_the_volumes_grow(model, tileset):
    doc, _ = model
    oid = largest(doc)
    near = _moved_copy(doc, oid, "NEW-near", 4.0, 3.0)
    far = _moved_copy(doc, oid, "NEW-far", 1500.0, 0.0)  # east of every tile
    old_root = json.loads((tileset / "tileset.json").read_text())["root"]["boundingVolume"]
    report = update_tileset(tileset, [near, far], transform=doc["transform"], crs="EPSG:7415")
    assert report.added == ["NEW-near", "NEW-far"]
    for new_id in ("NEW-near", "NEW-far"):
        found = where(tileset, new_id)
        in_leaves = [m for m in found if m["uri"] in leaves(tileset)]
        assert len(in_leaves) == 1, found
        assert in_leaves[0]["vertices"] > 0
        assert found[0]["props"]["bron_tex"] == doc["CityObjects"][oid]["attributes"]["bron_tex"]
    # the near copy goes where its original is (its centre is 5 m off, in the same cell)
    [leaf] = [m["uri"] for m in where(tileset, oid) if m["uri"] in leaves(tileset)]
    assert leaf in {m["uri"] for m in where(tileset, "NEW-near")}
    root = json.loads((tileset / "tileset.json").read_text())["root"]["boundingVolume"]
    metres = 6_378_137 * math.cos(old_root["region"][1])  # a radian of longitude here
    assert (root["region"][2] - old_root["region"][2]) * metres > 100  # grown east
    check_valid(tileset)  # which holds the far copy inside its leaf's region and the root's


def test_buildings_added_to_a_leaf_are_a_part_of_their_own_until_it_has_parts_enough(
        model, tileset, monkeypatch):
    """A leaf where buildings only came keeps the bytes of its mesh and gets a part (a
    glTF primitive) for them, drawn and picked as the others; with parts enough, or when
    a building that was there changes shape, the leaf is meshed whole again."""
    import tilers.update
    from tilers.gltf import parts_of

    monkeypatch.setattr(tilers.update, "MAX_PARTS", 3)
    doc, _ = model
    oid = largest(doc)
    [leaf] = [m["uri"] for m in where(tileset, oid) if m["uri"] in leaves(tileset)]
    [whole] = parts_of((tileset / leaf).read_bytes())[0]
    others = {u: b for u, b in files(tileset).items() if u != leaf}

    def parts() -> list:
        return parts_of((tileset / leaf).read_bytes())[0]

    def add(n: int):
        return update_tileset(tileset, [_moved_copy(doc, oid, f"NEW-{n}", 4.0 + n, 3.0)],
                              transform=doc["transform"])

    assert add(1).added == ["NEW-1"]
    first, added = parts()
    assert first == whole and added.features == 1
    [shown] = [m for m in where(tileset, "NEW-1") if m["uri"] == leaf]
    assert shown["parts"] == 2 and shown["inPart"] == 1 and shown["vertices"] > 0
    assert shown["props"]["bron_tex"] == doc["CityObjects"][oid]["attributes"]["bron_tex"]
    [kept] = [m for m in where(tileset, oid) if m["uri"] == leaf]
    assert kept["inPart"] == 0 and kept["vertices"] > 0
    # only the leaf and the tiles above it changed (the coarse ones draw its block)
    assert {u for u, b in files(tileset).items() if u in others and others[u] != b} <= \
        set(ancestors(tileset, leaf))
    check_valid(tileset)  # the Khronos validator on the leaf of two primitives

    add(2)
    assert len(parts()) == 3 and parts()[:2] == [first, added]
    add(3)  # 3 parts already: meshed whole, the new one with the others
    [remade] = parts()
    assert remade.features == whole.features + 3
    for n in (1, 2, 3):
        [m] = [m for m in where(tileset, f"NEW-{n}") if m["uri"] == leaf]
        assert m["parts"] == 1 and m["vertices"] > 0
    add(4)
    assert len(parts()) == 2
    moved = _moved_copy(doc, oid, oid, 0.0, 2.0)  # one that was there changes shape
    update_tileset(tileset, [moved], transform=doc["transform"])
    assert len(parts()) == 1 and parts()[0].features == whole.features + 4
    check_valid(tileset)


def test_coarse_tiles_over_new_buildings_get_a_part_for_their_blocks(model, tileset,
                                                                     monkeypatch):
    """A coarse tile that draws every building under it, where buildings only came,
    keeps its mesh and gets a part for their blocks, also when the updates that brought
    them postponed it (one part for all of them). Its table keeps its rows and gets
    theirs, unless values of its buildings changed in that stretch. A shape that changes
    under it has it meshed whole again."""
    import tilers.update
    from tilers.gltf import parts_of
    from tilers.spill import read_row

    doc, _ = model
    oid = largest(doc)
    [leaf] = [m["uri"] for m in where(tileset, oid) if m["uri"] in leaves(tileset)]
    above = ancestors(tileset, leaf)
    assert len(above) >= 2
    meshed, run_job = [], tilers.update.run_job  # the tiles meshed (and compressed) whole
    monkeypatch.setattr(tilers.update, "run_job", lambda job: meshed.append(
        f"tiles/{job.name}.glb") or run_job(job))
    rows, load_records = [], tilers.update.load_records  # how many rows each table read
    monkeypatch.setattr(tilers.update, "load_records", lambda places, read=None: (
        rows.append(len(places)) if read is read_row else None) or load_records(places, read))

    def parts(uri) -> list:
        return parts_of((tileset / uri).read_bytes())[0]

    def add(n: int, **kw):
        return update_tileset(tileset, [_moved_copy(doc, oid, f"NEW-{n}", 4.0 + n, 3.0)],
                              transform=doc["transform"], **kw)

    def shown(n: int) -> dict:
        return {m["uri"]: m for m in where(tileset, f"NEW-{n}")}

    # texts of up to 100 kinds an enum (255 in a city): the ids of these 150 are text
    # from the first new one on, and the tileset's schema stays as more come
    monkeypatch.setattr("tilers.tileset.ENUM_MAX", 100)
    whole = {u: parts(u)[0] for u in above}
    status = {m["uri"]: m["props"]["status"] for m in where(tileset, oid)}
    add(1)
    assert meshed == []  # its leaf and every tile above it grown, none meshed whole
    for u in above:
        first, added = parts(u)
        assert first == whole[u] and added.features == 1
    one = shown(1)
    assert set(one) == {leaf, *above}
    for u in above:  # its block, drawn from the new part, with its attributes
        assert one[u]["parts"] == 2 and one[u]["inPart"] == 1 and one[u]["vertices"] > 0
        assert one[u]["props"]["bron_tex"] == doc["CityObjects"][oid]["attributes"]["bron_tex"]
    check_valid(tileset)

    rows.clear()
    add(2)
    assert meshed == [] and rows == [1] * (1 + len(above))  # of each table, its row read
    assert {m["uri"]: m["props"]["status"] for m in where(tileset, oid)} == status
    assert all(shown(2)[u]["inPart"] == 2 and shown(2)[u]["props"]["bron_tex"] ==
               one[u]["props"]["bron_tex"] for u in above)

    assert add(3, interrupt=lambda: True).postponed == above  # more writes waited
    assert add(4, interrupt=lambda: True).postponed == above
    rows.clear()
    assert sorted(update_tileset(tileset, []).rewritten) == sorted(above)
    assert meshed == [] and rows == [2] * len(above)  # of each table, their 2 rows read
    for u in above:
        assert [p.features for p in parts(u)] == [whole[u].features, 1, 1, 2]
        assert parts(u)[0] == whole[u]
    for n in (3, 4):
        drawn = shown(n)
        assert all(drawn[u]["inPart"] == 3 and drawn[u]["vertices"] > 0 for u in above)
    check_valid(tileset)

    add(5, interrupt=lambda: True)
    update_tileset(tileset, [{"id": oid, "attributes": {"TerrainHeight": 7.125}}],
                   interrupt=lambda: True)  # a value, in the same stretch
    rows.clear()
    update_tileset(tileset, [])
    assert meshed == [] and max(rows) > 2  # tables read whole: a value changed
    assert {m["props"]["TerrainHeight"] for m in where(tileset, oid)} == {7.125}
    assert all(len(parts(u)) == 5 and shown(5)[u]["inPart"] == 4 for u in above)

    add(6, interrupt=lambda: True)  # an addition, then a shape that was there moves
    update_tileset(tileset, [{"id": oid, "footprint_height": _lowest(doc, oid) + 1}],
                   interrupt=lambda: True)
    update_tileset(tileset, [])
    assert set(above) <= set(meshed)
    for u in above:
        [remade] = parts(u)
        assert remade.features == whole[u].features + 6
    assert all(shown(6)[u]["parts"] == 1 for u in above)
    check_valid(tileset)


def test_a_part_s_rows_follow_the_table_as_if_it_were_made_whole():
    """``gltf.with_part`` keeps a table's rows and appends the new part's: the glb is the
    one made whole from all rows, for every kind of column (an enum, numbers with some
    missing, booleans, text that outgrows 16-bit offsets); a glb of another schema is
    refused (the caller makes its table whole)."""
    from tilers.cityjson import SURFACE_NAMES
    from tilers.gltf import assemble, draco_part, metadata_schema, with_part
    from tilers.tileset import Attributes

    rows = [{"id": f"b{i}", "type": "Building", "status": "ab"[i % 2],
             "height": None if i % 3 == 0 else i * 1.5, "ok": i % 2 == 0,
             "note": "x" * (300 if i < 250 else 5) + str(i)} for i in range(260)]

    def part(first: int, n: int):  # a triangle a feature
        pos = np.arange(n * 9, dtype=float).reshape(-1, 3) % 17
        normals = np.tile([0.0, 0.0, 1.0], (len(pos), 1))
        return draco_part(pos, normals, np.arange(len(pos)).reshape(-1, 3),
                          np.repeat(np.arange(first, first + n), 3), np.zeros(len(pos)), n)

    seen = Attributes.of(rows)
    schema, kinds = metadata_schema(seen.kinds, seen.missing, seen.texts)
    assert isinstance(kinds["status"][1], dict) and kinds["note"][1] == "STRING"
    color = (0.85, 0.83, 0.8)
    a, b = part(0, 200), part(200, 60)  # 200 notes are 60,000 bytes: 16-bit offsets
    glb = assemble([a], color, schema, kinds, rows[:200], SURFACE_NAMES)
    assert with_part(glb, b, schema, kinds, rows[200:], SURFACE_NAMES) == \
        assemble([a, b], color, schema, kinds, rows, SURFACE_NAMES)
    other, other_kinds = metadata_schema({**seen.kinds, "new": {int}}, seen.missing, seen.texts)
    with pytest.raises(ValueError, match="schema"):
        with_part(glb, b, other, other_kinds, rows[200:], SURFACE_NAMES)


# another process's update of the tileset (a worker of the server, `oup tile-update`)
OTHER_UPDATE = """
import json, sys
from pathlib import Path
from tilers.update import update_tileset

update_tileset(Path(sys.argv[1]), [json.loads(sys.argv[2])], transform=json.loads(sys.argv[3]))
"""


def test_an_update_takes_the_index_the_last_one_kept_unless_another_process_saved_one(
        model, tileset, monkeypatch):
    """The next update in the same process does not read the index again (50 MB at
    200,000 buildings); where another process has updated the tileset since, it does,
    and what that process added stays."""
    import os
    import sys

    import tilers.index

    doc, _ = model
    oid = largest(doc)
    [leaf] = [m["uri"] for m in where(tileset, oid) if m["uri"] in leaves(tileset)]
    reads, load = [], np.load
    monkeypatch.setattr(tilers.index.np, "load", lambda *a, **k: reads.append(1) or load(*a, **k))

    def add(name: str) -> None:
        update_tileset(tileset, [_moved_copy(doc, oid, name, 4.0, 3.0)],
                       transform=doc["transform"])

    add("NEW-1")
    add("NEW-2")
    assert len(reads) == 1  # the first update read it; the second took what it kept
    other = subprocess.run(
        [sys.executable, "-c", OTHER_UPDATE, str(tileset),
         json.dumps(_moved_copy(doc, oid, "NEW-other", 5.0, 3.0)), json.dumps(doc["transform"])],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert other.returncode == 0, other.stderr
    add("NEW-3")
    assert len(reads) == 2  # the file was no longer the one it kept: read again
    for name in ("NEW-1", "NEW-2", "NEW-other", "NEW-3"):
        assert leaf in {m["uri"] for m in where(tileset, name)}, name
    update_tileset(tileset, [{"id": "NEW-other", "deleted": True}])  # rows renumbered
    update_tileset(tileset, [{"id": "NEW-3", "attributes": {"status": "kept"}}])
    assert len(reads) == 2
    assert where(tileset, "NEW-other") == []
    assert {m["props"]["status"] for m in where(tileset, "NEW-3")} == {"kept"}
    assert tilers.index.load_index(tileset).objects["id"].tolist()[-3:] == \
        ["NEW-1", "NEW-2", "NEW-3"]
    check_valid(tileset)


def test_a_replaced_building_moves_and_refusals_say_why(model, tileset, tmp_path):
    doc, _ = model
    oid = largest(doc)
    moved = _moved_copy(doc, oid, oid, 0.0, 2.0)
    moved["CityObjects"][oid]["attributes"] = {"status": "replaced"}
    report = update_tileset(tileset, [moved], transform=doc["transform"])
    assert report.replaced == [oid]
    found = where(tileset, oid)
    assert found and all(m["props"]["status"] == "replaced" for m in found)
    assert all(m["props"]["bron_tex"] in ("", None) for m in found)  # a replacement, not a merge
    with pytest.raises(UpdateError, match="EPSG:4326"):
        update_tileset(tileset, [moved], transform=doc["transform"], crs="EPSG:4326")
    with pytest.raises(UpdateError, match="'id' is missing"):
        update_tileset(tileset, [{"attributes": {}}])
    bare = tmp_path / "bare"
    shutil.copytree(tileset, bare)
    shutil.rmtree(bare / INDEX_DIR)
    with pytest.raises(NoIndex, match="tile it"):
        update_tileset(bare, [{"id": oid, "deleted": True}])


def test_changes_as_json_lines_with_a_cityjsonseq_header(model, tileset):
    from tilers.update import update_from_lines

    doc, _ = model
    header = {"type": "CityJSON", "version": "2.0", "transform": doc["transform"],
              "metadata": {"referenceSystem": doc["metadata"]["referenceSystem"]},
              "CityObjects": {}, "vertices": []}
    lines = [json.dumps(header), json.dumps(_moved_copy(doc, largest(doc), "SEQ-1", 6.0, 0.0)),
             "", json.dumps({"id": "SEQ-1", "attributes": {"status": "seq"}})]
    report = update_from_lines(tileset, lines)
    assert report.added == ["SEQ-1"] and report.changed == ["SEQ-1"]
    assert {m["props"]["status"] for m in where(tileset, "SEQ-1")} == {"seq"}


def _heights(path, oid) -> np.ndarray:
    """The up coordinate (the tile's frame) of every vertex drawn for ``oid`` in a glb:
    its Draco mesh decoded and its feature ids matched to the property table's ids."""
    import DracoPy

    from tileset_reader import feature_ids, read_gltf

    gltf, binary = read_gltf(path)
    prim = gltf["meshes"][0]["primitives"][0]
    view = gltf["bufferViews"][prim["extensions"]["KHR_draco_mesh_compression"]["bufferView"]]
    mesh = DracoPy.decode(binary[view["byteOffset"]:view["byteOffset"] + view["byteLength"]])
    [fids] = [a["data"] for a in mesh.attributes if a["name"] == "_FEATURE_ID_0"]
    drawn = np.asarray(fids).reshape(-1) == feature_ids(path).index(oid)
    return np.asarray(mesh.points, float)[drawn, 1]  # glTF is y-up


def _lowest(doc, oid) -> float:
    """The lowest height (the model's units, metres) of ``oid`` and its parts."""
    objs = [doc["CityObjects"][oid]] + [doc["CityObjects"][c]
                                        for c in doc["CityObjects"][oid].get("children", [])]
    used = {v for o in objs for g in o.get("geometry", []) for sh in g["boundaries"]
            for s in sh for r in s for v in r}
    z = min(doc["vertices"][v][2] for v in used)
    return z * doc["transform"]["scale"][2] + doc["transform"]["translate"][2]


def test_a_changed_shape_publishes_its_leaf_before_the_tiles_above(model, tileset, tmp_path):
    """The leaf is out (its glb and a tileset.json that holds it, a valid tileset) before
    the coarse tiles above it are made again; they follow before the update returns."""
    doc, _ = model
    oid = largest(doc)
    [leaf] = [m["uri"] for m in where(tileset, oid) if m["uri"] in leaves(tileset)]
    above = ancestors(tileset, leaf)
    assert above
    old, low = files(tileset), float(_heights(tileset / leaf, oid).min())
    seen = []

    def published(report):  # what a viewer finds at this moment, kept
        shutil.copytree(tileset, tmp_path / "at-leaf", ignore=shutil.ignore_patterns(INDEX_DIR))
        seen.append(report)

    report = update_tileset(tileset, [{"id": oid, "footprint_height": _lowest(doc, oid) + 1}],
                            published=published)
    assert len(seen) == 1 and seen[0].rewritten == [leaf] and seen[0].changed == [oid]
    assert report.rewritten[0] == leaf and set(report.rewritten) == {leaf, *above}
    snapshot, now = files(tmp_path / "at-leaf"), files(tileset)
    # then: the leaf as it ends, the tiles above it as they were
    assert snapshot[leaf][0] == now[leaf][0] != old[leaf][0]
    for uri in above:
        assert snapshot[uri][0] == old[uri][0] != now[uri][0]
    check_valid(tmp_path / "at-leaf")  # its volumes hold the raised building already
    # the building stands 1 m higher in its leaf (up in the leaf's frame is up there)
    assert float(_heights(tileset / leaf, oid).min()) - low == pytest.approx(1.0, abs=0.01)
    assert {m["uri"] for m in where(tileset, oid)} == {leaf, *above}
    check_valid(tileset)


def test_coarse_tiles_an_interrupt_postpones_are_made_by_the_next_update(model, tileset,
                                                                         tmp_path):
    """Stopped before its first coarse tile (more writes wait), an update leaves a valid
    tileset with its new leaf and names the tiles above; the next update (here one
    without changes) makes them, and the files end as those of an update that ran
    through."""
    doc, _ = model
    oid = largest(doc)
    change = [{"id": oid, "footprint_height": _lowest(doc, oid) + 1}]
    whole = tmp_path / "whole"
    shutil.copytree(tileset, whole)
    update_tileset(whole, change)
    [leaf] = [m["uri"] for m in where(tileset, oid) if m["uri"] in leaves(tileset)]
    above = ancestors(tileset, leaf)  # its parent first, the root last
    assert len(above) >= 2
    old = files(tileset)
    asked = []
    report = update_tileset(tileset, change, interrupt=lambda: asked.append(1) or True)
    assert report.rewritten == [leaf] and report.postponed == above
    assert len(asked) == 1  # asked before the first coarse tile, and it stopped there
    now = files(tileset)
    assert now[leaf] != old[leaf] and all(now[u] == old[u] for u in above)
    check_valid(tileset)
    later = update_tileset(tileset, [], interrupt=lambda: False)
    assert later.rewritten == above and later.postponed == []
    assert {k: v[0] for k, v in files(tileset).items()} == \
        {k: v[0] for k, v in files(whole).items()}
    assert update_tileset(tileset, []).rewritten == []  # nothing left to do


def test_a_changed_shape_the_root_does_not_draw_keeps_the_root_s_mesh(model, tmp_path,
                                                                      monkeypatch):
    """Past its limit of objects a coarse tile draws the largest under it (the root of a
    large city); a smaller building's new shape leaves its blocks as they were, so its
    Draco bytes are kept, and it is not meshed again. A building it draws changes them."""
    import tilers.update
    from tileset_reader import feature_ids

    monkeypatch.setattr("tilers.lod.MAX_FEATURES", 40)  # 65,535 in a city of 200,000
    doc, _ = model
    (tmp_path / "city.json").write_text(json.dumps(doc))
    folder = tmp_path / "tiles"
    tile([tmp_path / "city.json"], folder, vertex_budget=3000, progress=False)
    [root] = [u for u, (_, up) in tree(folder).items() if up is None]
    drawn = feature_ids(folder / root)
    big = largest(doc)
    assert len(drawn) == 40 and big in drawn
    from tilers.index import load_index

    index = load_index(folder)  # of those it does not draw, one in a leaf 2 levels down
    leaf_of = dict(zip(index.objects["id"].tolist(),
                       index.nodes["id"][index.objects["leaf"]].tolist()))
    small = max((k for k in leaf_of if k not in drawn), key=lambda k: len(leaf_of[k]))
    leaf = f"tiles/{leaf_of[small]}.glb"
    assert len(ancestors(folder, leaf)) >= 2
    mesh, low = draco_bytes(folder / root), float(_heights(folder / leaf, small).min())
    meshed, run_job = [], tilers.update.run_job  # the tiles meshed (and compressed) again
    monkeypatch.setattr(tilers.update, "run_job", lambda job: meshed.append(
        f"tiles/{job.name}.glb") or run_job(job))
    report = update_tileset(folder, [{"id": small, "footprint_height": _lowest(doc, small) + 1}])
    assert leaf in report.rewritten and leaf in meshed and root not in meshed
    assert float(_heights(folder / leaf, small).min()) - low == pytest.approx(1.0, abs=0.01)
    assert draco_bytes(folder / root) == mesh and feature_ids(folder / root) == drawn
    check_valid(folder)
    # postponed (more writes wait), the root is still not meshed again when it is made
    meshed.clear()
    first = update_tileset(folder, [{"id": small, "footprint_height": _lowest(doc, small) + 2}],
                           interrupt=lambda: True)
    assert root in first.postponed
    assert not update_tileset(folder, []).postponed
    assert root not in meshed and draco_bytes(folder / root) == mesh
    update_tileset(folder, [{"id": big, "footprint_height": _lowest(doc, big) + 1}])
    assert root in meshed and draco_bytes(folder / root) != mesh
    check_valid(folder)


# another worker process of the server: its writes, while this process updates the tileset
OTHER_WORKER = """
import json, sys
from pathlib import Path
from types import SimpleNamespace
from oup.writes.after import Coalesced, tileset_updater, tileset_updates
from oup.writes.tilequeue import TileQueue

data, oids = Path(sys.argv[1]), json.loads(sys.argv[2])
work = tileset_updates(data, lambda e: None, lambda *a, **k: print("updated"))
on_change = tileset_updater(data, Coalesced("t", lambda cid, _kinds: work(cid)).add)
coll = SimpleNamespace(id="city", tiles3d=SimpleNamespace(z_offset_attribute=None))
for oid in oids:
    def feature(v):
        return {"id": oid, "geometry": None, "properties": {"cityobject_id": oid, "status": v}}
    on_change(coll, "updated", SimpleNamespace(before=feature("old"), after=feature("w-" + oid)))
# its jobs run before the interpreter ends (a pool's threads are joined then)
"""


def test_writes_queued_while_an_update_runs_make_one_more_update(model, tileset, tmp_path):
    """Changes that come while the tileset is being updated, from another worker process
    too, wait in the tileset's queue: that process does not update the tileset beside
    this one (one updater a tileset), and all of them go into one more update, not one
    each. The tileset ends with the same files as one update of every change makes."""
    import os
    import sys
    import threading
    from types import SimpleNamespace

    from conftest import wait_for
    from oup.writes.after import Coalesced, tileset_updater, tileset_updates
    from oup.writes.tilequeue import TileQueue

    doc, _ = model
    data = tmp_path / "data"
    folder = data / "3dtiles" / "city"
    shutil.copytree(tileset, folder)
    whole = tmp_path / "whole"
    shutil.copytree(tileset, whole)
    oids = [k for k, o in doc["CityObjects"].items() if not o.get("parents")][:9]
    calls, done, started, go = [], [], threading.Event(), threading.Event()

    def update(where, changes, **kw):
        calls.append(sorted(c["id"] for c in changes))
        if len(calls) == 1:  # the first update is under way while the others come
            started.set()
            assert go.wait(60)
        done.append(update_tileset(where, changes, **kw))
        return done[-1]

    work = tileset_updates(data, lambda event: None, update)
    on_change = tileset_updater(data, Coalesced("t", lambda cid, _kinds: work(cid)).add)
    coll = SimpleNamespace(id="city", tiles3d=SimpleNamespace(z_offset_attribute=None))

    def feature(oid, v):
        return {"id": oid, "geometry": None, "properties": {"cityobject_id": oid, "status": v}}

    on_change(coll, "updated", SimpleNamespace(before=feature(oids[0], "old"),
                                               after=feature(oids[0], "w-" + oids[0])))
    assert started.wait(60)
    other = subprocess.run([sys.executable, "-c", OTHER_WORKER, str(data), json.dumps(oids[1:])],
                           capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert other.returncode == 0 and "updated" not in other.stdout, other.stderr
    queue = TileQueue(folder)
    assert len(queue._names()) == len(oids) - 1  # they wait; the other worker made no update
    for oid in oids[1:3]:  # and more come to this process
        on_change(coll, "updated", SimpleNamespace(before=feature(oid, "w-" + oid),
                                                   after=feature(oid, "x-" + oid)))
    go.set()
    wait_for(lambda: len(done) >= 2 and not queue.waiting() and not done[-1].postponed, 120,
             "the updates")
    assert calls == [oids[:1], sorted(oids[1:])]
    assert done[0].postponed  # its coarse tiles left to the update that came next
    # as the two updates of the changes, in order, make it, the first one interrupted (a
    # tile the second one does not make keeps the metadata schema of the first)
    update_tileset(whole, [{"id": oids[0], "attributes": {"status": "w-" + oids[0]}}],
                   interrupt=lambda: True)
    update_tileset(whole, [{"id": oid, "attributes": {"status": "w-" + oid}} for oid in oids[1:]] +
                   [{"id": oid, "attributes": {"status": "x-" + oid}} for oid in oids[1:3]])
    assert {k: v[0] for k, v in files(folder).items()} == \
        {k: v[0] for k, v in files(whole).items()}
    for oid, value in ((oids[0], "w-" + oids[0]), (oids[1], "x-" + oids[1])):
        shown = where(folder, oid)  # in its leaf and in the coarse tiles that draw it
        assert len(shown) >= 2 and {m["props"]["status"] for m in shown} == {value}
    check_valid(folder)


# an updater whose process ends in the middle of an update (killed, out of memory)
DYING_UPDATER = """
import os, sys
from pathlib import Path
from oup.writes.after import tileset_updates

def update(*args, **kwargs):
    os._exit(9)

tileset_updates(Path(sys.argv[1]), lambda event: None, update)("city")
"""


def test_changes_an_updater_took_when_its_process_died_go_to_the_next_once(
        model, tileset, tmp_path, caplog):
    """Changes taken by an updater whose process died before it finished are made by the
    next update; those of an update that ended its process twice are dropped, and said
    so, and the updates go on."""
    import logging
    import os
    import sys
    from types import SimpleNamespace

    from oup.writes.after import tileset_updater, tileset_updates
    from oup.writes.tilequeue import TileQueue

    doc, _ = model
    data = tmp_path / "data"
    folder = data / "3dtiles" / "city"
    shutil.copytree(tileset, folder)
    first, second = [k for k, o in doc["CityObjects"].items() if not o.get("parents")][:2]
    enqueue = tileset_updater(data, lambda cid, kind: None)  # queued, no update started
    coll = SimpleNamespace(id="city", tiles3d=SimpleNamespace(z_offset_attribute=None))

    def change(oid: str, value: str) -> None:
        feature = {"id": oid, "geometry": None, "properties": {"cityobject_id": oid}}
        enqueue(coll, "updated", SimpleNamespace(
            before=feature, after={**feature, "properties": {"cityobject_id": oid,
                                                             "status": value}}))

    def dies() -> None:
        ended = subprocess.run([sys.executable, "-c", DYING_UPDATER, str(data)], timeout=120,
                               capture_output=True, text=True,
                               env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert ended.returncode == 9, ended.stderr

    def shown(oid: str) -> set:
        return {m["props"].get("status") for m in where(folder, oid)}

    update = tileset_updates(data, lambda event: None, update_tileset)
    change(first, "after one death")
    dies()
    update("city")
    assert shown(first) == {"after one death"}
    change(second, "after two deaths")
    dies()
    dies()
    caplog.set_level(logging.ERROR, logger="oup.writes.tilequeue")
    update("city")
    assert "after two deaths" not in shown(second)
    assert any("dropped" in r.getMessage() for r in caplog.records)
    assert not TileQueue(folder).waiting() and not os.listdir(TileQueue(folder).taken)
    change(second, "and on")  # the tileset's updates go on
    update("city")
    assert shown(second) == {"and on"}
    check_valid(folder)


def test_an_update_whose_change_event_cannot_be_sent_goes_on_to_its_end(model, tileset,
                                                                       tmp_path, caplog):
    """The change event of a 3D update cannot be sent (the server process it goes to
    has ended: a broken pipe): the update still ends, so the index it saves holds the
    buildings its leaves already show, and the next update keeps them."""
    import logging
    from types import SimpleNamespace

    from oup.writes.after import tileset_updater, tileset_updates
    from tilers.index import load_index

    doc, _ = model
    oid = largest(doc)
    data = tmp_path / "data"
    folder = data / "3dtiles" / "city"
    shutil.copytree(tileset, folder)
    enqueue = tileset_updater(data, lambda cid, kind: None)
    coll = SimpleNamespace(id="city", tiles3d=SimpleNamespace(z_offset_attribute=None))

    def gone(event):
        raise BrokenPipeError(32, "Broken pipe")

    new = dict(_moved_copy(doc, oid, "NEW-unheard", 4.0, 3.0), transform=doc["transform"])
    enqueue(coll, "created", SimpleNamespace(before=None, after=None), SimpleNamespace(city=new))
    caplog.set_level(logging.ERROR, logger="oup.writes.after")
    tileset_updates(data, gone, update_tileset)("city")
    assert "NEW-unheard" in load_index(folder).objects["id"].tolist()
    assert any("change event not sent" in r.getMessage() for r in caplog.records)
    enqueue(coll, "updated", SimpleNamespace(
        before={"id": oid, "properties": {"cityobject_id": oid}},
        after={"id": oid, "properties": {"cityobject_id": oid, "status": "heard"}}))
    tileset_updates(data, lambda event: None, update_tileset)("city")
    [leaf] = [m["uri"] for m in where(folder, oid) if m["uri"] in leaves(folder)]
    assert leaf in {m["uri"] for m in where(folder, "NEW-unheard")}
    check_valid(folder)
