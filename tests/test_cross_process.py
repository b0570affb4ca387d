"""A run that spans two processes: the caller's run, a tool server's spans, one store."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry import propagate

import runtrace
from runtrace import semconv
from runtrace.store.queries import get_run

TESTS = Path(__file__).parent
SRC = TESTS.parent / "src"


@pytest.fixture
def tool_server(instrumented) -> Iterator[int]:
    """tests/tool_server.py in a subprocess writing to the same store; yields its port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RUNTRACE_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    proc = subprocess.Popen([sys.executable, str(TESTS / "tool_server.py"), str(instrumented.store_path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    try:
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"tool server did not start (exit code {proc.poll()}): {line!r}")
        yield int(line)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


def test_spans_of_a_tool_server_subprocess_join_the_callers_run(instrumented, tool_server):
    @runtrace.tool
    def remote_search(query: str) -> list[str]:
        headers: dict[str, str] = {}
        propagate.inject(headers)  # traceparent + baggage (with runtrace.run.id)
        response = httpx.post(f"http://127.0.0.1:{tool_server}/search", json={"query": query},
                              headers=headers, timeout=30)
        response.raise_for_status()
        return response.json()["hits"]

    with runtrace.run("cross-process", project="search", owner="alice") as run:
        first = remote_search("trac")
        second = remote_search("trac")
        run.accept()
    assert first == second == ["trace", "tracer", "track"]

    stored = get_run(instrumented.open_store(), run.id)
    spans = stored["spans"]
    by_name: dict[str, list[dict]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    assert {name: len(found) for name, found in by_name.items()} == {
        "run cross-process": 1, "execute_tool remote_search": 2, "POST /search": 2,
        "execute_tool search_index": 2}

    # Every span carries the run id: the subprocess's were stamped by its own RunStampProcessor
    # from the baggage header (nothing in that process knows the Run object).
    assert {s["attributes"][semconv.RUN_ID] for s in spans} == {run.id}
    (run_span,) = by_name["run cross-process"]
    assert {s["trace_id"] for s in spans} == {run_span["trace_id"]}
    assert {s["service"] for s in by_name["POST /search"] + by_name["execute_tool search_index"]} \
        == {"tool-server"}
    assert {s["service"] for s in by_name["execute_tool remote_search"]} == {"test-agent"}

    # Parenting crosses the process boundary: caller tool span -> server span -> server tool span.
    callers = sorted(by_name["execute_tool remote_search"], key=lambda s: s["start"])
    handlers = sorted(by_name["POST /search"], key=lambda s: s["start"])
    inner = sorted(by_name["execute_tool search_index"], key=lambda s: s["start"])
    assert [s["parent_span_id"] for s in callers] == [run_span["span_id"]] * 2
    assert [s["parent_span_id"] for s in handlers] == [s["span_id"] for s in callers]
    assert [s["parent_span_id"] for s in inner] == [s["span_id"] for s in handlers]
    assert [s["span_kind"] for s in handlers] == ["SERVER", "SERVER"]

    # The caller's process counted its own two tool calls (and its repeated read); the store
    # adds the subprocess's two. Detectors and budgets live in the process that owns the Run.
    assert run.totals.tool_calls == 2 and run.totals.repeated_reads == 1
    assert stored["tool_calls"] == 4
    assert stored["repeated_reads"] == 1
    assert stored["span_count"] == 7
    assert stored["outcome"] == "accepted" and stored["project"] == "search" and stored["owner"] == "alice"
