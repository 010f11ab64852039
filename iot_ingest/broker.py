"""Run a broker for the demo and the tests: Mosquitto when installed, else an embedded one.

Mosquitto runs with ``config/mosquitto.conf`` (persistence on, queue caps raised), only
its listener port and persistence folder changed. The embedded broker (amqtt) is for the
demo only: it speaks MQTT 3.1.1 (no shared subscriptions, no Receive Maximum), and as
measured it loses queued QoS 1 messages when a publisher disconnects and keeps no
sessions with anonymous access on. It therefore runs with anonymous access off and the
demo's clients log in; it says all this in its log.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from oup.settings import ROOT

MOSQUITTO_CONF = ROOT / "config" / "mosquitto.conf"
DEMO_USER = "oup-demo"
EMBEDDED_WARNING = (
    "EMBEDDED MQTT BROKER (amqtt) - FOR THE DEMO ONLY. It speaks MQTT 3.1.1 only (no shared "
    "subscriptions, no Receive Maximum) and can lose queued QoS 1 messages when a publisher "
    "disconnects. Use Mosquitto with config/mosquitto.conf (OUP_MQTT_URL) for anything real.")


class BrokerError(RuntimeError):
    """The broker did not start."""


def wait_port(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise BrokerError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


def mosquitto_conf(port: int, data_dir: Path, log_all: bool = False) -> Path:
    """``config/mosquitto.conf`` with this listener port and persistence folder; with
    ``log_all``, every packet in the log (``log_type all``), to trace a lost message."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for line in MOSQUITTO_CONF.read_text().splitlines():
        key = line.split(" ", 1)[0]
        if key == "listener":
            line = f"listener {port} 127.0.0.1"
        elif key == "persistence_location":
            line = f"persistence_location {data_dir}/"
        elif key == "log_type" and log_all:
            continue
        lines.append(line)
    if log_all:
        lines.append("log_type all")
    lines.append(f"log_dest file {data_dir / 'mosquitto.log'}")
    if os.geteuid() == 0:
        # Started by root (CI, a container), Mosquitto would switch to user mosquitto and
        # then silently fail to write its persistence file into root's folders: a restart
        # would lose every queued message. This launcher's broker stays the caller.
        lines.append("user root")
    conf = data_dir / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


class BrokerProcess:
    """A broker in a child process on 127.0.0.1:``port``."""

    def __init__(self, data_dir: Path, port: int = 1883, kind: str = "auto",
                 log_all: bool = False):
        self.data_dir, self.port, self.log_all = Path(data_dir), port, log_all
        if kind == "auto":
            kind = "mosquitto" if shutil.which("mosquitto") else "embedded"
        self.kind = kind
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        if self.kind == "embedded":
            return f"mqtt://{DEMO_USER}@127.0.0.1:{self.port}?protocol=3.1.1"
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> "BrokerProcess":
        # Another broker on the port (a system Mosquitto with its stock configuration)
        # would answer in ours' place: say so instead of using it unknowingly.
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", self.port)) == 0:
                raise BrokerError(f"127.0.0.1:{self.port} is taken (a system Mosquitto?): "
                                  "point OUP_MQTT_URL at it, or choose OUP_LIVE_BROKER_PORT")
        if self.kind == "mosquitto":
            exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
            if not Path(exe).exists():
                raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
            conf = mosquitto_conf(self.port, self.data_dir / "mosquitto", self.log_all)
            cmd = [exe, "-c", str(conf)]
        else:
            cmd = [sys.executable, "-m", "iot_ingest.embedded_broker", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                                     if self.kind == "mosquitto" else None)
        try:
            wait_port("127.0.0.1", self.port)
            if self.proc.poll() is not None:
                raise BrokerError(f"the broker exited with code {self.proc.returncode}")
        except BrokerError:
            self.stop()
            raise
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM lets Mosquitto write its persistence file; SIGKILL does not."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
