"""The web pages' number, time and money formats: :mod:`runtrace.display`, which ``runtrace show`` shares."""

from __future__ import annotations

from ..display import DASH, duration, money, ns_to_iso, percent, short_id, tokens, when, when_short

__all__ = ["DASH", "duration", "money", "ns_to_iso", "percent", "short_id", "tokens", "when", "when_short"]
