"""records_from_sdk reads a finished span's attributes from the SDK's own dict, and from any other shape too."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags

from runtrace.store.sdk_adapter import records_from_sdk

ATTRS = {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 12, "x.flag": True,
         "x.ratio": 0.5, "gen_ai.response.finish_reasons": ["stop", "length"]}


def test_a_finished_sdk_span_gives_every_attribute() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("t").start_span("chat m", attributes=ATTRS).end()
    (record,) = records_from_sdk(exporter.get_finished_spans())
    assert record.attributes == {**ATTRS, "gen_ai.response.finish_reasons": ("stop", "length")}
    assert type(record.attributes) is dict


def test_a_span_holding_a_plain_mapping_takes_the_public_property() -> None:
    context = SpanContext(trace_id=1, span_id=2, is_remote=False, trace_flags=TraceFlags(1))
    span = ReadableSpan(name="chat m", context=context, attributes=dict(ATTRS), start_time=1, end_time=2)
    (record,) = records_from_sdk([span])
    assert record.attributes == {**ATTRS, "gen_ai.response.finish_reasons": ("stop", "length")}
    assert (record.trace_id, record.span_id, record.start_ns, record.end_ns) == (f"{1:032x}", f"{2:016x}", 1, 2)
