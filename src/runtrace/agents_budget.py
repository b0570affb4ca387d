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

The policy's caps and model rules apply too (:mod:`runtrace.agents_policy`):
a project or owner at its daily/weekly/monthly spend cap or over its runs per
day stops the session like its budget (the reason, one ``budget_stopped``
outcome with the cap's stop reason); a session whose model is not in
``allowed_models`` is refused until it switches model (no outcome).

The same checks run before each prompt (``UserPromptSubmit``, installed next to
PreToolUse): a session already stopped is told so before its prompt costs a
model call, through that event's contract (``decision = "block"`` with the
reason, which Claude Code shows the user).

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

__all__ = ["EVENTS", "Breach", "Decision", "check_policy_tools", "check_session", "check_tool", "deny_output",
           "find_breach"]

NANO = 1_000_000_000
STOPPED_BY = "runtrace agents check"
PRE_TOOL_USE, USER_PROMPT_SUBMIT = "PreToolUse", "UserPromptSubmit"
# What the reason asks for, by hook event: the model reads a PreToolUse reason, the user a prompt's.
_TAILS = {PRE_TOOL_USE: "Stop calling tools; summarise what is done and what is left.",
          USER_PROMPT_SUBMIT: "The prompt was not sent."}
EVENTS = tuple(_TAILS)


@dataclass(frozen=True)
class Breach:
    limit: str  # the Budget field that tripped, as in runtrace's stop reasons (max_cost_usd, ...)
    observed: float
    limit_value: float

    def message(self, run_id: str, event: str = PRE_TOOL_USE) -> str:
        what = {"max_cost_usd": ("spent", "USD"), "max_tool_calls": ("made", "tool calls"),
                "max_seconds": ("ran", "seconds")}[self.limit]
        observed = f"{self.observed:.4f}" if self.limit == "max_cost_usd" else f"{self.observed:g}"
        limit = f"{self.limit_value:.4f}" if self.limit == "max_cost_usd" else f"{self.limit_value:g}"
        return (f"runtrace budget reached for this session ({run_id}): {what[0]} {observed} {what[1]}, "
                f"limit {limit} ({self.limit}). {_TAILS[event]}")


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
                  project: str | None = None, event: str = PRE_TOOL_USE) -> Decision:
    """Allow or deny the session's next tool call (or prompt); a stop over a limit or cap is recorded once.

    ``store`` may be None (no store yet): then only the tool lists apply.
    ``project`` is the session's project when its telemetry does not name one.
    ``event``: ``PreToolUse`` or ``UserPromptSubmit`` (no tool: the tool lists do not apply).
    """
    from .agents_policy import policy_stops

    now_ns = time.time_ns() if now_ns is None else now_ns
    reason = check_tool(tool_name, budget.allowed_tools, "this session")
    if reason is not None:
        return Decision(False, reason)
    rows = [] if store is None else store.execute(
        "SELECT cost_nusd, tool_calls, started_ns, outcome, stop_reason, project, owner FROM runs WHERE id = ?", (session_id,))
    run = dict(rows[0]) if rows else None
    warnings: list[str] = []
    if policy is not None:
        decided = check_policy_tools(policy, tool_name, (run or {}).get("project") or project,
                                     (run or {}).get("owner"))
        if decided is not None and not decided.allow:
            return decided
        if decided is not None and decided.warning:
            warnings.append(decided.warning)
    breach = find_breach(run, budget, now_ns) if run is not None and budget.has_limits() else None
    if run is not None and breach is not None:
        return _stop(store, session_id, run, breach.limit, breach.observed, breach.limit_value,
                     breach.message(session_id, event), f"{breach.limit}: {breach.observed:g} >= "
                     f"{breach.limit_value:g}", now_ns)
    if policy is not None and store is not None:
        for stop in policy_stops(store, policy, session_id, run, (run or {}).get("project") or project,
                                 (run or {}).get("owner"), now_ns):
            reason = f"runtrace policy ({stop.stop_reason}): {stop.sentence}. {_TAILS[event]}"
            if stop.action == "warn":
                warnings.append(reason)
            elif stop.ends_session and run is not None:
                return _stop(store, session_id, run, stop.stop_reason, stop.observed, stop.limit_value, reason,
                             f"{stop.stop_reason}: {stop.observed:g} >= {stop.limit_value:g}", now_ns)
            else:
                return Decision(False, reason, warning="; ".join(warnings) or None)
    return Decision(True, warning="; ".join(warnings) or None)


def _stop(store: Any, session_id: str, run: dict[str, Any], limit: str, observed: float, limit_value: float,
          reason: str, why: str, now_ns: int) -> Decision:
    """Deny, and record the session's ``budget_stopped`` outcome unless an earlier denial did."""
    from .store.verdicts import outcome_record

    if run["outcome"] == sc.OUTCOME_BUDGET_STOPPED or run.get("stop_reason") is not None:
        # Already recorded by an earlier denial; a verdict given since (rejected ...) is not overwritten.
        return Decision(False, reason)
    record = outcome_record(session_id, sc.OUTCOME_BUDGET_STOPPED, by=STOPPED_BY, reason=why,
                            service="runtrace-agents-hook", now_ns=now_ns)
    record.attributes[sc.RUN_STOP_REASON] = limit
    record.attributes[sc.BUDGET_LIMIT] = limit
    record.attributes[sc.BUDGET_OBSERVED] = observed
    record.attributes[sc.BUDGET_LIMIT_VALUE] = limit_value
    store.ingest([record])
    return Decision(False, reason, recorded=True)


def deny_output(reason: str, event: str = PRE_TOOL_USE) -> str:
    """Claude Code's JSON contract for a denial (exit 0).

    PreToolUse: ``permissionDecision = "deny"``, the reason shown to the model.
    UserPromptSubmit: ``decision = "block"``, the prompt is not processed and the reason is shown to the user.
    """
    if event == USER_PROMPT_SUBMIT:
        return json.dumps({"decision": "block", "reason": reason})
    return json.dumps({"hookSpecificOutput": {"hookEventName": PRE_TOOL_USE, "permissionDecision": "deny",
                                              "permissionDecisionReason": reason}})
