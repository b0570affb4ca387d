"""The recorded coding-agent sessions (shared/agent-telemetry/samples) as LogEvents and SpanRecords.

Each line of a sample's ``logs.jsonl`` / ``traces.jsonl`` is one OTLP/HTTP
request the agent sent, decoded to OTLP/JSON. Both go through the store's real
OTLP/JSON decoders (store/otlp_logs.py, store/otlp.py).
"""

from __future__ import annotations

import base64
import copy
import json
import os
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from runtrace.agents.events import LogEvent
from runtrace.store.otlp import _hex_ids_to_base64, decode_otlp_json
from runtrace.store.otlp_logs import decode_logs_json
from runtrace.store.records import SpanRecord

SAMPLES = Path(os.environ.get("RUNTRACE_AGENT_SAMPLES", "/work/shared/agent-telemetry/samples"))
# Sessions recorded for the tests with the kit (resume, retried 5xx, API error, defaults...), trimmed;
# same format as the shared samples. See tests/fixtures/agents/README.md.
FIXTURES = Path(__file__).parent / "fixtures" / "agents"


def log_events(body: dict[str, Any]) -> list[LogEvent]:
    """One OTLP/JSON ExportLogsServiceRequest body -> LogEvents, through the store's logs decoder."""
    return decode_logs_json(json.dumps(body))


def protobuf_body(body: dict[str, Any], signal: str) -> bytes:
    """The OTLP/JSON body of a sample line as the OTLP/protobuf bytes the agent could have sent."""
    doc = copy.deepcopy(body)
    message: Any
    if signal == "traces":
        _hex_ids_to_base64(doc)
        message = ExportTraceServiceRequest()
    elif signal == "logs":
        for rl in doc.get("resourceLogs", []):
            for sl in rl.get("scopeLogs", []):
                for lr in sl.get("logRecords", []):
                    for key in ("traceId", "spanId"):
                        if lr.get(key):
                            lr[key] = base64.b64encode(bytes.fromhex(lr[key])).decode()
                        else:
                            lr.pop(key, None)
        message = ExportLogsServiceRequest()
    else:
        message = ExportMetricsServiceRequest()
    return bytes(json_format.ParseDict(doc, message, ignore_unknown_fields=True).SerializeToString())


def raw_requests(sample: str, signal: str, root: Path = SAMPLES) -> list[dict[str, Any]]:
    """The sample's request bodies of one signal, as OTLP/JSON documents."""
    return _lines(sample, signal, root)


def _lines(sample: str, signal: str, root: Path = SAMPLES) -> list[dict[str, Any]]:
    out = []
    path = root / sample / f"{signal}.jsonl"
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        doc = json.loads(line)
        if "body" in doc:
            out.append(doc["body"])
    return out


def log_requests(sample: str, root: Path = SAMPLES) -> list[list[LogEvent]]:
    """The sample's log requests, each as the LogEvents one POST /v1/logs would carry."""
    return [log_events(body) for body in _lines(sample, "logs", root)]


def trace_requests(sample: str) -> list[list[SpanRecord]]:
    """The sample's trace requests through the store's OTLP/JSON decoder."""
    return [decode_otlp_json(json.dumps(body)) for body in _lines(sample, "traces")]
