"""`oup import` fuzzed with broken files, on both stores: hypothesis makes hundreds of them
(truncated, corrupted, mislabelled, empty; NaN, huge strings, bad and self-intersecting
geometries, mixed types, wrong types, missing columns). The only outcomes allowed: success
with a report, or exit 1 with one line naming the file; and whatever was stored before a
failed import is served unchanged."""
import gc
import io
import json
import os
import shutil
import subprocess
import sys
import warnings
import zipfile

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import GRID_CACHE, STORES

pytestmark = pytest.mark.slow

# per store; a run takes seconds. OUP_FUZZ_EXAMPLES=5000 for a deeper search
EXAMPLES = int(os.environ.get("OUP_FUZZ_EXAMPLES", 300))

NAMES = st.sampled_from(["id", "fid", "geom", "geometry", "name", "t", "x", "y", "Naam",
                         "hoogte", "", " ", "a\"b", "ID", "_oup_fid", "ë"])
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
                   st.sampled_from(["2024-01-01T00:00:00Z", "not a time", "91930,5", "NaN",
                                    "\x00"]),
                   st.lists(st.integers(), max_size=3))
POINT = st.tuples(st.floats(4.4, 4.5), st.floats(51.9, 52.0)).map(list)
GEOMETRIES = st.one_of(
    st.none(),
    POINT.map(lambda p: {"type": "Point", "coordinates": p}),
    st.just({"type": "Polygon", "coordinates": [[[4.4, 51.9], [4.5, 52.0], [4.5, 51.9],
                                                 [4.4, 52.0], [4.4, 51.9]]]}),  # a bow tie
    st.just({"type": "LineString", "coordinates": [[4.4, 51.9], [4.41, 51.91]]}),
    st.just({"type": "Polygon", "coordinates": [[4.4, 51.9]]}),  # unparsable
    st.just({"type": "Point", "coordinates": [float("nan"), 51.9]}),
    st.just({"type": "Hexagon", "coordinates": []}),
    st.sampled_from(["POINT (1 2)", 17, [], {}]),
)


@st.composite
def geojson(draw):
    feats = [{"type": "Feature", "geometry": draw(GEOMETRIES),
              "properties": draw(st.dictionaries(NAMES, VALUES, max_size=5))}
             for _ in range(draw(st.integers(0, 6)))]
    if draw(st.integers(0, 19)) == 0:  # a huge string now and then
        feats.append({"type": "Feature", "geometry": None,
                      "properties": {"note": "x" * 1_000_001}})
    if draw(st.booleans()) and feats:
        feats[0] = draw(st.sampled_from(["feature", None, {"type": "Feature"}]))
    doc = draw(st.sampled_from([{"type": "FeatureCollection", "features": feats},
                                {"type": "FeatureCollection", "features": "none"},
                                {"type": "Topology"}, feats]))
    return json.dumps(doc, allow_nan=True).encode()


@st.composite
def csv_text(draw):
    sep = draw(st.sampled_from([",", ";", "\t", "|"]))
    header = draw(st.lists(NAMES, min_size=1, max_size=5))
    if draw(st.booleans()):
        header += ["x", "y"]
    cells = st.one_of(st.sampled_from(["", "91930,5", "437500.25", "NaN", "inf", "1e400",
                                       "abc", '"quoted;sep"', "2024-05-01"]),
                      st.text(max_size=8))
    rows = [sep.join(draw(st.lists(cells, min_size=0, max_size=len(header) + 1)))
            for _ in range(draw(st.integers(0, 5)))]
    text = "\n".join([sep.join(header)] + rows)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16"]))
    return text.encode(encoding, errors="replace")


def _binary_samples(folder) -> dict[str, bytes]:
    """Valid files written by GDAL: the fuzzer breaks them."""
    import pyogrio
    import geopandas
    import shapely

    df = geopandas.GeoDataFrame({"name": ["a", "b"], "n": [1, 2]},
                                geometry=[shapely.box(91930, 437500, 91940, 437510),
                                          shapely.box(91900, 437400, 91950, 437450)],
                                crs="EPSG:28992")
    out = {}
    for suffix, driver in ((".gpkg", "GPKG"), (".fgb", "FlatGeobuf"), (".shp", "ESRI Shapefile"),
                           (".gml", "GML"), (".kml", "KML"), (".geojsonl", "GeoJSONSeq")):
        path = folder / f"sample{suffix}"
        pyogrio.write_dataframe(df, path, driver=driver)
        if suffix == ".shp":
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as z:
                for part in folder.glob("sample.*"):
                    if part.suffix in (".shp", ".shx", ".dbf", ".prj"):
                        z.write(part, part.name)
            out[".zip"] = buf.getvalue()
        else:
            out[suffix] = path.read_bytes()
    sheet = folder / "sample.xlsx"
    pyogrio.write_dataframe(df.assign(x=df.geometry.centroid.x, y=df.geometry.centroid.y)
                            .drop(columns="geometry"), sheet, driver="XLSX")
    out[".xlsx"] = sheet.read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "no dataset here")
    out[".zip (no dataset)"] = buf.getvalue()
    return out


@st.composite
def broken_file(draw, samples):
    """(file name, bytes, extra lines of collection.yml)."""
    kind = draw(st.sampled_from(["geojson", "csv", "binary", "binary", "mislabelled"]))
    if kind == "geojson":
        name, data = "f.geojson", draw(geojson())
    elif kind == "csv":
        name, data = "f.csv", draw(csv_text())
    else:
        label = draw(st.sampled_from(sorted(samples)))
        data = samples[label]
        suffix = label.split(" ")[0]
        if kind == "mislabelled":
            suffix = draw(st.sampled_from([".gpkg", ".fgb", ".zip", ".geojson", ".csv", ".xlsx",
                                           ".city.json"]))
        name = "f" + suffix
    cut = draw(st.sampled_from(["whole", "whole", "truncated", "corrupted", "empty"]))
    if cut == "truncated":
        data = data[:draw(st.integers(0, max(0, len(data) - 1)))]
    elif cut == "corrupted" and data:
        data = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        data = bytes(data)
    elif cut == "empty":
        data = b""
    extra = draw(st.sampled_from(["", "id_field: id\n", "time_field: t\n", "id_field: nope\n"]))
    source = f"path: {name}"
    if name.endswith((".csv", ".xlsx")) and draw(st.integers(0, 3)):
        source += ", x_field: x, y_field: y, crs: 'EPSG:28992'"
    return name, data, source, extra


def write_collection(cat, name, data, source, extra):
    d = cat / "fuzz"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    (d / name).write_bytes(data)
    (d / "collection.yml").write_text(f"title: Fuzz\ndescription: broken files\nlicense: "
                                      f"{{name: CC0}}\nowner: {{name: T}}\nsources: [{{{source}}}]"
                                      f"\n{extra}")


@pytest.fixture(params=STORES)
def fuzz_env(request, tmp_path, monkeypatch):
    data = tmp_path / "data"
    (data / "proj").mkdir(parents=True)
    for grid in GRID_CACHE.glob("*.tif"):
        shutil.copy(grid, data / "proj" / grid.name)
    monkeypatch.setenv("OUP_DATA_DIR", str(data))
    monkeypatch.setenv("OUP_CATALOG_DIR", str(tmp_path / "cat"))
    if request.param == "postgis":
        monkeypatch.setenv("OUP_DATABASE_URL", request.getfixturevalue("postgis").create(
            f"fuzz{tmp_path.name[-6:]}".replace("-", "_").lower()))
    else:
        monkeypatch.delenv("OUP_DATABASE_URL", raising=False)
    from oup.settings import get_settings

    get_settings.cache_clear()
    yield tmp_path / "cat"
    get_settings.cache_clear()


def served(store):
    from oup.store import Query

    return store.query("fuzz", Query(limit=100)).features


def test_broken_files_are_one_line_or_a_report_and_lose_nothing(fuzz_env, tmp_path):
    from oup.cli import main
    from oup.settings import get_settings
    from oup.store import open_store

    samples = _binary_samples(tmp_path)
    runner = CliRunner()
    write_collection(fuzz_env, "f.geojson", json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [4.45, 51.91]},
         "properties": {"name": "kept"}}]}).encode(), "path: f.geojson", "")
    first = runner.invoke(main, ["import", "--quiet"])
    assert first.exit_code == 0, first.output
    store = open_store(get_settings().store_url)
    before = [served(store)]
    outcomes = {0: 0, 1: 0}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=broken_file(samples))
    def run(case):
        write_collection(fuzz_env, *case)
        gc.collect()  # what earlier tests left unclosed is theirs, not this import's
        with warnings.catch_warnings(record=True) as caught:  # each a line on stderr
            warnings.simplefilter("always")
            result = runner.invoke(main, ["import", "--quiet"])
            gc.collect()  # and what this import leaves unclosed is its own
        assert not caught, [str(w.message) for w in caught]
        assert result.exit_code in (0, 1), (case[0], result.exc_info)
        assert not isinstance(result.exception, Exception) or isinstance(
            result.exception, SystemExit), (case[0], result.exc_info)
        outcomes[result.exit_code] += 1
        if result.exit_code == 0:
            assert result.stdout.startswith("fuzz: "), result.stdout
            before[0] = served(store)
        else:
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("oup: fuzz: "), result.stderr
            assert served(store) == before[0]  # what was there is served unchanged

    gc.collect()
    gc.freeze()  # what is alive now is not scanned again: each example's collection is quick
    try:
        run()
    finally:
        gc.unfreeze()
    assert outcomes[0] and outcomes[1]  # both outcomes were met


@pytest.mark.parametrize("name, data, reason", [
    ("f.gpkg", b"SQLite format 3\x00" + b"\x01" * 200, "f.gpkg"),
    ("f.zip", None, "the zip holds no dataset"),
    ("f.fgb", b"", "f.fgb is empty"),
    ("f.csv", "naam;x\nA;1\n".encode("utf-16"), "f.csv"),
])
def test_one_line_from_the_real_command_gdal_included(fuzz_env, tmp_path, name, data, reason):
    """In a process of its own: GDAL's own messages would go to stderr beside ours."""
    if data is None:
        data = _binary_samples(tmp_path)[".zip (no dataset)"]
    write_collection(fuzz_env, name, data, f"path: {name}", "")
    run = subprocess.run([sys.executable, "-m", "oup.cli", "import", "--quiet"], env=os.environ,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and reason in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr

