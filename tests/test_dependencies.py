"""Dependencies point one way: ``oup`` is the core, ``tilers`` and ``iot_ingest`` use it.
The core imports them only where the verbs and endpoints are wired together."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCERS = ("tilers", "iot_ingest")
# the composition roots: the command line and the app factory
ROOTS = {"oup/cli.py", "oup/http/app.py"}
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


# -- the observation stores keep to the contract the ingesters are written against -------

def _protocol_methods(protocol) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(value) for name, value in vars(protocol).items()
            if inspect.isfunction(value) and not name.startswith("_")}


def test_both_observation_stores_offer_every_method_of_the_protocol():
    from oup.store.protocols import ObservationStore
    from oup.store.observations import GeoPackageObservationStore
    from oup.store.pg_observations import PostGISObservationStore

    wanted = _protocol_methods(ObservationStore)
    assert {"write_batch", "dead_letters", "mark_replayed", "close"} <= set(wanted)
    for store in (GeoPackageObservationStore, PostGISObservationStore):
        for name, signature in wanted.items():
            method = getattr(store, name, None)
            assert callable(method), f"{store.__name__} has no {name}"
            # the ingesters and replay call by keyword too: the names, in their order
            assert list(inspect.signature(method).parameters) == list(signature.parameters), \
                f"{store.__name__}.{name}{inspect.signature(method)} is not {name}{signature}"


# -- one way to find a free port ---------------------------------------------------------

SCANNED = ("oup", "iot_ingest", "tilers", "tests", "benchmarks")
# Binding port 0 on purpose, not to find a free port: (file, function) -> why.
HOLDS_A_PORT = {
    ("tests/test_demo_live.py", "test_a_taken_broker_port_is_said_not_silently_shared"):
        "keeps the socket bound and listening, so the broker finds its port taken",
}


def _binds_port_zero(call: ast.Call) -> bool:
    """``x.bind((host, 0))`` or ``socket.create_server((host, 0))``: the OS picks a port."""
    name = getattr(call.func, "attr", None) or getattr(call.func, "id", None)
    if name not in ("bind", "create_server") or not call.args:
        return False
    address = call.args[0]
    return (isinstance(address, ast.Tuple) and len(address.elts) >= 2
            and isinstance(address.elts[1], ast.Constant) and address.elts[1].value == 0)


def _free_port_finders() -> tuple[list[str], list[tuple[str, str]]]:
    """The ``def free_port`` of the scanned code, and the functions binding port 0."""
    defined, binding = [], []
    for pkg in SCANNED:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                if node.name == "free_port":
                    defined.append(rel)
                # nested functions are walked again on their own: name the innermost
                inner = {id(n) for sub in ast.walk(node) if sub is not node
                         and isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef))
                         for n in ast.walk(sub)}
                if any(isinstance(n, ast.Call) and id(n) not in inner and _binds_port_zero(n)
                       for n in ast.walk(node)):
                    binding.append((rel, node.name))
    return defined, binding


def test_there_is_one_free_port_and_nothing_else_picks_ports_its_own_way():
    defined, binding = _free_port_finders()
    assert defined == ["oup/ports.py"]
    assert sorted(binding) == sorted([("oup/ports.py", "free_port"), *HOLDS_A_PORT])
