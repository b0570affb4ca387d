"""Verdicts never make phantom runs (issue 9 item 6) and can be given from outside Python (issue 13 item 6).

A verdict for a run id the store does not hold is kept pending (stored, never
counted as a run) and applied when the run's spans arrive, in any order; the
CLI and the API refuse an unknown id and write nothing.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

import runtrace
from runtrace import semconv as sc
from runtrace.cli import main
from runtrace.report import build_report
from runtrace.server import create_app
from runtrace.store.db import Store
from runtrace.store.queries import get_run, list_runs
from runtrace.store.records import SpanRecord
from runtrace.store.verdicts import count_pending, list_pending
from store_helpers import BASE_NS, S, llm, outcome_span, run_span
from test_server_support import running_server

VERDICT_TRACE = "f" * 32  # a late verdict is a trace of its own, as record_outcome makes it


def accepted_run(run_id: str, first: int, *, cost: float) -> list[SpanRecord]:
    return [run_span(run_id, first, start_s=0, end_s=10, name=f"task {run_id}", outcome=sc.OUTCOME_ACCEPTED),
            llm(run_id, first + 1, start_s=1, end_s=2, input_tokens=1000, output_tokens=100, cost=cost)]


def late_run(run_id: str = "late-run") -> tuple[list[SpanRecord], SpanRecord]:
    """A run that ended accepted, and a later verdict (rejected) for it."""
    spans = [run_span(run_id, 11, start_s=100, end_s=110, name="late task", outcome=sc.OUTCOME_ACCEPTED),
             llm(run_id, 12, start_s=101, end_s=102, input_tokens=500, output_tokens=50, cost=0.25)]
    verdict = outcome_span(run_id, 13, at_s=500, outcome=sc.OUTCOME_REJECTED, by="reviewer",
                           reason="reverted", trace_id=VERDICT_TRACE)
    return spans, verdict


def all_rows(path: Path) -> tuple[list[tuple[Any, ...]], ...]:
    conn = sqlite3.connect(path)
    try:
        return tuple(conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
                     for t in ("runs", "run_models", "run_traces"))
    finally:
        conn.close()


@pytest.fixture
def one_run_store(tmp_path: Path) -> Path:
    path = tmp_path / "runtrace.db"
    with Store.open(path) as store:
        store.ingest(accepted_run("run-a", 1, cost=0.30))
    return path


# --- the store: pending, and applied in either order ------------------------------


def test_verdict_for_unknown_run_creates_no_run_and_leaves_cost_per_accepted_run(one_run_store: Path) -> None:
    with Store.open(one_run_store) as store:
        before = build_report(store).total
        assert (before.runs, before.accepted, before.cost_per_accepted_run) == (1, 1, pytest.approx(0.30))
        assert store.ingest([outcome_span("nope", 5, at_s=60, outcome=sc.OUTCOME_ACCEPTED, by="ci")]) == 1
        after = build_report(store).total
        assert (after.runs, after.accepted, after.cost_per_accepted_run) == (1, 1, pytest.approx(0.30))
        assert store.count_runs() == 1
        assert [r["id"] for r in list_runs(store, limit=0)] == ["run-a"]
        assert get_run(store, "nope") is None
        assert count_pending(store) == 1
        assert list_pending(store) == [{"run_id": "nope", "outcome": "accepted", "by": "ci", "reason": None,
                                        "at": "2026-11-18T11:07:40.000000Z"}]
        assert store.count_spans() == 3  # the verdict is kept, only not counted as a run


@pytest.mark.parametrize("order", ["verdict first", "verdict last", "one batch", "verdict between"])
def test_pending_verdict_is_applied_when_the_run_arrives_in_any_order(tmp_path: Path, order: str) -> None:
    spans, verdict = late_run()
    batches = {"verdict first": [[verdict], spans], "verdict last": [spans, [verdict]],
               "one batch": [[*spans, verdict]], "verdict between": [spans[1:], [verdict], spans[:1]]}[order]
    reference, path = tmp_path / "ref.db", tmp_path / "other.db"
    with Store.open(reference) as store:
        store.ingest(spans)
        store.ingest([verdict])
    with Store.open(path) as store:
        for i, batch in enumerate(batches):
            store.ingest(batch)
            if order == "verdict first" and i == 0:
                assert (store.count_runs(), count_pending(store)) == (0, 1)
        run = get_run(store, "late-run")
        assert count_pending(store) == 0
        assert store.count_runs() == 1
    assert run is not None
    assert (run["outcome"], run["outcome_by"], run["outcome_reason"]) == ("rejected", "reviewer", "reverted")
    assert run["cost_usd"] == pytest.approx(0.25)
    assert run["name"] == "late task"
    assert run["started_at"] == "2026-11-18T11:08:20.000000Z"  # the run's start, not the verdict's
    assert all_rows(path) == all_rows(reference)


def test_pending_verdict_older_than_the_runs_own_outcome_loses_in_both_orders(tmp_path: Path) -> None:
    spans = [run_span("r", 1, start_s=0, end_s=50, outcome=sc.OUTCOME_ACCEPTED)]
    old = outcome_span("r", 2, at_s=20, outcome=sc.OUTCOME_REJECTED, by="bot", trace_id=VERDICT_TRACE)
    results = []
    for name, batches in (("a.db", [[old], spans]), ("b.db", [spans, [old]])):
        with Store.open(tmp_path / name) as store:
            for batch in batches:
                store.ingest(batch)
            run = get_run(store, "r")
            assert run is not None
            results.append((run["outcome"], run["outcome_by"]))
    assert results == [("accepted", None), ("accepted", None)]
    assert all_rows(tmp_path / "a.db") == all_rows(tmp_path / "b.db")


def test_a_resent_pending_verdict_is_applied_once(tmp_path: Path) -> None:
    spans, verdict = late_run()
    with Store.open(tmp_path / "x.db") as store:
        assert store.ingest([verdict]) == 1
        assert store.ingest([verdict, *spans]) == 2  # the verdict is stored already (the retry path)
        row = store.execute("SELECT span_count, outcome FROM runs WHERE id = 'late-run'")[0]
        assert (row["span_count"], row["outcome"]) == (3, "rejected")
        assert count_pending(store) == 0


# --- in-process record_outcome ---------------------------------------------------------


def test_record_outcome_for_an_unknown_id_warns_once_and_creates_no_run(instrumented, caplog) -> None:
    with runtrace.run("real task") as run:
        run.accept()
    caplog.set_level(logging.WARNING, logger="runtrace")
    runtrace.record_outcome(run.id, "rejected", by="ci")  # a run of this process: fine, even unflushed
    runtrace.record_outcome("nope", "accepted")
    runtrace.record_outcome("nope", "accepted")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("runtrace: record_outcome('nope'): no such run in this process or in the "
                                  f"store {instrumented.store_path}")
    # the span is still emitted (a remote store may hold the run) ...
    assert [s.attributes[sc.RUN_ID] for s in instrumented.spans() if s.name == sc.OUTCOME_SPAN_NAME] == [
        run.id, "nope", "nope"]
    # ... but locally it is pending, not a run
    with instrumented.open_store() as store:
        assert [(r["id"], r["outcome"]) for r in list_runs(store, limit=0)] == [(run.id, "rejected")]
        assert count_pending(store) == 2
        assert build_report(store).total.accepted == 0


def test_record_outcome_for_a_run_only_in_the_store_does_not_warn(instrumented, caplog) -> None:
    runtrace.flush()
    with Store.open(instrumented.store_path) as store:  # a run another process wrote
        store.ingest(accepted_run("other-process", 1, cost=0.1))
    caplog.set_level(logging.WARNING, logger="runtrace")
    runtrace.record_outcome("other-process", "abandoned", by="alice")
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    with instrumented.open_store() as store:
        run = get_run(store, "other-process")
    assert run is not None and (run["outcome"], run["outcome_by"]) == ("abandoned", "alice")


# --- the CLI ----------------------------------------------------------------------------


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_cli_outcome_sets_the_verdict(one_run_store: Path) -> None:
    code, out, err = cli("outcome", "run-a", "rejected", "--by", "ci", "--reason", "red build",
                         "--store", str(one_run_store))
    assert (code, out, err) == (0, "", "run run-a: rejected by ci\n")
    with Store.open(one_run_store) as store:
        run = get_run(store, "run-a")
        assert run is not None
        assert (run["outcome"], run["outcome_by"], run["outcome_reason"]) == ("rejected", "ci", "red build")
        assert build_report(store).total.accepted == 0


def test_cli_outcome_unknown_run_is_exit_2_and_writes_nothing(one_run_store: Path) -> None:
    before = all_rows(one_run_store)
    with Store.open(one_run_store) as store:
        spans_before = store.count_spans()
    code, out, err = cli("outcome", "nope", "accepted", "--store", str(one_run_store))
    assert code == 2 and out == ""
    assert err == f"Error: no run 'nope' in {one_run_store}; nothing was recorded\n"
    code, _, err = cli("outcome", "run-", "accepted", "--store", str(one_run_store))
    assert code == 2
    assert err.endswith("(a verdict needs the full run id: did you mean run-a?)\n")
    assert all_rows(one_run_store) == before
    with Store.open(one_run_store) as store:
        assert (store.count_spans(), count_pending(store)) == (spans_before, 0)
    code, _, err = cli("outcome", "run-a", "merged", "--store", str(one_run_store))
    assert code == 2 and "'merged' is not one of" in err


def test_cli_outcome_pending_lists_waiting_verdicts(one_run_store: Path) -> None:
    with Store.open(one_run_store) as store:
        store.ingest([outcome_span("elsewhere", 9, at_s=60, outcome="rejected", by="bot", reason="flaky")])
    code, out, _ = cli("outcome", "--pending", "--format", "json", "--store", str(one_run_store))
    assert code == 0
    assert json.loads(out) == [{"run_id": "elsewhere", "outcome": "rejected", "by": "bot", "reason": "flaky",
                                "at": "2026-11-18T11:07:40.000000Z"}]
    code, out, _ = cli("outcome", "--pending", "--store", str(one_run_store))
    assert (code, out) == (0, '2026-11-18T11:07:40.000000Z  elsewhere  rejected  bot  "flaky"\n')


# --- the HTTP API and the OTLP receiver -----------------------------------------------


def test_api_outcome_sets_the_verdict_and_refuses_unknown_ids_and_forms(one_run_store: Path) -> None:
    with running_server(create_app(one_run_store)) as base:
        ok = httpx.post(f"{base}/api/runs/run-a/outcome", json={"outcome": "rejected", "by": "ci"}, timeout=30)
        assert ok.status_code == 200
        assert ok.json() == {"id": "run-a", "outcome": "rejected", "outcome_by": "ci", "outcome_reason": None}
        before = all_rows(one_run_store)
        unknown = httpx.post(f"{base}/api/runs/nope/outcome", json={"outcome": "accepted"}, timeout=30)
        assert unknown.status_code == 404
        assert unknown.json() == {"error": f"no run 'nope' in {one_run_store}; nothing was recorded"}
        form = httpx.post(f"{base}/api/runs/run-a/outcome", data={"outcome": "accepted"}, timeout=30)
        assert form.status_code == 415
        assert form.json() == {"error": "send the verdict as JSON (Content-Type: application/json), not "
                                        "application/x-www-form-urlencoded"}
        text = httpx.post(f"{base}/api/runs/run-a/outcome", content=b'{"outcome": "accepted"}',
                          headers={"Content-Type": "text/plain"}, timeout=30)
        assert text.status_code == 415
        cross = httpx.post(f"{base}/api/runs/run-a/outcome", json={"outcome": "accepted"},
                           headers={"Origin": "https://evil.example"}, timeout=30)
        assert cross.status_code == 403
        bad = httpx.post(f"{base}/api/runs/run-a/outcome", json={"outcome": "merged"}, timeout=30)
        assert bad.status_code == 400 and "outcome must be one of abandoned, accepted, rejected, got 'merged'" == \
            bad.json()["error"]
        extra = httpx.post(f"{base}/api/runs/run-a/outcome", json={"outcome": "accepted", "who": "x"},
                           timeout=30)
        assert extra.status_code == 400
        assert all_rows(one_run_store) == before  # none of the refused requests wrote anything
    with Store.open(one_run_store) as store:
        run = get_run(store, "run-a")
        assert run is not None and (run["outcome"], run["outcome_by"]) == ("rejected", "ci")
        assert count_pending(store) == 0


def test_api_outcome_needs_the_token_when_the_server_has_one(one_run_store: Path) -> None:
    with running_server(create_app(one_run_store, token="s3cret")) as base:
        refused = httpx.post(f"{base}/api/runs/run-a/outcome", json={"outcome": "rejected"}, timeout=30)
        assert refused.status_code == 401
        ok = httpx.post(f"{base}/api/runs/run-a/outcome", json={"outcome": "rejected"},
                        headers={"Authorization": "Bearer s3cret"}, timeout=30)
        assert ok.status_code == 200
    with Store.open(one_run_store) as store:
        run = get_run(store, "run-a")
        assert run is not None and run["outcome"] == "rejected"


def _otlp(run_id: str, span_id: str, *, trace: str, start_ns: int, attrs: dict[str, Any], name: str) -> bytes:
    values = [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
              for k, v in {sc.RUN_ID: run_id, **attrs}.items()]
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": sc.SERVICE_NAME, "value": {"stringValue": "remote-agent"}}]},
        "scopeSpans": [{"scope": {"name": "runtrace"}, "spans": [{
            "traceId": trace, "spanId": span_id, "name": name, "kind": 1,
            "startTimeUnixNano": str(start_ns), "endTimeUnixNano": str(start_ns + S), "attributes": values,
        }]}]}]}).encode()


def test_otlp_verdict_for_an_unknown_run_waits_for_its_spans(one_run_store: Path) -> None:
    verdict = _otlp("remote-run", "a" * 16, trace=VERDICT_TRACE, start_ns=BASE_NS + 900 * S,
                    name=sc.OUTCOME_SPAN_NAME,
                    attrs={sc.SPAN_ROLE: sc.ROLE_OUTCOME, sc.RUN_OUTCOME: sc.OUTCOME_ACCEPTED, sc.RUN_OUTCOME_BY: "ci"})
    call = _otlp("remote-run", "b" * 16, trace="c" * 32, start_ns=BASE_NS + 10 * S, name="chat gpt-4o",
                 attrs={sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
                        sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_USAGE_INPUT_TOKENS: 2000,
                        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 100})
    headers = {"Content-Type": "application/json"}
    with running_server(create_app(one_run_store)) as base:
        assert httpx.post(f"{base}/v1/traces", content=verdict, headers=headers, timeout=30).status_code == 200
        assert [r["id"] for r in httpx.get(f"{base}/api/runs", timeout=30).json()] == ["run-a"]
        assert httpx.get(f"{base}/api/outcomes/pending", timeout=30).json() == [
            {"run_id": "remote-run", "outcome": "accepted", "by": "ci", "reason": None,
             "at": "2026-11-18T11:21:41.000000Z"}]
        assert 'runtrace_runs{project="billing",outcome="accepted"} 1' in \
            httpx.get(f"{base}/metrics", timeout=30).text
        assert httpx.post(f"{base}/v1/traces", content=call, headers=headers, timeout=30).status_code == 200
        run = httpx.get(f"{base}/api/runs/remote-run", timeout=30).json()
        assert httpx.get(f"{base}/api/outcomes/pending", timeout=30).json() == []
    assert (run["outcome"], run["outcome_by"], run["llm_calls"]) == ("accepted", "ci", 1)
    assert run["cost_usd"] == pytest.approx(0.006, abs=1e-12)  # 2,000 x $2.50/M + 100 x $10/M
