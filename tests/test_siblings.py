"""Each model call counted once when two instrumentations' spans of it are siblings (issue 12 item 3).

Real SQLite files through the one ingest path (store/siblings.py). Two usage
spans with the same parent, overlapping in time (0.1 s of slack), of the same
model family, from different scopes are one call: the span reporting tokens,
else runtrace's, else the SDK's own, else the lowest span id counts. Whatever
the arrival order and batching, the run totals equal those of ingesting every
span at once, and the hand count of the calls (hypothesis, last tests).
"""

from __future__ import annotations

import dataclasses
import random
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtrace import semconv as sc
from runtrace.store import siblings
from runtrace.store.model_family import SUFFIXES_RE2, model_family
from runtrace.store.records import SpanRecord
from store_helpers import llm, span
from test_innermost import figures
from test_innermost import totals as innermost_totals

RUN = "siblings"
SDK = "com.anthropic.sdk.python"
OLL = "opentelemetry.instrumentation.anthropic"
OPENLIT = "openlit.otel.tracing"
OURS = "runtrace.instrumentation.anthropic"
MS = 0.001


def call(n: int, scope: str, *, start_s: float, end_s: float, parent: int | None = 1, inp: int = 1_000,
         out: int = 100, model: str = "claude-sonnet-4-5", cost: float | None = None) -> SpanRecord:
    """One instrumentation's span of a model call (claude-sonnet-4-5: $3 in, $15 out per million)."""
    price = cost if cost is not None else (inp * 3 + out * 15) / 1e6
    record = llm(RUN, n, start_s=start_s, end_s=end_s, model=model, provider="anthropic", input_tokens=inp,
                 output_tokens=out, cost=price, parent=parent)
    return dataclasses.replace(record, scope_name=scope)


def agent(n: int = 1, start_s: float = 0, end_s: float = 100) -> SpanRecord:
    return span(RUN, n, start_s=start_s, end_s=end_s, name="agent")


def totals(path: Path, *batches: list[SpanRecord]) -> tuple[dict[str, Any], dict[str, int]]:
    """The run, and ``counted`` of each LLM span."""
    run, counted = innermost_totals(path, *batches, run_id=RUN)
    calls = {s["span_id"] for s in run["spans"] if s["kind"] == "llm"}
    return run, {span_id: flag for span_id, flag in counted.items() if span_id in calls}


def hexid(n: int) -> str:
    return f"{n:016x}"


def each_order(tmp_path: Path, records: list[SpanRecord]) -> list[tuple[dict[str, Any], dict[str, int]]]:
    """The totals for the spans one by one forwards, backwards, and all in one batch."""
    return [totals(tmp_path / "forwards.db", *([r] for r in records)),
            totals(tmp_path / "backwards.db", *([r] for r in reversed(records))),
            totals(tmp_path / "together.db", records)]


def test_the_sdk_span_beside_a_wrapper_counts_once_in_every_order(tmp_path: Path) -> None:
    # OpenLLMetry's span (started first, not made current) beside the anthropic SDK's own span
    wrapper = call(2, OLL, start_s=1, end_s=3, out=101)
    sdk = call(3, SDK, start_s=1.001, end_s=2.999, model="claude-sonnet-4-5-20250929")
    for run, counted in each_order(tmp_path, [agent(), wrapper, sdk]):
        # the SDK's own span: 1,000 in, 100 out = $0.0045, not the wrapper's 101 out
        assert figures(run) == (1, 1_000, 100, 0.0045, 0)
        assert counted == {hexid(2): 0, hexid(3): 1}
        assert {s["span_id"]: s["counted"] for s in run["spans"] if s["kind"] == "llm"} == {
            hexid(2): False, hexid(3): True}  # the wrapper stays in the trace, shown uncounted


def test_a_zero_token_wrapper_just_before_the_call_never_makes_it_unpriced(tmp_path: Path) -> None:
    # OpenLLMetry's span of beta.messages.stream(): 0 tokens, ended 0.26 ms before the SDK's span started
    wrapper = call(2, OLL, start_s=1, end_s=1.0005, inp=0, out=0, cost=0.0)
    sdk = call(9, SDK, start_s=1.00076, end_s=1.2)
    for run, counted in each_order(tmp_path, [agent(), wrapper, sdk]):
        assert figures(run) == (1, 1_000, 100, 0.0045, 0)
        assert counted == {hexid(2): 0, hexid(9): 1}


def test_runtrace_span_wins_over_the_sdk_span_beside_it(tmp_path: Path) -> None:
    ours = call(5, OURS, start_s=1, end_s=2)
    sdk = call(4, SDK, start_s=1, end_s=2, out=99)
    for run, counted in each_order(tmp_path, [agent(), sdk, ours]):
        assert figures(run) == (1, 1_000, 100, 0.0045, 0)
        assert counted == {hexid(4): 0, hexid(5): 1}


def test_two_wrappers_the_lowest_span_id_counts(tmp_path: Path) -> None:
    first = call(7, OPENLIT, start_s=1, end_s=2, out=90)
    second = call(6, OLL, start_s=1, end_s=2)
    for run, counted in each_order(tmp_path, [agent(), first, second]):
        assert figures(run) == (1, 1_000, 100, 0.0045, 0)
        assert counted == {hexid(6): 1, hexid(7): 0}


@pytest.mark.parametrize("other", [
    dict(scope=SDK, start_s=2, end_s=3),  # the same scope: two calls, never one
    dict(scope=OLL, start_s=2.2, end_s=3),  # 0.2 s apart: past the slack
    dict(scope=OLL, start_s=1, end_s=2, model="claude-haiku-4-5"),  # another model
    dict(scope=OLL, start_s=1, end_s=2, parent=None),  # not a sibling: no parent
    dict(scope=OLL, start_s=-0.5, end_s=9),  # overlapping, but started 1.5 s before
])
def test_spans_that_are_not_one_call_both_count(tmp_path: Path, other: dict[str, Any]) -> None:
    first = call(2, SDK, start_s=1, end_s=2)
    second = call(3, **other)
    run, counted = totals(tmp_path / "two.db", [agent()], [first], [second])
    assert run["llm_calls"] == 2
    assert counted == {hexid(2): 1, hexid(3): 1}


def test_concurrent_calls_of_one_model_keep_every_sdk_span(tmp_path: Path) -> None:
    """Two calls at once under one parent, each traced by both: the SDK's two spans count, neither wrapper."""
    spans = [call(2, OLL, start_s=1, end_s=3), call(3, OLL, start_s=1.1, end_s=3.1),
             call(4, SDK, start_s=1.01, end_s=2.99, inp=2_000), call(5, SDK, start_s=1.11, end_s=3.09, inp=3_000)]
    for run, counted in each_order(tmp_path, [agent(), *spans]):
        assert figures(run)[:3] == (2, 5_000, 200)
        assert counted == {hexid(2): 0, hexid(3): 0, hexid(4): 1, hexid(5): 1}


def test_a_span_over_both_siblings_is_uncounted_by_the_innermost_rule(tmp_path: Path) -> None:
    # pydantic-ai's span over the SDK's and OpenLLMetry's spans of the one request
    outer = call(2, "pydantic-ai", start_s=0.5, end_s=3.5)
    inner = [call(3, OLL, start_s=1, end_s=3), call(4, SDK, start_s=1, end_s=3, out=80, parent=2)]
    inner[0] = dataclasses.replace(inner[0], parent_span_id=hexid(2))
    for run, counted in each_order(tmp_path, [agent(), outer, *inner]):
        assert figures(run) == (1, 1_000, 80, 0.0042, 0)
        assert counted == {hexid(2): 0, hexid(3): 0, hexid(4): 1}


def test_the_sql_suffix_pattern_strips_what_model_family_strips() -> None:
    import re

    names = ["gpt-4o-2024-08-06", "claude-sonnet-4-20250514", "gpt-3.5-turbo-0125", "gemini-1.5-flash-001",
             "anthropic.claude-3-5-sonnet-20240620-v1:0", "gemini-2.0-flash-exp", "claude-3-5-sonnet-latest",
             "o1-preview-2024-09-12", "claude-sonnet-4-6", "gpt-4o", "mistral-large-2411", "gemini-exp-1206",
             "claude-opus-4-1@20250805", "gpt-4-0613"]
    pattern = re.compile(SUFFIXES_RE2)
    assert [pattern.sub("", name, count=1) for name in names] == [model_family(name) for name in names]


# --- commutativity: any order and batching of lone spans, nested pairs and sibling pairs ---

SHAPES = ("lone", "nested", "siblings", "zero-beside", "over-siblings")
SCOPES = (OURS, SDK, OLL, OPENLIT)
MODELS = (("claude-sonnet-4-5", "claude-sonnet-4-5-20250929"), ("gpt-4o", "gpt-4o-2024-08-06"))
CallSpec = tuple[str, int, int, int, int, int, bool]  # shape, parent, scope a, scope b, model, extra out, at once


@st.composite
def calls(draw: st.DrawFn) -> list[CallSpec]:
    size = draw(st.integers(1, 7))
    out: list[CallSpec] = []
    for i in range(size):
        a = draw(st.integers(0, len(SCOPES) - 1))
        b = draw(st.integers(0, len(SCOPES) - 2))
        b = b if b < a else b + 1  # another scope
        out.append((draw(st.sampled_from(SHAPES)), draw(st.integers(0, 2)), a, b,
                    draw(st.integers(0, len(MODELS) - 1)), draw(st.integers(0, 3)),
                    bool(i) and draw(st.integers(0, 4)) == 0))
    return out


class Built:
    """The spans of the generated calls, and the hand count: one call each, the preferred span's figures."""

    def __init__(self, specs: list[CallSpec]) -> None:
        self.records: list[SpanRecord] = [agent(1, 0, 1_000), span(RUN, 2, start_s=0, end_s=999, parent=1),
                                          span(RUN, 3, start_s=0, end_s=999, parent=1)]
        self.calls = self.input_tokens = self.output_tokens = self.cost_nusd = 0
        self.counted: dict[str, int] = {}
        self.concurrent = False
        slot = 0
        next_id = 16
        for shape, parent_index, a, b, model_index, extra, at_once in specs:
            if at_once:
                self.concurrent = True  # the same time as the call before: the rule, not the hand count
            else:
                slot += 1
            parent = parent_index + 1
            start = slot * 10.0
            base = 1_000 * (next_id % 7 + 1)
            models = MODELS[model_index]
            ids = list(range(next_id, next_id + 3))
            next_id += 3
            made: list[tuple[SpanRecord, bool]] = []  # (span, counts in the hand count)
            if shape == "lone":
                made.append((call(ids[0], SCOPES[a], start_s=start, end_s=start + 2, parent=parent, inp=base,
                                  model=models[0]), True))
            elif shape == "nested":
                made.append((call(ids[0], SCOPES[b], start_s=start, end_s=start + 3, parent=parent, inp=base,
                                  out=100 + extra, model=models[1]), False))
                made.append((call(ids[1], SCOPES[a], start_s=start + 1, end_s=start + 2, parent=ids[0], inp=base,
                                  model=models[0]), True))
            elif shape in ("siblings", "over-siblings"):
                under = parent
                if shape == "over-siblings":  # pydantic-ai's span over the pair
                    made.append((call(ids[2], "pydantic-ai", start_s=start, end_s=start + 4, parent=parent,
                                      inp=base, model=models[0]), False))
                    under = ids[2]
                pair = [(ids[0], SCOPES[a], 100 + extra, models[0]), (ids[1], SCOPES[b], 100, models[1])]
                win = min(pair, key=lambda p: siblings.preference(hexid(p[0]), p[1], base, p[2]))
                for n, scope, out, model in pair:
                    made.append((call(n, scope, start_s=start + 1, end_s=start + 3, parent=under, inp=base,
                                      out=out, model=model), n == win[0]))
            else:  # zero-beside: a wrapper's 0-token span ending just before the call's own span starts
                made.append((call(ids[0], SCOPES[b], start_s=start, end_s=start + 0.5 * MS, parent=parent, inp=0,
                                  out=0, model=models[1], cost=0.0), False))
                made.append((call(ids[1], SCOPES[a], start_s=start + 0.76 * MS, end_s=start + 2, parent=parent,
                                  inp=base, model=models[0]), True))
            for record, counts in made:
                self.records.append(record)
                self.counted[record.span_id] = int(counts)
                if counts:
                    self.calls += 1
                    self.input_tokens += record.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS]
                    self.output_tokens += record.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS]
                    self.cost_nusd += round(record.attributes[sc.COST_USD] * 1e9)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls(), st.randoms(use_true_random=False), st.integers(1, 5))
def test_any_order_and_batching_gives_the_totals_of_one_batch(specs: list[CallSpec], rnd: random.Random,
                                                                n_batches: int) -> None:
    built = Built(specs)
    records = list(built.records)
    rnd.shuffle(records)
    cuts = sorted(rnd.sample(range(1, len(records)), min(n_batches - 1, len(records) - 1)))
    batches = [records[a:b] for a, b in zip([0, *cuts], [*cuts, len(records)], strict=True)]
    with tempfile.TemporaryDirectory() as tmp:
        run, counted = totals(Path(tmp) / "h.db", *batches)
        once, once_counted = totals(Path(tmp) / "once.db", built.records)
    assert counted == once_counted
    assert figures(run) == figures(once)
    assert sorted((m["model"], m["llm_calls"]) for m in run["models"]) == sorted(
        (m["model"], m["llm_calls"]) for m in once["models"])
    if not built.concurrent:  # calls apart in time: each exactly once, the preferred span's figures
        assert counted == built.counted
        assert figures(run)[:3] == (built.calls, built.input_tokens, built.output_tokens)
        assert round(run["cost_usd"] * 1e9) == built.cost_nusd
