"""``oup serve`` with a broker: the API, and beside it ``oup events relay`` (change events
of public collections to MQTT); with ``--live`` also a broker, an ingester, a job
worker (``oup worker``) and the simulator. All are started and stopped together. The
broker comes from the caller (the CLI, the composition root that wires ``iot_ingest`` to
the core); the other parts are ``oup`` processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from oup.settings import Settings


class LiveError(RuntimeError):
    """The live parts cannot start (no broker)."""


def serve_live(s: Settings, server_args: list[str], record_server, start_broker,
               say=print, live: bool = True) -> None:
    """Run the server (``server_args``) and ``oup events relay``; ``live``: also a broker
    (unless ``OUP_MQTT_URL`` names one), ``oup ingest``, ``oup worker`` and ``oup
    simulate``. When one ends, or on a signal, stop them all. ``record_server(pid)``
    notes the server's pid for ``oup catalog reload``; ``start_broker()`` starts a broker (``.url``, ``.relay_url``,
    ``.ws_url``, ``.kind``, ``.stop()``) or raises ``LiveError``."""
    broker = None
    env = dict(os.environ)
    if live and not s.mqtt_url:
        broker = start_broker()
        env["OUP_MQTT_URL"] = broker.url
        env.setdefault("OUP_EVENTS_MQTT_URL", broker.relay_url)
        if broker.ws_url:
            env.setdefault("OUP_MQTT_WS_PUBLIC_URL", broker.ws_url)
        say(f"MQTT broker: {broker.kind} on {broker.url}"
            + ("  (embedded: demo only, see its log)" if broker.kind == "embedded" else ""))
    me = [sys.executable, "-m", "oup.cli"]
    children = [subprocess.Popen(me + ["ingest"], env=env),
                subprocess.Popen(me + ["worker"], env=env),
                subprocess.Popen(me + ["simulate", "--rate", "20", "--quiet"], env=env)] \
        if live else []
    if s.events_relay:
        children.append(subprocess.Popen(me + ["events", "relay"], env=env))
    children.append(subprocess.Popen(server_args, env=env))
    record_server(children[-1].pid)

    def interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        while all(c.poll() is None for c in children):  # one ends: stop them all
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        # a second Ctrl-C or SIGTERM must not cut this clean-up short and orphan a child
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for c in reversed(children):  # simulator and server first, the ingester drains last
            if c.poll() is None:
                c.terminate()
        for c in children:
            try:
                c.wait(timeout=30)
            except subprocess.TimeoutExpired:
                c.kill()
        if broker:
            broker.stop()
