"""Each model call counted once when spans carrying usage are nested (issue 12 item 3).

Real SQLite files through the one ingest path. The rule: an LLM span counts
only if no stored descendant carries usage; a span marked
``runtrace.duplicate_of`` is stored and never counts. Whatever the arrival
order and batching, the run totals equal the rule applied to the full set
(hypothesis, last test).
"""

from __future__ import annotations

import random
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtrace import semconv as sc
from runtrace.store.db import Store
from runtrace.store.queries import get_run
from runtrace.store.records import SpanRecord
from store_helpers import llm, span, trace_of

RUN = "nested"


def wrapper(n: int, parent: int | None = None, **usage: int) -> SpanRecord:
    """OpenLLMetry-style span over the SDK call: deprecated names, no cost (priced at ingest)."""
    attrs = {sc.GEN_AI_SYSTEM: "openai", sc.OPENLLMETRY_REQUEST_TYPE: "chat", sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
             **usage}
    return span(RUN, n, start_s=0, end_s=3, name="openai.chat", attrs=attrs, parent=parent, kind="CLIENT")


def totals(path: Path, *batches: list[SpanRecord], run_id: str = RUN) -> tuple[dict[str, Any], dict[str, int]]:
    with Store.open(path) as store:
        for batch in batches:
            store.ingest(batch)
        run = get_run(store, run_id)
    assert run is not None
    with sqlite3.connect(path) as conn:
        counted = {row[0]: row[1] for row in conn.execute("SELECT span_id, counted FROM spans")}
    return run, counted


def figures(run: dict[str, Any]) -> tuple[int, int, int, float, int]:
    return run["llm_calls"], run["input_tokens"], run["output_tokens"], run["cost_usd"], run["unpriced_calls"]


def test_wrapper_over_runtrace_span_counts_the_call_once_in_both_orders(tmp_path: Path) -> None:
    outer = wrapper(1, **{sc.GEN_AI_USAGE_PROMPT_TOKENS: 12_000, sc.GEN_AI_USAGE_COMPLETION_TOKENS: 900})
    inner = llm(RUN, 2, start_s=1, end_s=2, model="gpt-4o", input_tokens=12_000, output_tokens=900,
                cost=0.039, parent=1)
    first, first_counted = totals(tmp_path / "a.db", [inner], [outer])
    second, second_counted = totals(tmp_path / "b.db", [outer], [inner])
    together, together_counted = totals(tmp_path / "c.db", [outer, inner])
    assert figures(first) == figures(second) == figures(together) == (1, 12_000, 900, 0.039, 0)
    assert first_counted == second_counted == together_counted == {f"{1:016x}": 0, f"{2:016x}": 1}
    assert first["models"] == second["models"]
    assert len(first["spans"]) == 2  # the wrapper stays in the trace
    assert {s["span_id"]: s["counted"] for s in first["spans"]} == {f"{1:016x}": False, f"{2:016x}": True}


def test_vercel_aggregate_over_its_steps_counts_the_steps(tmp_path: Path) -> None:
    def vercel(n: int, operation: str, parent: int | None, prompt: int, completion: int) -> SpanRecord:
        attrs = {sc.VERCEL_OPERATION_ID: operation, sc.VERCEL_MODEL_ID: "gpt-4o",
                 sc.VERCEL_MODEL_PROVIDER: "openai.chat", sc.VERCEL_PROMPT_TOKENS: prompt,
                 sc.VERCEL_COMPLETION_TOKENS: completion}
        return span(RUN, n, start_s=0, end_s=1, name=operation, attrs=attrs, parent=parent)

    top = vercel(1, "ai.generateText", None, 3_000, 300)
    steps = [vercel(2, "ai.generateText.doGenerate", 1, 1_000, 100),
             vercel(3, "ai.generateText.doGenerate", 1, 2_000, 200)]
    for i, batches in enumerate((([top], [*steps]), ([*steps], [top]), ([steps[0]], [top], [steps[1]]))):
        run, counted = totals(tmp_path / f"v{i}.db", *batches)  # type: ignore[arg-type]
        # gpt-4o: 3,000 in at $2.50/M + 300 out at $10/M
        assert figures(run) == (2, 3_000, 300, 0.0105, 0), batches
        assert counted == {f"{1:016x}": 0, f"{2:016x}": 1, f"{3:016x}": 1}


def test_gap_filled_last_uncounts_the_outer_span(tmp_path: Path) -> None:
    # A (usage) -> B (no usage) -> C (usage), arriving C, A, B: only B links them.
    a = wrapper(1, **{sc.GEN_AI_USAGE_PROMPT_TOKENS: 1_000, sc.GEN_AI_USAGE_COMPLETION_TOKENS: 100})
    b = span(RUN, 2, start_s=0, end_s=3, name="agent step", parent=1)
    c = llm(RUN, 3, start_s=1, end_s=2, model="gpt-4o", input_tokens=1_000, output_tokens=100, cost=0.0035,
            parent=2)
    run, counted = totals(tmp_path / "gap.db", [c], [a])
    assert figures(run)[0] == 2  # not linked yet: both count
    run, counted = totals(tmp_path / "gap.db", [b])
    assert figures(run) == (1, 1_000, 100, 0.0035, 0)
    assert counted == {f"{1:016x}": 0, f"{2:016x}": 0, f"{3:016x}": 1}


def test_duplicate_inside_runtrace_span_is_stored_and_never_counted(tmp_path: Path) -> None:
    # In-process: another SDK's span started inside runtrace's LLM span, marked by the span processor.
    ours = llm(RUN, 1, start_s=0, end_s=3, model="gpt-4o", input_tokens=12_000, output_tokens=900, cost=0.039)
    theirs = wrapper(2, parent=1, **{sc.GEN_AI_USAGE_PROMPT_TOKENS: 12_000,
                                     sc.GEN_AI_USAGE_COMPLETION_TOKENS: 900, sc.DUPLICATE_OF: f"{1:016x}"})
    for name, batches in (("a", ([theirs], [ours])), ("b", ([ours], [theirs])), ("c", ([ours, theirs],))):
        run, counted = totals(tmp_path / f"{name}.db", *batches)
        assert figures(run) == (1, 12_000, 900, 0.039, 0)
        assert counted == {f"{1:016x}": 1, f"{2:016x}": 0}
        assert {s["span_id"] for s in run["spans"]} == {f"{1:016x}", f"{2:016x}"}


def test_separate_calls_under_one_agent_span_all_count(tmp_path: Path) -> None:
    agent = span(RUN, 1, start_s=0, end_s=9, name="invoke_agent", attrs={sc.GEN_AI_OPERATION_NAME: "invoke_agent",
                                                                     sc.GEN_AI_USAGE_INPUT_TOKENS: 2_000})
    calls = [llm(RUN, n, start_s=n, end_s=n + 1, model="gpt-4o", input_tokens=1_000, output_tokens=100,
                 cost=0.0035, parent=1) for n in (2, 3)]
    run, _ = totals(tmp_path / "agent.db", [calls[0]], [agent], [calls[1]])
    assert figures(run) == (2, 2_000, 200, 0.007, 0)


# --- commutativity: any order and batching of a random forest ------------------------------

NodeSpec = tuple[int, int, bool, bool, bool]  # (trace, parent index or -1, is llm, has usage, duplicate)


@st.composite
def forests(draw: st.DrawFn) -> list[NodeSpec]:
    size = draw(st.integers(1, 14))
    nodes: list[NodeSpec] = []
    for i in range(size):
        parent = draw(st.integers(-1, i - 1)) if i else -1
        trace = nodes[parent][0] if parent >= 0 else draw(st.integers(0, 1))
        is_llm = draw(st.booleans())
        nodes.append((trace, parent, is_llm, is_llm and draw(st.booleans()), is_llm and draw(st.integers(0, 5)) == 0))
    return nodes


def build(nodes: list[NodeSpec]) -> list[SpanRecord]:
    records = []
    for i, (trace, parent, is_llm, usage, duplicate) in enumerate(nodes):
        n, p = i + 1, (parent + 1 if parent >= 0 else None)
        tid = trace_of(f"t{trace}")
        if not is_llm:
            records.append(span(RUN, n, start_s=i, end_s=i + 1, parent=p, trace_id=tid))
            continue
        extra = {sc.DUPLICATE_OF: "00000000000000aa"} if duplicate else {}
        record = llm(RUN, n, start_s=i, end_s=i + 1, model="gpt-4o", input_tokens=100 * n, output_tokens=n,
                     cost=n / 1000, parent=p, trace_id=tid, attrs=extra)
        if not usage:
            attrs = {k: v for k, v in record.attributes.items()
                     if k not in (sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_OUTPUT_TOKENS)}
            record = span(RUN, n, start_s=i, end_s=i + 1, parent=p, trace_id=tid, attrs=attrs, kind="CLIENT")
        records.append(record)
    return records


def expected(nodes: list[NodeSpec]) -> tuple[int, int, int, int, dict[str, int]]:
    """The rule on the full set: eligible and no usage span (non-duplicate) strictly below."""
    usage = [is_llm and u and not d for _, _, is_llm, u, d in nodes]
    below = [False] * len(nodes)
    for i in range(len(nodes)):
        if usage[i]:
            p = nodes[i][1]
            while p >= 0:
                below[p] = True
                p = nodes[p][1]
    calls = input_tokens = output_tokens = cost_milli = 0
    counted = {f"{i + 1:016x}": int(is_llm and not d and not below[i]) for i, (_, _, is_llm, _, d) in enumerate(nodes)}
    for i, (_, _, is_llm, u, d) in enumerate(nodes):
        if is_llm and not d and not below[i]:
            n = i + 1
            calls += 1
            input_tokens += 100 * n if u else 0
            output_tokens += n if u else 0
            cost_milli += n
    return calls, input_tokens, output_tokens, cost_milli, counted


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(forests(), st.randoms(use_true_random=False), st.integers(1, 5))
def test_any_order_and_batching_gives_the_innermost_totals(nodes: list[NodeSpec], rnd: random.Random,
                                                           n_batches: int) -> None:
    records = build(nodes)
    rnd.shuffle(records)
    cuts = sorted(rnd.sample(range(1, len(records)), min(n_batches - 1, len(records) - 1)))
    batches = [records[a:b] for a, b in zip([0, *cuts], [*cuts, len(records)], strict=True)]
    with tempfile.TemporaryDirectory() as tmp:
        run, counted = totals(Path(tmp) / "h.db", *batches)
    calls, input_tokens, output_tokens, cost_milli, want_counted = expected(nodes)
    assert counted == want_counted
    assert (run["llm_calls"], run["input_tokens"], run["output_tokens"]) == (calls, input_tokens, output_tokens)
    assert round(run["cost_usd"] * 1000) == cost_milli
    assert sum(m["llm_calls"] for m in run["models"]) == calls


# --- in-process: another instrumentation's span over runtrace's own ------------------------


def test_in_process_wrapper_span_over_runtrace_llm_span_counts_once(instrumented: Any) -> None:
    """pydantic-ai / OpenLLMetry style: a foreign span with usage wraps the client call runtrace records."""
    from opentelemetry import trace

    import runtrace
    from llm_fakes import ChatUsage, FakeLLM, chat_completion, json_reply
    from runtrace.store import queries

    fake = FakeLLM([json_reply(chat_completion(usage=ChatUsage(12_000, 900, 8_000, 300)))])
    foreign = trace.get_tracer("opentelemetry.instrumentation.openai.v1")
    with runtrace.run("wrapped") as run:
        with foreign.start_as_current_span("openai.chat", kind=trace.SpanKind.CLIENT) as outer:
            fake.openai().chat.completions.create(model="gpt-5.5", messages=[{"role": "user", "content": "hi"}])
            outer.set_attributes({sc.GEN_AI_SYSTEM: "openai", sc.OPENLLMETRY_REQUEST_TYPE: "chat",
                                  sc.GEN_AI_REQUEST_MODEL: "gpt-5.5", sc.GEN_AI_USAGE_PROMPT_TOKENS: 12_000,
                                  sc.GEN_AI_USAGE_COMPLETION_TOKENS: 900})
    store = instrumented.open_store()
    try:
        stored = queries.get_run(store, run.id)
    finally:
        store.close()
    assert stored is not None
    # runtrace's span is the inner one and wins; the wrapper stays in the trace, uncounted
    assert (stored["llm_calls"], stored["input_tokens"], stored["cached_input_tokens"],
            stored["output_tokens"]) == (1, 12_000, 8_000, 900)
    assert stored["cost_usd"] == 0.051
    names = sorted(s["name"] for s in stored["spans"] if s["kind"] == "llm")
    assert names == ["chat gpt-5.5", "openai.chat"]


def test_a_version_1_file_keeps_its_counts_and_then_follows_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    outer = wrapper(1, **{sc.GEN_AI_USAGE_PROMPT_TOKENS: 1_000, sc.GEN_AI_USAGE_COMPLETION_TOKENS: 100})
    tool_span = span(RUN, 2, start_s=0, end_s=1, parent=1, name="step")
    with Store.open(path) as store:
        store.ingest([outer, tool_span])
    conn = sqlite3.connect(path, isolation_level=None)
    try:  # back to exactly what runtrace wrote before migration 2
        conn.execute("DROP INDEX spans_usage_parent")
        conn.execute("ALTER TABLE spans DROP COLUMN usage_below")
        conn.execute("ALTER TABLE spans DROP COLUMN counted")
        conn.execute("ALTER TABLE runs DROP COLUMN refused_tool_calls")  # migration 3's columns
        conn.execute("ALTER TABLE runs DROP COLUMN agent_cost_nusd")
        conn.execute("DROP TABLE alerts")  # migration 4's
        conn.execute("DROP TABLE alert_cursor")
        for (trigger,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f"DROP TRIGGER {trigger}")  # migration 5's search index and report rollup
        conn.execute("DROP TABLE span_search")
        conn.execute("DROP TABLE report_rollup")
        conn.execute("ALTER TABLE runs DROP COLUMN api_errors")  # migration 6's
        conn.execute("ALTER TABLE runs DROP COLUMN tool_errors")
        conn.execute("DROP INDEX spans_notable")  # migration 7's (it also widens spans_run_start)
        conn.execute("DROP TABLE cap_reservations")  # migration 8's (its indexes go with it)
        conn.execute("PRAGMA user_version = 1")
    finally:
        conn.close()
    run, counted = totals(path)
    assert counted == {f"{1:016x}": 1, f"{2:016x}": 0}
    assert figures(run) == (1, 1_000, 100, 0.0035, 0)
    # a call nested below the old wrapper arrives: the wrapper is uncounted, the call counted once
    run, counted = totals(path, [llm(RUN, 3, start_s=0, end_s=1, model="gpt-4o", input_tokens=1_000,
                                     output_tokens=100, cost=0.0035, parent=2)])
    assert figures(run) == (1, 1_000, 100, 0.0035, 0)
    assert counted == {f"{1:016x}": 0, f"{2:016x}": 0, f"{3:016x}": 1}
