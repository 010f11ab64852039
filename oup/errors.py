"""The error table: every answer OUP gives a client that did something wrong (or that
OUP cannot serve) is one of these classes, and each carries its HTTP status and its
problem type. One handler (``oup.http.problems``) turns any of them into the problem
document (RFC 9457); nothing else builds one.

Modules raise the class that says what went wrong, or a subclass of their own that
names their domain (``oup.tiles.matrix_sets.BadTileAddress`` is an ``InvalidQuery``):
the status follows from the class, never from the place that catches it.
"""
from __future__ import annotations


class OUPError(Exception):
    """An answer to the client as a problem document: ``status`` and ``code`` (the last
    part of the problem type) come from the class; ``detail`` says what was wrong and
    how to put it right; ``parameter`` names the query parameter or property at fault."""

    status = 500
    code = "ServerError"
    title = "Internal Server Error"

    def __init__(self, detail: str, parameter: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.parameter = parameter
        self.headers = headers or {}


class BadRequest(OUPError):
    status, code, title = 400, "BadRequest", "Bad Request"


class InvalidQuery(BadRequest, ValueError):
    """A parameter (or a filter, a body field) with a value OUP cannot take."""

    code = "InvalidParameterValue"


class Unauthorized(OUPError):
    status, code, title = 401, "Unauthorized", "Unauthorized"

    def __init__(self, detail: str, parameter: str | None = None,
                 headers: dict[str, str] | None = None):
        # RFC 6750: say which scheme, and that the token was the trouble
        reason = detail.replace('"', "'")
        super().__init__(detail, parameter, {
            "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{reason}"',
            **(headers or {})})


class Forbidden(OUPError):
    status, code, title = 403, "Forbidden", "Forbidden"


class NotFound(OUPError, LookupError):
    """Not here, or not for this caller: a collection one may not see does not exist."""

    status, code, title = 404, "NotFound", "Not Found"


class MethodNotAllowed(OUPError):
    status, code, title = 405, "MethodNotAllowed", "Method Not Allowed"

    def __init__(self, detail: str, allowed: list[str]):
        super().__init__(detail, headers={"Allow": ", ".join(allowed)})


class NotAcceptable(OUPError):
    status, code, title = 406, "NotAcceptable", "Not Acceptable"


class Conflict(OUPError):
    """The request clashes with what is there (a feature with that id exists)."""

    status, code, title = 409, "Conflict", "Conflict"


class PreconditionFailed(OUPError):
    status, code, title = 412, "PreconditionFailed", "Precondition Failed"


class UnsupportedMediaType(OUPError):
    status, code, title = 415, "UnsupportedMediaType", "Unsupported Media Type"


class Unprocessable(OUPError):
    """Well-formed, but not what the collection takes (a property, a geometry type)."""

    status, code, title = 422, "UnprocessableEntity", "Unprocessable Entity"


class Unavailable(OUPError):
    """A part the answer needs is not installed or not answering."""

    status, code, title = 503, "ServiceUnavailable", "Service Unavailable"


def error_table() -> dict[str, type[OUPError]]:
    """Every problem type, by its code (``/problems/{code}`` describes each)."""
    return {cls.code: cls for cls in globals().values()
            if isinstance(cls, type) and issubclass(cls, OUPError)}
