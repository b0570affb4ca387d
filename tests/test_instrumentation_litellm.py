"""The LiteLLM instrumentation through real ``litellm.completion`` / ``acompletion``.

LiteLLM builds its own HTTP clients, so its fake is a real HTTP server on
127.0.0.1 speaking chat completions (tests/compat_server.py), reached with
``api_base``; with ``client=`` LiteLLM uses a given openai client, here over a
mock transport. ``LITELLM_LOCAL_MODEL_COST_MAP`` keeps LiteLLM offline.
(Importing litellm takes several seconds.)
"""

from __future__ import annotations

import asyncio
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import genai_prices  # noqa: E402
import pytest  # noqa: E402

litellm = pytest.importorskip("litellm")

import runtrace  # noqa: E402
from compat_server import compat_server  # noqa: E402
from llm_fakes import ChatUsage, FakeLLM, chat_chunks, chat_completion, chat_sse_reply, json_reply  # noqa: E402
from runtrace import semconv as sc  # noqa: E402
from runtrace.instrumentation import litellm as litellm_instr  # noqa: E402

# LiteLLM's own warnings (pydantic schema notes, its deprecations) are not runtrace's.
pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")]

USER = [{"role": "user", "content": "Which test is flaky?"}]
# deepseek-chat: $0.27 in, $0.07 cache read, $1.10 out per Mtok: 800*0.27 + 200*0.07 + 500*1.10
DEEPSEEK_USAGE = ChatUsage(1000, 500, 200)
DEEPSEEK_USD = 0.00078


def deepseek_reply(**kwargs):
    return json_reply(chat_completion(model="deepseek-chat", usage=DEEPSEEK_USAGE, service_tier=None, **kwargs))


def test_bare_litellm_talks_to_the_fake():
    with compat_server([deepseek_reply(content="It is test_retry.")]) as server:
        reply = litellm.completion(model="deepseek/deepseek-chat", messages=USER, api_base=server.base_url,
                                   api_key="x")
    assert reply.choices[0].message.content == "It is test_retry."
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (1000, 500)
    assert server.paths() == ["/v1/chat/completions"]


def test_four_calls_make_four_priced_spans(instrumented):
    # The case: a run of 4 LiteLLM calls showed $0 and unpriced_calls=0.
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=200),
        model_ref="deepseek-chat", provider_id="deepseek").total_price
    assert float(expected) == DEEPSEEK_USD
    with compat_server(default=deepseek_reply()) as server, runtrace.run("litellm run", project="p") as run:
        for _ in range(4):
            litellm.completion(model="deepseek/deepseek-chat", messages=USER, api_base=server.base_url,
                               api_key="x")
    spans = instrumented.llm_spans()
    assert len(spans) == 4
    for span in spans:
        a = dict(span.attributes)
        assert span.instrumentation_scope.name == "runtrace.instrumentation.litellm"
        assert span.name == "chat deepseek-chat"
        assert (a[sc.GEN_AI_PROVIDER_NAME], a[sc.GEN_AI_REQUEST_MODEL], a[sc.GEN_AI_RESPONSE_MODEL]) == (
            "deepseek", "deepseek-chat", "deepseek-chat")
        assert (a[sc.GEN_AI_USAGE_INPUT_TOKENS], a[sc.GEN_AI_USAGE_OUTPUT_TOKENS],
                a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS]) == (1000, 500, 200)
        assert (a[sc.COST_USD], a[sc.COST_SOURCE]) == (DEEPSEEK_USD, sc.SOURCE_GENAI_PRICES)
        assert a[sc.SERVER_ADDRESS] == "127.0.0.1"
    stored = instrumented.stored_run(run.id)
    assert (stored["llm_calls"], stored["unpriced_calls"], stored["input_tokens"]) == (4, 0, 4000)
    assert stored["cost_usd"] == pytest.approx(4 * DEEPSEEK_USD, abs=1e-12)


def test_positional_model_and_messages(instrumented):
    with compat_server([deepseek_reply()]) as server:
        litellm.completion("deepseek/deepseek-chat", USER, api_base=server.base_url, api_key="x")
    (span,) = instrumented.llm_spans()
    assert dict(span.attributes)[sc.COST_USD] == DEEPSEEK_USD


def test_through_the_openai_client_one_span_not_two(instrumented):
    # LiteLLM's openai provider uses the given openai client (itself instrumented):
    # the span is LiteLLM's, the openai-level one passes through.
    fake = FakeLLM([json_reply(chat_completion(model="gpt-4o-mini-2024-07-18", usage=ChatUsage(1000, 500)))])
    client = fake.openai(base_url="https://api.openai.com/v1")
    reply = litellm.completion(model="gpt-4o-mini", messages=USER, client=client, api_key="x")
    assert reply.usage.prompt_tokens == 1000
    assert len(fake.requests) == 1
    (span,) = instrumented.llm_spans()
    a = dict(span.attributes)
    assert span.instrumentation_scope.name == "runtrace.instrumentation.litellm"
    # gpt-4o-mini: $0.15 in, $0.60 out
    assert (a[sc.GEN_AI_PROVIDER_NAME], a[sc.COST_USD]) == ("openai", 0.00045)


def test_openai_prefix_to_a_local_server_is_local(instrumented):
    with compat_server([json_reply(chat_completion(model="qwen3", usage=ChatUsage(1000, 500)))]) as server, \
            runtrace.run("local") as run:
        litellm.completion(model="openai/qwen3", messages=USER, api_base=server.base_url, api_key="x")
    (span,) = instrumented.llm_spans()
    a = dict(span.attributes)
    assert (a[sc.GEN_AI_PROVIDER_NAME], a[sc.COST_UNPRICED_REASON]) == ("local", "local_model")
    assert instrumented.stored_run(run.id)["unpriced_calls"] == 1


def test_streaming_one_span_with_usage(instrumented):
    chunks = chat_chunks(model="deepseek-chat", pieces=("It ", "is ", "flaky."), usage=DEEPSEEK_USAGE)
    with compat_server([chat_sse_reply(chunks)]) as server:
        stream = litellm.completion(model="deepseek/deepseek-chat", messages=USER, api_base=server.base_url,
                                    api_key="x", stream=True, stream_options={"include_usage": True})
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "It is flaky."
    (span,) = instrumented.llm_spans()
    a = dict(span.attributes)
    assert a[sc.GEN_AI_REQUEST_STREAM] is True
    assert a[sc.STREAM_ENDED_BY] == sc.STREAM_ENDED_EXHAUSTED
    assert (a[sc.GEN_AI_USAGE_INPUT_TOKENS], a[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (1000, 500)
    assert a[sc.COST_USD] == DEEPSEEK_USD


def test_acompletion_and_async_streaming(instrumented):
    chunks = chat_chunks(model="deepseek-chat", usage=DEEPSEEK_USAGE)

    async def main(base_url: str) -> str:
        await litellm.acompletion(model="deepseek/deepseek-chat", messages=USER, api_base=base_url, api_key="x")
        stream = await litellm.acompletion(model="deepseek/deepseek-chat", messages=USER, api_base=base_url,
                                           api_key="x", stream=True, stream_options={"include_usage": True})
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    with compat_server([deepseek_reply(), chat_sse_reply(chunks)]) as server:
        assert asyncio.run(main(server.base_url)) == "Hello!"
    spans = instrumented.llm_spans()
    assert len(spans) == 2
    assert [dict(s.attributes)[sc.COST_USD] for s in spans] == [DEEPSEEK_USD, DEEPSEEK_USD]
    assert [dict(s.attributes).get(sc.GEN_AI_REQUEST_STREAM) for s in spans] == [None, True]


def test_missing_usage_is_returned_untouched_and_unpriced(instrumented):
    body = chat_completion(model="deepseek-chat", usage=None, content="No usage.")
    with compat_server([json_reply(body)]) as server, runtrace.run("no usage") as run:
        reply = litellm.completion(model="deepseek/deepseek-chat", messages=USER, api_base=server.base_url,
                                   api_key="x")
    assert reply.choices[0].message.content == "No usage."
    (span,) = instrumented.llm_spans()
    a = dict(span.attributes)
    assert (a[sc.COST_SOURCE], a[sc.COST_UNPRICED_REASON], a[sc.USAGE_MISSING]) == (
        sc.SOURCE_UNKNOWN, "missing_usage", True)
    stored = instrumented.stored_run(run.id)
    assert (stored["cost_usd"], stored["unpriced_calls"]) == (0.0, 1)


@pytest.mark.parametrize("model", ["deepseek/deepseek-chat", "openai/gpt-4o-mini", "groq/llama-3.3-70b-versatile"])
def test_budget_exceeded_reaches_the_caller_as_itself_before_sending(instrumented, model):
    with compat_server(default=deepseek_reply()) as server:
        with pytest.raises(runtrace.BudgetExceeded) as caught:
            with runtrace.run("budgeted", budget=runtrace.Budget(max_llm_calls=1)) as run:
                for _ in range(2):
                    litellm.completion(model=model, messages=USER, api_base=server.base_url, api_key="x")
        assert type(caught.value) is runtrace.BudgetExceeded
        assert caught.value.limit == "max_llm_calls"
        assert len(server.requests) == 1
    stored = instrumented.stored_run(run.id)
    assert (stored["llm_calls"], stored["outcome"]) == (1, "budget_stopped")


def test_provider_names():
    assert litellm_instr.provider_name("azure", None) == "azure.ai.openai"
    assert litellm_instr.provider_name("xai", None) == "x_ai"
    assert litellm_instr.provider_name("together_ai", None) == "together"
    assert litellm_instr.provider_name("ollama_chat", "http://localhost:11434") == "local"
    assert litellm_instr.provider_name("openai", "https://api.groq.com/openai/v1") == "groq"
    assert litellm_instr.provider_name("openai", None) == "openai"
    assert litellm_instr.provider_name("hosted_vllm", None) == "local"


def test_uninstrument_restores_litellm(instrumented):
    assert "litellm:completion" in litellm_instr.patched_methods()
    runtrace.uninstrument()
    assert litellm_instr.patched_methods() == []
    assert not hasattr(litellm.completion, "_self_runtrace_patch")
