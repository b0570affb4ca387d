"""The openai instrumentation through the real openai client over a mock transport.

Runs against whichever openai is installed (3.x on httpx2, 1.x/2.x on httpx);
llm_fakes picks the matching mock transport. Tests of APIs an old release lacks
(the Responses API) skip there.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import json
import threading

import openai
import pytest
from opentelemetry.trace import SpanKind, StatusCode

import runtrace
from llm_fakes import (
    ChatUsage,
    FakeLLM,
    chat_chunks,
    chat_completion,
    chat_sse_reply,
    embeddings,
    events_reply,
    json_reply,
    openai_error,
    response_events,
    response_object,
    timeout_reply,
    tool_call,
)
from runtrace import _config, detect
from runtrace import semconv as sc
from runtrace.instrumentation import openai as openai_instr
from runtrace.store import queries

USER = [{"role": "user", "content": "What is 2+2?"}]
SNAPSHOT = "gpt-5.5-2026-04-23"
has_responses = pytest.mark.skipif(importlib.util.find_spec("openai.resources.responses") is None,
                                   reason="this openai has no Responses API")


def one_llm_span(instrumented):
    spans = instrumented.llm_spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def chat_parse(client):
    """``chat.completions.parse`` (openai >= 1.92) or ``beta.chat.completions.parse`` (older)."""
    method = getattr(client.chat.completions, "parse", None)
    return method if method is not None else client.beta.chat.completions.parse


# --- plain chat ----------------------------------------------------------------------------

def test_plain_chat_span_attributes_and_store(instrumented):
    fake = FakeLLM([json_reply(chat_completion(usage=ChatUsage(20, 5)))])
    client = fake.openai()
    with runtrace.run("plain chat", project="billing", owner="alice") as run:
        reply = client.chat.completions.create(model="gpt-5.5", messages=USER, temperature=0.2,
                                               max_tokens=64, seed=7, stop="END", n=1)
    assert reply.choices[0].message.content == "Hello!"
    span = one_llm_span(instrumented)
    a = dict(span.attributes)
    assert span.name == "chat gpt-5.5"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert a[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert a[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert a[sc.GEN_AI_REQUEST_MODEL] == "gpt-5.5"
    assert a[sc.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert a[sc.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert a[sc.GEN_AI_REQUEST_SEED] == 7
    assert a[sc.GEN_AI_REQUEST_STOP_SEQUENCES] == ("END",)
    assert sc.GEN_AI_REQUEST_CHOICE_COUNT not in a  # n=1 is the default
    assert sc.GEN_AI_REQUEST_STREAM not in a
    assert a[sc.GEN_AI_RESPONSE_MODEL] == SNAPSHOT
    assert a[sc.GEN_AI_RESPONSE_ID] == "chatcmpl-AbC123"
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 20
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
    assert a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 0
    assert a[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 0
    assert a[sc.SERVER_ADDRESS] == "api.openai.test"
    assert a[sc.SERVER_PORT] == 443
    assert a[sc.OPENAI_RESPONSE_SERVICE_TIER] == "default"
    assert a[sc.RUN_ID] == run.id
    # gpt-5.5: $5 / 1M input, $30 / 1M output
    assert a[sc.COST_USD] == pytest.approx(0.00025, abs=1e-12)
    assert a[sc.COST_INPUT_USD] == pytest.approx(0.0001, abs=1e-12)
    assert a[sc.COST_OUTPUT_USD] == pytest.approx(0.00015, abs=1e-12)
    assert a[sc.COST_SOURCE] == sc.SOURCE_GENAI_PRICES
    assert a[sc.COST_PRICE_TABLE].startswith("genai-prices ")
    assert a[sc.CONTEXT_MESSAGES] == 1
    assert a[sc.CONTEXT_UNCACHED_INPUT_SHARE] == 1.0
    assert sc.GEN_AI_INPUT_MESSAGES not in a and sc.GEN_AI_OUTPUT_MESSAGES not in a  # capture is off
    assert sc.USAGE_MISSING not in a
    stored = instrumented.stored_run(run.id)
    assert stored["llm_calls"] == 1 and stored["unpriced_calls"] == 0
    assert (stored["input_tokens"], stored["output_tokens"], stored["cached_input_tokens"]) == (20, 5, 0)
    assert stored["cost_usd"] == pytest.approx(0.00025, abs=1e-12)
    assert run.totals.llm_calls == 1 and run.totals.cost_usd == pytest.approx(0.00025, abs=1e-12)


def test_worked_example_gpt55_costs_0_051(instrumented):
    """12,000 input (8,000 cached), 900 output (300 reasoning): $0.020 + $0.004 + $0.027."""
    fake = FakeLLM([json_reply(chat_completion(usage=ChatUsage(12_000, 900, 8_000, 300)))])
    with runtrace.run("worked example") as run:
        fake.openai().chat.completions.create(model="gpt-5.5", messages=USER)
    a = one_llm_span(instrumented).attributes
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 12_000
    assert a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 8_000
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 900
    assert a[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 300
    assert a[sc.COST_USD] == pytest.approx(0.051, abs=1e-12)
    assert a[sc.COST_INPUT_USD] == pytest.approx(0.024, abs=1e-12)
    assert a[sc.COST_OUTPUT_USD] == pytest.approx(0.027, abs=1e-12)
    assert a[sc.CONTEXT_UNCACHED_INPUT_SHARE] == pytest.approx(4_000 / 12_000, abs=1e-6)
    stored = instrumented.stored_run(run.id)
    assert stored["cost_usd"] == pytest.approx(0.051, abs=1e-12)
    assert (stored["input_tokens"], stored["cached_input_tokens"], stored["output_tokens"],
            stored["reasoning_tokens"]) == (12_000, 8_000, 900, 300)


def test_the_served_tier_is_priced_not_the_requested_one(instrumented):
    fake = FakeLLM([json_reply(chat_completion(usage=ChatUsage(12_000, 900, 8_000, 300), service_tier="flex"))])
    fake.openai().chat.completions.create(model="gpt-5.5", messages=USER, service_tier="auto")
    a = one_llm_span(instrumented).attributes
    assert sc.OPENAI_REQUEST_SERVICE_TIER not in a  # "auto" is not a tier
    assert a[sc.OPENAI_RESPONSE_SERVICE_TIER] == "flex"
    assert a[sc.COST_SERVICE_TIER] == "flex"
    assert a[sc.COST_TIER_MATCHED] is True
    assert a[sc.COST_USD] == pytest.approx(0.0255, abs=1e-12)  # flex is half the standard price


def test_requested_tier_is_recorded(instrumented):
    fake = FakeLLM([json_reply(chat_completion(service_tier="priority"))])
    fake.openai().chat.completions.create(model="gpt-5.5", messages=USER, service_tier="priority")
    a = one_llm_span(instrumented).attributes
    assert a[sc.OPENAI_REQUEST_SERVICE_TIER] == "priority"
    assert a[sc.OPENAI_RESPONSE_SERVICE_TIER] == "priority"


def test_tool_call_response_records_requested_tools(instrumented):
    calls = [tool_call("call_A1", "read_file", {"path": "src/app.py"}),
             tool_call("call_B2", "run_tests", {"target": "tests/"})]
    fake = FakeLLM([json_reply(chat_completion(content=None, tool_calls=calls, usage=ChatUsage(300, 40)))])
    with runtrace.run("tools") as run:
        reply = fake.openai().chat.completions.create(model="gpt-5.5", messages=USER, tools=[])
    # the run remembers which call id the model gave each (tool, arguments), for the tool spans
    assert run._live.requested_call_id("run_tests", detect.stable_hash({"target": "tests/"})) == "call_B2"
    assert [c.function.name for c in reply.choices[0].message.tool_calls] == ["read_file", "run_tests"]
    a = one_llm_span(instrumented).attributes
    assert a[sc.REQUESTED_TOOL_NAMES] == ("read_file", "run_tests")
    assert a[sc.REQUESTED_TOOL_CALL_IDS] == ("call_A1", "call_B2")
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)


def test_content_is_captured_only_when_enabled(instrumented, monkeypatch):
    monkeypatch.setattr(_config.settings(), "capture_content", True)
    calls = [tool_call("call_A1", "read_file", {"path": "a.py"})]
    fake = FakeLLM([json_reply(chat_completion(content="Reading it.", tool_calls=calls))])
    messages = [{"role": "system", "content": "Be brief."}, *USER,
                {"role": "assistant", "content": None, "tool_calls": calls},
                {"role": "tool", "tool_call_id": "call_A1", "content": "print('hi')"}]
    with runtrace.run("content"):
        fake.openai().chat.completions.create(model="gpt-5.5", messages=messages)
    a = one_llm_span(instrumented).attributes
    assert json.loads(a[sc.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "What is 2+2?"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_A1", "name": "read_file",
                                         "arguments": {"path": "a.py"}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_A1", "result": "print('hi')"}]},
    ]
    assert json.loads(a[sc.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "finish_reason": "tool_calls", "parts": [
            {"type": "text", "content": "Reading it."},
            {"type": "tool_call", "id": "call_A1", "name": "read_file", "arguments": {"path": "a.py"}}]}]
    assert a[sc.CONTEXT_MESSAGES] == 4


def test_parse_is_traced_once(instrumented):
    from pydantic import BaseModel

    class Answer(BaseModel):
        value: int

    fake = FakeLLM([json_reply(chat_completion(content='{"value": 4}', usage=ChatUsage(40, 6)))])
    parsed = chat_parse(fake.openai())(model="gpt-5.5", messages=USER, response_format=Answer)
    assert parsed.choices[0].message.parsed == Answer(value=4)
    a = one_llm_span(instrumented).attributes
    assert a[sc.GEN_AI_OUTPUT_TYPE] == "json"
    assert (a[sc.GEN_AI_USAGE_INPUT_TOKENS], a[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (40, 6)
    assert len(fake.requests) == 1


# --- streams -------------------------------------------------------------------------------

def test_stream_with_usage_chunk(instrumented):
    fake = FakeLLM([chat_sse_reply(chat_chunks(usage=ChatUsage(20, 3)))])
    with runtrace.run("stream") as run:
        stream = fake.openai().chat.completions.create(model="gpt-5.5", messages=USER, stream=True,
                                                       stream_options={"include_usage": True})
        assert isinstance(stream, openai.Stream)  # the proxy still looks like the SDK's stream
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello!"
    span = one_llm_span(instrumented)
    a = span.attributes
    assert a[sc.GEN_AI_REQUEST_STREAM] is True
    assert a[sc.STREAM_ENDED_BY] == sc.STREAM_ENDED_EXHAUSTED
    assert (a[sc.GEN_AI_USAGE_INPUT_TOKENS], a[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (20, 3)
    assert a[sc.GEN_AI_RESPONSE_ID] == "chatcmpl-StR456"
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert isinstance(a[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK], float)
    assert a[sc.COST_USD] == pytest.approx(0.0001 + 0.00009, abs=1e-12)
    assert fake.requests[0][1]["stream_options"] == {"include_usage": True}
    stored = instrumented.stored_run(run.id)
    assert (stored["llm_calls"], stored["input_tokens"], stored["output_tokens"]) == (1, 20, 3)
    assert stored["cost_usd"] == pytest.approx(0.00019, abs=1e-12)


class _PeerUnderRuntrace:
    """Another instrumentation under runtrace's span, doing what openai-v2 (opentelemetry.util.genai) does.

    Its span's context is attached when the request is sent (inside runtrace's span) and
    detached when the stream ends: a ``contextvars`` reset puts back the context of
    the attach, where runtrace's span was current. Installed on the client's ``post``,
    which the resources bind at creation, so it runs below runtrace's patched ``create``.
    """

    def __init__(self, client) -> None:
        from opentelemetry import context, trace

        real_post = client.post
        tracer = trace.get_tracer("peer-under-runtrace")

        def post(*args, **kwargs):
            span = tracer.start_span("peer chat")
            token = context.attach(trace.set_span_in_context(span))
            result = real_post(*args, **kwargs)
            if not kwargs.get("stream"):
                context.detach(token)
                span.end()
                return result

            def chunks():
                try:
                    yield from result
                finally:
                    context.detach(token)
                    span.end()
            return chunks()

        async def apost(*args, **kwargs):
            span = tracer.start_span("peer chat")
            token = context.attach(trace.set_span_in_context(span))
            result = await real_post(*args, **kwargs)
            if not kwargs.get("stream"):
                context.detach(token)
                span.end()
                return result

            async def chunks():
                try:
                    async for chunk in result:
                        yield chunk
                finally:
                    context.detach(token)
                    span.end()
            return chunks()

        client.post = apost if isinstance(client, openai.AsyncOpenAI) else post


def _peer_stream_replies() -> FakeLLM:
    return FakeLLM([chat_sse_reply(chat_chunks(usage=ChatUsage(20, 3))),
                    json_reply(chat_completion(usage=ChatUsage(20, 5)))])


def _assert_calls_side_by_side(instrumented, run) -> None:
    """The call after the stream is the stream's sibling, not its child: both count, $0.00019 + $0.00025."""
    streamed, plain = sorted(instrumented.llm_spans(), key=lambda s: s.start_time)
    assert plain.parent.span_id == streamed.parent.span_id != streamed.context.span_id
    stored = instrumented.stored_run(run.id)
    assert (stored["llm_calls"], stored["input_tokens"], stored["output_tokens"]) == (2, 40, 8)
    assert stored["cost_usd"] == pytest.approx(0.00044, abs=1e-12)


def test_stream_end_under_a_peer_leaves_the_callers_span_current(instrumented):
    """openai-v2 patched before runtrace: its detach at the stream's end made runtrace's ended
    span current, the next call nested under it and the innermost rule uncounted the stream."""
    from opentelemetry import trace

    fake = _peer_stream_replies()
    client = fake.openai()
    _PeerUnderRuntrace(client)
    with runtrace.run("peer under") as run:
        before = trace.get_current_span()
        stream = client.chat.completions.create(model="gpt-5.5", messages=USER, stream=True,
                                                stream_options={"include_usage": True})
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello!"
        assert trace.get_current_span() is before
        client.chat.completions.create(model="gpt-5.5", messages=USER)
    _assert_calls_side_by_side(instrumented, run)


def test_async_stream_end_under_a_peer_leaves_the_callers_span_current(instrumented):
    from opentelemetry import trace

    fake = _peer_stream_replies()

    async def calls() -> None:
        client = fake.openai(async_client=True)
        _PeerUnderRuntrace(client)
        before = trace.get_current_span()
        stream = await client.chat.completions.create(model="gpt-5.5", messages=USER, stream=True,
                                                      stream_options={"include_usage": True})
        async for _chunk in stream:
            pass
        assert trace.get_current_span() is before
        await client.chat.completions.create(model="gpt-5.5", messages=USER)

    with runtrace.run("peer under, async") as run:
        asyncio.run(calls())
    _assert_calls_side_by_side(instrumented, run)


def test_stream_without_usage_records_it_missing(instrumented):
    fake = FakeLLM([chat_sse_reply(chat_chunks(usage=None))])
    with runtrace.run("no usage") as run:
        chunks = list(fake.openai().chat.completions.create(model="gpt-5.5", messages=USER, stream=True))
    assert len(chunks) == 5
    assert "stream_options" not in fake.requests[0][1]  # never injected without the opt-in
    a = one_llm_span(instrumented).attributes
    assert a[sc.USAGE_MISSING] is True
    assert sc.GEN_AI_USAGE_INPUT_TOKENS not in a and sc.GEN_AI_USAGE_OUTPUT_TOKENS not in a
    assert sc.COST_USD not in a
    assert a[sc.COST_SOURCE] == sc.SOURCE_UNKNOWN
    assert a[sc.COST_UNPRICED_REASON] == sc.UNPRICED_MISSING_USAGE
    stored = instrumented.stored_run(run.id)
    assert (stored["llm_calls"], stored["unpriced_calls"], stored["input_tokens"], stored["cost_usd"]) == (1, 1, 0, 0)


def test_stream_usage_opt_in_asks_for_the_usage_chunk(instrumented, monkeypatch):
    monkeypatch.setattr(_config.settings(), "stream_usage", True)
    fake = FakeLLM([chat_sse_reply(chat_chunks(usage=ChatUsage(20, 3))), chat_sse_reply(chat_chunks())])
    client = fake.openai()
    list(client.chat.completions.create(model="gpt-5.5", messages=USER, stream=True))
    list(client.chat.completions.create(model="gpt-5.5", messages=USER, stream=True,
                                        stream_options={"include_usage": False}))
    assert fake.requests[0][1]["stream_options"] == {"include_usage": True}
    assert fake.requests[1][1]["stream_options"] == {"include_usage": False}  # the caller's choice stands
    first, second = instrumented.llm_spans()
    assert first.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 20
    assert second.attributes[sc.USAGE_MISSING] is True


def test_streamed_tool_calls_are_assembled(instrumented):
    calls = [tool_call("call_Z9", "grep", {"pattern": "TODO", "path": "src"})]
    fake = FakeLLM([chat_sse_reply(chat_chunks(pieces=(), tool_calls=calls, usage=ChatUsage(50, 20)))])
    list(fake.openai().chat.completions.create(model="gpt-5.5", messages=USER, stream=True))
    a = one_llm_span(instrumented).attributes
    assert a[sc.REQUESTED_TOOL_NAMES] == ("grep",)
    assert a[sc.REQUESTED_TOOL_CALL_IDS] == ("call_Z9",)
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)


def test_early_break_then_del_ends_the_span(instrumented):
    fake = FakeLLM([chat_sse_reply(chat_chunks(usage=ChatUsage(20, 3)))])
    with runtrace.run("early break") as run:
        stream = fake.openai().chat.completions.create(model="gpt-5.5", messages=USER, stream=True)
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        assert instrumented.llm_spans() == []  # still open while the caller holds the stream
        del stream, chunk
        gc.collect()
    a = one_llm_span(instrumented).attributes
    assert a[sc.STREAM_ENDED_BY] == sc.STREAM_ENDED_ABANDONED
    assert a[sc.USAGE_MISSING] is True
    assert a[sc.GEN_AI_RESPONSE_ID] == "chatcmpl-StR456"
    assert run.totals.llm_calls == 1 and run.totals.unpriced_calls == 1
    stored = instrumented.stored_run(run.id)
    assert (stored["llm_calls"], stored["unpriced_calls"]) == (1, 1)


def test_close_and_with_end_the_span_once(instrumented):
    fake = FakeLLM([chat_sse_reply(chat_chunks()), chat_sse_reply(chat_chunks())])
    client = fake.openai()
    stream = client.chat.completions.create(model="gpt-5.5", messages=USER, stream=True)
    next(stream)
    stream.close()
    stream.close()
    with client.chat.completions.create(model="gpt-5.5", messages=USER, stream=True) as s2:
        next(iter(s2))
    del stream, s2
    gc.collect()
    spans = instrumented.llm_spans()
    assert [s.attributes[sc.STREAM_ENDED_BY] for s in spans] == [sc.STREAM_ENDED_CLOSED] * 2


def test_stream_error_midway_ends_span_with_error(instrumented):
    body = chat_chunks()[:2] + [{"error": {"message": "The server had an error", "type": "server_error"}}]
    fake = FakeLLM([chat_sse_reply(body)])
    stream = fake.openai().chat.completions.create(model="gpt-5.5", messages=USER, stream=True)
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
    span = one_llm_span(instrumented)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == "APIError"
    assert span.attributes[sc.STREAM_ENDED_BY] == sc.STREAM_ENDED_ERROR
    assert span.attributes[sc.USAGE_MISSING] is True


def test_chat_stream_helper_is_traced(instrumented):
    fake = FakeLLM([chat_sse_reply(chat_chunks(usage=ChatUsage(20, 3)))])
    client = fake.openai()
    helper = getattr(client.chat.completions, "stream", None) or client.beta.chat.completions.stream
    with helper(model="gpt-5.5", messages=USER, stream_options={"include_usage": True}) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "Hello!"
    a = one_llm_span(instrumented).attributes
    assert a[sc.STREAM_ENDED_BY] == sc.STREAM_ENDED_EXHAUSTED
    assert (a[sc.GEN_AI_USAGE_INPUT_TOKENS], a[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (20, 3)


# --- Responses API, embeddings -----------------------------------------------------------

@has_responses
def test_responses_plain(instrumented):
    body = response_object(input_tokens=30, output_tokens=12, function_calls=[("call_R1", "search", {"q": "x"})])
    fake = FakeLLM([json_reply(body)])
    with runtrace.run("responses") as run:
        resp = fake.openai().responses.create(model="gpt-5.5", input="Find x", instructions="Be brief.",
                                              max_output_tokens=100)
    assert resp.output_text == "Hi there."
    span = one_llm_span(instrumented)
    a = span.attributes
    assert span.name == "chat gpt-5.5"
    assert a[sc.GEN_AI_RESPONSE_ID] == "resp_0a1b2c3d"
    assert a[sc.GEN_AI_REQUEST_MAX_TOKENS] == 100
    assert (a[sc.GEN_AI_USAGE_INPUT_TOKENS], a[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (30, 12)
    assert a[sc.REQUESTED_TOOL_NAMES] == ("search",) and a[sc.REQUESTED_TOOL_CALL_IDS] == ("call_R1",)
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    assert a[sc.CONTEXT_MESSAGES] == 2  # the instructions and the input
    assert a[sc.COST_USD] == pytest.approx(0.00015 + 0.00036, abs=1e-12)
    assert instrumented.stored_run(run.id)["cost_usd"] == pytest.approx(0.00051, abs=1e-12)


@has_responses
def test_responses_streamed_event_types(instrumented):
    final = response_object(input_tokens=1_000, output_tokens=200, cached_tokens=400, reasoning_tokens=50)
    fake = FakeLLM([events_reply(response_events(final))])
    stream = fake.openai().responses.create(model="gpt-5.5", input=[{"role": "user", "content": "hi"}],
                                            stream=True)
    types = [event.type for event in stream]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert "response.output_text.delta" in types
    a = one_llm_span(instrumented).attributes
    assert a[sc.STREAM_ENDED_BY] == sc.STREAM_ENDED_EXHAUSTED
    assert (a[sc.GEN_AI_USAGE_INPUT_TOKENS], a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS],
            a[sc.GEN_AI_USAGE_OUTPUT_TOKENS], a[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS]) == (1_000, 400, 200, 50)
    # 600 x $5/M + 400 x $0.50/M + 200 x $30/M
    assert a[sc.COST_USD] == pytest.approx(0.003 + 0.0002 + 0.006, abs=1e-12)


@has_responses
def test_responses_stream_cut_before_completion_keeps_partial_text(instrumented):
    final = response_object()
    fake = FakeLLM([events_reply(response_events(final, complete=False))])
    list(fake.openai().responses.create(model="gpt-5.5", input="hi", stream=True))
    a = one_llm_span(instrumented).attributes
    assert a[sc.USAGE_MISSING] is True
    assert a[sc.GEN_AI_RESPONSE_ID] == "resp_0a1b2c3d"
    assert a[sc.COST_UNPRICED_REASON] == sc.UNPRICED_MISSING_USAGE


def test_embeddings(instrumented):
    fake = FakeLLM([json_reply(embeddings(prompt_tokens=16))])
    with runtrace.run("embed") as run:
        result = fake.openai().embeddings.create(model="text-embedding-3-small", input=["a", "b"],
                                                 encoding_format="float")
    assert len(result.data) == 2
    span = one_llm_span(instrumented)
    a = span.attributes
    assert span.name == "embeddings text-embedding-3-small"
    assert a[sc.GEN_AI_OPERATION_NAME] == "embeddings"
    assert a[sc.GEN_AI_REQUEST_ENCODING_FORMATS] == ("float",)
    assert (a[sc.GEN_AI_USAGE_INPUT_TOKENS], a[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (16, 0)
    assert a[sc.COST_USD] == pytest.approx(16 * 0.02 / 1e6, abs=1e-15)
    stored = instrumented.stored_run(run.id)
    assert (stored["llm_calls"], stored["input_tokens"]) == (1, 16)


# --- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "exc_type"), [(429, openai.RateLimitError),
                                                  (500, openai.InternalServerError)])
def test_http_errors_mark_the_span_and_reach_the_caller_unchanged(instrumented, status, exc_type):
    fake = FakeLLM([json_reply(openai_error(status, "nope"), status=status)])
    with pytest.raises(exc_type) as caught:
        with runtrace.run("errors") as run:
            fake.openai().chat.completions.create(model="gpt-5.5", messages=USER)
    assert type(caught.value) is exc_type and caught.value.status_code == status
    assert len(fake.requests) == 1
    span = one_llm_span(instrumented)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == exc_type.__name__
    assert span.attributes[sc.HTTP_RESPONSE_STATUS_CODE] == status
    assert span.attributes[sc.COST_USD] == 0.0
    assert span.attributes[sc.COST_SOURCE] == sc.SOURCE_NOT_BILLED
    stored = instrumented.stored_run(run.id)
    assert (stored["llm_calls"], stored["unpriced_calls"], stored["cost_usd"]) == (1, 0, 0.0)
    assert stored["outcome"] == "error"


def test_timeout(instrumented):
    fake = FakeLLM([timeout_reply()])
    with pytest.raises(openai.APITimeoutError):
        fake.openai().chat.completions.create(model="gpt-5.5", messages=USER)
    assert len(fake.requests) == 1
    span = one_llm_span(instrumented)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == "APITimeoutError"
    assert span.attributes[sc.COST_SOURCE] == sc.SOURCE_UNKNOWN  # a timed-out request may have been billed
    assert span.attributes[sc.USAGE_MISSING] is True


@pytest.mark.parametrize(("body", "source"), [
    pytest.param({**chat_completion(), "usage": None}, sc.SOURCE_UNKNOWN, id="missing-usage"),
    pytest.param({**chat_completion(), "choices": None, "model": None, "id": None, "service_tier": None},
                 sc.SOURCE_UNKNOWN, id="null-fields"),
    pytest.param({**chat_completion(), "usage": {"prompt_tokens": None, "completion_tokens": None}},
                 sc.SOURCE_UNKNOWN, id="null-usage-counts"),
    pytest.param(chat_completion(model="my-private-model-v0"), sc.SOURCE_UNKNOWN, id="unknown-model"),
    pytest.param({**chat_completion(), "choices": []}, sc.SOURCE_GENAI_PRICES, id="empty-choices"),
    pytest.param({"id": 5, "choices": [{"message": "weird", "finish_reason": 3}], "usage": "lots"},
                 sc.SOURCE_UNKNOWN, id="wrong-types"),
])
def test_malformed_responses_never_raise_into_the_caller(instrumented, body, source):
    fake = FakeLLM([json_reply(body)])
    with runtrace.run("malformed") as run:
        reply = fake.openai().chat.completions.create(model="my-private-model-v0", messages=USER)
    assert reply is not None
    a = one_llm_span(instrumented).attributes
    assert a[sc.COST_SOURCE] == source
    assert (sc.COST_USD in a) is (source != sc.SOURCE_UNKNOWN)
    assert run.totals.llm_calls == 1 and run.totals.unpriced_calls == int(source == sc.SOURCE_UNKNOWN)


def test_unknown_model_is_unpriced_not_free(instrumented):
    fake = FakeLLM([json_reply(chat_completion(model="my-private-model-v0", usage=ChatUsage(100, 10)))])
    with runtrace.run("unknown") as run:
        fake.openai().chat.completions.create(model="my-private-model-v0", messages=USER)
    a = one_llm_span(instrumented).attributes
    assert a[sc.COST_UNPRICED_REASON] == sc.UNPRICED_UNKNOWN_MODEL
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 100
    stored = instrumented.stored_run(run.id)
    assert (stored["unpriced_calls"], stored["cost_usd"], stored["input_tokens"]) == (1, 0.0, 100)


def test_unlisted_snapshot_is_priced_as_the_requested_alias(instrumented):
    fake = FakeLLM([json_reply(chat_completion(model="gpt-5.5-2099-01-01", usage=ChatUsage(12_000, 900, 8_000)))])
    fake.openai().chat.completions.create(model="gpt-5.5", messages=USER)
    a = one_llm_span(instrumented).attributes
    assert a[sc.GEN_AI_RESPONSE_MODEL] == "gpt-5.5-2099-01-01"
    assert a[sc.COST_USD] == pytest.approx(0.051, abs=1e-12)


# --- async ---------------------------------------------------------------------------------

async def test_async_client_plain_and_stream(instrumented):
    fake = FakeLLM([json_reply(chat_completion(usage=ChatUsage(20, 5))),
                    chat_sse_reply(chat_chunks(usage=ChatUsage(20, 3)))])
    client = fake.openai(async_client=True)
    async with runtrace.run("async") as run:
        reply = await client.chat.completions.create(model="gpt-5.5", messages=USER)
        stream = await client.chat.completions.create(model="gpt-5.5", messages=USER, stream=True)
        assert isinstance(stream, openai.AsyncStream)
        pieces = [c.choices[0].delta.content async for c in stream if c.choices]
    assert reply.choices[0].message.content == "Hello!" and "".join(p or "" for p in pieces) == "Hello!"
    plain, streamed = instrumented.llm_spans()
    assert plain.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
    assert streamed.attributes[sc.STREAM_ENDED_BY] == sc.STREAM_ENDED_EXHAUSTED
    assert streamed.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 3
    stored = instrumented.stored_run(run.id)
    assert (stored["llm_calls"], stored["output_tokens"]) == (2, 8)
    assert stored["cost_usd"] == pytest.approx(0.00025 + 0.00019, abs=1e-12)


async def test_async_stream_abandoned_and_closed(instrumented):
    fake = FakeLLM([chat_sse_reply(chat_chunks()), chat_sse_reply(chat_chunks())])
    client = fake.openai(async_client=True)
    stream = await client.chat.completions.create(model="gpt-5.5", messages=USER, stream=True)
    async for _ in stream:
        break
    del stream
    gc.collect()
    stream = await client.chat.completions.create(model="gpt-5.5", messages=USER, stream=True)
    async with stream:
        await stream.__anext__()
    ended = [s.attributes[sc.STREAM_ENDED_BY] for s in instrumented.llm_spans()]
    assert ended == [sc.STREAM_ENDED_ABANDONED, sc.STREAM_ENDED_CLOSED]


async def test_async_error(instrumented):
    fake = FakeLLM([json_reply(openai_error(429, "slow down"), status=429)])
    with pytest.raises(openai.RateLimitError):
        await fake.openai(async_client=True).chat.completions.create(model="gpt-5.5", messages=USER)
    assert one_llm_span(instrumented).attributes[sc.ERROR_TYPE] == "RateLimitError"


@has_responses
async def test_async_responses_and_embeddings(instrumented):
    fake = FakeLLM([json_reply(response_object()), json_reply(embeddings(prompt_tokens=8))])
    client = fake.openai(async_client=True)
    await client.responses.create(model="gpt-5.5", input="hi")
    await client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert [s.name for s in instrumented.llm_spans()] == ["chat gpt-5.5", "embeddings text-embedding-3-small"]


# --- raw and streaming responses -----------------------------------------------------------

def test_with_raw_response_plain(instrumented):
    fake = FakeLLM([json_reply(chat_completion(usage=ChatUsage(20, 5)))])
    raw = fake.openai().chat.completions.with_raw_response.create(model="gpt-5.5", messages=USER)
    assert raw.headers["x-request-id"] == "req_fake_0001"
    assert raw.parse().choices[0].message.content == "Hello!"
    a = one_llm_span(instrumented).attributes
    assert (a[sc.GEN_AI_USAGE_INPUT_TOKENS], a[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (20, 5)
    assert a[sc.GEN_AI_RESPONSE_ID] == "chatcmpl-AbC123"


def test_with_raw_response_stream(instrumented):
    fake = FakeLLM([chat_sse_reply(chat_chunks(usage=ChatUsage(20, 3)))])
    raw = fake.openai().chat.completions.with_raw_response.create(model="gpt-5.5", messages=USER, stream=True)
    assert instrumented.llm_spans() == []
    chunks = list(raw.parse())
    assert len(chunks) == 6
    a = one_llm_span(instrumented).attributes
    assert a[sc.STREAM_ENDED_BY] == sc.STREAM_ENDED_EXHAUSTED
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 3


def test_with_streaming_response_plain_and_stream(instrumented):
    fake = FakeLLM([json_reply(chat_completion(usage=ChatUsage(20, 5))),
                    chat_sse_reply(chat_chunks(usage=ChatUsage(20, 3))),
                    json_reply(chat_completion(usage=ChatUsage(7, 2))),
                    chat_sse_reply(chat_chunks(usage=ChatUsage(20, 3)))])
    client = fake.openai()
    with client.chat.completions.with_streaming_response.create(model="gpt-5.5", messages=USER) as resp:
        assert resp.parse().choices[0].message.content == "Hello!"
    with client.chat.completions.with_streaming_response.create(model="gpt-5.5", messages=USER,
                                                                stream=True) as resp:
        assert sum(1 for _ in resp.parse()) == 6
    with client.chat.completions.with_streaming_response.create(model="gpt-5.5", messages=USER) as resp:
        assert resp.json()["usage"]["prompt_tokens"] == 7
    with client.chat.completions.with_streaming_response.create(model="gpt-5.5", messages=USER,
                                                                stream=True) as resp:
        lines = [line for line in resp.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    spans = instrumented.llm_spans()
    assert len(spans) == 4
    assert [s.attributes.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS) for s in spans] == [5, 3, 2, None]
    assert spans[1].attributes[sc.STREAM_ENDED_BY] == sc.STREAM_ENDED_EXHAUSTED
    # raw SSE lines read by the caller: the call is closed, its usage unknown to runtrace
    assert spans[3].attributes[sc.STREAM_ENDED_BY] == sc.STREAM_ENDED_CLOSED
    assert spans[3].attributes[sc.USAGE_MISSING] is True


async def test_async_with_raw_and_streaming_response(instrumented):
    fake = FakeLLM([json_reply(chat_completion(usage=ChatUsage(20, 5))),
                    json_reply(chat_completion(usage=ChatUsage(9, 1)))])
    client = fake.openai(async_client=True)
    raw = await client.chat.completions.with_raw_response.create(model="gpt-5.5", messages=USER)
    assert raw.parse().usage.prompt_tokens == 20
    async with client.chat.completions.with_streaming_response.create(model="gpt-5.5", messages=USER) as resp:
        parsed = await resp.parse()
    assert parsed.usage.prompt_tokens == 9
    assert [s.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] for s in instrumented.llm_spans()] == [20, 9]


# --- patching discipline -------------------------------------------------------------------

def _targets():
    found = {}
    for patch in openai_instr.PATCHES:
        try:
            owner = importlib.import_module(patch.module)
        except ImportError:
            continue
        cls_name, method = patch.target.split(".")
        cls = getattr(owner, cls_name, None)
        if cls is not None and method in vars(cls):
            found[(patch.module, patch.target)] = (cls, method)
    return found


def test_uninstrument_restores_the_original_methods(instrumented):
    runtrace.uninstrument()
    targets = _targets()
    originals = {key: vars(cls)[method] for key, (cls, method) in targets.items()}
    create = openai.resources.chat.completions.Completions.create
    runtrace.instrument(store=instrumented.store_path)
    assert openai.resources.chat.completions.Completions.create is not create
    client = FakeLLM([json_reply(chat_completion())] * 2).openai()
    raw_create = client.chat.completions.with_raw_response.create  # binds the patched method
    runtrace.uninstrument()
    assert openai.resources.chat.completions.Completions.create is create
    for key, (cls, method) in targets.items():
        assert vars(cls)[method] is originals[key], key
    instrumented.exporter.clear()
    raw_create(model="gpt-5.5", messages=USER).parse()  # a wrapper that outlived uninstrument passes through
    assert instrumented.exporter.get_finished_spans() == ()


def test_instrumenting_twice_makes_one_span_per_call(instrumented):
    assert openai_instr.instrument() is True  # a second patch pass over already patched methods
    runtrace.instrument(store=instrumented.store_path)  # and a second instrument(): both no-ops
    fake = FakeLLM([json_reply(chat_completion())])
    fake.openai().chat.completions.create(model="gpt-5.5", messages=USER)
    assert len(instrumented.llm_spans()) == 1


def test_each_row_is_patched_independently(instrumented, monkeypatch):
    runtrace.uninstrument()
    missing = openai_instr.PATCHES + (openai_instr._wrap.Patch("openai.resources.nope", "Nope.create",
                                                                openai_instr.PATCHES[0].factory),
                                      openai_instr._wrap.Patch(openai_instr._CHAT, "Completions.no_such",
                                                               openai_instr.PATCHES[0].factory))
    monkeypatch.setattr(openai_instr, "PATCHES", missing)
    runtrace.instrument(store=instrumented.store_path)
    assert "openai.resources.chat.completions:Completions.create" in openai_instr.patched_methods()
    assert not any("no_such" in p or "nope" in p for p in openai_instr.patched_methods())


# --- runs: budgets and isolation -----------------------------------------------------------

def test_budget_stops_the_third_call_before_it_is_sent(instrumented):
    fake = FakeLLM(default=json_reply(chat_completion(usage=ChatUsage(20, 5))))
    client = fake.openai()
    with pytest.raises(runtrace.BudgetExceeded) as caught:
        with runtrace.run("budgeted", budget=runtrace.Budget(max_llm_calls=2)) as run:
            for _ in range(3):
                client.chat.completions.create(model="gpt-5.5", messages=USER)
    assert caught.value.limit == "max_llm_calls"
    assert len(fake.requests) == 2
    assert len(instrumented.llm_spans()) == 2
    stored = instrumented.stored_run(run.id)
    assert (stored["llm_calls"], stored["outcome"], stored["stop_reason"]) == (2, "budget_stopped",
                                                                                "max_llm_calls")


def test_threads_and_tasks_each_see_only_their_run(instrumented):
    fake = FakeLLM(default=json_reply(chat_completion(usage=ChatUsage(20, 5))))
    client = fake.openai()
    async_client = fake.openai(async_client=True)
    run_ids: dict[int, str] = {}
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        with runtrace.run(f"thread {i}") as run:
            run_ids[i] = run.id
            barrier.wait()
            for _ in range(3):
                client.chat.completions.create(model="gpt-5.5", messages=USER, seed=i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    async def task(i: int) -> None:
        async with runtrace.run(f"task {i}") as run:
            run_ids[100 + i] = run.id
            for _ in range(3):
                await async_client.chat.completions.create(model="gpt-5.5", messages=USER, seed=100 + i)
                await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(task(i) for i in range(8)))

    asyncio.run(main())
    spans = instrumented.llm_spans()
    assert len(spans) == 48
    for span in spans:
        assert span.attributes[sc.RUN_ID] == run_ids[span.attributes[sc.GEN_AI_REQUEST_SEED]]
    store = instrumented.open_store()
    try:
        for run_id in run_ids.values():
            stored = queries.get_run(store, run_id)
            assert (stored["llm_calls"], stored["input_tokens"], stored["output_tokens"]) == (3, 60, 15)
    finally:
        store.close()


def test_identical_completions_are_flagged_on_the_third(instrumented):
    fake = FakeLLM(default=json_reply(chat_completion(content="I will try again.")))
    client = fake.openai()
    with runtrace.run("looping"):
        for i in range(3):
            client.chat.completions.create(model="gpt-5.5", messages=[{"role": "user", "content": f"try {i}"}])
    flags = [s.attributes.get(sc.LOOP_DETECTED) for s in instrumented.llm_spans()]
    events = [[e.name for e in s.events] for s in instrumented.llm_spans()]
    assert flags == [None, None, True]
    assert events == [[], [], [sc.EVENT_LOOP]]


def test_no_run_no_run_id_but_still_priced(instrumented):
    FakeLLM([json_reply(chat_completion())]).openai().chat.completions.create(model="gpt-5.5", messages=USER)
    a = one_llm_span(instrumented).attributes
    assert sc.RUN_ID not in a
    # fingerprinted, not judged: re-injection needs the run's history
    assert (a[sc.CONTEXT_MESSAGES], a[sc.CONTEXT_CHARS]) == (1, len("What is 2+2?"))
    assert len(a[sc.CONTEXT_FINGERPRINT]) == 16 and sc.CONTEXT_NEW_MESSAGES not in a
    assert a[sc.COST_USD] == pytest.approx(0.00025, abs=1e-12)


@has_responses
def test_responses_stream_helper_and_parse(instrumented):
    from pydantic import BaseModel

    class Verdict(BaseModel):
        ok: bool

    final = response_object(text='{"ok": true}', input_tokens=40, output_tokens=8)
    fake = FakeLLM([events_reply(response_events(final, deltas=('{"ok": ', "true}"))), json_reply(final)])
    client = fake.openai()
    with client.responses.stream(model="gpt-5.5", input="Is it ok?") as stream:
        done = stream.get_final_response()
    assert done.output_text == '{"ok": true}'
    parsed = client.responses.parse(model="gpt-5.5", input="Is it ok?", text_format=Verdict)
    assert parsed.output_parsed == Verdict(ok=True)
    streamed, plain = instrumented.llm_spans()
    assert streamed.attributes[sc.STREAM_ENDED_BY] == sc.STREAM_ENDED_EXHAUSTED
    assert streamed.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 40
    assert plain.attributes[sc.GEN_AI_OUTPUT_TYPE] == "json"
    assert plain.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 8
    assert len(fake.requests) == 2


def test_prompts_go_through_the_runs_context_detector(instrumented):
    """The same file content pasted back as a new message is counted as re-injected, on the span."""
    listing = "def handler(event):\n    return process(event)\n" * 20
    fake = FakeLLM(default=json_reply(chat_completion(content="Noted.")))
    client = fake.openai()
    first = [{"role": "user", "content": listing}]
    with runtrace.run("reinjection"):
        client.chat.completions.create(model="gpt-5.5", messages=first)
        client.chat.completions.create(model="gpt-5.5", messages=[
            *first, {"role": "assistant", "content": "Noted."}, {"role": "user", "content": listing}])
    one, two = instrumented.llm_spans()
    assert (one.attributes[sc.CONTEXT_MESSAGES], one.attributes[sc.CONTEXT_NEW_MESSAGES],
            one.attributes[sc.CONTEXT_REINJECTED_MESSAGES]) == (1, 1, 0)
    assert (two.attributes[sc.CONTEXT_MESSAGES], two.attributes[sc.CONTEXT_NEW_MESSAGES],
            two.attributes[sc.CONTEXT_REINJECTED_MESSAGES]) == (3, 1, 1)
    assert two.attributes[sc.CONTEXT_REINJECTED_TOKENS] == detect.estimate_tokens(listing)
    assert two.attributes[sc.CONTEXT_CHARS] == 2 * len(listing) + len("Noted.")
