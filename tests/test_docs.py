"""The documentation: the site builds strictly, its reference holds everything the code
has, every example of the README and the site runs against a real demo (server, job
worker, Mosquitto, ingester), a broken example fails, and the platform serves the site at
/docs/ offline, linked from the landing page."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from html import unescape
from pathlib import Path

import pytest
import requests

from conftest import GRID_CACHE, ROOT, free_port, serving
from docs_examples import (Demo, Example, ExampleError, all_examples, example_env,
                           examples_in, run)
from test_pages import CHROMIUM, open_offline

EXAMPLES = all_examples()


# -- the site, built (fast: seconds, no services) ------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    from oup.docsite import build

    out = tmp_path_factory.mktemp("site")
    done = build(out, strict=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def text_of(page: Path) -> str:
    """A built page's text, tags dropped and entities read."""
    return unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


def test_the_site_builds_strictly_and_asks_no_other_host(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 14
    for page in pages:
        html = page.read_text(encoding="utf-8")
        # what a browser fetches by itself: scripts, style sheets, images, fonts, frames
        fetched = re.findall(r'<(?:script|img|iframe|source)\b[^>]*\bsrc="([^"]+)"', html)
        fetched += re.findall(r'<link\b[^>]*\bhref="([^"]+)"', html)
        foreign = [u for u in fetched if re.match(r"(https?:)?//", u)]
        assert foreign == [], (page, foreign)
    for sheet in site.rglob("*.css"):
        assert not re.search(r"url\((['\"]?)(https?:)?//", sheet.read_text()), sheet


def test_a_broken_link_fails_the_strict_build(tmp_path):
    """--strict is what catches a link to a page or heading that is not there."""
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    page = docs / "guides" / "operator.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text((ROOT / "mkdocs.yml").read_text().replace(
        "docs_dir: docs", f"docs_dir: {docs}").replace(
        "oup/docsite/hooks.py", str(ROOT / "oup" / "docsite" / "hooks.py")))
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f",
                           str(config), "-d", str(tmp_path / "site")], capture_output=True,
                          text=True, timeout=300, env=example_env(tmp_path, {}))
    assert done.returncode != 0 and "no-such-page.md" in done.stderr + done.stdout


def _catalogue_names(model, prefix="") -> list[str]:
    """Every field of collection.yml, walked from the models (nested ones as a.b)."""
    import typing

    from pydantic import BaseModel

    names = []
    for name, field in model.model_fields.items():
        if field.exclude or (not prefix and name == "id"):
            continue
        names.append(prefix + name)
        inner = [a for a in (field.annotation, *typing.get_args(field.annotation))
                 for a in (a, *typing.get_args(a))
                 if isinstance(a, type) and issubclass(a, BaseModel)]
        for m in inner:
            names += _catalogue_names(m, prefix + name + ".")
    return names


def test_the_reference_has_every_field_setting_verb_and_endpoint(site):
    from click.testing import CliRunner

    from oup.catalog import Collection
    from oup.cli import main
    from oup.settings import Settings

    fields = text_of(site / "reference" / "collection-yml" / "index.html").replace("[]", "")
    for name in _catalogue_names(Collection):
        assert name in fields, f"collection.yml field {name} is not in the reference"
    settings = text_of(site / "reference" / "settings" / "index.html")
    for name in Settings.model_fields:
        assert f"OUP_{name.upper()}" in settings, f"setting OUP_{name.upper()} is missing"
    # and every OUP_ variable the code reads from the environment itself
    read = {m for folder in ("oup", "iot_ingest", "tilers")
            for src in (ROOT / folder).rglob("*.py")
            for m in re.findall(r'environ(?:\.get\(|\[)"(OUP_\w+)"', src.read_text())}
    assert read and sorted(v for v in read if v not in settings) == []
    cli = text_of(site / "reference" / "cli" / "index.html")
    # the verbs as `oup --help` lists them, groups opened
    listed = CliRunner().invoke(main, ["--help"]).output
    verbs = re.findall(r"^  (\w[\w-]*)\s", listed.split("Commands:")[1], re.M)
    assert len(verbs) >= 10
    for verb in verbs:
        sub = CliRunner().invoke(main, [verb, "--help"]).output
        if "Commands:" in sub:
            for inner in re.findall(r"^  (\w[\w-]*)\s", sub.split("Commands:")[1], re.M):
                assert f"oup {verb} {inner}" in cli, f"oup {verb} {inner} is missing"
        else:
            assert f"oup {verb}" in cli, f"oup {verb} is missing"
    # every endpoint path the code declares (Endpoint("/path", ...)), read from the source
    endpoints = text_of(site / "reference" / "endpoints" / "index.html")
    declared = {m for src in (ROOT / "oup").rglob("*.py")
                for m in re.findall(r'Endpoint\(\s*f?"(/[^"]*)"', src.read_text())}
    assert len(declared) >= 25
    for path in declared:
        if "{" in path and "}" not in path.replace("{", "", 1):  # an f-string's own braces
            continue
        assert path in endpoints, f"endpoint {path} is not in the reference"


# -- the examples: found, judged, and a broken one fails ----------------------------------

def test_every_page_with_examples_is_read_and_skips_say_why():
    by_page = {ex.source for ex in EXAMPLES}
    assert "README.md" in by_page and "docs/guides/data-steward.md" in by_page
    assert len(EXAMPLES) >= 40
    skipped = [(ex.name, ex.skipped) for ex in EXAMPLES if ex.skipped]
    print("\nexamples not run, and why:\n" + "\n".join(f"  {n}: {why}" for n, why in skipped))
    assert all(why for _, why in skipped)
    runnable = [ex for ex in EXAMPLES if not ex.skipped]
    assert len(runnable) > 2 * len(skipped)  # most are run
    assert {ex.language for ex in runnable} >= {"shell", "python", "js"}


def test_the_parser_takes_marks_and_refuses_a_mark_without_reason():
    text = ("Text\n\n<!-- not-runnable: needs a browser -->\n\n```js\nalert(1)\n```\n\n"
            "```sh\ncurl -fsS http://127.0.0.1:5000/health\n```\n\n  ```python\n  print(1)\n"
            "  ```\n\n```yaml\na: 1\n```\n")
    found = examples_in(text, "page.md")
    assert [(e.language, e.skipped, e.line) for e in found] == [
        ("js", "needs a browser", 5), ("shell", None, 9), ("python", None, 13)]
    assert found[2].code == "print(1)\n"
    with pytest.raises(ExampleError, match="page.md:1: a not-runnable mark needs its reason"):
        examples_in("<!-- not-runnable -->\n```sh\ntrue\n```\n", "page.md")
    with pytest.raises(ExampleError, match="never closed"):
        examples_in("```sh\ntrue\n", "page.md")


def test_a_broken_example_fails(tmp_path):
    """The runner reports failure for an example that fails: a curl of a page that is not
    there (curl -f), a command that fails mid-block, a Python error, a script that hangs."""
    demo = Demo("http://127.0.0.1:1", 1, "mqtt://127.0.0.1:1", tmp_path, example_env(tmp_path, {}))
    ok = Example("t.md", 1, "shell", "echo fine\n")
    assert run(ok, demo).returncode == 0
    for language, code in [("shell", "curl -fsS http://127.0.0.1:5000/nothing\n"),
                           ("shell", "false\necho never\n"),
                           ("shell", "echo $UNSET_VARIABLE\n"),
                           ("python", "import json\njson.loads('{')\n"),
                           ("js", "throw new Error('broken');\n")]:
        done = run(Example("t.md", 1, language, code), demo)
        assert done.returncode != 0, (language, code)
    assert run(Example("t.md", 1, "shell", "sleep 30\n"), demo, timeout=1).returncode == 124


# -- against a real demo (slow) ------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(workdir):
    """The demo city in a folder laid out as the repository (its own catalogue copy and data
    folder: the examples add collections, keys and features), served by `oup serve`, with
    `oup worker`, a Mosquitto and `oup ingest`, as `make demo` runs them."""
    from iot_ingest.broker import BrokerProcess

    folder = workdir / "docs-examples"
    shutil.copytree(ROOT / "collections", folder / "collections")
    (folder / "data" / "proj").mkdir(parents=True)
    for grid in GRID_CACHE.glob("*.tif"):
        shutil.copy(grid, folder / "data" / "proj" / grid.name)
    for name in ("tests", "config"):
        (folder / name).symlink_to(ROOT / name)
    broker = BrokerProcess(folder / "broker", free_port(), kind="mosquitto").start()
    env = example_env(folder, {"OUP_MQTT_URL": broker.url, "OUP_LOG_LEVEL": "WARNING",
                               "OUP_INGEST_CLIENT_ID": "oup-ingest-docs"})
    oup = [sys.executable, "-m", "oup.cli"]
    for step in (["import", "--quiet"], ["tile", "--quiet"]):
        subprocess.run(oup + step, env=env, check=True, capture_output=True, timeout=600)
    server_env = {k: v for k, v in env.items() if k != "OUP_MQTT_URL"}  # no relay needed
    helpers = []
    try:
        with serving(server_env) as url:
            for verb in (["worker", "--threads", "2"], ["ingest"]):
                log = open(folder / "data" / f"{verb[0]}.log", "w")
                helpers.append(subprocess.Popen(oup + verb, env=env, stdout=log, stderr=log))
            status = folder / "data" / "ingest" / "oup-ingest-docs.json"
            deadline = time.monotonic() + 60
            while not (status.exists()
                       and json.loads(status.read_text() or "{}").get("subscribed")):
                assert time.monotonic() < deadline, "the ingester did not subscribe in 60 s"
                assert helpers[-1].poll() is None, (folder / "data" / "ingest.log").read_text()
                time.sleep(0.2)
            yield Demo(url, broker.port, broker.url, folder, env)
    finally:
        for proc in helpers:
            proc.terminate()
            proc.wait(timeout=30)
        broker.stop()


@pytest.mark.parametrize("example", [ex for ex in EXAMPLES if not ex.skipped],
                         ids=lambda ex: ex.name)
def test_example_runs(example, demo):
    done = run(example, demo)
    assert done.returncode == 0, (
        f"{example.name} ({example.language}) failed with {done.returncode}:\n"
        f"{example.code}\n--- stdout ---\n{done.stdout[-3000:]}\n--- stderr ---\n"
        f"{done.stderr[-3000:]}")


def test_a_documented_example_broken_on_purpose_fails(demo):
    """The first curl of the GIS analyst's guide works as written, and fails with a
    collection name misspelt: the suite would catch a wrong example."""
    first = next(ex for ex in EXAMPLES if ex.source == "docs/guides/gis-analyst.md"
                 and "curl" in ex.code and not ex.skipped)
    assert run(first, demo).returncode == 0
    broken = Example(first.source, first.line, first.language,
                     first.code.replace("/collections", "/colections", 1))
    assert broken.code != first.code
    done = run(broken, demo)
    assert done.returncode != 0 and "404" in done.stderr


def test_docs_are_served_and_linked_from_the_landing_page(demo):
    landing = requests.get(f"{demo.url}/?f=html", timeout=30)
    assert f'href="{demo.url}/docs/"' in landing.text
    redirect = requests.get(f"{demo.url}/docs", allow_redirects=False, timeout=120)
    assert redirect.status_code == 301 and redirect.headers["Location"].endswith("/docs/")
    home = requests.get(f"{demo.url}/docs/", timeout=120)
    assert home.status_code == 200 and "Which guide is yours" in home.text
    assert "default-src 'self'" in home.headers["Content-Security-Policy"]
    guide = requests.get(f"{demo.url}/docs/guides/data-steward/", timeout=30)
    assert "Correcting a feature through the API" in guide.text
    settings = requests.get(f"{demo.url}/docs/reference/settings/", timeout=30).text
    assert "OUP_DATABASE_URL" in settings
    assert requests.get(f"{demo.url}/docs/no-such-page/", timeout=30).status_code == 404
    assert requests.get(f"{demo.url}/docs/../pyproject.toml", timeout=30).status_code == 404


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed "
                    "(make test installs it)")
def test_docs_load_in_chromium_with_no_request_to_another_host(demo, tmp_path):
    paths = ["/docs/", "/docs/guides/service-developer/", "/docs/reference/endpoints/"]
    out = open_offline(demo.url, paths, tmp_path)
    for path in paths:
        page = out["pages"][path]
        assert page["status"] == 200, (path, page)
        assert page["foreign"] == [], (path, page["foreign"])  # nothing asked of another host
        assert page["pageErrors"] == [] and page["consoleErrors"] == [], (path, page)
