"""Issue 11 item 1: where openai and anthropic still read usage by hand, genai-prices' extract_usage agrees.

Gemini, Bedrock and Mistral read usage through ``genai_prices.extract_usage``
(instrumentation/_usage.py). The openai (chat and Responses, also LiteLLM's
ModelResponse) and anthropic readers stay hand-written: they read the SDK's
objects where extract_usage wants JSON (a dump per call), and a stream's partial
usage, which extract_usage drops. This test pins that for every complete usage
shape the two give the same numbers, so the hand readers cannot drift from
genai-prices' accounting, and shows the partial case that keeps them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import anthropic.types
import openai.types
import openai.types.chat
import pytest

from runtrace.instrumentation import _usage
from runtrace.instrumentation.anthropic import claude_usage
from runtrace.instrumentation.openai import chat_usage, responses_usage
from runtrace.pricing import TokenUsage

CHAT_SHAPES = [
    {"prompt_tokens": 12000, "completion_tokens": 900, "total_tokens": 12900,
     "prompt_tokens_details": {"cached_tokens": 8000}, "completion_tokens_details": {"reasoning_tokens": 300}},
    {"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050},
    {"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050,
     "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 300}},
]
# openai>=2 requires input_tokens_details.cache_write_tokens on a Responses usage.
RESPONSES_SHAPES = [
    ({"input_tokens": 12000, "output_tokens": 900, "total_tokens": 12900,
      "input_tokens_details": {"cached_tokens": 8000, "cache_write_tokens": 0},
      "output_tokens_details": {"reasoning_tokens": 300}},
     TokenUsage(12000, 900, cache_read_tokens=8000, reasoning_tokens=300)),
    # the hand reader used to drop these 500 written tokens, which genai-prices counts
    ({"input_tokens": 12000, "output_tokens": 900, "total_tokens": 12900,
      "input_tokens_details": {"cached_tokens": 8000, "cache_write_tokens": 500},
      "output_tokens_details": {"reasoning_tokens": 300}},
     TokenUsage(12000, 900, cache_read_tokens=8000, cache_write_tokens=500, reasoning_tokens=300)),
]
CLAUDE_SHAPES = [
    {"input_tokens": 100, "output_tokens": 50, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 20,
     "cache_creation": {"ephemeral_5m_input_tokens": 5, "ephemeral_1h_input_tokens": 15}},
    {"input_tokens": 25, "output_tokens": 10, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
]


def chat_object(usage: dict[str, Any]) -> Any:
    return openai.types.CompletionUsage.model_validate(usage)


@pytest.mark.parametrize("usage", CHAT_SHAPES)
def test_openai_chat_usage_equals_extract_usage(usage: dict[str, Any]) -> None:
    by_hand = chat_usage(chat_object(usage))  # what the instrumentation reads: the SDK's object
    assert by_hand == _usage.extract({"usage": usage}, "openai", "chat")
    assert by_hand == chat_usage(usage)  # a JSON body reads the same


@pytest.mark.parametrize(("usage", "expected"), RESPONSES_SHAPES)
def test_openai_responses_usage_equals_extract_usage(usage: dict[str, Any], expected: TokenUsage) -> None:
    by_hand = responses_usage(openai.types.responses.ResponseUsage.model_validate(usage))
    extracted = _usage.extract({"usage": usage}, "openai", "responses")
    assert extracted is not None
    # 0 tokens written is no cache write to runtrace (as for chat): no attribute on the span
    assert by_hand == dataclasses.replace(extracted, cache_write_tokens=extracted.cache_write_tokens or None)
    assert by_hand == expected


@pytest.mark.parametrize("usage", CLAUDE_SHAPES)
def test_anthropic_usage_equals_extract_usage(usage: dict[str, Any]) -> None:
    by_hand = claude_usage(anthropic.types.Usage.model_validate(usage))
    assert by_hand == _usage.extract({"usage": usage}, "anthropic")


def test_a_partial_stream_usage_is_why_the_hand_readers_stay() -> None:
    # A Claude stream broken off after message_start has its input tokens only (output 0 so far
    # is not sent); a chat stream's usage chunk may name one side. extract_usage drops both.
    assert claude_usage({"input_tokens": 40}) == TokenUsage(40, 0, cache_read_tokens=0, cache_write_tokens=0)
    assert _usage.extract({"usage": {"input_tokens": 40}}, "anthropic") is None
    assert chat_usage({"prompt_tokens": 1000}) == TokenUsage(1000, 0)
    assert _usage.extract({"usage": {"prompt_tokens": 1000}}, "openai", "chat") is None


def test_a_responses_call_through_the_real_client_records_its_cache_writes(instrumented: Any) -> None:
    from llm_fakes import FakeLLM, json_reply, response_object
    from runtrace import semconv as sc

    body = response_object(model="gpt-4o-2024-08-06", input_tokens=12000, cached_tokens=8000, output_tokens=900)
    body["usage"]["input_tokens_details"]["cache_write_tokens"] = 500
    fake = FakeLLM([json_reply(body)])
    reply = fake.openai().responses.create(model="gpt-4o", input="hello")
    assert reply.usage is not None and reply.usage.input_tokens == 12000
    [span] = instrumented.llm_spans()
    a = span.attributes
    assert (a[sc.GEN_AI_USAGE_INPUT_TOKENS], a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS],
            a[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS], a[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (12000, 8000, 500, 900)
    # gpt-4o: $2.50 in, $1.25 cached, $10 out (no cache-write price): 4000 * 2.5 + 8000 * 1.25 + 900 * 10
    assert a[sc.COST_USD] == pytest.approx(0.029, abs=1e-12)
