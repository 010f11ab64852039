"""MQTT -> store ingest of sensor observations.

Built so far: payload decoding (``payloads``) and the observation store with its
dedupe/correction rules and dead letters (``oup.store.observations``). The MQTT client,
batching with acknowledgement after commit, time slices and EDR are still to come.
"""
