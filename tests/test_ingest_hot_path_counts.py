"""The ingest hot path does each piece of per-span work once: checked by counting calls, never by timing.

This box cannot time a few per cent (its load moves timings 2-6x), but a
profiler's call counts do not move: each test below counts what a batch costs
and fails if the work a span no longer needs comes back.
"""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from runtrace import semconv as sc
from runtrace.store import ingest
from runtrace.store.normalise import normalise
from runtrace.store.records import SpanRecord
from runtrace.store.sdk_adapter import records_from_sdk


def _calls(run: Callable[[], Any], match: Callable[[str, str], bool]) -> int:
    """How many calls ``run`` makes to functions whose (file, name) ``match`` accepts."""
    profile = cProfile.Profile()
    profile.enable()
    run()
    profile.disable()
    stats: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    return sum(v[1] for (file, _line, name), v in stats.items() if match(file, name))


def _sdk_spans() -> tuple[ReadableSpan, ...]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({sc.SERVICE_NAME: "svc"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("runtrace", "0.1.0")
    for kind, status in ((SpanKind.CLIENT, StatusCode.ERROR), (SpanKind.INTERNAL, StatusCode.OK),
                         (SpanKind.SERVER, StatusCode.UNSET), (SpanKind.PRODUCER, StatusCode.UNSET),
                         (SpanKind.CONSUMER, StatusCode.ERROR)):
        span = tracer.start_span(f"{kind.name} {status.name}", kind=kind, attributes={sc.RUN_ID: "r"})
        if status is not StatusCode.UNSET:
            span.set_status(Status(status, "boom" if status is StatusCode.ERROR else None))
        span.end()
    provider.shutdown()
    return exporter.get_finished_spans()


def test_sdk_kinds_and_statuses_are_read_without_the_enum_properties() -> None:
    spans = _sdk_spans()
    records: list[SpanRecord] = []
    enum_gets = _calls(lambda: records.extend(records_from_sdk(spans)),
                       lambda file, name: file.endswith("enum.py") and name == "__get__")
    assert enum_gets == 0  # was 2 a span: SpanKind.name and StatusCode.value
    assert [(r.kind, r.status_code, r.status_message) for r in records] == [
        ("CLIENT", "ERROR", "boom"), ("INTERNAL", "OK", None), ("SERVER", "UNSET", None),
        ("PRODUCER", "UNSET", None), ("CONSUMER", "ERROR", "boom")]


def _llm(i: int, **extra: Any) -> SpanRecord:
    return SpanRecord(
        trace_id=f"{i + 1:032x}", span_id=f"{i + 1:016x}", parent_span_id=None, name="chat gpt-4o-mini",
        kind="CLIENT", start_ns=1_790_000_000_000_000_000 + i, end_ns=1_790_000_000_500_000_000 + i,
        status_code="UNSET", status_message=None,
        attributes={sc.RUN_ID: "r", sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_PROVIDER_NAME: "openai",
                    sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", sc.GEN_AI_USAGE_INPUT_TOKENS: 1000 + i,
                    sc.GEN_AI_USAGE_OUTPUT_TOKENS: 100, **extra},
        resource={sc.SERVICE_NAME: "svc"})


def test_a_span_priced_at_ingest_is_bound_checked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The price's own values are checked where they are added; the whole record only before pricing."""
    seen: list[str] = []
    real = ingest.drop_out_of_range

    def counting(record: SpanRecord) -> SpanRecord:
        seen.append(record.span_id)
        return real(record)

    monkeypatch.setattr(ingest, "drop_out_of_range", counting)
    batch = ingest.prepare([_llm(i) for i in range(10)])
    assert len(seen) == 10  # was 20: once more after each price
    priced = [record.attributes for record, _facts in batch.spans]
    assert all(a[sc.COST_PRICED_AT_INGEST] is True and a[sc.COST_SOURCE] == sc.SOURCE_GENAI_PRICES for a in priced)
    assert [row[18] for row in batch.rows] == [pytest.approx(a[sc.COST_USD]) for a in priced]  # cost_usd column


def test_a_span_of_no_dialect_is_recognised_in_one_pass() -> None:
    records = [_llm(i, **{sc.COST_USD: 0.001, sc.COST_SOURCE: sc.SOURCE_GENAI_PRICES}) for i in range(8)]
    out: list[SpanRecord] = []
    starts = _calls(lambda: out.extend(normalise(r) for r in records),
                    lambda _file, name: "startswith" in name)
    assert starts == 8  # one scope test a span (was 2: OpenLIT, then Logfire / pydantic-ai)
    assert [r.attributes for r in out] == [r.attributes for r in records]
    assert all(o is r for o, r in zip(out, records, strict=True))  # nothing to add: the record itself
