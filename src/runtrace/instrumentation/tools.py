"""``@runtrace.tool``: an ``execute_tool {name}`` span per call of an agent's own tool.

The span carries hashes of the arguments and the result (stable JSON), which
is what the repeated-read and loop detectors compare; the values themselves
are recorded only when content capture is on, and so are the argument
previews in detection sentences and exception messages. The run's tool budget is
checked before the function runs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar, overload

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind

from .. import _config, _state, detect, runs, semconv
from .._errors import record_error
from .._internal import fail_open, log_internal_error
from ._llm import stamp_run

F = TypeVar("F", bound=Callable[..., Any])

CALL_ID_PARAMETERS = ("tool_call_id", "call_id")


# A failed tool call's fail_open guard, made once (a guard holds only its label). The three steps
# every call takes are try/except Exception with the label fail_open would log, written out: a
# guard's enter/exit is two calls (issue 14).
_GUARD_ERROR = fail_open("tool span error")


class _Arguments:
    """A tool's call arguments by parameter name, as ``Signature.bind`` names them, without a bind per call.

    For a function of plain parameters (no ``*args``, ``**kwargs`` or positional-only
    ones) the names are matched here: positional values to the parameters in order,
    keywords as given, in the signature's order, defaults left out. Anything else
    (another shape, a call the function will refuse) goes through ``bind``, or, for
    a call that does not bind, ``{"args": [...], **kwargs}`` as before.
    """

    __slots__ = ("signature", "names", "positional", "required")

    def __init__(self, signature: inspect.Signature | None) -> None:
        self.signature = signature
        self.names: tuple[str, ...] | None = None
        self.positional = 0
        self.required: frozenset[str] = frozenset()
        if signature is None:
            return
        params = list(signature.parameters.values())
        plain = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        if any(p.kind not in plain for p in params):
            return
        self.names = tuple(p.name for p in params)
        self.positional = sum(1 for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD)
        self.required = frozenset(p.name for p in params if p.default is inspect.Parameter.empty)

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        names = self.names
        if names is not None and len(args) <= self.positional:
            given = dict(zip(names, args, strict=False))
            for k in kwargs:  # a loop, not all(<generator>): a generator step a keyword (issue 14)
                if k not in names or k in given:
                    return self._bound(args, kwargs)
            given.update(kwargs)
            if self.required.issubset(given):
                return {k: given[k] for k in names if k in given and k not in _UNRECORDED}
        return self._bound(args, kwargs)

    def _bound(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.signature is None:
            return {"args": list(args), **kwargs}
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError:  # the call itself is wrong; the function will say so
            return {"args": list(args), **kwargs}
        return {k: v for k, v in bound.arguments.items() if k not in _UNRECORDED}


_UNRECORDED = frozenset(("self", "cls", *CALL_ID_PARAMETERS))


def preview_args(arguments: Mapping[str, Any], limit: int = 80) -> str:
    """path='src/app.py': how detections show a call's arguments in a sentence."""
    parts = []
    for key, value in arguments.items():
        text = repr(value)
        parts.append(f"{key}={text if len(text) <= 40 else text[:37] + '...'}")
    out = ", ".join(parts)
    return out if len(out) <= limit else out[: limit - 3] + "..."


class ToolCall:
    """One tool call's span, from its arguments to its result; shared by @tool and MCP."""

    def __init__(self, name: str, arguments: Mapping[str, Any], *, call_id: str | None = None,
                 source: str = "decorator", description: str | None = None) -> None:
        self.name = name
        self.arguments = dict(arguments)
        self.run = runs.current_run()
        installed = _state.current()  # read once for the call: its policy and settings
        if self.run is not None:
            # may raise BudgetExceeded: before the tool runs
            self.run._live.check_budget("tool", tool_name=name,
                                        policy=installed.policy if installed is not None else None)
        self.settings = installed.settings if installed is not None else _config.settings()
        self.span: trace.Span = trace.INVALID_SPAN
        self.args_hash = ""
        self._names_run = False
        self._token: object = None
        try:  # fail_open, written out: "tool span start"
            self.args_hash = detect.stable_hash(self.arguments)
            if call_id is None and self.run is not None:
                call_id = self.run._live.requested_call_id(name, self.args_hash)
            attrs: dict[str, Any] = {
                semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL, semconv.GEN_AI_TOOL_NAME: name,
                semconv.GEN_AI_TOOL_TYPE: "function" if source == "decorator" else "extension",
                semconv.TOOL_ARGS_HASH: self.args_hash, semconv.TOOL_SOURCE: source,
            }
            if call_id:
                attrs[semconv.GEN_AI_TOOL_CALL_ID] = call_id
            if description:
                attrs[semconv.GEN_AI_TOOL_DESCRIPTION] = description
            if self.settings.capture_content:
                attrs[semconv.GEN_AI_TOOL_CALL_ARGUMENTS] = detect.canonical_json(self.arguments)
            self._names_run = stamp_run(self.run, attrs)
            self.span = self.settings.tracer("runtrace.tools").start_span(
                f"{semconv.OP_EXECUTE_TOOL} {name}", kind=SpanKind.INTERNAL, attributes=attrs)
        except Exception as exc:  # noqa: BLE001 - the tool runs untraced
            log_internal_error("tool span start", exc)

    def __enter__(self) -> ToolCall:
        """The span current while the tool runs (an LLM call inside it nests under it)."""
        self._context = context.attach(trace.set_span_in_context(self.span))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """An exception the tool raised ends the span as failed, and goes on to the caller unchanged."""
        context.detach(self._context)
        if exc is not None:
            self.fail(exc)

    def finish(self, result: Any) -> None:
        attrs: dict[str, Any] = {}
        events: list[tuple[str, dict[str, Any]]] = []
        try:  # fail_open, written out: "tool span end"
            if isinstance(result, str):
                text, result_hash = result, detect.stable_hash(result)
            else:  # the hash of the JSON it is shown as: one canonical_json, not two
                text = detect.canonical_json(result)
                result_hash = detect.text_hash(text)
            tokens = detect.estimate_tokens(text)
            attrs[semconv.TOOL_RESULT_HASH] = result_hash
            if self.settings.capture_content:
                attrs[semconv.GEN_AI_TOOL_CALL_RESULT] = text
            if self.run is not None:
                seen, events = self.run._live.observe_tool_call(
                    self.name, self.args_hash, result_hash, tokens,
                    args_preview=self._args_preview())
                attrs.update(seen)
        except Exception as exc:  # noqa: BLE001 - the span ends with what is known
            log_internal_error("tool span end", exc)
        try:  # fail_open, written out: "tool span attributes"
            self.span.set_attributes(attrs)  # one pass over the SDK's attribute lock, not three
            for event_name, event_attrs in events:
                self.span.add_event(event_name, event_attrs)
        except Exception as exc:  # noqa: BLE001
            log_internal_error("tool span attributes", exc)
        self._end()

    def _end(self) -> None:
        self.span.end()
        if self._names_run and self.run is not None:
            self.run._live.mark_attributed()  # what RunStampProcessor does for the spans it names

    def fail(self, exc: BaseException) -> None:
        with _GUARD_ERROR:
            # The message may quote the arguments: kept only when content capture is on.
            record_error(self.span, exc, capture_content=self.settings.capture_content)
            if self.run is not None:
                # A failed call still counts as a tool call; its "result" is the error.
                self.run._live.observe_tool_call(self.name, self.args_hash, detect.stable_hash(repr(exc)), 0,
                                           args_preview=self._args_preview())
        self._end()

    def _args_preview(self) -> str:
        """The arguments as detection sentences show them: only when content capture is on.

        With capture off the sentence names the tool and counts, never a value
        the tool received (an e-mail address, a key, a file path).
        """
        return preview_args(self.arguments) if self.settings.capture_content else ""


def _call_id(kwargs: Mapping[str, Any]) -> str | None:
    for key in CALL_ID_PARAMETERS:
        value = kwargs.get(key)
        if isinstance(value, str) and value:
            return value
    return None


@overload
def tool(func: F, /) -> F: ...
@overload
def tool(*, name: str | None = None, description: str | None = None) -> Callable[[F], F]: ...


def tool(func: F | None = None, /, *, name: str | None = None,
         description: str | None = None) -> F | Callable[[F], F]:
    """Trace an agent tool: ``@runtrace.tool`` or ``@runtrace.tool(name="read_file")``.

    When the function takes a ``tool_call_id`` (or ``call_id``) argument, its
    value is recorded as ``gen_ai.tool.call.id``; otherwise the id is taken
    from the latest LLM response in the run that asked for this tool with the
    same arguments.
    """

    def decorate(fn: F) -> F:
        tool_name = name or fn.__name__
        try:
            arguments = _Arguments(inspect.signature(fn))
        except (TypeError, ValueError):
            arguments = _Arguments(None)
        doc = description or (inspect.getdoc(fn) or "").split("\n", 1)[0] or None

        def start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> ToolCall:
            return ToolCall(tool_name, arguments(args, kwargs), call_id=_call_id(kwargs), description=doc)

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with start(args, kwargs) as call:
                    result = await fn(*args, **kwargs)
                call.finish(result)
                return result
            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with start(args, kwargs) as call:
                result = fn(*args, **kwargs)
            call.finish(result)
            return result
        return wrapper  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate
