"""Dependencies point one way: ``oup`` is the core, ``tilers`` and ``iot_ingest`` use it.
The core imports them only where the verbs and endpoints are wired together."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCERS = ("tilers", "iot_ingest")
# the composition roots: the command line and the app factory
ROOTS = {"oup/cli.py", "oup/app.py"}
ALLOWED: set[tuple[str, str]] = set()  # CityJSON reading lives in oup.cityjson


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def test_the_core_imports_no_producer_outside_its_composition_roots():
    found = []
    for path in sorted((ROOT / "oup").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in ROOTS or "node_modules" in rel:
            continue
        for line, module in _imports(path):
            if module.split(".")[0] in PRODUCERS and (rel, module) not in ALLOWED:
                found.append(f"{rel}:{line} imports {module}")
    assert found == []


def test_the_scan_sees_the_imports_of_a_composition_root():
    assert any(m.startswith("iot_ingest") for _, m in _imports(ROOT / "oup" / "cli.py"))
