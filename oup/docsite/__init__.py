"""The documentation site: ``docs/`` built with MkDocs (Material theme) and served by the
platform itself at ``/docs/``, offline, under the same Content-Security-Policy as every
page.

The site is built into ``<data dir>/docs-site`` the first time a worker is asked for it,
and again when a page of ``docs/``, ``mkdocs.yml`` or the code its reference is made from
(``oup.docsite.reference``) is newer than the build. Building takes a few seconds, once;
a fresh clone needs no step of its own. Two workers asking at once build once: the build
holds a file lock and replaces the folder whole.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from oup.errors import NotFound, Unavailable
from oup.http.routes import Call, Endpoint, Param

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "mkdocs.yml"
SOURCES = ROOT / "docs"


def inputs() -> list[Path]:
    """What the built site is made from: its pages and the code its reference reads."""
    from oup.docsite import reference

    pages = [p for p in SOURCES.rglob("*") if p.is_file()] if SOURCES.is_dir() else []
    return [CONFIG, *pages, *reference.sources()]


def build(out: Path, strict: bool = False) -> subprocess.CompletedProcess:
    """``mkdocs build`` of ``docs/`` into ``out`` (its output, for the caller to judge).
    Not ``-q``: a quiet MkDocs does not count the warnings that ``--strict`` fails on."""
    args = [sys.executable, "-m", "mkdocs", "build", "-f", str(CONFIG), "-d", str(out)]
    return subprocess.run(args + (["--strict"] if strict else []), cwd=ROOT, text=True,
                          capture_output=True, timeout=300,
                          env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))


class Site:
    """The built site in ``folder``, (re)built when its inputs are newer."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.fresh = False  # checked once per process: the sources change with a release

    def ready(self) -> Path:
        if self.fresh:
            return self.folder
        if not CONFIG.is_file():
            raise Unavailable("the documentation's sources (mkdocs.yml, docs/) are not "
                              "installed with this copy of OUP")
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        with open(self.folder.parent / ".docs-site.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self._stale():
                self._build()
        self.fresh = True
        return self.folder

    def _stale(self) -> bool:
        built = self.folder / "index.html"
        if not built.is_file():
            return True
        when = built.stat().st_mtime
        return any(p.stat().st_mtime > when for p in inputs() if p.exists())

    def _build(self) -> None:
        tmp = Path(tempfile.mkdtemp(prefix=".docs-site-", dir=self.folder.parent))
        done = build(tmp)
        if done.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise Unavailable(f"the documentation could not be built: {done.stderr[-500:]}")
        old = self.folder.with_name(self.folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if self.folder.exists():
            self.folder.rename(old)
        tmp.rename(self.folder)
        shutil.rmtree(old, ignore_errors=True)


def endpoints(data_dir: Path) -> list[Endpoint]:
    """``/docs/`` and its pages."""
    site = Site(data_dir / "docs-site")
    page = Param("page", "a page or file of the documentation site", where="path", spans=True)
    unbuilt = {"503": {"description": "the documentation's sources are missing or do not "
                                      "build"}}
    folder = {"301": {"description": "a page's folder, asked without its trailing slash: "
                                     "the same URL with it (the site's links are relative)"}}
    return [
        Endpoint("/docs", "The documentation (guides, reference, architecture)",
                 lambda call: serve(site, call, ""), "server", "getDocs", any_query=True,
                 responses={**folder, **unbuilt}),
        Endpoint("/docs/{page}", "A page or file of the documentation",
                 lambda call: serve(site, call, call.path["page"]), "server", "getDocsPage",
                 params=(page,), any_query=True, responses={**folder, **unbuilt}),
    ]


def serve(site: Site, call: Call, page: str):
    """A file of the built site; a folder answers its index.html at its URL with a
    trailing slash (the site's links are relative to it)."""
    from flask import redirect

    from oup.http.pages import static_file

    root = site.ready()
    path = call.request.path
    target = root / page
    if page and ".." in Path(page).parts:
        raise NotFound(f"no documentation page {page!r}")
    if target.is_dir() or not page:
        if not path.endswith("/"):
            return redirect(path + "/", code=301)
        page = f"{page.rstrip('/')}/index.html".lstrip("/")
    answer = static_file(root, page, cache_seconds=300)
    if answer is None:
        raise NotFound(f"no documentation page {page!r}")
    return answer
