"""Run aggregation: exact totals, order/batch independence, duplicates, crashed runs."""

from __future__ import annotations

import sqlite3
import tempfile
from functools import reduce
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtrace import semconv as sc
from runtrace.store.aggregate import merge, run_contribution
from runtrace.store.db import Store
from runtrace.store.queries import get_run, list_runs
from runtrace.store.records import SpanRecord
from runtrace.store.verdicts import record_verdict
from store_helpers import BASE_NS, S, llm, outcome_span, run_span, span, tool, trace_of


def hand_built_run() -> list[SpanRecord]:
    budget = {sc.BUDGET_MAX_COST_USD: 2.0, sc.BUDGET_MAX_TOOL_CALLS: 40, sc.BUDGET_MAX_SECONDS: 600.0}
    return [
        run_span("run-1", 1, start_s=0, end_s=30, outcome="accepted", by="alice", budget=budget),
        llm("run-1", 2, start_s=1, end_s=3, parent=1, input_tokens=12_000, cached=8_000, output_tokens=900,
            reasoning=100, cost=0.051, reinjected=300),
        llm("run-1", 3, start_s=4, end_s=6, parent=1, input_tokens=2_000, output_tokens=500, cost=0.0235,
            reinjected=0),
        llm("run-1", 4, start_s=7, end_s=8, parent=1, model="my-local-llm", provider="vllm",
            input_tokens=1_000, output_tokens=100, source=sc.SOURCE_UNKNOWN),
        tool("run-1", 5, start_s=9, end_s=10, parent=1, tool_name="read_file"),
        tool("run-1", 6, start_s=11, end_s=12, parent=1, tool_name="read_file", repeated=True,
             repeated_tokens=1_500),
        outcome_span("run-1", 7, at_s=3600, outcome="rejected", by="ci", reason="tests failed",
                     trace_id="f" * 32),
    ]


def test_hand_built_run_totals(tmp_path: Path) -> None:
    with Store.open(tmp_path / "a.db") as store:
        assert store.ingest(hand_built_run()) == 7
        run = get_run(store, "run-1")
    assert run is not None
    expected = {
        "id": "run-1", "name": "fix flaky test", "project": "billing", "owner": "alice",
        "service": "support-agent", "outcome": "rejected", "outcome_by": "ci",
        "outcome_reason": "tests failed", "outcome_at": "2026-11-18T12:06:40.000000Z",
        "stop_reason": None, "cost_usd": 0.0745, "unpriced_calls": 1, "input_tokens": 15_000,
        "output_tokens": 1_500, "cached_input_tokens": 8_000, "reasoning_tokens": 100, "llm_calls": 3,
        "tool_calls": 2, "repeated_reads": 1, "repeated_read_tokens": 1_500, "reinjected_tokens": 300,
        "loop_detected": False, "started_at": "2026-11-18T11:06:40.000000Z",
        "ended_at": "2026-11-18T11:07:10.000000Z", "duration_s": 30.0, "span_count": 7,
        "has_run_span": True, "trace_ids": sorted([trace_of("run-1"), "f" * 32]),
        "budget": {"max_cost_usd": 2.0, "max_llm_calls": None, "max_tool_calls": 40, "max_seconds": 600.0,
                   "max_input_tokens": None, "on_exceed": None},
        "models": [
            {"provider": "openai", "model": "gpt-5.5", "llm_calls": 2, "cost_usd": 0.0745,
             "input_tokens": 14_000, "output_tokens": 1_400, "cached_input_tokens": 8_000,
             "unpriced_calls": 0},
            {"provider": "vllm", "model": "my-local-llm", "llm_calls": 1, "cost_usd": 0.0,
             "input_tokens": 1_000, "output_tokens": 100, "cached_input_tokens": 0, "unpriced_calls": 1},
        ],
    }
    assert {k: run[k] for k in expected} == expected
    assert [s["kind"] for s in run["spans"]] == ["run", "llm", "llm", "llm", "tool", "tool", "outcome"]


def test_outcome_before_the_late_verdict_and_open_run(tmp_path: Path) -> None:
    with Store.open(tmp_path / "o.db") as store:
        store.ingest([run_span("r-open", 1, start_s=0, end_s=5)])  # ended, no verdict yet
        assert get_run(store, "r-open")["outcome"] == "open"  # type: ignore[index]
        store.ingest([outcome_span("r-open", 2, at_s=60, outcome="accepted", by="ci")])
        run = get_run(store, "r-open")
        assert (run["outcome"], run["outcome_by"], run["ended_at"]) == (  # type: ignore[index]
            "accepted", "ci", "2026-11-18T11:06:45.000000Z")
        # an older verdict arriving later does not win
        store.ingest([outcome_span("r-open", 3, at_s=30, outcome="rejected", by="bob")])
        assert get_run(store, "r-open")["outcome"] == "accepted"  # type: ignore[index]


def test_run_without_run_span_is_unfinished_with_partial_totals(tmp_path: Path) -> None:
    spans = [
        llm("crashed", 1, start_s=5, end_s=6, input_tokens=700, output_tokens=70, cost=0.007),
        llm("crashed", 2, start_s=2, end_s=3, input_tokens=300, output_tokens=30, cost=0.003, loop=True),
        tool("crashed", 3, start_s=7, end_s=9, tool_name="grep"),
    ]
    with Store.open(tmp_path / "u.db") as store:
        store.ingest(spans)
        run = get_run(store, "crashed")
    assert run is not None
    assert {k: run[k] for k in ("outcome", "name", "project", "owner", "service", "llm_calls", "tool_calls",
                                "input_tokens", "output_tokens", "cost_usd", "loop_detected", "started_at",
                                "ended_at", "duration_s", "has_run_span", "outcome_at")} == {
        "outcome": "unfinished", "name": None, "project": None, "owner": None, "service": "support-agent",
        "llm_calls": 2, "tool_calls": 1, "input_tokens": 1_000, "output_tokens": 100, "cost_usd": 0.01,
        "loop_detected": True, "started_at": "2026-11-18T11:06:42.000000Z", "ended_at": None,
        "duration_s": None, "has_run_span": False, "outcome_at": None,
    }


def test_duplicates_count_once(tmp_path: Path) -> None:
    spans = hand_built_run()
    with Store.open(tmp_path / "d.db") as store:
        assert store.ingest(spans[:4]) == 4
        assert store.ingest(spans) == 3  # an exporter retry re-sends the first four
        assert store.ingest(spans + spans) == 0
        assert store.ingest([spans[0], spans[0]]) == 0
        assert store.count_spans() == 7
        run = get_run(store, "run-1")
    with Store.open(tmp_path / "d2.db") as other:
        assert other.ingest([spans[1], spans[1], spans[2]]) == 2  # duplicates within one batch
        assert get_run(other, "run-1")["llm_calls"] == 2  # type: ignore[index]
    assert run is not None
    assert (run["llm_calls"], run["tool_calls"], run["cost_usd"], run["span_count"]) == (3, 2, 0.0745, 7)


FOREIGN_TRACE = "ab" * 16


def test_spans_without_run_id_form_a_run_per_trace(tmp_path: Path) -> None:
    """DESIGN 6b: no runtrace.run.id and no session = one run per trace, named after its root span.

    (Before 6b such spans were stored but formed no run: "Spend $0.00 - 0 runs".)
    """
    resource = {sc.SERVICE_NAME: "py-agent", sc.PROJECT: "billing"}
    children = [
        llm(None, 2, start_s=1, end_s=3, parent=1, input_tokens=1_000, output_tokens=200, cost=1.25,
            trace_id=FOREIGN_TRACE, resource=resource),
        tool(None, 3, start_s=4, end_s=5, parent=1, tool_name="read_file", trace_id=FOREIGN_TRACE,
             resource=resource),
    ]
    root = span(None, 1, start_s=0, end_s=10, name="agent step", attrs={sc.OWNER: "alice"},
                trace_id=FOREIGN_TRACE, resource=resource)
    with Store.open(tmp_path / "n.db") as store:
        assert store.ingest(children) == 2
        early = get_run(store, FOREIGN_TRACE)
        assert early is not None
        assert (early["name"], early["outcome"], early["cost_usd"], early["llm_calls"], early["tool_calls"],
                early["ended_at"]) == (None, "unfinished", 1.25, 1, 1, None)
        assert store.ingest([root]) == 1
        runs = list_runs(store)
        assert [r["id"] for r in runs] == [FOREIGN_TRACE]
        run = runs[0]
        assert (run["name"], run["project"], run["owner"], run["service"], run["outcome"], run["cost_usd"],
                run["input_tokens"], run["output_tokens"], run["llm_calls"], run["tool_calls"],
                run["span_count"], run["duration_s"]) == (
            "agent step", "billing", "alice", "py-agent", "open", 1.25, 1_000, 200, 1, 1, 3, 10.0)
        record_verdict(store, FOREIGN_TRACE, "accepted", by="ci")
        after = get_run(store, FOREIGN_TRACE)
        assert after is not None
        assert (after["outcome"], after["outcome_by"], after["name"]) == ("accepted", "ci", "agent step")
        assert store.count_runs() == 1  # the verdict's own span is the run's, not a run of its trace


def test_session_spans_form_one_run_across_traces(tmp_path: Path) -> None:
    """session.id / conversation.id / gen_ai.conversation.id (span before resource) name the run."""
    t1, t2, t3, t4 = "1" * 32, "2" * 32, "3" * 32, "4" * 32
    spans = [
        # session "s-1": two traces, one via the span attribute, one via the resource
        span(None, 1, start_s=5, end_s=9, name="second turn", trace_id=t1, attrs={sc.SESSION_ID: "s-1"}),
        llm(None, 2, start_s=6, end_s=7, parent=1, cost=0.5, trace_id=t1, attrs={sc.SESSION_ID: "s-1"}),
        span(None, 3, start_s=2, end_s=4, name="first turn", trace_id=t2,
             resource={sc.SERVICE_NAME: "claude-code", sc.SESSION_ID: "s-1"}),
        llm(None, 4, start_s=2, end_s=3, parent=3, cost=0.25, trace_id=t2,
            resource={sc.SERVICE_NAME: "claude-code", sc.SESSION_ID: "s-1"}),
        # the span's own session wins over its resource's
        llm(None, 5, start_s=1, end_s=2, cost=0.125, trace_id=t3, attrs={sc.SESSION_ID: "span-s"},
            resource={sc.SERVICE_NAME: "x", sc.SESSION_ID: "res-s"}),
        # Codex's conversation.id and the semconv gen_ai.conversation.id
        llm(None, 6, start_s=1, end_s=2, cost=0.0625, trace_id=t4, attrs={sc.CONVERSATION_ID: "codex-c"}),
        llm(None, 7, start_s=1, end_s=2, cost=0.03125, trace_id=t4, attrs={sc.GEN_AI_CONVERSATION_ID: "conv-9"}),
        # runtrace.run.id beats any session
        llm("rt-run", 8, start_s=1, end_s=2, cost=1.0, attrs={sc.SESSION_ID: "s-1"}),
    ]
    for order in (spans, list(reversed(spans))):
        with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "s.db") as store:
            store.ingest(order)
            got = {r["id"]: (r["name"], r["outcome"], r["cost_usd"], r["llm_calls"], r["span_count"])
                   for r in list_runs(store, limit=0)}
            assert got == {
                "s-1": ("first turn", "open", 0.75, 2, 4),  # the earliest root names it
                "span-s": ("chat gpt-5.5", "open", 0.125, 1, 1),
                "codex-c": ("chat gpt-5.5", "open", 0.0625, 1, 1),
                "conv-9": ("chat gpt-5.5", "open", 0.03125, 1, 1),
                "rt-run": (None, "unfinished", 1.0, 1, 1),
            }
            s1 = get_run(store, "s-1")
            assert s1 is not None and s1["service"] == "claude-code" and s1["duration_s"] == 7.0


def test_earliest_root_names_the_run_ties_by_lowest_span_id(tmp_path: Path) -> None:
    roots = [span(None, n, start_s=3, end_s=4 + n, name=f"root {n}", trace_id=FOREIGN_TRACE,
                  attrs={sc.SESSION_ID: "tie"}) for n in (7, 5, 9)]
    for order in (roots, list(reversed(roots)), [roots[1], roots[2], roots[0]]):
        with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "t.db") as store:
            for one in order:  # across batches: the SQL upsert's rule
                store.ingest([one])
            run = get_run(store, "tie")
            assert run is not None
            assert (run["name"], run["duration_s"]) == ("root 5", 10.0)
        assert reduce(merge, [run_contribution(r) for r in order]).descriptor.name == "root 5"


def test_loop_flag_from_run_span_and_stop_reason(tmp_path: Path) -> None:
    with Store.open(tmp_path / "l.db") as store:
        store.ingest([run_span("r", 1, start_s=0, end_s=1, outcome="budget_stopped", loop=True,
                               stop_reason="loop")])
        run = get_run(store, "r")
    assert (run["loop_detected"], run["stop_reason"], run["outcome"]) == (True, "loop", "budget_stopped")  # type: ignore[index]


# --- order and batch independence -------------------------------------------------

RUN_IDS = ("ra", "rb", "rc")
COSTS = (0.1, 0.2, 0.3, 0.051, 1e-9, 0.0235, 7.0, 1 / 3)


@st.composite
def span_pool(draw: st.DrawFn) -> list[SpanRecord]:
    n = draw(st.integers(min_value=1, max_value=25))
    spans: list[SpanRecord] = []
    for i in range(n):
        run_id = draw(st.sampled_from(RUN_IDS))
        start = draw(st.integers(min_value=0, max_value=6))
        end = start + draw(st.integers(min_value=0, max_value=3))
        kind = draw(st.sampled_from(("llm", "llm", "tool", "run", "outcome", "other", "foreign", "foreign")))
        sid = i + 1
        if kind == "foreign":
            # no runtrace.run.id: a run per session or per trace, named by its earliest root;
            # few distinct starts, so that roots tie and the span-id tie-break is exercised
            session = draw(st.sampled_from((None, "sess-a", "sess-b")))
            where = draw(st.sampled_from(("span", "resource")))
            attrs = {sc.SESSION_ID: session} if session and where == "span" else {}
            resource = {sc.SERVICE_NAME: f"svc-{sid % 3}"}
            if session and where == "resource":
                resource[sc.SESSION_ID] = session
            if draw(st.booleans()):
                attrs[sc.GEN_AI_OPERATION_NAME] = sc.OP_CHAT
                attrs[sc.COST_USD] = draw(st.sampled_from(COSTS))
            fstart = draw(st.sampled_from((1, 2)))
            spans.append(span(None, sid, start_s=fstart, end_s=fstart + draw(st.integers(0, 3)),
                              name=f"root-ish {sid}", attrs=attrs, resource=resource,
                              trace_id=draw(st.sampled_from(("a" * 32, "b" * 32))),
                              parent=draw(st.sampled_from((None, None, 1)))))
        elif kind == "llm":
            spans.append(llm(run_id, sid, start_s=start, end_s=end,
                             model=draw(st.sampled_from(("gpt-5.5", "o3"))),
                             input_tokens=draw(st.integers(0, 50_000)), output_tokens=draw(st.integers(0, 999)),
                             cached=draw(st.integers(0, 10)), reasoning=draw(st.integers(0, 5)),
                             cost=draw(st.none() | st.sampled_from(COSTS)),
                             source=draw(st.sampled_from((sc.SOURCE_GENAI_PRICES, sc.SOURCE_UNKNOWN))),
                             reinjected=draw(st.integers(0, 9)), loop=draw(st.booleans())))
        elif kind == "tool":
            spans.append(tool(run_id, sid, start_s=start, end_s=end, repeated=draw(st.booleans()),
                              repeated_tokens=draw(st.integers(0, 99))))
        elif kind == "run":
            # few distinct end times, so that outcomes tie and the tie-break is exercised
            spans.append(run_span(run_id, sid, start_s=start, end_s=draw(st.sampled_from((6, 9))),
                                  name=draw(st.sampled_from(("one", "two"))),
                                  project=draw(st.sampled_from(("p1", "p2", None))),
                                  outcome=draw(st.sampled_from((None, "accepted", "error"))),
                                  stop_reason=draw(st.sampled_from((None, "max_cost_usd")))))
        elif kind == "outcome":
            spans.append(outcome_span(run_id, sid, at_s=draw(st.sampled_from((6, 9))),
                                      outcome=draw(st.sampled_from(("accepted", "rejected", "abandoned"))),
                                      by=draw(st.sampled_from((None, "ci", "alice"))),
                                      reason=draw(st.sampled_from((None, "x", "y")))))
            stop = draw(st.sampled_from((None, None, "project_daily_usd", "max_cost_usd")))  # the Claude Code hook's
            if stop is not None:
                spans[-1].attributes[sc.RUN_STOP_REASON] = stop
        else:
            spans.append(span(run_id, sid, start_s=start, end_s=end,
                              resource={sc.SERVICE_NAME: draw(st.sampled_from(("s1", "s2")))}))
    return spans


def table_rows(path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return (conn.execute("SELECT * FROM runs ORDER BY id").fetchall(),
                conn.execute("SELECT * FROM run_models ORDER BY run_id, provider, model").fetchall(),
                conn.execute("SELECT * FROM run_traces ORDER BY run_id, trace_id").fetchall())
    finally:
        conn.close()


def ingest_all(path: Path, batches: list[list[SpanRecord]]) -> None:
    with Store.open(path) as store:
        for batch in batches:
            store.ingest(batch)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), pool=span_pool())
def test_any_order_any_batches_same_rows(data: st.DataObject, pool: list[SpanRecord]) -> None:
    shuffled = data.draw(st.permutations(pool))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(pool)), max_size=6)))
    bounds = [0, *cuts, len(pool)]
    batches = [shuffled[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    resend = data.draw(st.lists(st.sampled_from(pool), max_size=4))  # retries
    with tempfile.TemporaryDirectory() as tmp:
        reference, other = Path(tmp) / "ref.db", Path(tmp) / "other.db"
        ingest_all(reference, [pool])
        ingest_all(other, [*batches, resend])
        ref_rows = table_rows(reference)
        assert table_rows(other) == ref_rows
        # the Python merge agrees with the SQL upserts
        with Store.open(reference) as store:
            by_run = {r["id"]: r for r in list_runs(store, limit=0)}
    for run_id, run in by_run.items():
        deltas = [d for d in (run_contribution(s) for s in pool) if d is not None and d.run_id == run_id]
        for a, b in zip(deltas, deltas[1:], strict=False):
            assert merge(a, b) == merge(b, a)
        total = reduce(merge, deltas)
        assert total == reduce(merge, reversed(deltas))
        assert (run["llm_calls"], run["tool_calls"], run["input_tokens"], run["cost_usd"],
                run["unpriced_calls"], run["repeated_reads"], run["span_count"], run["loop_detected"]) == (
            total.llm_calls, total.tool_calls, total.input_tokens, total.cost_usd, total.unpriced_calls,
            total.repeated_reads, total.span_count, total.loop_detected)
        assert run["outcome"] == (total.outcome.outcome if total.outcome else "unfinished")
        assert run["name"] == total.descriptor.name
        assert run["stop_reason"] == total.stop_reason
        assert run["started_at"] is not None and total.started_ns >= BASE_NS
        assert run["ended_at"] is None if total.ended_ns is None else run["duration_s"] == (
            (total.ended_ns - total.started_ns) / S)


def test_merge_refuses_different_runs() -> None:
    a = run_contribution(llm("x", 1, start_s=0, end_s=1, cost=0.1))
    b = run_contribution(llm("y", 2, start_s=0, end_s=1, cost=0.1))
    assert a is not None and b is not None
    try:
        merge(a, b)
    except ValueError as exc:
        assert str(exc) == "cannot merge contributions to different runs: 'x' and 'y'"
    else:
        raise AssertionError("merge of different runs did not raise")


def test_errors_per_run_count_failed_model_and_tool_calls_once_in_any_order(tmp_path: Path) -> None:
    """api_errors: a failed LLM span, or a failed client span naming a provider (an agent's call that
    finally failed, no LLM call); tool_errors: a failed tool span; duplicates, run spans and plain
    spans in error are neither."""
    failed_call = llm("r1", 1, start_s=0, end_s=1, input_tokens=10, cost=0.01, status="ERROR", message="500")
    agent_failure = span("r1", 2, start_s=1, end_s=2, name="chat claude-x", kind="CLIENT", status="ERROR",
                         attrs={sc.GEN_AI_PROVIDER_NAME: "anthropic"})
    failed_tool = tool("r1", 3, start_s=2, end_s=3, status="ERROR", message="exit code 1")
    ok_tool = tool("r1", 4, start_s=3, end_s=4)
    duplicate = span("r1", 5, start_s=1, end_s=2, name="claude_code.llm_request", kind="CLIENT", status="ERROR",
                     attrs={sc.GEN_AI_PROVIDER_NAME: "anthropic", sc.DUPLICATE_OF: "api_error"})
    plain = span("r1", 6, start_s=4, end_s=5, name="work", status="ERROR")
    run = run_span("r1", 7, start_s=0, end_s=6, status="ERROR", message="boom")
    spans = [failed_call, agent_failure, failed_tool, ok_tool, duplicate, plain, run]
    deltas = [run_contribution(s) for s in spans]
    merged = reduce(merge, deltas)
    assert (merged.api_errors, merged.tool_errors, merged.llm_calls, merged.tool_calls) == (2, 1, 1, 2)
    assert reduce(merge, reversed(deltas)) == merged
    with Store.open(tmp_path / "rt.db") as store:
        for s in reversed(spans):
            store.ingest([s])
        row = get_run(store, "r1")
    assert row is not None
    assert (row["errors"], row["api_errors"], row["tool_errors"]) == (3, 2, 1)
