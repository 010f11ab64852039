"""API keys as ``oup keys`` keeps them: a YAML list of ``{name, sha256, roles, created}``.

A key is shown once, when it is made; the file holds only its SHA-256, so a copy of the
file grants nothing. The server reads the file again when it changes (``Authenticator``),
so a revoked key stops working without a restart.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
import time
from pathlib import Path

import yaml

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class KeyRingError(ValueError):
    """A key cannot be added or revoked as asked; the message says why."""


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    def __init__(self, path: Path):
        self.path = Path(path)

    def entries(self) -> list[dict]:
        try:
            entries = yaml.safe_load(self.path.read_text()) or []
        except FileNotFoundError:
            return []
        except yaml.YAMLError as exc:
            raise KeyRingError(f"{self.path}: not valid YAML: {exc}") from None
        if not isinstance(entries, list):
            raise KeyRingError(f"{self.path}: expected a list of keys")
        return entries

    def add(self, name: str, roles: list[str]) -> str:
        """A new key for ``name`` with ``roles``: returned once, stored as its hash."""
        if not _NAME.match(name):
            raise KeyRingError(f"key name {name!r}: letters, digits, '_', '.', '-' (at most 64)")
        entries = self.entries()
        if any(e.get("name") == name for e in entries):
            raise KeyRingError(f"a key named {name!r} exists: revoke it first")
        key = "oup_" + secrets.token_urlsafe(32)
        entries.append({"name": name, "sha256": digest(key), "roles": list(roles),
                        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        self._write(entries)
        return key

    def revoke(self, name: str) -> None:
        entries = self.entries()
        kept = [e for e in entries if e.get("name") != name]
        if len(kept) == len(entries):
            raise KeyRingError(f"no key named {name!r} in {self.path}")
        self._write(kept)

    def _write(self, entries: list[dict]) -> None:
        # a reader (the server) sees the old file or the new one, never half of one
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".api-keys-")
        try:
            with os.fdopen(fd, "w") as fh:
                yaml.safe_dump(entries, fh, sort_keys=False)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
