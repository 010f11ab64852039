"""Shared fixtures: a catalogue (the demo city plus generated test collections), a
store imported from it, and a real OUP server (gunicorn, 2 workers) on loopback."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import requests

from oup.ports import free_port  # noqa: F401 (the tests take it from here)

ROOT = Path(__file__).resolve().parent.parent
# The four real city models the tests read, all inside the repository (sources and
# licences in tests/data/README.md). The demo city is the catalogue's own file, not a copy.
TEST_DATA = ROOT / "tests" / "data"
CITY_MODELS = {
    "rotterdam-delfshaven.city.json":
        ROOT / "collections" / "buildings" / "rotterdam-delfshaven.city.json",
    "delft.city.json": TEST_DATA / "delft.city.json",
    "3dbag-multi-lod.city.json": TEST_DATA / "3dbag-multi-lod.city.json",
    "rotterdam-subset-missing-textures.city.json":
        TEST_DATA / "rotterdam-subset-missing-textures.city.json",
}
# Grids are built once per machine, not once per test session.
GRID_CACHE = Path(os.environ.get("OUP_TEST_GRID_CACHE", "/tmp/oup-test-grids"))


# Tests that need these start real services (a store imported from the catalogue, a
# server, a broker, a PostgreSQL cluster): the slow layer. `pytest -m "not slow"`
# (`make test-fast`) runs the rest, in-process, in seconds.
SLOW_FIXTURES = {"env", "imported", "server", "broker", "postgis", "workdir"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _owslib_headers_restored():
    """OWSLib's OGC API clients share one dict of request headers, and a client made with
    ``headers=`` writes its own into it: one test's key would go with the next test's
    requests (a steward's token on a planner's). Each test starts from OWSLib's own."""
    from owslib import ogcapi

    saved = dict(ogcapi.REQUEST_HEADERS)
    yield
    ogcapi.REQUEST_HEADERS.clear()
    ogcapi.REQUEST_HEADERS.update(saved)


def cpu_group_of(tid: int) -> str | None:
    """The cgroup of thread or process ``tid`` under the cpu controller (v1), as /proc
    says (oup.job_cpu moves the jobs' threads and backends into one)."""
    for line in Path(f"/proc/{tid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            return path
    return None


def make_probes(folder: Path, n: int = 400, seed: int = 7) -> list[dict]:
    """A generated collection with every field type, nulls and times, for CQL2 tests."""
    rng = np.random.default_rng(seed)
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    words = ["noord", "zuid", "oost", "west", "Centrum", "haven", "Haven", "dijk_%"]
    feats = []
    for i in range(n):
        lon, lat = 4.40 + rng.random() * 0.12, 51.88 + rng.random() * 0.06
        w, h = rng.random() * 0.004, rng.random() * 0.003
        shape = rng.integers(3)
        if shape == 0:
            geom = {"type": "Point", "coordinates": [lon, lat]}
        elif shape == 1:
            geom = {"type": "LineString", "coordinates": [[lon, lat], [lon + w, lat + h]]}
        else:
            geom = {"type": "Polygon", "coordinates": [[[lon, lat], [lon + w, lat],
                                                        [lon + w, lat + h], [lon, lat]]]}
        props = {
            "name": str(rng.choice(words)) + str(i % 7),
            "count": int(rng.integers(0, 50)),
            "level": round(float(rng.normal(5, 3)), 2),
            "active": bool(rng.integers(2)),
            "observed": (t0 + timedelta(hours=int(rng.integers(0, 24 * 60)))).strftime(
                "%Y-%m-%dT%H:%M:%SZ"),
            "note": None if i % 5 == 0 else f"n{i % 3}",
            "serial": i,
        }
        feats.append({"type": "Feature", "geometry": geom, "properties": props})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "probes.geojson").write_text(json.dumps({"type": "FeatureCollection",
                                                       "features": feats}))
    (folder / "collection.yml").write_text("""
title: Probes (generated test data)
description: Generated features with every field type, for the filter tests.
keywords: [test]
license: {name: CC0 1.0}
owner: {name: OUP tests}
synthetic: true
sources: [{path: probes.geojson}]
time_field: observed
""")
    return feats


def write_probes(store, feats: list[dict], cid: str = "probes") -> list:
    """``make_probes``' features written into ``store`` as collection ``cid`` (CRS84), as
    the importer would; the fields."""
    import shapely

    from oup.store import Field
    from oup.store.base import Feature

    fields = [Field("name", "string"), Field("count", "integer"), Field("level", "number"),
              Field("active", "boolean"), Field("observed", "date-time"),
              Field("note", "string"), Field("serial", "integer")]

    def features():
        for f in feats:
            g = shapely.geometry.shape(f["geometry"])
            props = dict(f["properties"])
            props["observed"] = datetime.fromisoformat(props["observed"].replace("Z", "+00:00"))
            yield Feature(g, g, props)

    store.write_collection(cid, "EPSG:4326", fields, features(), "observed")
    return fields


def declare_collection(folder: Path, extra: str) -> Path:
    """A minimal collection.yml (an empty GeoJSON source) plus ``extra`` YAML lines, in
    ``folder``/blocks; its path. For tests of what the catalogue refuses."""
    folder = folder / "blocks"
    folder.mkdir()
    (folder / "blocks.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    (folder / "collection.yml").write_text(
        "title: Blocks\ndescription: test\nlicense: {name: CC0}\nowner: {name: t}\n"
        f"sources: [{{path: blocks.geojson}}]\n{extra}\n")
    return folder / "collection.yml"


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("oup")


def make_classified(cat: Path) -> None:
    """Copies of the liveability index as an internal and a restricted collection."""
    for cid, extra in (("internal-figures", "classification: internal\n"),
                       ("restricted-care", "classification: restricted\n"
                                           "roles: [youth-care-analyst]\n")):
        shutil.copytree(cat / "leefbaarheid", cat / cid)
        yml = (cat / cid / "collection.yml").read_text()
        yml = yml.replace("classification: public\n", extra)
        # the whole title, in every language it is written in
        yml = re.sub(r"^title:.*?(?=^\w)", f"title: {cid} secret title\n", yml,
                     count=1, flags=re.S | re.M)
        (cat / cid / "collection.yml").write_text(yml)


def make_register(folder: Path) -> list[dict]:
    """A steward's register whose attributes are named as store columns often are (id,
    fid, geom, geometry), keyed by ``id``; one entry has no geometry."""
    feats = [{"type": "Feature", "properties": {
                "id": 101 + i, "fid": 501 + i, "geom": f"g{i}", "geometry": f"shape-{i}"},
              "geometry": None if i == 2 else {"type": "Point",
                                               "coordinates": [4.45 + i / 1000, 51.91]}}
             for i in range(3)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "register.geojson").write_text(json.dumps({"type": "FeatureCollection",
                                                         "features": feats}))
    (folder / "collection.yml").write_text(
        "title: Register (generated test data)\ndescription: Attributes named id, fid, geom "
        "and geometry\nlicense: {name: CC0 1.0}\nowner: {name: OUP tests}\nsynthetic: true\n"
        "sources: [{path: register.geojson}]\nid_field: id\n")
    return feats


def make_plots(folder: Path) -> None:
    """An editable collection of its own for the write tests: polygons stored in RD New,
    client ids (an id field), stewards write, planners propose changes (scenarios)."""
    feats = [{"type": "Feature", "properties": {"name": f"plot {i}", "height": 3.5 + i,
                                                "floors": i + 1, "code": f"P{i}"},
              "geometry": {"type": "Polygon", "coordinates": [[
                  [91000 + 40 * i, 437000], [91020 + 40 * i, 437000],
                  [91020 + 40 * i, 437020], [91000 + 40 * i, 437020],
                  [91000 + 40 * i, 437000]]]}} for i in range(3)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plots.geojson").write_text(json.dumps({"type": "FeatureCollection",
                                                      "features": feats}))
    (folder / "collection.yml").write_text(
        "title: Plots (generated test data)\ndescription: Polygons to write to\n"
        "license: {name: CC0 1.0}\nowner: {name: OUP tests}\nsynthetic: true\n"
        "sources: [{path: plots.geojson, crs: EPSG:28992}]\nid_field: code\n"
        "search: [name, code]\n"
        "editable: {create: [steward], change: [steward], delete: [steward], "
        "client_ids: true}\nhistory: {retention: P1Y}\nscenarios: [planner]\n")


@pytest.fixture(scope="session")
def catalog_dir(workdir) -> Path:
    cat = workdir / "collections"
    shutil.copytree(ROOT / "collections", cat)
    make_probes(cat / "probes")
    make_classified(cat)
    make_register(cat / "register")
    make_plots(cat / "plots")
    return cat


@pytest.fixture(scope="session")
def credentials(workdir) -> dict:
    """A test identity provider: RSA and EC signing keys, their JWKS, and an API key."""
    import hashlib
    import json as _json

    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    keys = []
    for kid, key, alg in (("rsa-1", rsa_key, "RS256"), ("ec-1", ec_key, "ES256")):
        jwk = _json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
        keys.append(dict(jwk, kid=kid, alg=alg, use="sig"))
    jwks = workdir / "jwks.json"
    jwks.write_text(_json.dumps({"keys": keys}))
    api_key = "oup-test-" + hashlib.sha256(b"api key for the tests").hexdigest()[:24]
    keys_file = workdir / "api-keys.yml"
    keys_file.write_text(f"- name: etl-service\n  sha256: "
                         f"{hashlib.sha256(api_key.encode()).hexdigest()}\n"
                         f"  roles: [youth-care-analyst]\n")
    return {"rsa": rsa_key, "ec": ec_key, "jwks": jwks, "api_keys": keys_file,
            "api_key": api_key, "issuer": "https://login.example.org/realms/city",
            "audience": "oup"}


@pytest.fixture(scope="session")
def postgis(workdir):
    """A real PostgreSQL + PostGIS cluster on loopback, for the suite's PostGIS half."""
    import tempfile

    from oup.store.localdb import LocalPostGIS

    # outside pytest's private tmp folders: the postgres user must reach it
    folder = Path(tempfile.mkdtemp(prefix="oup-test-pg-"))
    folder.chmod(0o755)
    db = LocalPostGIS(folder / "cluster", durable=False).start()
    yield db
    db.stop()
    shutil.rmtree(folder, ignore_errors=True)


# One suite, two stores: every test that touches the store (through env, imported or
# server) runs against the embedded GeoPackage and against PostGIS.
STORES = ["gpkg", "postgis"]


@pytest.fixture(scope="session", params=STORES)
def env(request, workdir, catalog_dir, credentials) -> dict:
    backend = request.param
    data = workdir / f"data-{backend}"
    (data / "proj").mkdir(parents=True, exist_ok=True)
    GRID_CACHE.mkdir(parents=True, exist_ok=True)
    for grid in GRID_CACHE.glob("*.tif"):
        shutil.copy(grid, data / "proj" / grid.name)
    e = dict(os.environ, OUP_DATA_DIR=str(data), OUP_CATALOG_DIR=str(catalog_dir),
             OUP_LOG_LEVEL="WARNING", OUP_JWKS_FILE=str(credentials["jwks"]),
             OUP_JWT_ISSUER=credentials["issuer"], OUP_JWT_AUDIENCE=credentials["audience"],
             OUP_API_KEYS_FILE=str(credentials["api_keys"]), OUP_TEST_STORE=backend)
    e.pop("OUP_DATABASE_URL", None)
    if backend == "postgis":
        e["OUP_DATABASE_URL"] = request.getfixturevalue("postgis").create("oup")
    return e


@pytest.fixture
def one_store(env):
    """For browser runs whose pages do not depend on the store (a run takes up to a
    minute): the GeoPackage half of the suite runs them, the PostGIS half does not."""
    if env["OUP_TEST_STORE"] != "gpkg":
        pytest.skip("the same pages as on GeoPackage")


def healthy(url: str) -> bool:
    """The server at ``url`` answers /health with 200 (not up yet: False)."""
    try:
        return requests.get(f"{url}/health", timeout=2).status_code == 200
    except (requests.ConnectionError, requests.Timeout):  # a worker still starting (busy machine)
        return False


def metric(text: str, name: str) -> float:
    """The value of ``name`` (with its labels, if any) in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def store_url(env: dict) -> str:
    return env.get("OUP_DATABASE_URL") or f"gpkg://{env['OUP_DATA_DIR']}/oup.gpkg"


def oup(env: dict, *args, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oup.cli", *args], env=env, text=True,
                          capture_output=True, check=check, timeout=600, **kw)


def python(env: dict, code: str) -> str:
    """What ``code`` prints, run by this Python in a process of its own with ``env`` (the
    app is built once a process)."""
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def api_keys(env: dict, people: dict[str, list[str]], tag: str) -> dict[str, dict]:
    """A key for each of ``people`` (name -> roles), made by ``oup keys add`` into
    ``env``'s keys file (each name with ``tag``, so that modules sharing it do not
    clash): name -> the header that signs in with it."""
    made = {}
    for name, roles in people.items():
        out = oup(env, "keys", "add", f"{name}-{tag}", *[a for r in roles for a in ("--role", r)])
        made[name] = {"X-API-Key": out.stdout.strip()}
    return made


@pytest.fixture(scope="session")
def imported(env) -> dict:
    oup(env, "import", "--quiet")
    oup(env, "tile", "--quiet")
    for grid in (Path(env["OUP_DATA_DIR"]) / "proj").glob("*.tif"):
        if not (GRID_CACHE / grid.name).exists():
            shutil.copy(grid, GRID_CACHE / grid.name)
    return env


@contextmanager
def serving(env: dict):
    """A real OUP server (gunicorn, 2 workers) on a free loopback port, for ``env``."""
    port = free_port()
    data = Path(env["OUP_DATA_DIR"])
    log = open(data / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "oup.cli", "serve", "--port", str(port),
                             "--workers", "2"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if healthy(url):
                break
            if proc.poll() is not None:
                raise RuntimeError((data / "server.log").read_text())
            time.sleep(0.3)
        else:
            raise RuntimeError("server did not come up in 120 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def server(imported) -> str:
    with serving(imported) as url:
        yield url


@pytest.fixture(scope="session")
def probes(catalog_dir) -> list[dict]:
    return json.loads((catalog_dir / "probes" / "probes.geojson").read_text())["features"]


# -- live sensors: a real Mosquitto, real `oup ingest` processes -----------------------------

SENSORS = json.loads((ROOT / "collections" / "sensors" / "sensors.geojson").read_text())["features"]


@pytest.fixture(scope="session")
def broker(workdir, request):
    """Mosquitto with config/mosquitto.conf (persistence on), on a free loopback port."""
    from iot_ingest.broker import BrokerProcess

    # every packet in its log (log_type all): a delivery test that loses or stalls a message
    # is traced from the log of the run that failed, not from a rerun that may pass
    b = BrokerProcess(workdir / "broker", free_port(), kind="mosquitto", log_all=True).start()
    yield b
    for ing in IngesterProcess.started:  # a failed test may have left one running
        ing.stop()
    b.stop()
    if not request.session.testsfailed:  # ~170 MB for test_ingest.py alone: kept for a failure
        (b.data_dir / "mosquitto" / "mosquitto.log").unlink(missing_ok=True)


class IngesterProcess:
    """`oup ingest` as a child process, killable and restartable with the same client id."""

    started: list["IngesterProcess"] = []

    def __init__(self, env: dict, client_id: str, group: str | None = None):
        # one client id (and group) per store half of the suite: the halves share the
        # broker, and two live clients with one id keep taking the session from each other
        suffix = env.get("OUP_TEST_STORE", "local")
        client_id = f"{client_id}-{suffix}"
        # no group: a plain subscription, as `oup ingest` makes by default
        self.env = dict(env, OUP_INGEST_CLIENT_ID=client_id,
                        OUP_INGEST_GROUP=f"{group}-{suffix}" if group else "",
                        OUP_LOG_LEVEL="WARNING")
        self.client_id = client_id
        self.status_file = Path(env["OUP_DATA_DIR"]) / "ingest" / f"{client_id}.json"
        self.log = Path(env["OUP_DATA_DIR"]) / f"ingest-{client_id}.log"
        self.proc = None

    def start(self, timeout: float = 30) -> "IngesterProcess":
        self.status_file.unlink(missing_ok=True)
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "oup.cli", "ingest"],
                                         env=self.env, stdout=log, stderr=log)
        IngesterProcess.started.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # subscribed: from now on the broker queues for us
            if self.status().get("subscribed"):
                return self
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            time.sleep(0.05)
        raise AssertionError(f"ingester did not subscribe in {timeout} s")

    def status(self) -> dict:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}

    def freeze(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)  # alive, but it neither reads nor reconnects

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no clean-up, no last batch, no goodbye to the broker
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.thaw()  # a frozen process would hold SIGTERM pending
            self.proc.terminate()
            self.proc.wait(timeout=60)

    def forget(self) -> None:
        """End its session at the broker (clean start, no expiry), which would otherwise
        queue every later test's messages on its topics for 7 days."""
        from iot_ingest.mqtt import Broker

        if not self.env.get("OUP_MQTT_URL"):
            return
        broker = Broker.from_url(self.env["OUP_MQTT_URL"])
        client, connected = broker.client(self.client_id), threading.Event()
        client.on_connect = lambda *a: connected.set()
        client.connect(broker.host, broker.port, clean_start=True)
        client.loop_start()
        connected.wait(10)
        client.disconnect()
        client.loop_stop()


@pytest.fixture(autouse=True)
def _no_ingester_outlives_its_test():
    """A test that fails before stopping its ingester must not leave it subscribed: it
    would store the next tests' messages and turn them into duplicates there."""
    yield
    for ing in IngesterProcess.started:
        ing.stop()
    for ing in {ing.client_id: ing for ing in IngesterProcess.started}.values():
        ing.forget()
    IngesterProcess.started.clear()


def flat_messages(n: int, start: datetime, step_us: int = 1_000_000) -> list[tuple[str, bytes, tuple]]:
    """n distinct flat-JSON readings over the demo's sensors, from ``start`` on:
    (topic, payload, (sensor id, phenomenon time in microseconds))."""
    from oup.sensors.observations import us_of

    ids = [f["properties"]["sensor_id"] for f in SENSORS
           if f["properties"]["observed_property"] in ("NO2", "PM10", "PM25")]
    t0 = us_of(start)
    out = []
    for i in range(n):
        sid, t = ids[i % len(ids)], t0 + (i // len(ids)) * step_us
        when = (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=t))
        payload = json.dumps({"phenomenonTime": when.isoformat().replace("+00:00", "Z"),
                              "result": round(10 + (i % 500) / 10, 1)}).encode()
        out.append((f"oup/sensors/{sid}/observations", payload, (sid, t)))
    return out


def publish_in_background(broker_url: str, messages, client_id: str, rate: float | None = None):
    """Publish (topic, payload, key) messages from a thread, QoS 1 (at most ``rate`` per
    second), until every one is acknowledged by the broker; (publisher, done event, errors)."""
    from iot_ingest.mqtt import Broker
    from iot_ingest.simulate import Publisher

    pub = Publisher(Broker.from_url(broker_url), client_id)
    done = threading.Event()
    errors = []

    def run():
        t0 = time.monotonic()
        try:
            for i, (topic, payload, _) in enumerate(messages):
                if rate and (ahead := i / rate - (time.monotonic() - t0)) > 0:
                    time.sleep(ahead)
                pub.publish(topic, payload)
            pub.close(timeout=300)
        except Exception as exc:  # surfaced by the test
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    return pub, done, errors


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
