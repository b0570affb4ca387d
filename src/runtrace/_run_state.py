"""A run's live state as the instrumentation sees it: budget checks, detectors, call bookkeeping.

The :class:`~runtrace.Run` a user holds shows what a user may read and call
(its name, id, budget, totals, verdicts). What the instrumentations call
before and after each LLM and tool call lives here, on ``run._live``: checking
the budget and the policy before a call, adding a finished call to the totals,
the loop and repeated-read detectors, the tool-call ids the model asked for,
and whether the run's name has gone out on a span yet. Keeping it off the
public object means ``help(runtrace.Run)`` lists only the user's API, and the
instrumentation's hooks can change without changing it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from . import detect, metrics, policy_enforce, projection, semconv
from ._forksafe import ForkSafeLock
from ._jsontext import parse_json_text
from .budget import Breach, Budget, BudgetExceeded, OnExceed

if TYPE_CHECKING:
    from .policy_enforce import ActivePolicy
    from .runs import Run

logger = logging.getLogger("runtrace")

_REQUESTED_CALLS_KEPT = 256  # only the recent tool calls the model asked for matter


@dataclass
class CallFigures:
    """What one finished LLM call adds to its run's live totals."""

    cost_usd: float | None = None  # None: the call could not be priced
    span_ref: tuple[int, int] | None = None  # (trace id, span id) of the call's span: the policy caps' ledger key
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0


class RunState:
    """The instrumentation's side of one run (``run._live``); its totals are the run's ``totals``.

    ``lock`` guards the run's totals, its detectors (they share it) and the
    requested tool calls: the calls of one run may finish on several threads. A
    finished LLM or tool call takes it once for its totals and its detectors
    together (``with lock.raw``: issue 14, it was two or three acquisitions a call).
    """

    def __init__(self, run: Run, loop_thresholds: detect.LoopThresholds) -> None:
        self.run = run
        self.lock = ForkSafeLock()
        self._warned: set[str] = set()
        self._detectors = detect.RunDetectors(loop_thresholds, lock=self.lock)
        self._requested_calls: dict[tuple[str, str], str] = {}  # (tool name, args hash) -> call id
        self._attributed = False  # a child span carrying name/project/owner has ended

    # -- attribution of crashed runs (docs/architecture.md) -------------------
    def attribution(self) -> dict[str, Any] | None:
        """The run's name/project/owner for a span starting in it; None once one carrying them ended.

        Only the run span carries them otherwise, and a crashed run never sends
        its run span: so every span started in the run carries them until one
        of those has ended (and so been exported), then no more spans pay for it.
        """
        if self._attributed:
            return None
        run = self.run
        attrs: dict[str, Any] = {semconv.RUN_NAME: run.name}
        if run.project is not None:
            attrs[semconv.PROJECT] = run.project
        if run.owner is not None:
            attrs[semconv.OWNER] = run.owner
        return attrs

    def mark_attributed(self) -> None:
        self._attributed = True

    # -- before a call: budget and policy -------------------------------------
    # The policy in effect (``_state.current().policy``) is passed in: the instrumentation
    # reads the installed state once a call and hands it down (issue 14).
    def projects_calls(self, policy: ActivePolicy | None) -> bool:
        """True when the budget, or a rule of ``policy``, has a limit that the next call's projection matters to.

        The instrumentation only estimates a request's tokens when it is (no
        cost for runs without a cost or input-token limit).
        """
        budget = self.run.budget
        return (budget is not None and (budget.max_cost_usd is not None or budget.max_input_tokens is not None)) \
            or (policy is not None and policy_enforce.wants_plan(self.run, policy))

    def check_budget(self, kind: Literal["llm", "tool"], plan: projection.CallPlan | None = None, *,
                     tool_name: str | None = None, policy: ActivePolicy | None) -> None:
        """Called before every LLM (kind="llm") and tool call; may raise BudgetExceeded.

        ``plan`` is what the LLM call about to be sent is expected to use; with
        it, a call is refused when it would cross ``max_cost_usd`` or
        ``max_input_tokens`` (the rule is in :class:`Budget`'s docstring).
        ``tool_name`` names the tool about to run (``Budget.allowed_tools``).
        Then the rules of ``policy``, the instrument()'s (``runtrace.policy``), if any.
        """
        budget = self.run.budget
        if budget is not None:
            breach = self._find_breach(budget, kind, plan, tool_name)
            if breach is not None:
                self.apply_breach(breach, budget.on_exceed)
        if policy is not None:
            policy_enforce.check(self.run, kind, plan, tool_name, policy)

    def _find_breach(self, budget: Budget, kind: str, plan: projection.CallPlan | None = None,
                     tool_name: str | None = None) -> Breach | None:
        if kind == "tool" and tool_name is not None and budget.allowed_tools is not None \
                and tool_name not in budget.allowed_tools:
            return Breach(semconv.STOP_TOOL_NOT_ALLOWED, 0.0, 0.0, detail=(
                f"tool {tool_name!r} is not in the run's allowed tools "
                f"({', '.join(sorted(budget.allowed_tools)) or 'none'})"))
        with self.lock.raw:
            t = self.run.totals
            spent, input_tokens, output_tokens, llm_calls = t.cost_usd, t.input_tokens, t.output_tokens, t.llm_calls
            checks: list[tuple[str, float | None, float]] = [
                ("max_cost_usd", budget.max_cost_usd, t.cost_usd),
                ("max_input_tokens", budget.max_input_tokens, t.input_tokens),
                ("max_seconds", budget.max_seconds, self.run.elapsed_s),
            ]
            if kind == "llm":
                checks.append(("max_llm_calls", budget.max_llm_calls, t.llm_calls))
            else:
                checks.append(("max_tool_calls", budget.max_tool_calls, t.tool_calls))
            if budget.stop_on_loop and t.loop_detected:
                return Breach("loop", 1, 1)
        for limit, value, observed in checks:
            if value is not None and observed >= value:
                return Breach(limit, float(value), float(observed))
        if plan is None or kind != "llm":
            return None
        if budget.max_input_tokens is not None and input_tokens + plan.input_tokens > budget.max_input_tokens:
            return Breach("max_input_tokens", float(budget.max_input_tokens), float(input_tokens),
                          float(plan.input_tokens))
        if budget.max_cost_usd is not None:
            # Priced outside the lock: other threads of the run may finish calls meanwhile,
            # which only makes this check less strict for that one race, never wrong.
            output = projection.expected_output_tokens(plan, output_tokens, llm_calls)
            cost = projection.projected_cost(plan, output)
            # Compared in nano-dollars, like the store adds costs: 0.03 + 0.03 does not cross 0.06.
            if round((spent + cost) * 1e9) > round(budget.max_cost_usd * 1e9):
                return Breach("max_cost_usd", float(budget.max_cost_usd), float(spent), cost)
        return None

    def apply_breach(self, breach: Breach, action: OnExceed) -> None:
        """Stop (BudgetExceeded, outcome budget_stopped) or warn about ``breach``, as ``action`` says."""
        run = self.run
        go_on = False
        if callable(action):
            decision = action(run, breach)
            go_on = decision == "continue" or (decision is not None and decision is not False
                                               and decision != "stop")
        elif action == "warn":
            go_on = True
        self._budget_event(breach, "continue" if go_on else "stop")
        if go_on:
            if breach.limit not in self._warned:
                self._warned.add(breach.limit)
                logger.warning("runtrace: run %s (%s): %s; continuing (on_exceed=%s)", run.id, run.name,
                               breach.describe(), action if isinstance(action, str) else "callback")
            return
        run.stop_reason = breach.limit
        run.outcome = semconv.OUTCOME_BUDGET_STOPPED
        metrics.record_budget_stop(reason=breach.limit, project=run.project, owner=run.owner)
        raise BudgetExceeded(run.id, breach, run.figures())

    def _budget_event(self, breach: Breach, action: str) -> None:
        span = self.run.span
        if span is not None:
            span.add_event(semconv.EVENT_BUDGET, {
                semconv.BUDGET_LIMIT: breach.limit, semconv.BUDGET_LIMIT_VALUE: breach.limit_value,
                semconv.BUDGET_OBSERVED: breach.observed, semconv.BUDGET_PROJECTED: breach.projected,
                semconv.BUDGET_ACTION: action,
                **({semconv.BUDGET_REASON: breach.detail} if breach.detail is not None else {}),
            })

    # -- after a call: totals ------------------------------------------------
    def record_llm_call(self, figures: CallFigures, completion: str = "", *,
                        policy: ActivePolicy | None) -> list[tuple[str, dict[str, Any]]]:
        """Add a finished call to the totals and, given its ``completion`` text, judge it; returns loop events.

        ``policy`` (the one in effect now) hears of the call for its spending caps.

        The totals and the completion detectors are one step under the run's lock.
        """
        fp = detect.text_hash(completion) if completion else ""
        found: tuple[detect.Detection, ...] = ()
        try:
            with self.lock.raw:
                t = self.run.totals
                t.llm_calls += 1
                if figures.cost_usd is None:
                    t.unpriced_calls += 1
                    self._warn_unpriced_under_cost_limit()
                else:
                    t.cost_usd += figures.cost_usd
                t.input_tokens += figures.input_tokens
                t.output_tokens += figures.output_tokens
                t.cached_input_tokens += figures.cached_input_tokens
                t.reasoning_tokens += figures.reasoning_tokens
                if completion:
                    found = self._detectors.observe_completion_held(completion, fp)
                    if found:
                        t.loop_detected = True
        finally:  # the policy's ledger hears of the call even if a detector failed
            policy_enforce.note_call(self.run, figures, policy)
        return self._loop_events(found) if found else []

    def _warn_unpriced_under_cost_limit(self) -> None:
        """Say once per run that a cost limit cannot count an unpriced call (a local model, an unknown one).

        Without it a run against a local ``base_url`` made every call under
        ``max_cost_usd`` and ended accepted, with nothing saying the limit never applied.
        """
        budget = self.run.budget
        if budget is None or budget.max_cost_usd is None or "unpriced" in self._warned:
            return
        self._warned.add("unpriced")
        logger.warning("runtrace: run %s (%s) has max_cost_usd=%s but a call could not be priced (a local or "
                       "unknown model): its cost is not counted, so the limit cannot stop it; price the model "
                       "with instrument(prices=...) or RUNTRACE_PRICES (runtrace show %s says why)",
                       self.run.id, self.run.name, budget.max_cost_usd, self.run.id)

    # -- detectors (docs/architecture.md) -------------------------------------
    def observe_prompt(self, messages: Sequence[tuple[str, str]]) -> dict[str, Any]:
        """Fingerprint the (role, text) messages of a request; returns the LLM span's context attributes."""
        obs = self._detectors.observe_prompt(messages)
        return {
            semconv.CONTEXT_MESSAGES: obs.messages, semconv.CONTEXT_NEW_MESSAGES: obs.new_messages,
            semconv.CONTEXT_REINJECTED_MESSAGES: obs.reinjected_messages,
            semconv.CONTEXT_REINJECTED_TOKENS: obs.reinjected_tokens,
            semconv.CONTEXT_TOKEN_ESTIMATOR: obs.estimator, semconv.CONTEXT_FINGERPRINT: obs.fingerprint,
            semconv.CONTEXT_CHARS: obs.chars,
        }

    def note_requested_tool_calls(self, calls: Sequence[tuple[str, str, Any]]) -> None:
        """(call id, tool name, arguments) the model asked for, so tool spans can name their call id."""
        with self.lock.raw:
            for call_id, name, arguments in calls:
                self._requested_calls[(name, detect.stable_hash(parse_json_text(arguments)))] = call_id
                if len(self._requested_calls) > _REQUESTED_CALLS_KEPT:
                    self._requested_calls.pop(next(iter(self._requested_calls)))

    def requested_call_id(self, name: str, args_hash: str) -> str | None:
        # One dict read is atomic: the lock is for the writers' insert-and-trim, not for this.
        return self._requested_calls.get((name, args_hash))

    def observe_tool_call(self, name: str, args_hash: str, result_hash: str, result_tokens: int,
                          args_preview: str = "") -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
        """Count a finished tool call; returns the tool span's attributes and its detection events.

        ``args_preview`` goes into the events' sentences: pass one only when content capture is on.
        """
        with self.lock.raw:  # the detectors and the totals in one acquisition
            seen = self._detectors.observe_tool_call_held(name, args_hash, result_hash,
                                                          result_tokens=result_tokens, args_preview=args_preview)
            read, found = seen.read, seen.detections
            t = self.run.totals
            t.tool_calls += 1
            if read.repeat:
                t.repeated_reads += 1
            if found:
                t.loop_detected = True
        attrs: dict[str, Any] = {semconv.TOOL_REPEAT_COUNT: read.repeat_count,
                                 semconv.TOOL_REPEATED_READ: read.repeat,
                                 semconv.TOOL_RESULT_TOKENS: result_tokens}
        events: list[tuple[str, dict[str, Any]]] = []
        if read.repeat:
            attrs[semconv.TOOL_REPEATED_READ_TOKENS] = read.repeated_tokens
            events.append((semconv.EVENT_REPEATED_READ, {
                semconv.TOOL_REPEAT_COUNT: read.repeat_count,
                semconv.LOOP_DESCRIPTION: repeated_read_sentence(name, read.repeat_count, args_preview)}))
        loop_events = self._loop_events(found) if found else []
        if loop_events:
            attrs[semconv.LOOP_DETECTED] = True
        return attrs, events + loop_events

    def _loop_events(self, found: Sequence[detect.Detection]) -> list[tuple[str, dict[str, Any]]]:
        """The span events of ``found``, counted in the metrics (the caller has set the totals' loop flag)."""
        for d in found:
            metrics.record_loop(kind=d.kind, project=self.run.project, owner=self.run.owner)
        return [(semconv.EVENT_LOOP, {semconv.LOOP_KIND: d.kind, semconv.LOOP_COUNT: d.count,
                                      semconv.LOOP_DESCRIPTION: d.description}) for d in found]


def repeated_read_sentence(name: str, count: int, args_preview: str = "") -> str:
    """The repeated-read event's description; names argument values only when given a preview.

    Callers pass a preview only when content capture is on (a file path is an
    argument too); without one the sentence names the tool and the count.
    """
    if args_preview:
        return f"{name}({args_preview}) returned the same result as an earlier read ({count} times so far)"
    return f"{name} returned content identical to an earlier read ({count} times so far)"


__all__ = ["CallFigures", "RunState", "repeated_read_sentence"]
