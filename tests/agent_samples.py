"""The recorded coding-agent sessions (shared/agent-telemetry/samples) as LogEvents and SpanRecords.

Each line of a sample's ``logs.jsonl`` / ``traces.jsonl`` is one OTLP/HTTP
request the agent sent, decoded to OTLP/JSON. Logs are read into LogEvents
here directly from the JSON (a small OTLP/JSON AnyValue reader: the store's
logs decoder lives on another branch; the lead switches this to it);
traces go through the store's real OTLP/JSON decoder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from runtrace.agents.events import LogEvent
from runtrace.store.otlp import decode_otlp_json
from runtrace.store.records import SpanRecord

SAMPLES = Path(os.environ.get("RUNTRACE_AGENT_SAMPLES", "/work/shared/agent-telemetry/samples"))


def _value(v: dict[str, Any]) -> Any:
    if "stringValue" in v:
        return v["stringValue"]
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "arrayValue" in v:
        return [_value(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return {kv["key"]: _value(kv.get("value", {})) for kv in v["kvlistValue"].get("values", [])}
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def _attrs(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    return {kv["key"]: _value(kv.get("value", {})) for kv in pairs}


def log_events(body: dict[str, Any]) -> list[LogEvent]:
    """One OTLP/JSON ExportLogsServiceRequest body -> LogEvents."""
    events: list[LogEvent] = []
    for rl in body.get("resourceLogs", []):
        resource = _attrs(rl.get("resource", {}).get("attributes", []))
        for sl in rl.get("scopeLogs", []):
            scope = sl.get("scope", {}).get("name") or None
            for lr in sl.get("logRecords", []):
                attributes = _attrs(lr.get("attributes", []))
                body_value = _value(lr["body"]) if "body" in lr else None
                name = attributes.get("event.name") or lr.get("eventName") or (
                    body_value if isinstance(body_value, str) else "")
                time_ns = int(lr.get("timeUnixNano") or 0) or int(lr.get("observedTimeUnixNano") or 0)
                events.append(LogEvent(time_ns=time_ns, name=str(name), attributes=attributes,
                                       resource=resource, scope_name=scope,
                                       trace_id=lr.get("traceId") or None, span_id=lr.get("spanId") or None,
                                       body=body_value))
    return events


def _lines(sample: str, signal: str) -> list[dict[str, Any]]:
    out = []
    for line in (SAMPLES / sample / f"{signal}.jsonl").read_text().splitlines():
        doc = json.loads(line)
        if "body" in doc:
            out.append(doc["body"])
    return out


def log_requests(sample: str) -> list[list[LogEvent]]:
    """The sample's log requests, each as the LogEvents one POST /v1/logs would carry."""
    return [log_events(body) for body in _lines(sample, "logs")]


def trace_requests(sample: str) -> list[list[SpanRecord]]:
    """The sample's trace requests through the store's OTLP/JSON decoder."""
    return [decode_otlp_json(json.dumps(body)) for body in _lines(sample, "traces")]
