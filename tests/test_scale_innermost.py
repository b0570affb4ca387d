"""The ClickHouse views count each model call once, as the embedded store does (chDB).

The spans go through the embedded store first and are replayed from it, as
``runtrace forward`` sends them (normalised: canonical gen_ai.* added), into
``otel_traces`` in several blocks, nested spans split across blocks both ways.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtrace import semconv as sc
from runtrace.scale import prices
from runtrace.store.db import Store
from runtrace.store.queries import list_runs
from runtrace.store.records import SpanRecord
from scale_helpers import ClickHouse, TimeRange, insert_spans, split_sql
from store_helpers import BASE_NS, S, llm, span
from test_normalise import dialect_spans


def wrapper(run: str, n: int, parent: int | None = None, **attrs: object) -> SpanRecord:
    """OpenLLMetry-style span over the SDK call: deprecated names, no cost."""
    return span(run, n, start_s=0, end_s=3, name="openai.chat", kind="CLIENT", parent=parent, attrs={
        sc.GEN_AI_SYSTEM: "openai", sc.OPENLLMETRY_REQUEST_TYPE: "chat", sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
        sc.GEN_AI_USAGE_PROMPT_TOKENS: 1_000, sc.GEN_AI_USAGE_COMPLETION_TOKENS: 100, **attrs})


def inner(run: str, n: int, parent: int | None) -> SpanRecord:
    return llm(run, n, start_s=1, end_s=2, model="gpt-4o", input_tokens=1_000, output_tokens=100, cost=0.0035,
               parent=parent)


def vercel(run: str, n: int, operation: str, parent: int | None, prompt: int, completion: int) -> SpanRecord:
    return span(run, n, start_s=0, end_s=1, name=operation, parent=parent, attrs={
        sc.VERCEL_OPERATION_ID: operation, sc.VERCEL_MODEL_ID: "gpt-4o", sc.VERCEL_MODEL_PROVIDER: "openai.chat",
        sc.VERCEL_PROMPT_TOKENS: prompt, sc.VERCEL_COMPLETION_TOKENS: completion})


# (outer blocks, inner blocks): each case's spans split so outer and inner arrive in different blocks.
CASES: dict[str, tuple[list[SpanRecord], list[SpanRecord]]] = {
    "wrapper-first": ([wrapper("wrapper-first", 1)], [inner("wrapper-first", 2, 1)]),
    "wrapper-last": ([inner("wrapper-last", 2, 1)], [wrapper("wrapper-last", 1)]),
    "vercel": ([vercel("vercel", 1, "ai.generateText", None, 3_000, 300)],
               [vercel("vercel", 2, "ai.generateText.doGenerate", 1, 1_000, 100),
                vercel("vercel", 3, "ai.generateText.doGenerate", 1, 2_000, 200)]),
    "gap": ([wrapper("gap", 1), inner("gap", 3, 2)], [span("gap", 2, start_s=0, end_s=3, parent=1)]),
    "duplicate": ([llm("duplicate", 1, start_s=0, end_s=3, model="gpt-4o", input_tokens=1_000,
                       output_tokens=100, cost=0.0035)],
                  [wrapper("duplicate", 2, parent=1, **{sc.DUPLICATE_OF: f"{1:016x}"})]),
}
# gpt-4o: $2.50 in, $10 out per million tokens
EXPECTED = {"wrapper-first": (1, 1_000, 100, 0.0035), "wrapper-last": (1, 1_000, 100, 0.0035),
            "vercel": (2, 3_000, 300, 0.0105), "gap": (1, 1_000, 100, 0.0035),
            "duplicate": (1, 1_000, 100, 0.0035)}


@pytest.fixture(scope="module")
def ch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouse]:
    """One chDB session for the module (chDB holds one embedded server per process at a time)."""
    db = ClickHouse(tmp_path_factory.mktemp("chdb"))
    for statement in split_sql(prices.to_clickhouse_sql(prices.price_rows())):
        db.execute(statement)
    yield db
    db.close()


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, ch: ClickHouse) -> tuple[dict[str, dict], ClickHouse]:
    path = tmp_path_factory.mktemp("store") / "runtrace.db"
    with Store.open(path) as store:
        for first, second in CASES.values():
            store.ingest(first)
            store.ingest(second)
        store_runs = {r["id"]: r for r in list_runs(store, limit=0)}
        replay = {(r.trace_id, r.span_id): r for r in store.iter_span_records()}
    for first, second in CASES.values():  # the same two blocks per case, as forwarded
        insert_spans(ch, [replay[(r.trace_id, r.span_id)] for r in first])
        insert_spans(ch, [replay[(r.trace_id, r.span_id)] for r in second])
    return store_runs, ch


@pytest.mark.parametrize("run_id", list(CASES))
def test_run_view_counts_each_call_once_like_the_store(both: tuple[dict[str, dict], ClickHouse],
                                                       run_id: str) -> None:
    store_runs, ch = both
    (row,) = ch.rows("SELECT llm_calls, input_tokens, output_tokens, cost_usd, span_count "
                     f"FROM otel.runtrace_runs_v WHERE run_id = '{run_id}'")
    stored = store_runs[run_id]
    got = (int(row["llm_calls"]), int(row["input_tokens"]), int(row["output_tokens"]), round(row["cost_usd"], 9))
    assert got == EXPECTED[run_id]
    assert got == (stored["llm_calls"], stored["input_tokens"], stored["output_tokens"], stored["cost_usd"])
    assert int(row["span_count"]) == sum(len(part) for part in CASES[run_id])  # every span stays
    models = ch.rows(f"SELECT sum(llm_calls) AS calls FROM otel.runtrace_run_models_v WHERE run_id = '{run_id}'")
    assert int(models[0]["calls"]) == EXPECTED[run_id][0]


def test_dialects_sent_straight_to_clickhouse_give_the_store_figures(
        tmp_path_factory: pytest.TempPathFactory, ch: ClickHouse) -> None:
    """OpenLIT, OpenInference, OpenLLMetry, Vercel, Logfire spans via the collector: the same run figures."""
    records = dialect_spans()
    with Store.open(tmp_path_factory.mktemp("store") / "d.db") as store:
        store.ingest(records)
        stored = {r["id"]: r for r in list_runs(store, limit=0)}
    insert_spans(ch, records)  # as the SDKs sent them: not normalised by any store
    rows = {r["run_id"]: r for r in ch.rows(
        "SELECT run_id, llm_calls, input_tokens, cached_input_tokens, output_tokens, cost_usd"
        " FROM otel.runtrace_runs_v WHERE startsWith(run_id, 'd-')")}
    fields = ("llm_calls", "input_tokens", "cached_input_tokens", "output_tokens")
    got = {k: (*(int(r[f]) for f in fields), round(r["cost_usd"], 9)) for k, r in rows.items()}
    want = {k: (*(r[f] for f in fields), r["cost_usd"]) for k, r in stored.items()}
    assert got == want
    assert want["d-openlit"] == (1, 13_000, 4_000, 51, 0.028965)
    assert want["d-openinference"] == want["d-openllmetry"] == (1, 12_000, 8_000, 900, 0.029)
    assert want["d-vercel"] == (1, 12_000, 0, 900, 0.039)


# --- the per-call Grafana panel counts each model call once too ---------------------------

PANEL = "Output tokens per call by prompt size"
LATER = 1_000  # seconds after BASE_NS: a window of their own, apart from the spans above


def _panel_spans() -> list[SpanRecord]:
    """A wrapper over the SDK's span, a foreign span marked inside runtrace's, an aggregate over 2 steps."""
    def at(record: SpanRecord) -> SpanRecord:
        fields = {f: getattr(record, f) for f in record.__slots__}  # type: ignore[attr-defined]
        return SpanRecord(**{**fields, "start_ns": record.start_ns + LATER * S, "end_ns": record.end_ns + LATER * S})

    return [at(r) for r in (
        wrapper("p-wrap", 1), inner("p-wrap", 2, 1),
        inner("p-dup", 1, None), wrapper("p-dup", 2, parent=1, **{sc.DUPLICATE_OF: f"{1:016x}"}),
        vercel("p-vercel", 1, "ai.generateText", None, 3_000, 300),
        vercel("p-vercel", 2, "ai.generateText.doGenerate", 1, 1_000, 100),
        vercel("p-vercel", 3, "ai.generateText.doGenerate", 1, 2_000, 200),
    )]


def test_per_call_panel_counts_each_model_call_once(ch: ClickHouse) -> None:
    """4 model calls: the inner of the wrapper (1,000 in / 100 out), runtrace's span and not its
    marked copy (1,000 / 100), the 2 doGenerate steps and not ai.generateText (1,000 / 100, 2,000 / 200).
    Reading every LLM span, the panel said 5 calls up to 1k and 2 from 1k (avg 250 output tokens)."""
    from test_scale_grafana import panel_sql, run_panel

    insert_spans(ch, _panel_spans())
    rng = TimeRange(BASE_NS + (LATER - 1) * S, BASE_NS + (LATER + 10) * S)
    assert run_panel(ch, panel_sql(PANEL), rng=rng) == [
        {"prompt_size": "1: up to 1k", "model": "gpt-4o", "calls": 3, "output_tokens_per_call": 100.0},
        {"prompt_size": "2: 1k to 10k", "model": "gpt-4o", "calls": 1, "output_tokens_per_call": 200.0},
    ]
