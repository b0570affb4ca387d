"""Span processors runtrace adds to the TracerProvider.

``RunStampProcessor`` puts ``runtrace.run.id`` on every span started inside a
run, also in other processes: it reads the id from W3C baggage, which the
standard propagators carry across HTTP and MCP hops. ``SwitchableProcessor``
wraps everything runtrace adds so ``uninstrument()`` can detach it from a
provider that has no API for removing processors.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from . import semconv


class RunStampProcessor(SpanProcessor):
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if span.attributes is not None and semconv.RUN_ID in span.attributes:
            return  # set by whoever started the span (a run, a late verdict)
        run_id = baggage.get_baggage(semconv.BAGGAGE_RUN_ID, parent_context)
        if run_id:
            span.set_attribute(semconv.RUN_ID, str(run_id))


class SwitchableProcessor(SpanProcessor):
    """Fans out to runtrace's processors while enabled; a no-op once disabled."""

    def __init__(self, processors: Sequence[SpanProcessor] = ()) -> None:
        self._processors: tuple[SpanProcessor, ...] = tuple(processors)

    @property
    def processors(self) -> tuple[SpanProcessor, ...]:
        return self._processors

    def replace(self, processors: Sequence[SpanProcessor]) -> None:
        self._processors = tuple(processors)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for p in self._processors:
            p.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for p in self._processors:
            p.on_end(span)

    def shutdown(self) -> None:
        processors, self._processors = self._processors, ()
        for p in processors:
            p.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all([p.force_flush(timeout_millis) for p in self._processors])
