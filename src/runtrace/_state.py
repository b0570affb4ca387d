"""The one state ``instrument()`` installs, published whole and read through :func:`current`.

Everything that ``instrument()`` decides and the per-call code reads (the
settings and their tracers, the pricer, the default budget and loop thresholds,
the policy, the metric instruments, the provider and processors, the clients
patched so far) is one :class:`Installed` object. ``instrument()`` builds it
completely and then publishes it with one assignment; ``uninstrument()`` swaps
in ``None`` the same way. So a thread reads either the whole of one
configuration or none of it, never half of an old one and half of a new one,
and once ``uninstrument()`` has swapped it out no module of runtrace keeps the
old configuration alive.

This module imports nothing of runtrace at run time (only for type hints), so
any part may read the state without an import cycle: pricing, metrics, runs,
the policy and the instrumentations all do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from ._config import Settings
    from ._processors import SwitchableProcessor
    from .budget import Budget
    from .detect import LoopThresholds
    from .metrics import MeterSinks
    from .policy_enforce import ActivePolicy
    from .pricing import Pricer


@dataclass(frozen=True)
class Installed:
    """What one ``instrument()`` call set up; replaced whole, never changed field by field.

    ``patched`` is the one part that grows after publication: a client is patched
    when the program imports it, which may be long after ``instrument()`` returned
    (``_setup`` appends to it under its lock).
    """

    settings: Settings
    pricer: Pricer
    default_budget: Budget | None
    loop_thresholds: LoopThresholds
    policy: ActivePolicy | None
    meters: MeterSinks | None
    provider: TracerProvider
    switch: SwitchableProcessor
    owns_provider: bool
    store_path: str | None
    patched: list[str] = field(default_factory=list)


_current: Installed | None = None


def current() -> Installed | None:
    """The installed state (None: runtrace is not instrumenting). Hot path: one global read."""
    return _current


def publish(state: Installed | None) -> Installed | None:
    """Make ``state`` the process's (None: not instrumented); returns the one it replaced.

    Only ``_setup.instrument()`` / ``uninstrument()`` call this, under their lock.
    """
    global _current
    previous, _current = _current, state
    return previous


__all__ = ["Installed", "current", "publish"]
