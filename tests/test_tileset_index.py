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
