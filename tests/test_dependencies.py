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


# -- a store is a whole backend behind the Protocols of oup/store/protocols.py ----------

# (the Protocol, which of a backend's classes implements it)
CONTRACT = (("FeatureStore", "feature_store"), ("TileSource", "feature_store"),
            ("SqlSource", "feature_store"), ("ObservationStore", "observation_store"),
            ("EventLog", "observation_store"))
PRODUCT = ("oup", "iot_ingest", "tilers")  # tests and benchmarks build backends by name


def _protocol_methods(protocol) -> dict[str, inspect.Signature]:
    """The Protocol's own methods, as called on a store (no ``self``)."""
    return {name: _called(inspect.signature(value), drop_first=True)
            for name, value in vars(protocol).items()
            if inspect.isfunction(value) and not name.startswith("_")}


def _called(signature: inspect.Signature, drop_first: bool) -> inspect.Signature:
    params = list(signature.parameters.values())
    return signature.replace(parameters=params[1:] if drop_first else params)


def _method_signature(cls: type, name: str) -> inspect.Signature:
    static = isinstance(inspect.getattr_static(cls, name), staticmethod)
    return _called(inspect.signature(getattr(cls, name)), drop_first=not static)


def _backend_classes() -> list[tuple[str, type, type]]:
    """(backend, feature store class, observation store class) of every backend."""
    from oup.store.backends import BACKENDS, _load

    return [(b.name, _load(b.feature_store), _load(b.observation_store)) for b in BACKENDS]


def test_every_backend_offers_every_method_of_the_protocols_with_their_signatures():
    from oup.store import protocols

    assert {"write_batch", "dead_letters", "mark_replayed", "close"} <= \
        set(_protocol_methods(protocols.ObservationStore))
    assert {"cut_tile", "import_stamp"} <= set(_protocol_methods(protocols.TileSource))
    assert {"execute", "layer", "where", "geometry_column", "features"} <= \
        set(_protocol_methods(protocols.SqlSource))
    assert {"query", "get", "write_collection"} <= set(_protocol_methods(protocols.FeatureStore))
    backends = _backend_classes()
    assert [name for name, _, _ in backends] == ["geopackage", "postgis"]
    for protocol_name, kind in CONTRACT:
        protocol = getattr(protocols, protocol_name)
        for backend, features, observations in backends:
            store = features if kind == "feature_store" else observations
            for attribute in vars(protocol).get("__annotations__", {}):
                assert hasattr(store, attribute), f"{store.__name__} has no {attribute}"
            for name, wanted in _protocol_methods(protocol).items():
                method = getattr(store, name, None)
                assert callable(method), f"{store.__name__} has no {name} ({protocol_name})"
                got = _method_signature(store, name)
                # callers pass by keyword too: the names, their order, kinds and defaults
                assert [(p.name, p.kind, p.default) for p in got.parameters.values()] == \
                    [(p.name, p.kind, p.default) for p in wanted.parameters.values()], \
                    f"{store.__name__}.{name}{got} is not {protocol_name}.{name}{wanted}"


def test_every_backend_is_made_from_its_location_as_the_registry_makes_it():
    for _, features, observations in _backend_classes():
        for cls, given in ((features, 1), (observations, 3)):  # (location[, busy, schema])
            params = list(inspect.signature(cls).parameters.values())
            assert len(params) >= given, cls.__name__
            assert all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                       for p in params[:given]), cls.__name__
            assert all(p.default is not p.empty for p in params[given:]), cls.__name__


def test_a_url_chooses_its_backend_and_what_it_is_opened_with():
    import pytest

    from oup.store import StoreError
    from oup.store.backends import backend_of

    for url, name, location in (
            ("gpkg:///data/oup.gpkg", "geopackage", "/data/oup.gpkg"),
            ("data/oup.gpkg", "geopackage", "data/oup.gpkg"),
            ("postgresql://oup@db/oup", "postgis", "postgresql://oup@db/oup"),
            ("postgres://oup@db/oup", "postgis", "postgres://oup@db/oup")):
        backend = backend_of(url)
        assert (backend.name, backend.location(url)) == (name, location), url
    with pytest.raises(StoreError, match="use gpkg:///path/to/file.gpkg or postgresql://"):
        backend_of("mysql://db/oup")


def _store_privates() -> set[str]:
    """The ``_`` names of the stores: their classes' (and bases') methods and attributes,
    and what they set on ``self``."""
    names: set[str] = set()
    for _, *classes in _backend_classes():
        for cls in classes:
            for klass in cls.__mro__:
                if klass.__module__.split(".")[0] != "oup":
                    continue
                names |= {n for n in vars(klass) if n.startswith("_") and not n.endswith("__")}
                tree = ast.parse(inspect.getsource(klass))
                names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                          and isinstance(n.value, ast.Name) and n.value.id == "self"
                          and n.attr.startswith("_") and not n.attr.endswith("__")}
    return names


def _backend_modules() -> dict[str, set[str]]:
    """Backend class name -> the files of its backend (the modules of its two classes)."""
    from oup.store.backends import BACKENDS

    out = {}
    for b in BACKENDS:
        own = {name.partition(":")[0].replace(".", "/") + ".py"
               for name in (b.feature_store, b.observation_store)}
        for name in (b.feature_store, b.observation_store):
            out[name.partition(":")[2]] = own
    return out


def _reaching_into_stores(rel: str, source: str, owners: dict[str, set[str]],
                          privates: set[str]) -> list[str]:
    """Where ``rel`` names a backend class not its own, or touches a store's ``_`` name
    on anything but ``self``/``cls`` (outside the backends' own modules)."""
    found = []
    in_a_backend = any(rel in own for own in owners.values())
    for node in ast.walk(ast.parse(source, rel)):
        named = node.id if isinstance(node, ast.Name) else \
            node.attr if isinstance(node, ast.Attribute) else None
        if isinstance(node, ast.ImportFrom):
            found += [f"{rel}:{node.lineno} imports {a.name}" for a in node.names
                      if a.name in owners and rel not in owners[a.name]]
        elif named in owners and rel not in owners[named]:
            found.append(f"{rel}:{node.lineno} names {named}")
        elif (isinstance(node, ast.Attribute) and node.attr in privates and not in_a_backend
              and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
            found.append(f"{rel}:{node.lineno} touches .{node.attr}")
    return found


def test_only_a_backends_own_modules_name_its_classes_or_touch_a_stores_private_parts():
    owners, privates = _backend_modules(), _store_privates()
    assert {"_fresh", "_meta", "_local", "_executemany", "_transaction"} <= privates
    found = []
    for pkg in PRODUCT:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if "node_modules" not in rel:
                found += _reaching_into_stores(rel, path.read_text(), owners, privates)
    assert found == []


def test_the_store_scan_sees_a_class_named_and_a_private_part_touched():
    owners, privates = _backend_modules(), _store_privates()
    code = ("from oup.store.postgis import PostGISStore\n"
            "def cut(store, q):\n"
            "    if isinstance(store, PostGISStore):\n"
            "        return store._fresh(read, store, q)\n"
            "    return postgis.GeoPackageObservationStore(q)._con\n")
    assert sorted(_reaching_into_stores("oup/store/mvt.py", code, owners, privates)) == [
        "oup/store/mvt.py:1 imports PostGISStore", "oup/store/mvt.py:3 names PostGISStore",
        "oup/store/mvt.py:4 touches ._fresh", "oup/store/mvt.py:5 names "
        "GeoPackageObservationStore", "oup/store/mvt.py:5 touches ._con"]
    assert _reaching_into_stores("oup/store/postgis.py", code.replace("Geo", ""), owners,
                                 privates) == []


# -- the store package's modules import each other one way -------------------------------

def _store_imports(path: Path) -> set[str]:
    """The ``oup.store`` modules a module imports when it runs (at its top or in a
    function); what only a type checker reads is left out."""
    submodules = {p.stem for p in path.parent.glob("*.py")}
    out: set[str] = set()

    def visit(node):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("oup.store"))
        elif isinstance(node, ast.ImportFrom) and node.module == "oup.store":
            out.update(f"oup.store.{a.name}" if a.name in submodules else "oup.store"
                       for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("oup.store."):
            out.add(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each module on one (depth first)."""
    found, done = [], set()

    def walk(node, trail):
        if node in trail:
            found.append(trail[trail.index(node):] + [node])
            return
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            walk(nxt, trail + [node])
        done.add(node)

    for node in sorted(graph):
        walk(node, [])
    return found


def test_the_store_package_has_no_import_cycle():
    folder = ROOT / "oup" / "store"
    graph = {("oup.store" if p.stem == "__init__" else f"oup.store.{p.stem}"):
             _store_imports(p) for p in folder.glob("*.py")}
    assert "oup.store.mvt" in graph["oup.store.postgis"]  # the scan sees function imports
    assert _cycles(graph) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_the_observation_types_import_nothing_of_oup():
    """The store uses them, and the ingesters: so they lean on neither (no cycle)."""
    assert [m for _, m in _imports(ROOT / "oup" / "sensors" / "observations.py")
            if m.split(".")[0] == "oup"] == []


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
