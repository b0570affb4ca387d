"""Runs: one task given to an agent, from first instruction to outcome.

A run is a span (``run {name}``) plus a context: the run object lives in a
``contextvars.ContextVar`` (so threads and asyncio tasks each see their own
run) and its id travels as W3C baggage (so spans made in another process that
has called ``instrument()`` are stamped with it too). Totals are kept live in
the process so budgets can be checked *before* a call; the store never trusts
them and rebuilds every run from its child spans.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from opentelemetry import baggage, context, trace

from . import _config, detect, metrics, policy_enforce, projection, semconv
from ._errors import record_error
from ._forksafe import ForkSafeLock
from ._internal import fail_open
from .budget import Breach, Budget, BudgetExceeded, OnExceed
from .totals import SPAN_TOTALS, TotalField

logger = logging.getLogger("runtrace")

F = TypeVar("F", bound=Callable[..., Any])

_current: contextvars.ContextVar[Run | None] = contextvars.ContextVar("runtrace_run", default=None)

# Ids of the runs this process started (most recent last, bounded): a verdict for one
# of them is for a known run even before its spans have been flushed to the store.
_LOCAL_RUNS_KEPT = 10_000
_local_runs: dict[str, None] = {}
_local_runs_lock = ForkSafeLock()
_UNKNOWN_WARNED_MAX = 100
_unknown_warned: set[str] = set()


def _remember_run(run_id: str) -> None:
    with _local_runs_lock:
        _local_runs[run_id] = None
        if len(_local_runs) > _LOCAL_RUNS_KEPT:
            del _local_runs[next(iter(_local_runs))]


@dataclass
class CallFigures:
    """What one finished LLM call adds to its run's live totals."""

    cost_usd: float | None = None  # None: the call could not be priced
    span_ref: tuple[int, int] | None = None  # (trace id, span id) of the call's span: the policy caps' ledger key
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass
class RunTotals:
    """A run's live totals in the process: one field per ``runtrace.totals.SPAN_TOTALS`` entry, same names."""

    cost_usd: float = 0.0
    unpriced_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    llm_calls: int = 0
    tool_calls: int = 0
    repeated_reads: int = 0
    loop_detected: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The totals by their JSON names (``runtrace.totals.SPAN_TOTALS``, the fields above), money rounded."""
        return {f.name: self._value(f) for f in SPAN_TOTALS}

    def span_attributes(self) -> dict[str, Any]:
        """The same totals as the run span's attributes at its end (``runtrace.run.cost.usd``, ...)."""
        return {str(f.span_attribute): self._value(f) for f in SPAN_TOTALS}

    def _value(self, total: TotalField) -> Any:
        value = getattr(self, total.name)
        return round(value, 10) if total.kind == "usd" else value


_default_budget: Budget | None = None
_loop_thresholds: detect.LoopThresholds = detect.LoopThresholds()


def set_loop_thresholds(thresholds: detect.LoopThresholds | None) -> None:
    """Thresholds of the runaway-loop detector for runs started from now on."""
    global _loop_thresholds
    _loop_thresholds = thresholds or detect.LoopThresholds()


def set_default_budget(budget: Budget | None) -> None:
    """The budget of runs that do not name one (``instrument(default_budget=...)``)."""
    global _default_budget
    _default_budget = budget


@dataclass
class _Active:
    span: trace.Span
    token: object  # the context.attach token
    var_token: contextvars.Token[Run | None]
    started_monotonic: float


class Run:
    """One agent run. Use ``runtrace.run(...)`` to make one.

    Works as a context manager (``with``/``async with``) and as a decorator,
    where every call of the decorated function is a run of its own.
    """

    def __init__(self, name: str, *, project: str | None = None, owner: str | None = None,
                 budget: Budget | None = None, metadata: Mapping[str, Any] | None = None,
                 run_id: str | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("runtrace.run() needs a non-empty name")
        self.name = name
        self.project = project
        self.owner = owner
        self.budget = budget if budget is not None else _default_budget
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.id = run_id or uuid.uuid4().hex
        self.outcome: str | None = None
        self.outcome_reason: str | None = None
        self.outcome_by: str | None = None
        self.stop_reason: str | None = None
        self.totals = RunTotals()
        self._lock = ForkSafeLock()
        self._active: _Active | None = None
        self._warned: set[str] = set()
        self._ended = False
        self._detectors = detect.RunDetectors(_loop_thresholds)
        self._requested_calls: dict[tuple[str, str], str] = {}  # (tool name, args hash) -> call id
        self._attributed = False  # a child span carrying name/project/owner has ended

    # -- verdicts -------------------------------------------------------------
    def accept(self, *, by: str | None = None) -> None:
        self._set_outcome(semconv.OUTCOME_ACCEPTED, None, by)

    def reject(self, reason: str | None = None, *, by: str | None = None) -> None:
        self._set_outcome(semconv.OUTCOME_REJECTED, reason, by)

    def abandon(self, reason: str | None = None, *, by: str | None = None) -> None:
        self._set_outcome(semconv.OUTCOME_ABANDONED, reason, by)

    def _set_outcome(self, outcome: str, reason: str | None, by: str | None) -> None:
        self.outcome, self.outcome_reason, self.outcome_by = outcome, reason, by

    @property
    def span(self) -> trace.Span | None:
        return self._active.span if self._active else None

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._active.started_monotonic if self._active else 0.0

    def figures(self) -> dict[str, Any]:
        with self._lock:
            data = self.totals.as_dict()
        data.update(id=self.id, name=self.name, project=self.project, owner=self.owner,
                    elapsed_s=round(self.elapsed_s, 3))
        return data

    # -- context manager / decorator ------------------------------------------
    def __enter__(self) -> Run:
        if self._active is not None or self._ended:
            raise RuntimeError(f"run {self.name!r} ({self.id}) was already entered; make a new runtrace.run()")
        attrs: dict[str, Any] = {
            semconv.SPAN_ROLE: semconv.ROLE_RUN, semconv.RUN_ID: self.id, semconv.RUN_NAME: self.name,
        }
        if self.project is not None:
            attrs[semconv.PROJECT] = self.project
        if self.owner is not None:
            attrs[semconv.OWNER] = self.owner
        for key, value in self.metadata.items():
            attrs[semconv.RUN_METADATA_PREFIX + str(key)] = value if isinstance(value, (str, bool, int, float)) \
                else str(value)
        if self.budget is not None:
            attrs.update(self.budget.attributes())
        tracer = _config.settings().tracer("runtrace")
        span = tracer.start_span(f"run {self.name}", attributes=attrs)
        ctx = trace.set_span_in_context(span)
        ctx = baggage.set_baggage(semconv.BAGGAGE_RUN_ID, self.id, context=ctx)
        token = context.attach(ctx)
        var_token = _current.set(self)
        self._active = _Active(span, token, var_token, time.monotonic())
        _remember_run(self.id)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        active = self._active
        if active is None:
            return
        span = active.span
        try:
            if isinstance(exc, BudgetExceeded):
                self.outcome = semconv.OUTCOME_BUDGET_STOPPED
                self.stop_reason = self.stop_reason or exc.limit
            elif isinstance(exc, Exception):
                self.outcome = semconv.OUTCOME_ERROR
                # A tool's exception reaching the run may quote its arguments: message only with capture on.
                record_error(span, exc, capture_content=_config.settings().capture_content)
            elif exc is not None:  # KeyboardInterrupt, SystemExit, task cancellation
                self.outcome = semconv.OUTCOME_ABANDONED
                self.outcome_reason = self.outcome_reason or type(exc).__name__
            self._end_span(span)
        finally:
            _current.reset(active.var_token)
            context.detach(active.token)  # type: ignore[arg-type]
            self._active = None
            self._ended = True

    def _end_span(self, span: trace.Span) -> None:
        with self._lock:
            totals = self.totals.span_attributes()
        if self.outcome is not None:
            totals[semconv.RUN_OUTCOME] = self.outcome
        if self.outcome_by is not None:
            totals[semconv.RUN_OUTCOME_BY] = self.outcome_by
        if self.outcome_reason is not None:
            totals[semconv.RUN_OUTCOME_REASON] = self.outcome_reason
        if self.stop_reason is not None:
            totals[semconv.RUN_STOP_REASON] = self.stop_reason
        span.set_attributes(totals)
        span.end()
        metrics.record_run(outcome=self.outcome or semconv.OUTCOME_OPEN, project=self.project, owner=self.owner)

    async def __aenter__(self) -> Run:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    def _fresh(self) -> Run:
        return Run(self.name, project=self.project, owner=self.owner, budget=self.budget,
                   metadata=self.metadata)

    def __call__(self, func: F) -> F:
        """Decorate a function: each call runs inside a new run with these settings."""
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with self._fresh():
                    return await func(*args, **kwargs)
            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._fresh():
                return func(*args, **kwargs)
        return wrapper  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"<Run {self.name!r} id={self.id} outcome={self.outcome}>"

    # -- attribution of crashed runs (issue 9, item 15b) ----------------------
    def attribution(self) -> dict[str, Any] | None:
        """The run's name/project/owner for a span starting in it; None once one carrying them ended.

        Only the run span carries them otherwise, and a crashed run never sends
        its run span: so every span started in the run carries them until one
        of those has ended (and so been exported), then no more spans pay for it.
        """
        if self._attributed:
            return None
        attrs: dict[str, Any] = {semconv.RUN_NAME: self.name}
        if self.project is not None:
            attrs[semconv.PROJECT] = self.project
        if self.owner is not None:
            attrs[semconv.OWNER] = self.owner
        return attrs

    def mark_attributed(self) -> None:
        self._attributed = True

    # -- hooks the instrumentations call --------------------------------------
    @property
    def projects_calls(self) -> bool:
        """True when the budget has a limit that the next call's projection matters to.

        The instrumentation only estimates a request's tokens when it is (no
        cost for runs without a cost or input-token limit).
        """
        budget = self.budget
        return (budget is not None and (budget.max_cost_usd is not None or budget.max_input_tokens is not None)) \
            or policy_enforce.wants_plan(self)

    def check_budget(self, kind: Literal["llm", "tool"], plan: projection.CallPlan | None = None, *,
                     tool_name: str | None = None) -> None:
        """Called before every LLM (kind="llm") and tool call; may raise BudgetExceeded.

        ``plan`` is what the LLM call about to be sent is expected to use; with
        it, a call is refused when it would cross ``max_cost_usd`` or
        ``max_input_tokens`` (the rule is in :class:`Budget`'s docstring).
        ``tool_name`` names the tool about to run (``Budget.allowed_tools``).
        Then the rules of the instrument()'s policy (``runtrace.policy``), if any.
        """
        budget = self.budget
        if budget is not None:
            breach = self._find_breach(budget, kind, plan, tool_name)
            if breach is not None:
                self._handle_breach(budget, breach)
        policy_enforce.check(self, kind, plan, tool_name)

    def _find_breach(self, budget: Budget, kind: str, plan: projection.CallPlan | None = None,
                     tool_name: str | None = None) -> Breach | None:
        if kind == "tool" and tool_name is not None and budget.allowed_tools is not None \
                and tool_name not in budget.allowed_tools:
            return Breach(semconv.STOP_TOOL_NOT_ALLOWED, 0.0, 0.0, detail=(
                f"tool {tool_name!r} is not in the run's allowed tools "
                f"({', '.join(sorted(budget.allowed_tools)) or 'none'})"))
        with self._lock:
            t = self.totals
            spent, input_tokens, output_tokens, llm_calls = t.cost_usd, t.input_tokens, t.output_tokens, t.llm_calls
            checks: list[tuple[str, float | None, float]] = [
                ("max_cost_usd", budget.max_cost_usd, t.cost_usd),
                ("max_input_tokens", budget.max_input_tokens, t.input_tokens),
                ("max_seconds", budget.max_seconds, self.elapsed_s),
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

    def _handle_breach(self, budget: Budget, breach: Breach) -> None:
        self.apply_breach(breach, budget.on_exceed)

    def apply_breach(self, breach: Breach, action: OnExceed) -> None:
        """Stop (BudgetExceeded, outcome budget_stopped) or warn about ``breach``, as ``action`` says."""
        go_on = False
        if callable(action):
            decision = action(self, breach)
            go_on = decision == "continue" or (decision is not None and decision is not False
                                               and decision != "stop")
        elif action == "warn":
            go_on = True
        self._budget_event(breach, "continue" if go_on else "stop")
        if go_on:
            if breach.limit not in self._warned:
                self._warned.add(breach.limit)
                logger.warning("runtrace: run %s (%s): %s; continuing (on_exceed=%s)", self.id, self.name,
                               breach.describe(), action if isinstance(action, str) else "callback")
            return
        self.stop_reason = breach.limit
        self.outcome = semconv.OUTCOME_BUDGET_STOPPED
        metrics.record_budget_stop(reason=breach.limit, project=self.project, owner=self.owner)
        raise BudgetExceeded(self.id, breach, self.figures())

    def _budget_event(self, breach: Breach, action: str) -> None:
        span = self.span
        if span is not None:
            span.add_event(semconv.EVENT_BUDGET, {
                semconv.BUDGET_LIMIT: breach.limit, semconv.BUDGET_LIMIT_VALUE: breach.limit_value,
                semconv.BUDGET_OBSERVED: breach.observed, semconv.BUDGET_PROJECTED: breach.projected,
                semconv.BUDGET_ACTION: action,
                **({semconv.BUDGET_REASON: breach.detail} if breach.detail is not None else {}),
            })

    def record_llm_call(self, figures: CallFigures) -> None:
        with self._lock:
            t = self.totals
            t.llm_calls += 1
            if figures.cost_usd is None:
                t.unpriced_calls += 1
            else:
                t.cost_usd += figures.cost_usd
            t.input_tokens += figures.input_tokens
            t.output_tokens += figures.output_tokens
            t.cached_input_tokens += figures.cached_input_tokens
            t.reasoning_tokens += figures.reasoning_tokens
        policy_enforce.note_call(self, figures)

    def mark_loop(self) -> None:
        with self._lock:
            self.totals.loop_detected = True

    # -- detectors (docs/architecture.md) -----------------------------------------
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

    def observe_completion(self, text: str) -> list[tuple[str, dict[str, Any]]]:
        """Remember a completion (it is not re-injection when sent back); returns loop events."""
        return self._loop_events(self._detectors.observe_completion(text))

    def note_requested_tool_calls(self, calls: Sequence[tuple[str, str, Any]]) -> None:
        """(call id, tool name, arguments) the model asked for, so tool spans can name their call id."""
        with self._lock:
            for call_id, name, arguments in calls:
                self._requested_calls[(name, detect.stable_hash(_parse_json(arguments)))] = call_id
                if len(self._requested_calls) > 256:  # bounded: only the recent calls matter
                    self._requested_calls.pop(next(iter(self._requested_calls)))

    def requested_call_id(self, name: str, args_hash: str) -> str | None:
        with self._lock:
            return self._requested_calls.get((name, args_hash))

    def observe_tool_call(self, name: str, args_hash: str, result_hash: str, result_tokens: int,
                          args_preview: str = "") -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
        """Count a finished tool call; returns the tool span's attributes and its detection events.

        ``args_preview`` goes into the events' sentences: pass one only when content capture is on.
        """
        seen = self._detectors.observe_tool_call(name, args_hash, result_hash, result_tokens=result_tokens,
                                                 args_preview=args_preview)
        read, found = seen.read, seen.detections
        with self._lock:
            self.totals.tool_calls += 1
            if read.repeat:
                self.totals.repeated_reads += 1
        attrs: dict[str, Any] = {semconv.TOOL_REPEAT_COUNT: read.repeat_count,
                                 semconv.TOOL_REPEATED_READ: read.repeat,
                                 semconv.TOOL_RESULT_TOKENS: result_tokens}
        events: list[tuple[str, dict[str, Any]]] = []
        if read.repeat:
            attrs[semconv.TOOL_REPEATED_READ_TOKENS] = read.repeated_tokens
            events.append((semconv.EVENT_REPEATED_READ, {
                semconv.TOOL_REPEAT_COUNT: read.repeat_count,
                semconv.LOOP_DESCRIPTION: repeated_read_sentence(name, read.repeat_count, args_preview)}))
        loop_events = self._loop_events(found)
        if loop_events:
            attrs[semconv.LOOP_DETECTED] = True
        return attrs, events + loop_events

    def _loop_events(self, found: Sequence[detect.Detection]) -> list[tuple[str, dict[str, Any]]]:
        if not found:
            return []
        self.mark_loop()
        for d in found:
            metrics.record_loop(kind=d.kind, project=self.project, owner=self.owner)
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


def _parse_json(arguments: Any) -> Any:
    """Tool-call arguments arrive as JSON text from the model and as values in the tool; hash alike."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def run(name: str, *, project: str | None = None, owner: str | None = None, budget: Budget | None = None,
        metadata: Mapping[str, Any] | None = None) -> Run:
    """Start describing a run: ``with runtrace.run("fix #412", project="billing") as r: ...``.

    Threads started inside a run see it only when the caller copies the context
    (``contextvars.copy_context().run(...)``, or ``opentelemetry``'s context
    propagation); asyncio tasks inherit it automatically.
    """
    return Run(name, project=project, owner=owner, budget=budget, metadata=metadata)


def current_run() -> Run | None:
    """The run the calling thread or task is in, if any."""
    return _current.get()


def record_outcome(run_id: str, outcome: str, *, by: str | None = None, reason: str | None = None) -> None:
    """Record a verdict that arrives after the run ended (a PR merged, a reviewer said no).

    Emits a ``run.outcome`` span; the store keeps the latest outcome of a run,
    so this overrides what the run itself said. A verdict never creates a run:
    when this process has a local store that does not hold ``run_id`` and the
    run was not started here, a warning says so (once per id) and the local
    store keeps the verdict pending until the run's spans arrive (they may come
    later through OTLP); the span is still exported, so a remote store that
    holds the run applies it.
    """
    if outcome not in semconv.VERDICTS:
        raise ValueError(f"outcome must be one of {sorted(semconv.VERDICTS)}, got {outcome!r}")
    if not isinstance(run_id, str) or not run_id:
        raise ValueError("record_outcome() needs the run id")
    with fail_open("runs.record_outcome.check"):
        _check_known(run_id)
    attrs: dict[str, Any] = {semconv.SPAN_ROLE: semconv.ROLE_OUTCOME, semconv.RUN_ID: run_id,
                             semconv.RUN_OUTCOME: outcome}
    if by is not None:
        attrs[semconv.RUN_OUTCOME_BY] = by
    if reason is not None:
        attrs[semconv.RUN_OUTCOME_REASON] = reason
    tracer = _config.settings().tracer("runtrace")
    span = tracer.start_span(semconv.OUTCOME_SPAN_NAME, context=context.Context(), attributes=attrs)
    span.end()


def _check_known(run_id: str) -> None:
    """Warn (once per id) when a verdict names a run neither this process nor its local store knows."""
    with _local_runs_lock:
        if run_id in _local_runs:
            return
    from . import _setup
    from .store.verdicts import run_exists

    path = _setup.store_path()
    if path is None:  # no local store: only the receiving side can tell
        return
    if run_exists(path, run_id) is not False:
        return
    if run_id in _unknown_warned or len(_unknown_warned) >= _UNKNOWN_WARNED_MAX:
        logger.debug("runtrace: record_outcome(%r): unknown run id (again)", run_id)
        return
    _unknown_warned.add(run_id)
    logger.warning("runtrace: record_outcome(%r): no such run in this process or in the store %s; the "
                   "verdict is kept pending (not counted as a run) until that run's spans arrive. A typo? "
                   "Check `runtrace runs` and `runtrace outcome --pending`.", run_id, path)


__all__ = ["Breach", "Budget", "BudgetExceeded", "CallFigures", "Run", "RunTotals", "current_run",
           "record_outcome", "run", "set_default_budget"]
