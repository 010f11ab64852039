"""The bridge between the ASGI server and the OGC API app (oup.http.wsgi_bridge), in-process:
requests reach the WSGI app whole, answers come back whole and in order, a big one in
pieces, and the request's context goes with it into the thread."""
from __future__ import annotations

import asyncio
import contextvars

import pytest

from oup.http.wsgi_bridge import BUFFER, WsgiBridge

WHO = contextvars.ContextVar("who", default="nobody")


def _call(app, *, method="GET", path="/p", query=b"", headers=(), body_parts=(b"",)):
    """Run ``app`` behind the bridge for one request; the messages it sent."""
    sent = []
    parts = list(body_parts)

    async def receive():
        chunk = parts.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(parts)}

    async def send(message):
        sent.append(message)

    async def main():
        WHO.set("steward")  # as the ASGI part sets request context before the app runs
        scope = {"type": "http", "method": method, "path": path, "root_path": "",
                 "query_string": query, "headers": list(headers), "http_version": "1.1",
                 "scheme": "http", "server": ("127.0.0.1", 5000), "client": ("127.0.0.1", 4321)}
        await WsgiBridge(app, threads=2)(scope, receive, send)

    asyncio.run(main())
    return sent


def test_a_request_reaches_the_app_whole_and_its_answer_comes_back():
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        seen["body"] = environ["wsgi.input"].read()
        seen["who"] = WHO.get()
        start_response("201 Created", [("Content-Type", "text/plain"), ("X-Two", "2")])
        return [b"made ", b"", b"it"]

    sent = _call(app, method="POST", path="/collections/a b/items", query=b"limit=5&f=json",
                 headers=[(b"content-type", b"application/json"), (b"accept", b"a/b"),
                          (b"accept", b"c/d")], body_parts=[b'{"x":', b" 1}"])
    assert seen["REQUEST_METHOD"] == "POST" and seen["PATH_INFO"] == "/collections/a b/items"
    assert seen["QUERY_STRING"] == "limit=5&f=json" and seen["CONTENT_TYPE"] == "application/json"
    assert seen["HTTP_ACCEPT"] == "a/b,c/d" and seen["REMOTE_ADDR"] == "127.0.0.1"
    assert seen["body"] == b'{"x": 1}' and seen["who"] == "steward"
    assert sent == [
        {"type": "http.response.start", "status": 201,
         "headers": [(b"content-type", b"text/plain"), (b"x-two", b"2")]},
        {"type": "http.response.body", "body": b"made it", "more_body": False}]


def test_a_big_answer_goes_in_pieces_in_order():
    pieces = [bytes([i]) * (BUFFER // 3) for i in range(10)]

    def app(environ, start_response):
        start_response("200 OK", [])
        yield from pieces

    sent = _call(app)
    assert sent[0]["type"] == "http.response.start"
    bodies = sent[1:]
    assert len(bodies) > 2 and all(m["more_body"] for m in bodies[:-1])
    assert not bodies[-1]["more_body"]
    assert b"".join(m["body"] for m in bodies) == b"".join(pieces)


def test_an_error_before_the_answer_may_change_it_and_after_it_is_raised():
    def app(environ, start_response):
        start_response("200 OK", [])
        try:
            raise ValueError("broken")
        except ValueError as exc:
            start_response("500 Internal Server Error", [], (type(exc), exc, exc.__traceback__))
        return [b"sorry"]

    assert _call(app)[0]["status"] == 500

    def late(environ, start_response):
        start_response("200 OK", [])
        yield b"x" * BUFFER  # sent: the status can no longer change
        try:
            raise ValueError("broken late")
        except ValueError as exc:
            start_response("500 Internal Server Error", [], (type(exc), exc, exc.__traceback__))
        yield b"never"

    with pytest.raises(ValueError, match="broken late"):
        _call(late)
