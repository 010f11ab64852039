"""The examples of the documentation (README.md, docs/**/*.md): found, and run.

A fenced block in sh/bash/console/shell, python or js/javascript is an example. It runs
unless the line right before it (blank lines aside) marks it
``<!-- not-runnable: the reason -->``; a mark without a reason is an error. Examples are
written for the demo (``http://127.0.0.1:5000``, a broker on ``127.0.0.1:1883``); ``run``
gives them the addresses of the servers a test started instead.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = {"sh": "shell", "bash": "shell", "shell": "shell", "console": "console",
             "python": "python", "py": "python", "js": "js", "javascript": "js"}
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
MARK = re.compile(r"^\s*<!--\s*not-runnable\b\s*:?\s*(?P<reason>.*?)\s*-->\s*$")
DOCUMENTED_SERVER = "http://127.0.0.1:5000"
LIMIT_SECONDS = 120


class ExampleError(ValueError):
    """A block of the documentation cannot be judged (a not-runnable mark without a reason,
    a fence left open)."""


@dataclass(frozen=True)
class Example:
    source: str  # the file, relative to the repository
    line: int  # where the block's fence opens
    language: str  # shell, console, python or js
    code: str
    skipped: str | None = None  # the reason it is not run

    @property
    def name(self) -> str:
        return f"{self.source}:{self.line}"


def examples_in(text: str, source: str) -> list[Example]:
    """The examples of one Markdown text, in order."""
    lines = text.splitlines()
    found, i, mark = [], 0, None
    while i < len(lines):
        line = lines[i]
        if (m := MARK.match(line)) is not None:
            if not m["reason"]:
                raise ExampleError(f"{source}:{i + 1}: a not-runnable mark needs its reason "
                                   "(<!-- not-runnable: why -->)")
            mark = (m["reason"], i)
            i += 1
            continue
        fence = FENCE.match(line)
        if not fence:
            if line.strip():
                mark = None  # a mark holds only for the block right after it
            i += 1
            continue
        opened, indent, body = i, len(fence["indent"]), []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence["fence"]):
            line = lines[i]
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            i += 1
        if i == len(lines):
            raise ExampleError(f"{source}:{opened + 1}: a code block is never closed")
        i += 1
        language = LANGUAGES.get(fence["lang"].lower())
        if language:
            found.append(Example(source, opened + 1, language, "\n".join(body) + "\n",
                                 mark[0] if mark else None))
        mark = None
    return found


def documentation() -> list[Path]:
    """The pages whose examples are run: the README and every page of the site."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def all_examples() -> list[Example]:
    return [ex for page in documentation()
            for ex in examples_in(page.read_text(encoding="utf-8"),
                                  str(page.relative_to(ROOT)))]


@dataclass
class Demo:
    """Where examples run: a server, a broker, and a folder laid out as the repository."""

    url: str
    broker_port: int
    broker_url: str
    folder: Path
    env: dict


def localise(code: str, demo: Demo) -> str:
    """The example with the demo's addresses replaced by the test's."""
    return (code.replace(DOCUMENTED_SERVER, demo.url)
            .replace("mqtt://127.0.0.1:1883", demo.broker_url)
            .replace('hostname="127.0.0.1", port=1883',
                     f'hostname="127.0.0.1", port={demo.broker_port}')
            .replace("-h 127.0.0.1 -p 1883", f"-h 127.0.0.1 -p {demo.broker_port}"))


def command(example: Example, code: str, folder: Path) -> list[str]:
    """How one example is run: bash with every error fatal, the platform's Python, or
    Node.js with the packages of tests/js."""
    if example.language == "console":  # `$ ` lines are the commands, the rest their output
        code = "\n".join(line[2:] for line in code.splitlines() if line.startswith("$ "))
    if example.language in ("shell", "console"):
        return ["bash", "-c", "set -euo pipefail\n" + code]
    if example.language == "python":
        return [sys.executable, "-c", code]
    script = folder / "example.mjs"  # beside node_modules: imports resolve as in a project
    script.write_text(code)
    return ["node", str(script)]


def run(example: Example, demo: Demo,
        timeout: float = LIMIT_SECONDS) -> subprocess.CompletedProcess:
    """Run one example against ``demo``: its result (returncode 0 when it worked)."""
    code = localise(example.code, demo)
    with tempfile.TemporaryDirectory(prefix="oup-example-") as tmp:
        js = Path(tmp)
        (js / "node_modules").symlink_to(ROOT / "tests" / "js" / "node_modules")
        try:
            return subprocess.run(command(example, code, js), cwd=demo.folder, env=demo.env,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(exc.cmd, 124, exc.stdout or "",
                                               f"timed out after {timeout} s")


def example_env(folder: Path, extra: dict) -> dict:
    """The environment of the examples: the demo's settings (nothing of the caller's
    OUP_*), `oup` and this Python first on the PATH, this checkout importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUP_")}
    env.update(extra, OUP_DATA_DIR=str(folder / "data"),
               OUP_CATALOG_DIR=str(folder / "collections"),
               PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
               PYTHONPATH=f"{ROOT}:{env['PYTHONPATH']}" if env.get("PYTHONPATH") else str(ROOT),
               NO_MKDOCS_2_WARNING="1")
    return env
