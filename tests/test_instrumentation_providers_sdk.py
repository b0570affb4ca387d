"""google-genai, boto3 bedrock-runtime and mistralai, real clients against tests/provider_fakes.

Prices are hand-computed from list prices and checked equal to ``genai_prices.calc_price``:
- gemini-2.5-flash: $0.30/M input, $0.03/M cached input, $2.50/M output (thoughts billed as output)
- anthropic.claude-3-5-haiku on Bedrock: $0.80/M input, $0.08/M cache read, $1.00/M cache write, $4/M output
- mistral-large-latest: $2/M input, $6/M output
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import genai_prices
import pytest

import runtrace
from provider_fakes import FakeProviders, Reply, event_stream_reply, json_reply, sse_reply
from runtrace import semconv as sc

genai = pytest.importorskip("google.genai")
boto3 = pytest.importorskip("boto3")
mistral_client = pytest.importorskip("mistralai.client")

# google-genai's async client subclasses aiohttp's ClientSession, which aiohttp deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    with FakeProviders() as server:
        yield server


def calc(model: str, provider: str, **usage: int) -> float:
    return float(genai_prices.calc_price(genai_prices.Usage(**usage), model, provider_id=provider).total_price)


# --- Gemini -----------------------------------------------------------------------------------

GEMINI = "gemini-2.5-flash"
GEMINI_USAGE = {"promptTokenCount": 1000, "cachedContentTokenCount": 400, "candidatesTokenCount": 50,
                "thoughtsTokenCount": 30, "totalTokenCount": 1080}
# 600 uncached * 0.30 + 400 cached * 0.03 + 80 output * 2.50, per million
GEMINI_USD = (600 * 0.30 + 400 * 0.03 + 80 * 2.50) / 1e6


def gemini_body(text: str = "Hi", usage: dict[str, Any] | None = GEMINI_USAGE) -> dict[str, Any]:
    body: dict[str, Any] = {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                                            "finishReason": "STOP"}],
                            "modelVersion": GEMINI, "responseId": "resp-1"}
    if usage is not None:
        body["usageMetadata"] = usage
    return body


def gemini_client(fake: FakeProviders) -> Any:
    return genai.Client(api_key="x", http_options={"base_url": fake.url})


def assert_gemini_span(a: Any) -> None:
    assert a[sc.GEN_AI_PROVIDER_NAME] == "gcp.gemini"
    assert a[sc.GEN_AI_OPERATION_NAME] == "generate_content"
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1000  # promptTokenCount already includes the cached 400
    assert a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 400
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 80  # candidates + thoughts
    assert a[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 30
    assert a[sc.COST_USD] == pytest.approx(GEMINI_USD, abs=1e-12)
    assert a[sc.COST_USD] == pytest.approx(calc(GEMINI, "google", input_tokens=1000, cache_read_tokens=400,
                                                output_tokens=80), abs=1e-12)


def test_gemini_generate_content_exact_tokens_and_dollars(instrumented, fake):
    fake.replies.append(json_reply(gemini_body()))
    client = gemini_client(fake)  # kept: a dropped genai.Client closes its HTTP client
    with runtrace.run("gemini") as run:
        response = client.models.generate_content(
            model=GEMINI, contents="hello", config={"max_output_tokens": 64, "temperature": 0.5})
    assert response.text == "Hi"
    [span] = instrumented.llm_spans()
    assert span.name == f"generate_content {GEMINI}"
    a = span.attributes
    assert_gemini_span(a)
    assert a[sc.GEN_AI_REQUEST_MAX_TOKENS] == 64 and a[sc.GEN_AI_RESPONSE_ID] == "resp-1"
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("STOP",)
    assert run.totals.llm_calls == 1 and run.totals.cost_usd == pytest.approx(GEMINI_USD, abs=1e-12)


def test_gemini_stream_and_async(instrumented, fake):
    client = gemini_client(fake)
    fake.replies.append(sse_reply([gemini_body("H", usage=None), gemini_body("i")]))
    assert [c.text for c in client.models.generate_content_stream(model=GEMINI, contents="hello")] == ["H", "i"]

    async def go() -> list[str]:
        fake.replies.append(json_reply(gemini_body()))
        first = await client.aio.models.generate_content(model=GEMINI, contents="hello")
        fake.replies.append(sse_reply([gemini_body()]))
        stream = await client.aio.models.generate_content_stream(model=GEMINI, contents="hello")
        return [first.text or ""] + [c.text or "" async for c in stream]

    assert asyncio.run(go()) == ["Hi", "Hi"]
    spans = instrumented.llm_spans()
    assert len(spans) == 3
    for span in spans:
        assert_gemini_span(span.attributes)
    assert [s.attributes.get(sc.STREAM_ENDED_BY) for s in spans] == ["exhausted", None, "exhausted"]


def test_gemini_missing_usage_is_unpriced_and_returned(instrumented, fake):
    fake.replies.append(json_reply(gemini_body(usage=None)))
    client = gemini_client(fake)
    with runtrace.run("gemini no usage") as run:
        response = client.models.generate_content(model=GEMINI, contents="hello")
    assert response.text == "Hi" and response.usage_metadata is None
    a = instrumented.llm_spans()[0].attributes
    assert a[sc.USAGE_MISSING] is True and a[sc.COST_SOURCE] == sc.SOURCE_UNKNOWN
    assert run.totals.unpriced_calls == 1


def test_gemini_budget_stops_before_sending(instrumented, fake):
    fake.replies.append(json_reply(gemini_body()))
    client = gemini_client(fake)
    with pytest.raises(runtrace.BudgetExceeded):
        with runtrace.run("gemini budget", budget=runtrace.Budget(max_llm_calls=1)):
            client.models.generate_content(model=GEMINI, contents="hello")
            client.models.generate_content(model=GEMINI, contents="hello")
    assert len(fake.requests) == 1


# --- Bedrock ----------------------------------------------------------------------------------

HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
CONVERSE_USAGE = {"inputTokens": 1000, "outputTokens": 200, "totalTokens": 1700,
                  "cacheReadInputTokens": 500, "cacheWriteInputTokens": 100}
# inputTokens excludes the cache parts: 1000 * 0.80 + 500 * 0.08 + 100 * 1.00 + 200 * 4.00, per million
CONVERSE_USD = (1000 * 0.80 + 500 * 0.08 + 100 * 1.00 + 200 * 4.00) / 1e6
USER = [{"role": "user", "content": [{"text": "hello"}]}]


def bedrock_client(fake: FakeProviders) -> Any:
    return boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=fake.url,
                        aws_access_key_id="x", aws_secret_access_key="x")


def converse_body(usage: dict[str, Any] | None = CONVERSE_USAGE) -> dict[str, Any]:
    body: dict[str, Any] = {"output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}},
                            "stopReason": "end_turn", "metrics": {"latencyMs": 5}}
    if usage is not None:
        body["usage"] = usage
    return body


def test_bedrock_converse_exact_tokens_and_dollars(instrumented, fake):
    fake.replies.append(json_reply(converse_body()))
    with runtrace.run("bedrock") as run:
        result = bedrock_client(fake).converse(modelId=HAIKU, messages=USER, inferenceConfig={"maxTokens": 64})
    assert result["output"]["message"]["content"] == [{"text": "Hi"}]
    [span] = instrumented.llm_spans()
    a = span.attributes
    assert span.name == f"chat {HAIKU}"
    assert a[sc.GEN_AI_PROVIDER_NAME] == "aws.bedrock" and a[sc.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1600  # total: 1000 + 500 read + 100 written
    assert a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 500
    assert a[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == 100
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 200
    assert a[sc.COST_USD] == pytest.approx(CONVERSE_USD, abs=1e-12)
    assert a[sc.COST_USD] == pytest.approx(calc(HAIKU, "aws", input_tokens=1600, cache_read_tokens=500,
                                                cache_write_tokens=100, output_tokens=200), abs=1e-12)
    assert run.totals.cost_usd == pytest.approx(CONVERSE_USD, abs=1e-12)


def test_bedrock_inference_profile_is_priced(instrumented, fake):
    fake.replies.append(json_reply(converse_body({"inputTokens": 1000, "outputTokens": 100})))
    bedrock_client(fake).converse(modelId="us.anthropic.claude-sonnet-4-20250514-v1:0", messages=USER)
    a = instrumented.llm_spans()[0].attributes
    assert a[sc.COST_USD] == pytest.approx((1000 * 3 + 100 * 15) / 1e6, abs=1e-12)


def test_bedrock_converse_stream_event_stream_encoding(instrumented, fake):
    fake.replies.append(event_stream_reply([
        ("messageStart", {"role": "assistant"}),
        ("contentBlockDelta", {"delta": {"text": "H"}, "contentBlockIndex": 0}),
        ("contentBlockDelta", {"delta": {"text": "i"}, "contentBlockIndex": 0}),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("messageStop", {"stopReason": "end_turn"}),
        ("metadata", {"usage": CONVERSE_USAGE, "metrics": {"latencyMs": 5}}),
    ]))
    result = bedrock_client(fake).converse_stream(modelId=HAIKU, messages=USER)
    events = list(result["stream"])
    assert [next(iter(e)) for e in events] == ["messageStart", "contentBlockDelta", "contentBlockDelta",
                                              "contentBlockStop", "messageStop", "metadata"]
    [span] = instrumented.llm_spans()
    a = span.attributes
    assert a[sc.STREAM_ENDED_BY] == "exhausted" and a[sc.GEN_AI_REQUEST_STREAM] is True
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1600
    assert a[sc.COST_USD] == pytest.approx(CONVERSE_USD, abs=1e-12)


def test_bedrock_converse_stream_broken_off_is_unpriced(instrumented, fake):
    fake.replies.append(event_stream_reply([
        ("messageStart", {"role": "assistant"}),
        ("contentBlockDelta", {"delta": {"text": "H"}, "contentBlockIndex": 0}),
        ("metadata", {"usage": CONVERSE_USAGE}),
    ]))
    result = bedrock_client(fake).converse_stream(modelId=HAIKU, messages=USER)
    for _event in result["stream"]:
        break
    del result, _event
    import gc

    gc.collect()
    [span] = instrumented.llm_spans()
    assert span.attributes[sc.STREAM_ENDED_BY] == "abandoned"
    assert span.attributes[sc.USAGE_MISSING] is True


def test_bedrock_invoke_model_anthropic_body_stays_readable(instrumented, fake):
    body = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-20241022",
            "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 1000, "output_tokens": 200, "cache_read_input_tokens": 500,
                      "cache_creation_input_tokens": 100}}
    fake.replies.append(Reply(json.dumps(body).encode()))
    request = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64,
               "messages": [{"role": "user", "content": "hello"}]}
    result = bedrock_client(fake).invoke_model(modelId=HAIKU, body=json.dumps(request))
    assert json.loads(result["body"].read()) == body
    a = instrumented.llm_spans()[0].attributes
    assert a[sc.GEN_AI_RESPONSE_ID] == "msg_1" and a[sc.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1600 and a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 500
    assert a[sc.COST_USD] == pytest.approx(CONVERSE_USD, abs=1e-12)


def test_bedrock_invoke_model_other_models_use_token_headers(instrumented, fake):
    fake.replies.append(Reply(b'{"output": "Hi"}', headers={"x-amzn-bedrock-input-token-count": "1000",
                                                              "x-amzn-bedrock-output-token-count": "1000"}))
    result = bedrock_client(fake).invoke_model(modelId="amazon.nova-lite-v1:0", body=b'{"prompt": "hello"}')
    assert result["body"].read() == b'{"output": "Hi"}'
    a = instrumented.llm_spans()[0].attributes
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1000 and a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 1000
    assert a[sc.COST_USD] == pytest.approx((1000 * 0.06 + 1000 * 0.24) / 1e6, abs=1e-12)


def test_bedrock_invoke_model_with_response_stream(instrumented, fake):
    events = [{"type": "message_start", "message": {"id": "msg_2", "model": "claude-3-5-haiku-20241022",
                                                     "usage": {"input_tokens": 1000, "output_tokens": 1}}},
              {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
              {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 200}},
              {"type": "message_stop"}]
    fake.replies.append(event_stream_reply(
        ("chunk", {"bytes": base64.b64encode(json.dumps(e).encode()).decode()}) for e in events))
    result = bedrock_client(fake).invoke_model_with_response_stream(
        modelId=HAIKU, body=json.dumps({"max_tokens": 64, "messages": [{"role": "user", "content": "hello"}]}))
    assert [json.loads(e["chunk"]["bytes"])["type"] for e in result["body"]][-1] == "message_stop"
    a = instrumented.llm_spans()[0].attributes
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1000 and a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 200
    assert a[sc.COST_USD] == pytest.approx((1000 * 0.80 + 200 * 4.00) / 1e6, abs=1e-12)


def test_bedrock_missing_usage_unpriced_and_other_services_untouched(instrumented, fake):
    fake.replies.append(json_reply(converse_body(usage=None)))
    with runtrace.run("bedrock no usage") as run:
        result = bedrock_client(fake).converse(modelId=HAIKU, messages=USER)
    assert "usage" not in result and result["stopReason"] == "end_turn"
    a = instrumented.llm_spans()[0].attributes
    assert a[sc.USAGE_MISSING] is True and a[sc.COST_SOURCE] == sc.SOURCE_UNKNOWN
    assert run.totals.unpriced_calls == 1
    fake.replies.append(json_reply({"modelSummaries": []}))
    boto3.client("bedrock", region_name="us-east-1", endpoint_url=fake.url, aws_access_key_id="x",
                 aws_secret_access_key="x").list_foundation_models()
    assert len(instrumented.llm_spans()) == 1  # the control-plane service is not an LLM call


def test_bedrock_budget_stops_before_sending(instrumented, fake):
    fake.replies.append(json_reply(converse_body()))
    client = bedrock_client(fake)
    with pytest.raises(runtrace.BudgetExceeded):
        with runtrace.run("bedrock budget", budget=runtrace.Budget(max_llm_calls=1)):
            client.converse(modelId=HAIKU, messages=USER)
            client.converse_stream(modelId=HAIKU, messages=USER)
    assert len(fake.requests) == 1


# --- Mistral ----------------------------------------------------------------------------------

LARGE = "mistral-large-latest"
MISTRAL_USD = (1000 * 2 + 200 * 6) / 1e6
MISTRAL_USAGE = {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200}
MESSAGES = [{"role": "user", "content": "hello"}]


def mistral_body(usage: dict[str, Any] | None = MISTRAL_USAGE) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "c1", "object": "chat.completion", "created": 1, "model": LARGE,
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"},
                                         "finish_reason": "stop"}]}
    if usage is not None:
        body["usage"] = usage
    return body


def mistral_chunks() -> list[dict[str, Any]]:
    head = {"id": "c2", "object": "chat.completion.chunk", "created": 1, "model": LARGE}
    return [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": None}]},
            {**head, "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}],
             "usage": MISTRAL_USAGE}]


def test_mistral_sync_async_and_streams(instrumented, fake):
    client = mistral_client.Mistral(api_key="x", server_url=fake.url)
    fake.replies.append(json_reply(mistral_body()))
    with runtrace.run("mistral") as run:
        response = client.chat.complete(model=LARGE, messages=MESSAGES, max_tokens=64)
        fake.replies.append(sse_reply(mistral_chunks(), done=True))
        texts = [e.data.choices[0].delta.content for e in client.chat.stream(model=LARGE, messages=MESSAGES)]

        async def go() -> None:
            fake.replies.append(json_reply(mistral_body()))
            await client.chat.complete_async(model=LARGE, messages=MESSAGES)
            fake.replies.append(sse_reply(mistral_chunks(), done=True))
            stream = await client.chat.stream_async(model=LARGE, messages=MESSAGES)
            assert [e.data.choices[0].delta.content async for e in stream] == ["Hi", ""]

        asyncio.run(go())
    assert response.choices[0].message.content == "Hi" and texts == ["Hi", ""]
    spans = instrumented.llm_spans()
    assert len(spans) == 4
    expected = calc(LARGE, "mistral", input_tokens=1000, output_tokens=200)
    for span in spans:
        a = span.attributes
        assert span.name == f"chat {LARGE}" and a[sc.GEN_AI_PROVIDER_NAME] == "mistral_ai"
        assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1000 and a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 200
        assert a[sc.COST_USD] == pytest.approx(MISTRAL_USD, abs=1e-12)
        assert a[sc.COST_USD] == pytest.approx(expected, abs=1e-12)
    assert spans[0].attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert [s.attributes.get(sc.STREAM_ENDED_BY) for s in spans] == [None, "exhausted", None, "exhausted"]
    assert run.totals.cost_usd == pytest.approx(4 * MISTRAL_USD, abs=1e-12)


def test_mistral_missing_usage_unpriced_and_budget(instrumented, fake):
    """The SDK itself rejects a completion without usage; a stream without its usage chunk passes."""
    client = mistral_client.Mistral(api_key="x", server_url=fake.url)
    chunks = mistral_chunks()
    del chunks[-1]["usage"]
    fake.replies.append(sse_reply(chunks, done=True))
    with pytest.raises(runtrace.BudgetExceeded):
        with runtrace.run("mistral", budget=runtrace.Budget(max_llm_calls=1)) as run:
            texts = [e.data.choices[0].delta.content for e in client.chat.stream(model=LARGE, messages=MESSAGES)]
            client.chat.complete(model=LARGE, messages=MESSAGES)
    assert texts == ["Hi", ""]
    assert len(fake.requests) == 1
    a = instrumented.llm_spans()[0].attributes
    assert a[sc.USAGE_MISSING] is True and a[sc.COST_SOURCE] == sc.SOURCE_UNKNOWN
    assert run.totals.unpriced_calls == 1


def test_hand_computed_prices_match_genai_prices():
    """The list prices the expectations above are written from are the ones genai-prices has."""
    assert Decimal(str(GEMINI_USD)) == pytest.approx(Decimal(str(calc(GEMINI, "google", input_tokens=1000,
                                                                       cache_read_tokens=400, output_tokens=80))))
    assert MISTRAL_USD == pytest.approx(calc(LARGE, "mistral", input_tokens=1000, output_tokens=200), abs=1e-12)


def test_uninstrument_restores_every_patched_method(instrumented):
    import botocore.client
    import google.genai.models as genai_models
    import mistralai.client.chat as mistral_chat

    from runtrace.instrumentation import bedrock, gemini, mistral

    assert bedrock.patched_methods() == ["botocore.client:BaseClient._make_api_call"]
    assert len(gemini.patched_methods()) == 4 and len(mistral.patched_methods()) == 4
    runtrace.uninstrument()
    assert bedrock.patched_methods() == gemini.patched_methods() == mistral.patched_methods() == []
    for owner, name in ((botocore.client.BaseClient, "_make_api_call"), (genai_models.Models, "_generate_content"),
                        (mistral_chat.Chat, "complete")):
        assert not getattr(vars(owner)[name], "_self_runtrace_patch", False), name
