"""The shared Pricer: built once from ``RUNTRACE_PRICES`` (or plain genai-prices), replaced by ``instrument(prices=...)``.

The instrumentations, the store's ingest and the what-if pages all price
through :func:`default_pricer`, so one configuration holds everywhere in the
process.
"""

from __future__ import annotations

import os

from .. import _state, semconv
from .._forksafe import ForkSafeLock
from .overrides import read_prices_file
from .pricer import Pricer

__all__ = ["default_pricer", "load_prices_file", "set_default_pricer"]

_default: Pricer | None = None
_default_lock = ForkSafeLock()


def load_prices_file(path: str | os.PathLike[str]) -> Pricer:
    """Read an overrides file (format in :mod:`runtrace.pricing`) into a Pricer; a bad key raises naming it."""
    overrides, multipliers, where = read_prices_file(path)
    return Pricer(overrides, multipliers, source_label=where)


def default_pricer() -> Pricer:
    """The Pricer in effect: ``instrument(prices=...)``'s while instrumented (``_state``).

    Otherwise the process's own: ``RUNTRACE_PRICES`` if set, else plain genai-prices, built once.
    """
    global _default
    installed = _state.current()
    if installed is not None:
        return installed.pricer
    pricer = _default
    if pricer is not None:
        return pricer
    with _default_lock:
        if _default is None:
            path = os.environ.get(semconv.ENV_PRICES)
            _default = load_prices_file(path) if path else Pricer()
        return _default


def set_default_pricer(pricer: Pricer | None) -> None:
    """Replace the process's own Pricer (used while not instrumented; ``instrument(prices=...)`` wins).

    None forgets it, to be built again.
    """
    global _default
    if pricer is not None and not isinstance(pricer, Pricer):
        raise TypeError(f"expected a Pricer, got {type(pricer).__name__}")
    with _default_lock:
        _default = pricer
