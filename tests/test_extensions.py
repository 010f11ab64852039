"""Social-domain extension collections: a folder with YAML and a CSV, joined onto the
neighbourhoods, published only after disclosure control."""
import csv
import shutil
import subprocess
import sys

import pytest
import requests
from hypothesis import given, settings, strategies as st

from conftest import ROOT, free_port, healthy, oup, wait_for
from oup.catalog import CatalogError, load_catalog
from oup.catalog.disclosure import DisclosurePolicy, DisclosureRule, SumConstraint, protect

AGES = ("a_00_14", "a_15_24", "a_25_44", "a_45_64", "a_65_oo")
POLICY = DisclosurePolicy(
    group_size_field="a_inw",
    rules=[DisclosureRule(("g_ink_pi",), min_group_size=100),
           DisclosureRule(AGES, min_count=5),
           DisclosureRule(("a_inw",) + AGES, round_to=5)],
    sums=[SumConstraint("a_inw", AGES)])


@st.composite
def neighbourhoods(draw):
    ages = [draw(st.one_of(st.integers(0, 12), st.integers(0, 3000))) for _ in AGES]
    row = dict(zip(AGES, ages), a_inw=sum(ages),
               g_ink_pi=draw(st.floats(5, 80).map(lambda v: round(v, 1))))
    if draw(st.booleans()):  # CBS's "secret" code somewhere
        row[draw(st.sampled_from(AGES + ("g_ink_pi",)))] = -99997
    return row


@settings(max_examples=400, deadline=None)
@given(row=neighbourhoods())
def test_disclosure_properties(row):
    out, hidden = protect(row, POLICY)
    # nothing from a group below its threshold
    if row["a_inw"] < 100:
        assert out["g_ink_pi"] is None
    for age in AGES:
        if row[age] != -99997 and row[age] < 5:
            assert out[age] is None
        if row[age] == -99997:
            assert out[age] is None
    # no suppressed part can be recomputed from a published total and the other parts
    if out["a_inw"] is not None:
        assert sum(out[a] is None for a in AGES) != 1
    # published counts are multiples of 5
    for name in ("a_inw",) + AGES:
        assert out[name] is None or out[name] % 5 == 0
    assert hidden == {k for k, v in out.items() if v is None and row.get(k) is not None}


def test_demo_key_figures_are_published_protected(server):
    feats = requests.get(f"{server}/collections/kerncijfers/items?limit=100").json()["features"]
    by_code = {f["properties"]["gwb_code"]: f["properties"] for f in feats}
    assert set(by_code) == {f"BU059903{i:02d}" for i in range(1, 7)}  # unmatched/missing left out
    small = by_code["BU05990306"]  # 87 inhabitants
    assert small["g_ink_pi"] is None and small["p_ink_li"] is None
    assert small["a_15_24"] is None and small["a_00_14"] is None  # primary + secondary
    assert small["a_soz_bb"] is None  # CBS -99997
    big = by_code["BU05990301"]
    assert big["a_inw"] % 5 == 0 and big["g_ink_pi"] == 21.4
    assert by_code["BU05990303"]["a_soz_bb"] is None  # type error, left empty
    # every geometry is the neighbourhood's own
    hoods = requests.get(f"{server}/collections/neighbourhoods/items?limit=100").json()["features"]
    geo = {h["properties"]["buurtcode"]: h["geometry"] for h in hoods}
    for f in feats:
        assert f["geometry"] == geo[f["properties"]["gwb_code"]]


def test_filtering_and_sorting_on_a_suppressed_field_reveal_nothing(server):
    base = f"{server}/collections/kerncijfers/items"
    # the raw income of the small neighbourhood is secret: no threshold finds it
    for cut in (-1e9, 0, 10, 20, 1e9):
        found = requests.get(base, params={"filter": f"g_ink_pi < {cut} OR g_ink_pi >= {cut}"}
                             ).json()["features"]
        assert "BU05990306" not in {f["properties"]["gwb_code"] for f in found}
    up = requests.get(base, params={"sortby": "g_ink_pi", "limit": 100}).json()["features"]
    down = requests.get(base, params={"sortby": "-g_ink_pi", "limit": 100}).json()["features"]
    assert all(f["properties"]["g_ink_pi"] is None or f["properties"]["gwb_code"] != "BU05990306"
               for f in up + down)
    one = requests.get(f"{base}/{next(f['id'] for f in up if f['properties']['gwb_code'] == 'BU05990306')}",
                       params={"f": "json"}).json()
    assert one["properties"]["g_ink_pi"] is None
    csv_text = requests.get(base, params={"f": "csv", "limit": 100}).text
    assert "-99997" not in csv_text and ",87," not in csv_text


def _extension(folder, rows, extra=""):
    folder.mkdir(parents=True)
    with (folder / "data.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["buurtcode", "bewoners_tevreden"])
        w.writerows(rows)
    (folder / "collection.yml").write_text(f"""title: Satisfied residents
description: Share of residents satisfied with their street (synthetic)
license: {{name: CC0}}
owner: {{name: Test steward}}
synthetic: true
sources: [{{path: data.csv}}]
join: {{collection: neighbourhoods, key: buurtcode, property: buurtcode}}
{extra}""")


def test_a_new_extension_is_served_without_code(tmp_path, imported):
    cat = tmp_path / "collections"
    shutil.copytree(imported["OUP_CATALOG_DIR"], cat)
    _extension(cat / "tevredenheid", [["BU05990301", 71], ["BU05990305", 77], ["BU0599XXXX", 1]])
    data = tmp_path / "data"
    shutil.copytree(imported["OUP_DATA_DIR"], data, ignore=shutil.ignore_patterns("server.log"))
    env = dict(imported, OUP_CATALOG_DIR=str(cat), OUP_DATA_DIR=str(data))
    res = oup(env, "import", "--quiet", "tevredenheid")
    assert "2 features" in res.stdout and "1 (unmatched buurtcode" in res.stdout
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "oup.cli", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: healthy(url), 120, "the server")
        ids = {c["id"] for c in requests.get(f"{url}/collections?f=json").json()["collections"]}
        assert "tevredenheid" in ids
        assert "/collections/tevredenheid/items" in requests.get(f"{url}/openapi.json").json()["paths"]
        records = requests.get(f"{url}/collections/catalog/items?f=json&limit=100").json()["features"]
        assert "tevredenheid" in {r["id"] for r in records}
        items = requests.get(f"{url}/collections/tevredenheid/items").json()
        assert items["numberMatched"] == 2
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.parametrize("extra, field", [
    ("disclosure: {rules: [{fields: [x], min_group_size: 0}]}", "disclosure.rules.0.min_group_size"),
    ("disclosure: {sums: [{total: a, parts: [b]}]}", "disclosure.sums.0.parts"),
])
def test_a_broken_extension_names_file_and_field(tmp_path, extra, field):
    cat = tmp_path / "collections"
    shutil.copytree(ROOT / "collections" / "neighbourhoods", cat / "neighbourhoods")
    _extension(cat / "broken", [["BU05990301", 1]], extra)
    with pytest.raises(CatalogError) as err:
        load_catalog(cat)
    assert err.value.field == field and err.value.file.endswith("broken/collection.yml")


def test_a_join_onto_a_missing_collection_is_refused(tmp_path):
    cat = tmp_path / "collections"
    _extension(cat / "broken", [["BU05990301", 1]])
    with pytest.raises(CatalogError, match="join.collection"):
        load_catalog(cat)


@pytest.mark.parametrize("old, new", [("key: buurtcode", "key: wijkcode"),
                                      ("property: buurtcode", "property: nothing")])
def test_a_broken_join_fails_at_import_naming_file_and_field(tmp_path, imported, old, new):
    cat = tmp_path / "collections"
    shutil.copytree(imported["OUP_CATALOG_DIR"], cat)
    _extension(cat / "kapot", [["BU05990301", 1]])
    yml = cat / "kapot" / "collection.yml"
    yml.write_text(yml.read_text().replace(old, new))
    res = oup(dict(imported, OUP_CATALOG_DIR=str(cat)), "import", "--quiet", "kapot",
              check=False)
    assert res.returncode == 1
    assert f"kapot/collection.yml: join.{new.split(':')[0]}:" in res.stderr
