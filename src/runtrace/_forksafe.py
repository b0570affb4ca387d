"""Locks that a forked child can take.

``fork()`` copies only the forking thread, but it copies every lock in the state
it was in: a lock another parent thread held at that moment stays held in the
child forever, and the child's first span, run or flush then hangs on it. The
OTel SDK re-creates its own locks after fork (``os.register_at_fork``); this
does the same for every lock runtrace makes, in one place, so a new lock cannot
be forgotten.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType


class ForkSafeLock:
    """A ``threading.Lock`` (or ``RLock``) replaced by a fresh, unheld one in a forked child.

    ``with lock:`` costs two Python calls (``__enter__``/``__exit__``) around the
    lock's own two. Code that takes the lock on every LLM or tool call writes
    ``with lock.raw:`` instead: ``raw`` is the lock object itself, read at each
    use, so after a fork it is the child's fresh one (issue 14: five pairs a call).
    """

    __slots__ = ("_factory", "raw", "__weakref__")

    def __init__(self, factory: Callable[[], threading.Lock] | Callable[[], threading.RLock] = threading.Lock) -> None:
        self._factory = factory
        self.raw: threading.Lock | threading.RLock = factory()
        _locks.add(self)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self.raw.acquire(blocking, timeout)

    def release(self) -> None:
        self.raw.release()

    def __enter__(self) -> bool:
        return self.raw.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.raw.release()

    def _reset(self) -> None:
        self.raw = self._factory()


def fork_safe_rlock() -> ForkSafeLock:
    return ForkSafeLock(threading.RLock)


_locks: weakref.WeakSet[ForkSafeLock] = weakref.WeakSet()


# A fork while another thread is importing a module leaves that module's import
# lock held in the child, and the child's first use of the module hangs. Python
# cannot undo that after the fact, so runtrace's lazy first uses (loading
# tiktoken, genai-prices' data) run inside ``first_use()`` and ``fork()`` waits
# for them, up to FIRST_USE_FORK_WAIT_S: a slow load delays a fork, never hangs it.
FIRST_USE_FORK_WAIT_S = 10.0
_first_use = threading.RLock()
_first_use_taken: list[bool] = []


@contextmanager
def first_use() -> Iterator[None]:
    """Hold off ``os.fork()`` while a lazy import or load runs (see above)."""
    gate = _first_use  # the object entered is the one released, even across a fork
    with gate:
        yield


def _before_fork() -> None:
    _first_use_taken.append(_first_use.acquire(timeout=FIRST_USE_FORK_WAIT_S))


def _after_fork_in_parent() -> None:
    if _first_use_taken and _first_use_taken.pop():
        _first_use.release()


def _reset_in_child() -> None:
    global _first_use
    _first_use = threading.RLock()
    _first_use_taken.clear()
    for lock in list(_locks):
        lock._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_reset_in_child)
