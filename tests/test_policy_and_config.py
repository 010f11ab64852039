"""The fast layer, in-process: the access policy, the pygeoapi configuration generated
from the catalogue, and pygeoapi's resources as each caller may see them."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, make_classified, make_probes
from oup.catalog import load_catalog
from oup.security import ANONYMOUS, VISIBLE, AuthError, Authenticator, Identity, \
    visible_collections

PUBLIC_DEMO = {"buildings", "neighbourhoods", "kerncijfers", "leefbaarheid", "sensors",
               "observations", "sensor-slices", "terrain", "meldingen-per-buurt"}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    cat = tmp_path_factory.mktemp("catalogue") / "collections"
    shutil.copytree(ROOT / "collections", cat)
    make_probes(cat / "probes")
    make_classified(cat)
    return load_catalog(cat)


@pytest.mark.parametrize("who, sees", [
    (ANONYMOUS, set()),
    # the demo's own internal (inspecties) and restricted (jeugdzorg) collections too
    (Identity("key:x", frozenset(), True), {"internal-figures", "inspecties"}),
    (Identity("key:y", frozenset({"youth-care-analyst"}), True),
     {"internal-figures", "restricted-care", "inspecties", "jeugdzorg"}),
    (Identity("key:z", frozenset({"youth-care-analyst"}), False), set()),  # roles, no sign-in
])
def test_the_access_policy(catalog, who, sees):
    assert visible_collections(who, catalog) == PUBLIC_DEMO | {"probes"} | sees


def test_api_keys_are_checked_by_their_hash(tmp_path):
    keys = tmp_path / "keys.yml"
    keys.write_text(f"- {{name: etl, sha256: {hashlib.sha256(b'secret').hexdigest()}, "
                    f"roles: [analyst]}}\n")
    auth = Authenticator(api_keys_file=keys)
    assert auth.identify({}) is ANONYMOUS
    me = auth.identify({"X-API-Key": "secret"})
    assert me == Identity("key:etl", frozenset({"analyst"}), True)
    assert auth.identify({"Authorization": "ApiKey secret"}) == me
    for headers in ({"X-API-Key": "wrong"}, {"Authorization": "Basic abc"},
                    {"Authorization": "Bearer a.b.c"}):
        with pytest.raises(AuthError):
            auth.identify(headers)


def test_resources_follow_what_the_request_may_see():
    from oup.http.pygeoapi_adapter import VisibleResources

    res = VisibleResources({"open": 1, "secret": 2, "catalog": 3}, {"open", "secret"})
    token = VISIBLE.set(frozenset({"open"}))
    try:
        assert list(res) == ["open", "catalog"] and len(res) == 2
        assert "secret" not in res and res.get("secret") is None
        assert dict(res.items()) == {"open": 1, "catalog": 3}
        with pytest.raises(KeyError):
            res["secret"]
    finally:
        VISIBLE.reset(token)
    assert set(res) == {"open", "secret", "catalog"}  # outside a request: everything


@pytest.fixture(scope="module")
def configured(tmp_path_factory):
    """The probes imported into a GeoPackage store (CRS84 data: no grids needed), and
    the settings of a data folder of their own."""
    from oup.catalog.importers import import_collection
    from oup.settings import Settings
    from oup.store.gpkg import GeoPackageStore

    root = tmp_path_factory.mktemp("config")
    make_probes(root / "collections" / "probes")
    (root / "collections" / "later").mkdir()
    (root / "collections" / "later" / "collection.yml").write_text(
        (root / "collections" / "probes" / "collection.yml").read_text()
        .replace("probes.geojson", "../probes/probes.geojson"))
    catalog = load_catalog(root / "collections")
    store = GeoPackageStore(root / "data" / "oup.gpkg")
    import_collection(catalog["probes"], store, progress=False)
    settings = Settings(data_dir=root / "data", catalog_dir=root / "collections",
                        page_limit=7, max_page_limit=70, base_url="https://oup.example.org/")
    return catalog, store, settings


def test_the_generated_configuration(configured):
    from oup.http.pygeoapi_config import RECORDS_ID, build_config
    from oup.store.geometry import CRS84, SUPPORTED_CRS

    catalog, store, settings = configured
    cfg = build_config(catalog, store, settings)
    assert cfg["server"]["url"] == "https://oup.example.org"
    assert cfg["server"]["limits"] == {"default_items": 7, "max_items": 70, "on_exceed": "error"}
    assert set(cfg["resources"]) == {"probes", RECORDS_ID}  # "later" is not imported yet
    probes = cfg["resources"]["probes"]
    provider, = probes["providers"]
    assert provider["name"] == "oup.http.provider.OUPProvider" and provider["data"] == "probes"
    assert provider["storage_crs"] == CRS84 and provider["crs"] == list(SUPPORTED_CRS)
    assert provider["time_field"] == "observed"
    assert probes["extents"]["spatial"]["crs"] == CRS84
    x0, y0, x1, y1 = probes["extents"]["spatial"]["bbox"]
    assert 4.39 < x0 < x1 < 4.53 and 51.87 < y0 < y1 < 51.95
    assert probes["extents"]["temporal"]["begin"].year == 2024
    assert "classification:public" in probes["keywords"]
    assert "synthetic" in probes["description"]


def test_the_records_catalogue_lists_what_is_imported(configured):
    from oup.http.pygeoapi_config import catalogue_records

    catalog, store, _ = configured
    records = catalogue_records(catalog, store)
    assert set(records) == {"probes"}
    assert records["probes"]["properties"]["classification"] == "public"
    assert records["probes"]["properties"]["synthetic"] is True


def test_the_openapi_document_has_every_published_collection(configured, monkeypatch):
    import json

    from oup.http.pygeoapi_config import write_config
    from oup.settings import get_settings

    catalog, store, settings = configured
    # the providers pygeoapi loads for the document find the store through the settings
    monkeypatch.setenv("OUP_DATABASE_URL", f"gpkg://{store.path}")
    get_settings.cache_clear()
    try:
        cfg_path, oas_path = write_config(catalog, store, settings)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert Path(cfg_path).exists()
    paths = json.loads(Path(oas_path).read_text())["paths"]
    assert "/collections/probes/items" in paths and "/collections/later/items" not in paths
