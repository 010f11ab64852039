"""Cities made from a real one: the 853 Delfshaven buildings, replicated on a grid.

Used by the tiling benchmark and the city-scale tests: a city of any size, real building
by building, in CityJSONSeq (one building per line, so it streams). ``spacing`` is the
distance between copies (1.1 km packs them edge to edge); ``columns`` fixes the grid's
width, so a few copies can span a wide area (a 10 km city of sparse districts).
"""
from __future__ import annotations

import json
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "collections" / "buildings" / \
    "rotterdam-delfshaven.city.json"


def make_city(path: Path, buildings: int, spacing: float = 1100.0, columns: int | None = None,
              reference_system: str | None = None) -> Path:
    """Write a CityJSONSeq of ``buildings`` buildings to ``path``; return ``path``."""
    doc = json.loads(SOURCE.read_text())
    tr = doc["transform"]
    header = {k: v for k, v in doc.items() if k not in ("CityObjects", "vertices")}
    header.update(CityObjects={}, vertices=[])
    if reference_system:
        header["metadata"] = dict(header["metadata"], referenceSystem=reference_system)
    objs = list(doc["CityObjects"].items())
    step = int(spacing / tr["scale"][0])  # block offset, in quantised units
    per_row = columns or int((buildings / len(objs)) ** 0.5) + 1
    with path.open("w") as fh:
        fh.write(json.dumps(header) + "\n")
        for i in range(buildings):
            block, k = divmod(i, len(objs))
            oid, obj = objs[k]
            dx, dy = (block % per_row) * step, (block // per_row) * step
            used = sorted({v for g in obj["geometry"] for sh in g["boundaries"] for s in sh
                           for r in s for v in r})
            remap = {old: new for new, old in enumerate(used)}
            geoms = [dict(g, boundaries=[[[[remap[v] for v in r] for r in s] for s in sh]
                                         for sh in g["boundaries"]]) for g in obj["geometry"]]
            verts = [[doc["vertices"][v][0] + dx, doc["vertices"][v][1] + dy,
                      doc["vertices"][v][2]] for v in used]
            fid = f"{oid}-{block}"
            fh.write(json.dumps({"type": "CityJSONFeature", "id": fid,
                                 "CityObjects": {fid: dict(obj, geometry=geoms)},
                                 "vertices": verts}) + "\n")
    return path
