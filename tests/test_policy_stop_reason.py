"""A stop the Claude Code hook records reaches the run row (issue 16): ``runs.stop_reason``.

A Claude Code session has no run span (its telemetry is log events), so the
hook records a budget or cap stop as a ``run.outcome`` span carrying
``runtrace.run.stop_reason``. The session here is a real recording
(tests/fixtures/agents/claude-project) through the logs adapter; the hook is
fed the JSON Claude Code sends, through the real CLI, against a real SQLite
store; the run page is served by a real server on 127.0.0.1; ClickHouse's run
view is checked on chDB.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from agent_samples import FIXTURES, log_requests
from runtrace import semconv as sc
from runtrace.agents import records_from_events
from runtrace.cli import main
from runtrace.server.app import create_app
from runtrace.store.db import Store
from runtrace.store.queries import get_run
from runtrace.store.records import SpanRecord
from test_server_support import running_server

SESSION = "d34ec385-a875-4a25-9b18-379204112e9d"  # claude-project: billing / alice, $0.22407175, 7 calls, 5 tools
COST = 0.22407175


def session_records(*, shift_to_now: bool = False) -> list[SpanRecord]:
    """The recorded session as the logs adapter makes it (optionally moved to a minute ago, for the UTC day)."""
    records = [r for request in log_requests("claude-project", FIXTURES) for r in records_from_events(request)]
    if not shift_to_now:
        return records
    now_ns = time.time_ns()
    first = min(r.start_ns for r in records)
    last = max(r.end_ns for r in records)
    since_midnight = now_ns % (86_400 * 10**9)
    delta = now_ns - min(60 * 10**9, since_midnight // 2) - (last - first) // 2 - first
    # the session spans a few seconds; when it is that close to midnight it may straddle it: not here
    return [dataclasses.replace(r, start_ns=r.start_ns + delta, end_ns=r.end_ns + delta) for r in records]


def pre_tool_use(tool: str = "Bash") -> dict[str, Any]:
    """What Claude Code writes on the hook's stdin before a tool call."""
    return {"session_id": SESSION, "transcript_path": f"/root/.claude/projects/-repo/{SESSION}.jsonl",
            "cwd": "/repo", "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": tool,
            "tool_input": {"command": "make test", "description": "Run the tests"}}


def hook(store: Path, payload: dict[str, Any], *flags: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["agents", "check", "claude", "--store", str(store), *flags],
                                input=json.dumps(payload), catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    decision: dict[str, Any] = json.loads(result.stdout)
    return decision


def run_row(path: Path, run_id: str = SESSION) -> dict[str, Any]:
    with Store.open(path, create=False) as store:
        run = get_run(store, run_id)
    assert run is not None
    return dict(run)


def stored_spans(path: Path) -> list[SpanRecord]:
    from runtrace.store.values import attributes_from_json, events_from_json

    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT trace_id, span_id, parent_span_id, name, span_kind, start_ns, end_ns, "
                            "status_code, status_message, attributes, resource, events, scope_name, scope_version "
                            "FROM spans ORDER BY start_ns, span_id").fetchall()
    finally:
        conn.close()
    return [SpanRecord(trace_id=r[0], span_id=r[1], parent_span_id=r[2], name=r[3], kind=r[4], start_ns=r[5],
                       end_ns=r[6], status_code=r[7], status_message=r[8], attributes=attributes_from_json(r[9]),
                       resource=attributes_from_json(r[10]), events=events_from_json(r[11]), scope_name=r[12],
                       scope_version=r[13]) for r in rows]


def runs_table(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT * FROM runs ORDER BY id").fetchall()
    finally:
        conn.close()


def figures(run: dict[str, Any]) -> tuple[Any, ...]:
    return (run["outcome"], run["stop_reason"], run["outcome_by"], run["cost_usd"], run["llm_calls"],
            run["tool_calls"], run["project"], run["owner"])


def test_a_budget_stop_of_the_hook_is_the_run_rows_stop_reason(tmp_path: Path) -> None:
    path = tmp_path / "rt.db"
    with Store.open(path) as store:
        store.ingest(session_records())
    decision = hook(path, pre_tool_use(), "--budget-usd", "0.2")
    assert decision["hookSpecificOutput"]["permissionDecision"] == "deny"
    run = run_row(path)
    assert figures(run) == ("budget_stopped", "max_cost_usd", "runtrace agents check", COST, 7, 5, "billing",
                            "alice")
    assert run["outcome_reason"] == "max_cost_usd: 0.224072 >= 0.2"
    # A verdict given afterwards changes the outcome, not why the session was stopped.
    result = CliRunner().invoke(main, ["outcome", SESSION, "rejected", "--by", "bob", "--store", str(path)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert figures(run_row(path)) == ("rejected", "max_cost_usd", "bob", COST, 7, 5, "billing", "alice")
    # The session goes on (the user prompts again): still refused, and the verdict is not overwritten.
    assert hook(path, pre_tool_use("Read"), "--budget-usd", "0.2")["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert figures(run_row(path)) == ("rejected", "max_cost_usd", "bob", COST, 7, 5, "billing", "alice")
    with Store.open(path, create=False) as store:
        assert store.execute("SELECT count(*) FROM spans WHERE kind = 'outcome'")[0][0] == 2  # the stop, the verdict


def test_a_cap_stop_reaches_the_row_whether_the_outcome_arrives_before_or_after_the_sessions_spans(
        tmp_path: Path) -> None:
    recorded = tmp_path / "hook.db"
    with Store.open(recorded) as store:
        store.ingest(session_records(shift_to_now=True))
    policy = tmp_path / "policy.toml"
    policy.write_text("[project.billing]\ndaily_usd = 0.2\n", encoding="utf-8")
    reason = hook(recorded, pre_tool_use(), "--policy", str(policy))["hookSpecificOutput"]["permissionDecisionReason"]
    assert reason.startswith("runtrace policy (project_daily_usd): project 'billing' daily_usd = 0.2 reached "
                             "($0.224072 spent today, UTC).")
    assert figures(run_row(recorded)) == ("budget_stopped", "project_daily_usd", "runtrace agents check", COST, 7, 5,
                                          "billing", "alice")
    spans = stored_spans(recorded)
    (outcome,) = [s for s in spans if s.attributes.get(sc.SPAN_ROLE) == sc.ROLE_OUTCOME]
    assert (outcome.attributes[sc.RUN_STOP_REASON], outcome.attributes[sc.BUDGET_LIMIT_VALUE]) == (
        "project_daily_usd", 0.2)
    session = [s for s in spans if s is not outcome]
    first, after = tmp_path / "outcome-first.db", tmp_path / "outcome-after.db"
    with Store.open(first) as store:
        store.ingest([outcome])  # a verdict for a run not here yet: pending
        assert store.count_runs() == 0
        store.ingest(session[:5])
        store.ingest(session[5:])
    with Store.open(after) as store:
        store.ingest(session[7:])
        store.ingest([outcome])
        store.ingest(session[:7])
    assert figures(run_row(first)) == figures(run_row(after)) == figures(run_row(recorded))
    assert runs_table(first) == runs_table(after) == runs_table(recorded)


def test_two_hooks_racing_keep_one_stop_reason_in_every_order(tmp_path: Path) -> None:
    from runtrace.store.verdicts import outcome_record

    stops = []
    for n, limit in enumerate(("project_daily_usd", "owner_daily_usd")):
        record = outcome_record(SESSION, sc.OUTCOME_BUDGET_STOPPED, by="runtrace agents check", reason=limit,
                                now_ns=1_796_126_300 * 10**9 + n)
        record.attributes[sc.RUN_STOP_REASON] = limit
        stops.append(record)
    session = session_records()
    rows = []
    for order in ([*session, *stops], [stops[1], *session, stops[0]], [*reversed(stops), *session]):
        path = tmp_path / f"race-{len(rows)}.db"
        with Store.open(path) as store:
            for record in order:
                store.ingest([record])
        rows.append(runs_table(path))
        assert run_row(path)["stop_reason"] == "project_daily_usd"  # the greater name, whatever the order
    assert rows[0] == rows[1] == rows[2]


def test_the_run_page_says_why_the_session_was_stopped(tmp_path: Path) -> None:
    path = tmp_path / "rt.db"
    with Store.open(path) as store:
        store.ingest(session_records(shift_to_now=True))
    policy = tmp_path / "policy.toml"
    policy.write_text("[project.billing]\ndaily_usd = 0.2\n", encoding="utf-8")
    hook(path, pre_tool_use(), "--policy", str(policy))
    with running_server(create_app(path)) as url:
        page = httpx.get(f"{url}/runs/{SESSION}", timeout=60)
        listing = httpx.get(f"{url}/api/runs", timeout=60)
    assert page.status_code == 200
    top = page.text[:page.text.index('id="run-headline"') + 400]
    assert '<span class="flag f-stop" title="why the run was stopped">stop: project_daily_usd</span>' in top
    assert '<div class="run-headline" id="run-headline" role="alert"><p>Stopped by a policy cap: project_daily_usd.</p>' \
        in top
    assert "by runtrace agents check at " in top and ": project_daily_usd: 0.224072 &gt;= 0.2</p>" in top
    (run,) = [r for r in listing.json() if r["id"] == SESSION]
    assert (run["outcome"], run["stop_reason"]) == ("budget_stopped", "project_daily_usd")


def test_clickhouse_run_view_reads_the_outcome_spans_stop_reason(tmp_path: Path) -> None:
    pytest.importorskip("chdb")
    from scale_helpers import ClickHouse, insert_spans
    from store_helpers import llm, outcome_span, run_span

    stopped = outcome_span("hooked", 90, at_s=30, outcome=sc.OUTCOME_BUDGET_STOPPED, by="runtrace agents check")
    stopped.attributes[sc.RUN_STOP_REASON] = "project_daily_usd"  # as the hook writes it
    calls = [llm("hooked", n, start_s=n, end_s=n + 1, model="claude-opus-4-8", provider="anthropic",
                 input_tokens=1000, output_tokens=100, cost=0.05) for n in (1, 2)]
    in_process = [run_span("inproc", 50, start_s=0, end_s=40, outcome=sc.OUTCOME_BUDGET_STOPPED,
                           stop_reason="max_cost_usd"),
                  llm("inproc", 51, start_s=1, end_s=2, cost=0.01),
                  outcome_span("inproc", 52, at_s=50, outcome="rejected", by="ci")]
    db = ClickHouse(tmp_path / "chdb")
    try:
        insert_spans(db, [stopped])  # before the session's spans
        insert_spans(db, calls)
        insert_spans(db, in_process[2:])
        insert_spans(db, in_process[:2])
        mine = {r["run_id"]: (r["outcome"], r["stop_reason"], r["llm_calls"])
                for r in db.rows("SELECT * FROM otel.runtrace_runs_v")}
    finally:
        db.close()
    with Store.open(tmp_path / "rt.db") as store:
        store.ingest([stopped])
        store.ingest(calls)
        store.ingest(in_process[2:])
        store.ingest(in_process[:2])
        theirs = {r: figures(run_row(tmp_path / "rt.db", r))[:2] for r in ("hooked", "inproc")}
    assert mine == {"hooked": ("budget_stopped", "project_daily_usd", 2), "inproc": ("rejected", "max_cost_usd", 1)}
    assert theirs == {"hooked": ("budget_stopped", "project_daily_usd"), "inproc": ("rejected", "max_cost_usd")}
