"""The one handler that writes problem documents (RFC 9457, formerly 7807).

Every error answer of OUP's is made here: from an ``OUPError`` raised anywhere (the
error table, ``oup.errors``), and from the error answers pygeoapi and Flask make
(``from_answer``), so a client sees one shape whichever part refused it. A problem's
``type`` resolves on this server: ``/problems/{code}`` says what it means
(``endpoints``).
"""
from __future__ import annotations

import json
from http import HTTPStatus

from oup.errors import NotFound, OUPError, error_table

PROBLEM_JSON = "application/problem+json"


class Problems:
    def __init__(self, base_url: str):
        self.base = base_url.rstrip("/")

    def type_of(self, code: str) -> str:
        return f"{self.base}/problems/{code}"

    def document(self, exc: OUPError, instance: str) -> dict:
        body = {"type": self.type_of(exc.code), "title": HTTPStatus(exc.status).phrase,
                "status": exc.status, "detail": exc.detail, "instance": instance,
                "code": exc.code}
        if exc.parameter:
            body["parameter"] = exc.parameter
        return body

    def answer(self, exc: OUPError, instance: str) -> tuple[bytes, int, dict[str, str]]:
        """(body, status, headers) of the problem document for ``exc``."""
        body = json.dumps(self.document(exc, instance)).encode()
        return body, exc.status, {"Content-Type": PROBLEM_JSON, **exc.headers}


def from_status(status: int, detail: str, code: str | None = None) -> OUPError:
    """An error answer made elsewhere (pygeoapi, Flask), as the error it stands for."""
    table = error_table()
    cls = table.get(code or "") or next(
        (c for c in table.values() if c.status == status and c.__bases__[0] is OUPError),
        OUPError)
    exc = cls(detail)
    if exc.status != status:  # a status the table has no class of its own for
        exc.status, exc.code = status, code or HTTPStatus(status).phrase.replace(" ", "")
    return exc


def describe(code: str) -> dict:
    """What ``/problems/{code}`` answers."""
    cls = error_table().get(code)
    if cls is None:
        raise NotFound(f"no problem type {code!r}; the types are "
                       f"{', '.join(sorted(error_table()))}")
    return {"code": code, "status": cls.status, "title": HTTPStatus(cls.status).phrase,
            "description": " ".join((cls.__doc__ or HTTPStatus(cls.status).description)
                                    .split())}
