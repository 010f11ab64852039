"""``oup ingest``: MQTT -> observations, at least once and stored once.

The delivery contract, end to end:

* **Persistent session, QoS 1.** A fixed client id and a long session expiry: while the
  ingester is down (killed, restarted, upgraded) the broker queues its messages.
* **Acknowledge after commit.** paho runs with ``manual_ack``; a message is acknowledged
  only once the transaction holding it has committed. A crash before that makes the broker
  deliver it again, and the observations' unique key turns the repeat into a duplicate,
  not a second row.
* **Backpressure, never drop.** The CONNECT property Receive Maximum caps the messages the
  broker sends us unacknowledged; when the writer is slow (or the database is locked) the
  cap is reached and the broker holds the rest in its queue. Nothing here ever discards a
  message: a bad one becomes a dead letter, a busy database is retried.
* **Shared subscriptions, when scaled out.** ``$share/<group>/<topic>``: ingesters with
  the same group split the stream; each keeps its own session. Alone, an ingester
  subscribes plainly: Mosquitto 2.0 restores plain subscriptions after a broker restart
  but not shared ones, so until a group's ingesters have subscribed again the broker
  drops what arrives for it (a publisher sees PUBACK reason 0x10, "No matching
  subscribers"; ``oup simulate``'s Publisher sends such messages again).
* **Acknowledgements are per connection.** After a reconnect the broker re-sends what was
  unacknowledged, with new packet ids; acknowledging an old id on the new connection
  could acknowledge the wrong message, so messages of an earlier connection are stored
  (their repeat will be a duplicate) but never acknowledged.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from oup.sensors.observations import DeadLetter
from oup.store import BatchResult, ObservationStore, StoreBusy

from .mqtt import Broker, session_end
from .sensors import SensorRegistry

LOG = logging.getLogger("oup.ingest")


@dataclass
class IngestOptions:
    client_id: str = "oup-ingest-1"
    group: str | None = None  # shared-subscription group; None subscribes plainly
    batch_size: int = 500
    batch_wait: float = 0.05  # seconds to fill a batch after its first message
    receive_maximum: int = 2000
    session_expiry: int = 7 * 24 * 3600
    keepalive: int = 30
    # Leave for good (scaling a group down): unsubscribe, so the broker assigns this client
    # nothing new, store what it queued for it, then end the session. Without this, a
    # gone member's share waits in its session and is dropped when the session expires.
    retire: bool = False
    retire_idle: float = 3.0  # seconds without a delivery, all committed: the queue is empty


@dataclass
class IngestStatus:
    """Live figures of one ingester process (the committed totals are in the store)."""

    client_id: str
    pid: int = field(default_factory=os.getpid)
    connected: bool = False
    subscribed: bool = False  # the broker confirmed the subscriptions: messages now queue for us
    connections: int = 0
    received: int = 0  # deliveries taken from the broker by this process
    committed: int = 0  # of those, in a committed batch
    in_flight: int = 0  # received, not yet committed
    queue_capacity: int = 0
    backpressure_seconds: float = 0.0  # time the broker was held back (in flight at the cap)
    store_busy_seconds: float = 0.0  # time the database was locked when a batch was ready
    store_retries: int = 0
    unacked_stale: int = 0  # stored, left for redelivery because the connection changed
    updated_at: float = 0.0


@dataclass
class _Delivery:
    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes


class Ingester:
    def __init__(self, broker: Broker, registry: SensorRegistry, store: ObservationStore,
                 options: IngestOptions | None = None, status_file: Path | None = None):
        self.broker, self.registry, self.store = broker, registry, store
        self.opt = options or IngestOptions()
        self.status = IngestStatus(self.opt.client_id, queue_capacity=self.opt.receive_maximum)
        self.status_file = status_file
        self.totals = BatchResult()
        # the cap is Receive Maximum: the queue never blocks unless a broker ignores it,
        # and then blocking the network thread stops reading (TCP pushes back) - no drop
        self.queue: queue.Queue[_Delivery] = queue.Queue(maxsize=self.opt.receive_maximum)
        self._generation = 0
        self._lock = threading.Lock()
        # a plain flag, not an Event: stop() runs in signal handlers, where taking a lock
        # can deadlock (a second signal arriving inside Event.set waits on its own lock)
        self._stopping = False
        self.client = broker.client(self.opt.client_id, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = self._on_unsubscribe
        self.client.reconnect_delay_set(1, 30)
        self._left_at: float | None = None  # retiring: when the broker confirmed we left
        self._last_delivery = 0.0
        self.retired = False

    # -- MQTT side (paho's network thread) ------------------------------------------------
    def subscriptions(self) -> list[str]:
        topics = [t for t, _ in self.registry.topics]
        if self.opt.group and self.broker.mqtt5:
            return [f"$share/{self.opt.group}/{t}" for t in topics]
        return topics

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            LOG.warning("broker refused the connection: %s", reason_code)
            return
        with self._lock:
            self._generation += 1
            self.status.connected = True
            self.status.connections += 1
        LOG.info("connected to %s:%s (session present: %s)", self.broker.host,
                 self.broker.port, flags.session_present)
        if self.opt.retire:
            client.unsubscribe(self.subscriptions())
        else:
            client.subscribe([(t, 1) for t in self.subscriptions()])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        failed = [rc for rc in reason_codes if rc.is_failure]
        if failed:
            LOG.error("the broker refused a subscription: %s", failed)
        self.status.subscribed = not failed

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties):
        self._left_at = time.monotonic()

    def _drained(self) -> bool:
        """Retiring, and nothing arrived for a while with everything committed."""
        s = self.status
        return (self._left_at is not None and s.connected and s.received == s.committed
                and time.monotonic() - max(self._left_at, self._last_delivery)
                >= self.opt.retire_idle)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.status.connected = self.status.subscribed = False
        if not self._stopping:
            LOG.warning("disconnected (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, msg):
        d = _Delivery(self._generation, msg.mid, msg.qos, msg.topic, msg.payload)
        while True:
            try:
                self.queue.put(d, timeout=0.2)
                break
            except queue.Full:
                # stopping with a full queue: the writer takes no more, and waiting here would
                # keep loop_stop() from ever joining this thread. Not acknowledged, so the
                # broker delivers it again (the session persists).
                if self._stopping:
                    return
        self.status.received += 1
        self._last_delivery = time.monotonic()

    # -- writer ---------------------------------------------------------------------------
    def _take(self) -> list[_Delivery]:
        try:
            first = self.queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch, deadline = [first], time.monotonic() + self.opt.batch_wait
        while len(batch) < self.opt.batch_size:
            try:
                batch.append(self.queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _decode(self, d: _Delivery):
        try:
            return self.registry.decode(d.topic, d.payload)
        except Exception as exc:  # a bug must not stop the stream: keep the message, say why
            LOG.exception("unexpected error decoding a message on %s", d.topic)
            return DeadLetter(d.topic, d.payload, f"internal error: {type(exc).__name__}: {exc}")

    def _write(self, batch: list[_Delivery]) -> bool:
        """Commit a batch, retrying while the database is busy; False if stopped first."""
        messages = [self._decode(d) for d in batch]
        sensors = {o.sensor_id for m in messages if isinstance(m, list) for o in m}
        tables = self.registry.tables(sensors)
        delay = 0.05
        while True:
            t0 = time.monotonic()
            try:
                res = self.store.write_batch(self.opt.client_id, messages, tables)
                break
            except StoreBusy:
                self.status.store_busy_seconds += time.monotonic() - t0
                self.status.store_retries += 1
                if self._stopping:
                    return False  # not acknowledged: the broker delivers them again
                LOG.warning("database busy; retrying the batch of %d", len(batch))
                time.sleep(delay)
                self.status.store_busy_seconds += delay
                delay = min(delay * 2, 1.0)
        for name in ("messages", "stored", "duplicates", "dead_lettered",
                     "observations_stored", "observations_corrected"):
            setattr(self.totals, name, getattr(self.totals, name) + getattr(res, name))
        self.status.committed += len(batch)
        with self._lock:
            current = self._generation if self.status.connected else -1
        for d in batch:
            if d.qos == 0:
                continue
            if d.generation == current:
                self.client.ack(d.mid, d.qos)
            else:
                self.status.unacked_stale += 1
        return True

    def _report(self) -> None:
        last = time.monotonic()
        while not self._stopping:
            time.sleep(0.1)
            now = time.monotonic()
            s = self.status
            s.in_flight = s.received - s.committed
            if s.in_flight >= self.opt.receive_maximum:
                s.backpressure_seconds += now - last
            last = now
            if self.status_file and now - s.updated_at >= 1.0:
                self.write_status()

    def write_status(self) -> None:
        s = self.status
        s.in_flight = s.received - s.committed
        s.updated_at = time.monotonic()
        doc = {**asdict(s), "updated_at": time.time()}
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self.status_file)

    # -- lifecycle --------------------------------------------------------------------------
    def run(self) -> None:
        """Ingest until ``stop()``; then store what was received and disconnect."""
        if self.status_file:
            self.status_file.parent.mkdir(parents=True, exist_ok=True)
        self.client.connect_async(
            self.broker.host, self.broker.port, keepalive=self.opt.keepalive,
            **self.broker.connect_args(self.opt.session_expiry, self.opt.receive_maximum))
        self.client.loop_start()
        reporter = threading.Thread(target=self._report, name="ingest-status", daemon=True)
        reporter.start()
        try:
            while not self._stopping:
                batch = self._take()
                if batch and not self._write(batch):
                    break
                if self.opt.retire and self._drained():
                    self.retired = True
                    break
            # store what is already here; the subscription stays in the session, so what
            # arrives from now on waits at the broker for the next start
            left = self.queue.qsize()
            while left > 0 and (batch := self._take()):
                left -= len(batch)
                if not self._write(batch):
                    break
        finally:
            self._stopping = True
            # the acknowledgements queued before go out first; a retired session ends here
            self.client.disconnect(properties=session_end() if self.retired else None)
            self.client.loop_stop()
            if self.status_file:
                self.write_status()

    def stop(self) -> None:
        """Safe in a signal handler: sets a flag the loops check (every 0.2 s at most)."""
        self._stopping = True
