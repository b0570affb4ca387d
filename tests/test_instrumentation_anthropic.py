"""The anthropic instrumentation through the real anthropic client over a mock transport."""

from __future__ import annotations

import gc
import json

import pytest

anthropic = pytest.importorskip("anthropic")

from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

import runtrace  # noqa: E402
from llm_fakes import (  # noqa: E402 - after the importorskip
    ClaudeUsage,
    FakeLLM,
    anthropic_error,
    claude_events,
    claude_message,
    events_reply,
    json_reply,
)
from runtrace import _config  # noqa: E402
from runtrace import semconv as sc  # noqa: E402
from runtrace.instrumentation import anthropic as anthropic_instr  # noqa: E402

MODEL = "claude-sonnet-4-6"
SNAPSHOT = "claude-sonnet-4-6"
USER = [{"role": "user", "content": "Summarise the diff."}]
# 1,000 plain input + 2,000 cache reads + 4,000 cache writes (1,000 for 5 minutes, 3,000 for an hour)
CACHED = ClaudeUsage(1_000, 500, cache_read_input_tokens=2_000, cache_creation_input_tokens=4_000,
                     ephemeral_5m=1_000, ephemeral_1h=3_000)
# claude-sonnet-4-6: $3 input, $0.30 cache read, $3.75 5m write, $6 1h write, $15 output (per 1M)
CACHED_COST_IN = 0.003 + 0.0006 + 0.00375 + 0.018
CACHED_COST_OUT = 0.0075


def one_llm_span(instrumented):
    spans = instrumented.llm_spans()
    assert len(spans) == 1, [(s.name, s.instrumentation_scope.name) for s in spans]
    return spans[0]


def test_plain_message_with_cache_reads_and_writes(instrumented):
    fake = FakeLLM([json_reply(claude_message(usage=CACHED))])
    with runtrace.run("claude", project="docs") as run:
        message = fake.anthropic().messages.create(model=MODEL, max_tokens=1024, messages=USER,
                                                   system="You review code.", stop_sequences=["END"])
    assert message.content[0].text == "Hello from Claude."
    span = one_llm_span(instrumented)
    a = span.attributes
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.instrumentation_scope.name == anthropic_instr.TRACER
    assert a[sc.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert a[sc.GEN_AI_REQUEST_MAX_TOKENS] == 1024
    assert a[sc.GEN_AI_REQUEST_STOP_SEQUENCES] == ("END",)
    assert a[sc.GEN_AI_RESPONSE_MODEL] == SNAPSHOT
    assert a[sc.GEN_AI_RESPONSE_ID] == "msg_01XyZ"
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert a[sc.SERVER_ADDRESS] == "api.anthropic.test"
    # input is the total: Anthropic's input_tokens excludes the cache parts
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 7_000
    assert a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 2_000
    assert a[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == 4_000
    assert a[sc.USAGE_CACHE_WRITE_5M_TOKENS] == 1_000
    assert a[sc.USAGE_CACHE_WRITE_1H_TOKENS] == 3_000
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 500
    assert a[sc.COST_INPUT_USD] == pytest.approx(CACHED_COST_IN, abs=1e-12)
    assert a[sc.COST_OUTPUT_USD] == pytest.approx(CACHED_COST_OUT, abs=1e-12)
    assert a[sc.COST_USD] == pytest.approx(0.03285, abs=1e-12)
    assert a[sc.COST_SERVICE_TIER] == "standard"
    assert a[sc.CONTEXT_MESSAGES] == 2  # the system prompt and the user message
    assert a[sc.CONTEXT_UNCACHED_INPUT_SHARE] == pytest.approx(5_000 / 7_000, abs=1e-6)
    stored = instrumented.stored_run(run.id)
    assert (stored["llm_calls"], stored["input_tokens"], stored["cached_input_tokens"],
            stored["output_tokens"]) == (1, 7_000, 2_000, 500)
    assert stored["cost_usd"] == pytest.approx(0.03285, abs=1e-12)


def test_cache_writes_without_ttl_split_cost_more_than_input(instrumented):
    usage = ClaudeUsage(1_000, 500, cache_read_input_tokens=2_000, cache_creation_input_tokens=4_000)
    fake = FakeLLM([json_reply(claude_message(usage=usage))])
    fake.anthropic().messages.create(model=MODEL, max_tokens=1024, messages=USER)
    a = one_llm_span(instrumented).attributes
    assert sc.USAGE_CACHE_WRITE_5M_TOKENS not in a
    # 4,000 writes at $3.75/M (the 5-minute rate) = $0.015, above the $0.012 of plain input
    assert a[sc.COST_INPUT_USD] == pytest.approx(0.003 + 0.0006 + 0.015, abs=1e-12)
    assert a[sc.COST_USD] == pytest.approx(0.0261, abs=1e-12)


def test_tool_use_blocks_are_recorded_like_tool_calls(instrumented):
    body = claude_message(text="Let me look.", tool_uses=[("toolu_01A", "read_file", {"path": "a.py"}),
                                                          ("toolu_01B", "grep", {"q": "TODO"})])
    fake = FakeLLM([json_reply(body)])
    fake.anthropic().messages.create(model=MODEL, max_tokens=256, messages=USER, tools=[])
    a = one_llm_span(instrumented).attributes
    assert a[sc.REQUESTED_TOOL_NAMES] == ("read_file", "grep")
    assert a[sc.REQUESTED_TOOL_CALL_IDS] == ("toolu_01A", "toolu_01B")
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_use",)


def test_content_capture(instrumented, monkeypatch):
    monkeypatch.setattr(_config.settings(), "capture_content", True)
    fake = FakeLLM([json_reply(claude_message(text="Done."))])
    messages = [*USER,
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "ls",
                                                   "input": {"dir": "."}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                              "content": "a.py b.py"}]}]
    fake.anthropic().messages.create(model=MODEL, max_tokens=64, messages=messages, system="Be terse.")
    a = one_llm_span(instrumented).attributes
    assert json.loads(a[sc.GEN_AI_SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "Be terse."}]
    assert json.loads(a[sc.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Summarise the diff."}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "toolu_1", "name": "ls",
                                         "arguments": {"dir": "."}}]},
        {"role": "user", "parts": [{"type": "tool_call_response", "id": "toolu_1", "result": "a.py b.py"}]},
    ]
    assert json.loads(a[sc.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Done."}], "finish_reason": "end_turn"}]


def test_stream_true(instrumented):
    fake = FakeLLM([events_reply(claude_events(claude_message(usage=CACHED)))])
    with runtrace.run("claude stream") as run:
        stream = fake.anthropic().messages.create(model=MODEL, max_tokens=1024, messages=USER, stream=True)
        assert isinstance(stream, anthropic.Stream)
        kinds = [event.type for event in stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    a = one_llm_span(instrumented).attributes
    assert a[sc.GEN_AI_REQUEST_STREAM] is True
    assert a[sc.STREAM_ENDED_BY] == sc.STREAM_ENDED_EXHAUSTED
    assert (a[sc.GEN_AI_USAGE_INPUT_TOKENS], a[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (7_000, 500)
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert a[sc.COST_USD] == pytest.approx(0.03285, abs=1e-12)
    stored = instrumented.stored_run(run.id)
    assert stored["cost_usd"] == pytest.approx(0.03285, abs=1e-12)


def test_streamed_tool_use(instrumented):
    body = claude_message(text=None, tool_uses=[("toolu_9", "run_tests", {"path": "tests/unit"})])
    fake = FakeLLM([events_reply(claude_events(body))])
    list(fake.anthropic().messages.create(model=MODEL, max_tokens=64, messages=USER, stream=True))
    a = one_llm_span(instrumented).attributes
    assert a[sc.REQUESTED_TOOL_NAMES] == ("run_tests",) and a[sc.REQUESTED_TOOL_CALL_IDS] == ("toolu_9",)


def test_stream_cut_before_message_delta_keeps_the_partial_usage(instrumented):
    fake = FakeLLM([events_reply(claude_events(claude_message(usage=ClaudeUsage(25, 10)), complete=False))])
    list(fake.anthropic().messages.create(model=MODEL, max_tokens=64, messages=USER, stream=True))
    a = one_llm_span(instrumented).attributes
    # message_start said 25 in and (so far) 1 out; message_delta never came
    assert (a[sc.GEN_AI_USAGE_INPUT_TOKENS], a[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (25, 1)
    assert sc.GEN_AI_RESPONSE_FINISH_REASONS not in a


def test_stream_early_break_and_del(instrumented):
    fake = FakeLLM([events_reply(claude_events(claude_message()))])
    stream = fake.anthropic().messages.create(model=MODEL, max_tokens=64, messages=USER, stream=True)
    for event in stream:
        if event.type == "content_block_delta":
            break
    del stream, event
    gc.collect()
    a = one_llm_span(instrumented).attributes
    assert a[sc.STREAM_ENDED_BY] == sc.STREAM_ENDED_ABANDONED
    assert a[sc.GEN_AI_RESPONSE_ID] == "msg_01XyZ"


def test_stream_helper(instrumented):
    fake = FakeLLM([events_reply(claude_events(claude_message(usage=CACHED))),
                    events_reply(claude_events(claude_message()))])
    client = fake.anthropic()
    with client.messages.stream(model=MODEL, max_tokens=1024, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from Claude." and final.usage.output_tokens == 500
    with client.messages.stream(model=MODEL, max_tokens=1024, messages=USER) as stream:
        next(iter(stream))  # leave early: the with block closes it
    first, second = instrumented.llm_spans()
    assert first.attributes[sc.STREAM_ENDED_BY] == sc.STREAM_ENDED_EXHAUSTED
    assert first.attributes[sc.COST_USD] == pytest.approx(0.03285, abs=1e-12)
    assert second.attributes[sc.STREAM_ENDED_BY] == sc.STREAM_ENDED_CLOSED
    assert second.attributes[sc.GEN_AI_REQUEST_STREAM] is True


async def test_async_create_stream_and_helper(instrumented):
    fake = FakeLLM([json_reply(claude_message(usage=ClaudeUsage(25, 10))),
                    events_reply(claude_events(claude_message(usage=ClaudeUsage(25, 10)))),
                    events_reply(claude_events(claude_message(usage=ClaudeUsage(25, 10))))])
    client = fake.anthropic(async_client=True)
    async with runtrace.run("async claude") as run:
        await client.messages.create(model=MODEL, max_tokens=64, messages=USER)
        stream = await client.messages.create(model=MODEL, max_tokens=64, messages=USER, stream=True)
        assert isinstance(stream, anthropic.AsyncStream)
        async for _ in stream:
            pass
        async with client.messages.stream(model=MODEL, max_tokens=64, messages=USER) as helper:
            final = await helper.get_final_message()
    assert final.content[0].text == "Hello from Claude."
    spans = instrumented.llm_spans()
    assert len(spans) == 3
    assert [s.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] for s in spans] == [25, 25, 25]
    stored = instrumented.stored_run(run.id)
    assert (stored["llm_calls"], stored["output_tokens"]) == (3, 30)
    assert stored["cost_usd"] == pytest.approx(3 * 0.000225, abs=1e-12)


@pytest.mark.parametrize(("status", "exc_name"), [(429, "RateLimitError"), (500, "InternalServerError")])
def test_errors(instrumented, status, exc_name):
    fake = FakeLLM([json_reply(anthropic_error(status, "try later"), status=status)])
    with pytest.raises(getattr(anthropic, exc_name)):
        fake.anthropic().messages.create(model=MODEL, max_tokens=64, messages=USER)
    assert len(fake.requests) == 1
    span = one_llm_span(instrumented)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == exc_name
    assert span.attributes[sc.HTTP_RESPONSE_STATUS_CODE] == status


def test_the_sdk_own_span_is_not_a_second_llm_call(instrumented):
    fake = FakeLLM([json_reply(claude_message()), events_reply(claude_events(claude_message()))])
    client = fake.anthropic()
    client.messages.create(model=MODEL, max_tokens=64, messages=USER)
    list(client.messages.create(model=MODEL, max_tokens=64, messages=USER, stream=True))
    spans = instrumented.spans()
    assert [s.name for s in spans] == [f"chat {MODEL}", f"chat {MODEL}"]
    assert all(s.instrumentation_scope.name == anthropic_instr.TRACER for s in spans)


def test_with_raw_response(instrumented):
    fake = FakeLLM([json_reply(claude_message(usage=ClaudeUsage(25, 10))),
                    events_reply(claude_events(claude_message(usage=ClaudeUsage(25, 10))))])
    client = fake.anthropic()
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=USER)
    assert raw.parse().content[0].text == "Hello from Claude."
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=USER, stream=True)
    assert len(list(raw.parse())) == 7
    spans = instrumented.llm_spans()
    assert [s.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] for s in spans] == [10, 10]


def test_malformed_messages_never_raise(instrumented):
    bodies = [{**claude_message(), "usage": None}, {**claude_message(), "content": None, "model": None},
              claude_message(model="claude-unknown-9")]
    fake = FakeLLM([json_reply(b) for b in bodies])
    client = fake.anthropic()
    for _ in bodies:
        client.messages.create(model="claude-unknown-9", max_tokens=64, messages=USER)
    spans = instrumented.llm_spans()
    assert [s.attributes[sc.COST_SOURCE] for s in spans] == [sc.SOURCE_UNKNOWN] * 3
    assert [s.attributes.get(sc.USAGE_MISSING) for s in spans] == [True, None, None]


def test_budget_stops_before_sending_even_through_the_stream_helper(instrumented):
    fake = FakeLLM(default=json_reply(claude_message()))
    client = fake.anthropic()
    with pytest.raises(runtrace.BudgetExceeded):
        with runtrace.run("claude budget", budget=runtrace.Budget(max_llm_calls=1)):
            client.messages.create(model=MODEL, max_tokens=64, messages=USER)
            with client.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
                list(stream)
    assert len(fake.requests) == 1


def test_beta_messages_stream_is_traced_and_budgeted(instrumented):
    """beta.messages.stream() is one runtrace call (25 in, 10 out: $0.000225) and the budget holds there."""
    message = claude_message(usage=ClaudeUsage(25, 10))
    fake = FakeLLM([events_reply(claude_events(message))], default=json_reply(message))
    client = fake.anthropic()
    with pytest.raises(runtrace.BudgetExceeded):
        with runtrace.run("beta stream", budget=runtrace.Budget(max_llm_calls=1)) as run:
            with client.beta.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
                assert stream.get_final_text() == "Hello from Claude."
            with client.beta.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
                list(stream)
    assert len(fake.requests) == 1
    spans = [s for s in instrumented.llm_spans() if s.instrumentation_scope.name == anthropic_instr.TRACER]
    assert len(spans) == 1
    a = spans[0].attributes
    assert (a[sc.GEN_AI_USAGE_INPUT_TOKENS], a[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (25, 10)
    assert a[sc.COST_USD] == pytest.approx(0.000225, abs=1e-12)
    assert run.totals.llm_calls == 1


def test_uninstrument_restores_and_double_instrument_is_one_span(instrumented):
    assert anthropic_instr.instrument() is True
    fake = FakeLLM([json_reply(claude_message())])
    fake.anthropic().messages.create(model=MODEL, max_tokens=64, messages=USER)
    assert len(instrumented.llm_spans()) == 1
    runtrace.uninstrument()
    from anthropic.resources.messages import AsyncMessages, Messages

    originals = {name: vars(cls)[name.split(".")[1]] for name, cls in
                 (("Messages.create", Messages), ("AsyncMessages.create", AsyncMessages),
                  ("Messages.stream", Messages))}
    runtrace.instrument(store=instrumented.store_path)
    assert vars(Messages)["create"] is not originals["Messages.create"]
    runtrace.uninstrument()
    for name, cls in (("Messages.create", Messages), ("AsyncMessages.create", AsyncMessages),
                      ("Messages.stream", Messages)):
        assert vars(cls)[name.split(".")[1]] is originals[name]
    import anthropic._base_client as base

    assert not hasattr(base.start_api_call_span, "_self_runtrace_patch")


# --- a peer whose span sits beside runtrace's (OpenLLMetry's anthropic wrapper) --------------

def _peer_beside(method, *, ends_at_call: bool = False):
    """Wrap a bound SDK method as OpenLLMetry does: a span started, never made current, with usage.

    ``ends_at_call``: the span ends when the method returns (OpenLLMetry's beta.messages.stream(),
    which reads the manager as a response), before runtrace's span starts at ``__enter__``.
    """
    from opentelemetry import trace

    tracer = trace.get_tracer("peer-beside")

    def call(*args, **kwargs):
        span = tracer.start_span("anthropic.chat", kind=SpanKind.CLIENT,
                                 attributes={sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_PROVIDER_NAME: "anthropic"})
        result = method(*args, **kwargs)
        span.set_attributes({sc.GEN_AI_REQUEST_MODEL: MODEL, sc.GEN_AI_USAGE_INPUT_TOKENS: 25,
                             sc.GEN_AI_USAGE_OUTPUT_TOKENS: 10})
        span.end()
        return result
    return call


def _peer_spans(instrumented):
    return [s for s in instrumented.spans() if s.instrumentation_scope.name == "peer-beside"]


def test_a_peer_span_beside_runtrace_is_marked_and_counted_once(instrumented):
    """create() and beta.messages.stream() under a peer whose span is runtrace's sibling: 2 calls, $0.00045."""
    message = claude_message(usage=ClaudeUsage(25, 10))
    fake = FakeLLM([json_reply(message), events_reply(claude_events(message))])
    client = fake.anthropic()
    client.messages.create = _peer_beside(client.messages.create)
    client.beta.messages.stream = _peer_beside(client.beta.messages.stream, ends_at_call=True)
    with runtrace.run("peer beside") as run:
        client.messages.create(model=MODEL, max_tokens=64, messages=USER)
        with client.beta.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
            assert stream.get_final_text() == "Hello from Claude."
    ours = sorted((s for s in instrumented.llm_spans() if s.instrumentation_scope.name == anthropic_instr.TRACER),
                  key=lambda s: s.start_time)
    peer = sorted(_peer_spans(instrumented), key=lambda s: s.start_time)
    assert len(ours) == len(peer) == 2
    assert peer[0].parent.span_id == ours[0].parent.span_id  # siblings, not nested
    assert peer[0].attributes[sc.DUPLICATE_OF] == f"{ours[0].context.span_id:016x}"
    assert peer[1].attributes[sc.DUPLICATE_OF] == sc.DUPLICATE_OF_UNSTARTED
    stored = instrumented.stored_run(run.id)
    assert (stored["llm_calls"], stored["input_tokens"], stored["output_tokens"]) == (2, 50, 20)
    assert stored["cost_usd"] == pytest.approx(0.00045, abs=1e-12)


def test_peer_spans_beside_runtrace_in_two_threads_pair_with_their_own_call(instrumented):
    """Each thread's peer span is marked with the runtrace span of its own thread's request."""
    import contextvars
    import threading

    message = claude_message(usage=ClaudeUsage(25, 10))
    fake = FakeLLM(default=json_reply(message))
    client = fake.anthropic()
    client.messages.create = _peer_beside(client.messages.create)
    barrier = threading.Barrier(2, timeout=30)

    def one() -> None:
        barrier.wait()
        client.messages.create(model=MODEL, max_tokens=64, messages=USER)

    with runtrace.run("two threads"):
        threads = [threading.Thread(target=contextvars.copy_context().run, args=(one,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    ours = {s.context.span_id: s for s in instrumented.llm_spans()
            if s.instrumentation_scope.name == anthropic_instr.TRACER}
    peer = _peer_spans(instrumented)
    assert len(ours) == len(peer) == 2
    marked = {int(p.attributes[sc.DUPLICATE_OF], 16) for p in peer}
    assert marked == set(ours)
    assert len({s.parent.span_id for s in ours.values()}) == 1  # both under the run: told apart by thread
