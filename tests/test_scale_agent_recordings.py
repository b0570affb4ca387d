"""Scale path, on the sessions recorded for the tests (tests/fixtures/agents): refusals, errors, agent cost.

The recordings go into chDB as the collector writes them (log records into the
exporter's ``otel_logs``, the agents' beta traces into ``otel_traces``), and
each run's figures must equal the embedded store's for the same requests
(DESIGN 6: the same aggregation in both). A separate module from
test_scale_agent_logs.py: chDB holds one database path per process at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("chdb")

from agent_samples import FIXTURES, raw_requests  # noqa: E402
from runtrace.agents import mark_trace_spans, records_from_events  # noqa: E402
from runtrace.store.db import Store  # noqa: E402
from runtrace.store.otlp import decode_otlp_json  # noqa: E402
from runtrace.store.otlp_logs import decode_logs_json  # noqa: E402
from runtrace.store.queries import get_run, list_runs  # noqa: E402
from scale_helpers import ClickHouse, TimeRange, expand_macros, insert_spans  # noqa: E402
from test_agents_recordings import EXPECTED  # noqa: E402
from test_scale_agent_logs import exporter_log_rows, insert_logs, run_row  # noqa: E402

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"recordings not found in {FIXTURES}")

RECORDED = ("claude-resume", "claude-retry", "claude-apierror", "claude-project", "claude-defaults",
            "codex-readonly", "codex-resume", "gemini")
AGREED = ("llm_calls", "tool_calls", "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens",
          "unpriced_calls", "refused_tool_calls", "api_errors", "tool_errors", "errors")


def _recorded_requests(name: str, signal: str) -> list[dict[str, Any]]:
    return [b for b in raw_requests(name, signal, FIXTURES) if "_trimmed" not in b]


@pytest.fixture(scope="module")
def ch_recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouse]:
    """The recordings as the collector writes them: logs into otel_logs, the agents' traces into otel_traces."""
    db = ClickHouse(tmp_path_factory.mktemp("chdb-recorded") / "db")
    for name in RECORDED:
        for body in _recorded_requests(name, "logs"):
            insert_logs(db, list(exporter_log_rows(body, {})))
        for body in _recorded_requests(name, "traces"):
            insert_spans(db, decode_otlp_json(json.dumps(body)))
    yield db
    db.close()


def _store_run(name: str, run_id: str, tmp_path: Path) -> dict[str, Any]:
    """The same recording through the embedded store's receiver path (adapters + mark_trace_span)."""
    with Store.open(tmp_path / f"{name}.db") as store:
        for body in _recorded_requests(name, "logs"):
            store.ingest(records_from_events(decode_logs_json(json.dumps(body))))
        for body in _recorded_requests(name, "traces"):
            store.ingest(mark_trace_spans(decode_otlp_json(json.dumps(body))))
        run = get_run(store, run_id)
    assert run is not None
    return run


@pytest.mark.parametrize(("name", "run_id", "figures"), [
    # Claude: the -p auto-denied `touch` (beta trace), the missing file, the agent's own cost
    ("claude-retry", "28848fec-cd00-4776-862a-96449450c24e",
     {"llm_calls": 7, "refused_tool_calls": 1, "api_errors": 0, "tool_errors": 1, "errors": 1,
      "agent_cost_usd": pytest.approx(0.22407175, abs=1e-9)}),
    # every model call answered HTTP 400: one API error, no call
    ("claude-apierror", "37a40272-3be9-404a-97ef-32234932ba74",
     {"llm_calls": 0, "refused_tool_calls": 0, "api_errors": 1, "tool_errors": 0, "errors": 1,
      "agent_cost_usd": None}),
    # read-only sandbox: the denied sed is a refusal; cat of a missing file, sed and touch exited non-zero
    ("codex-readonly", "01a2316b-e59a-76e0-888d-8b3ebba7238b",
     {"llm_calls": 7, "refused_tool_calls": 1, "api_errors": 0, "tool_errors": 3, "errors": 3,
      "agent_cost_usd": None}),
    ("gemini", "d128c9cc-f3f7-4799-a897-f6679ea8e137",
     {"llm_calls": 7, "refused_tool_calls": 0, "api_errors": 0, "tool_errors": 3, "errors": 3,
      "agent_cost_usd": None}),
])
def test_refusals_errors_and_agent_cost_per_run(ch_recorded: ClickHouse, name: str, run_id: str,
                                                figures: dict[str, Any]) -> None:
    run = run_row(ch_recorded, run_id)
    assert {k: run[k] for k in figures} == figures


def test_each_codex_recording_is_one_run(ch_recorded: ClickHouse) -> None:
    """Codex spans with thread_id only or no id (handle_responses, the process's codex.exec root) once
    made 4 + 8 per-trace runs beside the two sessions'."""
    runs = ch_recorded.rows("SELECT run_id, name, outcome FROM otel.runtrace_runs_v"
                            " WHERE service = 'codex_exec' ORDER BY run_id")
    assert runs == [{"run_id": EXPECTED[n][0], "name": "read README.md and fix the typo", "outcome": "unfinished"}
                    for n in ("codex-readonly", "codex-resume")]
    # every Codex span the exporter wrote is in one of the two sessions' runs
    in_runs = ch_recorded.rows("SELECT run_id, uniqExact(trace_id, span_id) AS n FROM otel.runtrace_counted_spans"
                               " WHERE (trace_id, span_id) IN (SELECT TraceId, SpanId FROM otel.otel_traces"
                               " WHERE ServiceName = 'codex_exec') GROUP BY run_id ORDER BY run_id")
    assert [r["run_id"] for r in in_runs] == [EXPECTED[n][0] for n in ("codex-readonly", "codex-resume")]
    assert sum(r["n"] for r in in_runs) == ch_recorded.scalar(
        "SELECT uniqExact(TraceId, SpanId) FROM otel.otel_traces WHERE ServiceName = 'codex_exec'")


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_sessions_agree_with_the_embedded_store(ch_recorded: ClickHouse, tmp_path: Path,
                                                         name: str) -> None:
    run_id = EXPECTED[name][0]
    run = run_row(ch_recorded, run_id)
    stored = _store_run(name, run_id, tmp_path)
    assert {k: int(run[k]) for k in AGREED} == {k: stored[k] for k in AGREED}
    assert run["cost_usd"] == pytest.approx(stored["cost_usd"], abs=1e-9)
    assert (run["agent_cost_usd"] or None) == (pytest.approx(stored["agent_cost_usd"], abs=1e-9)
                                               if stored["agent_cost_usd"] is not None else None)
    # Claude Code copies OTEL_RESOURCE_ATTRIBUTES onto its spans: they never out-rank the events
    assert (run["name"], run["project"], run["owner"], run["outcome"]) == (
        stored["name"], stored["project"], stored["owner"], stored["outcome"])


def _panel(title: str) -> str:
    boards = Path(__file__).resolve().parent.parent / "grafana" / "dashboards"
    found = [p["targets"][0]["rawSql"] for board in boards.glob("*.json")
             for p in json.loads(board.read_text())["panels"] if p["title"] == title]
    assert len(found) == 1, title
    return found[0]


def test_grafana_panels_show_agent_cost_errors_and_refusals(ch_recorded: ClickHouse, tmp_path: Path) -> None:
    """The boards' new panels on the recorded sessions: the same totals as the embedded store's runs."""
    with Store.open(tmp_path / "all.db") as store:
        for name in RECORDED:
            for body in _recorded_requests(name, "logs"):
                store.ingest(records_from_events(decode_logs_json(json.dumps(body))))
            for body in _recorded_requests(name, "traces"):
                store.ingest(mark_trace_spans(decode_otlp_json(json.dumps(body))))
        runs = list_runs(store, limit=0)
    day = TimeRange(1796083200 * 10**9, 1796169600 * 10**9, interval_s=3600)  # 2026-12-01, the recordings' day
    errors = ch_recorded.rows(expand_macros(_panel("Errors and refused tool calls"), day))
    assert errors == [{"api_errors": sum(r["api_errors"] for r in runs), "tool_errors": sum(r["tool_errors"] for r in runs),
                       "refused_tool_calls": sum(r["refused_tool_calls"] for r in runs)}]
    # 1 API error (claude-apierror); tool errors: 1 per Claude run with tools (4), Codex 3 + 1, Gemini 3;
    # refusals: 4 Claude (beta traces) + 1 Codex sandbox denial
    assert errors == [{"api_errors": 1, "tool_errors": 11, "refused_tool_calls": 5}]
    spend = {r["service"]: r for r in ch_recorded.rows(expand_macros(
        _panel("Spend by service: runtrace's price and the agent's own"), day))}
    claude = [r for r in runs if r["service"] == "claude-code"]
    assert (spend["claude-code"]["runs"], spend["claude-code"]["runs_with_agent_cost"]) == (5, 4)
    assert spend["claude-code"]["spend"] == pytest.approx(sum(r["cost_usd"] for r in claude), abs=1e-9)
    assert spend["claude-code"]["agent_reported_cost_usd"] == pytest.approx(
        sum(r["agent_cost_usd"] or 0 for r in claude), abs=1e-9)
    assert spend["gemini-cli"]["spend"] == 0.0 and spend["gemini-cli"]["runs_with_agent_cost"] == 0
