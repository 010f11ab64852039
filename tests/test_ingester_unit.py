"""The ingester in-process, without a broker: what its network side does at the edges."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from iot_ingest.ingester import IngestOptions, Ingester
from iot_ingest.mqtt import Broker


def test_a_stopping_ingester_does_not_wait_on_a_full_queue():
    """Stopping with a full queue: the network thread must not block in the queue for
    ever (``loop_stop`` joins it: the ingester hung on SIGTERM under backpressure). What
    it could not queue is not acknowledged, so the broker delivers it again."""
    ing = Ingester(Broker.from_url("mqtt://127.0.0.1:1"), None, None,
                   IngestOptions(client_id="unit", receive_maximum=2))
    msg = SimpleNamespace(mid=1, qos=1, topic="oup/sensors/x/observations", payload=b"{}")
    ing._on_message(None, None, msg)
    ing._on_message(None, None, msg)  # the queue is full now
    blocked = threading.Thread(target=ing._on_message, args=(None, None, msg), daemon=True)
    blocked.start()
    blocked.join(0.5)
    assert blocked.is_alive()  # running: it waits for the writer (backpressure)
    t0 = time.monotonic()
    ing.stop()
    blocked.join(5)
    assert not blocked.is_alive() and time.monotonic() - t0 < 2
    assert ing.status.received == 2 and ing.queue.qsize() == 2


def test_metrics_add_up_the_workers(tmp_path):
    """Each worker counts in a file of its own; /metrics adds them all up."""
    import shutil

    from oup.http.metrics import Metrics

    m = Metrics(tmp_path)
    m.open(["/a", "/b/<x>"])
    for _ in range(3):
        m.observe("/a", 200, 0.003)
    m.observe("/nowhere", 404, 0.2)
    for suffix in ("counts", "json"):  # a second worker with the same counts
        shutil.copy(next(tmp_path.glob(f"*.{suffix}")), tmp_path / f"999999.{suffix}")
    text = m.render()
    assert 'oup_http_requests_total{route="/a",status="200"} 6' in text
    assert 'oup_http_requests_total{route="(unmatched)",status="404"} 2' in text
    assert 'oup_http_request_seconds_bucket{route="/a",le="0.005"} 6' in text
    assert 'oup_http_request_seconds_bucket{route="(unmatched)",le="0.1"} 0' in text
    assert 'oup_http_request_seconds_count{route="(unmatched)"} 2' in text
