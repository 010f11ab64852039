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
    from tilers.spill import block_record, mesh_record, read_record

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
