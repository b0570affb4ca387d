"""OpenAI-compatible providers through the real openai client: recognised from base_url or class.

Each provider's fake is the real ``openai.OpenAI`` / ``AzureOpenAI`` client over
a mock transport with the provider's own base URL (nothing leaves the process).
Dollars are hand-computed from the providers' list prices in genai-prices and
checked against ``genai_prices.calc_price`` too.
"""

from __future__ import annotations

import asyncio
import time

import genai_prices
import openai
import pytest

import runtrace
from llm_fakes import ChatUsage, FakeLLM, chat_completion, json_reply
from runtrace import pricing
from runtrace import semconv as sc
from runtrace.instrumentation import endpoints

USER = [{"role": "user", "content": "Summarise the failing test."}]

# (base_url, model, gen_ai.provider.name, genai-prices id, usage, hand-computed USD from list prices)
PROVIDERS = [
    # deepseek-chat: $0.27 in, $0.07 cache read, $1.10 out per Mtok: 800*0.27 + 200*0.07 + 500*1.10
    ("https://api.deepseek.com/v1", "deepseek-chat", "deepseek", "deepseek", ChatUsage(1000, 500, 200), 0.00078),
    # llama-3.3-70b-versatile on Groq: $0.59 in, $0.79 out
    ("https://api.groq.com/openai/v1", "llama-3.3-70b-versatile", "groq", "groq", ChatUsage(1000, 500), 0.000985),
    # openai/gpt-4o-mini on OpenRouter: $0.15 in, $0.60 out
    ("https://openrouter.ai/api/v1", "openai/gpt-4o-mini", "openrouter", "openrouter", ChatUsage(1000, 500),
     0.00045),
    # Llama 3.3 70B Turbo on Together: $0.88 in and out
    ("https://api.together.xyz/v1", "meta-llama/Llama-3.3-70B-Instruct-Turbo", "together", "together",
     ChatUsage(1000, 500), 0.00132),
    # Llama 3.1 8B on Fireworks: $0.20 in and out
    ("https://api.fireworks.ai/inference/v1", "accounts/fireworks/models/llama-v3p1-8b-instruct", "fireworks",
     "fireworks", ChatUsage(1000, 500), 0.0003),
    # grok-3 on xAI: $3 in, $15 out
    ("https://api.x.ai/v1", "grok-3", "x_ai", "x-ai", ChatUsage(1000, 500), 0.0105),
    # mistral-small-latest: $0.15 in, $0.60 out
    ("https://api.mistral.ai/v1", "mistral-small-latest", "mistral_ai", "mistral", ChatUsage(1000, 500), 0.00045),
    # kimi-k2-0711-preview on Moonshot: $0.60 in, $2.50 out
    ("https://api.moonshot.ai/v1", "kimi-k2-0711-preview", "moonshotai", "moonshotai", ChatUsage(1000, 500),
     0.00185),
]


def one_llm_span(instrumented):
    spans = instrumented.llm_spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def calc_price(model: str, provider_id: str, usage: ChatUsage) -> float:
    result = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens,
                           cache_read_tokens=usage.cached_tokens),
        model_ref=model, provider_id=provider_id)
    return float(round(result.total_price, 10))


def azure_client(fake: FakeLLM, *, async_client: bool = False):
    cls = openai.AsyncAzureOpenAI if async_client else openai.AzureOpenAI
    client_cls = fake.http.AsyncClient if async_client else fake.http.Client
    return cls(api_key="azure-test-key", api_version="2024-10-21", azure_endpoint="https://contoso.openai.azure.com",
               max_retries=0, http_client=client_cls(transport=fake.transport()))


# --- the bare clients work against the fakes ------------------------------------------------

def test_bare_clients_talk_to_the_fakes():
    fake = FakeLLM([json_reply(chat_completion(model="deepseek-chat")),
                    json_reply(chat_completion(model="gpt-4o-mini-2024-07-18"))])
    reply = fake.openai(base_url="https://api.deepseek.com/v1").chat.completions.create(
        model="deepseek-chat", messages=USER)
    assert reply.model == "deepseek-chat"
    reply = azure_client(fake).chat.completions.create(model="my-mini-deployment", messages=USER)
    assert reply.model == "gpt-4o-mini-2024-07-18"
    assert [path for path, _ in fake.requests] == [
        "/v1/chat/completions", "/openai/deployments/my-mini-deployment/chat/completions"]


# --- recognised from base_url and priced at that provider's prices ----------------------------

@pytest.mark.parametrize(("base_url", "model", "provider", "provider_id", "usage", "usd"), PROVIDERS,
                         ids=[row[2] for row in PROVIDERS])
def test_provider_from_base_url_is_recorded_and_priced(instrumented, base_url, model, provider, provider_id,
                                                       usage, usd):
    fake = FakeLLM([json_reply(chat_completion(model=model, usage=usage, service_tier=None))])
    client = fake.openai(base_url=base_url)
    with runtrace.run("compat", project="p") as run:
        reply = client.chat.completions.create(model=model, messages=USER)
    assert reply.usage.prompt_tokens == usage.prompt_tokens
    a = dict(one_llm_span(instrumented).attributes)
    assert a[sc.GEN_AI_PROVIDER_NAME] == provider
    assert (a[sc.GEN_AI_USAGE_INPUT_TOKENS], a[sc.GEN_AI_USAGE_OUTPUT_TOKENS],
            a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS]) == (usage.prompt_tokens, usage.completion_tokens,
                                                            usage.cached_tokens)
    assert a[sc.COST_SOURCE] == sc.SOURCE_GENAI_PRICES
    assert a[sc.COST_USD] == usd == calc_price(model, provider_id, usage)
    stored = instrumented.stored_run(run.id)
    assert (stored["cost_usd"], stored["unpriced_calls"], stored["llm_calls"]) == (usd, 0, 1)


def test_an_unknown_host_stays_openai_and_openai_prices_apply(instrumented):
    fake = FakeLLM([json_reply(chat_completion(model="gpt-4o-mini-2024-07-18", usage=ChatUsage(1000, 500)))])
    fake.openai(base_url="https://llm-gateway.example.com/v1").chat.completions.create(
        model="gpt-4o-mini", messages=USER)
    a = dict(one_llm_span(instrumented).attributes)
    assert (a[sc.GEN_AI_PROVIDER_NAME], a[sc.COST_USD]) == ("openai", 0.00045)


# --- Azure OpenAI ---------------------------------------------------------------------------

def test_azure_openai_is_its_own_provider_priced_with_azure_prices(instrumented):
    # gpt-4o-mini on Azure: $0.15 in, $0.075 cache read, $0.60 out: 700*0.15 + 300*0.075 + 400*0.60
    usage = ChatUsage(1000, 400, 300)
    fake = FakeLLM([json_reply(chat_completion(model="gpt-4o-mini-2024-07-18", usage=usage, service_tier=None))])
    with runtrace.run("azure") as run:
        azure_client(fake).chat.completions.create(model="my-mini-deployment", messages=USER)
    a = dict(one_llm_span(instrumented).attributes)
    assert a[sc.GEN_AI_PROVIDER_NAME] == "azure.ai.openai"
    assert a[sc.GEN_AI_REQUEST_MODEL] == "my-mini-deployment"
    assert a[sc.SERVER_ADDRESS] == "contoso.openai.azure.com"
    assert a[sc.COST_USD] == 0.0003675 == calc_price("gpt-4o-mini", "azure", usage)
    assert instrumented.stored_run(run.id)["cost_usd"] == 0.0003675


def test_async_azure_openai(instrumented):
    fake = FakeLLM([json_reply(chat_completion(model="gpt-4o-mini-2024-07-18", usage=ChatUsage(1000, 500)))])

    async def main() -> None:
        await azure_client(fake, async_client=True).chat.completions.create(model="dep", messages=USER)

    asyncio.run(main())
    a = dict(one_llm_span(instrumented).attributes)
    assert (a[sc.GEN_AI_PROVIDER_NAME], a[sc.COST_USD]) == ("azure.ai.openai", 0.00045)


def test_azure_provider_name_is_priced_at_ingest_too():
    # A span another SDK sent with gen_ai.provider.name=azure.ai.openai (genai-prices'
    # own lookup does not find "azure" in that name).
    attrs = {sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_PROVIDER_NAME: "azure.ai.openai",
             sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini", sc.GEN_AI_USAGE_INPUT_TOKENS: 1000,
             sc.GEN_AI_USAGE_OUTPUT_TOKENS: 500}
    priced = pricing.Pricer().price_attributes(attrs)
    assert (priced[sc.COST_USD], priced[sc.COST_SOURCE]) == (0.00045, sc.SOURCE_GENAI_PRICES)


# --- local servers ---------------------------------------------------------------------------

@pytest.mark.parametrize("base_url", ["http://localhost:11434/v1", "http://127.0.0.1:8000/v1",
                                      "http://192.168.1.20:1234/v1", "http://[::1]:8080/v1",
                                      "http://gpu-box.local:8000/v1"])
def test_a_local_server_is_local_and_unpriced(instrumented, base_url):
    # Even a model named like a cloud one is not billed at the cloud's price when served locally.
    fake = FakeLLM([json_reply(chat_completion(model="gpt-oss-20b", usage=ChatUsage(1000, 500)))])
    with runtrace.run("local") as run:
        fake.openai(base_url=base_url).chat.completions.create(model="gpt-oss-20b", messages=USER)
    a = dict(one_llm_span(instrumented).attributes)
    assert a[sc.GEN_AI_PROVIDER_NAME] == "local"
    assert (a[sc.COST_SOURCE], a[sc.COST_UNPRICED_REASON]) == (sc.SOURCE_UNKNOWN, "local_model")
    assert sc.COST_USD not in a
    stored = instrumented.stored_run(run.id)
    assert (stored["cost_usd"], stored["unpriced_calls"], stored["input_tokens"]) == (0.0, 1, 1000)


def test_a_local_model_priced_by_an_override_per_token(instrumented, monkeypatch):
    pricer = pricing.Pricer({"local:qwen3": {"input_per_mtok": 0.5, "output_per_mtok": 2.0}})
    monkeypatch.setattr(pricing, "default_pricer", lambda: pricer)  # as instrument(prices=...) would
    fake = FakeLLM([json_reply(chat_completion(model="qwen3", usage=ChatUsage(1000, 500)))])
    fake.openai(base_url="http://localhost:11434/v1").chat.completions.create(model="qwen3", messages=USER)
    a = dict(one_llm_span(instrumented).attributes)
    # 1000 * 0.5 / 1e6 + 500 * 2.0 / 1e6
    assert (a[sc.COST_USD], a[sc.COST_SOURCE]) == (0.0015, sc.SOURCE_OVERRIDE)


def test_a_local_model_priced_by_an_override_per_second(instrumented, monkeypatch):
    pricer = pricing.Pricer({"qwen3": {"per_second": 0.5}})
    monkeypatch.setattr(pricing, "default_pricer", lambda: pricer)  # as instrument(prices=...) would
    fake = FakeLLM([json_reply(chat_completion(model="qwen3", usage=ChatUsage(1000, 500)))])
    t0 = time.monotonic()
    fake.openai(base_url="http://127.0.0.1:11434/v1").chat.completions.create(model="qwen3", messages=USER)
    elapsed = time.monotonic() - t0
    a = dict(one_llm_span(instrumented).attributes)
    assert a[sc.COST_SOURCE] == sc.SOURCE_OVERRIDE
    assert 0 < a[sc.COST_USD] <= 0.5 * elapsed


def test_local_is_unpriced_in_the_pricer_itself():
    usage = pricing.TokenUsage(input_tokens=1000, output_tokens=500)
    price = pricing.Pricer().price(usage, model="gpt-4o-mini", provider="local")
    assert (price.total_usd, price.unpriced_reason) == (None, "local_model")
    free = pricing.Pricer({"local:gpt-4o-mini": {"input_per_mtok": 0, "output_per_mtok": 0}})
    assert free.price(usage, model="gpt-4o-mini", provider="local").total_usd == 0.0


# --- malformed responses and budgets, for every kind of endpoint ----------------------------

ENDPOINTS = [("https://api.deepseek.com/v1", "deepseek-chat", "deepseek"),
             ("https://api.groq.com/openai/v1", "llama-3.3-70b-versatile", "groq"),
             ("azure", "gpt-4o-mini", "azure.ai.openai"),
             ("http://localhost:11434/v1", "qwen3", "local")]


def _client(fake: FakeLLM, base_url: str):
    return azure_client(fake) if base_url == "azure" else fake.openai(base_url=base_url)


@pytest.mark.parametrize(("base_url", "model", "provider"), ENDPOINTS, ids=[row[2] for row in ENDPOINTS])
def test_missing_usage_is_returned_untouched_and_counted_unpriced(instrumented, base_url, model, provider):
    body = chat_completion(model=model, usage=None, content="No usage here.")
    fake = FakeLLM([json_reply(body)])
    with runtrace.run("no usage") as run:
        reply = _client(fake, base_url).chat.completions.create(model=model, messages=USER)
    assert reply.choices[0].message.content == "No usage here."
    assert reply.usage is None
    a = dict(one_llm_span(instrumented).attributes)
    assert a[sc.GEN_AI_PROVIDER_NAME] == provider
    assert (a[sc.COST_SOURCE], a[sc.COST_UNPRICED_REASON], a[sc.USAGE_MISSING]) == (
        sc.SOURCE_UNKNOWN, "missing_usage", True)
    stored = instrumented.stored_run(run.id)
    assert (stored["cost_usd"], stored["unpriced_calls"]) == (0.0, 1)


@pytest.mark.parametrize(("base_url", "model", "provider"), ENDPOINTS, ids=[row[2] for row in ENDPOINTS])
def test_budget_stops_the_call_before_it_is_sent(instrumented, base_url, model, provider):
    fake = FakeLLM(default=json_reply(chat_completion(model=model, usage=ChatUsage(1000, 500))))
    client = _client(fake, base_url)
    with pytest.raises(runtrace.BudgetExceeded) as caught:
        with runtrace.run("budgeted", budget=runtrace.Budget(max_llm_calls=1)) as run:
            client.chat.completions.create(model=model, messages=USER)
            client.chat.completions.create(model=model, messages=USER)
    assert caught.value.limit == "max_llm_calls"
    assert len(fake.requests) == 1
    stored = instrumented.stored_run(run.id)
    assert (stored["llm_calls"], stored["outcome"]) == (1, "budget_stopped")


def test_a_cost_budget_uses_the_recognised_providers_prices(instrumented):
    # Each DeepSeek call costs $0.00078 at DeepSeek's prices, so a $0.002 budget allows two
    # calls and stops the third before it is sent.
    fake = FakeLLM(default=json_reply(chat_completion(model="deepseek-chat", usage=ChatUsage(1000, 500, 200))))
    client = fake.openai(base_url="https://api.deepseek.com/v1")
    with pytest.raises(runtrace.BudgetExceeded):
        with runtrace.run("cost budget", budget=runtrace.Budget(max_cost_usd=0.002)) as run:
            for _ in range(5):
                client.chat.completions.create(model="deepseek-chat", messages=USER)
    stored = instrumented.stored_run(run.id)
    assert len(fake.requests) == stored["llm_calls"]
    assert stored["cost_usd"] == pytest.approx(0.00078 * stored["llm_calls"], abs=1e-12)
    assert stored["llm_calls"] in (2,)


# --- endpoints.py on its own ------------------------------------------------------------------

@pytest.mark.parametrize(("url", "provider"), [
    ("https://api.openai.com/v1", "openai"),
    ("https://api.openai.test/v1", "openai"),
    ("https://api.deepseek.com", "deepseek"),
    ("https://api.groq.com/openai/v1", "groq"),
    ("https://openrouter.ai/api/v1", "openrouter"),
    ("https://api.x.ai/v1", "x_ai"),
    ("https://api.mistral.ai/v1", "mistral_ai"),
    ("https://api.moonshot.cn/v1", "moonshotai"),
    ("https://api.perplexity.ai", "perplexity"),
    ("https://api.cerebras.ai/v1", "cerebras"),  # any genai-prices provider, no table entry here
    ("https://contoso.openai.azure.com/openai/", "azure.ai.openai"),
    ("https://generativelanguage.googleapis.com/v1beta/openai/", "gcp.gemini"),
    ("http://localhost:1234/v1", "local"),
    ("http://10.0.0.7:8000/v1", "local"),
    ("http://host.docker.internal:11434/v1", "local"),
    ("not a url", "openai"),
])
def test_provider_of_url(url, provider):
    assert endpoints.provider_of_url(url) == provider



# --- the per-provider view ---------------------------------------------------------------------

def _three_provider_runs(instrumented) -> None:
    replies = {"deepseek": ("https://api.deepseek.com/v1", "deepseek-chat", ChatUsage(1000, 500, 200)),
               "openai": ("https://api.openai.com/v1", "gpt-4o-mini", ChatUsage(1000, 500)),
               "local": ("http://localhost:11434/v1", "qwen3", ChatUsage(1000, 500))}
    for name, (base_url, model, usage) in replies.items():
        fake = FakeLLM(default=json_reply(chat_completion(model=model, usage=usage, service_tier=None)))
        with runtrace.run(f"on {name}") as run:
            for _ in range(2):
                fake.openai(base_url=base_url).chat.completions.create(model=model, messages=USER)
            run.accept()


def test_report_by_provider_splits_by_the_recognised_provider(instrumented):
    from runtrace.report import build_report

    _three_provider_runs(instrumented)
    store = instrumented.open_store()
    try:
        report = build_report(store, by="provider")
    finally:
        store.close()
    rows = {r.group: (r.runs, r.llm_calls, round(r.cost_usd, 10), r.unpriced_calls) for r in report.groups}
    # 2 DeepSeek calls at $0.00078, 2 gpt-4o-mini calls at $0.00045, 2 unpriced local calls.
    assert rows == {"deepseek": (1, 2, 0.00156, 0), "openai": (1, 2, 0.0009, 0), "local": (1, 2, 0.0, 2)}
    assert [r.group for r in report.groups][:2] == ["deepseek", "openai"]  # biggest spend first


def test_reprice_a_run_onto_deepseek_and_onto_a_local_model(instrumented):
    from runtrace.reprice import reprice

    _three_provider_runs(instrumented)
    store = instrumented.open_store()
    try:
        on_deepseek = reprice(store, model="deepseek-chat", provider="deepseek")
        local = pricing.Pricer({"local:qwen3": {"input_per_mtok": 0.1, "output_per_mtok": 0.2}})
        on_local = reprice(store, model="qwen3", provider="local", pricer=local)
        with pytest.raises(ValueError, match="no price known for model 'qwen3' of provider 'local'"):
            reprice(store, model="qwen3", provider="local", pricer=pricing.Pricer())
    finally:
        store.close()
    # 6 calls of 1000 in / 500 out at DeepSeek's prices: 6 * (1000*0.27 + 500*1.10) / 1e6
    # (the target has no cached-read split for calls recorded without one; deepseek's own runs had 200 cached)
    assert on_deepseek.calls == 6
    assert round(on_deepseek.repriced_usd, 10) == round(
        2 * 0.00078 + 4 * (1000 * 0.27 + 500 * 1.10) / 1e6, 10)
    # The same on a local model at $0.10 / $0.20 per Mtok: 6 * (1000*0.1 + 500*0.2) / 1e6
    assert round(on_local.repriced_usd, 10) == 0.0012
