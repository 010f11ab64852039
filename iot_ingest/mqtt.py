"""MQTT connection settings shared by the ingester and the simulator (paho-mqtt 2.x, MQTT 5)."""
from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


class BrokerURLError(ValueError):
    """OUP_MQTT_URL cannot be used; the message says why."""


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    mqtt5: bool = True  # ?protocol=3.1.1 for brokers without MQTT 5 (the embedded demo one)

    @classmethod
    def from_url(cls, url: str) -> "Broker":
        """``mqtt://[user[:password]@]host[:port][?protocol=3.1.1]`` or ``mqtts://...`` (TLS)."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
            raise BrokerURLError(f"{url!r}: expected mqtt://host:port or mqtts://host:port")
        tls = parts.scheme in ("mqtts", "ssl")
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise BrokerURLError(f"{url!r}: the port is not a number") from None
        protocol = parse_qs(parts.query).get("protocol", ["5"])[-1]
        if protocol not in ("5", "3.1.1"):
            raise BrokerURLError(f"{url!r}: protocol must be 5 or 3.1.1")
        return cls(parts.hostname, port, tls, unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None, protocol == "5")

    def client(self, client_id: str, manual_ack: bool = False) -> mqtt.Client:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                        protocol=mqtt.MQTTv5 if self.mqtt5 else mqtt.MQTTv311,
                        clean_session=None if self.mqtt5 else False, manual_ack=manual_ack)
        if self.username:
            c.username_pw_set(self.username, self.password)
        if self.tls:
            c.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        return c

    def connect_args(self, session_expiry: int, receive_maximum: int | None = None) -> dict:
        """connect() arguments that keep the session: clean_start and properties (MQTT 5);
        MQTT 3.1.1 keeps it through clean_session=False, set on the client."""
        if not self.mqtt5:
            return {}
        return {"clean_start": False,
                "properties": connect_properties(session_expiry, receive_maximum)}


def connect_properties(session_expiry: int, receive_maximum: int | None = None) -> Properties:
    """CONNECT properties: keep the session (and its queued messages) across restarts for
    ``session_expiry`` seconds; ``receive_maximum`` caps the unacknowledged QoS 1 messages the
    broker may send us, which is what makes a slow writer push back instead of drop."""
    p = Properties(PacketTypes.CONNECT)
    p.SessionExpiryInterval = session_expiry
    if receive_maximum:
        p.ReceiveMaximum = receive_maximum
    return p


def session_end() -> Properties:
    """DISCONNECT properties that end the session now (MQTT 5): the broker forgets its
    subscriptions and queue instead of keeping them for the session expiry."""
    p = Properties(PacketTypes.DISCONNECT)
    p.SessionExpiryInterval = 0
    return p
