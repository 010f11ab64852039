"""Vector tiles kept on disk (``OUP_TILE_CACHE=true``), so a tile is cut once per import.

``<data_dir>/tile-cache/<collection>/<generation>/<grid>/<z>/<row>/<col>.mvt``, one layer
a file (a dataset tile is the concatenation of its layers' files). The generation names
what a layer's tiles are cut from: the time the store says the collection was last
imported, asked on every request, and the attributes the catalogue puts in its tiles.
After ``oup import``, or an ``oup catalog reload`` that changes a collection's
``tiles.properties``, every worker cuts new tiles and the first to meet the new
generation deletes the old ones; a reload that leaves them alone (a new title, a new
style) keeps them, as they are still right. A collection no longer published loses its
tiles when the workers start with the new catalogue. So neither command needs to know
about the cache, on any worker or machine sharing the data dir. Collections fed by a
live stream (sensors, whose latest values change in place) are never cached. A feature
written through the API drops only the tiles its old and new geometry touch (``drop_area``).
"""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
from pathlib import Path
from typing import Callable


class TileCache:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._current: dict[str, str] = {}  # collection -> generation seen by this process

    @staticmethod
    @functools.lru_cache(maxsize=1024)  # asked on every cached tile: worked out once
    def _generation(stamp: str, properties: tuple[str, ...]) -> str:
        imported = "".join(c for c in stamp if c.isalnum()) or "unknown"
        attributes = hashlib.sha256("\0".join(properties).encode()).hexdigest()[:12]
        return f"{imported}-{attributes}"

    def layer(self, cid: str, stamp: str, properties: tuple[str, ...], grid: str, z: int,
              row: int, col: int, make: Callable[[], bytes]) -> bytes:
        """The cached layer tile, or ``make()``'s, kept for next time. ``stamp`` is the
        collection's import stamp, ``properties`` the attributes its tiles hold."""
        generation = self._generation(stamp, properties)
        path = self.folder / cid / generation / grid / str(z) / str(row) / f"{col}.mvt"
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        if self._current.get(cid) != generation:
            self._drop_others(cid, generation)
        data = make()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")  # whole or not at all
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return data

    def drop_area(self, cid: str, bbox84: list[float], max_zoom: int | None = None) -> int:
        """Delete the cached tiles of ``cid`` that show anything of ``bbox84`` (a feature
        written through the API, before or after): in every grid and level cut so far (up
        to ``max_zoom``), with a tile's neighbours, whose buffer may hold an edge of it.
        The rest stay."""
        from oup.tiles import matrix_sets as grids

        dropped = 0
        root = self.folder / cid
        for level in root.glob("*/*/*") if root.is_dir() else ():  # generation/grid/z
            try:
                tms, z = grids.get(level.parent.name), int(level.name)
            except (grids.UnknownTileMatrixSet, ValueError):
                continue
            if max_zoom is not None and z > max_zoom:
                continue
            (limit,) = grids.limits(tms, bbox84, z, z)
            for row in range(limit["minTileRow"] - 1, limit["maxTileRow"] + 2):
                for col in range(limit["minTileCol"] - 1, limit["maxTileCol"] + 2):
                    try:
                        (level / str(row) / f"{col}.mvt").unlink()
                        dropped += 1
                    except FileNotFoundError:
                        pass
        return dropped

    def keep_only(self, published: set[str]) -> None:
        """Delete the tiles of collections not published (any more)."""
        if self.folder.is_dir():
            for old in self.folder.iterdir():
                if old.is_dir() and old.name not in published:
                    shutil.rmtree(old, ignore_errors=True)

    def _drop_others(self, cid: str, generation: str) -> None:
        """Delete the tiles of the collection's earlier imports."""
        self._current[cid] = generation
        root = self.folder / cid
        if root.is_dir():
            for old in root.iterdir():
                if old.name != generation:
                    shutil.rmtree(old, ignore_errors=True)
