"""Span processors runtrace adds to the TracerProvider.

``RunStampProcessor`` puts ``runtrace.run.id`` on every span started inside a
run, also in other processes: it reads the id from W3C baggage, which the
standard propagators carry across HTTP and MCP hops. ``SwitchableProcessor``
wraps everything runtrace adds so ``uninstrument()`` can detach it from a
provider that has no API for removing processors. ``DuplicateMarker`` marks
another instrumentation's span of the same LLM request as a duplicate, so one
request is one call in the totals however many instrumentations trace it.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from . import _pending, runs, semconv
from ._forksafe import ForkSafeLock
from ._internal import fail_open, log_internal_error

_PENDING_CAP = 4096  # spans in flight that carry a run's name; a leaked (never ended) span must not grow this


class RunStampProcessor(SpanProcessor):
    """Stamps the run id on every span of a run, and the run's name/project/owner on its first spans.

    The name/project/owner go on every span started in this process's run
    until one of those spans has ended (``RunState.attribution``; an ended span is
    queued for export before any span that ends later), so a run whose process
    crashed before the run span ended is still named and attributed.
    """

    def __init__(self) -> None:
        self._pending: dict[int, runs.Run] = {}  # span id -> the run it names, until it ends
        self._lock = ForkSafeLock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if span.attributes is not None and semconv.RUN_ID in span.attributes:
            return  # set by whoever started the span (a run, a late verdict)
        run_id = baggage.get_baggage(semconv.BAGGAGE_RUN_ID, parent_context)
        if run_id:
            span.set_attribute(semconv.RUN_ID, str(run_id))
            run = runs.current_run()
            if run is not None and run.id == run_id:
                attrs = run._live.attribution()
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
            run._live.mark_attributed()


_GUARD_DUPLICATES = fail_open("mark duplicate LLM spans")  # holds only its label: shared
_OPEN_CAP = 4096  # open LLM spans tracked; a leaked (never ended) span must not grow this


def _is_llm_request(span: Span) -> bool:
    """Whether another instrumentation's span, at its start, describes one LLM request."""
    scope = span.instrumentation_scope
    if scope is not None and scope.name in semconv.FOREIGN_LLM_SCOPES:
        return True
    attrs = span.attributes
    if not attrs:
        return False
    return (attrs.get(semconv.GEN_AI_OPERATION_NAME) in semconv.LLM_OPERATIONS
            or attrs.get(semconv.LLM_REQUEST_TYPE) in semconv.LLM_REQUEST_TYPES
            or attrs.get(semconv.OPENINFERENCE_SPAN_KIND) in semconv.OPENINFERENCE_LLM_KINDS)


def _owner() -> tuple[int, int]:
    """The thread and asyncio task a span starts in: a wrapper and the call it wraps share both."""
    task = 0
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            current = asyncio.current_task()
        except RuntimeError:  # no running event loop in this thread
            current = None
        if current is not None:
            task = id(current)
    return threading.get_ident(), task


class _Foreign:
    """Another instrumentation's open LLM span, as the marker sees it."""

    __slots__ = ("span", "parent_id", "inside", "owner", "claim")

    def __init__(self, span: Span, parent_id: int | None, inside: str | None, owner: tuple[int, int]) -> None:
        self.span = span
        self.parent_id = parent_id
        self.inside = inside  # the runtrace hex id it is inside of, if any
        self.owner = owner
        # None: not yet matched to a runtrace span; _PENDING: matched to one that starts
        # later (a stream manager's); _DONE: marked with runtrace's span id.
        self.claim: str | None = _DONE if inside is not None else None

    def mark(self, value: str, claim: str) -> None:
        if self.span.is_recording():
            self.span.set_attribute(semconv.DUPLICATE_OF, value)
        self.claim = claim


_PENDING = "pending"
_DONE = "done"


class DuplicateMarker(SpanProcessor):
    """Marks a foreign LLM span that wraps, is wrapped by, or sits beside runtrace's span of the same request.

    openai-v2, OpenLLMetry, OpenLIT, OpenInference and pydantic-ai each make a span
    per request with its own usage, so next to ``instrument()`` every request
    counted twice. The foreign span gets ``runtrace.duplicate_of`` = runtrace's span
    id (the store keeps it and never counts it), whichever side patched last:

    - inside runtrace's span (runtrace patched last): marked at its own start;
    - around runtrace's span (the other patched last): marked, still open, when
      runtrace's span starts under it, up through every open foreign LLM span
      in the chain (pydantic-ai's span over openai-v2's over runtrace's);
    - beside it: OpenLLMetry's anthropic wrapper starts its span without making it
      current, so runtrace's span is its sibling. When runtrace's span starts, the
      latest open, unmatched foreign LLM span with the same parent, started in the
      same thread and asyncio task (the wrapper that is calling runtrace's), is its
      duplicate;
    - around a stream manager's set-up (``_pending``): anthropic's ``messages.stream()``
      sends at ``__enter__``, but OpenLLMetry's span of it starts at ``stream()`` and,
      for ``beta.messages.stream()``, ends there. A foreign LLM span open around the
      set-up, or starting inside it, is marked at once with
      ``semconv.DUPLICATE_OF_UNSTARTED``, replaced by runtrace's span id if it is still
      open when that span starts.

    The store's sibling rule (``store/siblings.py``) counts a beside pair once as
    well (without the last two cases, tests/test_coexist.py's OpenLLMetry anthropic
    totals stay 4 calls, $0.0009; only its assertions on the marks fail), but the
    marks stay: they travel with the spans to every backend, they hold for a failed
    request (no usage, so no sibling rule: two calls, two API errors without them)
    and for a stream manager entered more than the rule's 1 s after ``stream()``.
    """

    def __init__(self) -> None:
        self._ours: dict[int, str] = {}  # runtrace LLM span id -> its hex id, while open
        self._foreign: dict[int, _Foreign] = {}  # foreign LLM span id -> what is known of it, while open
        self._lock = ForkSafeLock()
        _pending.listen(self)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:  # fail_open, written out: every span of the process starts through here
            self._on_start(span, parent_context)
        except Exception as exc:  # noqa: BLE001 - the span goes on unmarked
            log_internal_error(_GUARD_DUPLICATES.where, exc)

    def _on_start(self, span: Span, parent_context: Context | None) -> None:
        scope = span.instrumentation_scope
        name = scope.name if scope is not None else None
        if name in semconv.RUNTRACE_NON_LLM_SCOPES:
            return  # a run or tool span: never a request, and never in the chains below
        ours = name in semconv.RUNTRACE_LLM_SCOPES
        if not ours and not _is_llm_request(span):
            return
        if ours and not self._foreign:
            # No foreign LLM span open: nothing around or beside this one to mark, so neither
            # its parent nor its thread and task are looked up. A foreign span that could be its
            # parent or its wrapper's started before it (and is in _foreign by now); one that
            # starts inside it finds it in _ours.
            span_id = span.context.span_id
            with self._lock.raw:
                self._ours[span_id] = trace.format_span_id(span_id)
                self._trim(self._ours)
            return
        parent = trace.get_current_span(parent_context).get_span_context()
        parent_id = parent.span_id if parent.is_valid else None
        span_id = span.context.span_id
        owner = _owner()
        with self._lock.raw:  # every LLM span: the lock itself, no Python-level enter/exit
            if ours:
                hex_id = trace.format_span_id(span_id)
                self._ours[span_id] = hex_id
                self._trim(self._ours)
                outer = self._foreign.get(parent_id) if parent_id is not None else None
                if outer is None:
                    beside = self._beside(parent_id, owner, (_PENDING, None))
                    if beside is not None:
                        beside.mark(hex_id, _DONE)
                while outer is not None:
                    outer.mark(hex_id, _DONE)
                    outer = self._foreign.get(outer.parent_id) if outer.parent_id is not None else None
                return
            inside: str | None = None
            if parent_id is not None:
                inside = self._ours.get(parent_id)
                if inside is None and parent_id in self._foreign:
                    inside = self._foreign[parent_id].inside
            record = self._foreign[span_id] = _Foreign(span, parent_id, inside, owner)
            self._trim(self._foreign)
        if inside is not None:
            span.set_attribute(semconv.DUPLICATE_OF, inside)
        elif _pending.SETUP.get():
            record.mark(semconv.DUPLICATE_OF_UNSTARTED, _PENDING)

    def _beside(self, parent_id: int | None, owner: tuple[int, int],
                claims: tuple[str | None, ...]) -> _Foreign | None:
        """The latest open foreign span with this parent and owner, in the first of ``claims`` found."""
        for claim in claims:
            for record in reversed(self._foreign.values()):
                if record.claim == claim and record.parent_id == parent_id and record.owner == owner:
                    return record
        return None

    def on_llm_call_setup(self) -> None:
        """runtrace is setting up a call whose span starts later: claim the foreign span open around it."""
        if not self._foreign:
            return
        parent = trace.get_current_span().get_span_context()
        parent_id = parent.span_id if parent.is_valid else None
        with self._lock:
            beside = self._beside(parent_id, _owner(), (None,))
            if beside is not None:
                beside.mark(semconv.DUPLICATE_OF_UNSTARTED, _PENDING)

    @staticmethod
    def _trim(open_spans: dict[int, Any]) -> None:
        while len(open_spans) > _OPEN_CAP:
            open_spans.pop(next(iter(open_spans)))

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or (not self._ours and not self._foreign):
            return
        with self._lock.raw:  # every LLM span: the lock itself, no Python-level enter/exit
            self._ours.pop(context.span_id, None)
            self._foreign.pop(context.span_id, None)


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

    def detach(self) -> tuple[SpanProcessor, ...]:
        """Stop passing spans on; return the processors that were attached (to flush and shut down)."""
        processors, self._processors = self._processors, ()
        return processors

    def shutdown(self) -> None:
        for p in self.detach():
            p.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return flush_all(self._processors, timeout_millis)


class _Call:
    """One call running in a daemon thread, with its result once it returns."""

    def __init__(self, what: str, call: Callable[[], object]) -> None:
        self.ok = False
        self._call = call
        self.thread = threading.Thread(target=self._run, name=f"runtrace-{what}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.ok = bool(self._call())
        except Exception:  # noqa: BLE001 - a processor's failure is a False, never the caller's exception
            self.ok = False


def _wait(calls: Sequence[_Call], timeout_millis: float) -> bool:
    """Wait at most ``timeout_millis`` in all; True when every call returned a true value in time."""
    deadline = time.monotonic() + max(0.0, timeout_millis) / 1000
    for c in calls:
        c.thread.join(max(0.0, deadline - time.monotonic()))
    return all(c.ok and not c.thread.is_alive() for c in calls)


# The SDK's BatchSpanProcessor ignores the timeout given to force_flush and exports until its
# queue is empty, which never happens while other threads keep ending spans. So flushes run
# in a thread and the caller waits at most its timeout; a flush still running at the deadline
# goes on exporting, and a later flush of the same processor waits for it instead of
# starting another (no pile of threads under a flush loop).
_flushing: dict[int, _Call] = {}
_flushing_lock = ForkSafeLock()


def _reset_in_child() -> None:
    _flushing.clear()  # the parent's flush threads do not exist in a forked child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)


def flush_all(processors: Sequence[SpanProcessor], timeout_millis: float) -> bool:
    """force_flush every processor, returning within ``timeout_millis``; True when all succeeded."""
    if not processors:
        return True
    millis = int(timeout_millis)
    calls: list[_Call] = []
    with _flushing_lock:
        for p in processors:
            running = _flushing.get(id(p))
            if running is None or not running.thread.is_alive():
                running = _flushing[id(p)] = _Call("flush", functools.partial(p.force_flush, millis))
            calls.append(running)
    ok = _wait(calls, timeout_millis)
    with _flushing_lock:
        for p, c in zip(processors, calls, strict=True):
            if not c.thread.is_alive() and _flushing.get(id(p)) is c:
                del _flushing[id(p)]
    return ok


def shutdown_all(processors: Sequence[SpanProcessor], timeout_millis: float) -> bool:
    """shutdown every processor, returning within ``timeout_millis``; True when all finished in time."""
    if not processors:
        return True

    def stop(p: SpanProcessor) -> bool:
        p.shutdown()
        return True

    return _wait([_Call("shutdown", functools.partial(stop, p)) for p in processors], timeout_millis)
