"""store/timespec.py: the one place "7d" / ISO strings, datetimes and epoch ns meet."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from runtrace.store.timespec import TimeSpecError, iso, parse_when, to_ns

NOW = datetime(2026, 12, 1, 13, 0, tzinfo=timezone.utc)
MIDNIGHT_NS = 1_796_083_200 * 1_000_000_000  # 2026-12-01T00:00:00Z


def test_a_bare_date_is_utc_midnight() -> None:
    when = parse_when("2026-12-01")
    assert when == datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert to_ns(when) == MIDNIGHT_NS
    assert iso(MIDNIGHT_NS) == "2026-12-01T00:00:00.000000Z"


@pytest.mark.parametrize(("text", "ago"), [("7d", timedelta(days=7)), ("24h", timedelta(hours=24)),
                                           ("30m", timedelta(minutes=30)), ("2w", timedelta(weeks=2)),
                                           (" 90 s ", timedelta(seconds=90))])
def test_durations_count_back_from_now(text: str, ago: timedelta) -> None:
    assert parse_when(text, now=NOW) == NOW - ago


def test_an_iso_time_with_an_offset_keeps_its_instant() -> None:
    when = parse_when("2026-12-01T02:00:00+02:00")
    assert to_ns(when) == MIDNIGHT_NS
    assert to_ns(parse_when("2026-12-01T00:00:00Z")) == MIDNIGHT_NS
    assert to_ns(parse_when("2026-12-01T00:00:00.000001")) == MIDNIGHT_NS + 1_000


@pytest.mark.parametrize("text", ["yesterday", "7x", "2026-13-01", ""])
def test_bad_input_names_the_value(text: str) -> None:
    with pytest.raises(TimeSpecError) as caught:
        parse_when(text)
    assert str(caught.value) == f"{text!r} is neither a duration like 24h / 7d nor an ISO date"
    assert isinstance(caught.value, ValueError)


def test_to_ns_clamps_to_sqlite_integers_and_takes_naive_as_utc() -> None:
    assert to_ns(datetime(3000, 1, 1)) == 2**63 - 1
    assert to_ns(datetime(1, 1, 1, tzinfo=timezone.utc)) == -(2**63)
    assert to_ns(datetime(2026, 12, 1)) == MIDNIGHT_NS
    assert iso(None) is None


def test_iso_round_trips_through_from_iso_and_from_ns() -> None:
    from runtrace.store.timespec import from_iso, from_ns

    ns = MIDNIGHT_NS + 3_723_456_789_000  # 01:02:03.456789
    assert iso(ns) == "2026-12-01T01:02:03.456789Z"
    assert from_iso(iso(ns)) == ns
    assert from_iso("2026-12-01T02:02:03.456789+01:00") == ns
    assert from_iso("2026-12-01T01:02:03.456789") == ns  # naive = UTC
    assert from_iso(None) is None and from_ns(None) is None
    assert from_ns(ns + 999) == datetime(2026, 12, 1, 1, 2, 3, 456789, tzinfo=timezone.utc)
    assert to_ns(from_ns(ns)) == ns  # type: ignore[arg-type]


def test_a_typed_date_bound_is_exact_and_says_what_is_wrong() -> None:
    from runtrace.store.timespec import date_ns

    assert date_ns("2026-12-01") == MIDNIGHT_NS
    assert date_ns("2026-12-01", end_of_day=True) == MIDNIGHT_NS + 86_400 * 1_000_000_000
    assert date_ns("2026-12-01T00:00:00Z", end_of_day=True) == MIDNIGHT_NS  # a time is the time itself
    with pytest.raises(TimeSpecError) as bad:
        date_ns("yesterday")
    assert str(bad.value) == "'yesterday' is not a date (YYYY-MM-DD) or ISO date-time"
    assert bad.value.reason == "is not a date (YYYY-MM-DD) or ISO date-time"
    for far in ("1600-01-01", "2300-01-01", "0001-01-01T00:00:00+05:00"):
        with pytest.raises(TimeSpecError) as out:
            date_ns(far)
        assert out.value.reason == "is out of range: the store holds times from 1677-09-22 to 2262-04-10 (UTC)"


def test_the_pages_and_the_run_sentences_convert_times_only_through_timespec() -> None:
    """issue 10 item 4: one module for time; the web pages and explain keep no converter of their own."""
    from runtrace import explain
    from runtrace.server import pages

    assert not hasattr(explain, "ns") and not hasattr(pages, "_EPOCH") and not hasattr(pages, "queries")
    assert pages.reads.__name__ == "runtrace.server.reads"


def _strftime_iso(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{rest // 1000:06d}Z"


@pytest.mark.parametrize("ns", [0, 1, 999, 59_999_999_999, 60_000_000_000, 86_399_999_999_999, -1, -999,
                                -60_000_000_000, -60_000_000_001, MIDNIGHT_NS - 1, 2**63 - 1, -(2**63)])
def test_iso_agrees_with_strftime_at_minute_day_and_epoch_edges(ns: int) -> None:
    assert iso(ns) == _strftime_iso(ns)


def test_iso_agrees_with_strftime_over_many_times_and_its_minute_cache_stays_bounded() -> None:
    import random

    from runtrace.store import timespec

    rng = random.Random(14)
    for _ in range(100_000):
        ns = rng.randrange(-(2**63), 2**63)
        assert iso(ns) == _strftime_iso(ns)
    assert len(timespec._MINUTES) <= timespec._MINUTES_KEPT
