"""ClickHouse's counted view applies the store's sibling rule (store/siblings.py), on chDB.

Two instrumentations' spans of one model call side by side (same parent) are
one call in ``runtrace_runs_v``, ``runtrace_run_models_v`` and the per-call
Grafana panel, as in the embedded store: the spans are written into
``otel_traces`` as the collector's exporter writes them, each case split over
several insert blocks, and both paths must give the hand-counted figures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtrace import semconv as sc
from runtrace.scale import prices
from runtrace.store.db import Store
from runtrace.store.model_family import model_family
from runtrace.store.queries import list_runs
from runtrace.store.records import SpanRecord
from scale_helpers import ClickHouse, TimeRange, insert_spans, split_sql
from store_helpers import BASE_NS, S, span, trace_of
from test_siblings import OLL, OPENLIT, OURS, SDK, Built, CallSpec

LATER = 5_000  # seconds after BASE_NS: a window of its own for the panel


def otlp_only_anthropic() -> list[SpanRecord]:
    """What OpenLLMetry 0.62.4 and the anthropic SDK sent for 4 requests (tests/test_otlp_only_openllmetry_anthropic.py):
    no run id (a run per trace), no cost (priced at ingest / in SQL), the SDK's 4 spans and OpenLLMetry's 3 beside them."""
    trace = trace_of("otlp-only")

    def chat(n: int, scope: str, start_ms: float, end_ms: float, inp: int, out: int, name: str,
             response_model: bool = True) -> SpanRecord:
        attrs: dict[str, object] = {
            sc.GEN_AI_PROVIDER_NAME: "anthropic", sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT,
            sc.GEN_AI_REQUEST_MODEL: "claude-sonnet-4-6", sc.GEN_AI_USAGE_INPUT_TOKENS: inp,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: out}
        if response_model:
            attrs[sc.GEN_AI_RESPONSE_MODEL] = "claude-sonnet-4-6"
        record = span(None, n, start_s=start_ms / 1000, end_s=end_ms / 1000, name=name, attrs=attrs, parent=1,
                      trace_id=trace, kind="CLIENT")
        return dataclasses.replace(record, scope_name=scope)

    root = dataclasses.replace(span(None, 1, start_s=0, end_s=0.2, name="agent", trace_id=trace), scope_name="app")
    return [root,
            chat(2, OLL, 0.6, 16.8, 25, 10, "anthropic.chat"),
            chat(3, SDK, 1.9, 16.5, 25, 10, "anthropic.messages.create"),
            chat(4, OLL, 16.9, 41.4, 25, 11, "anthropic.chat"),
            chat(5, SDK, 17.7, 41.2, 25, 10, "anthropic.messages.create"),
            chat(6, SDK, 42.5, 51.0, 25, 10, "anthropic.messages.create"),  # messages.stream(): no OpenLLMetry span
            chat(7, OLL, 51.2, 51.9, 0, 0, "anthropic.chat", response_model=False),  # beta.messages.stream()
            chat(8, SDK, 52.2, 196.8, 25, 10, "anthropic.messages.create")]


def as_run(records: list[SpanRecord], run_id: str, shift_s: int = 0) -> list[SpanRecord]:
    """The same spans as a run (and trace) of their own, ``shift_s`` later."""
    trace = trace_of(run_id)
    return [dataclasses.replace(r, trace_id=trace, attributes={**r.attributes, sc.RUN_ID: run_id},
                                start_ns=r.start_ns + shift_s * S, end_ns=r.end_ns + shift_s * S)
            for r in records]


SPECS: dict[str, list[CallSpec]] = {
    # shape, parent, scope a, scope b (indexes into test_siblings.SCOPES: runtrace, SDK, OpenLLMetry, OpenLIT),
    # model, extra output tokens on the a side, same time as the call before
    "s-pairs": [("siblings", 0, 2, 1, 0, 1, False), ("siblings", 1, 0, 2, 1, 2, False),
                ("siblings", 2, 2, 3, 0, 3, False), ("zero-beside", 0, 1, 2, 1, 0, False)],
    "s-mixed": [("lone", 0, 2, 1, 0, 0, False), ("nested", 1, 1, 2, 0, 2, False),
                ("over-siblings", 2, 3, 1, 1, 1, False), ("lone", 1, 3, 0, 1, 0, False)],
    "s-concurrent": [("siblings", 0, 1, 2, 0, 1, False), ("siblings", 0, 1, 2, 0, 2, True)],
}
# (llm calls, input tokens, output tokens) by hand: each call once, the preferred span's figures.
# A call's input is 1,000 x (its first span id % 7 + 1), ids from 16 in steps of 3: 3,000, 6,000, 2,000, 5,000.
# s-pairs: the SDK's 100 out over OpenLLMetry's 101; runtrace's 102 over OpenLLMetry's 100; OpenLLMetry's 103
# (lower id) over OpenLIT's 100; the SDK's 100 over a 0-token wrapper: 16,000 in, 405 out.
# s-mixed: a lone 100, the SDK's 100 inside a wrapper, the SDK's 100 of a pair under pydantic-ai's span, a
# lone 100: 16,000 in, 400 out. s-concurrent: two calls at once, the SDK's 101 and 102: 9,000 in, 203 out.
HAND = {"s-pairs": (4, 16_000, 405), "s-mixed": (4, 16_000, 400), "s-concurrent": (2, 9_000, 203),
        "otlp-only": (4, 100, 40)}


def cases() -> dict[str, list[SpanRecord]]:
    out = {name: as_run(Built(specs).records, name) for name, specs in SPECS.items()}
    out["otlp-only"] = otlp_only_anthropic()
    return out


def blocks(records: list[SpanRecord]) -> list[list[SpanRecord]]:
    """Three insert blocks, each pair's spans apart: every other span, then the rest backwards in two."""
    rest = records[1::2][::-1]
    return [records[::2], rest[: len(rest) // 2], rest[len(rest) // 2:]]


def store_runs(path: Path) -> dict[str, dict]:
    """Every case through the embedded store, in the same blocks."""
    with Store.open(path) as store:
        for records in cases().values():
            for block in blocks(records):
                store.ingest(block)
        return {r["id"]: r for r in list_runs(store, limit=0)}


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, dict], ClickHouse]]:
    """The store's runs, and one chDB session holding the same spans (one session per process at a time)."""
    stored = store_runs(tmp_path_factory.mktemp("store") / "runtrace.db")
    db = ClickHouse(tmp_path_factory.mktemp("chdb"))
    try:
        for statement in split_sql(prices.to_clickhouse_sql(prices.price_rows())):
            db.execute(statement)
        for records in cases().values():
            for block in blocks(records):
                insert_spans(db, block)  # as the SDKs sent them, through the collector
        yield stored, db
    finally:
        db.close()


def run_id_of(name: str) -> str:
    return trace_of("otlp-only") if name == "otlp-only" else name


@pytest.mark.parametrize("name", list(HAND))
def test_run_view_counts_sibling_spans_once_like_the_store(both: tuple[dict[str, dict], ClickHouse],
                                                           name: str) -> None:
    stored, ch = both
    run_id = run_id_of(name)
    (row,) = ch.rows("SELECT llm_calls, input_tokens, output_tokens, cost_usd, unpriced_calls, span_count"
                     f" FROM otel.runtrace_runs_v WHERE run_id = '{run_id}'")
    got = (int(row["llm_calls"]), int(row["input_tokens"]), int(row["output_tokens"]))
    assert got == HAND[name]
    run = stored[run_id]
    assert got == (run["llm_calls"], run["input_tokens"], run["output_tokens"])
    assert round(row["cost_usd"], 9) == run["cost_usd"]
    assert int(row["unpriced_calls"]) == run["unpriced_calls"] == 0
    assert int(row["span_count"]) == len(cases()[name])  # the uncounted spans stay
    models = ch.rows(f"SELECT sum(llm_calls) AS calls FROM otel.runtrace_run_models_v WHERE run_id = '{run_id}'")
    assert int(models[0]["calls"]) == HAND[name][0]


def test_otlp_only_openllmetry_anthropic_costs_four_calls(both: tuple[dict[str, dict], ClickHouse]) -> None:
    """claude-sonnet-4-6, $3 in and $15 out per million: 4 x (25 x 3 + 10 x 15) / 1e6 = $0.0009, in SQL too."""
    stored, ch = both
    run_id = run_id_of("otlp-only")
    assert stored[run_id]["cost_usd"] == 0.0009
    assert round(ch.scalar(f"SELECT cost_usd FROM otel.runtrace_runs_v WHERE run_id = '{run_id}'"), 9) == 0.0009
    counted = ch.rows("SELECT span_id, counted FROM otel.runtrace_counted_spans"
                      f" WHERE trace_id = '{run_id}' AND kind = 'llm' ORDER BY span_id")
    assert [(r["span_id"][-1], int(r["counted"])) for r in counted] == [
        ("2", 0), ("3", 1), ("4", 0), ("5", 1), ("6", 1), ("7", 0), ("8", 1)]


def test_sql_model_family_is_the_store_s(both: tuple[dict[str, dict], ClickHouse]) -> None:
    ch = both[1]
    names = ["gpt-4o-2024-08-06", "claude-sonnet-4-20250514", "gpt-3.5-turbo-0125", "gemini-1.5-flash-001",
             "anthropic.claude-3-5-sonnet-20240620-v1:0", "gemini-2.0-flash-exp", "claude-3-5-sonnet-latest",
             "o1-preview-2024-09-12", "claude-sonnet-4-6", "GPT-4o", "mistral-large-2411", "gemini-exp-1206",
             "claude-opus-4-1@20250805", "gpt-4-0613"]
    trace = trace_of("families")
    records = [dataclasses.replace(
        span(None, i + 1, start_s=10_000 + i * 10, end_s=10_001 + i * 10, parent=99, trace_id=trace,
             attrs={sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_REQUEST_MODEL: name,
                    sc.GEN_AI_USAGE_INPUT_TOKENS: 1}), scope_name="x") for i, name in enumerate(names)]
    insert_spans(ch, records)
    rows = ch.rows(f"SELECT span_id, family FROM otel.runtrace_usage_calls WHERE trace_id = '{trace}'")
    got = {int(r["span_id"], 16): r["family"] for r in rows}
    assert got == {i + 1: model_family(name.lower()) for i, name in enumerate(names)}


def test_per_call_panel_counts_sibling_spans_once(both: tuple[dict[str, dict], ClickHouse]) -> None:
    """The 4 requests of the OTLP-only case, later: 4 calls of 25 in and 10 out, not 7."""
    ch = both[1]
    from test_scale_grafana import panel_sql, run_panel

    insert_spans(ch, as_run(otlp_only_anthropic(), "p-siblings", LATER))
    rng = TimeRange(BASE_NS + (LATER - 1) * S, BASE_NS + (LATER + 10) * S)
    assert run_panel(ch, panel_sql("Output tokens per call by prompt size"), rng=rng) == [
        {"prompt_size": "1: up to 1k", "model": "claude-sonnet-4-6", "calls": 4, "output_tokens_per_call": 10.0}]


def test_the_scopes_are_those_test_siblings_uses() -> None:
    assert (OURS.startswith(sc.RUNTRACE_SCOPE + "."), SDK.startswith(sc.SDK_OWN_SCOPE_PREFIXES),
            OLL, OPENLIT) == (True, True, "opentelemetry.instrumentation.anthropic", "openlit.otel.tracing")
