"""The one seam with pygeoapi: every name it relies on exists in the pinned pygeoapi,
nothing outside it assigns to pygeoapi, and one process builds one app."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import python
from oup.http.pygeoapi_adapter import RELIED_ON, relied_on_missing

ROOT = Path(__file__).resolve().parent.parent
ADAPTER = ROOT / "oup" / "http" / "pygeoapi_adapter.py"


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
    code = ("from oup.http.app import create_app\n"
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

    from oup.http.pygeoapi_adapter import _to_json

    content = {"type": "FeatureCollection", "numberMatched": np.int64(2), "features": [
        {"type": "Feature", "id": 1, "geometry": {"type": "Point", "coordinates": [4.1, 51.9]},
         "properties": {"t": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
                        "d": date(2024, 1, 2), "x": Decimal("1.5"), "f": np.float64(0.1),
                        "name": "Schiedamseweg \u00e9", "none": None, "b": True}}],
        "links": [], 7: "seven"}
    assert json.loads(_to_json(content)) == json.loads(to_json(content))
    assert _to_json(content, pretty=True) == to_json(content, True)


# -- providers, built once per collection and configuration generation -----------------

@pytest.fixture(scope="module")
def probes_store(tmp_path_factory):
    """Two small collections of probes in a GeoPackage store of their own (CRS84)."""
    from conftest import make_probes, write_probes
    from oup.store.gpkg import GeoPackageStore

    folder = tmp_path_factory.mktemp("provided")
    feats = make_probes(folder / "probes", n=120)
    path = folder / "probes.gpkg"
    store = GeoPackageStore(path)
    for cid in ("probes", "probes_copy"):
        write_probes(store, feats, cid)
    return store, f"gpkg://{path}"


def _provider_def(store_url: str, collection: str) -> dict:
    # as oup.http.pygeoapi_config writes it for a feature collection
    return {"type": "feature", "name": "oup.http.provider.OUPProvider", "data": collection,
            "id_field": "id", "time_field": "observed", "store_url": store_url}


def _provider(store_url: str, collection: str):
    from oup.http.provider import OUPProvider

    return OUPProvider(_provider_def(store_url, collection))


def test_a_collection_keeps_its_provider_within_a_configuration_generation(probes_store):
    from oup.http.provider import OUPProvider
    from oup.http.pygeoapi_adapter import ProviderCache

    _, url = probes_store
    cache = ProviderCache()
    first = cache.load("provider", _provider_def(url, "probes"))
    assert isinstance(first, OUPProvider) and first.collection == "probes"
    # a later request (a new but equal definition, as pygeoapi passes) gets the same one
    assert cache.load("provider", _provider_def(url, "probes")) is first
    other = cache.load("provider", _provider_def(url, "probes_copy"))
    assert other is not first and other.collection == "probes_copy"
    assert cache.load("provider", _provider_def(url, "probes_copy")) is other


def test_a_new_configuration_generation_builds_new_providers(probes_store):
    from oup.http.pygeoapi_adapter import ProviderCache

    _, url = probes_store
    cache = ProviderCache()
    before = cache.load("provider", _provider_def(url, "probes"))
    cache.new_generation()
    after = cache.load("provider", _provider_def(url, "probes"))
    # the old one may describe a configuration that is gone: never handed out again
    assert after is not before and after.collection == "probes"
    assert cache.load("provider", _provider_def(url, "probes")) is after


# -- parse once: the provider answers the checked query, not pygeoapi's arguments -------

def _checked_queries():
    from datetime import datetime, timezone

    from oup.http.params import parse_filter

    t = datetime(2024, 1, 20, tzinfo=timezone.utc), datetime(2024, 2, 10, tzinfo=timezone.utc)
    return {
        "bbox": dict(bbox=(4.42, 51.89, 4.48, 51.92)),
        "interval": dict(interval=t),
        "filter": dict(filter=parse_filter("count < 20 AND level > 4", "cql2-text")),
        "sortby": dict(sortby=[("level", False)]),
        "properties": dict(properties=["serial", "count"]),
        "equals": dict(equals={"active": "true"}),
        "all of them": dict(bbox=(4.41, 51.885, 4.50, 51.93), interval=(t[0], None),
                            filter=parse_filter("count < 40", "cql2-text"),
                            sortby=[("count", True), ("serial", False)],
                            properties=["serial", "count", "level"],
                            equals={"active": "false"}),
    }


@pytest.mark.parametrize("part", list(_checked_queries()))
def test_the_provider_answers_the_checked_query_not_pygeoapis_arguments(probes_store, part):
    from oup.http.params import CHECKED_ITEMS, ItemsRequest
    from oup.store import Query

    store, url = probes_store
    checked = ItemsRequest("probes", **_checked_queries()[part], limit=1000,
                           skip_geometry=True)
    provider = _provider(url, "probes")
    # pygeoapi's own arguments ask for everything (the whole world, no filter, its order,
    # a short page with geometries): were they used, the page would be the unconstrained one
    pygeoapi_args = dict(bbox=[-180, -90, 180, 90], datetime_=None, properties=[],
                         sortby=[{"property": "serial", "order": "+"}], select_properties=[],
                         filterq=None, skip_geometry=False, limit=5)
    token = CHECKED_ITEMS.set(checked)
    try:
        got = provider.query(**pygeoapi_args)
    finally:
        CHECKED_ITEMS.reset(token)
    expected = store.query("probes", Query(
        bbox=checked.bbox, interval=checked.interval, equals=dict(checked.equals),
        filter=checked.filter, sortby=checked.sortby, select=checked.properties,
        skip_geometry=True, limit=1000))
    unconstrained = provider.query(**pygeoapi_args)  # no checked query: pygeoapi's
    assert len(unconstrained["features"]) == 5 and unconstrained["features"][0]["geometry"]
    assert expected.features and got["features"] == expected.features
    assert got["numberMatched"] == expected.number_matched
    assert got["features"] != unconstrained["features"]  # so the check tells them apart


def test_a_checked_query_of_another_collection_is_not_applied(probes_store):
    from oup.http.params import CHECKED_ITEMS, ItemsRequest

    _, url = probes_store
    provider = _provider(url, "probes")
    everything = provider.query(skip_geometry=True, limit=1000)
    # e.g. a collection document listing this one while answering another's items
    token = CHECKED_ITEMS.set(ItemsRequest("probes_copy", bbox=(4.42, 51.89, 4.43, 51.90)))
    try:
        assert provider.query(skip_geometry=True, limit=1000) == everything
    finally:
        CHECKED_ITEMS.reset(token)


def test_a_worker_loads_the_compiled_loops_before_its_first_request(imported):
    """The store's numba loops (those Python calls; the rest are compiled into them) are
    loaded as the app is built, from the cache the setup filled, not by the first page or
    tile a worker answers (it waited ~0.25 s for them)."""
    code = ("from numba.core.registry import CPUDispatcher\n"
            "from oup.http.app import create_app\n"
            "from oup.store import mvt_kernels, wkb\n"
            "loops = {f'{m.__name__}.{n}': f for m in (mvt_kernels, wkb)\n"
            "         for n, f in vars(m).items()\n"
            "         if isinstance(f, CPUDispatcher) and not n.startswith('_')}\n"
            "print(sorted(n for n, f in loops.items() if not f.signatures), len(loops))\n"
            "create_app()\n"
            "print(sorted(n for n, f in loops.items() if not f.signatures))\n")
    before, after = python(imported, code).splitlines()
    assert before.startswith("[") and not before.startswith("[]"), before  # none loaded yet
    assert after == "[]", after
