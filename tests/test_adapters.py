"""The two adapters agree (DESIGN section 6): SDK spans adapted directly == the same spans sent
through the standard OTLP encoder and decoded as protobuf or as OTLP/JSON."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from runtrace import semconv as sc
from runtrace.store.db import Store
from runtrace.store.errors import OTLPDecodeError
from runtrace.store.exporter import StoreSpanExporter
from runtrace.store.otlp import decode_otlp_json, decode_otlp_protobuf, encode_otlp_protobuf
from runtrace.store.queries import get_run
from runtrace.store.records import EventRecord
from runtrace.store.sdk_adapter import records_from_sdk


def make_sdk_spans() -> tuple[ReadableSpan, ...]:
    """A small agent run made with the real SDK: run span, nested LLM and tool spans, another scope."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({
        sc.SERVICE_NAME: "support-agent", "service.version": "1.2.3", "host.cores": 2,
        "process.command_args": ("python", "agent.py"),
    }))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("runtrace", "0.1.0")
    other = provider.get_tracer("opentelemetry.instrumentation.httpx")
    run = {sc.RUN_ID: "01JRUN"}
    with tracer.start_as_current_span("run fix flaky test", attributes={
            **run, sc.SPAN_ROLE: sc.ROLE_RUN, sc.RUN_NAME: "fix flaky test", sc.PROJECT: "billing",
            sc.BUDGET_MAX_COST_USD: 2.0, sc.BUDGET_MAX_TOOL_CALLS: 40}) as run_span:
        with tracer.start_as_current_span("chat gpt-5.5", kind=SpanKind.CLIENT, attributes={
                **run, sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_PROVIDER_NAME: "openai",
                sc.GEN_AI_REQUEST_MODEL: "gpt-5.5", sc.GEN_AI_RESPONSE_MODEL: "gpt-5.5-2026-01-01",
                sc.GEN_AI_RESPONSE_FINISH_REASONS: ("tool_calls", "stop"),
                sc.GEN_AI_REQUEST_STOP_SEQUENCES: ["\n\n", "END"],
                sc.GEN_AI_REQUEST_TEMPERATURE: 0.2, sc.GEN_AI_USAGE_INPUT_TOKENS: 12_000,
                sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 8_000, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 900,
                sc.COST_USD: 0.051, sc.COST_SOURCE: sc.SOURCE_GENAI_PRICES,
                sc.REQUESTED_TOOL_NAMES: ("read_file",), "flags": (True, False), "ints": (1, 2, 3),
                "empty": (), "big": 2**62, "neg": -7, "nested": {"b": [1, {"c": None}], "a": b"\x00\xff"},
                "raw": b"\x01\x02", "mixed": [1, "two"], "with_none": ["x", None]}) as chat:
            with other.start_as_current_span("POST", kind=SpanKind.CLIENT) as http:
                http.set_attribute("http.response.status_code", 200)
            chat.add_event("gen_ai.choice", {"index": 0, "finish_reason": "tool_calls"})
            chat.add_event("bare")
        with tracer.start_as_current_span("execute_tool read_file", attributes={
                **run, sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: "read_file",
                sc.TOOL_REPEATED_READ: True, sc.TOOL_REPEATED_READ_TOKENS: 1500}) as tool:
            tool.record_exception(ValueError("no such file"))
            tool.set_status(Status(StatusCode.ERROR, "ValueError: no such file"))
        with tracer.start_as_current_span("ok step") as ok:
            ok.set_status(Status(StatusCode.OK))
        run_span.set_attribute(sc.RUN_OUTCOME, sc.OUTCOME_ACCEPTED)
    provider.shutdown()
    return exporter.get_finished_spans()


def otlp_json(spans: tuple[ReadableSpan, ...]) -> str:
    """The standard encoder's request as OTLP/JSON: protobuf's JSON mapping with hex ids (the spec)."""
    document = json.loads(json_format.MessageToJson(encode_spans(spans), use_integers_for_enums=True))
    for rs in document["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(document)


def test_direct_protobuf_and_json_records_are_identical() -> None:
    spans = make_sdk_spans()
    direct = records_from_sdk(spans)
    via_protobuf = decode_otlp_protobuf(encode_spans(spans).SerializeToString())
    via_json = decode_otlp_json(otlp_json(spans))
    assert len(direct) == 5
    assert via_protobuf == direct
    assert via_json == direct
    assert decode_otlp_json(otlp_json(spans).encode()) == direct  # bytes bodies too

    by_name = {r.name: r for r in direct}
    chat = by_name["chat gpt-5.5"]
    run = by_name["run fix flaky test"]
    assert chat.parent_span_id == run.span_id and run.parent_span_id is None
    assert by_name["POST"].parent_span_id == chat.span_id and by_name["POST"].scope_name == (
        "opentelemetry.instrumentation.httpx")
    assert by_name["POST"].scope_version is None
    assert chat.kind == "CLIENT" and run.kind == "INTERNAL"
    assert chat.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls", "stop")
    assert chat.attributes[sc.GEN_AI_REQUEST_STOP_SEQUENCES] == ("\n\n", "END")
    assert chat.attributes["empty"] == () and chat.attributes["flags"] == (True, False)
    assert chat.attributes["big"] == 2**62 and chat.attributes["neg"] == -7
    assert chat.attributes["nested"] == '{"a":"AP8=","b":[1,{"c":null}]}'
    assert chat.attributes["raw"] == "AQI="
    assert chat.attributes["mixed"] == (1, "two")
    assert chat.attributes["with_none"] == '["x",null]'
    assert chat.events == (EventRecord("gen_ai.choice", chat.events[0].time_ns,
                                       {"index": 0, "finish_reason": "tool_calls"}),
                           EventRecord("bare", chat.events[1].time_ns, {}))
    tool = by_name["execute_tool read_file"]
    assert (tool.status_code, tool.status_message) == ("ERROR", "ValueError: no such file")
    assert tool.events[0].name == "exception"
    assert tool.events[0].attributes["exception.type"] == "ValueError"
    assert (by_name["ok step"].status_code, by_name["ok step"].status_message) == ("OK", None)
    assert (run.status_code, run.status_message) == ("UNSET", None)
    assert run.resource["process.command_args"] == ("python", "agent.py")
    assert run.resource["host.cores"] == 2 and run.resource[sc.SERVICE_NAME] == "support-agent"
    assert all(len(r.trace_id) == 32 and len(r.span_id) == 16 and r.end_ns >= r.start_ns > 0
               for r in direct)


def test_encode_round_trips_records() -> None:
    records = records_from_sdk(make_sdk_spans())
    assert decode_otlp_protobuf(encode_otlp_protobuf(records)) == records
    assert decode_otlp_protobuf(encode_otlp_protobuf([])) == []


def test_json_per_spec_enum_ints_string_int64_unknown_fields_uppercase_hex() -> None:
    body = {
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "js-agent"}}]},
            "futureField": {"x": 1},
            "scopeSpans": [{
                "scope": {"name": "other-sdk", "version": "9"},
                "spans": [{
                    "traceId": "5B8EFFF798038103D269B633813FC60C",
                    "spanId": "EEE19B7EC3C1B174",
                    "parentSpanId": "",
                    "name": "chat claude",
                    "kind": 3,
                    "startTimeUnixNano": "1795000000000000000",
                    "endTimeUnixNano": 1795000001500000000,
                    "attributes": [
                        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1200"}},
                        {"key": "ratio", "value": {"doubleValue": 0.5}},
                        {"key": "ok", "value": {"boolValue": True}},
                        {"key": "list", "value": {"arrayValue": {"values": [{"stringValue": "a"},
                                                                            {"intValue": 2}]}}},
                        {"key": "kv", "value": {"kvlistValue": {"values": [
                            {"key": "z", "value": {"stringValue": "last"}},
                            {"key": "a", "value": {"intValue": "1"}}]}}},
                        {"key": "blob", "value": {"bytesValue": "AAE="}},
                        {"key": "nothing", "value": {}},
                    ],
                    "status": {"code": 2, "message": "overloaded"},
                    "events": [{"timeUnixNano": "1795000000500000000", "name": "retry",
                                "attributes": [{"key": "n", "value": {"intValue": 1}}]}],
                }],
            }],
        }],
    }
    (record,) = decode_otlp_json(json.dumps(body))
    assert record.trace_id == "5b8efff798038103d269b633813fc60c"
    assert record.span_id == "eee19b7ec3c1b174" and record.parent_span_id is None
    assert (record.kind, record.status_code, record.status_message) == ("CLIENT", "ERROR", "overloaded")
    assert (record.start_ns, record.end_ns) == (1_795_000_000_000_000_000, 1_795_000_001_500_000_000)
    assert record.attributes == {"gen_ai.usage.input_tokens": 1200, "ratio": 0.5, "ok": True,
                                 "list": ("a", 2), "kv": '{"a":1,"z":"last"}', "blob": "AAE="}
    assert record.events == (EventRecord("retry", 1_795_000_000_500_000_000, {"n": 1}),)
    assert record.resource == {"service.name": "js-agent"}
    assert (record.scope_name, record.scope_version) == ("other-sdk", "9")
    assert decode_otlp_json("{}") == [] and decode_otlp_json('{"resourceSpans": []}') == []


def span_body(**span: Any) -> str:
    base = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "x"}
    base.update(span)
    other = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b175", "name": "y"}
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": []}, {"spans": [other, other, other, base]}]}]})


@pytest.mark.parametrize(("body", "message"), [
    (span_body(traceId="abc"), "resourceSpans[0].scopeSpans[1].spans[3]: traceId must be 32 hex chars, "
                               "got 'abc'"),
    (span_body(traceId="zz" * 16), "resourceSpans[0].scopeSpans[1].spans[3]: traceId must be 32 hex chars"),
    (span_body(traceId="0" * 32), "resourceSpans[0].scopeSpans[1].spans[3]: traceId must not be all zeros"),
    (span_body(spanId="W4787/mAOBA="), "resourceSpans[0].scopeSpans[1].spans[3]: spanId must be 16 hex chars"),
    (span_body(spanId=None), "resourceSpans[0].scopeSpans[1].spans[3]: spanId is missing"),
    (span_body(parentSpanId="12"), "resourceSpans[0].scopeSpans[1].spans[3]: parentSpanId must be 16 hex"),
    (span_body(kind=9), "resourceSpans[0].scopeSpans[1].spans[3]: kind 9 is not a SpanKind (0-5)"),
    (span_body(startTimeUnixNano="soon"), "invalid OTLP/JSON: Failed to parse resourceSpans field"),
    (span_body(links=[{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "1"}]),
     "resourceSpans[0].scopeSpans[1].spans[3].links[0]: spanId must be 16 hex chars"),
    ('{"resourceSpans": {}}', "resourceSpans must be an array, got dict"),
    ('{"resourceSpans": [{"scopeSpans": [5]}]}', "resourceSpans[0].scopeSpans[0] must be an object, got int"),
    ("[1, 2]", "body must be a JSON object, got list"),
    ("{not json", "body is not valid JSON"),
    (b"\xff\xfe", "body is not valid JSON"),
])
def test_malformed_json_names_the_problem(body: str | bytes, message: str) -> None:
    with pytest.raises(OTLPDecodeError) as info:
        decode_otlp_json(body)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_malformed_protobuf_names_the_problem() -> None:
    with pytest.raises(OTLPDecodeError, match="body is not an OTLP/protobuf ExportTraceServiceRequest"):
        decode_otlp_protobuf(b"\x0a\xff\xff\xff\xff\x0f")
    records = records_from_sdk(make_sdk_spans())
    good = encode_otlp_protobuf(records[:1])
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest.FromString(good)
    request.resource_spans[0].scope_spans[0].spans[0].span_id = b"\x01\x02\x03"
    with pytest.raises(OTLPDecodeError, match=r"^resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[0\]: spanId "
                                              r"must be 8 bytes, got 3$"):
        decode_otlp_protobuf(request.SerializeToString())


# --- the exporter ------------------------------------------------------------------

def test_exporter_stores_sdk_spans_behind_a_batch_processor(tmp_path: Path) -> None:
    path = tmp_path / "exp.db"
    exporter = StoreSpanExporter(path)
    provider = TracerProvider(resource=Resource.create({sc.SERVICE_NAME: "svc"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=3))
    tracer = provider.get_tracer("runtrace")
    with tracer.start_as_current_span("run r", attributes={sc.RUN_ID: "exp-run", sc.SPAN_ROLE: sc.ROLE_RUN,
                                                          sc.RUN_OUTCOME: "accepted"}):
        for k in range(7):
            with tracer.start_as_current_span("chat m", attributes={
                    sc.RUN_ID: "exp-run", sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT,
                    sc.GEN_AI_USAGE_INPUT_TOKENS: 100 + k, sc.COST_USD: 0.25,
                    sc.COST_SOURCE: sc.SOURCE_GENAI_PRICES}):
                pass
    provider.shutdown()  # flushes, then shuts the exporter down, which closes the store it opened
    assert exporter.store.closed
    with Store.open(path) as store:
        run = get_run(store, "exp-run")
        assert store.count_spans() == 8
    assert run is not None
    assert (run["llm_calls"], run["input_tokens"], run["cost_usd"], run["outcome"], run["service"]) == (
        7, 721, 1.75, "accepted", "svc")


def test_exporter_answers_failure_instead_of_raising(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "f.db")
    exporter = StoreSpanExporter(store)
    spans = make_sdk_spans()
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert exporter.export(spans) == SpanExportResult.SUCCESS  # a retry: stored once
    assert store.count_spans() == 5
    store.close()
    assert exporter.export(spans) == SpanExportResult.FAILURE  # closed store: no exception
    assert exporter.force_flush() is True
    exporter.shutdown()
    exporter.shutdown()
    assert exporter.export(spans) == SpanExportResult.FAILURE


def test_exporter_leaves_a_passed_store_open(tmp_path: Path) -> None:
    with Store.open(tmp_path / "p.db") as store:
        exporter = StoreSpanExporter(store)
        exporter.shutdown()
        assert not store.closed
        assert store.count_spans() == 0
