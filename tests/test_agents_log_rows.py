"""The recorded coding-agent sessions store exactly the rows they stored before the log-ingest speed work (issue 14).

The three shared samples (Claude Code, Codex, Gemini: logs then traces) and
40 copies of the Claude session an hour apart each (its API requests priced
at ingest at 40 different times of day, across a UTC midnight) are posted as
OTLP/protobuf to a real ``runtrace serve`` app; every row of every table the
ingest writes is then read back, in a fixed column order, and compared by
digest with what the code before that work stored (commit fa46439: the
digests below were taken by running this file's ``_digests`` on it). A
changed figure, attribute, hash or id in any row changes a digest.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_samples import SAMPLES, protobuf_body, raw_requests
from runtrace.server import create_app
from runtrace.store.db import Store
from test_server_support import running_server

pytestmark = pytest.mark.skipif(not (SAMPLES / "claude").is_dir(), reason=f"samples not found in {SAMPLES}")

# The columns as they were when the digests were taken (a column added later is not part of them).
COLUMNS = {
    "spans": "trace_id, span_id, parent_span_id, run_id, name, kind, span_kind, start_ns, end_ns, status_code, "
             "status_message, service, model, provider, input_tokens, output_tokens, cached_input_tokens, "
             "reasoning_tokens, cost_usd, tool_name, attributes, resource, events, scope_name, scope_version, "
             "usage_below, counted",
    "runs": "id, name, project, owner, service, desc_rank, desc_end_ns, desc_span_id, stop_reason, outcome, "
            "cost_nusd, unpriced_calls, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, "
            "llm_calls, tool_calls, repeated_reads, repeated_read_tokens, reinjected_tokens, loop_detected, "
            "span_count, has_run_span, started_ns, ended_ns, refused_tool_calls, agent_cost_nusd, api_errors, "
            "tool_errors",
    "run_models": "run_id, provider, model, llm_calls, cost_nusd, input_tokens, output_tokens, cached_input_tokens, "
                  "unpriced_calls",
    "run_traces": "run_id, trace_id",
    "report_rollup": "dim, grp, day, outcome, runs, cost_nusd, llm_calls, tool_calls, repeated_reads, unpriced_calls",
}
HOUR_NS = 3_600 * 1_000_000_000


def _claude_copy(body: dict[str, Any], n: int) -> dict[str, Any]:
    """A Claude log request as session ``n``: its own session and prompt ids, ``n`` hours later."""
    doc = copy.deepcopy(body)
    for rl in doc["resourceLogs"]:
        for sl in rl["scopeLogs"]:
            for lr in sl["logRecords"]:
                for a in lr.get("attributes", []):
                    if a["key"] in ("session.id", "prompt.id"):
                        a["value"] = {"stringValue": f"{a['value'].get('stringValue', '')}-{n}"}
                for key in ("timeUnixNano", "observedTimeUnixNano"):
                    if key in lr:
                        lr[key] = str(int(lr[key]) + n * HOUR_NS)
    return doc


def _bodies() -> list[tuple[str, bytes]]:
    out = [(signal, protobuf_body(body, signal)) for sample in ("claude", "codex", "gemini")
           for signal in ("logs", "traces") for body in raw_requests(sample, signal)]
    claude = raw_requests("claude", "logs")
    out += [("logs", protobuf_body(_claude_copy(body, n), "logs")) for n in range(1, 41) for body in claude]
    return out


def _digests(path: Path) -> dict[str, tuple[int, str]]:
    """(rows, sha256 of the rows sorted) of each table, its columns in :data:`COLUMNS`' order."""
    conn = sqlite3.connect(path)
    try:
        out = {}
        for table, columns in COLUMNS.items():
            rows = sorted(json.dumps(row) for row in conn.execute(f"SELECT {columns} FROM {table}"))
            out[table] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16])
        return out
    finally:
        conn.close()


def _store_samples(path: Path) -> None:
    Store.open(path).close()
    with running_server(create_app(path)) as base, httpx.Client(base_url=base, timeout=60) as client:
        for signal, content in _bodies():
            response = client.post(f"/v1/{signal}", content=content,
                                   headers={"Content-Type": "application/x-protobuf"})
            assert response.status_code == 200, (signal, response.text)


EXPECTED = {
    "spans": (913, "9f5e46ceb5f71faa"), "runs": (42, "c776c6d4046f62a8"), "run_models": (42, "e38a8285b8b1570f"),
    "run_traces": (51, "6627ddfb1782cc62"), "report_rollup": (8, "0455694b293b18cb"),
}


def test_the_recorded_sessions_store_the_same_rows_as_before(tmp_path: Path) -> None:
    path = tmp_path / "rt.db"
    _store_samples(path)
    assert _digests(path) == EXPECTED


if __name__ == "__main__":  # how EXPECTED was taken: python tests/test_agents_log_rows.py, on the old code
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        _store_samples(Path(folder) / "rt.db")
        print(_digests(Path(folder) / "rt.db"))
