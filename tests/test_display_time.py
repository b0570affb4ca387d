"""Issue 10 item 4 (one time helper): the pages' and `runtrace show`'s times come from store/timespec.py.

display.py divided nanoseconds by 1e9 in floating point, which rounds: a run that
ended at 14:13:20.999999999 read 14:13:21 on the page while its JSON said
14:13:20.999999Z. Both now truncate to the microsecond the same way.
"""

from __future__ import annotations

from runtrace.display import ns_to_iso, when, when_short
from runtrace.store.timespec import from_ns, iso

LATE = 1_790_000_000_999_999_999  # 2026-09-21 14:13:20.999999999 UTC
ODD = 1_790_000_000_123_456_789


def test_display_and_the_json_agree_to_the_microsecond() -> None:
    assert iso(ODD) == "2026-09-21T14:13:20.123456Z"
    assert ns_to_iso(ODD) == "2026-09-21T14:13:20.123456+00:00" == from_ns(ODD).isoformat()  # type: ignore[union-attr]
    assert ns_to_iso(None) is None


def test_a_time_just_before_a_second_stays_in_that_second() -> None:
    assert iso(LATE) == "2026-09-21T14:13:20.999999Z"
    assert when(LATE) == "2026-09-21 14:13:20" == when(iso(LATE))
    assert when_short(LATE) == "Sep 21, 14:13"
