"""The hand-off between runtrace's stream-manager wrappers and ``_processors.DuplicateMarker``.

anthropic's ``messages.stream()`` returns a manager that sends the request only
when it is entered, so runtrace's span of that call starts later than the
``stream()`` call. Another instrumentation (OpenLLMetry) makes its span of the
same request *at* ``stream()`` and, for ``beta.messages.stream()``, ends it
right away: by the time runtrace's span starts, the other span is gone and can
no longer be marked. So the wrapper announces the call while ``stream()`` runs
(:func:`llm_call_setup`), and the marker marks, while they are still open, the
foreign LLM spans that start inside that window or are open around it.

A module of its own because the instrumentation may not import the span
processors (docs/architecture.md, the doors between the rooms), and the
processors must not import the instrumentation.
"""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from ._internal import fail_open


class Listener(Protocol):
    """What hears of a set-up: ``DuplicateMarker``."""

    def on_llm_call_setup(self) -> None: ...


# True while runtrace's wrapper sets up an LLM call whose span starts later.
SETUP: contextvars.ContextVar[bool] = contextvars.ContextVar("runtrace_llm_call_setup", default=False)

# Weak: a marker dropped with its provider (uninstrument()) is not kept alive here.
_listeners: weakref.WeakSet[Listener] = weakref.WeakSet()


def listen(listener: Listener) -> None:
    _listeners.add(listener)


@contextmanager
def llm_call_setup() -> Iterator[None]:
    """Wraps the SDK's ``stream()`` while runtrace prepares a call whose span starts at ``__enter__``."""
    for listener in list(_listeners):
        with fail_open("duplicate marking: claim the span around a stream manager"):
            listener.on_llm_call_setup()
    token = SETUP.set(True)
    try:
        yield
    finally:
        SETUP.reset(token)
