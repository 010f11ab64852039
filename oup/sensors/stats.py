"""Ingest counters, for ``oup ingest --stats`` and ``/metrics``.

The committed counters live in the store, written in the same transaction as the
observations they count; the live figures (in flight, backpressure) come from each
running ingester's status file. Together they satisfy, at any moment,

    received = stored + duplicates + dead-lettered + in flight

where a message a killed ingester had received but not committed is not counted: the
broker delivers it again and it is counted then.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from oup.store.base import COUNTERS
from oup.store.protocols import ObservationStore

STALE_AFTER = 10.0  # seconds: a status file not refreshed for this long is of a stopped ingester


def status_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "ingest"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_status(data_dir: Path) -> dict[str, dict]:
    """Status of the ingesters running on this machine, by client id."""
    out = {}
    for f in sorted(status_dir(data_dir).glob("*.json")):
        try:
            s = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if time.time() - s.get("updated_at", 0) < STALE_AFTER and _alive(s.get("pid", -1)):
            out[s["client_id"]] = s
    return out


def ingest_stats(store: ObservationStore, data_dir: Path) -> dict:
    committed = store.counters()
    live = live_status(data_dir)
    total = {k: sum(c[k] for c in committed.values()) for k in COUNTERS}
    total["in_flight"] = sum(s["in_flight"] for s in live.values())
    total["received"] += total["in_flight"]
    total["backpressure_seconds"] = sum(s["backpressure_seconds"] for s in live.values())
    total["store_busy_seconds"] = sum(s["store_busy_seconds"] for s in live.values())
    balanced = total["received"] == (total["stored"] + total["duplicates"]
                                     + total["dead_lettered"] + total["in_flight"])
    return {"total": total, "balanced": balanced, "ingesters": committed, "running": live}


def prometheus(stats: dict) -> str:
    t = stats["total"]
    lines = [
        "# HELP oup_ingest_messages_total MQTT messages taken by the ingesters, by outcome",
        "# TYPE oup_ingest_messages_total counter",
    ]
    for outcome in ("stored", "duplicates", "dead_lettered"):
        lines.append(f'oup_ingest_messages_total{{outcome="{outcome}"}} {t[outcome]}')
    lines += [
        "# HELP oup_ingest_received_total messages received (= stored + duplicates + "
        "dead-lettered + in flight)",
        "# TYPE oup_ingest_received_total counter",
        f"oup_ingest_received_total {t['received']}",
        "# HELP oup_ingest_in_flight messages received and not yet committed",
        "# TYPE oup_ingest_in_flight gauge",
        f"oup_ingest_in_flight {t['in_flight']}",
        "# HELP oup_ingest_observations_total observations written, new or corrected",
        "# TYPE oup_ingest_observations_total counter",
        f'oup_ingest_observations_total{{kind="new"}} {t["observations_stored"]}',
        f'oup_ingest_observations_total{{kind="correction"}} {t["observations_corrected"]}',
        "# HELP oup_ingest_backpressure_seconds_total time the broker was held back "
        "(in-flight messages at the Receive Maximum)",
        "# TYPE oup_ingest_backpressure_seconds_total counter",
        f"oup_ingest_backpressure_seconds_total {t['backpressure_seconds']:.3f}",
        "# HELP oup_ingest_store_busy_seconds_total time a ready batch waited for the database",
        "# TYPE oup_ingest_store_busy_seconds_total counter",
        f"oup_ingest_store_busy_seconds_total {t['store_busy_seconds']:.3f}",
        "# HELP oup_ingest_running ingesters running on this machine",
        "# TYPE oup_ingest_running gauge",
        f"oup_ingest_running {len(stats['running'])}",
    ]
    return "\n".join(lines) + "\n"
