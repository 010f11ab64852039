"""``oup``: the one command-line face of the platform. Verbs follow the data flows."""
from __future__ import annotations

import os
import sys
from pathlib import Path

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
    # joined collections take their geometry from others: import those first
    for coll in sorted(cat, key=lambda c: c.join is not None):
        if collections and coll.id not in collections:
            continue
        try:
            click.echo(import_collection(coll, store, progress=not quiet))
        except (ImportError_, OSError, ValueError) as exc:
            _fail(f"{coll.id}: {exc}")


@main.command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="tileset folder (with INPUTS)")
@click.option("--crs", help="CRS of inputs that declare none, e.g. EPSG:7415")
@click.option("--lod", help="level of detail to tile; default the highest, or one tileset each")
@click.option("--collection", "collections", multiple=True,
              help="tile this catalogue collection (default: every one with tiles3d)")
@click.option("--quiet", is_flag=True, help="no progress bars")
def tile(inputs, out, crs, lod, collections, quiet):
    """Make 3D Tiles 1.1: from INPUTS (CityJSON, CityJSONSeq, folders) into --out, or from
    the catalogue's 3D collections into <data dir>/3dtiles/<id>."""
    from tilers import CityModelError, tile as make_tiles

    from .geodesy import GeodesyError, install_grids

    s = get_settings()
    try:
        install_grids(s.data_dir)
        if inputs:
            if not out:
                _fail("give --out DIR for the tileset")
            click.echo(make_tiles(list(inputs), out, crs=crs, lod=lod, progress=not quiet))
            return
        cat = load_catalog(s.catalog_dir)
        todo = [c for c in cat if c.tiles3d and (not collections or c.id in collections)]
        unknown = set(collections) - {c.id for c in todo}
        if unknown:
            _fail(f"not a 3D collection in the catalogue: {', '.join(sorted(unknown))}")
        for coll in todo:
            t3d = coll.tiles3d
            listed = coll.source_for(t3d.source)
            report = make_tiles([coll.folder / t3d.source], s.data_dir / "3dtiles" / coll.id,
                                crs=t3d.crs or (listed.crs if listed else None),
                                lod=t3d.lod or lod, vertex_budget=t3d.vertex_budget,
                                z_offset_attribute=t3d.z_offset_attribute,
                                progress=not quiet)
            click.echo(f"{coll.id}: {report}")
    except (CityModelError, CatalogError, GeodesyError, OSError) as exc:
        _fail(str(exc))


@main.command()
@click.option("--host", default=None, help="address to listen on (OUP_HOST)")
@click.option("--port", default=None, type=int, help="port (OUP_PORT)")
@click.option("--workers", default=None, type=int, help="worker processes (OUP_WORKERS)")
def serve(host, port, workers):
    """Serve the OGC APIs (gunicorn, several workers)."""
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
            "--workers", str(s.workers), "--worker-class", s.worker_class,
            "--threads", str(s.threads),
            "--access-logfile", "-", "--log-level", "warning", "oup.app:create_app()"]
    os.execv(sys.executable, args)


if __name__ == "__main__":
    main()
