"""The one ingest path: pricing spans from other SDKs, and several processes writing one file."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from runtrace import semconv as sc
from runtrace.store.db import Store
from runtrace.store.queries import get_run, list_runs
from store_helpers import SPANS_PER_RUN, ingest_worker, llm, span


def foreign_llm_span(run_id: str, n: int, **usage: int) -> object:
    """An LLM span as another SDK sends it: usage, no runtrace.cost.*."""
    attrs = {sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_PROVIDER_NAME: "openai",
             sc.GEN_AI_REQUEST_MODEL: "gpt-5.5", **usage}
    return span(run_id, n, start_s=0, end_s=2, name="chat gpt-5.5", attrs=attrs, kind="CLIENT")


def test_span_with_usage_and_no_cost_is_priced_at_ingest(tmp_path: Path) -> None:
    record = foreign_llm_span("foreign", 1, **{
        sc.GEN_AI_USAGE_INPUT_TOKENS: 12_000, sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 8_000,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 900})
    with Store.open(tmp_path / "p.db") as store:
        assert store.ingest([record]) == 1  # type: ignore[list-item]
        run = get_run(store, "foreign")
        (stored,) = store.iter_span_records()
    assert run is not None
    attrs = run["spans"][0]["attributes"]
    assert attrs[sc.COST_USD] == 0.051
    assert attrs[sc.COST_PRICED_AT_INGEST] is True
    assert attrs[sc.COST_SOURCE] == sc.SOURCE_GENAI_PRICES
    assert run["spans"][0]["cost_usd"] == 0.051
    assert (run["cost_usd"], run["unpriced_calls"], run["llm_calls"]) == (0.051, 0, 1)
    assert stored.attributes[sc.COST_USD] == 0.051  # what forward would replay carries the price


def test_deprecated_usage_names_are_read_and_priced(tmp_path: Path) -> None:
    record = foreign_llm_span("old-sdk", 1, **{sc.GEN_AI_USAGE_PROMPT_TOKENS: 1_000_000,
                                               sc.GEN_AI_USAGE_COMPLETION_TOKENS: 0})
    with Store.open(tmp_path / "d.db") as store:
        store.ingest([record])  # type: ignore[list-item]
        run = get_run(store, "old-sdk")
    assert run is not None
    assert run["input_tokens"] == 1_000_000
    assert run["spans"][0]["attributes"][sc.COST_PRICED_AT_INGEST] is True
    assert run["cost_usd"] == run["spans"][0]["cost_usd"] > 0


def test_priced_or_judged_spans_are_not_repriced(tmp_path: Path) -> None:
    spans = [
        llm("keep", 1, start_s=0, end_s=1, input_tokens=12_000, output_tokens=900, cost=9.0),
        llm("keep", 2, start_s=0, end_s=1, input_tokens=12_000, output_tokens=900, source=sc.SOURCE_UNKNOWN),
    ]
    with Store.open(tmp_path / "k.db") as store:
        store.ingest(spans)
        run = get_run(store, "keep")
    assert run is not None
    assert (run["cost_usd"], run["unpriced_calls"]) == (9.0, 1)
    assert all(sc.COST_PRICED_AT_INGEST not in s["attributes"] for s in run["spans"])


def test_unknown_model_at_ingest_counts_as_unpriced(tmp_path: Path) -> None:
    record = span("mystery", 1, start_s=0, end_s=1, attrs={
        sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_PROVIDER_NAME: "openai",
        sc.GEN_AI_REQUEST_MODEL: "no-such-model-xyz", sc.GEN_AI_USAGE_INPUT_TOKENS: 10,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 5})
    with Store.open(tmp_path / "m.db") as store:
        store.ingest([record])
        run = get_run(store, "mystery")
    assert run is not None
    assert (run["cost_usd"], run["unpriced_calls"], run["llm_calls"]) == (0.0, 1, 1)
    assert run["spans"][0]["attributes"][sc.COST_SOURCE] == sc.SOURCE_UNKNOWN
    assert run["spans"][0]["cost_usd"] is None


def test_a_failed_batch_leaves_nothing_behind(tmp_path: Path) -> None:
    good = llm("atomic", 1, start_s=0, end_s=1, cost=0.5)
    bad = dataclasses.replace(llm("atomic", 2, start_s=0, end_s=1, cost=0.5), name=None)
    with Store.open(tmp_path / "a.db") as store:
        with pytest.raises(sqlite3.IntegrityError, match="NOT NULL constraint failed: spans.name"):
            store.ingest([good, bad])  # fails inside the transaction, after `good` was inserted
        assert (store.count_spans(), store.count_runs()) == (0, 0)
        assert store.ingest([good]) == 1


@pytest.mark.slow
def test_two_processes_write_one_file_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")  # blank: both processes also race to create and migrate it
    ctx = multiprocessing.get_context("spawn")
    ready = [ctx.Event(), ctx.Event()]
    go = ctx.Event()
    # process A sends spans 0-6 of every run, B spans 3-9: 3..6 arrive twice, from two processes
    workers = [ctx.Process(target=ingest_worker, args=(path, (0, 7), 37, ready[0], go)),
               ctx.Process(target=ingest_worker, args=(path, (3, 10), 53, ready[1], go))]
    for w in workers:
        w.start()
    for r in ready:
        assert r.wait(120)
    go.set()
    for w in workers:
        w.join(180)
        assert w.exitcode == 0
    with Store.open(path) as store:
        assert store.count_spans() == 200 * SPANS_PER_RUN
        dup = store.execute("SELECT count(*) FROM (SELECT 1 FROM spans GROUP BY trace_id, span_id "
                            "HAVING count(*) > 1)")[0][0]
        assert dup == 0
        runs = list_runs(store, limit=0)
    assert len(runs) == 200
    for run in runs:
        assert {k: run[k] for k in ("outcome", "llm_calls", "tool_calls", "input_tokens", "output_tokens",
                                    "cached_input_tokens", "cost_usd", "repeated_reads",
                                    "repeated_read_tokens", "span_count", "unpriced_calls")} == {
            "outcome": "accepted", "llm_calls": 6, "tool_calls": 3, "input_tokens": 6015,
            "output_tokens": 600, "cached_input_tokens": 60, "cost_usd": 0.021, "repeated_reads": 1,
            "repeated_read_tokens": 250, "span_count": 10, "unpriced_calls": 0}, run["id"]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        models = conn.execute("SELECT count(*), sum(llm_calls) FROM run_models").fetchone()
        assert tuple(models) == (200, 1200)
        (attrs,) = conn.execute("SELECT attributes FROM spans WHERE run_id = 'p007' AND kind = 'run'").fetchone()
        assert json.loads(attrs)[sc.RUN_ID] == "p007"
    finally:
        conn.close()
