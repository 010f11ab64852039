"""What ``oup serve`` runs in each worker process: one ASGI app on one port.

The change-event streams (``oup.events.stream``) are served here, asynchronously: a
thousand open streams are a thousand small tasks. Everything else goes to the OGC API app
(``oup.http.app``, pygeoapi under Flask, WSGI), which answers from a pool of threads
(``oup.http.wsgi_bridge``).

gunicorn keeps managing the workers (``oup catalog reload`` restarts them one by one);
``Worker`` is uvicorn's gunicorn worker that, told to stop, ends its event streams at
once (they never end by themselves; their clients reconnect to a fresh worker with the
last id they saw) and gives other requests up to ``GRACEFUL_SECONDS`` to finish.
"""
from __future__ import annotations

import asyncio

from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from oup.events.stream import EventStreams, Hub
from oup.http.wsgi_bridge import WsgiBridge

GRACEFUL_SECONDS = 30  # as gunicorn's own default
HANDOVER_SECONDS = 0.5  # a stopping worker reads the requests of what it accepted
HUBS: list[Hub] = []  # this process's (one per app)


class _Server(Server):
    def handle_exit(self, sig, frame) -> None:
        # told to stop: end the event streams now, cleanly (their clients come back to a
        # fresh worker with Last-Event-ID), instead of cutting them at the grace period
        loop = asyncio.get_event_loop()
        for hub in HUBS:
            loop.call_soon_threadsafe(hub.close)
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets=None) -> None:
        # Stop accepting first, then give the connections just accepted the time to send
        # their request before uvicorn closes every connection without one as idle: a
        # client that had connected was otherwise reset, its request lost (8 of ~13,000
        # requests over 10 restarts of the workers, as `oup catalog reload` does). A
        # request read by then is answered, with "Connection: close".
        for server in self.servers:
            server.close()
        await asyncio.sleep(HANDOVER_SECONDS)
        await super().shutdown(sockets)


class Worker(UvicornWorker):
    CONFIG_KWARGS = {"loop": "auto", "http": "auto",
                     "timeout_graceful_shutdown": GRACEFUL_SECONDS}

    async def _serve(self) -> None:  # as UvicornWorker's, with _Server
        import sys

        from gunicorn.arbiter import Arbiter

        self.config.app = self.wsgi
        server = _Server(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)


def create_app(settings=None):
    """gunicorn: ``oup.http.asgi:create_app()``."""
    from oup.http.app import create_app as create_wsgi_app
    from oup.settings import get_settings
    from oup.store import open_observation_store

    settings = settings or get_settings()
    flask = create_wsgi_app(settings)
    oup = flask.extensions["oup"]
    hub = Hub(lambda: open_observation_store(settings.store_url, schema=False),
              settings.public_url)
    HUBS.append(hub)
    oup.hub = hub  # /metrics counts its subscribers
    streams = EventStreams(hub, oup.catalog, oup.auth, oup.audit, oup.event_properties,
                           oup.routes, oup.problems, oup.scenario_of)
    wsgi = WsgiBridge(flask, threads=settings.threads)

    async def app(scope, receive, send):
        if scope["type"] == "http" and oup.routes.streamed(scope["path"]):
            await hub.start()
            return await streams(scope, receive, send)
        if scope["type"] == "lifespan":  # nothing to set up or tear down
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            return await send({"type": "lifespan.shutdown.complete"})
        return await wsgi(scope, receive, send)

    return app
