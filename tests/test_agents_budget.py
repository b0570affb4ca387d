"""The Claude Code PreToolUse budget hook: deny once over budget, record budget_stopped once, never crash."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtrace import semconv as sc
from runtrace.agents_budget import check_session
from runtrace.agents_setup import Budget
from runtrace.cli import main
from runtrace.store.db import Store
from runtrace.store.queries import get_run
from store_helpers import BASE_NS, S, llm, tool

SESSION = "5694915b-b3bc-412d-acc2-f3876e276bc6"


def session_store(path: Path, *, tools: int = 3, cost_each: float = 0.0319) -> Path:
    """A Claude Code session as the logs adapter stores it: run id = session id, 2 model calls, N tools."""
    records = [llm(SESSION, 1, start_s=0, end_s=1, model="claude-opus-4-8", provider="anthropic",
                   input_tokens=6600, output_tokens=440, cached=3300, cost=cost_each),
               llm(SESSION, 2, start_s=2, end_s=3, model="claude-opus-4-8", provider="anthropic",
                   input_tokens=6603, output_tokens=441, cached=3301, cost=cost_each)]
    records += [tool(SESSION, 10 + i, start_s=4 + i, end_s=4.5 + i, tool_name="Read") for i in range(tools)]
    with Store.open(path) as store:
        store.ingest(records)
    return path


def hook(store: Path, payload: object, *limits: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["agents", "check", "claude", "--store", str(store), *limits],
                                input=payload if isinstance(payload, str) else json.dumps(payload),
                                catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


PAYLOAD = {"session_id": SESSION, "hook_event_name": "PreToolUse", "tool_name": "Bash",
           "tool_input": {"command": "git diff --stat"}}


def outcome_spans(path: Path) -> int:
    with Store.open(path, create=False) as store:
        return int(store.execute("SELECT count(*) FROM spans WHERE kind = 'outcome'")[0][0])


def test_over_the_tool_call_limit_the_call_is_denied_and_the_stop_recorded_once(tmp_path: Path) -> None:
    path = session_store(tmp_path / "rt.db", tools=3)
    code, out, err = hook(path, PAYLOAD, "--max-tool-calls", "3")
    assert code == 0
    decision = json.loads(out)["hookSpecificOutput"]
    assert decision["hookEventName"] == "PreToolUse"
    assert decision["permissionDecision"] == "deny"
    assert decision["permissionDecisionReason"] == (
        f"runtrace budget reached for this session ({SESSION}): made 3 tool calls, limit 3 (max_tool_calls). "
        "Stop calling tools; summarise what is done and what is left.")
    assert "denied Bash" in err
    with Store.open(path, create=False) as store:
        run = get_run(store, SESSION)
    assert run is not None
    assert run["outcome"] == "budget_stopped"
    assert run["outcome_by"] == "runtrace agents check"
    assert run["outcome_reason"] == "max_tool_calls: 3 >= 3"
    assert run["tool_calls"] == 3 and run["llm_calls"] == 2
    assert run["cost_usd"] == pytest.approx(0.0638, abs=1e-9)
    # Denied again on the next attempt, but the stop is not recorded twice.
    code, out, _ = hook(path, PAYLOAD, "--max-tool-calls", "3")
    assert json.loads(out)["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert outcome_spans(path) == 1


def test_under_every_limit_the_call_is_allowed_and_nothing_written(tmp_path: Path) -> None:
    path = session_store(tmp_path / "rt.db", tools=2)
    code, out, err = hook(path, PAYLOAD, "--max-tool-calls", "3", "--budget-usd", "0.07",
                          "--max-seconds", "1e9")
    assert (code, out, err) == (0, "", "")
    assert outcome_spans(path) == 0


def test_the_cost_limit_denies_once_the_session_has_spent_it(tmp_path: Path) -> None:
    path = session_store(tmp_path / "rt.db", tools=0)
    code, out, _ = hook(path, PAYLOAD, "--budget-usd", "0.06")
    reason = json.loads(out)["hookSpecificOutput"]["permissionDecisionReason"]
    assert "spent 0.0638 USD, limit 0.0600 (max_cost_usd)" in reason
    with Store.open(path, create=False) as store:
        assert get_run(store, SESSION)["outcome_reason"] == "max_cost_usd: 0.0638 >= 0.06"  # type: ignore[index]


def test_the_seconds_limit_counts_from_the_sessions_first_span(tmp_path: Path) -> None:
    path = session_store(tmp_path / "rt.db", tools=1)
    with Store.open(path, create=False) as store:
        assert check_session(store, SESSION, Budget(max_seconds=60), now_ns=BASE_NS + 59 * S).allow
        decision = check_session(store, SESSION, Budget(max_seconds=60), now_ns=BASE_NS + 61 * S)
        assert not decision.allow and decision.recorded
        assert "ran 61 seconds, limit 60 (max_seconds)" in (decision.reason or "")
        rows = store.execute("SELECT attributes FROM spans WHERE kind = 'outcome'")
        attrs = json.loads(rows[0][0])
        assert attrs[sc.RUN_STOP_REASON] == "max_seconds"
        assert attrs[sc.RUN_OUTCOME] == "budget_stopped"


@pytest.mark.parametrize("payload", ["not json", "[1]", json.dumps({"tool_name": "Bash"})])
def test_a_bad_hook_input_allows_the_call_and_says_why(tmp_path: Path, payload: str) -> None:
    path = session_store(tmp_path / "rt.db", tools=5)
    code, out, err = hook(path, payload, "--max-tool-calls", "1")
    assert (code, out) == (0, "")
    assert err.startswith("runtrace budget hook: ") and err.rstrip().endswith("allowing the tool call")
    assert outcome_spans(path) == 0


def test_no_store_or_an_unknown_session_allows_the_call(tmp_path: Path) -> None:
    assert hook(tmp_path / "missing.db", PAYLOAD, "--max-tool-calls", "1") == (0, "", "")
    assert not (tmp_path / "missing.db").exists()
    path = session_store(tmp_path / "rt.db", tools=5)
    assert hook(path, {**PAYLOAD, "session_id": "another-session"}, "--max-tool-calls", "1") == (0, "", "")


def test_a_store_that_is_not_sqlite_allows_the_call(tmp_path: Path) -> None:
    path = tmp_path / "rt.db"
    path.write_bytes(b"this is not a database" * 100)
    code, out, err = hook(path, PAYLOAD, "--max-tool-calls", "1")
    assert (code, out) == (0, "")
    assert "allowing the tool call" in err


def test_the_installed_hook_command_runs_as_claude_code_would_run_it(tmp_path: Path) -> None:
    """`agents hook claude` writes a command line; run it through a shell with the hook's stdin."""
    path = session_store(tmp_path / "rt.db", tools=4)
    result = CliRunner().invoke(main, ["agents", "hook", "claude", "--home", str(tmp_path), "--store", str(path),
                                       "--max-tool-calls", "4"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert "a stop can come a few seconds late" in result.stderr
    settings = json.loads((tmp_path / ".claude" / "settings.json").read_text())
    assert "env" not in settings
    command = settings["hooks"]["PreToolUse"][0]["hooks"][0]["command"]
    done = subprocess.run(command, shell=True, input=json.dumps(PAYLOAD), capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"
    with Store.open(path, create=False) as store:
        assert get_run(store, SESSION)["outcome"] == "budget_stopped"  # type: ignore[index]


def test_hook_needs_a_limit(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["agents", "hook", "claude", "--home", str(tmp_path)])
    assert result.exit_code == 2
    assert "give at least one limit" in result.stderr
    assert not (tmp_path / ".claude").exists()
