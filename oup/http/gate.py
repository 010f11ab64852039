"""What every request passes through, before and after it is answered.

Before: who is asking (``security``), what they may see (a collection they may not see
is a 404 on every path, whatever answers it; so is a scenario, named by ``?scenario=``
on any path: ``oup.scenarios``), then OUP's own endpoints (``routes``), or the checks of
what pygeoapi answers (``request_checks``).
After: errors as problem documents, the audit of non-public access, the headers every
answer carries, the request counters, and the few corrections OUP makes to pygeoapi's
JSON (``rewrite_for``).
"""
from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Callable

from werkzeug.exceptions import NotFound as HTTPNotFound

from oup.errors import NotFound, OUPError, Unauthorized
from oup.http import pages
from oup.http.params import CHECKED_EDR, CHECKED_ITEM, CHECKED_ITEMS, ITEM_ETAG
from oup.http.problems import Problems, from_status
from oup.http.request_checks import Queryables, check_request
from oup.http.responses import add_common_headers
from oup.http.routes import Routes
from oup.languages import DEFAULT, LOCALES, negotiate
from oup.security import (ASKING, INVALID_CREDENTIALS, VISIBLE, AuditLog, AuthError, Authenticator,
                          new_request_id, visible_collections)

LOG = logging.getLogger(__name__)
_COLLECTION_PATH = re.compile(r"^/collections/([^/]+)")


def _language() -> str:
    from flask import g

    return g.get("language", DEFAULT)


def _content_language(resp, language: str) -> None:
    """Every document a person or client reads says its language (pygeoapi's say it
    already); tiles, assets and empty answers do not."""
    kind = resp.mimetype or ""
    if resp.status_code in (204, 304) or not ("json" in kind or kind == "text/html"):
        return
    resp.headers.setdefault("Content-Language", LOCALES[language])
    resp.vary.add("Accept-Language")


def _join_repeated(request, name: str) -> None:
    """``name=a&name=b`` as ``name=a,b``: an HTML form of checkboxes (the items page's
    column picker) sends each ticked one on its own; the API reads one list."""
    from werkzeug.datastructures import ImmutableMultiDict

    values = request.args.getlist(name)
    if len(values) > 1:
        args = [(k, v) for k, v in request.args.items(multi=True) if k != name]
        request.args = ImmutableMultiDict(args + [(name, ",".join(values))])


@dataclass
class Gate:
    catalog: object
    auth: Authenticator
    audit: AuditLog
    routes: Routes
    problems: Problems
    queryables: Queryables
    max_limit: int
    default_limit: int
    metrics: object
    rewrite_for: Callable  # path -> a function amending pygeoapi's JSON there, or None
    etag_for: Callable  # (path, args) -> the ETag of the item there, or None
    # (identity, scenario id, collection id or None): 401/404 unless they may see it
    scenario_check: Callable | None = None

    def install(self, app) -> None:
        app.before_request(self.before)
        app.after_request(self.after)
        app.register_error_handler(OUPError, self.on_error)
        app.register_error_handler(Exception, self.on_exception)

    def before(self):
        from flask import g, request

        g.started = time.perf_counter()
        g.request_id = request.headers.get("X-Request-ID", "")[:64] or new_request_id()
        g.identity, g.cid, g.route = None, None, None
        g.language = negotiate(request.args.get("lang"), request.headers.get("Accept-Language"))
        # pygeoapi reads the same choice (it matches regions strictly: nl-BE was English)
        request.environ["HTTP_ACCEPT_LANGUAGE"] = LOCALES[g.language]
        public = self.catalog.public
        VISIBLE.set(frozenset(public))
        CHECKED_ITEMS.set(None)
        CHECKED_EDR.set(None)
        CHECKED_ITEM.set(None)
        ITEM_ETAG.set(None)
        if request.method == "OPTIONS":
            return "", 204
        _join_repeated(request, "properties")
        m = _COLLECTION_PATH.match(request.path)
        cid = m.group(1) if m and m.group(1) in self.catalog.collections else \
            self.routes.shown(request.path)
        try:
            g.identity = self.auth.identify(request.headers)
        except AuthError as exc:
            g.identity, g.cid = INVALID_CREDENTIALS, cid  # a bad look is audited too
            raise Unauthorized(str(exc)) from None
        g.visible = frozenset(visible_collections(g.identity, self.catalog))
        VISIBLE.set(g.visible)
        ASKING.set(g.identity)
        if cid is not None:
            g.cid = cid
            if cid not in g.visible:  # invisible, not forbidden: it does not exist here
                raise NotFound(f"no collection {cid!r}" if m else f"nothing at {request.path}")
        if self.scenario_check is not None and "scenario" in request.args:
            self.scenario_check(g.identity, request.args["scenario"], cid)
        call = self.routes.resolve(request.method, request.path, request.args,
                                   request.headers.get("Accept"), g.visible, request,
                                   g.identity, g.request_id)
        if call is None:
            if isinstance(request.routing_exception, HTTPNotFound):  # pygeoapi's neither
                raise NotFound(f"nothing at {request.path}")
            return check_request(request, self.queryables, self.max_limit, self.default_limit)
        g.route = call.endpoint.path  # the counters' and the audit's name for it
        if call.endpoint.handler is None:
            raise NotFound(f"{request.path} is a stream: `oup serve` answers it")
        return call.endpoint.handler(call)

    def on_error(self, exc: OUPError):
        from flask import request

        return self.problems.answer(exc, request.full_path.rstrip("?"), _language())

    def on_exception(self, exc: Exception):
        from flask import request

        status = getattr(exc, "code", None)
        if isinstance(status, int) and 400 <= status < 600:  # werkzeug's: 404, 405, 413...
            error = from_status(status, getattr(exc, "description", None) or str(exc))
            return self.on_error(error)
        LOG.exception("unhandled error on %s", request.full_path)
        return self.on_error(OUPError("internal error; it has been logged"))

    def after(self, resp):
        from flask import Response, g, request

        resp = self._as_problem(resp, request, Response)
        identity, cid, public = g.get("identity"), g.get("cid"), self.catalog.public
        route = g.get("route") or (request.url_rule.rule if request.url_rule else "(unmatched)")
        if cid and cid not in public:
            self.audit.write(identity.who if identity else "anonymous", cid,
                             f"{request.method} {route}", resp.status_code, g.request_id)
        if (identity and identity.authenticated) or (cid and cid not in public):
            resp.headers["Cache-Control"] = "no-store"  # answers that depend on who asks
        if request.is_secure or request.headers.get("X-Forwarded-Proto") == "https":
            resp.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        resp.headers["X-Request-ID"] = g.get("request_id", "")
        rewrite = self.rewrite_for(request.path, g.get("visible", public))
        if rewrite and resp.status_code == 200 and resp.get_data()[:1] == b"{":
            resp.set_data(json.dumps(rewrite(json.loads(resp.get_data()))))
        if request.method in ("GET", "HEAD") and resp.status_code == 200 \
                and "ETag" not in resp.headers:
            # read with the item where its provider could (else one more statement)
            tag = ITEM_ETAG.get() or self.etag_for(request.path, request.args)
            if tag is not None:
                resp.headers["ETag"] = f'"{tag}"'
        _content_language(resp, g.get("language", DEFAULT))
        add_common_headers(resp.headers)
        resp.headers["Content-Security-Policy"] = pages.CONTENT_SECURITY_POLICY
        self.metrics.observe(route, resp.status_code,
                             time.perf_counter() - g.get("started", time.perf_counter()))
        return resp

    def _as_problem(self, resp, request, response_class):
        """An error answer of pygeoapi's or Flask's as a problem document (keeping its
        Content-Crs); a person in a browser keeps the HTML page."""
        if resp.status_code < 400 or resp.mimetype == "application/problem+json":
            return resp
        if request.args.get("f") == "html" or (resp.mimetype or "").startswith("text/html"):
            return resp
        detail, code = None, None
        if not resp.is_streamed and resp.get_data()[:1] == b"{":
            try:
                body = json.loads(resp.get_data())
                detail = body.get("description") or body.get("detail")
                code = body.get("code")
            except (ValueError, AttributeError):
                pass
        from http import HTTPStatus

        error = from_status(resp.status_code,
                            detail or HTTPStatus(resp.status_code).description, code)
        body, status, headers = self.problems.answer(error, request.full_path.rstrip("?"),
                                                     _language())
        new = response_class(body, status=status, headers=headers)
        if "Content-Crs" in resp.headers:  # the language is the problem document's own
            new.headers["Content-Crs"] = resp.headers["Content-Crs"]
        return new
