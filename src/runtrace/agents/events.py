"""One OTLP log record, decoded: what the agent adapters read (defined with the store's records), split by session.

The store's logs decoder (``store/otlp_logs.py``) makes these and the store never
imports the agents, so the type lives in ``store/records.py``; this module is the
adapters' door to it, and splits one request's events into sessions the same way
for every adapter.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from ..store.records import LogEvent, SpanRecord

__all__ = ["LogEvent", "records_by_session"]


def records_by_session(events: Sequence[LogEvent], session_of: Callable[[LogEvent], str | None],
                       order: Callable[[LogEvent], Any],
                       build: Callable[[str, list[LogEvent]], list[SpanRecord]]) -> list[SpanRecord]:
    """``build``'s records for each session among ``events``, its events in ``order``; events of no session are dropped.

    One OTLP request can hold several sessions' events (one exporter serves
    every process of a machine's agent), so every adapter splits by session first.
    """
    by_session: dict[str, list[LogEvent]] = defaultdict(list)
    for event in events:
        session = session_of(event)
        if session is not None:
            by_session[session].append(event)
    records: list[SpanRecord] = []
    for session_id, session_events in by_session.items():
        records.extend(build(session_id, sorted(session_events, key=order)))
    return records
