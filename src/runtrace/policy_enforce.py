"""Applying the process's :class:`~runtrace.policy.Policy` before each LLM and tool call.

The run's budget check (``RunState.check_budget``, on ``run._live``) calls
:func:`check` after the run's own budget: the approved tools, the approved
models, the small-call routing rule, then the caps (spend per UTC
day/week/month and runs per day, per project and per owner, read through
``policy_spend``). A breach is handled like a budget's:
``raise`` stops the run (:class:`~runtrace.BudgetExceeded` before the request
is sent, outcome ``budget_stopped``, the stop reason naming the rule) and
``warn`` records a ``runtrace.budget.exceeded`` event on the run span with the
reason, logs once per rule and run, and lets the call through. A call that
passes the caps is reserved at its projected cost until it is recorded
(:func:`note_call`), the check and the reservation under one lock, so the
process's threads cannot both take the last of a cap, and in one write
transaction of the store that writes the reservation's row, so the processes
sharing the store cannot either (``policy_shared``).

``runs_per_day`` lets the first N runs of the UTC day go on: a run takes its
place among the day's runs at its first LLM call and keeps it
(``SpendBook.run_place``), so only the runs that came later are refused, from
their first call on, as the Claude Code hook refuses later sessions.

Only runs name a project or an owner, so calls outside a run are under no
policy. Working out a breach never breaks the caller: an error in it is logged
once (``fail_open``) and the call goes ahead; a store that cannot be read
leaves the caps unchecked for that call, and says so once.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

from . import _state, projection, semconv
from ._forksafe import ForkSafeLock
from ._internal import fail_open
from .budget import Breach
from .policy import WINDOWS, Policy, PolicyError, Rules, load_policy, stop_reason
from .policy_spend import NANO, SpendBook

if TYPE_CHECKING:
    from .budget import OnExceed
    from .runs import CallFigures, Run

logger = logging.getLogger("runtrace")

__all__ = ["ActivePolicy", "check", "close", "configure", "note_call", "resolve", "wants_plan"]

WINDOW_WORDS = {"daily": "today", "weekly": "this week", "monthly": "this month"}


@dataclass
class ActivePolicy:
    """The policy of one ``instrument()`` and its spend reader: part of ``_state.Installed``."""

    policy: Policy
    book: SpendBook | None  # None: no local store, so no caps
    store_error_logged: bool = False  # a store that cannot be read is said once per instrument()


_check_lock = ForkSafeLock()  # a cap check and its reservation are one step for the process's threads


def active() -> ActivePolicy | None:
    """The installed state's policy (None: none). The per-call hooks below are given it instead:
    the instrumentation reads the state once a call (issue 14)."""
    installed = _state.current()
    return installed.policy if installed is not None else None


def resolve(policies: Policy | str | os.PathLike[str] | None) -> Policy | None:
    """The policy ``instrument(policies=...)`` means: a Policy, a TOML path, else ``RUNTRACE_POLICY``.

    Raises :class:`~runtrace.policy.PolicyError` for a bad file (configuration, not instrumentation).
    """
    if isinstance(policies, Policy):
        return policies
    if policies is not None:
        if not isinstance(policies, (str, os.PathLike)):
            raise PolicyError(f"instrument(policies=...) takes a runtrace.Policy or the path of a policy "
                              f"TOML file, got {type(policies).__name__}")
        return load_policy(policies)
    env = os.environ.get(semconv.ENV_POLICY)
    return load_policy(env) if env else None


def configure(policy: Policy | None, store_path: str | None) -> ActivePolicy | None:
    """What enforcing ``policy`` takes (None: no policy); caps read ``store_path``'s runs.

    ``instrument()`` puts the result into the state it installs; :func:`close` releases it.
    """
    if policy is None:
        return None
    book = None
    if policy.has_caps:
        if store_path is None:
            logger.error(
                "runtrace: %s sets spending or run caps (%s), but this process keeps no local store "
                "(store=False, or the store could not be opened): caps need a store to read the spend so "
                "far from, so they are NOT enforced. Allowed tools and models still are.",
                policy.source, ", ".join(policy.cap_names()))
        else:
            book = SpendBook(store_path, cache_seconds=policy.cache_seconds, clock=policy.clock)
    return ActivePolicy(policy, book)


def close(active: ActivePolicy | None) -> None:
    """Close the spend reader of a policy ``uninstrument()`` swapped out."""
    if active is not None and active.book is not None:
        with fail_open("policy: close the spend reader"):
            active.book.close()


def wants_plan(run: Run, active: ActivePolicy | None) -> bool:
    """True when a rule of ``active`` for the run needs the next call's plan (its model, tokens, projected cost)."""
    return active is not None and any(
        rules.has_caps or rules.allowed_models is not None or rules.has_small_call_rule
        for _scope, _name, rules in active.policy.scopes(run.project, run.owner))


def check(run: Run, kind: Literal["llm", "tool"], plan: projection.CallPlan | None,
          tool_name: str | None, active: ActivePolicy | None) -> None:
    """Apply the policy ``active`` to the call about to start; may raise BudgetExceeded (never anything else)."""
    if active is None:
        return
    found: list[tuple[Breach, str]] = []
    with _check_lock:
        book = active.book
        if kind == "llm" and book is not None and _has_caps(active, run):
            with fail_open("policy: check the call with the other processes' calls"):
                # The check and the reservation are one write transaction: every process's calls in flight count.
                with book.check_transaction():
                    found = _check_and_reserve(active, book, run, kind, plan, tool_name)
        else:
            found = _check_and_reserve(active, book, run, kind, plan, tool_name)
    for breach, action in found:
        run._live.apply_breach(breach, cast("OnExceed", action))  # "raise" or "warn"


def _has_caps(active: ActivePolicy, run: Run) -> bool:
    return any(rules.has_caps for _scope, _name, rules in active.policy.scopes(run.project, run.owner))


def _check_and_reserve(active: ActivePolicy, book: SpendBook | None, run: Run, kind: Literal["llm", "tool"],
                       plan: projection.CallPlan | None, tool_name: str | None) -> list[tuple[Breach, str]]:
    found: list[tuple[Breach, str]] = []
    reserve: float | None = None
    with fail_open("policy: check the call"):
        found, reserve = _breaches(active, run, kind, plan, tool_name)
    if reserve is not None and book is not None and all(a == "warn" for _b, a in found):
        with fail_open("policy: reserve the call"):
            book.reserve(run.id, run.project, run.owner, reserve)  # released by note_call
    return found


def note_call(run: Run, figures: CallFigures, active: ActivePolicy | None) -> None:
    """Count a finished call of the run under the policy ``active`` at once (the store sees it only after the export)."""
    if active is None or active.book is None:
        return
    with fail_open("policy: note the call's cost"):
        if not _has_caps(active, run):
            return
        key = None
        if figures.span_ref is not None:
            trace_id, span_id = figures.span_ref  # hex, as the store keeps them
            key = (f"{trace_id:032x}", f"{span_id:016x}")
        if figures.cost_usd and key is not None:
            active.book.note_call(key, run.id, run.project, run.owner, figures.cost_usd, figures.output_tokens)
        active.book.release(run.id, key, figures.cost_usd)  # the store row counts until the span is stored


def _breaches(active: ActivePolicy, run: Run, kind: str, plan: projection.CallPlan | None,
              tool_name: str | None) -> tuple[list[tuple[Breach, str]], float | None]:
    """The rules the call breaks (with their action), and the cost to reserve (None: no caps checked)."""
    policy = active.policy
    scopes = policy.scopes(run.project, run.owner)
    out: list[tuple[Breach, str]] = []
    for scope, name, rules in scopes:
        action = policy.action(rules)
        if kind == "tool":
            if tool_name is not None and not rules.tool_allowed(tool_name):
                assert rules.allowed_tools is not None
                out.append((Breach(semconv.STOP_TOOL_NOT_ALLOWED, 0.0, 0.0, detail=(
                    f"tool {tool_name!r} is not in the allowed tools of {scope} {name!r} "
                    f"({', '.join(sorted(rules.allowed_tools)) or 'none'})")), action))
            continue
        if plan is not None:
            breach = _model_breach(scope, name, rules, plan)
            if breach is not None:
                out.append((breach, action))
    reserve: float | None = None
    if kind == "llm" and active.book is not None:
        for scope, name, rules in scopes:
            if rules.has_caps:
                breaches, projected = _cap_breaches(active, active.book, run, scope, name, rules, plan)
                out += [(b, policy.action(rules)) for b in breaches]
                if projected is not None:
                    reserve = projected if reserve is None else max(reserve, projected)
    return out, reserve


def _model_breach(scope: str, name: str, rules: Rules, plan: projection.CallPlan) -> Breach | None:
    model = plan.model
    if model is not None and not rules.model_allowed(model):
        assert rules.allowed_models is not None
        return Breach(semconv.STOP_MODEL_NOT_ALLOWED, 0.0, 0.0, detail=(
            f"model {model!r} is not allowed for {scope} {name!r} "
            f"(allowed_models: {', '.join(rules.allowed_models) or 'none'})"))
    if rules.has_small_call_rule and plan.price is not None:
        assert rules.small_call_max_input_tokens is not None and rules.small_call_max_usd_per_mtok is not None
        if plan.input_tokens < rules.small_call_max_input_tokens:
            # Priced at 1,000 tokens, scaled: a million would hit long-context tiers some models have.
            thousand = plan.price(1_000, 0)
            per_mtok = None if thousand is None else thousand * 1_000
            limit = rules.small_call_max_usd_per_mtok
            if per_mtok is not None and math.isfinite(per_mtok) and round(per_mtok * 1e9) > round(limit * 1e9):
                return Breach(semconv.STOP_MODEL_TOO_DEAR, limit, per_mtok, detail=(
                    f"model {model!r} costs ${per_mtok:g} / MTok input, above the ${limit:g} that {scope} "
                    f"{name!r} allows for small calls (this one: about {plan.input_tokens} input token{'' if plan.input_tokens == 1 else 's'}, "
                    f"fewer than {rules.small_call_max_input_tokens}); use a cheaper model for small work"))
    return None


def _cap_breaches(active: ActivePolicy, book: SpendBook, run: Run, scope: str, name: str, rules: Rules,
                  plan: projection.CallPlan | None) -> tuple[list[Breach], float | None]:
    """The caps the call would break, and its projected cost (None: the caps could not be read)."""
    from .store.errors import StoreError

    if rules.runs_per_day is not None:
        book.note_run(run.id, run.project, run.owner)  # this run counts among today's
    try:
        figures = book.figures(scope, name)
    except (sqlite3.Error, StoreError) as exc:
        if not active.store_error_logged:
            active.store_error_logged = True
            logger.error("runtrace: policy caps of %s %r not checked: cannot read the store %s (%s); "
                         "the call goes ahead", scope, name, book.store_path, exc)
        return [], None
    out: list[Breach] = []
    if rules.runs_per_day is not None:
        # The first N runs of the UTC day go on (the place is the run's at its first check, kept);
        # a later run is refused from its first call on, as the Claude Code hook refuses later sessions.
        nth = book.run_place(run.id, scope, name, figures.runs_today)
        if nth > rules.runs_per_day:
            out.append(Breach(stop_reason(scope, "runs"), float(rules.runs_per_day), float(nth),
                              detail=(f"this run is run {nth} of the day: {scope} {name!r} started {nth} runs "
                                      f"today (UTC), over its runs_per_day = {rules.runs_per_day}")))
    projected = 0.0
    if plan is not None:
        totals = run.figures()
        run_calls = int(totals["llm_calls"])
        output = projection.expected_output_tokens(plan, int(totals["output_tokens"]), run_calls)
        if plan.max_output_tokens is None and run_calls == 0:
            # A run's first call without an output cap: the scope's mean output per call this month
            # (a run budget projects it at its input only; across runs there is a history to go by).
            output = figures.mean_output_tokens
        projected = projection.projected_cost(plan, output)
    for window in WINDOWS:
        cap = rules.usd_cap(window)
        if cap is None:
            continue
        spent = figures.usd[window]
        key = f"{window}_usd"
        when = WINDOW_WORDS[window]
        if round(spent * NANO) >= round(cap * NANO):
            out.append(Breach(stop_reason(scope, window), cap, spent, detail=(
                f"{scope} {name!r} {key} = {cap:g} reached (${spent:g} spent {when}, UTC)")))
        elif round((spent + projected) * NANO) > round(cap * NANO):
            out.append(Breach(stop_reason(scope, window), cap, spent, projected, detail=(
                f"{scope} {name!r} {key} = {cap:g} would be crossed by the next call "
                f"(${spent:g} spent {when}, UTC, + ${projected:g} projected)")))
    return out, projected
