"""How numbers, times and money read on the web pages and in `runtrace show` (also the Jinja filters).

One place, so the runs table, the run page and the charts agree: an unknown
cost reads as "unpriced", never as $0.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from .store.timespec import from_ns

__all__ = ["duration", "money", "ns_to_iso", "percent", "short_id", "tokens", "when", "when_short"]

DASH = "\u2014"


def money(value: float | None) -> str:
    """USD with as many decimals as a small agent bill needs."""
    if value is None:
        return DASH
    if value == 0:
        return "$0.00"
    magnitude = abs(value)
    if magnitude >= 1:
        return f"${value:,.2f}"
    # Three significant digits, or four decimals if that is more: $0.1394, $0.00798, $0.00021, $0.50.
    decimals = min(9, max(4, 2 - math.floor(math.log10(magnitude))))
    text = f"{value:.{decimals}f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0").ljust(2, "0")
    return f"${whole}.{frac}"


def tokens(value: int | float | None) -> str:
    if value is None:
        return DASH
    return f"{int(value):,}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    if seconds == 0:
        return "0 s"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def percent(part: float, whole: float) -> str:
    if not whole:
        return DASH
    return f"{100 * part / whole:.1f}%"


def ns_to_iso(ns: int | None) -> str | None:
    moment = from_ns(ns)  # the one ns -> datetime conversion (store/timespec.py)
    return None if moment is None else moment.isoformat()


def _moment(value: str | int) -> datetime | None:
    if isinstance(value, int):
        return from_ns(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(timezone.utc) if moment.tzinfo is not None else moment


def when_short(value: str | int | None) -> str:
    """'Nov 20, 16:00' (UTC): what a table column has room for; the full time goes in a tooltip."""
    if value is None or value == "":
        return DASH
    moment = _moment(value)
    return str(value) if moment is None else f"{moment:%b} {moment.day}, {moment:%H:%M}"


def when(value: str | int | None) -> str:
    """An ISO string or epoch nanoseconds as 'YYYY-MM-DD HH:MM:SS' UTC."""
    if value is None or value == "":
        return DASH
    moment = _moment(value)
    if moment is None:
        return str(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def short_id(value: str | None, length: int = 8) -> str:
    return DASH if not value else value[:length]
