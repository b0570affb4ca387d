"""The /v1/logs decoder's per-record checks: valid ids and times read inline, every bad one named by its place."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

from runtrace.store.errors import OTLPDecodeError
from runtrace.store.otlp_logs import decode_logs_protobuf
from runtrace.store.records import LogEvent

TRACE = bytes(range(1, 17))
SPAN = bytes(range(1, 9))


def _body(*records: LogRecord) -> bytes:
    request = ExportLogsServiceRequest(resource_logs=[ResourceLogs(
        resource={"attributes": [KeyValue(key="service.name", value=AnyValue(string_value="claude-code"))]},
        scope_logs=[ScopeLogs(scope={"name": "com.anthropic.claude_code.events"}, log_records=list(records))])])
    return request.SerializeToString()


def _record(**fields: object) -> LogRecord:
    return LogRecord(attributes=[KeyValue(key="event.name", value=AnyValue(string_value="api_request"))],
                     **fields)  # type: ignore[arg-type]


def test_valid_records_decode_to_the_same_events() -> None:
    events = decode_logs_protobuf(_body(
        _record(time_unix_nano=5, trace_id=TRACE, span_id=SPAN),
        _record(time_unix_nano=0, observed_time_unix_nano=7),  # no time: the observed time
        _record(time_unix_nano=9, trace_id=bytes(16), span_id=bytes(8))))  # all-zero ids: none
    assert events == [
        LogEvent(5, "api_request", {"event.name": "api_request"}, {"service.name": "claude-code"},
                 "com.anthropic.claude_code.events", TRACE.hex(), SPAN.hex(), None),
        LogEvent(7, "api_request", {"event.name": "api_request"}, {"service.name": "claude-code"},
                 "com.anthropic.claude_code.events", None, None, None),
        LogEvent(9, "api_request", {"event.name": "api_request"}, {"service.name": "claude-code"},
                 "com.anthropic.claude_code.events", None, None, None),
    ]
    assert events[0].resource is not events[1].resource  # each event has its own copy


@pytest.mark.parametrize(("bad", "message"), [
    ({"trace_id": b"\x01" * 5}, "logRecords[1]: traceId must be 16 bytes, got 5"),
    ({"span_id": b"\x01" * 9}, "logRecords[1]: spanId must be 8 bytes, got 9"),
    ({"time_unix_nano": 2**63}, "logRecords[1]: timeUnixNano 9223372036854775808 is past the year 2262"),
    ({"time_unix_nano": 0, "observed_time_unix_nano": 2**64 - 1}, "logRecords[1]: observedTimeUnixNano"),
])
def test_a_bad_id_or_time_is_named_by_its_place(bad: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"time_unix_nano": 1, **bad}
    with pytest.raises(OTLPDecodeError) as caught:
        decode_logs_protobuf(_body(_record(time_unix_nano=1), _record(**fields)))
    assert f"resourceLogs[0].scopeLogs[0].{message}" in str(caught.value)
