"""One OTLP log record, decoded: what the agent adapters read (defined with the store's records).

The store's logs decoder (``store/otlp_logs.py``) makes these and the store never
imports the agents, so the type lives in ``store/records.py``; this name is the
adapters' door to it.
"""

from __future__ import annotations

from ..store.records import LogEvent

__all__ = ["LogEvent"]
