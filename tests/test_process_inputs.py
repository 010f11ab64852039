"""The inputs processes share (oup.processes): instants, where the one rule that differs
is a time without a zone (changes: UTC; sun-and-shadow: refused), and boxes."""
from datetime import datetime, timezone

import pytest

from oup.processes import InputError, box, instant
from oup.processes import changes, sun_and_shadow


def test_an_instant_with_its_zone_is_read_alike_by_every_rule():
    for zoneless in ("utc", "refused"):
        assert instant("2026-06-21T12:00:00+02:00", "start", zoneless) == \
            datetime(2026, 6, 21, 10, 0, tzinfo=timezone.utc)
        assert instant("2026-06-21T10:00:00Z", "start", zoneless) == \
            datetime(2026, 6, 21, 10, 0, tzinfo=timezone.utc)


def test_a_time_without_a_zone_is_utc_or_refused_naming_the_input():
    assert instant("2026-06-21T10:00:00", "from", "utc") == \
        datetime(2026, 6, 21, 10, 0, tzinfo=timezone.utc)
    with pytest.raises(InputError, match="time zone") as refused:
        instant("2026-06-21T10:00:00", "start")
    assert refused.value.parameter == "start"
    with pytest.raises(InputError, match="not an RFC 3339 instant") as bad:
        instant("noon", "to", "utc")
    assert bad.value.parameter == "to"


def test_boxes_in_order_and_the_shared_declarations():
    assert box([1, 2, 1, 3], "bbox") == (1, 2, 1, 3)  # a line is an area to changes
    assert box(None, "bbox") is None
    with pytest.raises(InputError) as flat:
        box([1, 2, 1, 3], "area", empty=False)  # not to sun-and-shadow
    assert flat.value.parameter == "area"
    with pytest.raises(InputError):
        box([2, 2, 1, 3], "bbox")
    assert changes.DESCRIPTION["inputs"]["bbox"]["schema"] == \
        sun_and_shadow.DESCRIPTION["inputs"]["area"]["schema"]
    assert changes.DESCRIPTION["inputs"]["bbox"]["minOccurs"] == 0
    assert "minOccurs" not in sun_and_shadow.DESCRIPTION["inputs"]["area"]
