"""Caps and model rules in the Claude Code hook (issue 16): before a tool call and before a prompt.

The hook is fed the JSON Claude Code sends (PreToolUse, UserPromptSubmit) through
the real CLI; the store is a real SQLite file holding priced sessions that
started a minute ago, so they fall in the current UTC day, week and month the
hook reads with the real clock.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from runtrace import semconv as sc
from runtrace.cli import main
from runtrace.store.db import Store
from runtrace.store.queries import get_run
from store_helpers import BASE_NS, S, llm, run_span

SESSION = "7c1d2e3f-policy-caps-session"
OTHER = "8d2e3f40-earlier-session"
TOOL_TAIL = "Stop calling tools; summarise what is done and what is left."
PROMPT_TAIL = "The prompt was not sent."


def ago() -> float:
    """Seconds after store_helpers.BASE_NS of "a moment ago", never before today's UTC midnight."""
    now = time.time()
    since_midnight = now % 86_400
    return now - BASE_NS / S - min(60.0, since_midnight / 2)


def add_session(path: Path, run_id: str, n: int, *, offset_s: float, costs: tuple[float, ...],
                model: str = "claude-opus-4-8", project: str = "checkout-agent",
                owner: str = "alice@example.com") -> None:
    """A Claude Code session as the logs adapter stores it: run id = session id, priced model calls."""
    t = ago() + offset_s
    records = [run_span(run_id, n, start_s=t, end_s=t + 5, project=project, owner=owner)]
    records += [llm(run_id, n + 1 + i, start_s=t + 1 + i, end_s=t + 1.5 + i, model=model, provider="anthropic",
                    input_tokens=6600, output_tokens=440, cost=cost, parent=n) for i, cost in enumerate(costs)]
    with Store.open(path) as store:
        store.ingest(records)


def two_sessions(path: Path) -> Path:
    """The project spent $0.04 in an earlier session and $0.02 in this one: $0.06 today."""
    add_session(path, OTHER, 100, offset_s=-10, costs=(0.03, 0.01))
    add_session(path, SESSION, 200, offset_s=0, costs=(0.02,))
    return path


def policy_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def pre_tool_use(tool: str = "Bash") -> dict[str, Any]:
    return {"session_id": SESSION, "transcript_path": "/tmp/t.jsonl", "cwd": "/repo", "permission_mode": "default",
            "hook_event_name": "PreToolUse", "tool_name": tool, "tool_input": {"command": "make test"}}


def user_prompt() -> dict[str, Any]:
    return {"session_id": SESSION, "transcript_path": "/tmp/t.jsonl", "cwd": "/repo", "permission_mode": "default",
            "hook_event_name": "UserPromptSubmit", "prompt": "now fix the flaky test"}


def hook(store: Path, payload: dict[str, Any], *flags: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["agents", "check", "claude", "--store", str(store), *flags],
                                input=json.dumps(payload), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def tool_denial(out: str) -> str:
    decision = json.loads(out)
    assert list(decision) == ["hookSpecificOutput"]
    inner = decision["hookSpecificOutput"]
    assert (inner["hookEventName"], inner["permissionDecision"]) == ("PreToolUse", "deny")
    reason: str = inner["permissionDecisionReason"]
    return reason


def outcomes(path: Path) -> list[tuple[str | None, str]]:
    with Store.open(path, create=False) as store:
        return [(r[0], r[1]) for r in store.execute(
            "SELECT run_id, attributes FROM spans WHERE kind = 'outcome' ORDER BY start_ns")]


def test_a_project_at_its_daily_cap_is_refused_before_a_tool_call_and_stopped_once(tmp_path: Path) -> None:
    path = two_sessions(tmp_path / "rt.db")
    under = policy_file(tmp_path, "[project.checkout-agent]\ndaily_usd = 0.07\n")
    assert hook(path, pre_tool_use(), "--policy", str(under)) == (0, "", "")  # $0.06 < $0.07
    at = policy_file(tmp_path, "[project.checkout-agent]\ndaily_usd = 0.05\n")
    code, out, err = hook(path, pre_tool_use(), "--policy", str(at))
    assert code == 0
    reason = ("runtrace policy (project_daily_usd): project 'checkout-agent' daily_usd = 0.05 reached ($0.06 spent "
              f"today, UTC). {TOOL_TAIL}")
    assert tool_denial(out) == reason
    assert err == f"runtrace budget hook: denied Bash: {reason}\n"
    with Store.open(path, create=False) as store:
        run = get_run(store, SESSION)
        assert run is not None
        assert run["outcome"] == "budget_stopped"
        assert get_run(store, OTHER)["outcome"] == "open"  # type: ignore[index]  # only the session that asked
    code, out, _ = hook(path, pre_tool_use("Read"), "--policy", str(at))
    assert tool_denial(out) == reason
    stops = outcomes(path)
    assert len(stops) == 1 and stops[0][0] == SESSION  # recorded once
    attrs = json.loads(stops[0][1])
    assert (attrs[sc.RUN_STOP_REASON], attrs[sc.BUDGET_LIMIT], attrs[sc.BUDGET_OBSERVED],
            attrs[sc.BUDGET_LIMIT_VALUE]) == ("project_daily_usd", "project_daily_usd", 0.06, 0.05)


def test_the_caps_hold_before_a_prompt_too(tmp_path: Path) -> None:
    path = two_sessions(tmp_path / "rt.db")
    policy = policy_file(tmp_path, '[owner."alice@example.com"]\nmonthly_usd = 0.06\n')
    code, out, err = hook(path, user_prompt(), "--policy", str(policy))
    reason = ("runtrace policy (owner_monthly_usd): owner 'alice@example.com' monthly_usd = 0.06 reached ($0.06 "
              f"spent this month, UTC). {PROMPT_TAIL}")
    assert (code, json.loads(out)) == (0, {"decision": "block", "reason": reason})
    assert err == f"runtrace budget hook: denied the prompt: {reason}\n"
    assert len(outcomes(path)) == 1


def test_a_session_over_its_run_budget_cannot_send_another_prompt(tmp_path: Path) -> None:
    path = two_sessions(tmp_path / "rt.db")
    assert hook(path, user_prompt(), "--budget-usd", "0.03") == (0, "", "")
    code, out, _ = hook(path, user_prompt(), "--budget-usd", "0.02")
    assert (code, json.loads(out)) == (0, {"decision": "block", "reason": (
        f"runtrace budget reached for this session ({SESSION}): spent 0.0200 USD, limit 0.0200 (max_cost_usd). "
        f"{PROMPT_TAIL}")})
    (stop,) = outcomes(path)
    assert json.loads(stop[1])[sc.RUN_STOP_REASON] == "max_cost_usd"


def test_warn_mode_prints_and_allows(tmp_path: Path) -> None:
    path = two_sessions(tmp_path / "rt.db")
    policy = policy_file(tmp_path, '[project.checkout-agent]\nweekly_usd = 0.05\non_exceed = "warn"\n')
    for payload, tail in ((pre_tool_use(), TOOL_TAIL), (user_prompt(), PROMPT_TAIL)):
        code, out, err = hook(path, payload, "--policy", str(policy))
        assert (code, out) == (0, "")
        assert err == ("runtrace budget hook: warning (allowed, on_exceed=warn): runtrace policy (project_weekly_usd): "
                       f"project 'checkout-agent' weekly_usd = 0.05 reached ($0.06 spent this week, UTC). {tail}\n")
    assert outcomes(path) == []


def test_the_sessions_model_must_be_an_allowed_one(tmp_path: Path) -> None:
    path = two_sessions(tmp_path / "rt.db")  # this session's calls used claude-opus-4-8
    policy = policy_file(tmp_path, '[project.checkout-agent]\nallowed_models = ["claude-sonnet-*"]\n')
    code, out, _ = hook(path, pre_tool_use(), "--policy", str(policy))
    assert code == 0
    assert tool_denial(out) == (
        "runtrace policy (model_not_allowed): model 'claude-opus-4-8' is not allowed for project 'checkout-agent' "
        f"(allowed_models: claude-sonnet-*); switch to an allowed model with /model. {TOOL_TAIL}")
    code, out, _ = hook(path, user_prompt(), "--policy", str(policy))
    assert json.loads(out)["decision"] == "block"
    assert outcomes(path) == []  # the user can switch model: the session is not over
    with Store.open(path) as store:  # after /model: the latest call is an allowed model's
        store.ingest([llm(SESSION, 299, start_s=ago() + 30, end_s=ago() + 31, model="claude-sonnet-4-5",
                          provider="anthropic", input_tokens=10, output_tokens=1, cost=0.0, parent=200)])
    assert hook(path, pre_tool_use(), "--policy", str(policy)) == (0, "", "")
    assert hook(path, user_prompt(), "--policy", str(policy)) == (0, "", "")


def test_a_session_with_no_recorded_call_yet_is_not_held_to_the_model_list(tmp_path: Path) -> None:
    path = tmp_path / "rt.db"
    add_session(path, SESSION, 200, offset_s=0, costs=())
    policy = policy_file(tmp_path, '[project.checkout-agent]\nallowed_models = ["claude-sonnet-*"]\n')
    assert hook(path, user_prompt(), "--policy", str(policy)) == (0, "", "")


def test_runs_per_day_lets_the_first_sessions_of_the_day_go_on(tmp_path: Path) -> None:
    path = two_sessions(tmp_path / "rt.db")  # OTHER began 10 s before SESSION
    policy = policy_file(tmp_path, "[project.checkout-agent]\nruns_per_day = 1\n")
    first = {**pre_tool_use(), "session_id": OTHER}
    assert hook(path, first, "--policy", str(policy)) == (0, "", "")
    code, out, _ = hook(path, pre_tool_use(), "--policy", str(policy))
    assert tool_denial(out) == ("runtrace policy (project_daily_runs): this session is run 2 of project "
                                f"'checkout-agent' today (UTC), over its runs_per_day = 1. {TOOL_TAIL}")
    new = {**user_prompt(), "session_id": "a-session-not-stored-yet"}  # a third, before its telemetry
    code, out, _ = hook(path, new, "--policy", str(policy), "--project", "checkout-agent")
    assert json.loads(out) == {"decision": "block", "reason": (
        "runtrace policy (project_daily_runs): this session is run 3 of project 'checkout-agent' today (UTC), "
        f"over its runs_per_day = 1. {PROMPT_TAIL}")}
    assert [r for r, _a in outcomes(path)] == [SESSION]  # the unstored one has no run to record a stop on


def test_the_installed_hook_runs_before_prompts_too(tmp_path: Path) -> None:
    path = two_sessions(tmp_path / "rt.db")
    policy = policy_file(tmp_path, "[project.checkout-agent]\ndaily_usd = 0.05\n")
    result = CliRunner().invoke(main, ["agents", "hook", "claude", "--home", str(tmp_path), "--store", str(path),
                                       "--policy", str(policy)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    hooks = json.loads((tmp_path / ".claude" / "settings.json").read_text())["hooks"]
    assert sorted(hooks) == ["PreToolUse", "UserPromptSubmit"]
    (entry,) = hooks["UserPromptSubmit"]
    assert list(entry) == ["hooks"]  # UserPromptSubmit takes no matcher
    (command,) = entry["hooks"]
    assert command == hooks["PreToolUse"][0]["hooks"][0]  # the same command, type and timeout
    done = subprocess.run(command["command"], shell=True, input=json.dumps(user_prompt()), capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"decision": "block", "reason": (
        "runtrace policy (project_daily_usd): project 'checkout-agent' daily_usd = 0.05 reached ($0.06 spent today, "
        f"UTC). {PROMPT_TAIL}")}
    again = CliRunner().invoke(main, ["agents", "hook", "claude", "--home", str(tmp_path), "--store", str(path),
                                      "--policy", str(policy)], catch_exceptions=False)
    assert again.exit_code == 0
    hooks = json.loads((tmp_path / ".claude" / "settings.json").read_text())["hooks"]
    assert (len(hooks["PreToolUse"]), len(hooks["UserPromptSubmit"])) == (1, 1)  # replaced, not added


def test_another_hook_event_is_allowed_and_said_so(tmp_path: Path) -> None:
    path = two_sessions(tmp_path / "rt.db")
    policy = policy_file(tmp_path, "[project.checkout-agent]\ndaily_usd = 0.05\n")
    payload = {**pre_tool_use(), "hook_event_name": "PostToolUse"}
    assert hook(path, payload, "--policy", str(policy)) == (
        0, "", "runtrace budget hook: 'PostToolUse' is not an event it checks (PreToolUse, UserPromptSubmit); "
               "allowing\n")
    assert outcomes(path) == []
