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
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry import baggage, context, trace

from . import _config, _state, detect, metrics, semconv
from ._errors import record_error
from ._forksafe import ForkSafeLock
from ._internal import fail_open
from ._run_state import CallFigures, RunState
from .budget import Breach, Budget, BudgetExceeded
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

    What it offers: its ``id``, ``name``, ``project``, ``owner``, ``budget`` and
    ``metadata``; the verdict (``accept()``, ``reject()``, ``abandon()``, read back
    as ``outcome``, ``outcome_reason``, ``outcome_by``) and ``stop_reason``; the live
    ``totals``, ``figures()``, ``elapsed_s`` and the run's ``span``. What the
    instrumentations call before and after each LLM and tool call is not part of
    it (``runtrace._run_state``).
    """

    def __init__(self, name: str, *, project: str | None = None, owner: str | None = None,
                 budget: Budget | None = None, metadata: Mapping[str, Any] | None = None,
                 run_id: str | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("runtrace.run() needs a non-empty name")
        installed = _state.current()  # instrument()'s default budget and loop thresholds
        self.name = name
        self.project = project
        self.owner = owner
        self.budget = budget if budget is not None else (installed.default_budget if installed else None)
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.id = run_id or uuid.uuid4().hex
        self.outcome: str | None = None
        self.outcome_reason: str | None = None
        self.outcome_by: str | None = None
        self.stop_reason: str | None = None
        self.totals = RunTotals()
        self._active: _Active | None = None
        self._ended = False
        # The instrumentation's side of the run (budget checks, detectors): not the user's API.
        self._live = RunState(self, installed.loop_thresholds if installed else detect.LoopThresholds())

    # -- verdicts -------------------------------------------------------------
    def accept(self, *, by: str | None = None) -> None:
        """The run did what was asked (``by``: who says so, e.g. "ci" or a reviewer)."""
        self._set_outcome(semconv.OUTCOME_ACCEPTED, None, by)

    def reject(self, reason: str | None = None, *, by: str | None = None) -> None:
        """The run's result was not accepted (``reason``: why, e.g. "wrong fix")."""
        self._set_outcome(semconv.OUTCOME_REJECTED, reason, by)

    def abandon(self, reason: str | None = None, *, by: str | None = None) -> None:
        """The task was given up before a result could be judged."""
        self._set_outcome(semconv.OUTCOME_ABANDONED, reason, by)

    def _set_outcome(self, outcome: str, reason: str | None, by: str | None) -> None:
        self.outcome, self.outcome_reason, self.outcome_by = outcome, reason, by

    @property
    def span(self) -> trace.Span | None:
        """The run's span while the run is open (None before and after)."""
        return self._active.span if self._active else None

    @property
    def elapsed_s(self) -> float:
        """Seconds since the run started (0 when it is not open)."""
        return time.monotonic() - self._active.started_monotonic if self._active else 0.0

    def figures(self) -> dict[str, Any]:
        """The run's totals so far with its id, name, project, owner and elapsed seconds."""
        with self._live.lock:
            data = self.totals.as_dict()
        data.update(id=self.id, name=self.name, project=self.project, owner=self.owner,
                    elapsed_s=round(self.elapsed_s, 3))
        return data

    # -- context manager / decorator ------------------------------------------
    def __enter__(self) -> Run:
        """Start the run: its span opens and it becomes the current run of this thread or task."""
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
        """End the run: an exception sets its outcome (budget_stopped, error, abandoned); totals go on its span."""
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
        with self._live.lock:
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
           "record_outcome", "run"]
