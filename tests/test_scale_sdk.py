"""Spans made by the runtrace SDK itself (runtrace.instrument, runtrace.run, @runtrace.tool and
the real openai client over a mock transport), written into ClickHouse as the exporter
writes them: the run views give the same runs as the embedded store the SDK wrote to."""

from __future__ import annotations

from pathlib import Path

import pytest

import runtrace
from llm_fakes import ChatUsage, FakeLLM, chat_completion, json_reply
from runtrace.scale import prices
from runtrace.store.queries import list_runs
from runtrace.store.sdk_adapter import records_from_sdk
from scale_helpers import ClickHouse, insert_spans, split_sql

USER = [{"role": "user", "content": "Fix the flaky test in test_billing.py"}]
FIELDS = ("name", "project", "owner", "service", "outcome", "stop_reason", "unpriced_calls", "input_tokens",
          "output_tokens", "cached_input_tokens", "reasoning_tokens", "llm_calls", "tool_calls", "repeated_reads",
          "loop_detected", "duration_s", "repeated_read_tokens", "reinjected_tokens", "span_count",
          "outcome_by", "outcome_reason")


def test_sdk_runs_are_the_same_in_clickhouse_and_the_store(instrumented, tmp_path: Path) -> None:
    def reply(body: dict) -> object:
        if body["model"] == "my-local-llm":
            return json_reply(chat_completion(model="my-local-llm", usage=ChatUsage(500, 50)))
        return json_reply(chat_completion(model="gpt-4o-2024-08-06", usage=ChatUsage(1200, 300, cached_tokens=200)))

    client = FakeLLM(default=reply).openai()

    @runtrace.tool
    def read_file(path: str) -> str:
        return f"contents of {path}"

    with runtrace.run("sdk accepted", project="billing", owner="alice") as accepted:
        client.chat.completions.create(model="gpt-4o", messages=USER)
        read_file("billing.py")
        read_file("billing.py")
        client.chat.completions.create(model="gpt-4o", messages=USER)
        accepted.accept(by="alice")
    with runtrace.run("sdk looping", project="support", owner="bob") as looping:
        for _ in range(3):
            read_file("same.py")
        client.chat.completions.create(model="my-local-llm", messages=USER)
    runtrace.record_outcome(looping.id, "rejected", by="ci", reason="red build")

    records = records_from_sdk(instrumented.spans())
    ch = ClickHouse(tmp_path / "chdb")
    try:
        for statement in split_sql(prices.to_clickhouse_sql(prices.price_rows())):
            ch.execute(statement)
        insert_spans(ch, records[: len(records) // 2])
        insert_spans(ch, records[len(records) // 2:], old_spelling=True)
        mine = {r["run_id"]: r for r in ch.rows("SELECT * FROM otel.runtrace_runs_v")}
    finally:
        ch.close()
    with instrumented.open_store() as store:
        theirs = {r["id"]: r for r in list_runs(store, limit=0)}

    assert sorted(mine) == sorted(theirs) == sorted([accepted.id, looping.id])
    for run_id, run in mine.items():
        for field in FIELDS:
            assert run[field] == theirs[run_id][field], (run_id, field)
        assert run["cost_usd"] == pytest.approx(theirs[run_id]["cost_usd"], abs=1e-12)
    # hand-computed: two gpt-4o calls of 1200 input (200 cached) and 300 output at
    # $2.50 / $1.25 / $10 per million = 2 x (1000*2.5 + 200*1.25 + 300*10) / 1e6
    a = mine[accepted.id]
    assert (a["llm_calls"], a["input_tokens"], a["cached_input_tokens"], a["output_tokens"]) == (2, 2400, 400, 600)
    assert a["cost_usd"] == pytest.approx(0.0115, abs=1e-12)
    assert (a["outcome"], a["outcome_by"], a["tool_calls"], a["service"]) == ("accepted", "alice", 2, "test-agent")
    b = mine[looping.id]
    assert (b["outcome"], b["outcome_by"], b["outcome_reason"]) == ("rejected", "ci", "red build")
    assert (b["unpriced_calls"], b["cost_usd"], b["tool_calls"], b["loop_detected"]) == (1, 0, 3, True)
