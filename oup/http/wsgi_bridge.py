"""The OGC API app (WSGI: pygeoapi under Flask) answering ASGI requests from a pool of
threads, with one hand-over between the event loop and a thread each way.

A general bridge (a2wsgi, which OUP used before) hands each piece of an answer to the
event loop and waits for it there: the status line, each chunk of the body and its end,
four or more round trips between two threads a request, each a wake-up of the loop and
a hand-over of Python's lock. Here the thread runs the app to its end and gives the
loop the whole answer at once (an answer over ``BUFFER`` bytes goes in pieces of that
size, so a big one is not held in memory); the request body, small for an OGC API, is
read before the thread starts.
"""
from __future__ import annotations

import asyncio
import contextvars
import io
import sys
from concurrent.futures import ThreadPoolExecutor

BUFFER = 1 << 20  # bytes of an answer the thread hands over at once


class WsgiBridge:
    """An ASGI app (http scopes) running the WSGI app ``app`` in ``threads`` threads."""

    def __init__(self, app, threads: int):
        self.app = app
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wsgi")

    async def __call__(self, scope, receive, send) -> None:
        environ = _environ(scope, await _body(receive))
        loop = asyncio.get_running_loop()
        answer = _Answer(loop, send)
        run = contextvars.copy_context().run  # the request's context variables, as a2wsgi
        await loop.run_in_executor(self.pool, run, answer.run, self.app, environ)
        await answer.finish()


class _Answer:
    """One answer, built in a thread and sent by the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, send):
        self.loop, self.send = loop, send
        self.start: dict | None = None  # the http.response.start message
        self.started = False  # whether it went out
        self.chunks: list[bytes] = []
        self.size = 0

    def run(self, app, environ: dict) -> None:  # in a thread
        body = app(environ, self.start_response)
        try:
            for chunk in body:
                if chunk:
                    self.chunks.append(chunk)
                    self.size += len(chunk)
                    if self.size >= BUFFER:  # a big answer: this much now, the rest later
                        asyncio.run_coroutine_threadsafe(self.flush(more=True),
                                                         self.loop).result()
        finally:
            getattr(body, "close", lambda: None)()

    def start_response(self, status: str, headers: list, exc_info=None):
        if exc_info is not None and self.started:  # too late to change it (PEP 3333)
            raise exc_info[1].with_traceback(exc_info[2])
        self.start = {"type": "http.response.start", "status": int(status.split(" ", 1)[0]),
                      "headers": [(k.strip().lower().encode("latin1"),
                                   v.strip().encode("latin1")) for k, v in headers]}

        def write(chunk: bytes) -> None:  # PEP 3333's legacy write(): kept in order
            self.chunks.append(chunk)
            self.size += len(chunk)
        return write

    async def flush(self, more: bool) -> None:
        if not self.started:
            self.started = True
            await self.send(self.start)
        data, self.chunks, self.size = b"".join(self.chunks), [], 0
        await self.send({"type": "http.response.body", "body": data, "more_body": more})

    async def finish(self) -> None:
        if self.start is None:
            raise RuntimeError("the WSGI app returned without calling start_response")
        await self.flush(more=False)


async def _body(receive) -> io.BytesIO:
    """The request body, read whole."""
    parts, more = [], True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
        more = message.get("more_body", False)
    return io.BytesIO(b"".join(parts))


def _environ(scope: dict, body: io.BytesIO) -> dict:
    """The WSGI environ (PEP 3333) of an ASGI http scope."""
    server = scope.get("server") or ("localhost", 80)
    root, path = scope.get("root_path", ""), scope["path"]
    if root and path.startswith(root):
        path = path[len(root):]
    environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root.encode().decode("latin1"),
        "PATH_INFO": path.encode().decode("latin1"),
        "QUERY_STRING": scope["query_string"].decode("latin1"),
        "SERVER_NAME": server[0], "SERVER_PORT": str(server[1] or 0),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0), "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body, "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }
    if scope.get("client"):
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = scope["client"][0], \
            str(scope["client"][1])
    for name, value in scope.get("headers", []):
        key = name.decode("latin1").upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        value = value.decode("latin1")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ
