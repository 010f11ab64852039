"""``python -m iot_ingest.embedded_broker PORT``: the demo's in-process MQTT broker (amqtt).

Configured the way it was measured to lose nothing with a long-lived publisher: anonymous
access off (clients give a user name), so sessions persist. Demo only: see broker.py.
"""
from __future__ import annotations

import asyncio
import logging
import sys

from .broker import EMBEDDED_WARNING


async def _serve(port: int) -> None:
    from amqtt.broker import Broker

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                    {"allow_anonymous": False}},
    }
    broker = Broker(config)
    await broker.start()
    logging.getLogger("oup.broker").warning(EMBEDDED_WARNING)
    await asyncio.Event().wait()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("amqtt").setLevel(logging.ERROR)
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 1883
    try:
        asyncio.run(_serve(port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
