"""Scale path for coding agents: their log events in otel_logs (the exporter's schema) become runs.

The recorded sessions (shared/agent-telemetry/samples) are written into chDB as the
ClickHouse exporter writes log records; the figures expected come from the fake
model's usage script (call k reports input 1100+k uncached, cache write 2200+k,
cache read 3300+k, output 440+k, reasoning 55+k, in each provider's convention).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("chdb")

from scale_helpers import ClickHouse, go_float, ts  # noqa: E402

SAMPLES = Path(os.environ.get("RUNTRACE_AGENT_SAMPLES", "/work/shared/agent-telemetry/samples"))
pytestmark = pytest.mark.skipif(not (SAMPLES / "claude" / "logs.jsonl").exists(),
                                reason=f"agent samples not found in {SAMPLES}")

CLAUDE_SESSION = "5694915b-b3bc-412d-acc2-f3876e276bc6"
CODEX_CONVERSATION = "01a230a6-a342-73e0-95cd-d58c49a3a89c"
GEMINI_SESSION = "174831ce-e119-40dd-8f8f-edff1096005a"
PROJECT = {"runtrace.project": "billing", "runtrace.owner": "alice"}


def any_value(v: dict[str, Any]) -> str:
    """pcommon.Value.AsString of an OTLP/JSON AnyValue (what the exporter stores in its maps)."""
    if "stringValue" in v:
        return str(v["stringValue"])
    if "boolValue" in v:
        return "true" if v["boolValue"] else "false"
    if "intValue" in v:
        return str(int(v["intValue"]))
    if "doubleValue" in v:
        return go_float(float(v["doubleValue"]))
    if "arrayValue" in v:
        return json.dumps([json.loads(json.dumps(x)) for x in v["arrayValue"].get("values", [])])
    if "kvlistValue" in v:
        return json.dumps({kv["key"]: any_value(kv.get("value", {})) for kv in v["kvlistValue"].get("values", [])})
    return ""


def attrs(pairs: Iterable[dict[str, Any]]) -> dict[str, str]:
    return {kv["key"]: any_value(kv.get("value", {})) for kv in pairs}


SEVERITIES = {"SEVERITY_NUMBER_UNSPECIFIED": 0, "SEVERITY_NUMBER_TRACE": 1, "SEVERITY_NUMBER_DEBUG": 5,
              "SEVERITY_NUMBER_INFO": 9, "SEVERITY_NUMBER_WARN": 13, "SEVERITY_NUMBER_ERROR": 17,
              "SEVERITY_NUMBER_FATAL": 21}


def severity_number(value: Any) -> int:
    """OTLP/JSON writes the enum as a number or (some encoders) by name."""
    return SEVERITIES[value] if isinstance(value, str) and not value.isdigit() else int(value or 0)


def exporter_log_rows(body: dict[str, Any], extra_resource: dict[str, str]) -> Iterator[dict[str, Any]]:
    """One otel_logs row per log record, as exporter/clickhouseexporter's logs INSERT writes it."""
    for rl in body.get("resourceLogs", []):
        resource = {**attrs(rl.get("resource", {}).get("attributes", [])), **extra_resource}
        for sl in rl.get("scopeLogs", []):
            scope = sl.get("scope", {})
            for lr in sl.get("logRecords", []):
                time_ns = int(lr.get("timeUnixNano") or 0) or int(lr.get("observedTimeUnixNano") or 0)
                yield {
                    "Timestamp": ts(time_ns),
                    "TraceId": lr.get("traceId", ""),
                    "SpanId": lr.get("spanId", ""),
                    "TraceFlags": int(lr.get("flags", 0)) & 0xFF,
                    "SeverityText": lr.get("severityText", ""),
                    "SeverityNumber": severity_number(lr.get("severityNumber", 0)),
                    "ServiceName": resource.get("service.name", ""),
                    "Body": any_value(lr["body"]) if "body" in lr else "",
                    "ResourceSchemaUrl": rl.get("schemaUrl", ""),
                    "ResourceAttributes": resource,
                    "ScopeSchemaUrl": sl.get("schemaUrl", ""),
                    "ScopeName": scope.get("name", ""),
                    "ScopeVersion": scope.get("version", ""),
                    "ScopeAttributes": attrs(scope.get("attributes", [])),
                    "LogAttributes": attrs(lr.get("attributes", [])),
                }


def sample_batches(agent: str) -> list[list[dict[str, Any]]]:
    """One insert block per OTLP request the agent sent (as one exporter batch each)."""
    out = []
    for line in (SAMPLES / agent / "logs.jsonl").read_text().splitlines():
        request = json.loads(line)
        if "body" in request:
            out.append(list(exporter_log_rows(request["body"], PROJECT)))
    return out


def insert_logs(ch: ClickHouse, rows: list[dict[str, Any]]) -> None:
    if rows:
        ch.execute("INSERT INTO otel.otel_logs (Timestamp, TraceId, SpanId, TraceFlags, SeverityText, "
                   "SeverityNumber, ServiceName, Body, ResourceSchemaUrl, ResourceAttributes, ScopeSchemaUrl, "
                   "ScopeName, ScopeVersion, ScopeAttributes, LogAttributes) FORMAT JSONEachRow\n"
                   + "\n".join(json.dumps(r) for r in rows))


@pytest.fixture(scope="module")
def ch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouse]:
    db = ClickHouse(tmp_path_factory.mktemp("chdb-agents") / "db")
    for agent in ("claude", "codex", "gemini-autoedit"):
        for rows in sample_batches(agent):
            insert_logs(db, rows)
    # At-least-once delivery: the collector re-sends Claude Code's first three batches.
    for rows in sample_batches("claude")[:3]:
        insert_logs(db, rows)
    yield db
    db.close()


def run_row(ch: ClickHouse, run_id: str) -> dict[str, Any]:
    rows = ch.rows(f"SELECT * FROM otel.runtrace_runs_v WHERE run_id = '{run_id}'")
    assert len(rows) == 1, rows
    return rows[0]


def usage(n: int, base: int) -> int:
    """The fake's usage over its calls k = 0..n-1: sum of base + k."""
    return n * base + n * (n - 1) // 2


def test_otel_logs_has_the_exporters_insert_columns_in_order(ch: ClickHouse) -> None:
    cols = [r["name"] for r in ch.rows("SELECT name FROM system.columns WHERE database = 'otel' "
                                       "AND table = 'otel_logs' ORDER BY position")]
    assert cols == ["Timestamp", "TimestampTime", "TraceId", "SpanId", "TraceFlags", "SeverityText",
                    "SeverityNumber", "ServiceName", "Body", "ResourceSchemaUrl", "ResourceAttributes",
                    "ScopeSchemaUrl", "ScopeName", "ScopeVersion", "ScopeAttributes", "LogAttributes"]


def test_a_claude_code_session_is_a_run_with_the_agents_calls_tokens_and_cost(ch: ClickHouse) -> None:
    run = run_row(ch, CLAUDE_SESSION)
    n = 7  # model calls: read, read, read (missing), edit, git diff, touch (denied), answer
    assert run["llm_calls"] == n
    assert run["tool_calls"] == 5  # the -p auto-denied `touch` produced no tool_result event
    assert int(run["input_tokens"]) == usage(n, 1100) + usage(n, 2200) + usage(n, 3300) == 46263
    assert int(run["cached_input_tokens"]) == usage(n, 3300) == 23121
    assert int(run["output_tokens"]) == usage(n, 440) == 3101
    assert int(run["reasoning_tokens"]) == 0
    assert run["unpriced_calls"] == 0
    # Claude Code's own cost_usd per call (list prices), summed in nano-dollars.
    assert run["cost_usd"] == pytest.approx(0.0319 + 0.03193675 + 0.0319735 + 0.03201025 + 0.032047
                                            + 0.03208375 + 0.0321205, abs=1e-9)
    assert (run["project"], run["owner"], run["service"]) == ("billing", "alice", "claude-code")
    assert run["outcome"] == "unfinished"  # no verdict yet, no run span: like the embedded store


def test_claude_tool_calls_keep_their_names_and_the_failed_read(ch: ClickHouse) -> None:
    rows = ch.rows(f"SELECT tool_name, status FROM otel.runtrace_spans FINAL WHERE run_id = '{CLAUDE_SESSION}' "
                   "AND kind = 'tool' ORDER BY start")
    assert [(r["tool_name"], r["status"]) for r in rows] == [
        ("Read", "unset"), ("Read", "unset"), ("Read", "error"), ("Edit", "unset"), ("Bash", "unset")]
    models = ch.rows(f"SELECT DISTINCT model, provider, cost_source FROM otel.runtrace_spans FINAL "
                     f"WHERE run_id = '{CLAUDE_SESSION}' AND kind = 'llm'")
    # priced in ClickHouse from the tokens, as the embedded store prices it; Claude's own figure
    # is agent_cost_usd (test_recorded_sessions_agree_with_the_embedded_store)
    assert models == [{"model": "claude-opus-4-8", "provider": "anthropic", "cost_source": "clickhouse"}]


def test_a_codex_conversation_is_a_run_with_openai_token_semantics(ch: ClickHouse) -> None:
    run = run_row(ch, CODEX_CONVERSATION)
    n = run["llm_calls"]
    assert n == 7
    # OpenAI's input already includes the cached tokens; the fake wrote no cache for Codex
    assert int(run["input_tokens"]) == usage(n, 1100) + usage(n, 3300)
    assert int(run["cached_input_tokens"]) == usage(n, 3300)
    assert int(run["output_tokens"]) == usage(n, 440)  # includes reasoning
    assert int(run["reasoning_tokens"]) == usage(n, 55)
    assert run["service"] == "codex_exec"
    assert run["tool_calls"] == 6
    # Codex sends no cost: priced in ClickHouse from runtrace_prices, gpt-5-codex at $1.25 / $0.125
    # (cached) / $10 per million input / cached input / output tokens.
    assert run["unpriced_calls"] == 0
    assert run["cost_usd"] == pytest.approx((usage(n, 1100) * 1.25 + usage(n, 3300) * 0.125
                                             + usage(n, 440) * 10) / 1e6, abs=1e-12)


def test_a_gemini_session_is_a_run_with_thoughts_counted_as_output(ch: ClickHouse) -> None:
    run = run_row(ch, GEMINI_SESSION)
    n = run["llm_calls"]
    assert n == 7
    assert run["tool_calls"] == 6
    assert run["unpriced_calls"] == 7  # the fake's model name has no price: unpriced, never $0
    assert int(run["input_tokens"]) == usage(n, 1100) + usage(n, 3300)
    assert int(run["cached_input_tokens"]) == usage(n, 3300)
    assert int(run["output_tokens"]) == usage(n, 440) + usage(n, 55)
    assert int(run["reasoning_tokens"]) == usage(n, 55)
    assert run["service"] == "gemini-cli"


def test_a_resent_log_batch_counts_once(ch: ClickHouse) -> None:
    copies = ch.scalar("SELECT count() FROM otel.otel_traces WHERE ScopeName = 'runtrace.otel_logs' "
                       f"AND SpanAttributes['runtrace.run.id'] = '{CLAUDE_SESSION}'")
    distinct = ch.scalar("SELECT uniqExact(SpanId) FROM otel.otel_traces WHERE ScopeName = 'runtrace.otel_logs' "
                         f"AND SpanAttributes['runtrace.run.id'] = '{CLAUDE_SESSION}'")
    assert int(distinct) == 12 and int(copies) > 12  # 7 model calls + 5 tool calls, some delivered twice
    run = run_row(ch, CLAUDE_SESSION)
    assert (run["llm_calls"], run["tool_calls"], int(run["output_tokens"])) == (7, 5, 3101)


def test_other_log_records_make_no_spans(ch: ClickHouse) -> None:
    total = ch.scalar("SELECT count() FROM otel.otel_logs")
    made = ch.scalar("SELECT uniqExact(SpanId) FROM otel.otel_traces WHERE ScopeName = 'runtrace.otel_logs'")
    claude = run_row(ch, CLAUDE_SESSION)
    codex = run_row(ch, CODEX_CONVERSATION)
    gemini = run_row(ch, GEMINI_SESSION)
    counted = sum(r["llm_calls"] + r["tool_calls"] for r in (claude, codex, gemini))
    assert int(made) == counted
    assert int(total) > int(made)
