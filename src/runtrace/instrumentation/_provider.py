"""The provider contract: what a provider module declares, and the one call lifecycle that runs it.

A provider module declares a :class:`Provider`: the client modules it patches,
one :class:`Method` row per SDK method (``"Class.method"``, sync or async,
always a stream or not), how to read a request (``(instance, kwargs) ->
Request``), a response (``-> ResponseData``) and stream chunks (an
accumulator with ``add(chunk)`` / ``result()``). Everything else is here,
written once:

- :func:`call_sync` / :func:`call_async`: pass through when runtrace is off or
  inside another traced call (one span per request); read the request; check
  the run's budget *before* anything is sent (``BudgetExceeded`` is the only
  exception runtrace raises into a program); start the span; send with the span
  current; end it as failed on an error (re-raised unchanged); hand the result
  to the method's result handler;
- :func:`standard_result`: a raw response, a stream (ended by ``_stream``'s
  proxies on exhaustion, error, close, early break or garbage collection) or a
  plain response read at once.

Every read runs inside ``fail_open``: a response shaped in a way nobody
foresaw loses attributes, never the caller's result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .. import _state, runs
from .._internal import fail_open, log_internal_error
from . import _wrap
from ._llm import LLMCall, Request, ResponseData, plan_call
from ._stream import Accumulator, is_raw_response, wrap_raw_response, wrap_stream

ReadRequest = Callable[[Any, dict[str, Any]], Request]  # (instance, kwargs) -> what the request says
ReadResponse = Callable[[Any], ResponseData]  # a response (SDK model or JSON body) -> what it says
OnResult = Callable[[Any, LLMCall], Any]  # (SDK result, call) -> what the caller gets
Prepare = Callable[[dict[str, Any]], dict[str, Any]]  # kwargs -> the kwargs sent (e.g. ask for stream usage)
# (instance, args, kwargs) -> (args, kwargs) to trace the call with, or None: not a call to trace
Adapt = Callable[[Any, tuple[Any, ...], dict[str, Any]], "tuple[tuple[Any, ...], dict[str, Any]] | None"]


@dataclass(frozen=True)
class Method:
    """One patched SDK method; a field left None takes the provider's."""

    target: str  # "Class.method"
    module: str | None = None  # the module holding the class; None: each of the provider's modules
    is_async: bool = False
    stream: bool = False  # the method always returns a stream (else the request's ``stream`` decides)
    request: ReadRequest | None = None
    response: ReadResponse | None = None
    accumulator: Callable[[], Accumulator] | None = None
    on_result: OnResult | None = None  # replaces standard_result (Bedrock's dict with a stream inside)
    prepare: Prepare | None = None
    adapt: Adapt | None = None


@dataclass(frozen=True)
class Endpoint:
    """A method resolved against its provider: everything the lifecycle needs for one call."""

    integration: str
    tracer: str
    request: ReadRequest
    on_result: OnResult
    is_async: bool = False
    stream: bool = False
    prepare: Prepare | None = None
    adapt: Adapt | None = None
    guards: _Guards = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "guards", _Guards(self.integration))


class _Guards:
    """An endpoint's fail_open guards, labelled with its integration once (not an f-string and a guard a step).

    A guard holds only its label, so one instance serves every call and thread.
    """

    __slots__ = ("read_request", "project", "start", "prepare", "read_response")

    def __init__(self, integration: str) -> None:
        self.read_request = fail_open(f"{integration}: read request")
        self.project = fail_open(f"{integration}: project the call's cost")
        self.start = fail_open(f"{integration}: start span")
        self.prepare = fail_open(f"{integration}: prepare request")
        self.read_response = fail_open(f"{integration}: read response")


@dataclass(frozen=True)
class Provider:
    """A provider module's declaration: what to patch, and how to read its requests and responses."""

    name: str  # the integration's name (``_wrap.is_active``)
    tracer: str  # the instrumentation scope of its spans: the module's own name
    modules: tuple[str, ...]  # the client modules holding the patched classes (a missing one is skipped)
    methods: tuple[Method, ...]
    request: ReadRequest
    response: ReadResponse
    accumulator: Callable[[], Accumulator]
    raw_responses: bool = False  # the SDK has ``with_raw_response`` / ``with_streaming_response``
    extra: tuple[_wrap.Patch, ...] = ()  # rows that are not LLM requests (a gate, a stream manager)

    def endpoint(self, method: Method) -> Endpoint:
        on_result = method.on_result or standard_result(
            method.response or self.response, method.accumulator or self.accumulator, self.raw_responses)
        return Endpoint(self.name, self.tracer, method.request or self.request, on_result,
                        is_async=method.is_async, stream=method.stream, prepare=method.prepare,
                        adapt=method.adapt)

    def patches(self) -> tuple[_wrap.Patch, ...]:
        rows = [_wrap.Patch(module, method.target, _factory(self.endpoint(method)))
                for method in self.methods
                for module in ((method.module,) if method.module is not None else self.modules)]
        return (*rows, *self.extra)

    def integration(self) -> _wrap.Integration:
        return _wrap.Integration(self.name, self.patches())

    def module_api(self) -> tuple[tuple[_wrap.Patch, ...], Callable[[], bool], Callable[[], None],
                                  Callable[[], list[str]]]:
        """What a provider module exposes to ``instrument()``: its patch table and the three functions on it.

        ``PATCHES, instrument, uninstrument, patched_methods = PROVIDER.module_api()``
        """
        integration = self.integration()
        return integration.patches, integration.instrument, integration.uninstrument, integration.patched_methods


def _factory(endpoint: Endpoint) -> Callable[[], _wrap.Wrapper]:
    return lambda: wrapper(endpoint)


def standard_result(response: ReadResponse, accumulator: Callable[[], Accumulator],
                    raw_responses: bool = False) -> OnResult:
    """The result handler most methods share: raw response, stream, or a response read at once."""

    def on_result(result: Any, call: LLMCall) -> Any:
        if raw_responses and is_raw_response(result):
            return wrap_raw_response(result, call, response, accumulator)
        if call.request.stream:
            return wrap_stream(result, call, accumulator())
        call.finish(response(result))
        return result

    return on_result


def whole_response(accumulator: Callable[[], Accumulator]) -> ReadResponse:
    """A response reader for SDKs whose whole response reads like one stream chunk (Gemini, Mistral)."""

    def read(response: Any) -> ResponseData:
        acc = accumulator()
        acc.add(response)
        return acc.result()

    return read


# --- the lifecycle -------------------------------------------------------------------

def begin_call(endpoint: Endpoint, instance: Any, kwargs: dict[str, Any],
               installed: _state.Installed) -> LLMCall | None:
    """Read the request, check the budget (may raise ``BudgetExceeded``), start the span.

    ``installed`` is the state read once for this call: its policy, settings and pricer.
    """
    guards = endpoint.guards
    request: Request | None = None
    try:  # fail_open, written out on the steps every call takes (a guard's enter/exit is two calls)
        request = endpoint.request(instance, kwargs)
        if endpoint.stream and not request.stream:
            request = dataclasses.replace(request, stream=True)
    except Exception as exc:  # noqa: BLE001 - a request we cannot read is sent untraced
        log_internal_error(guards.read_request.where, exc)
    run = runs.current_run()
    if run is not None:
        plan = None
        policy = installed.policy
        if request is not None and run._live.projects_calls(policy):
            with guards.project:
                plan = plan_call(request)
        # BudgetExceeded goes to the caller before anything is sent
        run._live.check_budget("llm", plan, policy=policy)
    if request is None:
        return None
    call: LLMCall | None = None
    try:
        call = LLMCall(request, endpoint.tracer, installed, run, is_async=endpoint.is_async)
    except Exception as exc:  # noqa: BLE001 - fail_open, written out
        log_internal_error(guards.start.where, exc)
    return call


def _prepared(endpoint: Endpoint, kwargs: dict[str, Any]) -> dict[str, Any]:
    prepare = endpoint.prepare
    if prepare is not None:
        try:  # fail_open, written out: openai's create prepares every call
            kwargs = prepare(kwargs)
        except Exception as exc:  # noqa: BLE001 - the request goes as the caller made it
            log_internal_error(endpoint.guards.prepare.where, exc)
    return kwargs


def _deliver(endpoint: Endpoint, result: Any, call: LLMCall) -> Any:
    out = result
    try:
        out = endpoint.on_result(result, call)
    except Exception as exc:  # noqa: BLE001 - fail_open, written out: the caller gets its result as it came
        log_internal_error(endpoint.guards.read_response.where, exc)
    if out is result and not call.ended:  # reading it failed: end the span with what is known
        call.finish(None)
    return out


def call_sync(endpoint: Endpoint, instance: Any, kwargs: dict[str, Any],
              send: Callable[[dict[str, Any]], Any], installed: _state.Installed | None = None) -> Any:
    """One sync request through the lifecycle; ``send(kwargs)`` makes it.

    ``installed``: the state the wrapper already found active for this call (else read here).
    """
    if installed is None:
        installed = _wrap.active_state(endpoint.integration)
    if installed is None or _wrap.IN_LLM_CALL.get():
        return send(kwargs)
    call = begin_call(endpoint, instance, kwargs, installed)
    if call is None:
        return send(kwargs)
    kwargs = _prepared(endpoint, kwargs)
    with call.sending():
        result = send(kwargs)
    return _deliver(endpoint, result, call)


async def call_async(endpoint: Endpoint, instance: Any, kwargs: dict[str, Any],
                     send: Callable[[dict[str, Any]], Awaitable[Any]],
                     discard: Callable[[], Any] | None = None, installed: _state.Installed | None = None) -> Any:
    """The same for an async request; ``discard()`` drops a request made ahead that will not be sent."""
    if installed is None:
        installed = _wrap.active_state(endpoint.integration)
    if installed is None or _wrap.IN_LLM_CALL.get():
        return await send(kwargs)
    try:
        call = begin_call(endpoint, instance, kwargs, installed)
    except BaseException:
        if discard is not None:
            discard()  # never sent: e.g. no un-awaited coroutine left behind
        raise
    if call is None:
        return await send(kwargs)
    kwargs = _prepared(endpoint, kwargs)
    with call.sending():
        result = await send(kwargs)
    return _deliver(endpoint, result, call)


def wrapper(endpoint: Endpoint) -> _wrap.Wrapper:
    """The wrapt wrapper of an SDK method: ``call_sync``, or ``call_async`` for an ``async def`` one."""
    call: Callable[..., Any] = call_async if endpoint.is_async else call_sync
    integration, adapt = endpoint.integration, endpoint.adapt

    def wrapped_call(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> Any:
        installed = _wrap.active_state(integration)
        if installed is None:
            return wrapped(*args, **kwargs)
        if adapt is not None:
            adapted = adapt(instance, args, kwargs)
            if adapted is None:  # not a call to trace
                return wrapped(*args, **kwargs)
            args, kwargs = adapted
        return call(endpoint, instance, kwargs, lambda sent: wrapped(*args, **sent), installed=installed)

    return wrapped_call
