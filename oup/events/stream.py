"""Change events as Server-Sent Events: ``GET /events`` and ``GET /collections/{id}/events``.

A stream stays open for as long as its subscriber listens, so it is an asyncio task in
the ASGI part of the server (``oup.http.asgi``), never one of the threads the OGC API app
answers from. Each worker process has one ``Hub``: it follows the store's event log
(a small query every ``POLL`` seconds), keeps the latest events in memory, encoded once,
and wakes the streams. A stream that resumes (``Last-Event-ID``, or ``?after=``) from
further back than the hub holds reads the log itself, then joins the hub.

Access is that of every other path: a collection the caller may not see is a 404, and
its events never reach them on ``/events`` either; non-public access is audited. A
scenario's events (the writes into it) go out on its own stream only,
``/scenarios/{id}/events``, to those who may see the scenario (``oup.scenarios``: else
401 or 404, as its other paths), and never on the city's streams.
"""
from __future__ import annotations

import asyncio
import bisect
import logging
from collections import deque
from typing import Callable
from urllib.parse import parse_qs

import orjson
from werkzeug.datastructures import Headers

from oup.catalog import Catalog
from oup.events.filter import EventFilter
from oup.events import EVENTS_MISSED, ChangeEvent, TYPES
from oup.http.pages import CONTENT_SECURITY_POLICY
from oup.errors import InvalidQuery, NotFound, OUPError, Unauthorized
from oup.http.problems import Problems
from oup.http.responses import add_common_headers
from oup.http.routes import Endpoint, Format, Param, Routes
from oup.security import INVALID_CREDENTIALS, AuditLog, AuthError, Authenticator, \
    new_request_id, visible_collections

LOG = logging.getLogger(__name__)
POLL = 0.02  # seconds between looks at the log: the most an event waits for the hub
KEEP = 20_000  # events the hub holds in memory (a resume from within them reads no log)
HEARTBEAT = 15.0  # seconds: a comment line keeps proxies and the client's timer alive
TICK = 5.0  # seconds: the longest a stream sleeps (its heartbeat, its client gone)
# Streams are woken in rounds, and each round is a write to every open stream: a
# thousand streams and 20 batches a second would be 20,000 socket writes a second,
# taken from the API's CPU. So while events are dense, rounds are spaced PACE apart, or
# further when there are so many streams that a worker would write more than SENDS a
# second (500 streams: a round every 0.25 s). A lone event still goes out at once.
PACE = 0.1  # seconds
SENDS = 2000  # stream writes a second, per worker
READ = 1000  # events per read of the log


class Hub:
    """Follows the event log for the streams of one worker process."""

    def __init__(self, open_log: Callable, base_url: str, poll: float = POLL, keep: int = KEEP):
        self.open_log, self.base_url, self.poll, self.keep = open_log, base_url, poll, keep
        self.recent: deque[tuple[int, ChangeEvent, bytes]] = deque()
        self.floor = 0  # the hub holds every event after this one
        self.last = 0
        # Each waiting stream's own future, resolved at the next round. Not one shared
        # future or an asyncio.wait per stream: a round wakes hundreds of streams, and
        # what each costs to wake is what a thousand subscribers take from the API.
        self._waiting: list[asyncio.Future] = []
        self._task: asyncio.Task | None = None
        self._started = asyncio.Lock()
        self._follower = self._reader = None
        self.subscribers = 0
        self.closing = False
        self._woken = 0.0  # loop time of the last round
        self._wake_due = False

    def close(self) -> None:
        """The worker is stopping: every stream ends (its client reconnects elsewhere)."""
        self.closing = True
        self._wake()

    async def start(self) -> None:
        """On the first subscriber: a worker nobody subscribes to never reads the log."""
        if self._task is not None:
            return
        async with self._started:
            if self._task is not None:
                return
            # one connection follows, one reads for resumes: neither waits on the other
            self._follower, self._reader = await asyncio.gather(
                asyncio.to_thread(self.open_log), asyncio.to_thread(self.open_log))
            self.last = self.floor = await asyncio.to_thread(self._follower.last_event)
            self._task = asyncio.create_task(self._follow(), name="oup-event-hub")
            self._tick()

    async def _follow(self) -> None:
        # The one task every stream of this worker waits on: nothing may end it (a stream
        # would then send its heartbeats and never another event)
        while True:
            try:
                events = await asyncio.to_thread(self._follower.events_after, self.last, READ)
                if events:
                    self._add(events)
            except Exception:  # the database away for a moment: streams wait, none fail
                LOG.exception("reading the event log; trying again")
                await asyncio.sleep(1.0)
                continue
            if len(events) < READ:
                await asyncio.sleep(self.poll)

    def _add(self, events: list[ChangeEvent]) -> None:
        for e in events:
            self.recent.append((e.seq, e, self._encoded(e)))
        while len(self.recent) > self.keep:
            self.floor = self.recent.popleft()[0]
        self.last = events[-1].seq
        loop = asyncio.get_running_loop()
        wait = self._woken + max(PACE, self.subscribers / SENDS) - loop.time()
        if wait <= 0:
            self._wake()
        elif not self._wake_due:  # the next round takes these too
            self._wake_due = True
            loop.call_later(wait, self._wake)

    def _tick(self) -> None:
        """A round at least every TICK seconds, events or not: streams send their
        heartbeats from it."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._woken >= TICK:
            self._wake()
        if not self.closing:
            loop.call_later(TICK, self._tick)

    def _wake(self) -> None:
        self._woken, self._wake_due = asyncio.get_running_loop().time(), False
        waiting, self._waiting = self._waiting, []
        for f in waiting:
            if not f.done():
                f.set_result(None)

    def next_round(self) -> asyncio.Future:
        """A future resolved at the next round (new events, a tick, or the end)."""
        f = asyncio.get_running_loop().create_future()
        if self.closing:  # no round is coming: the stream ends now
            f.set_result(None)
        else:
            self._waiting.append(f)
        return f

    def encode(self, e: ChangeEvent) -> bytes:
        return b"id: %d\ndata: %s\n\n" % (e.seq, orjson.dumps(e.cloudevent(self.base_url)))

    def held_after(self, seq: int) -> list[tuple[int, ChangeEvent, bytes]] | None:
        """The events after ``seq`` (up to READ of them) if the hub holds them, else None."""
        if seq >= self.last:
            return []
        if seq < self.floor:
            return None
        start = bisect.bisect_right(self.recent, seq, key=lambda r: r[0])
        return [self.recent[i] for i in range(start, min(start + READ, len(self.recent)))]

    async def expired_after(self, seq: int) -> int | None:
        """The oldest event the log still holds, when events after ``seq`` have left it
        (kept OUP_EVENTS_RETENTION_HOURS); None when nothing after ``seq`` is missing."""
        if seq >= self.floor:  # the hub holds everything after it
            return None
        first = await asyncio.to_thread(self._reader.first_event)
        return first if first > seq + 1 else None

    async def logged_after(self, seq: int) -> list[tuple[int, ChangeEvent, bytes]]:
        """The events after ``seq`` (up to READ of them), from the log: for a stream that
        resumes from before what the hub holds (``held_after`` said None)."""
        events = await asyncio.to_thread(self._reader.events_after, seq, READ)
        return [(e.seq, e, self._encoded(e)) for e in events if e.seq <= self.last]

    def _encoded(self, e: ChangeEvent) -> bytes:
        """``encode``, or nothing for an event that cannot be written: it is left out,
        and the streams go on past it."""
        try:
            return self.encode(e)
        except Exception:
            LOG.exception("event %s (%s) cannot be written as an SSE event: left out",
                          e.seq, e.type)
            return b""


class EventStreams:
    """The ASGI app of the two event paths (declared in ``endpoints``)."""

    def __init__(self, hub: Hub, catalog: Catalog, auth: Authenticator, audit: AuditLog,
                 properties: Callable[[set[str]], set[str]], routes: Routes,
                 problems: Problems, scenario_of: Callable):
        self.hub, self.catalog, self.auth, self.audit = hub, catalog, auth, audit
        self.properties = properties  # collection ids -> the property names events carry
        # (identity, scenario id) -> the scenario, if they may see it (else 401/404)
        self.scenario_of = scenario_of
        self.routes, self.problems = routes, problems
        self.public = catalog.public

    async def __call__(self, scope, receive, send) -> None:
        path = scope["path"]
        headers = Headers([(k.decode("latin-1"), v.decode("latin-1"))
                           for k, v in scope["headers"]])
        request_id = headers.get("X-Request-ID", "")[:64] or new_request_id()
        args = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode("latin-1"),
                                              keep_blank_values=True).items()}
        cid = None
        try:
            call = self.routes.resolve(scope["method"], path, args, headers.get("Accept"),
                                       frozenset())
            cid, sid = call.collection, call.path.get("scenarioId")
            try:
                identity = self.auth.identify(headers)
            except AuthError as exc:
                if cid and cid in self.catalog.collections and cid not in self.public:
                    self.audit.write(INVALID_CREDENTIALS.who, cid, f"GET {_route(cid)}", 401,
                                     request_id)
                raise Unauthorized(str(exc)) from None
            visible = visible_collections(identity, self.catalog)
            if cid is not None and cid not in visible:  # hidden or unknown: not here
                raise NotFound(f"no collection {cid!r}")
            scope_ids = visible if cid is None else {cid} | (
                {self.catalog.collections[cid].derived_from} & visible - {None})
            if sid is not None:  # (a blocking read of the store: off the event loop)
                found = await asyncio.to_thread(self.scenario_of, identity, sid)
                scope_ids, sid = visible & set(found["collections"]), found["id"]
            want, cursor = self._subscription(call.query, headers, scope_ids)
        except OUPError as exc:
            return await _answer(send, *self.problems.answer(exc, path), request_id)
        for c in sorted(scope_ids - self.public):
            self.audit.write(identity.who, c, f"GET {_route(cid, sid)}", 200, request_id)
        response = [(b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-store"), (b"x-accel-buffering", b"no"),
                    (b"x-request-id", request_id.encode())]
        response += [(k.lower().encode(), v.encode()) for k, v in _common().items()]
        await send({"type": "http.response.start", "status": 200, "headers": response})
        if scope["method"] == "HEAD":
            return await send({"type": "http.response.body", "body": b""})
        await self._stream(send, receive, cursor, want, scope_ids, sid)

    def _subscription(self, query: dict, headers, scope_ids: set[str]) -> tuple[EventFilter, int]:
        """What the subscriber wants (checked against the declaration already), and the
        event id it resumes after."""
        types = [t for t in query.get("type", "").split(",") if t]
        if set(types) - set(TYPES):
            raise InvalidQuery(f"type: one of {', '.join(TYPES)}", "type")
        sensors = [s for s in query.get("sensor", "").split(",") if s]
        want = EventFilter(sensors, types, query.get("filter") or None,
                           query.get("filter-lang"), self.properties(scope_ids))
        last = query.get("after") or headers.get("Last-Event-ID")
        if last in (None, ""):
            return want, self.hub.last  # from now on
        if not last.isdigit() or len(last) > 18:
            raise InvalidQuery("Last-Event-ID (or after): the id of an event seen, a whole "
                               "number", "after")
        return want, int(last)

    def _allowed(self, event: ChangeEvent, scope_ids: set[str], scenario: str | None) -> bool:
        if event.scenario != scenario:  # the city's streams, or another scenario's
            return False
        if event.collection in self.catalog.collections:
            return event.collection in scope_ids
        return scenario is None and event.is_public(  # removed
            self.public, set(self.catalog.collections))

    async def _stream(self, send, receive, cursor: int, want: EventFilter,
                      scope_ids: set[str], scenario: str | None) -> None:
        hub, loop = self.hub, asyncio.get_running_loop()
        listening = _Listening(receive)
        hub.subscribers += 1
        try:
            # The stream's starting point as its first id (a block without data, so no
            # event): a browser that loses the stream before any event reaches it resumes
            # from there (Last-Event-ID), where it would otherwise start again from "now"
            # and miss what came in between.
            await send({"type": "http.response.body", "more_body": True,
                        "body": b"retry: 2000\nid: %d\n: OUP events\n\n" % cursor})
            first = await hub.expired_after(cursor)
            if first is not None:
                # The client resumes from further back than the log keeps: say so (an
                # event of its own type, without an id), so it reads the items afresh
                # instead of going on as if it had missed nothing.
                notice = orjson.dumps({"after": cursor, "first": first, "detail":
                                       f"the events after {cursor} and before {first} have "
                                       "expired from the log: read the items again"})
                await send({"type": "http.response.body", "more_body": True,
                            "body": b"event: " + EVENTS_MISSED.encode() + b"\ndata: " + notice
                            + b"\n\n"})
            sent = loop.time()
            while listening.on and not hub.closing:
                batch = hub.held_after(cursor)
                if batch is None:
                    batch = await hub.logged_after(cursor)
                if batch:
                    cursor = batch[-1][0]
                    out = b"".join(data for _, e, data in batch
                                   if self._allowed(e, scope_ids, scenario)
                                   and want.matches(e))
                    if out:
                        await send({"type": "http.response.body", "body": out,
                                    "more_body": True})
                        sent = loop.time()
                if hub.last > cursor:  # more came while this one was sending
                    continue
                if loop.time() - sent >= HEARTBEAT:
                    await send({"type": "http.response.body", "body": b": keep-alive\n\n",
                                "more_body": True})
                    sent = loop.time()
                    continue  # events may have come while it was sending
                await listening.until(hub.next_round())
            if listening.on:
                await send({"type": "http.response.body", "body": b""})  # the end
        except OSError:  # the client went away mid-write
            pass
        finally:
            hub.subscribers -= 1
            listening.stop()


class _Listening:
    """Whether a stream's client is still there; a stream waiting for the next round is
    woken when it leaves."""

    def __init__(self, receive):
        self.on, self._waiting = True, None
        self._task = asyncio.ensure_future(self._listen(receive))

    async def _listen(self, receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.on = False
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_result(None)

    async def until(self, round_: asyncio.Future) -> None:
        self._waiting = round_
        try:
            await round_
        finally:
            self._waiting = None

    def stop(self) -> None:
        self._task.cancel()


def _common() -> Headers:
    """The headers every answer of the API carries (``app._headers`` for the rest)."""
    h = Headers()
    add_common_headers(h)
    h["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return h


def _route(cid: str | None, sid: str | None = None) -> str:
    if sid:
        return "/scenarios/{scenarioId}/events"
    return "/collections/<path:collection_id>/events" if cid else "/events"


async def _answer(send, body: bytes, status: int, headers: dict, request_id: str) -> None:
    h = _common()
    h.update(headers)
    h["X-Request-ID"] = request_id
    await send({"type": "http.response.start", "status": status,
                "headers": [(k.lower().encode(), v.encode()) for k, v in h.items()]})
    await send({"type": "http.response.body", "body": body})


def endpoints(catalog: Catalog) -> list[Endpoint]:
    """``/events``, ``/collections/{id}/events`` and ``/scenarios/{id}/events``: answered
    by ``EventStreams`` in the ASGI part of the server, declared here with every other
    endpoint."""
    resume = (
        Param("after", "resume after this event id (as Last-Event-ID)",
              {"type": "string", "pattern": r"\d{0,18}", "description": "a whole number"}),
        Param("Last-Event-ID", "resume after this event id", {"type": "integer", "minimum": 0},
              "header"))
    params = (
        Param("sensor", "only these sensors (comma-separated ids)"),
        Param("type", "only these event types (comma-separated): " + ", ".join(TYPES)),
        Param("filter", "CQL2 (text or JSON) over the event's properties"),
        Param("filter-lang", "cql2-text or cql2-json",
              {"type": "string", "enum": ["cql2-text", "cql2-json"]}),
        *resume)
    sse = (Format("sse", "text/event-stream"),)
    more = {"401": {"description": "invalid credentials"}}
    described = ("a stream of CloudEvents 1.0 JSON events (Server-Sent Events: `id:` the "
                 "event id, `data:` the event); see /asyncapi")
    return [Endpoint("/events", "Change events of everything the caller may see", None,
                     "events", "getEvents", params=params, formats=sse, responses=more,
                     description=described),
            Endpoint("/collections/{collectionId}/events", "Change events of a collection",
                     None, "events", "getEvents", params=params, formats=sse, responses=more,
                     description=described,
                     collections=lambda: list(catalog.collections)),
            Endpoint("/scenarios/{scenarioId}/events", "Change events of a scenario: the "
                     "writes into it", None, "scenarios", "getScenarioEvents",
                     params=(Param("scenarioId", "a scenario (see /scenarios)", where="path"),
                             *resume), formats=sse,
                     responses={"401": {"$ref": "#/components/responses/401"}},
                     description=SCENARIO_STREAM)]


SCENARIO_STREAM = (
    "a stream of CloudEvents 1.0 JSON events (Server-Sent Events: `id:` the event id, "
    "`data:` the event), an `oup.scenario.changed` event per write into the scenario: "
    "the collection, the feature's id, the kind of write, and the feature as "
    "/scenarios/{scenarioId}/changes now has it (null when the scenario no longer changes "
    "it). Only for those who may see the scenario; none of these reach /events.")
