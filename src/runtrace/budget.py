"""Budgets: the stop conditions of a run, and the exception that stops it.

Kept apart from ``runs`` so the rules (what a limit is, when it is reached,
what the caller may decide) read in one place; ``Run.check_budget`` applies them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Union

from . import semconv

if TYPE_CHECKING:
    from .runs import Run


@dataclass(frozen=True)
class Breach:
    """Which limit a run hit, and by how much (passed to ``on_exceed`` callables)."""

    limit: str  # the Budget field name, e.g. "max_cost_usd"; "loop" for stop_on_loop
    limit_value: float
    observed: float

    def describe(self) -> str:
        if self.limit == "loop":
            return "a runaway loop was detected"
        return f"{self.limit} = {self.limit_value:g} reached ({self.observed:g} so far)"


OnExceed = Union[Literal["raise", "warn"], Callable[["Run", Breach], Any]]  # noqa: UP007 - evaluated at runtime on 3.10


@dataclass(frozen=True)
class Budget:
    """Stop conditions for one run, checked before every LLM and tool call.

    A limit is reached when the run's figure is already at or past it: a
    budget of $0.05 with calls of $0.03 lets exactly two requests through.
    ``on_exceed`` is ``"raise"`` (default: :class:`BudgetExceeded` before the
    request is sent, outcome ``budget_stopped``), ``"warn"`` (a span event and
    one log line per limit) or a callable ``(run, breach)`` returning a truthy
    value or ``"continue"`` to let the call through, ``"stop"``/falsy to stop.
    """

    max_cost_usd: float | None = None
    max_llm_calls: int | None = None
    max_tool_calls: int | None = None
    max_seconds: float | None = None
    max_input_tokens: int | None = None
    on_exceed: OnExceed = "raise"
    stop_on_loop: bool = False

    def __post_init__(self) -> None:
        for name in ("max_cost_usd", "max_llm_calls", "max_tool_calls", "max_seconds", "max_input_tokens"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or value < 0):
                raise ValueError(f"Budget.{name} must be a non-negative number, got {value!r}")
        if not (self.on_exceed in ("raise", "warn") or callable(self.on_exceed)):
            raise ValueError(f"Budget.on_exceed must be 'raise', 'warn' or a callable, got {self.on_exceed!r}")

    def attributes(self) -> dict[str, Any]:
        pairs = {
            semconv.BUDGET_MAX_COST_USD: self.max_cost_usd,
            semconv.BUDGET_MAX_LLM_CALLS: self.max_llm_calls,
            semconv.BUDGET_MAX_TOOL_CALLS: self.max_tool_calls,
            semconv.BUDGET_MAX_SECONDS: self.max_seconds,
            semconv.BUDGET_MAX_INPUT_TOKENS: self.max_input_tokens,
        }
        attrs: dict[str, Any] = {k: v for k, v in pairs.items() if v is not None}
        attrs[semconv.BUDGET_ON_EXCEED] = self.on_exceed if isinstance(self.on_exceed, str) else "callback"
        return attrs


class BudgetExceeded(Exception):
    """Raised before a request is sent when a run reached a budget limit.

    Carries the run's figures so an agent can summarise its work and ask a
    human whether to go on.
    """

    def __init__(self, run_id: str, breach: Breach, figures: Mapping[str, Any]) -> None:
        self.run_id = run_id
        self.breach = breach
        self.limit = breach.limit
        self.figures = dict(figures)
        super().__init__(f"run {run_id} stopped: {breach.describe()}")
