"""Runs, outcomes, budgets and detectors, end to end into a real store file."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading

import pytest

import runtrace
from runtrace import _config, semconv
from runtrace.store.queries import get_run, list_runs


def run_row(instrumented, run_id: str) -> dict:
    store = instrumented.open_store()
    try:
        row = get_run(store, run_id)
    finally:
        store.close()
    assert row is not None, f"run {run_id} not in the store"
    return row


@pytest.fixture
def read_file():
    files = {"a.py": "print('a')\n" * 10, "b.py": "print('b')\n"}
    calls: list[str] = []

    @runtrace.tool
    def read_file(path: str) -> str:
        """Read a file."""
        calls.append(path)
        return files[path]

    read_file.files = files  # type: ignore[attr-defined]
    read_file.calls = calls  # type: ignore[attr-defined]
    return read_file


def test_verdicts_and_errors_become_outcomes(instrumented) -> None:
    with runtrace.run("a", project="p", owner="alice") as accepted:
        accepted.accept(by="ci")
    with runtrace.run("r") as rejected:
        rejected.reject("wrong fix", by="bob")
    with runtrace.run("ab") as abandoned:
        abandoned.abandon("superseded")
    with runtrace.run("o") as open_run:
        pass
    with pytest.raises(KeyError), runtrace.run("e") as errored:
        raise KeyError("boom")

    rows = {r["id"]: r for r in list_runs(instrumented.open_store(), limit=0)}
    assert rows[accepted.id]["outcome"] == "accepted"
    assert rows[accepted.id]["outcome_by"] == "ci"
    assert rows[accepted.id]["project"] == "p" and rows[accepted.id]["owner"] == "alice"
    assert rows[accepted.id]["service"] == "test-agent"
    assert (rows[rejected.id]["outcome"], rows[rejected.id]["outcome_reason"]) == ("rejected", "wrong fix")
    assert (rows[abandoned.id]["outcome"], rows[abandoned.id]["outcome_reason"]) == ("abandoned", "superseded")
    assert rows[open_run.id]["outcome"] == "open"
    assert rows[errored.id]["outcome"] == "error"
    run_span = next(s for s in instrumented.spans() if s.attributes[semconv.RUN_ID] == errored.id)
    assert run_span.attributes[semconv.ERROR_TYPE] == "KeyError"
    assert run_span.status.status_code.name == "ERROR"


def test_late_verdict_overrides_the_run_and_is_recorded_with_who_and_why(instrumented) -> None:
    with runtrace.run("fix #412") as run:
        run.accept()
    runtrace.record_outcome(run.id, "rejected", by="reviewer", reason="reverted after deploy")
    row = run_row(instrumented, run.id)
    assert row["outcome"] == "rejected"
    assert row["outcome_by"] == "reviewer"
    assert row["outcome_reason"] == "reverted after deploy"
    outcome_span = [s for s in instrumented.spans() if s.name == "run.outcome"]
    assert len(outcome_span) == 1 and outcome_span[0].parent is None
    with pytest.raises(ValueError, match="outcome must be one of"):
        runtrace.record_outcome(run.id, "merged")


def test_every_span_in_a_run_carries_its_id_and_none_outside(instrumented, read_file) -> None:
    read_file("b.py")
    with runtrace.run("r") as run:
        read_file("a.py")
        assert runtrace.current_run() is run
    assert runtrace.current_run() is None
    tools = [s for s in instrumented.spans() if s.name == "execute_tool read_file"]
    assert [s.attributes.get(semconv.RUN_ID) for s in tools] == [None, run.id]
    run_span = next(s for s in instrumented.spans() if s.name == "run r")
    assert tools[1].parent.span_id == run_span.context.span_id


def test_run_as_decorator_makes_a_run_per_call(instrumented, read_file) -> None:
    seen: list[str] = []

    @runtrace.run("nightly", project="ops")
    def job(path: str) -> str:
        seen.append(runtrace.current_run().id)
        return read_file(path)

    @runtrace.run("nightly-async")
    async def ajob() -> str:
        seen.append(runtrace.current_run().id)
        return "ok"

    job("a.py")
    job("b.py")
    asyncio.run(ajob())
    assert len(set(seen)) == 3
    rows = {r["id"]: r for r in list_runs(instrumented.open_store(), limit=0)}
    assert [rows[i]["tool_calls"] for i in seen] == [1, 1, 0]
    assert rows[seen[2]]["name"] == "nightly-async"


def test_threads_and_tasks_each_see_only_their_own_run(instrumented, read_file) -> None:
    ids: dict[int, str] = {}

    def worker(n: int) -> None:
        with runtrace.run(f"thread-{n}") as run:
            ids[n] = run.id
            for _ in range(n + 1):
                read_file("b.py")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    async def task(n: int) -> str:
        async with runtrace.run(f"task-{n}") as run:
            for _ in range(n + 1):
                read_file("a.py")
                await asyncio.sleep(0)
            return run.id

    async def main() -> list[str]:
        return await asyncio.gather(*(task(n) for n in range(8)))

    task_ids = asyncio.run(main())
    rows = {r["id"]: r for r in list_runs(instrumented.open_store(), limit=0)}
    assert [rows[ids[n]]["tool_calls"] for n in range(8)] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [rows[task_ids[n]]["tool_calls"] for n in range(8)] == [1, 2, 3, 4, 5, 6, 7, 8]
    by_run: dict[str, int] = {}
    for span in instrumented.spans():
        if span.name.startswith("execute_tool"):
            by_run[span.attributes[semconv.RUN_ID]] = by_run.get(span.attributes[semconv.RUN_ID], 0) + 1
    assert sorted(by_run.values()) == sorted(list(range(1, 9)) * 2)


def test_a_thread_inherits_the_run_only_when_the_context_is_copied(instrumented, read_file) -> None:
    with runtrace.run("parent") as run:
        seen: list[object] = []
        plain = threading.Thread(target=lambda: seen.append(runtrace.current_run()))
        plain.start()
        plain.join()
        ctx = contextvars.copy_context()
        copied = threading.Thread(target=lambda: ctx.run(lambda: seen.append(runtrace.current_run())))
        copied.start()
        copied.join()
    assert seen == [None, run]


def test_tool_budget_stops_before_the_tool_runs(instrumented, read_file) -> None:
    with pytest.raises(runtrace.BudgetExceeded) as info, \
            runtrace.run("budgeted", budget=runtrace.Budget(max_tool_calls=2)) as run:
        for _ in range(5):
            read_file("b.py")
    assert read_file.calls == ["b.py", "b.py"]
    assert info.value.limit == "max_tool_calls"
    assert info.value.figures["tool_calls"] == 2
    assert info.value.run_id == run.id
    row = run_row(instrumented, run.id)
    assert (row["outcome"], row["stop_reason"], row["tool_calls"]) == ("budget_stopped", "max_tool_calls", 2)


def test_warn_lets_every_call_through_records_events_and_logs_once(instrumented, read_file, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="runtrace")
    with runtrace.run("warned", budget=runtrace.Budget(max_tool_calls=1, on_exceed="warn")) as run:
        for _ in range(4):
            read_file("a.py")
    assert len(read_file.calls) == 4
    run_span = next(s for s in instrumented.spans() if s.name == "run warned")
    events = [e for e in run_span.events if e.name == semconv.EVENT_BUDGET]
    assert [(e.attributes[semconv.BUDGET_OBSERVED], e.attributes[semconv.BUDGET_ACTION]) for e in events] == \
        [(1.0, "continue"), (2.0, "continue"), (3.0, "continue")]
    assert len([r for r in caplog.records if "max_tool_calls" in r.getMessage()]) == 1
    assert run_row(instrumented, run.id)["outcome"] == "open"


def test_a_callback_decides_whether_the_run_goes_on(instrumented, read_file) -> None:
    decisions: list[tuple[str, float]] = []

    def decide(run: runtrace.Run, breach) -> str:
        decisions.append((breach.limit, breach.observed))
        return "continue" if breach.observed < 3 else "stop"

    with pytest.raises(runtrace.BudgetExceeded), \
            runtrace.run("cb", budget=runtrace.Budget(max_tool_calls=2, on_exceed=decide)):
        for _ in range(10):
            read_file("b.py")
    assert decisions == [("max_tool_calls", 2.0), ("max_tool_calls", 3.0)]
    assert len(read_file.calls) == 3


def test_loop_is_flagged_at_exactly_the_third_identical_call(instrumented, read_file) -> None:
    with runtrace.run("loopy") as run:
        read_file("a.py")
        read_file("a.py")
        assert run.totals.loop_detected is False
        read_file("a.py")
        assert run.totals.loop_detected is True
    tools = [s for s in instrumented.spans() if s.name == "execute_tool read_file"]
    assert [s.attributes.get(semconv.LOOP_DETECTED, False) for s in tools] == [False, False, True]
    loop_events = [e for e in tools[2].events if e.name == semconv.EVENT_LOOP]
    assert len(loop_events) == 1
    assert loop_events[0].attributes[semconv.LOOP_KIND] == "same_call"
    assert loop_events[0].attributes[semconv.LOOP_COUNT] == 3
    # Content capture is off: the sentences name the tool and counts, never the path it was given.
    assert loop_events[0].attributes[semconv.LOOP_DESCRIPTION] == (
        "read_file was called 3 times with the same arguments and returned the same result")
    assert [e.attributes[semconv.LOOP_DESCRIPTION] for s in tools for e in s.events
            if e.name == semconv.EVENT_REPEATED_READ] == [
        "read_file returned content identical to an earlier read (2 times so far)",
        "read_file returned content identical to an earlier read (3 times so far)"]
    row = run_row(instrumented, run.id)
    assert (row["loop_detected"], row["repeated_reads"], row["tool_calls"]) == (True, 2, 3)


def test_with_capture_on_the_sentences_name_the_arguments(instrumented, read_file, monkeypatch) -> None:
    monkeypatch.setattr(_config.settings(), "capture_content", True)
    with runtrace.run("loopy, captured"):
        for _ in range(3):
            read_file("a.py")
    tools = [s for s in instrumented.spans() if s.name == "execute_tool read_file"]
    assert [(e.name, e.attributes[semconv.LOOP_DESCRIPTION]) for s in tools for e in s.events] == [
        (semconv.EVENT_REPEATED_READ,
         "read_file(path='a.py') returned the same result as an earlier read (2 times so far)"),
        (semconv.EVENT_REPEATED_READ,
         "read_file(path='a.py') returned the same result as an earlier read (3 times so far)"),
        (semconv.EVENT_LOOP, "read_file(path='a.py') returned the same result 3 times")]


def test_an_edited_file_read_again_is_not_a_repeated_read(instrumented, read_file) -> None:
    with runtrace.run("edits") as run:
        read_file("b.py")
        read_file.files["b.py"] = "print('changed')\n"
        read_file("b.py")
        read_file("b.py")
    row = run_row(instrumented, run.id)
    assert (row["repeated_reads"], row["loop_detected"]) == (1, False)
    assert row["repeated_read_tokens"] == 5  # len("print('changed')\n") = 17 chars -> ceil(17/4)


def test_stop_on_loop_stops_the_next_call(instrumented, read_file) -> None:
    with pytest.raises(runtrace.BudgetExceeded) as info, \
            runtrace.run("stop", budget=runtrace.Budget(stop_on_loop=True)) as run:
        for _ in range(10):
            read_file("a.py")
    assert len(read_file.calls) == 3
    assert info.value.limit == "loop"
    row = run_row(instrumented, run.id)
    assert (row["outcome"], row["stop_reason"], row["loop_detected"]) == ("budget_stopped", "loop", True)


def test_tool_errors_are_recorded_and_reraised_unchanged(instrumented, read_file) -> None:
    with runtrace.run("missing") as run:
        with pytest.raises(KeyError):
            read_file("nope.py")
    span = next(s for s in instrumented.spans() if s.name == "execute_tool read_file")
    assert span.status.status_code.name == "ERROR"
    assert span.attributes[semconv.ERROR_TYPE] == "KeyError"
    assert run_row(instrumented, run.id)["tool_calls"] == 1


ORDER_ID = "ord-SECRET-77"  # a name, so the traceback's source lines show the name, not the value


def _raise_with_secret(order_id: str) -> str:
    raise ValueError(f"no order {order_id}")


def test_with_capture_off_an_exception_keeps_its_type_and_frames_not_its_message(instrumented) -> None:
    find_order = runtrace.tool(_raise_with_secret)
    with pytest.raises(ValueError), runtrace.run("errors"):
        find_order(ORDER_ID)
    tool, run_span = (next(s for s in instrumented.spans() if s.name == name)
                      for name in ("execute_tool _raise_with_secret", "run errors"))
    for span in (tool, run_span):
        assert (span.status.status_code.name, span.status.description) == ("ERROR", "ValueError")
        assert span.attributes[semconv.ERROR_TYPE] == "ValueError"
        (event,) = span.events
        assert event.name == "exception"
        assert set(event.attributes) == {"exception.type", "exception.stacktrace", "exception.escaped"}
        assert event.attributes["exception.type"] == "ValueError"
        trace_text = event.attributes["exception.stacktrace"]
        assert trace_text.startswith("Traceback (most recent call last):\n")
        assert trace_text.endswith("\nValueError\n")
        assert "_raise_with_secret" in trace_text and ORDER_ID not in trace_text


def test_with_capture_on_an_exception_keeps_its_message(instrumented, monkeypatch) -> None:
    monkeypatch.setattr(_config.settings(), "capture_content", True)
    find_order = runtrace.tool(_raise_with_secret)
    with pytest.raises(ValueError), runtrace.run("errors"):
        find_order(ORDER_ID)
    tool = next(s for s in instrumented.spans() if s.name == "execute_tool _raise_with_secret")
    assert tool.status.description == "ValueError: no order ord-SECRET-77"
    (event,) = tool.events
    assert event.attributes["exception.message"] == "no order ord-SECRET-77"


def test_tool_call_id_comes_from_the_argument(instrumented) -> None:
    @runtrace.tool(name="lookup")
    def lookup(key: str, tool_call_id: str | None = None) -> str:
        return key.upper()

    with runtrace.run("ids"):
        assert lookup("k", tool_call_id="call_7") == "K"
    span = next(s for s in instrumented.spans() if s.name == "execute_tool lookup")
    assert span.attributes[semconv.GEN_AI_TOOL_CALL_ID] == "call_7"
    assert span.attributes[semconv.GEN_AI_TOOL_NAME] == "lookup"
    assert semconv.GEN_AI_TOOL_CALL_ARGUMENTS not in span.attributes  # content capture is off


def test_async_tools_and_content_capture(tmp_path) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    runtrace.uninstrument()
    runtrace.instrument(store=tmp_path / "c.db", capture_content=True,
                        span_processors=(SimpleSpanProcessor(exporter),))
    try:
        @runtrace.tool
        async def fetch(url: str) -> dict:
            return {"url": url, "status": 200}

        async def main() -> None:
            async with runtrace.run("async"):
                await fetch("https://example.test/a")

        asyncio.run(main())
        runtrace.flush()
        span = next(s for s in exporter.get_finished_spans() if s.name == "execute_tool fetch")
        assert span.attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS] == '{"url":"https://example.test/a"}'
        assert span.attributes[semconv.GEN_AI_TOOL_CALL_RESULT] == '{"status":200,"url":"https://example.test/a"}'
    finally:
        runtrace.uninstrument()


def test_budget_rejects_bad_limits() -> None:
    with pytest.raises(ValueError, match="max_cost_usd must be a non-negative number"):
        runtrace.Budget(max_cost_usd=-1)
    with pytest.raises(ValueError, match="on_exceed"):
        runtrace.Budget(on_exceed="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty name"):
        runtrace.run("")


def test_run_span_carries_budget_and_totals(instrumented, read_file) -> None:
    with runtrace.run("t", budget=runtrace.Budget(max_cost_usd=2.0, max_seconds=600)) as run:
        read_file("a.py")
        read_file("a.py")
        run.accept()
    span = next(s for s in instrumented.spans() if s.name == "run t")
    a = span.attributes
    assert a[semconv.BUDGET_MAX_COST_USD] == 2.0 and a[semconv.BUDGET_MAX_SECONDS] == 600
    assert a[semconv.RUN_TOOL_CALLS] == 2 and a[semconv.RUN_REPEATED_READS] == 1
    assert a[semconv.RUN_OUTCOME] == "accepted" and a[semconv.RUN_COST_USD] == 0.0
