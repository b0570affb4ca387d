"""One LLM call as a span: what every provider instrumentation shares.

A provider module (declared on :mod:`._provider`'s contract) turns its SDK's
request into a :class:`Request` and its response (a model object, a raw JSON
body, or an accumulated stream) into a :class:`ResponseData`; :class:`LLMCall`
does the rest the same way for all of them: usage attributes (input is always the *total* input, cache reads and
writes included), pricing, the run's live totals and detectors, content when
capture is on, and ending the span exactly once.

Every step that reads a response or prices it runs inside ``fail_open``: a
response shaped in a way we did not foresee loses attributes, never the
caller's result.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind

from .. import _state, detect, metrics, pricing, projection, runs, semconv
from .._errors import record_error
from .._internal import fail_open, log_internal_error
from .._jsontext import parse_json_text
from . import _wrap
from ._read import as_int, as_str, put, to_json

# runtrace's one usage type (input is the total, cache parts included; None: not reported),
# priced as it is: the name stays for the provider modules.
Usage = pricing.TokenUsage


# The call's fail_open guards, made once: a guard holds only its label, so one instance serves every
# call and thread (nine a call were made and dropped before, issue 14).
_GUARD_INPUT_CONTENT = fail_open("llm span: input content")
_GUARD_ERROR = fail_open("llm span: error")
_GUARD_REQUESTED_TOOL_CALLS = fail_open("llm span: requested tool calls")


@dataclass
class RequestedToolCall:
    """A tool call the model asked for in its response (the tool's own span is ``tools.ToolCall``)."""

    id: str | None
    name: str | None
    arguments: str | None  # JSON text, as the model produced it


@dataclass
class ResponseData:
    """What a response (or the part of a stream received so far) says."""

    response_id: str | None = None
    response_model: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    usage: Usage | None = None
    service_tier: str | None = None  # the tier the provider says served the call
    tool_calls: list[RequestedToolCall] = field(default_factory=list)
    text: str = ""  # the completion text (first choice), for loop detection
    output_messages: list[dict[str, Any]] = field(default_factory=list)  # semconv shape, for content capture


@dataclass(frozen=True)
class Request:
    """What the provider module read off the request before sending it."""

    provider: str
    operation: str
    model: str | None
    attributes: dict[str, Any]
    prompt: list[tuple[str, str]] | None = None  # (role, text) per input message, for the detectors
    input_messages: list[dict[str, Any]] | None = None  # semconv shape, only built when capturing
    system_instructions: list[dict[str, Any]] | None = None
    stream: bool = False


def tool_call_part(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "tool_call", "name": name}
    if call_id is not None:
        part["id"] = call_id
    if arguments is not None:
        part["arguments"] = parse_json_text(arguments)
    return part


def assistant_message(data: ResponseData, text: str, finish_reason: str | None) -> ResponseData:
    """Complete ``data`` with the completion's ``text`` and finish reason, and its semconv output message.

    The message's parts are the text and then the tool calls already in ``data``;
    a response with neither, and no finish reason, has no output message.
    """
    data.text = text
    if finish_reason:
        data.finish_reasons.append(finish_reason)
    parts: list[dict[str, Any]] = [{"type": "text", "content": text}] if text else []
    parts.extend(tool_call_part(c.id, c.name, c.arguments) for c in data.tool_calls)
    if parts or finish_reason:
        data.output_messages.append({"role": "assistant", "parts": parts, "finish_reason": finish_reason or ""})
    return data


class ToolCallPieces:
    """Tool calls a stream sends in pieces (id and name once, the arguments' JSON in slices), by index."""

    __slots__ = ("slots",)

    def __init__(self) -> None:
        self.slots: dict[int, list[Any]] = {}  # index -> [id, name, argument pieces]

    def add(self, index: int, call_id: str | None, name: str | None, piece: str | None) -> None:
        slot = self.slots.setdefault(index, [None, None, []])
        slot[0] = slot[0] or call_id
        slot[1] = slot[1] or name
        if piece is not None:
            slot[2].append(piece)

    def start(self, index: int, call_id: str | None, name: str | None) -> None:
        """A call that opens at ``index`` (a new content block): what was there before is replaced."""
        self.slots[index] = [call_id, name, []]

    def calls(self, *, keep_empty: bool = False) -> list[RequestedToolCall]:
        """The calls by index; arguments None when no piece came (or, unless ``keep_empty``, only empty ones)."""
        return [RequestedToolCall(i, n, "".join(p) if keep_empty and p else "".join(p) or None)
                for i, n, p in (self.slots[k] for k in sorted(self.slots))]


def completion_text(data: ResponseData) -> str:
    """The text that identifies a completion: its words plus the tool calls it asked for."""
    if not data.tool_calls:
        return data.text  # the usual case: no list, generator or join
    pieces = [data.text] if data.text else []
    pieces.extend(f"{c.name}({c.arguments or ''})" for c in data.tool_calls)
    return "\n".join(pieces)


# --- the span --------------------------------------------------------------------------

def stamp_run(run: runs.Run | None, attrs: dict[str, Any]) -> bool:
    """Put ``run``'s id, and its name/project/owner while it needs them, into a span's start attributes.

    This is RunStampProcessor's work done by the span's maker, who knows the run
    already (the processor then leaves the span alone). True when the name went
    in: the caller marks the run attributed once that span has ended.
    """
    if run is None:
        return False
    attrs[semconv.RUN_ID] = run.id
    named = run._live.attribution()
    if named:
        attrs.update(named)
        return True
    return False


class LLMCall:
    """The span of one LLM request; ``finish``/``fail`` end it exactly once, from any thread.

    ``installed`` is the state the call started under (read once for the call, issue 14):
    its settings and pricer; ``run`` the run current at its start.
    """

    def __init__(self, request: Request, tracer_name: str, installed: _state.Installed, run: runs.Run | None, *,
                 is_async: bool = False) -> None:
        settings = installed.settings
        self.request = request
        # Which wrapper made the call (sync or async SDK method): decides the stream proxy.
        # Never guessed from the result, which another instrumentation may have wrapped
        # in a proxy offering both ``__next__`` and ``__anext__``.
        self.is_async = is_async
        self.capture_content = settings.capture_content
        # Priced with the pricer in effect when the call started, also if uninstrument() comes first.
        # (pricing.default_pricer() is installed.pricer; asked by name, as tests and tools replace it)
        self._pricer = pricing.default_pricer()
        self.run = run
        self.started = datetime.now(timezone.utc)
        self._t0 = time.monotonic()
        # Claimed by the first next(): atomic under the GIL, and unlike a lock per call
        # (a ForkSafeLock is registered in a WeakSet for fork) it costs nothing to make.
        self._claims = itertools.count()
        self._ended = False
        self._first_chunk_s: float | None = None
        attrs = dict(request.attributes)
        attrs[semconv.GEN_AI_OPERATION_NAME] = request.operation
        attrs[semconv.GEN_AI_PROVIDER_NAME] = request.provider
        put(attrs, semconv.GEN_AI_REQUEST_MODEL, request.model)
        if request.stream:
            attrs[semconv.GEN_AI_REQUEST_STREAM] = True
        # The run's id (and, on its first spans, its name) go in with the span's start, so
        # RunStampProcessor does not look the id up in baggage and set it in a second pass.
        self._names_run = stamp_run(self.run, attrs)
        name = f"{request.operation} {request.model}" if request.model else request.operation
        # Everything known before the request goes in with the span's start: one pass over the attributes.
        if request.prompt is not None:
            try:  # fail_open, written out (every call)
                attrs.update(self._prompt_attributes(request.prompt))
            except Exception as exc:  # noqa: BLE001 - the span starts without the context attributes
                log_internal_error("llm span: observe prompt", exc)
        if self.capture_content:
            with _GUARD_INPUT_CONTENT:
                content: dict[str, Any] = {}
                if request.input_messages is not None:
                    content[semconv.GEN_AI_INPUT_MESSAGES] = to_json(request.input_messages)
                if request.system_instructions:
                    content[semconv.GEN_AI_SYSTEM_INSTRUCTIONS] = to_json(request.system_instructions)
                attrs.update(content)
        self.span = settings.tracer(tracer_name).start_span(name, kind=SpanKind.CLIENT, attributes=attrs)

    def _prompt_attributes(self, prompt: list[tuple[str, str]]) -> dict[str, Any]:
        """The run's detectors judge the prompt; outside a run it is only fingerprinted."""
        if self.run is not None:
            return self.run._live.observe_prompt(prompt)
        obs = detect.ContextTracker().observe_prompt(prompt)
        return {semconv.CONTEXT_MESSAGES: obs.messages, semconv.CONTEXT_CHARS: obs.chars,
                semconv.CONTEXT_FINGERPRINT: obs.fingerprint}

    @property
    def ended(self) -> bool:
        return self._ended

    def sending(self) -> _Sending:
        """The span current while the SDK sends the request (HTTP spans nest under it); fails it on error."""
        return _Sending(self)

    def first_chunk(self) -> None:
        if self._first_chunk_s is None:
            self._first_chunk_s = time.monotonic() - self._t0

    def _claim(self) -> bool:
        if next(self._claims):
            return False
        self._ended = True
        return True

    def finish(self, data: ResponseData | None, *, ended_by: str | None = None) -> None:
        """End the span with what the response said (``data`` None: nothing could be read)."""
        if not self._claim():
            return
        try:
            self._record(data, ended_by)
        finally:
            self._end()

    def _end(self) -> None:
        self.span.end()
        if self._names_run and self.run is not None:
            self.run._live.mark_attributed()  # what RunStampProcessor does for the spans it names

    def fail(self, exc: BaseException, partial: ResponseData | None = None, *,
             ended_by: str | None = None) -> None:
        """End the span as failed; the caller re-raises ``exc`` unchanged."""
        if not self._claim():
            return
        status_code = as_int(getattr(exc, "status_code", None))
        error_type = type(exc).__qualname__
        try:
            with _GUARD_ERROR:
                span = self.span
                # A provider's error message often quotes the request back: kept only with capture on.
                record_error(span, exc, capture_content=self.capture_content, event=isinstance(exc, Exception))
                if status_code is not None:
                    span.set_attribute(semconv.HTTP_RESPONSE_STATUS_CODE, status_code)
            if partial is not None:
                # A stream that broke mid-way: keep what arrived (usage only if it did).
                self._record(partial, ended_by or semconv.STREAM_ENDED_ERROR, error_type=error_type)
            else:
                # The provider answered with an error status: such requests are not billed.
                # Anything else (a timeout, a lost connection) may have been, so it stays unpriced.
                self._record(None, ended_by, not_billed=status_code is not None, error_type=error_type)
        finally:
            self._end()

    # -- the shared bookkeeping -------------------------------------------------
    def _record(self, data: ResponseData | None, ended_by: str | None, *, not_billed: bool = False,
                error_type: str | None = None) -> None:
        """The response's attributes, price, metrics, run totals and detectors; each step fails open alone.

        The steps every call takes are ``try``/``except Exception`` with the label
        ``fail_open`` would log, written out: the guard's ``__enter__``/``__exit__``
        were two calls a step, ten a call (issue 14).
        """
        span = self.span
        attrs: dict[str, Any] = {}
        usage = data.usage if data is not None else None
        try:
            if ended_by is not None:
                attrs[semconv.STREAM_ENDED_BY] = ended_by
            if self._first_chunk_s is not None:
                attrs[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = round(self._first_chunk_s, 6)
            if data is not None:
                self._response_attributes(data, attrs)
            if usage is None and not not_billed:
                attrs[semconv.USAGE_MISSING] = True
        except Exception as exc:  # noqa: BLE001 - fail_open, inlined (the hot path)
            log_internal_error("llm span: response attributes", exc)
        price: pricing.Price | None = None
        if not_billed:
            attrs[semconv.COST_USD] = 0.0
            attrs[semconv.COST_SOURCE] = semconv.SOURCE_NOT_BILLED
        else:
            try:
                price = self._price(data, usage)
                attrs.update(price.attributes())
            except Exception as exc:  # noqa: BLE001 - fail_open, inlined (the hot path)
                log_internal_error("llm span: pricing", exc)
        span.set_attributes(attrs)
        cost = 0.0 if not_billed else (price.total_usd if price is not None else None)
        run = self.run
        # The state in effect now (read once for the call's end): the metrics and the policy
        # that hear of it are today's, also when instrument() was called again mid-stream.
        installed = _state.current()
        meters = installed.meters if installed is not None else None
        try:
            sinks = meters.live() if meters is not None else ()
            if sinks:
                metrics.record_llm_call(
                    operation=self.request.operation, provider=self.request.provider,
                    request_model=self.request.model, response_model=data.response_model if data else None,
                    input_tokens=usage.input_tokens if usage else None,
                    output_tokens=usage.output_tokens if usage else None,
                    duration_s=time.monotonic() - self._t0, error_type=error_type, cost_usd=cost,
                    project=run.project if run is not None else None, owner=run.owner if run is not None else None,
                    sinks=sinks)
        except Exception as exc:  # noqa: BLE001 - fail_open, inlined (the hot path)
            log_internal_error("llm span: metrics", exc)
        if run is None:
            return
        try:
            # The totals and the completion's detectors: one step under the run's lock.
            ctx = span.get_span_context()
            events = run._live.record_llm_call(runs.CallFigures(
                cost_usd=cost, span_ref=(ctx.trace_id, ctx.span_id),
                input_tokens=usage.input_tokens if usage else 0,
                output_tokens=usage.output_tokens if usage else 0,
                cached_input_tokens=usage.cache_read_tokens if usage else 0,
                reasoning_tokens=(usage.reasoning_tokens or 0) if usage else 0,
            ), completion_text(data) if data is not None else "",
                policy=installed.policy if installed is not None else None)
        except Exception as exc:  # noqa: BLE001 - fail_open, inlined (the hot path)
            log_internal_error("llm span: run totals", exc)
            events = []
        if events:
            try:
                for name, event_attrs in events:
                    span.add_event(name, event_attrs)
                if any(name == semconv.EVENT_LOOP for name, _ in events):
                    span.set_attribute(semconv.LOOP_DETECTED, True)
            except Exception as exc:  # noqa: BLE001 - fail_open, inlined (the hot path)
                log_internal_error("llm span: observe completion", exc)
        if data is None:
            return
        if data.tool_calls:
            with _GUARD_REQUESTED_TOOL_CALLS:
                run._live.note_requested_tool_calls([(c.id or "", c.name or "", c.arguments or "") for c in data.tool_calls if c.name])

    def _response_attributes(self, data: ResponseData, attrs: dict[str, Any]) -> None:
        # ResponseData holds None or a value (the readers drop the SDKs' sentinels): a test, not put().
        if data.response_id is not None:
            attrs[semconv.GEN_AI_RESPONSE_ID] = data.response_id
        if data.response_model is not None:
            attrs[semconv.GEN_AI_RESPONSE_MODEL] = data.response_model
        if data.finish_reasons:
            attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = list(data.finish_reasons)
        if data.service_tier and self.request.provider == semconv.PROVIDER_OPENAI:
            attrs[semconv.OPENAI_RESPONSE_SERVICE_TIER] = data.service_tier
        if data.tool_calls:
            attrs[semconv.REQUESTED_TOOL_NAMES] = [c.name or "" for c in data.tool_calls]
            attrs[semconv.REQUESTED_TOOL_CALL_IDS] = [c.id or "" for c in data.tool_calls]
        usage = data.usage
        if usage is not None:
            attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] = usage.input_tokens
            attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output_tokens
            attrs[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cache_read_tokens
            for key, value in ((semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, usage.cache_write_tokens),
                               (semconv.USAGE_CACHE_WRITE_5M_TOKENS, usage.cache_write_5m_tokens),
                               (semconv.USAGE_CACHE_WRITE_1H_TOKENS, usage.cache_write_1h_tokens),
                               (semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, usage.reasoning_tokens)):
                if value is not None:  # an int or None (TokenUsage): a test, not put()
                    attrs[key] = value
            if usage.input_tokens > 0:
                uncached = max(usage.input_tokens - usage.cache_read_tokens, 0)
                attrs[semconv.CONTEXT_UNCACHED_INPUT_SHARE] = round(uncached / usage.input_tokens, 6)
        if self.capture_content and data.output_messages:
            attrs[semconv.GEN_AI_OUTPUT_MESSAGES] = to_json(data.output_messages)

    def _price(self, data: ResponseData | None, usage: Usage | None) -> pricing.Price:
        token_usage = usage  # the one usage type: priced as it is, no copy
        pricer = self._pricer
        tier = data.service_tier if data is not None else None
        duration = time.monotonic() - self._t0
        served = data.response_model if data is not None else None
        requested = self.request.model
        price = pricer.price(token_usage, model=served or requested, provider=self.request.provider,
                             service_tier=tier, when=self.started, duration_s=duration)
        if (price.unpriced_reason == semconv.UNPRICED_UNKNOWN_MODEL and served and requested
                and requested != served):
            # A snapshot the price table does not list yet (gpt-5.5-2026-09-01): the
            # alias the caller asked for is priced the same.
            price = pricer.price(token_usage, model=requested, provider=self.request.provider,
                                 service_tier=tier, when=self.started, duration_s=duration)
        return price




class _Sending:
    """``with call.sending():`` around the SDK's request: the span is current and ``IN_LLM_CALL`` is set.

    An exception the SDK raises ends the span as failed and goes on to the caller
    unchanged. A plain attach/detach of the span's context: ``trace.use_span``
    does the same through a generator context manager, at several times the cost.
    """

    __slots__ = ("call", "_context", "_in_call")

    def __init__(self, call: LLMCall) -> None:
        self.call = call

    def __enter__(self) -> None:
        self._in_call = _wrap.IN_LLM_CALL.set(True)
        self._context = context.attach(trace.set_span_in_context(self.call.span))

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        context.detach(self._context)
        try:
            if exc is not None:
                self.call.fail(exc)
        finally:
            _wrap.IN_LLM_CALL.reset(self._in_call)


# --- the budget's projection of a request ---------------------------------------------

def plan_call(request: Request) -> projection.CallPlan:
    """What ``request`` is expected to use, for the run's budget (``runtrace.budget.Budget``)."""
    attrs = request.attributes
    input_tokens = projection.prompt_tokens.count(request.prompt) if request.prompt else 0
    cap = as_int(attrs.get(semconv.GEN_AI_REQUEST_MAX_TOKENS))
    if cap is not None:
        cap *= max(as_int(attrs.get(semconv.GEN_AI_REQUEST_CHOICE_COUNT)) or 1, 1)
    if request.operation not in (semconv.OP_CHAT, semconv.OP_TEXT_COMPLETION, semconv.OP_GENERATE_CONTENT):
        cap = 0  # embeddings and the like produce no output tokens
    model, provider = request.model, request.provider
    tier = as_str(attrs.get(semconv.OPENAI_REQUEST_SERVICE_TIER))

    def price(input_tokens: int, output_tokens: int) -> float | None:
        if model is None:
            return None
        usage = pricing.TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens)
        return pricing.default_pricer().price(usage, model=model, provider=provider, service_tier=tier).total_usd

    return projection.CallPlan(input_tokens=input_tokens, max_output_tokens=cap, price=price, model=model)

