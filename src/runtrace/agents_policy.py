"""A policy's caps and model rules for a Claude Code session, as the hook sees them (issue 16).

The hook runs in a fresh process before each tool call (PreToolUse) and each
prompt (UserPromptSubmit). Neither event's input names the model (Claude Code
sends ``session_id``, ``transcript_path``, ``cwd``, ``hook_event_name`` and the
tool call or the prompt), so the session's model is the one of its latest model
call in the store, as its telemetry recorded it: ``allowed_models`` applies
from the session's first recorded call on, and after a ``/model`` switch to an
allowed model the next call clears it.

The caps are the instrumented program's (:mod:`runtrace.policy_spend` reads the
same sums of the same ``runs`` rows, without a cache: the hook is a new process
each time). Claude Code's next request cannot be seen, so nothing is projected:
a cap refuses once the spend so far has reached it. ``runs_per_day`` counts the
session among the project's (owner's) runs of the UTC day in the order they
started, so the first N sessions of a day go on and the later ones are refused.

The small-call rule is not applied: the hook never sees a request before it is
sent, and Claude Code's requests carry its system prompt and tool definitions
(thousands of tokens), so "a call under N input tokens" is not a question the
hook can answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import semconv as sc
from .policy import WINDOWS, stop_reason, window_bounds

if TYPE_CHECKING:
    from .policy import Policy, Rules

__all__ = ["PolicyStop", "policy_stops", "session_model"]

NANO = 1_000_000_000
_WHEN = {"daily": "today", "weekly": "this week", "monthly": "this month"}


@dataclass(frozen=True)
class PolicyStop:
    """One rule of the policy the session breaks now."""

    stop_reason: str  # semconv's: project_daily_usd, model_not_allowed ...
    sentence: str  # what is wrong, for the reason Claude Code shows
    action: str  # "raise" or "warn"
    observed: float
    limit_value: float
    ends_session: bool  # a cap: recorded as the session's budget_stopped outcome; a model rule is not


def session_model(store: Any, session_id: str) -> str | None:
    """The model of the session's latest recorded model call (None: none recorded yet)."""
    rows = store.execute("SELECT model FROM spans WHERE run_id = ? AND kind = 'llm' AND model IS NOT NULL "
                         "AND model != '' ORDER BY start_ns DESC LIMIT 1", (session_id,))
    return str(rows[0][0]) if rows else None


def policy_stops(store: Any, policy: Policy, session_id: str, run: dict[str, Any] | None,
                 project: str | None, owner: str | None, now_ns: int) -> list[PolicyStop]:
    """The model rules and caps of the session's project and owner that it breaks, in that order."""
    out: list[PolicyStop] = []
    scopes = policy.scopes(project, owner)
    model = session_model(store, session_id) if any(r.allowed_models is not None for _s, _n, r in scopes) \
        else None
    for scope, name, rules in scopes:
        action = policy.action(rules)
        if model is not None and not rules.model_allowed(model):
            allowed = ", ".join(rules.allowed_models or ()) or "none"
            out.append(PolicyStop(sc.STOP_MODEL_NOT_ALLOWED, (
                f"model {model!r} is not allowed for {scope} {name!r} (allowed_models: {allowed}); switch to an "
                "allowed model with /model"), action, 0.0, 0.0, False))
    for scope, name, rules in scopes:
        if rules.has_caps:
            out += [PolicyStop(reason, sentence, policy.action(rules), observed, limit, True)
                    for reason, sentence, observed, limit in _cap_stops(store, session_id, run, scope, name, rules,
                                                                        now_ns)]
    return out


def _cap_stops(store: Any, session_id: str, run: dict[str, Any] | None, scope: str, name: str,
               rules: Rules, now_ns: int) -> list[tuple[str, str, float, float]]:
    from .policy_spend import SpendBook

    now = now_ns / NANO
    out: list[tuple[str, str, float, float]] = []
    if rules.runs_per_day is not None:
        nth = _nth_run_today(store, scope, name, session_id, run, now)
        if nth > rules.runs_per_day:
            out.append((stop_reason(scope, "runs"), f"this session is run {nth} of {scope} {name!r} today (UTC), "
                        f"over its runs_per_day = {rules.runs_per_day}", float(nth), float(rules.runs_per_day)))
    if not any(rules.usd_cap(w) is not None for w in WINDOWS):
        return out
    book = SpendBook(str(store.path), cache_seconds=0.0, clock=lambda: now)
    try:
        figures = book.figures(scope, name)
    finally:
        book.close()
    for window in WINDOWS:
        cap = rules.usd_cap(window)
        spent = figures.usd[window]
        if cap is not None and round(spent * NANO) >= round(cap * NANO):
            out.append((stop_reason(scope, window), f"{scope} {name!r} {window}_usd = {cap:g} reached "
                        f"(${spent:g} spent {_WHEN[window]}, UTC)", spent, cap))
    return out


def _nth_run_today(store: Any, scope: str, name: str, session_id: str, run: dict[str, Any] | None,
                   now: float) -> int:
    """Where the session comes among the scope's runs started this UTC day (1: the first; 0: begun earlier)."""
    start, end = window_bounds("daily", now)
    column = "project" if scope == "project" else "owner"
    started = run.get("started_ns") if run else None
    if started is not None and int(started) < start:
        return 0  # begun before today: a run counts in the day it started, as in-process
    before_sql = ""  # not stored yet: after every run of today
    params: tuple[Any, ...] = ()
    if started is not None:
        before_sql, params = " AND (started_ns < ? OR (started_ns = ? AND id < ?))", (started, started, session_id)
    rows = store.execute(f"SELECT count(*) FROM runs WHERE {column} = ? AND started_ns >= ? "  # noqa: S608
                         f"AND started_ns < ?{before_sql}", (name, start, end, *params))
    return int(rows[0][0]) + 1
