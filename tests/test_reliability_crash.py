"""``kill -9`` of an instrumented process in the middle of a run.

The child is a real program: ``runtrace.instrument()`` into a store file, then
openai calls over a mock transport and ``@runtrace.tool`` calls inside a run
that never ends, because the parent kills the child with SIGKILL (no atexit,
no flush, no run span). What the batch processor had flushed must be in the
store, the run must show as ``unfinished``, and its totals must be exactly
those of the flushed calls; a write cut by the kill must leave the file
consistent (each batch's spans and their run contribution commit together).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from runtrace import semconv as sc
from runtrace.store.db import Store
from runtrace.store.queries import get_run

SRC = Path(__file__).resolve().parent.parent / "src"
TESTS = Path(__file__).resolve().parent
LINE_LIMIT_S = 120  # liveness guard for reading the child's output, not a timing assertion

CHILD = textwrap.dedent("""
    import json, os, sys, time
    sys.path[:0] = [{src!r}, {tests!r}]
    import runtrace
    from llm_fakes import ChatUsage, FakeLLM, chat_completion, json_reply

    runtrace.instrument(service_name="crashy-agent", store={store!r})
    fake = FakeLLM(default=json_reply(chat_completion(model="gpt-4o-mini",
                                                      usage=ChatUsage(100, 10, cached_tokens=50))))
    client = fake.openai()

    @runtrace.tool
    def read_file(path):
        return "contents of " + path

    def step(i):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": f"step {{i}}"}}])
        read_file(path=f"src/file_{{i}}.py")

    with runtrace.run("doomed", project="crash", owner="ci") as run:
        mode = {mode!r}
        if mode == "flush_then_wait":
            for i in range({flushed}):
                step(i)
            assert runtrace.flush()
            print(json.dumps({{"run_id": run.id, **run.figures()}}), flush=True)
            for i in range({flushed}, {flushed} + 7):
                step(i)  # made, never exported: the schedule delay is an hour
            print("unflushed", flush=True)
        else:  # keep writing until killed, reporting what was flushed so far
            i = 0
            while True:
                step(i)
                i += 1
                if i % 10 == 0:
                    runtrace.flush()
                    print(json.dumps({{"run_id": run.id, **run.figures()}}), flush=True)
        time.sleep(3600)
""")


def _child_env(schedule_delay_ms: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RUNTRACE_"))}
    env["OTEL_BSP_SCHEDULE_DELAY"] = str(schedule_delay_ms)
    env["PYTHONPATH"] = str(SRC)
    return env


def _start(tmp_path: Path, mode: str, flushed: int, schedule_delay_ms: int) -> tuple[subprocess.Popen[str], Path]:
    store = tmp_path / "runtrace.db"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(src=str(SRC), tests=str(TESTS), store=str(store), mode=mode,
                                   flushed=flushed))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_child_env(schedule_delay_ms))
    return proc, store


def _line(proc: subprocess.Popen[str]) -> str:
    assert isinstance(proc.stdout, io.TextIOWrapper)  # Popen(stdout=PIPE, text=True)
    line = proc.stdout.readline()
    if not line:
        _, err = proc.communicate(timeout=LINE_LIMIT_S)
        pytest.fail(f"the child exited ({proc.returncode}) before reporting:\n{err[-3000:]}")
    return line.strip()


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=LINE_LIMIT_S)
    assert proc.returncode == -signal.SIGKILL
    if proc.stdout:
        proc.stdout.close()
    if proc.stderr:
        proc.stderr.close()


def _run_from_spans(store: Store, run_id: str) -> dict[str, Any]:
    """The run's totals recomputed from its stored spans alone."""
    row = store.execute(
        "SELECT count(*), sum(kind = 'llm'), sum(kind = 'tool'), sum(coalesce(input_tokens, 0)), "
        "sum(coalesce(output_tokens, 0)), sum(coalesce(cached_input_tokens, 0)), "
        "sum(coalesce(cost_usd, 0)) FROM spans WHERE run_id = ?", (run_id,))[0]
    return {"span_count": row[0], "llm_calls": row[1], "tool_calls": row[2], "input_tokens": row[3],
            "output_tokens": row[4], "cached_input_tokens": row[5], "cost_usd": row[6]}


def test_after_kill_9_the_flushed_spans_are_stored_and_the_run_is_unfinished_with_their_totals(
        tmp_path: Path) -> None:
    flushed = 12
    proc, store_path = _start(tmp_path, "flush_then_wait", flushed, schedule_delay_ms=3_600_000)
    try:
        reported = json.loads(_line(proc))
        assert _line(proc) == "unflushed"  # 7 more calls made, held in the batch processor
    finally:
        _kill(proc)
    assert reported["llm_calls"] == flushed and reported["tool_calls"] == flushed

    with Store.open(store_path, create=False) as store:
        assert store.execute("PRAGMA integrity_check")[0][0] == "ok"
        run = get_run(store, reported["run_id"])
        assert run is not None and run["id"] == reported["run_id"]
        assert store.count_spans() == 2 * flushed  # exactly what was flushed: no run span, nothing later
        from_spans = _run_from_spans(store, run["id"])
    assert run["outcome"] == sc.OUTCOME_UNFINISHED
    assert run["has_run_span"] is False and run["ended_at"] is None
    assert (run["llm_calls"], run["tool_calls"], run["input_tokens"], run["output_tokens"],
            run["cached_input_tokens"], run["unpriced_calls"], run["span_count"]) == (
        flushed, flushed, 100 * flushed, 10 * flushed, 50 * flushed, 0, 2 * flushed)
    assert run["cost_usd"] == pytest.approx(reported["cost_usd"], abs=1e-12)
    # gpt-4o-mini: $0.15 in, $0.075 cached, $0.60 out per million tokens.
    assert run["cost_usd"] == pytest.approx(flushed * (50 * 0.15 + 50 * 0.075 + 10 * 0.6) / 1e6, abs=1e-12)
    assert from_spans["span_count"] == run["span_count"]
    assert from_spans["llm_calls"] == run["llm_calls"]


def test_a_kill_9_during_continuous_writes_leaves_runs_consistent_with_their_spans(tmp_path: Path) -> None:
    """Killed while exporting every 2 ms: whatever batch the kill cut is absent whole, never half."""
    proc, store_path = _start(tmp_path, "continuous", 0, schedule_delay_ms=2)
    try:
        last = {}
        for _ in range(4):  # at least 40 calls flushed, and the exporter busy when the kill lands
            last = json.loads(_line(proc))
    finally:
        _kill(proc)

    with Store.open(store_path, create=False) as store:
        assert store.execute("PRAGMA integrity_check")[0][0] == "ok"
        run = get_run(store, last["run_id"])
        assert run is not None and run["id"] == last["run_id"]
        from_spans = _run_from_spans(store, run["id"])
    assert run["outcome"] == sc.OUTCOME_UNFINISHED
    assert run["llm_calls"] >= last["llm_calls"] and run["tool_calls"] >= last["tool_calls"]
    # The run row and the span rows were committed together, batch by batch.
    for key in ("span_count", "llm_calls", "tool_calls", "input_tokens", "output_tokens", "cached_input_tokens"):
        assert run[key] == from_spans[key], key
    assert run["input_tokens"] == 100 * run["llm_calls"]
    assert run["cost_usd"] == pytest.approx(from_spans["cost_usd"], abs=1e-12)


def test_after_kill_9_the_unfinished_run_keeps_its_name_project_and_owner(tmp_path: Path) -> None:
    """Issue 9, item 15b: only the run span carried them, and a killed run never sends it."""
    proc, store_path = _start(tmp_path, "flush_then_wait", 3, schedule_delay_ms=3_600_000)
    try:
        reported = json.loads(_line(proc))
        assert _line(proc) == "unflushed"
    finally:
        _kill(proc)
    with Store.open(store_path, create=False) as store:
        run = get_run(store, reported["run_id"])
        named = store.execute("SELECT count(*) FROM spans WHERE run_id = ? AND attributes LIKE ?",
                              (reported["run_id"], '%"runtrace.run.name"%'))[0][0]
    assert run is not None and run["id"] == reported["run_id"]
    assert (run["outcome"], run["name"], run["project"], run["owner"], run["service"]) == (
        sc.OUTCOME_UNFINISHED, "doomed", "crash", "ci", "crashy-agent")
    assert named == 1  # the first span only: it had ended before the next one started
