"""Budgets: the stop conditions of a run, and the exception that stops it.

Kept apart from ``runs`` so the rules (what a limit is, when it is reached,
what the caller may decide) read in one place; the run's budget check
(``RunState.check_budget``, on ``run._live``) applies them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
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
    observed: float  # the run's figure so far (spent), without the call about to be sent
    projected: float = 0.0  # what that call is projected to add (cost or input tokens); 0: not projected
    detail: str | None = None  # the whole sentence, for rules a number cannot tell (policies, allowed tools)

    def describe(self) -> str:
        if self.detail is not None:
            return self.detail
        if self.limit == "loop":
            return "a runaway loop was detected"
        if self.observed < self.limit_value:
            return (f"{self.limit} = {self.limit_value:g} would be crossed by the next call "
                    f"({self.observed:g} so far + {self.projected:g} projected)")
        return f"{self.limit} = {self.limit_value:g} reached ({self.observed:g} so far)"


OnExceed = Union[Literal["raise", "warn"], Callable[["Run", Breach], Any]]  # noqa: UP007 - evaluated at runtime on 3.10


@dataclass(frozen=True)
class Budget:
    """Stop conditions for one run, checked before every LLM and tool call.

    What "before the money is spent" guarantees, for ``max_cost_usd``: no LLM
    call starts when the run has already reached the limit (spent >= limit),
    and no call starts whose projected cost would cross it (spent + projected
    > limit). The projection prices, with the same price table as the finished
    call, the request's prompt tokens as estimated from its messages
    (``detect.token_estimator``: tiktoken when cached offline, else chars/4)
    plus an expected output: the request's ``max_tokens`` /
    ``max_completion_tokens`` / ``max_output_tokens`` (times ``n``) when given,
    the most it can be billed for; else the run's mean output per call so far;
    else 0. So with an output cap on every request the limit holds up to the
    input estimate's error (tool schemas, images and per-message overhead are
    not counted); without one, the first call is projected at its input only
    and a later call may exceed the mean, so the run can still end above the
    limit by less than one call's surprise. A call whose price is unknown is
    projected at $0. A budget of $0.05 with $0.03 calls lets exactly one
    request through (0.03 + 0.03 > 0.05). ``max_input_tokens`` is checked the
    same way with the estimated prompt tokens of the call; the call, tool-call
    and time limits are reached when the figure is at or past them.
    ``allowed_tools``: a ``@runtrace.tool`` or MCP tool call whose name is not
    in the set is refused before the tool runs (stop reason ``tool_not_allowed``).
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
    allowed_tools: AbstractSet[str] | None = None  # tools the run may call (@runtrace.tool, MCP); None: any

    def __post_init__(self) -> None:
        if self.allowed_tools is not None:
            tools = self.allowed_tools
            if isinstance(tools, str) or not all(isinstance(t, str) and t for t in tools):
                raise ValueError(f"Budget.allowed_tools must be a set of tool names, got {tools!r}")
            object.__setattr__(self, "allowed_tools", frozenset(tools))
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
        if self.allowed_tools is not None:
            attrs[semconv.BUDGET_ALLOWED_TOOLS] = sorted(self.allowed_tools)
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
