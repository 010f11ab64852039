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

from oup.ports import free_port
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


RELAY_USER = "oup-relay"  # the one client that may publish change events
EVENTS_TOPIC = "oup/events/#"
STA_TOPIC = "v1.1/#"  # SensorThings notifications (sensors send to ingest/v1.1/...)


def acl_for(topics: list[str]) -> str:
    """Mosquitto's ACL for a catalogue's stream topics: anyone may publish and read the
    sensor topics and read the change events and the SensorThings notifications; only
    the relay publishes those."""
    # Everyone's rules are `pattern` lines, not anonymous `topic` lines: Mosquitto 2.0
    # (2.0.11 measured) checks a message queued for an offline session restored after a
    # restart against the session's `topic` rules, which it only learns when the client
    # connects again, so it drops the message; `pattern` rules hold for every session.
    lines = ["# Generated from the catalogue's stream topics (oup.catalog); see README.",
             "# Every client: sensors, ingesters, event subscribers."]
    lines += [f"pattern readwrite {t}" for t in dict.fromkeys(topics)]
    lines += [f"pattern read {EVENTS_TOPIC}", f"pattern read {STA_TOPIC}", "",
              f"user {RELAY_USER}", f"topic write {EVENTS_TOPIC}", f"topic write {STA_TOPIC}",
              ""]
    return "\n".join(lines)


def catalogue_topics() -> list[str]:
    from oup.catalog import load_catalog
    from oup.settings import get_settings

    return [t.topic for c in load_catalog(get_settings().catalog_dir) if c.stream
            for t in c.stream.topics]


def relay_password(data_dir: Path) -> str:
    """The relay's password for this broker folder: made once, kept there (0600)."""
    path = data_dir / "relay-password"
    if not path.exists():
        import secrets

        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(0o600)
        path.write_text(secrets.token_urlsafe(18))
    return path.read_text().strip()


def mosquitto_conf(port: int, data_dir: Path, ws_port: int | None = None,
                   topics: list[str] | None = None, log_all: bool = False) -> Path:
    """``config/mosquitto.conf`` with these listener ports (MQTT; WebSocket, or none),
    persistence folder, the ACL of the catalogue's topics and the relay's password; with
    ``log_all``, every packet in the log (``log_type all``), to trace a lost message."""
    data_dir.mkdir(parents=True, exist_ok=True)
    acl = data_dir / "mosquitto.acl"
    acl.write_text(acl_for(catalogue_topics() if topics is None else topics))
    passwd = data_dir / "mosquitto.passwd"
    passwd.unlink(missing_ok=True)
    subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b", "-c",
                    str(passwd), RELAY_USER, relay_password(data_dir)], check=True,
                   capture_output=True)
    lines, listeners, skip = [], 0, False
    for line in MOSQUITTO_CONF.read_text().splitlines():
        key = line.split(" ", 1)[0]
        if key == "listener":
            listeners += 1
            skip = listeners > 1 and ws_port is None
            line = f"listener {port if listeners == 1 else ws_port} 127.0.0.1"
        elif key == "protocol" and skip:
            continue
        elif key == "persistence_location":
            line = f"persistence_location {data_dir}/"
        elif key == "acl_file":
            line = f"acl_file {acl}"
        elif key == "password_file":
            line = f"password_file {passwd}"
        elif key == "log_type" and log_all:
            continue
        if not (skip and key == "listener"):
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
                 ws_port: int | None = None, log_all: bool = False):
        """``ws_port``: Mosquitto's WebSocket listener (default: a free port); ``log_all``:
        every packet in its log."""
        self.data_dir, self.port, self.log_all = Path(data_dir), port, log_all
        if kind == "auto":
            kind = "mosquitto" if shutil.which("mosquitto") else "embedded"
        self.kind = kind
        self.ws_port = (ws_port or free_port()) if kind == "mosquitto" else None
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        if self.kind == "embedded":
            return f"mqtt://{DEMO_USER}@127.0.0.1:{self.port}?protocol=3.1.1"
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def relay_url(self) -> str:
        """The URL ``oup events relay`` publishes with (Mosquitto: its own user)."""
        if self.kind == "embedded":
            return self.url
        pw = relay_password(self.data_dir / "mosquitto")
        return f"mqtt://{RELAY_USER}:{pw}@127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str | None:
        return f"ws://127.0.0.1:{self.ws_port}" if self.ws_port else None

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
            conf = mosquitto_conf(self.port, self.data_dir / "mosquitto", self.ws_port,
                                  log_all=self.log_all)
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
