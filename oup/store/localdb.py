"""A throwaway PostgreSQL + PostGIS cluster on loopback: for the test suite, the benchmarks
and trying the production shape on one machine (Debian's postgresql + postgis packages).

Run as the ``postgres`` user (PostgreSQL refuses root); the data folder is removed on start
(unless a benchmark keeps the data it loaded).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from oup.ports import free_port


class LocalDBError(RuntimeError):
    """PostgreSQL is not installed or did not start; the message says which."""


class LocalPostGIS:
    def __init__(self, folder: Path, port: int | None = None, durable: bool = True):
        """``durable=False`` turns fsync off: for tests, never for data that matters."""
        self.dir, self.durable = Path(folder), durable
        self.port = port or free_port()
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins:
            raise LocalDBError("PostgreSQL is not installed (apt-get install postgresql postgis)")
        self.bin = bins[-1]

    def url(self, db: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def _run(self, *args):
        cmd = [*map(str, args)]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        try:
            return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)
        except subprocess.CalledProcessError as exc:
            raise LocalDBError(f"{' '.join(cmd[-3:])}: {exc.stderr.strip()[-500:]}") from exc

    def start(self, keep: bool = False) -> "LocalPostGIS":
        """``keep``: start the cluster already in the folder (a benchmark's data, loaded
        once), if there is one."""
        if not (keep and (self.dir / "data" / "PG_VERSION").exists()):
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir.mkdir(parents=True)
            if os.geteuid() == 0:
                shutil.chown(self.dir, "postgres", "postgres")
            self._run(self.bin / "initdb", "-D", self.dir / "data", "-A", "trust",
                      "-U", "postgres")
        fast = "" if self.durable else \
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(self.bin / "pg_ctl", "-D", self.dir / "data", "-l", self.dir / "log", "-w",
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                        f"-c shared_buffers=256MB -c max_connections=200{fast}", "start")
        return self

    def create(self, db: str) -> str:
        """A new database with PostGIS; its URL."""
        self._run(self.bin / "createdb", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", db)
        self._run("psql", self.url(db), "-qc", "CREATE EXTENSION postgis")
        return self.url(db)

    def stop(self) -> None:
        try:
            self._run(self.bin / "pg_ctl", "-D", self.dir / "data", "-m", "fast", "stop")
        except LocalDBError:
            pass
