"""Replaying dead letters (``oup deadletters --replay``): after a fix (a sensor declared,
a range widened), the dead letters are decoded and checked exactly as the ingester does
(``SensorRegistry.decode``) and the ones that pass are stored, in one batch."""
from __future__ import annotations

from oup.sensors.observations import DeadLetter
from oup.store import BatchResult, ObservationStore

from .sensors import SensorRegistry

REPLAY_INGESTER = "oup-deadletters-replay"  # whose counters the replayed batch adds to


def replay(letters: list[dict], store: ObservationStore,
           registry: SensorRegistry) -> tuple[dict[int, str | None], BatchResult]:
    """Store what can be stored of ``letters`` (as ``dead_letters()`` lists them); per dead
    letter ``None`` (stored) or why not, and the batch's counts. Marks them replayed."""
    outcomes, messages = {}, []
    for d in letters:
        payload = bytes(d["payload"] or b"")
        if len(payload) < d["payload_size"]:
            outcomes[d["id"]] = d["reason"]  # only a sample was kept: cannot be replayed
            continue
        decoded = registry.decode(d["topic"], payload)
        if isinstance(decoded, DeadLetter):
            outcomes[d["id"]] = decoded.reason
        else:
            outcomes[d["id"]] = None
            messages.append(decoded)
    sensors = {o.sensor_id for m in messages for o in m}
    res = store.write_batch(REPLAY_INGESTER, messages, registry.tables(sensors))
    store.mark_replayed(outcomes)
    return outcomes, res
