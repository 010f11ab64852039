"""The one seam with pygeoapi: every name it relies on exists in the pinned pygeoapi,
nothing outside it assigns to pygeoapi, and one process builds one app."""
from __future__ import annotations

import ast
from pathlib import Path

from conftest import python
from oup.pygeoapi_adapter import RELIED_ON, relied_on_missing

ROOT = Path(__file__).resolve().parent.parent
ADAPTER = ROOT / "oup" / "pygeoapi_adapter.py"


def test_pinned_pygeoapi_has_every_name_the_adapter_relies_on(monkeypatch):
    assert RELIED_ON and all(why.strip() for why in RELIED_ON.values())
    assert relied_on_missing() == []
    # and the check does fail: a name gone, a replaced name no longer called by its user
    monkeypatch.setitem(RELIED_ON, "pygeoapi.api.itemtypes:no_such_name", "test")
    monkeypatch.setitem(RELIED_ON, "pygeoapi.api.itemtypes:transform_bbox@get_oas_30", "test")
    assert relied_on_missing() == ["pygeoapi.api.itemtypes:no_such_name",
                                   "pygeoapi.api.itemtypes:transform_bbox@get_oas_30"]


def _pygeoapi_assignments(path: Path) -> list[str]:
    """Lines of ``path`` that assign to an attribute (or item) of something imported
    from pygeoapi, or setattr on it."""
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names
                      if a.name.split(".")[0] == "pygeoapi"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pygeoapi"):
            names |= {a.asname or a.name for a in node.names}

    def root(target) -> str | None:
        while isinstance(target, (ast.Attribute, ast.Subscript)):
            target = target.value
        return target.id if isinstance(target, ast.Name) else None

    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setattr":
            targets = [ast.Attribute(value=node.args[0], attr="?")] if node.args else []
        for t in targets:
            if isinstance(t, (ast.Attribute, ast.Subscript)) and root(t) in names:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_pygeoapi_attribute_is_assigned_outside_the_adapter():
    files = [p for pkg in ("oup", "iot_ingest", "tilers") for p in (ROOT / pkg).rglob("*.py")]
    assert _pygeoapi_assignments(ADAPTER)  # the scan sees the adapter's own reaches
    found = [hit for p in files if p != ADAPTER for hit in _pygeoapi_assignments(p)]
    assert found == []


def test_a_second_app_in_one_process_is_refused_plainly(imported):
    code = ("from oup.app import create_app\n"
            "create_app()\n"
            "try:\n    create_app()\n"
            "except Exception as exc:\n    print(type(exc).__name__, exc)\n")
    out = python(imported, code)
    assert out.startswith("AppAlreadyBuilt") and "once per process" in out


def test_pages_are_written_as_pygeoapi_writes_them():
    """The faster JSON writer gives what pygeoapi's own gives (dates, decimals, numpy
    numbers, non-text keys, non-ASCII text), parsed back."""
    import json
    from datetime import date, datetime, timezone
    from decimal import Decimal

    import numpy as np
    from pygeoapi.util import to_json

    from oup.pygeoapi_adapter import _to_json

    content = {"type": "FeatureCollection", "numberMatched": np.int64(2), "features": [
        {"type": "Feature", "id": 1, "geometry": {"type": "Point", "coordinates": [4.1, 51.9]},
         "properties": {"t": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
                        "d": date(2024, 1, 2), "x": Decimal("1.5"), "f": np.float64(0.1),
                        "name": "Schiedamseweg \u00e9", "none": None, "b": True}}],
        "links": [], 7: "seven"}
    assert json.loads(_to_json(content)) == json.loads(to_json(content))
    assert _to_json(content, pretty=True) == to_json(content, True)
