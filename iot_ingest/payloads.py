"""Sensor payloads -> Observations, or a PayloadError that says why.

Formats, chosen per topic: flat JSON (``oup/sensors/{sensor}/observations``),
SensorThings Observation JSON (``ingest/v1.1/Datastreams({id})/Observations``: the
SensorThings path below ``ingest/``, where the platform's own notifications never are), SenML JSON
(RFC 8428) and The Things Stack v3 uplinks (``decoded_payload``). Whatever arrives,
decoding either yields observations or raises ``PayloadError`` - never anything else,
so a hostile message becomes a dead letter instead of stopping the ingester.
"""
from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta, timezone

from oup.sensors.observations import MAX_PAYLOAD, Observation

MAX_DEPTH = 32


class PayloadError(ValueError):
    """The payload cannot become an observation; the message is the dead letter's reason."""


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)


def _time(value, what: str) -> int:
    if not isinstance(value, str) or len(value) > 64:
        raise PayloadError(f"{what} must be an RFC 3339 string")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"{what} {value[:40]!r} is not RFC 3339") from None
    if t.tzinfo is None:
        raise PayloadError(f"{what} needs a time zone (e.g. Z)")
    return (t - _EPOCH) // _US


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PayloadError(f"{what} must be a number")
    value = float(value)
    if not math.isfinite(value):
        raise PayloadError(f"{what} must be finite")
    return value


def _json(raw: bytes):
    if len(raw) > MAX_PAYLOAD:
        raise PayloadError(f"payload of {len(raw)} bytes exceeds {MAX_PAYLOAD}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("payload is not UTF-8") from None
    # reject deep nesting before the parser recurses into it
    depth = level = 0
    for ch in text:
        if ch in "[{":
            level += 1
            depth = max(depth, level)
            if depth > MAX_DEPTH:
                raise PayloadError(f"JSON nested deeper than {MAX_DEPTH}")
        elif ch in "]}":
            level -= 1
    try:
        return json.loads(text, parse_constant=lambda c: float("nan"))
    except (ValueError, RecursionError) as exc:
        raise PayloadError(f"not JSON: {str(exc)[:80]}") from None


def single(doc, sensor_id: str) -> Observation:
    """One reading ({phenomenonTime, result, resultTime}) of ``sensor_id``, parsed."""
    if not isinstance(doc, dict):
        raise PayloadError("expected a JSON object")
    if "phenomenonTime" not in doc or "result" not in doc:
        raise PayloadError("phenomenonTime and result are required")
    result_time = doc.get("resultTime")
    return Observation(sensor_id, _time(doc["phenomenonTime"], "phenomenonTime"),
                       _number(doc["result"], "result"),
                       None if result_time is None else _time(result_time, "resultTime"))


_FLAT = re.compile(r"^oup/sensors/([A-Za-z0-9._:-]{1,128})/observations$")
_STA = re.compile(r"^(?:ingest/)?v1\.1/Datastreams\(([A-Za-z0-9._:'-]{1,128})\)/Observations$")


def decode(topic: str, raw: bytes, fmt: str | None = None) -> list[Observation]:
    """Observations in a message; ``fmt`` overrides what the topic implies."""
    if fmt is None:
        fmt = ("flat" if _FLAT.match(topic) else "sensorthings" if _STA.match(topic)
               else None)
    if fmt == "flat":
        m = _FLAT.match(topic)
        if not m:
            raise PayloadError(f"topic {topic[:80]!r} names no sensor")
        return [single(_json(raw), m.group(1))]
    if fmt == "sensorthings":
        m = _STA.match(topic)
        if not m:
            raise PayloadError(f"topic {topic[:80]!r} names no datastream")
        return [single(_json(raw), m.group(1).strip("'"))]
    if fmt == "senml":
        return _senml(_json(raw))
    if fmt == "tts":
        return _tts(_json(raw))
    raise PayloadError(f"no payload format for topic {topic[:80]!r}")


def _senml(pack) -> list[Observation]:
    if not isinstance(pack, list) or not pack:
        raise PayloadError("SenML: expected a non-empty array of records")
    out, base_name, base_time = [], "", 0.0
    for rec in pack:
        if not isinstance(rec, dict):
            raise PayloadError("SenML: every record must be an object")
        if "bn" in rec:
            if not isinstance(rec["bn"], str):
                raise PayloadError("SenML: bn must be a string")
            base_name = rec["bn"]
        if "bt" in rec:
            base_time = _number(rec["bt"], "SenML bt")
        if "v" not in rec:
            continue  # string, boolean or data values carry no numeric result
        name = base_name + (rec.get("n") or "")
        if not name or len(name) > 256:
            raise PayloadError("SenML: a record without a name")
        t = base_time + _number(rec.get("t", 0), "SenML t")
        if t < 2 ** 28:  # relative to now, RFC 8428 4.5.3: no stable key, refuse
            raise PayloadError("SenML: relative times are not accepted")
        if t >= 253402300800:  # year 10000
            raise PayloadError("SenML: time out of range")
        out.append(Observation(name, round(t * 1_000_000), _number(rec["v"], "SenML v")))
    if not out:
        raise PayloadError("SenML: no numeric values")
    return out


def _tts(doc) -> list[Observation]:
    try:
        eui = doc["end_device_ids"]["dev_eui"]
        up = doc["uplink_message"]
        f_cnt = up.get("f_cnt", 0)
        payload = up["decoded_payload"]
        received = up.get("received_at") or doc["received_at"]
    except (KeyError, TypeError):
        raise PayloadError("TTS uplink: end_device_ids.dev_eui, uplink_message."
                           "decoded_payload and received_at are required") from None
    if not isinstance(eui, str) or not re.fullmatch(r"[0-9A-Fa-f]{16}", eui):
        raise PayloadError("TTS uplink: dev_eui must be 16 hex digits")
    if not isinstance(f_cnt, int) or isinstance(f_cnt, bool) or f_cnt < 0:
        raise PayloadError("TTS uplink: f_cnt must be a non-negative integer")
    if not isinstance(payload, dict):
        raise PayloadError("TTS uplink: decoded_payload must be an object")
    when = _time(received, "received_at")
    # the frame counter restarts when a device re-joins: the session key id tells the
    # sessions apart, so a new session's frame 1 is not taken for a repeat of the last one
    session = up.get("session_key_id")
    if session is not None and (not isinstance(session, str) or len(session) > 128):
        raise PayloadError("TTS uplink: session_key_id must be a short string")
    key = f"{eui.upper()}:{session}:{f_cnt}" if session else f"{eui.upper()}:{f_cnt}"
    out = [Observation(f"{eui.upper()}:{k}", when, _number(v, f"decoded_payload.{k}"),
                       dedupe_key=f"{key}:{k}")
           for k, v in payload.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not out:
        raise PayloadError("TTS uplink: decoded_payload has no numeric field")
    return out
