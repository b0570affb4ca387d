"""ChatAccumulator reads the SDK's own chunk types directly; the result must equal the generic walk's.

The direct path exists for speed (issue 14: a streamed call's per-chunk cost);
these tests feed the same stream once as the SDK's models (built the way the
SDK builds them, ``construct_type`` without validation) and once as plain
JSON dicts, and require the same ResponseData field by field.
"""

from __future__ import annotations

import json
from typing import Any

from openai._models import construct_type
from openai.types.chat import ChatCompletionChunk

from runtrace.instrumentation.openai import ChatAccumulator


def _chunk(choices: list[dict[str, Any]] | None, usage: dict[str, Any] | None = None, **head: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                            "model": "gpt-4o-mini-2024-07-18", "service_tier": "default",
                            "choices": choices or [], "usage": usage}
    body.update(head)
    return body


STREAM = [
    _chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]),
    _chunk([{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None},
            {"index": 1, "delta": {"content": "Other"}, "finish_reason": None}]),
    _chunk([{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                    "function": {"name": "read_file", "arguments": "{\"pa"}}]},
             "finish_reason": None}]),
    _chunk([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "th\": 1}"}}]},
             "finish_reason": None}], service_tier=None),
    _chunk([{"index": 0, "delta": {"content": " world"}, "finish_reason": "tool_calls"},
            {"index": 1, "delta": {}, "finish_reason": "stop"}]),
    _chunk(None, usage={"prompt_tokens": 120, "completion_tokens": 7, "total_tokens": 127,
                        "prompt_tokens_details": {"cached_tokens": 64},
                        "completion_tokens_details": {"reasoning_tokens": 3}}),
]


def _result(chunks: list[Any]) -> Any:
    acc = ChatAccumulator()
    for c in chunks:
        acc.add(c)
    return acc.result()


def test_sdk_chunks_and_json_chunks_give_the_same_response() -> None:
    as_dicts = [json.loads(json.dumps(c)) for c in STREAM]
    as_models = [construct_type(type_=ChatCompletionChunk, value=c) for c in as_dicts]
    assert all(type(m) is ChatCompletionChunk for m in as_models)
    fast, generic = _result(as_models), _result(as_dicts)
    assert fast == generic
    assert fast.response_id == "chatcmpl-1"
    assert fast.response_model == "gpt-4o-mini-2024-07-18"
    assert fast.service_tier == "default"
    assert fast.text == "Hello world"
    assert fast.finish_reasons == ["tool_calls", "stop"]
    assert [(c.id, c.name, c.arguments) for c in fast.tool_calls] == [("call_1", "read_file", "{\"path\": 1}")]
    assert fast.usage is not None
    assert (fast.usage.input_tokens, fast.usage.output_tokens, fast.usage.cache_read_tokens,
            fast.usage.reasoning_tokens) == (120, 7, 64, 3)


def test_a_chunk_missing_fields_is_read_without_error() -> None:
    """The SDK builds chunks without validation: a field the server left out is absent, not None."""
    sparse = construct_type(type_=ChatCompletionChunk, value={"choices": [{"delta": {"content": "hi"}}]})
    acc = ChatAccumulator()
    acc.add(sparse)
    data = acc.result()
    assert (data.response_id, data.response_model, data.text, data.finish_reasons) == (None, None, "hi", [])
