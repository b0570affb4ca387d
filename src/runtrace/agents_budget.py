"""Budgets for Claude Code sessions: the PreToolUse hook's decision.

Claude Code runs the hook before every tool call with JSON on stdin
(``session_id``, ``tool_name``, ``tool_input``). The session's run (run id =
the session id, as the logs adapter stores it) is read from the store; when it
is at or over a limit, the hook denies the call through the documented JSON
contract (exit 0, ``hookSpecificOutput.permissionDecision = "deny"`` with a
reason the model reads) and records the stop once as a ``run.outcome`` span
with outcome ``budget_stopped`` through the store's one ingest path.

The figures are as fresh as the agent's telemetry: events arrive with its
export interval (``OTEL_LOGS_EXPORT_INTERVAL``, 1 s as set up by runtrace), so
a stop can come a call or a few seconds late.

The hook must never break Claude Code: any error (no store, a bad payload, a
locked database) allows the call and says why on stderr.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from . import semconv as sc
from .agents_setup import Budget

__all__ = ["Breach", "Decision", "check_session", "deny_output", "find_breach"]

NANO = 1_000_000_000
STOPPED_BY = "runtrace agents check"


@dataclass(frozen=True)
class Breach:
    limit: str  # the Budget field that tripped, as in runtrace's stop reasons (max_cost_usd, ...)
    observed: float
    limit_value: float

    def message(self, run_id: str) -> str:
        what = {"max_cost_usd": ("spent", "USD"), "max_tool_calls": ("made", "tool calls"),
                "max_seconds": ("ran", "seconds")}[self.limit]
        observed = f"{self.observed:.4f}" if self.limit == "max_cost_usd" else f"{self.observed:g}"
        limit = f"{self.limit_value:.4f}" if self.limit == "max_cost_usd" else f"{self.limit_value:g}"
        return (f"runtrace budget reached for this session ({run_id}): {what[0]} {observed} {what[1]}, "
                f"limit {limit} ({self.limit}). Stop calling tools; summarise what is done and what is left.")


@dataclass(frozen=True)
class Decision:
    allow: bool
    reason: str | None = None
    recorded: bool = False  # this call wrote the budget_stopped outcome


def find_breach(run: dict[str, Any], budget: Budget, now_ns: int) -> Breach | None:
    """The first limit the run is at or over (the next tool call would cross it), else None."""
    cost = run["cost_nusd"] / NANO
    if budget.max_cost_usd is not None and cost >= budget.max_cost_usd:
        return Breach("max_cost_usd", cost, float(budget.max_cost_usd))
    if budget.max_tool_calls is not None and run["tool_calls"] >= budget.max_tool_calls:
        return Breach("max_tool_calls", float(run["tool_calls"]), float(budget.max_tool_calls))
    if budget.max_seconds is not None and run["started_ns"] is not None:
        elapsed = max(0.0, (now_ns - run["started_ns"]) / NANO)
        if elapsed >= budget.max_seconds:
            return Breach("max_seconds", round(elapsed, 1), float(budget.max_seconds))
    return None


def check_session(store: Any, session_id: str, budget: Budget, *, now_ns: int | None = None) -> Decision:
    """Allow or deny the session's next tool call; on the first denial record ``budget_stopped``."""
    from .store.verdicts import outcome_record

    rows = store.execute("SELECT cost_nusd, tool_calls, started_ns, outcome FROM runs WHERE id = ?",
                         (session_id,))
    if not rows:
        return Decision(True)  # no telemetry for this session yet: nothing to hold it to
    run = dict(rows[0])
    breach = find_breach(run, budget, time.time_ns() if now_ns is None else now_ns)
    if breach is None:
        return Decision(True)
    reason = breach.message(session_id)
    if run["outcome"] == sc.OUTCOME_BUDGET_STOPPED:
        return Decision(False, reason)  # already recorded by an earlier denial
    record = outcome_record(session_id, sc.OUTCOME_BUDGET_STOPPED, by=STOPPED_BY,
                            reason=f"{breach.limit}: {breach.observed:g} >= {breach.limit_value:g}",
                            service="runtrace-agents-hook", now_ns=now_ns)
    record.attributes[sc.RUN_STOP_REASON] = breach.limit
    record.attributes[sc.BUDGET_LIMIT] = breach.limit
    record.attributes[sc.BUDGET_OBSERVED] = breach.observed
    record.attributes[sc.BUDGET_LIMIT_VALUE] = breach.limit_value
    store.ingest([record])
    return Decision(False, reason, recorded=True)


def deny_output(reason: str) -> str:
    """Claude Code's PreToolUse JSON contract for a denial: the reason is shown to the model."""
    return json.dumps({"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                              "permissionDecisionReason": reason}})
