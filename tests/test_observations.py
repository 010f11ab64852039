"""Sensor payload decoding and observation storage (the ingester's building blocks):
every payload decodes or becomes a dead letter with a reason; nothing is stored twice;
late data is kept; a correction replaces."""
import json
import re

import pytest
from hypothesis import given, settings, strategies as st

from iot_ingest.payloads import PayloadError, decode
from oup.sensors.observations import MAX_PAYLOAD, DeadLetter, Observation, iso_us
from oup.store.observations import GeoPackageObservationStore


def us(text: str) -> int:
    from datetime import datetime
    from oup.sensors.observations import us_of
    return us_of(datetime.fromisoformat(text.replace("Z", "+00:00")))

FLAT = "oup/sensors/no2-delfshaven-01/observations"


def test_the_four_formats():
    [o] = decode(FLAT, b'{"phenomenonTime": "2026-11-28T10:00:00+01:00", "result": 21.5}')
    assert o == Observation("no2-delfshaven-01", us("2026-11-28T09:00:00Z"), 21.5)
    assert iso_us(o.phenomenon_time) == "2026-11-28T09:00:00Z"
    [o] = decode("v1.1/Datastreams(17)/Observations",
                 b'{"phenomenonTime": "2026-11-28T09:00:00Z", "result": 3, '
                 b'"resultTime": "2026-11-28T09:00:05Z"}')
    assert o.sensor_id == "17" and o.result_time == us("2026-11-28T09:00:05Z")
    pack = [{"bn": "urn:dev:mac:0024befffe804ff1:", "bt": 1.764e9, "n": "pm10", "v": 18.2},
            {"n": "pm25", "v": 9.1, "t": 60}, {"n": "label", "vs": "ok"}]
    obs = decode("senml/x", json.dumps(pack).encode(), "senml")
    assert [o.sensor_id for o in obs] == ["urn:dev:mac:0024befffe804ff1:pm10",
                                          "urn:dev:mac:0024befffe804ff1:pm25"]
    uplink = {"end_device_ids": {"device_id": "maas-1", "dev_eui": "70B3D57ED0012345"},
              "uplink_message": {"f_cnt": 42, "received_at": "2026-11-28T09:00:01Z",
                                 "session_key_id": "AYfg",
                                 "decoded_payload": {"water_level": 1.32, "battery": 3.6,
                                                     "status": "ok"}}}
    obs = decode("v3/oup@ttn/devices/maas-1/up", json.dumps(uplink).encode(), "tts")
    assert {o.sensor_id for o in obs} == {"70B3D57ED0012345:water_level",
                                          "70B3D57ED0012345:battery"}
    assert {o.dedupe_key for o in obs} == {"70B3D57ED0012345:AYfg:42:water_level",
                                           "70B3D57ED0012345:AYfg:42:battery"}


@pytest.mark.parametrize("raw, reason", [
    (b"{not json", "not JSON"),
    (b'{"phenomenonTime": "2026-11-28T09:00:00Z", "result": "high"}', "result must be a number"),
    (b'{"phenomenonTime": "yesterday", "result": 1}', "RFC 3339"),
    (b'{"phenomenonTime": "2026-11-28T09:00:00", "result": 1}', "time zone"),
    (b'{"phenomenonTime": "2026-11-28T09:00:00Z", "result": 1e999}', "finite"),
    (b'{"phenomenonTime": "2026-11-28T09:00:00Z", "result": NaN}', "finite"),
    (b"[" * 100 + b"]" * 100, "nested deeper"),
    (b" " * (MAX_PAYLOAD + 1), "exceeds"),
    (b"\xff\xfe", "UTF-8"),
    (b'{"result": 1}', "required"),
    (b"[1, 2]", "object"),
])
def test_bad_payloads_say_why(raw, reason):
    with pytest.raises(PayloadError, match=reason):
        decode(FLAT, raw)


@settings(max_examples=500, deadline=None)
@given(raw=st.one_of(st.binary(max_size=300),
                     st.recursive(st.one_of(st.none(), st.booleans(), st.floats(),
                                            st.integers(), st.text(max_size=20)),
                                  lambda c: st.one_of(st.lists(c, max_size=4),
                                                      st.dictionaries(st.text(max_size=12), c,
                                                                      max_size=4)),
                                  max_leaves=12).map(lambda v: json.dumps(v).encode())),
       fmt=st.sampled_from(["flat", "sensorthings", "senml", "tts", None]))
def test_hostile_payloads_decode_or_give_a_reason(raw, fmt):
    topic = "v1.1/Datastreams(9)/Observations" if fmt == "sensorthings" else FLAT
    try:
        for o in decode(topic, raw, fmt):
            assert o.sensor_id and isinstance(o.phenomenon_time, int)
    except PayloadError as exc:
        # The reason is the dead letter's: it must say what is wrong with the payload in
        # the decoder's own words, not pass on whatever a Python error said. The bytes are
        # checked first (UTF-8, nesting, JSON), so when they are at fault that is the
        # reason; past them, it is one of the reasons of the payload's format.
        reason = str(exc)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            assert reason == "payload is not UTF-8"
            return
        if reason.startswith("JSON nested deeper"):
            return  # the nesting scan is the decoder's own; nothing here to recount it
        try:
            json.loads(text, parse_constant=lambda c: float("nan"))
        except (ValueError, RecursionError):
            assert reason.startswith("not JSON: "), reason
            return
        assert re.fullmatch(FORMAT_REASONS[fmt or "flat"], reason), (fmt, reason)


_TIME_REASON = r"(phenomenonTime|resultTime|received_at) (must be an RFC 3339 string|" \
               r".* is not RFC 3339|needs a time zone \(e\.g\. Z\))"
_SINGLE = (r"expected a JSON object|phenomenonTime and result are required|"
           rf"{_TIME_REASON}|result must be (a number|finite)")
FORMAT_REASONS = {  # iot_ingest/payloads.py, reason by reason
    "flat": _SINGLE, "sensorthings": _SINGLE,
    "senml": r"SenML: (expected a non-empty array of records|every record must be an object|"
             r"bn must be a string|a record without a name|relative times are not accepted|"
             r"time out of range|no numeric values)|SenML (bt|t|v) must be (a number|finite)",
    "tts": r"TTS uplink: .+|" + _TIME_REASON + r"|decoded_payload\..* must be finite",
}


def test_no_duplicates_late_data_and_corrections(tmp_path):
    store = GeoPackageObservationStore(tmp_path / "obs.gpkg")
    t9, t8 = us("2026-11-28T09:00:00Z"), us("2026-11-28T08:00:00Z")
    a = Observation("s1", t9, 1.0, t9 + 1_000_000)
    late = Observation("s1", t8, 0.5)
    fix = Observation("s1", t9, 1.5, t9 + 300_000_000)
    stale = Observation("s1", t9, 9.9, t9)
    r = store.write_batch("t", [[a], [a], [late]])
    assert (r.stored, r.duplicates, r.observations_corrected) == (2, 1, 0)
    r = store.write_batch("t", [[fix], [stale], [a]])
    assert (r.stored, r.duplicates, r.observations_corrected) == (1, 2, 1)
    assert store.observations("s1") == [("s1", t8, 0.5, None), ("s1", t9, 1.5, fix.result_time)]
    lora = Observation("E:level", t9, 1.0, dedupe_key="E:42:level")
    again = Observation("E:level", t9 + 2_000_000, 1.0, dedupe_key="E:42:level")
    r = store.write_batch("t", [[lora], [again]])  # same frame through two gateways
    assert (r.stored, r.duplicates) == (1, 1)
    c = store.counters()["t"]
    assert c["received"] == 8 == c["stored"] + c["duplicates"] + c["dead_lettered"]


def test_dead_letters_keep_a_bounded_payload_and_the_reason(tmp_path):
    store = GeoPackageObservationStore(tmp_path / "obs.gpkg")
    store.write_batch("t", [DeadLetter(FLAT, b"x" * 100_000, "payload of 100000 bytes exceeds 65536"),
                            DeadLetter(FLAT, b'{"result": 1}', "phenomenonTime and result are required")])
    big, small = store.dead_letters()
    assert big["payload_size"] == 100_000 and len(big["payload"]) == 4096
    assert big["reason"].startswith("payload of") and big["topic"] == FLAT
    assert small["payload"] == b'{"result": 1}'  # kept whole: it can be replayed
    assert store.counters()["t"]["dead_lettered"] == 2
