"""Who is asking, and which collections they may see.

Access classes come from the catalogue: ``public`` (everyone), ``internal`` (anyone
authenticated), ``restricted`` (authenticated with one of the collection's roles).
Credentials: OAuth2/OIDC bearer JWTs checked against a JWKS (signature RS256/ES256,
issuer, audience, expiry), or API keys stored as SHA-256 hashes with their roles.
A collection someone may not see does not exist for them (404, never 403).
Every access to non-public data is one JSON line in the audit log: who (pseudonymised),
collection, action, result, time, request id. Never a token, never personal data.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from oup.catalog import Catalog, Classification


class AuthError(Exception):
    """Credentials were given but are not valid (401)."""


@dataclass(frozen=True)
class Identity:
    who: str  # pseudonymous: "anonymous", "key:<name>" or "jwt:<hash of iss+sub>"
    roles: frozenset = frozenset()
    authenticated: bool = False


ANONYMOUS = Identity("anonymous")
INVALID_CREDENTIALS = Identity("invalid-credentials")  # as the audit log names a 401


@dataclass
class Authenticator:
    jwks_file: Path | None = None
    issuer: str | None = None
    audience: str | None = None
    api_keys_file: Path | None = None
    _jwks: object = field(default=None, repr=False)
    _keys: list = field(default_factory=list, repr=False)
    _keys_version: tuple | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.jwks_file:
            import jwt

            self._jwks = jwt.PyJWKSet.from_json(Path(self.jwks_file).read_text())
        self._load_keys()

    def _load_keys(self) -> None:
        """The API keys file, read again when it changed (``oup keys add|revoke``)."""
        if not self.api_keys_file:
            return
        try:
            st = Path(self.api_keys_file).stat()
        except FileNotFoundError:  # no key made yet
            self._keys, self._keys_version = [], None
            return
        if (st.st_mtime_ns, st.st_size, st.st_ino) == self._keys_version:
            return
        # - {name: etl-service, sha256: <hex of the key>, roles: [analyst]}
        self._keys = [(entry["name"], entry["sha256"].lower(), frozenset(entry.get("roles", [])))
                      for entry in yaml.safe_load(Path(self.api_keys_file).read_text()) or []]
        self._keys_version = (st.st_mtime_ns, st.st_size, st.st_ino)

    def identify(self, headers) -> Identity:
        auth = headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return self._jwt(auth[7:].strip())
        key = headers.get("X-API-Key") or (auth[7:].strip() if auth.lower().startswith("apikey ")
                                           else None)
        if key:
            self._load_keys()
            digest = hashlib.sha256(key.encode()).hexdigest()
            for name, stored, roles in self._keys:
                if hmac.compare_digest(digest, stored):
                    return Identity(f"key:{name}", roles, True)
            raise AuthError("unknown API key")
        if auth:
            raise AuthError("unsupported Authorization scheme; use Bearer or ApiKey")
        return ANONYMOUS

    def _jwt(self, token: str) -> Identity:
        import jwt

        if self._jwks is None:
            raise AuthError("bearer tokens are not accepted here (no JWKS configured)")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = next((k for k in self._jwks.keys if k.key_id == kid), None)
            if key is None:
                raise AuthError("token signed with an unknown key")
            claims = jwt.decode(token, key.key, algorithms=["RS256", "ES256"],
                                audience=self.audience, issuer=self.issuer,
                                options={"require": ["exp", "sub", "iss", "aud"]})
        except AuthError:
            raise
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError("token audience is not this service") from None
        except jwt.InvalidIssuerError:
            raise AuthError("token issuer is not trusted") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {type(exc).__name__}") from None
        roles = claims.get("roles") or claims.get("realm_access", {}).get("roles") or []
        who = hashlib.sha256(f"{claims['iss']}|{claims['sub']}".encode()).hexdigest()[:16]
        return Identity(f"jwt:{who}", frozenset(roles), True)


def visible_collections(identity: Identity, catalog: Catalog) -> set[str]:
    out = set()
    for coll in catalog:
        cls = coll.classification
        if cls == Classification.public or (cls == Classification.internal and
                                              identity.authenticated) or \
                (cls == Classification.restricted and identity.authenticated and
                 identity.roles & set(coll.roles)):
            out.add(coll.id)
    return out


# The collections the current request may see; pygeoapi's resources follow it
# (oup.http.pygeoapi_adapter.VisibleResources).
VISIBLE: ContextVar[frozenset | None] = ContextVar("oup_visible", default=None)
# Who is asking, for what the providers answer differently per caller (a resident's own
# reports); set for every request by the app, as VISIBLE is
ASKING: ContextVar[Identity] = ContextVar("oup_asking", default=ANONYMOUS)


class AuditLog:
    """Append-only JSON lines; one per access to non-public data."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def write(self, who: str, collection: str, action: str, result: int, request_id: str,
              **detail):
        """``detail``: what a write changed (``before``, ``after``: without personal
        properties, which the log never holds)."""
        line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "request_id": request_id, "who": who, "collection": collection,
                           "action": action, "result": result, **detail},
                          separators=(",", ":"), default=str)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)


def new_request_id() -> str:
    return uuid.uuid4().hex
