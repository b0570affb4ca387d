"""One OTLP log record, decoded: what the agent adapters read.

Kept free of OTLP and protobuf types so the adapters are pure functions of
plain values (ids lowercase hex, attribute values as ``store.otlp`` decodes them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LogEvent:
    time_ns: int  # the record's time, else its observed time
    name: str  # attribute ``event.name``, else the OTLP eventName, else a string body
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope_name: str | None
    trace_id: str | None
    span_id: str | None
    body: Any
