"""Approved tools in the Claude Code PreToolUse hook (issue 16, item 2): the same lists as in-process."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from runtrace import semconv as sc
from runtrace.agents_setup import Budget, claude_hook_command
from runtrace.cli import main
from runtrace.store.db import Store
from store_helpers import llm, run_span

SESSION = "0b6f3f5e-policy-session"


def hook(store: Path, tool: str, *flags: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    payload = {"session_id": SESSION, "hook_event_name": "PreToolUse", "tool_name": tool,
               "tool_input": {"command": "rm -rf build"}}
    result = CliRunner().invoke(main, ["agents", "check", "claude", "--store", str(store), *flags],
                                input=json.dumps(payload), catch_exceptions=False, env=env)
    return result.exit_code, result.stdout, result.stderr


def session_store(path: Path, project: str | None = "checkout-agent") -> Path:
    with Store.open(path) as store:
        store.ingest([run_span(SESSION, 1, start_s=0, end_s=5, project=project, owner="alice@example.com"),
                      llm(SESSION, 2, start_s=1, end_s=2, cost=0.01, parent=1)])
    return path


def denial(out: str) -> str:
    decision = json.loads(out)["hookSpecificOutput"]
    assert (decision["hookEventName"], decision["permissionDecision"]) == ("PreToolUse", "deny")
    reason: str = decision["permissionDecisionReason"]
    return reason


def outcomes(path: Path) -> int:
    with Store.open(path, create=False) as store:
        return int(store.execute("SELECT count(*) FROM spans WHERE kind = 'outcome'")[0][0])


def test_allowed_tools_flag_denies_other_tools_with_the_reason(tmp_path: Path) -> None:
    path = session_store(tmp_path / "rt.db")
    code, out, err = hook(path, "Bash", "--allowed-tools", "Read,Grep")
    assert code == 0
    assert denial(out) == ("runtrace: tool 'Bash' is not in the allowed tools of this session (Grep, Read; "
                           "tool_not_allowed). Use one of those, or stop and say which tool you need and why.")
    assert "denied Bash" in err
    assert hook(path, "Read", "--allowed-tools", "Read,Grep") == (0, "", "")
    assert outcomes(path) == 0  # a refused tool does not end the session


def test_allowed_tools_hold_before_any_telemetry_arrived(tmp_path: Path) -> None:
    code, out, _ = hook(tmp_path / "no-store-yet.db", "Write", "--allowed-tools", "Read")
    assert code == 0 and "'Write' is not in the allowed tools of this session" in denial(out)


def test_the_policy_file_of_the_sessions_project_applies(tmp_path: Path) -> None:
    path = session_store(tmp_path / "rt.db")
    policy = tmp_path / "policy.toml"
    policy.write_text('[project.checkout-agent]\nallowed_tools = ["Read", "Grep"]\n')
    code, out, _ = hook(path, "Bash", "--policy", str(policy))
    assert code == 0
    assert denial(out).startswith("runtrace: tool 'Bash' is not in the allowed tools of project "
                                  "'checkout-agent' (Grep, Read; tool_not_allowed)")
    assert hook(path, "Grep", env={sc.ENV_POLICY: str(policy)}) == (0, "", "")
    code, out, _ = hook(path, "Bash", env={sc.ENV_POLICY: str(policy)})  # RUNTRACE_POLICY names it too
    assert "project 'checkout-agent'" in denial(out)


def test_project_given_when_the_telemetry_names_none_and_warn_mode(tmp_path: Path) -> None:
    path = session_store(tmp_path / "rt.db", project=None)
    policy = tmp_path / "policy.toml"
    policy.write_text('[project.checkout-agent]\nallowed_tools = ["Read"]\non_exceed = "warn"\n')
    assert hook(path, "Bash", "--policy", str(policy)) == (0, "", "")  # no project: no rule
    code, out, err = hook(path, "Bash", "--policy", str(policy), "--project", "checkout-agent")
    assert (code, out) == (0, "")  # warn: allowed
    assert "warning (allowed, on_exceed=warn): runtrace: tool 'Bash' is not in the allowed tools of project " \
           "'checkout-agent' (Read; tool_not_allowed)" in err


def test_a_bad_policy_file_allows_the_call_and_says_why(tmp_path: Path) -> None:
    path = session_store(tmp_path / "rt.db")
    policy = tmp_path / "policy.toml"
    policy.write_text('[project.checkout-agent]\nallowed_tools = "Read"\n')
    code, out, err = hook(path, "Bash", "--policy", str(policy))
    assert (code, out) == (0, "")
    assert f"PolicyError: policy file {policy}: [project.checkout-agent] allowed_tools must be a list of " \
           "non-empty strings, got 'Read'; allowing the tool call" in err


def test_the_installed_hook_command_carries_the_lists(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    command = claude_hook_command(str(tmp_path / "rt.db"), Budget(allowed_tools=frozenset({"Read", "Grep"})),
                                  python="python3", policy=str(policy), project="checkout-agent")
    assert command == (f"python3 -m runtrace.cli agents check claude --store {tmp_path / 'rt.db'} "
                       f"--allowed-tools Grep,Read --policy {policy} --project checkout-agent")
