"""The one handler that writes problem documents (RFC 9457, formerly 7807).

Every error answer of OUP's is made here: from an ``OUPError`` raised anywhere (the
error table, ``oup.errors``), and from the error answers pygeoapi and Flask make
(``from_answer``), so a client sees one shape whichever part refused it. A problem's
``type`` resolves on this server: ``/problems/{code}`` says what it means
(``endpoints``).
"""
from __future__ import annotations

import json
import re
from http import HTTPStatus

from oup.errors import NotFound, OUPError, error_table
from oup.languages import DEFAULT, LOCALES

PROBLEM_JSON = "application/problem+json"


class Problems:
    def __init__(self, base_url: str):
        self.base = base_url.rstrip("/")

    def type_of(self, code: str) -> str:
        return f"{self.base}/problems/{code}"

    def document(self, exc: OUPError, instance: str, language: str = DEFAULT) -> dict:
        body = {"type": self.type_of(exc.code), "title": title_in(exc.status, language),
                "status": exc.status, "detail": detail_in(exc.detail, language),
                "instance": instance, "code": exc.code}
        if exc.parameter:
            body["parameter"] = exc.parameter
        return body

    def answer(self, exc: OUPError, instance: str,
               language: str = DEFAULT) -> tuple[bytes, int, dict[str, str]]:
        """(body, status, headers) of the problem document for ``exc``, in ``language``."""
        body = json.dumps(self.document(exc, instance, language)).encode()
        return body, exc.status, {"Content-Type": PROBLEM_JSON, "Content-Language":
                                  LOCALES[language], **exc.headers}


# The common problems in Dutch (the rest stay English): a pattern of the English detail
# and its Dutch form, which takes the pattern's groups
_DUTCH_DETAILS = [(re.compile(pattern), dutch) for pattern, dutch in (
    (r"^no collection (?P<c>'[^']*')$", "geen collectie {c}"),
    (r"^nothing at (?P<p>\S+)$", "niets op {p}"),
    (r"^unknown query parameter or property (?P<n>'[^']*'); .*$",
     "onbekende queryparameter of eigenschap {n}; de queryables en het OpenAPI-document "
     "noemen wat gevraagd kan worden"),
    (r"^unknown query parameter (?P<n>'[^']*'); (?P<p>\S+) takes (?P<t>.*)$",
     "onbekende queryparameter {n}; {p} neemt {t}"),
    (r"^(?P<p>[\w-]+): unknown property (?P<n>'[^']*')$", "{p}: onbekende eigenschap {n}"),
    (r"^(?P<n>[\w-]+) must be an integer, got (?P<v>.*)$", "{n} moet een geheel getal zijn, niet {v}"),
    (r"^(?P<n>[\w-]+) must be a number, got (?P<v>.*)$", "{n} moet een getal zijn, niet {v}"),
    (r"^(?P<n>[\w-]+) must be between (?P<a>\S+) and (?P<b>\S+), got (?P<v>.*)$",
     "{n} moet tussen {a} en {b} liggen, niet {v}"),
    (r"^(?P<n>[\w-]+) must be true or false, got (?P<v>.*)$", "{n} moet true of false zijn, niet {v}"),
    (r"^(?P<n>[\w-]+) must be one of (?P<o>.*), got (?P<v>.*)$",
     "{n} moet een van {o} zijn, niet {v}"),
    (r"^sign in to (?P<rest>.*)$", "meld u aan om {rest}"),
    (r"^Collection not found$", "collectie niet gevonden"),
    (r"^no item (?P<i>'[^']*')$", "geen object {i}"),
    (r"^(?:identifier|item) not found$", "object niet gevonden"),
    (r"^Invalid format(?P<rest>.*)$", "ongeldig formaat{rest}"),
)]
_DUTCH_TITLES = {400: "Ongeldig verzoek", 401: "Niet aangemeld", 403: "Geen toegang",
                 404: "Niet gevonden", 405: "Methode niet toegestaan", 406: "Niet aanvaardbaar",
                 409: "Conflict", 412: "Voorwaarde niet vervuld",
                 415: "Mediatype niet ondersteund", 422: "Niet te verwerken",
                 500: "Interne fout", 503: "Dienst niet beschikbaar"}


def title_in(status: int, language: str) -> str:
    """The title of a problem of ``status`` (the HTTP phrase) in ``language``."""
    if language == "nl" and status in _DUTCH_TITLES:
        return _DUTCH_TITLES[status]
    return HTTPStatus(status).phrase


def detail_in(detail: str, language: str) -> str:
    """``detail`` in ``language``, where the common problems' catalogue has it."""
    if language == "nl":
        for pattern, dutch in _DUTCH_DETAILS:
            if m := pattern.match(detail):
                return dutch.format(**m.groupdict())
    return detail


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
