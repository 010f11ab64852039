"""The catalogue: declared once, validated with the file and field in the message."""
from pathlib import Path

import pytest

from oup.catalog import CatalogError, load_catalog

ROOT = Path(__file__).resolve().parent.parent


def test_demo_catalogue_loads():
    cat = load_catalog(ROOT / "collections")
    assert {"buildings", "neighbourhoods"} <= set(cat.collections)
    b = cat["buildings"]
    assert b.owner.name and b.license.name and b.classification.value == "public"
    assert cat["neighbourhoods"].synthetic


def _broken(tmp_path, text: str, extra_files=("data.geojson",)) -> Path:
    folder = tmp_path / "cat" / "things"
    folder.mkdir(parents=True)
    (folder / "collection.yml").write_text(text)
    for name in extra_files:
        (folder / name).write_text('{"type": "FeatureCollection", "features": []}')
    return tmp_path / "cat"


GOOD = """title: T
description: D
license: {name: CC0}
owner: {name: Me}
sources: [{path: data.geojson}]
"""
STREAM = """stream:
  topics: [{topic: "oup/+/x", format: flat}]
  properties: {NO2: {title: N, unit: ug/m3, min: 0, max: 9}}
"""


@pytest.mark.parametrize("text, field, words", [
    (GOOD.replace("title: T\n", ""), "title", "Field required"),
    (GOOD + "classification: secret\n", "classification", "public"),
    (GOOD.replace("data.geojson", "missing.geojson"), "sources.0.path", "not found"),
    (GOOD.replace("data.geojson", "data.xyz"), "sources.0", "format"),
    (GOOD + "colour: red\n", "colour", "Extra inputs"),
    (GOOD + "id: other\n", "id", "folder name"),
    (GOOD + "extent: {bbox: [5, 52, 4, 51]}\n", "extent.bbox", "min <= max"),
    ("title: [unclosed\n", "(yaml)", "YAML"),
    (GOOD + STREAM, "(document)", "id_field"),
    (GOOD + "id_field: sid\n" + STREAM.replace("oup/+/x", "oup/a+/x"), "stream.topics.0.topic",
     "topic filter"),
    (GOOD + "id_field: sid\n" + STREAM.replace("min: 0, max: 9", "min: 9, max: 0"),
     "stream.properties.NO2", "min must not exceed max"),
    (GOOD + "id_field: sid\n" + STREAM.replace("format: flat", "format: xml"),
     "stream.topics.0.format", "flat"),
    (GOOD + "observations_of: things\n", "(document)", "exactly one of sources"),
    (GOOD.replace("sources: [{path: data.geojson}]\n", "observations_of: things\n"),
     "observations_of", "not a collection with a stream"),
    (GOOD.replace("sources: [{path: data.geojson}]\n", "time_slices: {of: things, length: PT7S}\n"),
     "time_slices", "PT1M"),
    (GOOD + "counts: {of: things, areas: things, key: code}\n", "(document)",
     "exactly one of sources"),
    (GOOD.replace("sources: [{path: data.geojson}]\n",
                  "counts: {of: reports, areas: things, key: code}\n"),
     "counts.of", "no other collection 'reports'"),
    (GOOD.replace("sources: [{path: data.geojson}]\n",
                  "counts: {of: things, areas: things, key: code}\n"
                  "editable: {create: [steward]}\n"), "(document)", "counted"),
])
def test_a_broken_declaration_names_file_and_field(tmp_path, text, field, words):
    root = _broken(tmp_path, text)
    with pytest.raises(CatalogError) as err:
        load_catalog(root)
    assert err.value.field == field
    assert err.value.file.endswith("things/collection.yml")
    assert words.lower() in err.value.message.lower()


def test_cli_catalog_check_fails_with_one_line(tmp_path, env):
    from conftest import oup

    root = _broken(tmp_path, GOOD + "classification: secret\n")
    res = oup(dict(env, OUP_CATALOG_DIR=str(root)), "catalog", "check", check=False)
    assert res.returncode == 1
    assert "things/collection.yml: classification:" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_cli_catalog_check_lists_the_demo(env):
    from conftest import oup

    res = oup(env, "catalog", "check")
    assert "buildings" in res.stdout and "neighbourhoods" in res.stdout


def _last_event(env) -> int:
    from oup.store import open_observation_store

    return open_observation_store(f"gpkg://{env['OUP_DATA_DIR']}/oup.gpkg").last_event()


def _events(url: str, after: int, wanted) -> dict:
    """The first event after ``after`` on ``/events`` that is ``wanted`` (30 s at most)."""
    import json
    import time

    import requests

    deadline = time.monotonic() + 30
    with requests.get(f"{url}/events", params={"after": after}, stream=True,
                      timeout=(10, 30)) as r:
        for line in r.iter_lines():
            if line.startswith(b"data: ") and wanted(event := json.loads(line[6:])):
                return event
            assert time.monotonic() < deadline, "no such event in 30 s"
    raise AssertionError("the stream ended without it")


def test_reload_publishes_a_new_collection_without_a_restart(workdir):
    """A data steward adds a collection while the server runs: `oup import` and
    `oup catalog reload`, and it is published; requests during the reload all succeed.
    A broken catalogue is refused and the server keeps serving the one it has."""
    import os
    import shutil
    import subprocess
    import sys
    import threading
    import time

    import requests

    from conftest import free_port, healthy, make_probes, oup, wait_for

    cat, data = workdir / "reload-catalogue", workdir / "reload-data"
    shutil.copytree(ROOT / "collections" / "sensors", cat / "sensors")
    env = dict(os.environ, OUP_DATA_DIR=str(data), OUP_CATALOG_DIR=str(cat),
               OUP_LOG_LEVEL="WARNING")
    env.pop("OUP_DATABASE_URL", None)
    oup(env, "import", "--quiet")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(workdir / "reload-server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "oup.cli", "serve", "--port", str(port),
                               "--workers", "2"], env=env, stdout=log, stderr=log)
    codes, errors, stop = [], [], threading.Event()

    def keep_asking():  # a client reading all through the reload, a connection a request
        while not stop.is_set() and len(codes) + len(errors) < 100_000:
            try:
                codes.append(requests.get(f"{url}/collections/sensors/items",
                                          timeout=30).status_code)
            except requests.RequestException as exc:  # e.g. reset by a stopping worker
                errors.append(repr(exc))

    try:
        wait_for(lambda: healthy(url), 120, "the server")

        def ids() -> set[str]:
            doc = requests.get(f"{url}/collections", timeout=30).json()
            return {c["id"] for c in doc["collections"]}
        assert ids() == {"sensors", "catalog"}  # catalog: the Records catalogue
        reader = threading.Thread(target=keep_asking)
        reader.start()
        make_probes(cat / "probes")
        oup(env, "import", "probes", "--quiet")
        before = _last_event(env)
        out = oup(env, "catalog", "reload").stdout
        assert f"(pid {server.pid})" in out and "2 collections" in out
        assert "event oup.collection.added probes" in out
        wait_for(lambda: ids() == {"sensors", "catalog", "probes"}, 60, "probes in /collections")
        # subscribers hear of it (from where they were), and the AsyncAPI lists its channels
        added = _events(url, before, lambda e: e["type"] == "oup.collection.added")
        assert added["subject"] == "probes" and added["data"]["classification"] == "public"
        channels = requests.get(f"{url}/asyncapi", timeout=30).json()["channels"]
        assert channels["probes-sse"]["address"] == "/collections/probes/events"
        assert channels["probes-mqtt"]["address"] == "oup/events/collections/probes/{kind}"
        r = requests.get(f"{url}/collections/probes/items", params={"limit": 5}, timeout=30)
        assert r.status_code == 200 and len(r.json()["features"]) == 5
        assert "/collections/probes/items" in requests.get(f"{url}/openapi?f=json",
                                                          timeout=30).text
        records = requests.get(f"{url}/collections/catalog/items", timeout=30).json()
        assert "probes" in {f["id"] for f in records["features"]}
        (cat / "probes" / "collection.yml").write_text("title: [broken\n")
        refused = oup(env, "catalog", "reload", check=False)
        assert refused.returncode != 0 and "probes" in refused.stdout + refused.stderr
        time.sleep(2)
        assert ids() == {"sensors", "catalog", "probes"}  # still serving the last good catalogue
        stop.set()
        reader.join(60)
        assert codes and set(codes) == {200} and not errors, (sorted(set(codes)), errors[:3])
    finally:
        stop.set()
        server.terminate()
        server.wait(30)
        log.close()
    # the server has ended: its pid file is stale, and nothing is signalled
    shutil.rmtree(cat / "probes")  # (the broken one)
    assert "no server running" in oup(env, "catalog", "reload").stdout

