"""Every attribute dialect is read once, at ingest, into runtrace's tokens and price (issue 12 item 2).

Each test stores one span as that SDK writes it, through the real ingest path
(a real SQLite file), and checks the run's exact tokens and a price equal to
``genai_prices.calc_price`` on runtrace's token semantics (input = all input).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genai_prices import Usage, calc_price

from runtrace import semconv as sc
from runtrace.store.db import Store
from runtrace.store.normalise import normalise
from runtrace.store.otlp import decode_otlp_protobuf, encode_otlp_protobuf
from runtrace.store.queries import get_run
from runtrace.store.records import SpanRecord
from store_helpers import span


def foreign(run_id: str, attrs: dict[str, Any], *, scope: str, name: str = "chat") -> SpanRecord:
    record = span(run_id, 1, start_s=0, end_s=1, name=name, attrs=attrs, kind="CLIENT")
    return SpanRecord(**{**{f: getattr(record, f) for f in record.__slots__},  # type: ignore[attr-defined]
                         "scope_name": scope, "scope_version": "1.0"})


def price(model: str, provider: str, **usage: int) -> float:
    return float(calc_price(Usage(**usage), model_ref=model, provider_id=provider).total_price)


def stored_run(tmp_path: Path, record: SpanRecord) -> dict[str, Any]:
    with Store.open(tmp_path / "n.db") as store:
        assert store.ingest([record]) == 1
        run = get_run(store, record.attributes[sc.RUN_ID])  # type: ignore[arg-type]
    assert run is not None
    return run


def tokens(run: dict[str, Any]) -> tuple[int, int, int, int, int]:
    return (run["input_tokens"], run["cached_input_tokens"], run["output_tokens"], run["reasoning_tokens"],
            run["llm_calls"])


def test_openlit_anthropic_input_is_the_uncached_part_and_is_made_total(tmp_path: Path) -> None:
    # The numbers: 9,000 uncached + 4,000 cache read priced $0.016965 instead of $0.028965
    # (claude sonnet 4: $3 in, $0.30 cache read, $15 out; 51 output tokens).
    record = foreign("openlit", {
        sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_PROVIDER_NAME: "anthropic",
        sc.GEN_AI_SYSTEM: "anthropic", sc.GEN_AI_REQUEST_MODEL: "claude-sonnet-4-20250514",
        sc.GEN_AI_USAGE_INPUT_TOKENS: 9_000, sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 4_000,
        sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 0, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 51,
        "gen_ai.usage.cost": 0.0282,
    }, scope="openlit.otel.tracing")
    run = stored_run(tmp_path, record)
    expected = price("claude-sonnet-4-20250514", "anthropic", input_tokens=13_000, cache_read_tokens=4_000,
                     output_tokens=51)
    assert expected == 0.028965
    assert run["cost_usd"] == 0.028965
    assert tokens(run) == (13_000, 4_000, 51, 0, 1)
    attrs = run["spans"][0]["attributes"]
    assert attrs[sc.SOURCE_DIALECT] == sc.DIALECT_OPENLIT
    assert attrs[sc.SOURCE_INPUT_TOKENS] == 9_000  # the value as sent is kept
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 13_000


def test_openlit_openai_input_is_already_total(tmp_path: Path) -> None:
    record = foreign("openlit-oai", {
        sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_PROVIDER_NAME: "openai",
        sc.GEN_AI_REQUEST_MODEL: "gpt-4o", sc.GEN_AI_USAGE_INPUT_TOKENS: 12_000,
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 8_000, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 900,
    }, scope="openlit.otel.tracing")
    run = stored_run(tmp_path, record)
    assert run["cost_usd"] == price("gpt-4o", "openai", input_tokens=12_000, cache_read_tokens=8_000,
                                    output_tokens=900) == 0.029
    assert tokens(run) == (12_000, 8_000, 900, 0, 1)
    assert sc.SOURCE_INPUT_TOKENS not in run["spans"][0]["attributes"]


def test_openinference_llm_span(tmp_path: Path) -> None:
    record = foreign("oi", {
        sc.OPENINFERENCE_SPAN_KIND: "LLM", sc.OPENINFERENCE_MODEL_NAME: "gpt-4o",
        sc.OPENINFERENCE_PROVIDER: "openai", sc.OPENINFERENCE_SYSTEM: "openai",
        sc.OPENINFERENCE_PROMPT_TOKENS: 12_000, sc.OPENINFERENCE_CACHE_READ_TOKENS: 8_000,
        sc.OPENINFERENCE_COMPLETION_TOKENS: 900, "llm.token_count.total": 12_900,
    }, scope="openinference.instrumentation.openai", name="ChatCompletion")
    run = stored_run(tmp_path, record)
    assert run["cost_usd"] == 0.029
    assert tokens(run) == (12_000, 8_000, 900, 0, 1)
    attrs = run["spans"][0]["attributes"]
    assert (attrs[sc.SOURCE_DIALECT], attrs[sc.GEN_AI_OPERATION_NAME], attrs[sc.GEN_AI_PROVIDER_NAME],
            attrs[sc.GEN_AI_REQUEST_MODEL]) == ("openinference", "chat", "openai", "gpt-4o")
    assert run["spans"][0]["kind"] == "llm"


def test_openinference_chain_span_is_not_a_model_call(tmp_path: Path) -> None:
    record = foreign("oi-chain", {sc.OPENINFERENCE_SPAN_KIND: "CHAIN", sc.OPENINFERENCE_PROMPT_TOKENS: 500},
                     scope="openinference.instrumentation.langchain", name="RunnableSequence")
    run = stored_run(tmp_path, record)
    assert (run["llm_calls"], run["cost_usd"], run["unpriced_calls"]) == (0, 0.0, 0)


def test_openllmetry_deprecated_names_and_its_cache_read_spelling(tmp_path: Path) -> None:
    record = foreign("traceloop", {
        sc.GEN_AI_SYSTEM: "openai", sc.OPENLLMETRY_REQUEST_TYPE: "chat",
        sc.GEN_AI_REQUEST_MODEL: "gpt-4o", sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
        sc.GEN_AI_USAGE_PROMPT_TOKENS: 12_000, sc.GEN_AI_USAGE_COMPLETION_TOKENS: 900,
        sc.OPENLLMETRY_CACHE_READ_INPUT_TOKENS: 8_000, sc.OPENLLMETRY_TOTAL_TOKENS: 12_900,
    }, scope="opentelemetry.instrumentation.openai.v1", name="openai.chat")
    run = stored_run(tmp_path, record)
    assert run["cost_usd"] == price("gpt-4o-2024-08-06", "openai", input_tokens=12_000,
                                    cache_read_tokens=8_000, output_tokens=900) == 0.029
    assert tokens(run) == (12_000, 8_000, 900, 0, 1)
    attrs = run["spans"][0]["attributes"]
    assert attrs[sc.SOURCE_DIALECT] == sc.DIALECT_OPENLLMETRY
    assert (attrs[sc.GEN_AI_PROVIDER_NAME], attrs[sc.GEN_AI_OPERATION_NAME]) == ("openai", "chat")


def test_genai_semconv_deprecated_names(tmp_path: Path) -> None:
    record = foreign("semconv-old", {
        sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_SYSTEM: "anthropic",
        sc.GEN_AI_REQUEST_MODEL: "claude-sonnet-4-20250514", sc.GEN_AI_USAGE_PROMPT_TOKENS: 13_000,
        sc.GEN_AI_USAGE_COMPLETION_TOKENS: 51, sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 4_000,
    }, scope="some.genai.sdk")
    run = stored_run(tmp_path, record)
    assert run["cost_usd"] == 0.028965
    assert tokens(run) == (13_000, 4_000, 51, 0, 1)
    assert run["spans"][0]["attributes"][sc.SOURCE_DIALECT] == sc.DIALECT_GENAI
    assert run["spans"][0]["provider"] == "anthropic"


def test_logfire_current_names_pass_through_unchanged(tmp_path: Path) -> None:
    # Logfire's Anthropic integration adds the cache parts itself (llm_providers/anthropic.py).
    attrs = {
        sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_PROVIDER_NAME: "anthropic",
        sc.GEN_AI_SYSTEM: "anthropic", sc.GEN_AI_REQUEST_MODEL: "claude-sonnet-4-20250514",
        sc.GEN_AI_USAGE_INPUT_TOKENS: 13_000, sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 4_000,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 51, "logfire.span_type": "span",
    }
    record = foreign("logfire", attrs, scope="logfire.anthropic", name="Message with 'claude-sonnet-4'")
    assert normalise(record) is record  # nothing to add: no copy on this path
    run = stored_run(tmp_path, record)
    assert run["cost_usd"] == 0.028965
    assert tokens(run) == (13_000, 4_000, 51, 0, 1)


def test_vercel_ai_sdk_do_generate_step(tmp_path: Path) -> None:
    record = foreign("vercel", {
        "operation.name": "ai.generateText.doGenerate", sc.VERCEL_OPERATION_ID: "ai.generateText.doGenerate",
        sc.VERCEL_MODEL_ID: "gpt-4o", sc.VERCEL_MODEL_PROVIDER: "openai.chat",
        sc.VERCEL_PROMPT_TOKENS: 12_000, sc.VERCEL_COMPLETION_TOKENS: 900,
    }, scope="ai", name="ai.generateText.doGenerate")
    run = stored_run(tmp_path, record)
    assert run["cost_usd"] == price("gpt-4o", "openai", input_tokens=12_000, output_tokens=900) == 0.039
    assert tokens(run) == (12_000, 0, 900, 0, 1)
    attrs = run["spans"][0]["attributes"]
    assert (attrs[sc.SOURCE_DIALECT], attrs[sc.GEN_AI_PROVIDER_NAME], attrs[sc.GEN_AI_REQUEST_MODEL],
            attrs[sc.GEN_AI_OPERATION_NAME]) == ("vercel", "openai", "gpt-4o", "chat")


def test_vercel_ai_sdk_v5_names_with_cache_and_reasoning(tmp_path: Path) -> None:
    record = foreign("vercel5", {
        sc.VERCEL_OPERATION_ID: "ai.streamText.doStream", sc.VERCEL_MODEL_ID: "o3",
        sc.VERCEL_MODEL_PROVIDER: "openai.responses", sc.VERCEL_INPUT_TOKENS: 10_000,
        sc.VERCEL_CACHED_INPUT_TOKENS: 2_000, sc.VERCEL_OUTPUT_TOKENS: 3_000, sc.VERCEL_REASONING_TOKENS: 2_500,
    }, scope="ai", name="ai.streamText.doStream")
    run = stored_run(tmp_path, record)
    expected = price("o3", "openai", input_tokens=10_000, cache_read_tokens=2_000, output_tokens=3_000)
    assert run["cost_usd"] == expected == 0.041  # o3: $2 in, $0.50 cache read, $8 out
    assert tokens(run) == (10_000, 2_000, 3_000, 2_500, 1)


def test_both_adapters_store_the_same_normalised_span(tmp_path: Path) -> None:
    record = foreign("otlp", {
        sc.OPENINFERENCE_SPAN_KIND: "LLM", sc.OPENINFERENCE_MODEL_NAME: "gpt-4o",
        sc.OPENINFERENCE_PROVIDER: "openai", sc.OPENINFERENCE_PROMPT_TOKENS: 1_000,
        sc.OPENINFERENCE_COMPLETION_TOKENS: 100,
    }, scope="openinference.instrumentation.openai")
    (decoded,) = decode_otlp_protobuf(encode_otlp_protobuf([record]))
    with Store.open(tmp_path / "a.db") as a, Store.open(tmp_path / "b.db") as b:
        a.ingest([record])
        b.ingest([decoded])
        assert list(a.iter_span_records()) == list(b.iter_span_records())
        assert get_run(a, "otlp") == get_run(b, "otlp")


def test_normalising_twice_changes_nothing() -> None:
    record = foreign("twice", {
        sc.GEN_AI_PROVIDER_NAME: "anthropic", sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT,
        sc.GEN_AI_REQUEST_MODEL: "claude-sonnet-4-20250514", sc.GEN_AI_USAGE_INPUT_TOKENS: 9_000,
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 4_000, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 51,
    }, scope="openlit.otel.tracing")
    once = normalise(record)
    assert once.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 13_000
    assert normalise(once) is once  # a span forwarded from another store is not converted again


def dialect_spans() -> list[SpanRecord]:
    """One span per dialect as its SDK sends it (the chDB test sends these straight to ClickHouse)."""
    return [
        foreign("d-openlit", {
            sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_PROVIDER_NAME: "anthropic",
            sc.GEN_AI_REQUEST_MODEL: "claude-sonnet-4-20250514", sc.GEN_AI_USAGE_INPUT_TOKENS: 9_000,
            sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 4_000, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 51,
        }, scope="openlit.otel.tracing"),
        foreign("d-openinference", {
            sc.OPENINFERENCE_SPAN_KIND: "LLM", sc.OPENINFERENCE_MODEL_NAME: "gpt-4o",
            sc.OPENINFERENCE_PROVIDER: "openai", sc.OPENINFERENCE_PROMPT_TOKENS: 12_000,
            sc.OPENINFERENCE_CACHE_READ_TOKENS: 8_000, sc.OPENINFERENCE_COMPLETION_TOKENS: 900,
        }, scope="openinference.instrumentation.openai", name="ChatCompletion"),
        foreign("d-openllmetry", {
            sc.GEN_AI_SYSTEM: "openai", sc.OPENLLMETRY_REQUEST_TYPE: "chat", sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
            sc.GEN_AI_USAGE_PROMPT_TOKENS: 12_000, sc.GEN_AI_USAGE_COMPLETION_TOKENS: 900,
            sc.OPENLLMETRY_CACHE_READ_INPUT_TOKENS: 8_000,
        }, scope="opentelemetry.instrumentation.openai.v1", name="openai.chat"),
        foreign("d-vercel", {
            sc.VERCEL_OPERATION_ID: "ai.generateText.doGenerate", sc.VERCEL_MODEL_ID: "gpt-4o",
            sc.VERCEL_MODEL_PROVIDER: "openai.chat", sc.VERCEL_PROMPT_TOKENS: 12_000,
            sc.VERCEL_COMPLETION_TOKENS: 900,
        }, scope="ai", name="ai.generateText.doGenerate"),
        foreign("d-logfire", {
            sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_PROVIDER_NAME: "anthropic",
            sc.GEN_AI_REQUEST_MODEL: "claude-sonnet-4-20250514", sc.GEN_AI_USAGE_INPUT_TOKENS: 13_000,
            sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 4_000, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 51,
        }, scope="logfire.anthropic"),
    ]
