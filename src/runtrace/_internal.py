"""Fail-open helpers: instrumentation must never break the user's program.

An error inside runtrace is logged once per call site and swallowed, except
under pytest (``PYTEST_CURRENT_TEST``), where it is re-raised so that our own
bugs fail our tests instead of hiding (logfire's discipline).
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger("runtrace")

_logged: set[str] = set()


def log_internal_error(where: str, exc: BaseException) -> None:
    """Log an internal error once per ``where``; re-raise it under pytest."""
    if os.environ.get("PYTEST_CURRENT_TEST") and not os.environ.get("RUNTRACE_FAIL_OPEN_IN_TESTS"):
        raise exc
    if where not in _logged:
        _logged.add(where)
        logger.warning("runtrace: internal error in %s (further ones are logged at debug)", where,
                       exc_info=exc)
    else:
        logger.debug("runtrace: internal error in %s", where, exc_info=exc)


class fail_open:  # noqa: N801 - used like a function: `with fail_open("where"):`
    """Run a block of runtrace's own work; an exception in it never reaches the caller.

    A class rather than a ``@contextmanager`` generator: it wraps about ten
    steps of every LLM call, and this costs a fraction of a generator's setup.
    """

    __slots__ = ("where",)

    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if exc is not None and isinstance(exc, Exception):
            log_internal_error(self.where, exc)
            return True
        return False
