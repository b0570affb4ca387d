"""Recording an exception on a span without leaking content.

An exception's message is content: a tool's ``ValueError(f"no customer {email}")``
carries its arguments, a provider's 400 often quotes the prompt back. So with
content capture off the span keeps what identifies the failure, never what
the failing code was handling:

- status ERROR with the exception's type name as its description,
- ``error.type`` (the qualified name),
- an ``exception`` event with ``exception.type`` and a stack trace of frames
  only (file, line, function and source line: program text, not data), no
  ``exception.message`` and no chained exceptions (their messages are content too).
  A source line shows what the program says (``raise ValueError(f"no {email}")``),
  not the values it held; a secret written as a literal in the source is the
  program's own text and would show, as it does in any traceback.

With capture on it is OpenTelemetry's default: ``record_exception`` (message and
full trace) and ``"{Type}: {message}"`` as the status description.
"""

from __future__ import annotations

import traceback

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from . import semconv

__all__ = ["exception_type_name", "record_error"]


def exception_type_name(exc: BaseException) -> str:
    """``module.Qualname`` as the SDK's ``record_exception`` spells ``exception.type``."""
    module = type(exc).__module__
    qualname = type(exc).__qualname__
    return f"{module}.{qualname}" if module and module != "builtins" else qualname


def _frames_only(exc: BaseException) -> str:
    """The traceback's frames and the exception's type, without its message or its chain."""
    return "".join(["Traceback (most recent call last):\n", *traceback.format_tb(exc.__traceback__),
                    exception_type_name(exc), "\n"])


def record_error(span: trace.Span, exc: BaseException, *, capture_content: bool,
                 event: bool = True) -> None:
    """Mark ``span`` failed by ``exc``; its message only when ``capture_content`` (see module doc).

    ``event=False`` sets the status and ``error.type`` but adds no ``exception``
    event (for a ``BaseException`` such as a cancellation, as the LLM span does).
    """
    name = type(exc).__name__
    if capture_content:
        if event:
            span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{name}: {exc}"))
    else:
        if event:
            span.add_event(semconv.EVENT_EXCEPTION, {
                semconv.EXCEPTION_TYPE: exception_type_name(exc),
                semconv.EXCEPTION_STACKTRACE: _frames_only(exc),
                semconv.EXCEPTION_ESCAPED: "False",
            })
        span.set_status(Status(StatusCode.ERROR, name))
    span.set_attribute(semconv.ERROR_TYPE, type(exc).__qualname__)
