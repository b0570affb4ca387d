"""One module for time: "7d" / ISO strings, datetimes and epoch nanoseconds (issue 10).

The store keeps times as integer nanoseconds since the epoch (UTC); people type
"24h", "7d" or an ISO date; JSON shows ISO-8601 UTC ending in ``Z``. Every
conversion between the three lives here so the CLI, the server, report, reprice
and review agree on what "since 2026-11-01" means (UTC midnight when no zone is
given). Pure functions on the standard library: any room may import it.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

__all__ = ["FIRST_DAY", "LAST_DAY", "TimeSpecError", "date_ns", "from_iso", "from_ns", "iso", "parse_when", "to_ns"]


class TimeSpecError(ValueError):
    """A time the user typed that is neither a duration like 24h / 7d nor an ISO date, or that the store cannot hold.

    ``reason`` is the message without the value (what a page puts after ``since=...``).
    """

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason if reason is not None else message


_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(value: str, *, now: datetime | None = None) -> datetime:
    """'24h', '7d', '30m' (ago, from ``now``), or an ISO date/time (UTC when no zone is given).

    Raises :class:`TimeSpecError` naming the value when it is neither.
    """
    text = value.strip()
    match = _RELATIVE.match(text)
    if match:
        return (now or datetime.now(timezone.utc)) - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TimeSpecError(f"{value!r} is neither a duration like 24h / 7d nor an ISO date") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def iso(ns: int | None) -> str | None:
    """Nanoseconds since the epoch as ISO-8601 UTC with microseconds and a ``Z``.

    The text up to the minute comes from a cache of minutes, so a timestamp
    costs two ``divmod``s and one f-string with one format: a run of 5,000 spans formats
    10,000 of these for ``get_run``, and ``datetime.strftime`` per call was a
    third of the run detail's time (a per-day cache with the clock done in
    arithmetic still cost 29 ms of the 5,000-span run's ~80 ms).
    """
    if ns is None:
        return None
    minutes, rest = divmod(ns, 60_000_000_000)  # floor division: times before 1970 work too
    prefix = _MINUTES.get(minutes)
    if prefix is None:
        prefix = _minute(minutes)
    second, micro = divmod(rest // 1000, 1_000_000)
    return f"{prefix}{_SECONDS[second]}{micro:06d}Z"


def _minute(minutes: int) -> str:
    """``YYYY-MM-DDTHH:MM:`` of a minute since the epoch, remembered (a bounded cache)."""
    if len(_MINUTES) >= _MINUTES_KEPT:
        _MINUTES.clear()
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=minutes)
    text = _MINUTES[minutes] = moment.strftime("%Y-%m-%dT%H:%M:")
    return text


_MINUTES: dict[int, str] = {}
_MINUTES_KEPT = 1 << 16  # about 45 days of minutes, a few MiB at most
_SECONDS = tuple(f"{second:02d}." for second in range(60))


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
FIRST_DAY, LAST_DAY = "1677-09-22", "2262-04-10"  # the whole days that fit in int64 nanoseconds
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_DAY_NS = 86_400 * 1_000_000_000


def _epoch_ns(moment: datetime) -> int:
    """Exact nanoseconds since the epoch (naive = UTC), unclamped; OverflowError past datetime's range."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def to_ns(moment: datetime) -> int:
    """An aware datetime (naive ones are taken as UTC) as integer nanoseconds since the epoch.

    Clamped to SQLite's 64-bit integers (years 1677-2262), so any date works as a
    query bound: ``since=datetime(3000, 1, 1)`` simply matches nothing.
    """
    return min(max(_epoch_ns(moment), _INT64_MIN), _INT64_MAX)


def from_ns(ns: int | None) -> datetime | None:
    """Epoch nanoseconds as an aware UTC datetime, to the microsecond (None stays None)."""
    return None if ns is None else _EPOCH + timedelta(microseconds=ns // 1000)


def from_iso(text: str | None) -> int | None:
    """An ISO-8601 time (as :func:`iso` writes them; naive = UTC) as epoch nanoseconds (None stays None)."""
    if text is None:
        return None
    return to_ns(datetime.fromisoformat(text.replace("Z", "+00:00")))


def date_ns(value: str, *, end_of_day: bool = False) -> int:
    """A date (YYYY-MM-DD) or ISO date-time someone typed as a bound, in epoch nanoseconds; never clamped.

    ``end_of_day``: a bare date is the end of that day (an ``until`` includes the
    whole day). Raises :class:`TimeSpecError` for text that is no date and for a
    time the store cannot hold (SQLite's integers: 1677-09-22 to 2262-04-10).
    """
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        reason = "is not a date (YYYY-MM-DD) or ISO date-time"
        raise TimeSpecError(f"{value!r} {reason}", reason) from None
    try:
        ns: int | None = _epoch_ns(moment)
    except OverflowError:  # e.g. 0001-01-01 with a positive offset
        ns = None
    if ns is not None and end_of_day and len(value) == 10:
        ns += _DAY_NS
    if ns is None or not _INT64_MIN <= ns <= _INT64_MAX:
        reason = f"is out of range: the store holds times from {FIRST_DAY} to {LAST_DAY} (UTC)"
        raise TimeSpecError(f"{value!r} {reason}", reason)
    return ns
