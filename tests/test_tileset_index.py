"""What the tiler's parent process keeps of the objects workers parked: the attribute
summaries of batches merge to the summary of all their objects at once."""
from __future__ import annotations

import random

import pytest

from tilers.gltf import ENUM_MAX
from tilers.tileset import Attributes


def _rows(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        row = {"id": f"b{i}", "type": "Building"}
        if rng.random() < 0.9:
            row["year"] = rng.choice([1900, 1950, None, 2001])
        if rng.random() < 0.5:
            row["use"] = rng.choice(["home", "shop", "office"])
        row["label"] = f"text {rng.randrange(ENUM_MAX * 2)}"  # too many for an ENUM
        if i % 97 == 0:
            row["height"] = rng.random() * 30
        rows.append(row)
    return rows


@pytest.mark.parametrize("seed", range(5))
def test_batches_merge_to_the_summary_of_all(seed):
    rng = random.Random(seed)
    rows = _rows(rng, 600)
    cuts = sorted(rng.sample(range(1, len(rows)), 6))
    merged = Attributes()
    for a, b in zip([0] + cuts, cuts + [len(rows)]):
        merged.merge(Attributes.of(rows[a:b]))
    whole = Attributes.of(rows)
    assert merged == whole
    # and what that means
    assert whole.objects == 600
    assert {"year", "use", "height"} <= whole.missing and "id" not in whole.missing
    assert whole.texts["use"] == {"home", "shop", "office"} and whole.texts["label"] is None
    assert whole.kinds["year"] == {int} and whole.kinds["height"] == {float}


def test_spill_records_read_back_what_was_written(tmp_path):
    import numpy as np

    from tilers.cityjson import CityObjectMesh
    from tilers.lod import blocks_of
    from tilers.spill import block_record, mesh_record, read_outline, read_record, read_row

    rng = np.random.default_rng(3)
    mesh = CityObjectMesh("NL.1", "Building", {"naam": "één", "hoogte": 12.5, "x": None},
                          rng.random((5, 3)) * 1e5, rng.integers(0, 7, (4, 3)).astype(np.uint32),
                          rng.integers(0, 4, 7).astype(np.uint8),
                          rng.integers(0, 5, 7).astype(np.uint32))
    plate = CityObjectMesh("t", "Terrain", {}, rng.random((4, 3)), np.array([[0, 1, 2]], np.uint32),
                           np.ones(4, np.uint8))  # no corners: a vertex per point
    blocks = blocks_of([mesh, plate], 1, 3)
    path = tmp_path / "spill"
    with open(path, "wb") as fh:
        at = []
        for record in [mesh_record(mesh), mesh_record(plate),
                       block_record(blocks[0], {"id": "NL.1"}), block_record(blocks[1], {})]:
            at.append(fh.tell())
            fh.write(record)
    with open(path, "rb") as fh:
        back = [read_record(fh, offset) for offset in reversed(at)][::-1]
    for got, want in zip(back[:2], [mesh, plate]):
        assert (got.id, got.type, got.attributes) == (want.id, want.type, want.attributes)
        assert np.array_equal(got.vertices, want.vertices)
        assert np.array_equal(got.triangles, want.triangles)
        assert np.array_equal(got.surfaces, want.surfaces)
    for (got, row), want, want_row in zip(back[2:], blocks, [{"id": "NL.1"}, {}]):
        assert row == want_row
        assert np.array_equal(got.ring, want.ring)
        assert (got.z0, got.z1, got.deviation, got.size) == (want.z0, want.z1, want.deviation,
                                                             want.size)
        assert all(np.array_equal(a, b) for a, b in zip(got.mesh, want.mesh))
    with open(path, "rb") as fh:  # a row alone, as a tile's property table takes it
        rows = [read_row(fh, offset) for offset in at]
        outlines = [read_outline(fh, offset) for offset in at[2:]]  # what a coarse tile takes
    assert rows == [{"id": "NL.1", "type": "Building", **mesh.attributes},
                    {"id": "t", "type": "Terrain"}, {"id": "NL.1"}, {}]
    for (ring, z0, z1, row), want, want_row in zip(outlines, blocks, [{"id": "NL.1"}, {}]):
        assert np.array_equal(ring, want.ring) and (z0, z1, row) == (want.z0, want.z1, want_row)


def test_blocks_stacked_as_one_mesh_are_each_block_mesh():
    """A coarse tile's blocks made in one pass give each block's own mesh (``block_mesh``,
    made block by block), one after the other."""
    import numpy as np

    from tilers.lod import Block, stacked_blocks

    rng = np.random.default_rng(5)
    blocks = []
    for i in range(60):  # 3 to 8 corners; every seventh a plate (terrain: no walls)
        ring = rng.random((int(rng.integers(3, 9)), 2)) * 20 + i * 30
        z0 = float(rng.random() * 5)
        blocks.append(Block(ring, z0, z0 + (0.0 if i % 7 == 0 else 3 + float(rng.random())),
                            0.5, 1.0))
    points, corners, tris, roof, counts = stacked_blocks([(b.ring, b.z0, b.z1) for b in blocks])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    assert counts.tolist() == [len(b.mesh[0]) for b in blocks]
    assert np.array_equal(points[corners], np.vstack([b.mesh[0] for b in blocks]))
    assert np.array_equal(tris, np.vstack([b.mesh[1] + s for b, s in zip(blocks, starts)]))
    assert np.array_equal(roof, np.concatenate([b.mesh[2] for b in blocks]))
    tops = sum(len(b.ring) for b in blocks)  # each corner placed once: top and bottom ring
    assert len(points) == tops + sum(len(b.ring) for b in blocks if b.z1 > b.z0)
