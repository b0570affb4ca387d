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

The hook also applies approved tools (issue 16): ``--allowed-tools`` and the
``allowed_tools`` of the session's project and owner in a policy file
(``--policy`` / ``RUNTRACE_POLICY``, docs/policies.md; the project is the one
the session's telemetry names, else ``--project``). A tool outside a list is
denied with the reason, like ``tool_not_allowed`` in an instrumented program
(``on_exceed = "warn"``: allowed, and said on stderr). Such a denial does not
end the session, so it records no outcome.

The hook must never break Claude Code: any error (no store, a bad payload, a
locked database) allows the call and says why on stderr.
"""

from __future__ import annotations

import json
import time
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import semconv as sc
from .agents_setup import Budget

if TYPE_CHECKING:
    from .policy import Policy

__all__ = ["Breach", "Decision", "check_policy_tools", "check_session", "check_tool", "deny_output",
           "find_breach"]

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
    warning: str | None = None  # allowed although a rule said no (on_exceed = "warn")


def check_tool(tool_name: str | None, allowed: AbstractSet[str] | None, whose: str) -> str | None:
    """The denial reason when ``tool_name`` is outside ``allowed`` (None: any tool), else None."""
    if tool_name is None or allowed is None or tool_name in allowed:
        return None
    return (f"runtrace: tool {tool_name!r} is not in the allowed tools of {whose} "
            f"({', '.join(sorted(allowed)) or 'none'}; {sc.STOP_TOOL_NOT_ALLOWED}). Use one of those, or "
            "stop and say which tool you need and why.")


def check_policy_tools(policy: Policy, tool_name: str | None, project: str | None,
                       owner: str | None) -> Decision | None:
    """The policy's ``allowed_tools`` for the session's project and owner: a denial, a warning or None."""
    warning = None
    for scope, name, rules in policy.scopes(project, owner):
        reason = check_tool(tool_name, rules.allowed_tools, f"{scope} {name!r}")
        if reason is None:
            continue
        if policy.action(rules) == "warn":
            warning = warning or reason
            continue
        return Decision(False, reason)
    return Decision(True, warning=warning) if warning else None


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


def check_session(store: Any, session_id: str, budget: Budget, *, now_ns: int | None = None,
                  tool_name: str | None = None, policy: Policy | None = None,
                  project: str | None = None) -> Decision:
    """Allow or deny the session's next tool call; on the first denial over a limit record ``budget_stopped``.

    ``store`` may be None (no store yet): then only the tool lists apply.
    ``project`` is the session's project when its telemetry does not name one.
    """
    from .store.verdicts import outcome_record

    reason = check_tool(tool_name, budget.allowed_tools, "this session")
    if reason is not None:
        return Decision(False, reason)
    rows = [] if store is None else store.execute(
        "SELECT cost_nusd, tool_calls, started_ns, outcome, project, owner FROM runs WHERE id = ?", (session_id,))
    warned: Decision | None = None
    if policy is not None:
        known = dict(rows[0]) if rows else {}
        decided = check_policy_tools(policy, tool_name, known.get("project") or project, known.get("owner"))
        if decided is not None and not decided.allow:
            return decided
        warned = decided
    if not rows or not budget.has_limits():
        return warned or Decision(True)  # no telemetry for this session yet: nothing to hold it to
    run = dict(rows[0])
    breach = find_breach(run, budget, time.time_ns() if now_ns is None else now_ns)
    if breach is None:
        return warned or Decision(True)
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
