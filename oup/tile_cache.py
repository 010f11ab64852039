"""Vector tiles kept on disk (``OUP_TILE_CACHE=true``), so a tile is cut once per import.

``<data_dir>/tile-cache/<collection>/<generation>/<grid>/<z>/<row>/<col>.mvt``, one layer
a file (a dataset tile is the concatenation of its layers' files). The generation is
the time the store says the collection was last imported, asked on every request: after
``oup import`` every worker cuts new tiles and the first to meet the new generation
deletes the old ones. So ``oup import`` drops a collection's tiles without knowing about
the cache, on every worker and every machine sharing the data dir. Collections fed by a
live stream (sensors, whose latest values change in place) are never cached.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable


class TileCache:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._current: dict[str, str] = {}  # collection -> generation seen by this process

    @staticmethod
    def _generation(stamp: str) -> str:
        return "".join(c for c in stamp if c.isalnum()) or "unknown"

    def layer(self, cid: str, stamp: str, grid: str, z: int, row: int, col: int,
              make: Callable[[], bytes]) -> bytes:
        """The cached layer tile, or ``make()``'s, kept for next time."""
        generation = self._generation(stamp)
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

    def _drop_others(self, cid: str, generation: str) -> None:
        """Delete the tiles of the collection's earlier imports."""
        self._current[cid] = generation
        root = self.folder / cid
        if root.is_dir():
            for old in root.iterdir():
                if old.name != generation:
                    shutil.rmtree(old, ignore_errors=True)
