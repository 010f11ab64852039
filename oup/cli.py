"""``oup``: the one command-line face of the platform. Verbs follow the data flows."""
from __future__ import annotations

import os
import sys

import click

from .catalog import CatalogError, load_catalog
from .settings import get_settings


def _fail(message: str) -> None:
    click.echo(f"oup: {message}", err=True)
    sys.exit(1)


@click.group()
def main():
    """OUP - Open Urban Platform."""


@main.group()
def catalog():
    """Check or reload the catalogue (collections/<id>/collection.yml)."""


@catalog.command("check")
def catalog_check():
    """Validate every collection declaration."""
    try:
        cat = load_catalog(get_settings().catalog_dir)
    except CatalogError as exc:
        _fail(str(exc))
    for coll in cat:
        click.echo(f"ok  {coll.id:<20} {coll.classification.value:<10} {coll.title}")
    click.echo(f"{len(cat)} collections")


@catalog.command("reload")
def catalog_reload():
    """Validate the catalogue and regenerate the server configuration."""
    from .pygeoapi_config import write_config
    from .store import open_store

    s = get_settings()
    try:
        cat = load_catalog(s.catalog_dir)
    except CatalogError as exc:
        _fail(str(exc))
    cfg, oas = write_config(cat, open_store(s.store_url), s)
    click.echo(f"wrote {cfg} and {oas}; restart `oup serve` (or send SIGHUP) to publish")


@main.command("import")
@click.argument("collections", nargs=-1)
@click.option("--quiet", is_flag=True, help="no progress bars")
def import_(collections, quiet):
    """Import catalogue sources into the store (all collections, or the ones named)."""
    from .geodesy import install_grids
    from .importers import ImportError_, import_collection
    from .store import open_store

    s = get_settings()
    try:
        cat = load_catalog(s.catalog_dir)
    except CatalogError as exc:
        _fail(str(exc))
    unknown = set(collections) - set(cat.collections)
    if unknown:
        _fail(f"no such collection(s) in the catalogue: {', '.join(sorted(unknown))}")
    install_grids(s.data_dir)
    store = open_store(s.store_url)
    for coll in cat:
        if collections and coll.id not in collections:
            continue
        try:
            click.echo(import_collection(coll, store, progress=not quiet))
        except (ImportError_, OSError, ValueError) as exc:
            _fail(f"{coll.id}: {exc}")


@main.command()
@click.option("--host", default=None, help="address to listen on (OUP_HOST)")
@click.option("--port", default=None, type=int, help="port (OUP_PORT)")
@click.option("--workers", default=None, type=int, help="worker processes (OUP_WORKERS)")
def serve(host, port, workers):
    """Serve the OGC APIs (gunicorn, several workers)."""
    s = get_settings()
    for key, value in (("OUP_HOST", host), ("OUP_PORT", port), ("OUP_WORKERS", workers)):
        if value is not None:
            os.environ[key] = str(value)
    get_settings.cache_clear()
    s = get_settings()
    try:
        load_catalog(s.catalog_dir)
    except CatalogError as exc:
        _fail(str(exc))
    click.echo(f"OUP serving on http://{s.host}:{s.port} ({s.workers} workers)")
    args = [sys.executable, "-m", "gunicorn", "--bind", f"{s.host}:{s.port}",
            "--workers", str(s.workers), "--worker-class", "gthread", "--threads", "4",
            "--access-logfile", "-", "--log-level", "warning", "oup.app:create_app()"]
    os.execv(sys.executable, args)


if __name__ == "__main__":
    main()
