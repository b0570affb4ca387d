"""Shared fixtures: one TracerProvider per test session (OpenTelemetry allows
only one global provider per process), re-joined by each test's instrument()."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import runtrace


def pytest_report_header() -> str:
    return f"sqlite {sqlite3.sqlite_version}"


@pytest.fixture(autouse=True, scope="session")
def _one_tracer_provider() -> None:
    """Install the process's TracerProvider once, whatever test runs first.

    OpenTelemetry allows one global provider per process and every later
    instrument() joins it, so without this the service name of whichever test
    happened to run first would leak into all the others.
    """
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider(resource=Resource.create({"service.name": "test-agent"})))


@dataclass
class Instrumented:
    """What a test needs after runtrace.instrument(): the spans and the store file."""

    exporter: InMemorySpanExporter
    store_path: Path

    def spans(self) -> tuple[ReadableSpan, ...]:
        runtrace.flush()
        return self.exporter.get_finished_spans()

    def llm_spans(self) -> list[ReadableSpan]:
        from runtrace import semconv

        return [s for s in self.spans()
                if (s.attributes or {}).get(semconv.GEN_AI_OPERATION_NAME) in semconv.LLM_OPERATIONS]

    def open_store(self):  # -> runtrace.store.db.Store
        from runtrace.store.db import Store

        runtrace.flush()
        return Store.open(self.store_path)

    def stored_run(self, run_id: str):  # -> dict | None, as runtrace.store.queries.get_run returns it
        """The run as the store has it once every span is flushed (get_run's dict)."""
        from runtrace.store import queries

        store = self.open_store()
        try:
            return queries.get_run(store, run_id)
        finally:
            store.close()


@pytest.fixture
def instrumented(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Instrumented]:
    """runtrace.instrument() into a fresh store file, plus an in-memory copy of every span."""
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    exporter = InMemorySpanExporter()
    store_path = tmp_path / "runtrace.db"
    runtrace.uninstrument()
    runtrace.instrument(service_name="test-agent", store=store_path,
                        span_processors=(SimpleSpanProcessor(exporter),))
    try:
        yield Instrumented(exporter, store_path)
    finally:
        runtrace.uninstrument()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless, one per test module (see browser_support)."""
    from browser_support import ARGS, CHROMIUM, sync_api

    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


# DeepSeek's list prices are halved from 16:30 to 00:30 UTC (off-peak), and genai-prices knows it:
# its peak price is conditional on a time-of-day window (00:30-16:30 UTC). A test's hand-computed
# dollars depended on the hour CI ran: a run at 16:38 UTC priced deepseek-chat at half and 12
# tests failed. In the tests every time-of-day window holds, so calls get the list (peak) rate
# whenever they run.
# Session-wide, so module-scoped fixtures that price (the demo's store) see it too.
@pytest.fixture(autouse=True, scope="session")
def list_prices_at_any_hour() -> Iterator[None]:
    from genai_prices import types as genai_types

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(genai_types.TimeOfDateConstraint, "active", lambda self, request_timestamp: True)
        yield
