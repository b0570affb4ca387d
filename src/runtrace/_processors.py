"""Span processors runtrace adds to the TracerProvider.

``RunStampProcessor`` puts ``runtrace.run.id`` on every span started inside a
run, also in other processes: it reads the id from W3C baggage, which the
standard propagators carry across HTTP and MCP hops. ``SwitchableProcessor``
wraps everything runtrace adds so ``uninstrument()`` can detach it from a
provider that has no API for removing processors.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from . import runs, semconv
from ._internal import fail_open

_PENDING_CAP = 4096  # spans in flight that carry a run's name; a leaked (never ended) span must not grow this


class RunStampProcessor(SpanProcessor):
    """Stamps the run id on every span of a run, and the run's name/project/owner on its first spans.

    The name/project/owner go on every span started in this process's run
    until one of those spans has ended (``Run.attribution``; an ended span is
    queued for export before any span that ends later), so a run whose process
    crashed before the run span ended is still named and attributed.
    """

    def __init__(self) -> None:
        self._pending: dict[int, runs.Run] = {}  # span id -> the run it names, until it ends
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if span.attributes is not None and semconv.RUN_ID in span.attributes:
            return  # set by whoever started the span (a run, a late verdict)
        run_id = baggage.get_baggage(semconv.BAGGAGE_RUN_ID, parent_context)
        if run_id:
            span.set_attribute(semconv.RUN_ID, str(run_id))
            run = runs.current_run()
            if run is not None and run.id == run_id:
                attrs = run.attribution()
                if attrs:
                    with fail_open("run stamp: name the run's first spans"):
                        self._name(span, run, attrs)

    def _name(self, span: Span, run: runs.Run, attrs: dict[str, object]) -> None:
        span.set_attributes(attrs)  # type: ignore[arg-type]
        with self._lock:
            self._pending[span.context.span_id] = run
            while len(self._pending) > _PENDING_CAP:
                self._pending.pop(next(iter(self._pending)))

    def on_end(self, span: ReadableSpan) -> None:
        if not self._pending:
            return
        context = span.context
        if context is None:
            return
        with self._lock:
            run = self._pending.pop(context.span_id, None)
        if run is not None:
            run.mark_attributed()


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
