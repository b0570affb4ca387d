"""MCP: every ``ClientSession.call_tool`` is one ``execute_tool {name}`` span.

MCP tools are tools like any other to a run: the span comes from the shared
:class:`~runtrace.instrumentation.tools.ToolCall`, so an MCP call gets the
same hashes, tool budget check (``BudgetExceeded`` before the request is
sent) and repeated-read and loop detection as ``@runtrace.tool``. The result
hash covers the result's ``content`` blocks, what the model will be shown.
A result with ``isError`` is a failed tool call (span status ERROR,
``error.type=tool_error``) but is returned to the caller unchanged: that is
how MCP reports tool failures, not an exception. The error text becomes the
status description only when content capture is on (it is the tool's output).

mcp 2.x has a higher-level ``mcp.client.client.Client`` whose ``call_tool``
may send several ``tools/call`` requests for one call (input-required rounds,
a resend after a stale tool listing); it is patched too, and the session
calls it makes underneath are not spanned again, so one logical call is one span.

Trace context: mcp 2.x itself injects W3C ``traceparent``/``baggage`` into
each request's ``params._meta`` through the global propagator (SEP-414), so
the run id reaches an instrumented server with no help. Older SDKs whose
``call_tool`` takes ``meta=`` get the same keys injected here.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Mapping
from typing import Any

import wrapt
from opentelemetry import propagate
from opentelemetry.trace import Status, StatusCode

from .. import semconv
from .._internal import fail_open
from .tools import ToolCall

_patched: list[tuple[type, str, Any]] = []  # (class, attribute, the original from the class __dict__)

# Set while a Client.call_tool span is open: the ClientSession calls beneath it are part of it.
_in_client_call: contextvars.ContextVar[bool] = contextvars.ContextVar("runtrace_mcp_client_call",
                                                                        default=False)

_ERROR_TEXT_LIMIT = 200
_IS_ERROR_TEXT = "the MCP tool returned isError"


def _sdk_propagates_context() -> bool:
    try:
        from mcp.shared._otel import inject_trace_context  # noqa: F401
    except ImportError:
        return False
    return True


def instrument() -> bool:
    """Patch the MCP client; False when ``mcp`` is not installed."""
    try:
        from mcp.client.session import ClientSession
    except ImportError:
        return False
    if _patched:
        return True
    targets: list[tuple[type, bool]] = [(ClientSession, False)]
    try:
        from mcp.client.client import Client  # mcp 2.x
    except ImportError:
        pass
    else:
        targets.append((Client, True))
    sdk_propagates = _sdk_propagates_context()
    attribute = "call_tool"
    for cls, outer in targets:
        original = cls.__dict__.get(attribute)
        if original is None:
            continue
        inject = not outer and not sdk_propagates and _takes_meta(original)
        _patched.append((cls, attribute, original))
        setattr(cls, attribute, wrapt.FunctionWrapper(original, _make_wrapper(outer=outer, inject=inject)))
    return bool(_patched)


def uninstrument() -> None:
    """Put back the exact function objects ``instrument()`` replaced."""
    while _patched:
        cls, attribute, original = _patched.pop()
        setattr(cls, attribute, original)


def _takes_meta(function: Any) -> bool:
    try:
        return "meta" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _make_wrapper(*, outer: bool, inject: bool) -> Any:
    async def call_tool(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if _in_client_call.get():
            return await wrapped(*args, **kwargs)
        name = args[0] if args else kwargs.get("name")
        if not isinstance(name, str):  # a malformed call: the SDK will say what is wrong
            return await wrapped(*args, **kwargs)
        arguments = args[1] if len(args) > 1 else kwargs.get("arguments")
        if arguments is None:
            arguments = {}
        elif not isinstance(arguments, Mapping):
            arguments = {"arguments": arguments}
        call = ToolCall(name, arguments, source=semconv.TOOL_SOURCE_MCP)  # may raise BudgetExceeded
        token = _in_client_call.set(True) if outer else None
        try:
            with call:  # an exception fails the span and goes on unchanged
                if inject:
                    kwargs = _with_trace_context(kwargs)
                result = await wrapped(*args, **kwargs)
        finally:
            if token is not None:
                _in_client_call.reset(token)
        _finish(call, result)
        return result

    return call_tool


def _with_trace_context(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``meta=`` with the W3C trace context and baggage added (for SDKs that do not add it)."""
    with fail_open("mcp trace context"):
        carrier: dict[str, Any] = dict(kwargs.get("meta") or {})
        propagate.inject(carrier)
        if carrier:
            return {**kwargs, "meta": carrier}
    return kwargs


def _finish(call: ToolCall, result: Any) -> None:
    payload: Any = None
    with fail_open("mcp tool result"):
        payload = _result_payload(result)
        if _is_error(result):
            # The error text is the tool's output (it often quotes the arguments): only with capture on.
            text = _error_text(result) if call.settings.capture_content else _IS_ERROR_TEXT
            call.span.set_status(Status(StatusCode.ERROR, text))
            call.span.set_attribute(semconv.ERROR_TYPE, semconv.ERROR_TYPE_TOOL_ERROR)
    call.finish(payload)


def _dump(value: Any) -> Any:
    method = getattr(value, "model_dump", None)
    return method(mode="json", exclude_none=True) if callable(method) else value


def _result_payload(result: Any) -> Any:
    """What is hashed: the content blocks of a CallToolResult, else the whole result."""
    content = getattr(result, "content", None)
    if isinstance(content, list):
        return [_dump(block) for block in content]
    return _dump(result)


def _is_error(result: Any) -> bool:
    flag = getattr(result, "is_error", None)  # mcp 2.x
    if flag is None:
        flag = getattr(result, "isError", None)  # mcp 1.x
    return flag is True


def _error_text(result: Any) -> str:
    for block in getattr(result, "content", None) or ():
        text = getattr(block, "text", None)
        if isinstance(text, str) and text:
            return text if len(text) <= _ERROR_TEXT_LIMIT else text[: _ERROR_TEXT_LIMIT - 3] + "..."
    return _IS_ERROR_TEXT
