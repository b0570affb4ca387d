"""The patch table: (module, "Class.method", wrapper factory) rows, each applied on its own.

A client release that lacks one method (an older openai without ``parse``, a
newer one that moved ``embeddings``) skips that row and nothing else. Each row
remembers exactly what it replaced, so ``revert`` puts the very same object
back (tests check ``Completions.create is original``), and a row already
wrapped by runtrace is left alone, so instrumenting twice wraps once.

The wrappers stay reachable after ``revert`` through bound methods the SDKs
cache (``client.chat.completions.with_raw_response.create`` binds ``create``
once), so every wrapper checks :func:`is_active` and passes straight through
when runtrace is not instrumenting.
"""

from __future__ import annotations

import contextvars
import importlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import wrapt

from .. import _state

logger = logging.getLogger("runtrace")

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]

# Set on the FunctionWrapper objects runtrace installs; the ``_self_`` prefix keeps
# wrapt from forwarding the attribute to the wrapped function.
_MARK = "_self_runtrace_patch"

# True while a traced LLM call runs in this context: a patched method that the
# SDK calls from inside another one (openai 1.x beta ``parse`` -> ``create``)
# then passes through instead of making a second span for the same request.
IN_LLM_CALL: contextvars.ContextVar[bool] = contextvars.ContextVar("runtrace_in_llm_call", default=False)

def is_active(integration: str) -> bool:
    """True while ``integration`` ("openai", "anthropic") is among the installed state's patched clients."""
    return active_state(integration) is not None


def active_state(integration: str) -> _state.Installed | None:
    """The installed state while ``integration`` is among its patched clients, else None.

    A call reads the state once, here, and passes it down (issue 14: nine reads a call before).
    """
    installed = _state.current()
    return installed if installed is not None and integration in installed.patched else None


@dataclass(frozen=True)
class Patch:
    """One row of a patch table: wrap ``module.Class.method`` with ``factory()``."""

    module: str
    target: str  # "Class.method"
    factory: Callable[[], Wrapper]


@dataclass(frozen=True)
class Applied:
    patch: Patch
    owner: Any  # the class whose attribute was replaced
    attribute: str
    original: Any  # what owner.__dict__[attribute] held, or None when it was inherited
    own: bool  # the attribute was in owner.__dict__ (else it came from a base class)


def _resolve(patch: Patch) -> tuple[Any, str, Any, bool] | None:
    try:
        owner: Any = importlib.import_module(patch.module)
    except ImportError as exc:
        logger.debug("runtrace: %s not patched: %s", patch.module, exc)
        return None
    *path, attribute = patch.target.split(".")
    for name in path:
        owner = getattr(owner, name, None)
        if owner is None:
            logger.debug("runtrace: %s.%s not patched: %s is missing", patch.module, patch.target, name)
            return None
    own = attribute in vars(owner)
    current = vars(owner)[attribute] if own else getattr(owner, attribute, None)
    if current is None:
        logger.debug("runtrace: %s.%s not patched: no such method", patch.module, patch.target)
        return None
    return owner, attribute, current, own


def apply(patches: Iterable[Patch]) -> list[Applied]:
    """Wrap every row that exists in the installed release; returns what was wrapped."""
    applied: list[Applied] = []
    for patch in patches:
        found = _resolve(patch)
        if found is None:
            continue
        owner, attribute, current, own = found
        if getattr(current, _MARK, False):  # ours already (instrumented twice)
            continue
        wrapper = wrapt.FunctionWrapper(current, patch.factory())
        setattr(wrapper, _MARK, True)
        setattr(owner, attribute, wrapper)
        applied.append(Applied(patch, owner, attribute, current if own else None, own))
    return applied


def revert(applied: Iterable[Applied]) -> None:
    """Put back exactly what ``apply`` replaced (the same objects, not copies)."""
    for row in applied:
        if not getattr(vars(row.owner).get(row.attribute), _MARK, False):
            continue  # someone else re-patched it since; leave their wrapper in place
        if row.own:
            setattr(row.owner, row.attribute, row.original)
        else:
            delattr(row.owner, row.attribute)


class Integration:
    """One client's patch table, applied and reverted as a whole (what each client module exposes)."""

    def __init__(self, name: str, patches: Iterable[Patch]) -> None:
        self.name = name
        self.patches = tuple(patches)
        self.applied: list[Applied] = []

    def instrument(self) -> bool:
        """Patch the installed client; True when at least one method was patched."""
        self.applied.extend(apply(self.patches))
        return bool(self.applied)

    def uninstrument(self) -> None:
        """Restore every patched method (the very objects that were there before)."""
        revert(self.applied)
        self.applied.clear()

    def patched_methods(self) -> list[str]:
        """``module:Class.method`` of every method currently patched (for diagnostics and tests)."""
        return [f"{a.patch.module}:{a.patch.target}" for a in self.applied]
