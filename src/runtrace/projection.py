"""What the LLM call about to be sent is expected to use, so a budget can refuse it first.

A budget that only looks at what was already spent lets the call that crosses
the limit through (a $0.03 limit ended at $0.0328). So before each call the
instrumentation builds a :class:`CallPlan` from the request: its prompt tokens,
estimated with the same estimator the detectors use (``detect.token_estimator``:
tiktoken when its encoding is cached offline, else characters / 4), the
request's own output cap (``max_tokens``, ``max_completion_tokens``,
``max_output_tokens``; times ``n`` choices), and a way to price a usage with
the same pricer the finished call will be priced with. The run's budget check
(``RunState.check_budget``, on ``run._live``) turns the plan into a projected
cost with the run's history (see :func:`expected_output_tokens`).

Pure: no OpenTelemetry, no SDKs; the instrumentation supplies the pieces.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import detect
from ._forksafe import ForkSafeLock

PriceFn = Callable[[int, int], "float | None"]  # (input tokens, output tokens) -> USD; None: unknown price


@dataclass(frozen=True)
class CallPlan:
    """The call about to be sent, as far as the request tells."""

    input_tokens: int  # estimated prompt tokens of this request
    max_output_tokens: int | None  # the request's output cap (x choices); None: the request sets none
    price: PriceFn | None = None  # None: the call cannot be priced (no model, or pricing failed)
    model: str | None = None  # the requested model (a policy's allowed_models); None: the request names none


def expected_output_tokens(plan: CallPlan, run_output_tokens: int, run_llm_calls: int) -> int:
    """The output a call is projected to produce.

    The request's cap when it gives one (the most it can be billed for); else
    the run's mean output per call so far, rounded up; else (the run's first
    call, no cap) 0: such a call is projected at its input only.
    """
    if plan.max_output_tokens is not None:
        return max(plan.max_output_tokens, 0)
    if run_llm_calls > 0:
        return math.ceil(run_output_tokens / run_llm_calls)
    return 0


def projected_cost(plan: CallPlan, output_tokens: int) -> float:
    """USD of the plan's input plus ``output_tokens``; 0.0 when the price is unknown."""
    if plan.price is None:
        return 0.0
    cost = plan.price(plan.input_tokens, output_tokens)
    return cost if cost is not None and math.isfinite(cost) and cost > 0 else 0.0


class PromptTokenCounter:
    """Estimated tokens of a prompt's messages, each message counted once per process.

    An agent re-sends its whole conversation on every call, so counting every
    message again would make a run quadratic in its length; a message's count
    is remembered by (estimator, length, hash) of its text, not the text itself (so no
    prompt is kept alive), in a bounded LRU.
    """

    def __init__(self, cap: int = 4096) -> None:
        self._cap = cap
        self._counts: OrderedDict[tuple[str, int, int], int] = OrderedDict()
        self._lock = ForkSafeLock()

    def count(self, messages: Sequence[tuple[str, str]]) -> int:
        estimator = detect.token_estimator()
        total = 0
        for _role, text in messages:
            if not text:
                continue
            key = (estimator.name, len(text), hash(text))
            with self._lock:
                known = self._counts.get(key)
                if known is not None:
                    self._counts.move_to_end(key)
            if known is None:
                known = estimator.count(text)
                with self._lock:
                    self._counts[key] = known
                    while len(self._counts) > self._cap:
                        self._counts.popitem(last=False)
            total += known
        return total

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


prompt_tokens = PromptTokenCounter()
"""The process's counter (the estimator is the process's too)."""
