"""Four instrumented processes writing one store at once: nothing lost, nothing doubled, totals exact.

Each process runs 500 runs of 20 calls (2 openai chat calls over a mock
transport, whose usage depends on the run, and 18 ``@runtrace.tool`` reads of
which some repeat) with the default batch processor, into the same SQLite
file, created by whichever process gets there first. Each reports what it
sent: per run, the live figures runtrace kept in that process. The store must
hold every span exactly once and every run with exactly those totals.

The SDK's BatchSpanProcessor drops spans once its queue is full; with the
SDK's default (2,048) four writers on two cores reached it while they waited
for SQLite's write lock and lost about 15% of the spans. runtrace's store
processor therefore has a deeper queue (``_setup.STORE_QUEUE_SIZE``), and this
test runs with runtrace's defaults: nothing may be dropped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runtrace import semconv as sc
from runtrace.store.db import Store

SRC = Path(__file__).resolve().parent.parent / "src"
TESTS = Path(__file__).resolve().parent
PROCESSES, RUNS, LLM_CALLS, TOOL_CALLS = 4, 500, 2, 18
SPANS_PER_RUN = 1 + LLM_CALLS + TOOL_CALLS
PROCESS_LIMIT_S = 600  # liveness guard only

CHILD = textwrap.dedent("""
    import json, sys
    sys.path[:0] = [{src!r}, {tests!r}]
    import runtrace
    from llm_fakes import ChatUsage, FakeLLM, chat_completion, json_reply

    runtrace.instrument(service_name="writer-{n}", store={store!r})

    def answer(body):
        size = len(body["messages"][0]["content"])  # usage follows the request, so runs differ
        return json_reply(chat_completion(model="gpt-4o-mini", usage=ChatUsage(100 + size, 7 + size % 5)))

    client = FakeLLM(default=answer).openai()

    @runtrace.tool
    def read_file(path):
        return "contents of " + path

    sent = []
    for r in range({runs}):
        with runtrace.run(f"writer {n} run {{r}}", project="load", owner="p{n}") as run:
            for c in range({llm_calls}):
                client.chat.completions.create(model="gpt-4o-mini",
                                               messages=[{{"role": "user", "content": "x" * (r % 17 + c)}}])
            for t in range({tool_calls}):
                read_file(path=f"src/file_{{t % (3 + r % 5)}}.py")  # repeats: repeated reads
            run.accept()
        sent.append(run.figures())
    runtrace.uninstrument()  # flushes the batch processor
    with open({out!r}, "w") as f:
        json.dump(sent, f)
""")


@pytest.mark.slow
def test_four_processes_writing_one_store_lose_and_double_nothing(tmp_path: Path) -> None:
    store_path = tmp_path / "shared.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RUNTRACE_"))}
    env["PYTHONPATH"] = str(SRC)
    procs = []
    for n in range(PROCESSES):
        script = tmp_path / f"writer_{n}.py"
        script.write_text(CHILD.format(src=str(SRC), tests=str(TESTS), store=str(store_path), n=n, runs=RUNS,
                                       llm_calls=LLM_CALLS, tool_calls=TOOL_CALLS,
                                       out=str(tmp_path / f"sent_{n}.json")))
        procs.append(subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True, env=env))
    for proc in procs:
        _, err = proc.communicate(timeout=PROCESS_LIMIT_S)
        assert proc.returncode == 0, err[-3000:]
        for trouble in ("runtrace: internal error", "could not store", "Queue full"):
            assert trouble not in err, err[-3000:]

    sent = {}
    for n in range(PROCESSES):
        for figures in json.loads((tmp_path / f"sent_{n}.json").read_text()):
            sent[figures["id"]] = figures
    assert len(sent) == PROCESSES * RUNS

    with Store.open(store_path, create=False) as store:
        assert store.count_spans() == PROCESSES * RUNS * SPANS_PER_RUN
        assert store.execute("SELECT count(*) FROM (SELECT DISTINCT trace_id, span_id FROM spans)")[0][0] \
            == PROCESSES * RUNS * SPANS_PER_RUN
        rows = {r["id"]: r for r in store.execute(
            "SELECT id, outcome, span_count, llm_calls, tool_calls, input_tokens, output_tokens, "
            "repeated_reads, unpriced_calls, cost_nusd, has_run_span FROM runs")}
        per_run_spans = dict(store.execute("SELECT run_id, count(*) FROM spans GROUP BY run_id"))
    assert set(rows) == set(sent)
    repeated = 0
    for run_id, figures in sent.items():
        row = rows[run_id]
        assert (row["outcome"], row["has_run_span"], row["span_count"], per_run_spans[run_id]) == (
            sc.OUTCOME_ACCEPTED, 1, SPANS_PER_RUN, SPANS_PER_RUN), run_id
        assert (row["llm_calls"], row["tool_calls"], row["input_tokens"], row["output_tokens"],
                row["repeated_reads"], row["unpriced_calls"]) == (
            figures["llm_calls"], figures["tool_calls"], figures["input_tokens"], figures["output_tokens"],
            figures["repeated_reads"], figures["unpriced_calls"]), run_id
        assert row["cost_nusd"] / 1e9 == pytest.approx(figures["cost_usd"], abs=1e-9), run_id
        repeated += row["repeated_reads"]
    assert repeated > 0  # the repeated-read totals were exercised, not all zero
