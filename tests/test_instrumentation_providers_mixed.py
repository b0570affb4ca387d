"""Issue 11's "done when": ONE run mixing openai, anthropic, Gemini, Bedrock, LiteLLM and a DeepSeek endpoint.

Every call is a real client against the fakes the provider tests use (mock
transports from tests/llm_fakes.py, the 127.0.0.1 servers of tests/provider_fakes.py
and tests/compat_server.py). The run is read back from the real SQLite store:
each call appears once, with the recognised provider and its dollars.

Hand-computed from list prices (per million tokens), each also equal to ``genai_prices.calc_price``:
- gpt-4o-mini (openai): $0.15 in, $0.60 out: 1000 * 0.15 + 500 * 0.60 = $0.00045
- claude-sonnet-4-6 (anthropic): $3 in, $15 out: 1000 * 3 + 200 * 15 = $0.006
- gemini-2.5-flash (gcp.gemini): $0.30 in, $0.03 cached, $2.50 out (thoughts billed as output):
  600 * 0.30 + 400 * 0.03 + 80 * 2.50 = $0.000392
- Claude 3.5 Haiku on Bedrock (aws.bedrock): $0.80 in, $0.08 cache read, $1 cache write, $4 out:
  1000 * 0.80 + 500 * 0.08 + 100 * 1.00 + 200 * 4.00 = $0.00174
- deepseek-chat through LiteLLM: $0.27 in, $1.10 out: 2000 * 0.27 + 100 * 1.10 = $0.00065
- deepseek-chat through the openai client at api.deepseek.com: $0.27 in, $0.07 cache read, $1.10 out:
  800 * 0.27 + 200 * 0.07 + 500 * 1.10 = $0.00078
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # keeps LiteLLM offline

from typing import Any  # noqa: E402

import genai_prices  # noqa: E402
import pytest  # noqa: E402

import llm_fakes  # noqa: E402
import provider_fakes  # noqa: E402
import runtrace  # noqa: E402
from compat_server import compat_server  # noqa: E402
from llm_fakes import ChatUsage, ClaudeUsage, FakeLLM, chat_completion, claude_message  # noqa: E402
from runtrace import semconv as sc  # noqa: E402
from runtrace.store import queries  # noqa: E402

genai = pytest.importorskip("google.genai")
boto3 = pytest.importorskip("boto3")
litellm = pytest.importorskip("litellm")

pytestmark = [pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")]

USER = [{"role": "user", "content": "Which test is flaky?"}]
GEMINI = "gemini-2.5-flash"
HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"

# (instrumentation scope, provider, request model, input, cached, output, hand-computed USD,
#  genai-prices provider id, the genai_prices.Usage of the call)
CALLS: list[tuple[str, str, str, int, int, int, float, str, dict[str, int]]] = [
    ("openai", "openai", "gpt-4o-mini", 1000, 0, 500, 0.00045, "openai",
     {"input_tokens": 1000, "output_tokens": 500}),
    ("anthropic", "anthropic", "claude-sonnet-4-6", 1000, 0, 200, 0.006, "anthropic",
     {"input_tokens": 1000, "output_tokens": 200}),
    ("gemini", "gcp.gemini", GEMINI, 1000, 400, 80, (600 * 0.30 + 400 * 0.03 + 80 * 2.50) / 1e6, "google",
     {"input_tokens": 1000, "cache_read_tokens": 400, "output_tokens": 80}),
    ("bedrock", "aws.bedrock", HAIKU, 1600, 500, 200, (1000 * 0.80 + 500 * 0.08 + 100 * 1.00 + 200 * 4.00) / 1e6,
     "aws", {"input_tokens": 1600, "cache_read_tokens": 500, "cache_write_tokens": 100, "output_tokens": 200}),
    ("litellm", "deepseek", "deepseek-chat", 2000, 0, 100, 0.00065, "deepseek",
     {"input_tokens": 2000, "output_tokens": 100}),
    ("openai", "deepseek", "deepseek-chat", 1000, 200, 500, 0.00078, "deepseek",
     {"input_tokens": 1000, "cache_read_tokens": 200, "output_tokens": 500}),
]
TOTAL_USD = sum(c[6] for c in CALLS)


def test_hand_computed_dollars_equal_genai_prices() -> None:
    for _scope, _provider, model, *_tokens, usd, provider_id, usage in CALLS:
        price = genai_prices.calc_price(genai_prices.Usage(**usage), model, provider_id=provider_id).total_price
        assert float(price) == pytest.approx(usd, abs=1e-12), model
    assert TOTAL_USD == pytest.approx(0.010012, abs=1e-12)  # 0.00045 + 0.006 + 0.000392 + 0.00174 + 0.00065 + 0.00078


def agent(fake_llm: FakeLLM, providers: Any, litellm_base: str) -> list[str]:
    """The agent: one call per provider, in this order, inside whatever run is current."""
    gemini = genai.Client(api_key="x", http_options={"base_url": providers.url})
    bedrock = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=providers.url,
                           aws_access_key_id="x", aws_secret_access_key="x")
    texts = [
        fake_llm.openai(base_url="https://api.openai.com/v1").chat.completions.create(
            model="gpt-4o-mini", messages=USER).choices[0].message.content,
        fake_llm.anthropic().messages.create(model="claude-sonnet-4-6", max_tokens=256,
                                             messages=USER).content[0].text,
        gemini.models.generate_content(model=GEMINI, contents="Which test is flaky?").text,
        bedrock.converse(modelId=HAIKU, messages=[{"role": "user", "content": [{"text": "Which?"}]}])[
            "output"]["message"]["content"][0]["text"],
        litellm.completion(model="deepseek/deepseek-chat", messages=USER, api_base=litellm_base,
                           api_key="x").choices[0].message.content,
        fake_llm.openai(base_url="https://api.deepseek.com/v1").chat.completions.create(
            model="deepseek-chat", messages=USER).choices[0].message.content,
    ]
    return [t or "" for t in texts]


def replies() -> tuple[FakeLLM, list[provider_fakes.Reply], list[llm_fakes.Reply]]:
    fake_llm = FakeLLM([
        llm_fakes.json_reply(chat_completion(model="gpt-4o-mini-2024-07-18", content="openai says",
                                             usage=ChatUsage(1000, 500))),
        llm_fakes.json_reply(claude_message(text="claude says", usage=ClaudeUsage(1000, 200))),
        llm_fakes.json_reply(chat_completion(model="deepseek-chat", content="deepseek says",
                                             usage=ChatUsage(1000, 500, 200), service_tier=None)),
    ])
    gemini_body = {"candidates": [{"content": {"role": "model", "parts": [{"text": "gemini says"}]},
                                   "finishReason": "STOP"}],
                   "modelVersion": GEMINI, "responseId": "resp-1",
                   "usageMetadata": {"promptTokenCount": 1000, "cachedContentTokenCount": 400,
                                     "candidatesTokenCount": 50, "thoughtsTokenCount": 30,
                                     "totalTokenCount": 1080}}
    converse_body = {"output": {"message": {"role": "assistant", "content": [{"text": "bedrock says"}]}},
                     "stopReason": "end_turn", "metrics": {"latencyMs": 5},
                     "usage": {"inputTokens": 1000, "outputTokens": 200, "totalTokens": 1800,
                               "cacheReadInputTokens": 500, "cacheWriteInputTokens": 100}}
    on_providers = [provider_fakes.json_reply(gemini_body), provider_fakes.json_reply(converse_body)]
    on_litellm = [llm_fakes.json_reply(chat_completion(model="deepseek-chat", content="litellm says",
                                                       usage=ChatUsage(2000, 100), service_tier=None))]
    return fake_llm, on_providers, on_litellm


EXPECTED_TEXTS = ["openai says", "claude says", "gemini says", "bedrock says", "litellm says", "deepseek says"]


def test_the_bare_agent_works_against_the_fakes() -> None:
    runtrace.uninstrument()
    fake_llm, on_providers, on_litellm = replies()
    with provider_fakes.FakeProviders() as providers, compat_server(on_litellm) as server:
        providers.replies.extend(on_providers)
        assert agent(fake_llm, providers, server.base_url) == EXPECTED_TEXTS
        assert [r.path for r in providers.requests] == [
            f"/v1/models/{GEMINI}:generateContent", f"/model/{HAIKU.replace(':', '%3A')}/converse"]
        assert server.paths() == ["/v1/chat/completions"]
    assert [path for path, _ in fake_llm.requests] == ["/v1/chat/completions", "/v1/messages",
                                                       "/v1/chat/completions"]


def test_one_run_over_six_providers_shows_every_call_once_with_its_provider_and_dollars(instrumented) -> None:
    fake_llm, on_providers, on_litellm = replies()
    with provider_fakes.FakeProviders() as providers, compat_server(on_litellm) as server:
        providers.replies.extend(on_providers)
        with runtrace.run("mixed providers", project="routing") as run:
            assert agent(fake_llm, providers, server.base_url) == EXPECTED_TEXTS

    # In process: one span per call (LiteLLM's, not a second one from the openai client under it).
    spans = sorted(instrumented.llm_spans(), key=lambda s: s.start_time or 0)
    assert [(s.instrumentation_scope.name.rsplit(".", 1)[-1], s.attributes[sc.GEN_AI_PROVIDER_NAME],
             s.attributes[sc.GEN_AI_REQUEST_MODEL]) for s in spans] == [c[:3] for c in CALLS]
    for span, (_scope, _provider, model, inp, cached, out, usd, *_rest) in zip(spans, CALLS, strict=True):
        a = span.attributes
        assert (a[sc.GEN_AI_USAGE_INPUT_TOKENS], a.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, 0),
                a[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (inp, cached, out), model
        assert a[sc.COST_SOURCE] == sc.SOURCE_GENAI_PRICES, model
        assert a[sc.COST_USD] == pytest.approx(usd, abs=1e-12), model
        assert a[sc.RUN_ID] == run.id
    assert run.totals.llm_calls == 6 and run.totals.cost_usd == pytest.approx(TOTAL_USD, abs=1e-12)

    # From the SQLite store: the run, its counted LLM spans, and its per-provider split.
    with instrumented.open_store() as store:
        stored = queries.get_run(store, run.id)
    assert stored is not None
    assert (stored["llm_calls"], stored["unpriced_calls"], stored["project"]) == (6, 0, "routing")
    assert stored["cost_usd"] == pytest.approx(TOTAL_USD, abs=1e-9)
    assert stored["input_tokens"] == sum(c[3] for c in CALLS)
    assert stored["output_tokens"] == sum(c[5] for c in CALLS)
    llm_rows = sorted((s for s in stored["spans"] if s["kind"] == "llm"), key=lambda s: s["start"])
    assert [(s["provider"], s["model"]) for s in llm_rows] == [
        ("openai", "gpt-4o-mini-2024-07-18"), ("anthropic", "claude-sonnet-4-6"), ("gcp.gemini", GEMINI),
        ("aws.bedrock", HAIKU), ("deepseek", "deepseek-chat"), ("deepseek", "deepseek-chat")]
    assert all(s["counted"] for s in llm_rows)
    for row, call in zip(llm_rows, CALLS, strict=True):
        assert row["cost_usd"] == pytest.approx(call[6], abs=1e-12), row["model"]
    by_provider: dict[str, tuple[int, float]] = {}
    for m in stored["models"]:
        calls, usd = by_provider.get(m["provider"], (0, 0.0))
        by_provider[m["provider"]] = (calls + m["llm_calls"], usd + m["cost_usd"])
    assert {p: (n, round(usd, 9)) for p, (n, usd) in by_provider.items()} == {
        "openai": (1, 0.00045), "anthropic": (1, 0.006), "gcp.gemini": (1, 0.000392),
        "aws.bedrock": (1, 0.00174), "deepseek": (2, 0.00143)}
