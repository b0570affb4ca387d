"""chat_response reads the SDK's own ChatCompletion by attribute; the result must equal the generic walk's.

The direct path exists for speed (issue 14: about fifteen ``get()`` walks a chat
call); these tests read the same completion once as the SDK's model (built the
way the SDK builds it, ``construct_type`` without validation) and once as its
JSON body (what ``with_raw_response`` reads), and require the same ResponseData.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai._models import construct_type
from openai.types.chat import ChatCompletion

from runtrace.instrumentation import openai as openai_inst
from runtrace.instrumentation.openai import chat_response

USAGE = {"prompt_tokens": 1200, "completion_tokens": 80, "total_tokens": 1280,
         "prompt_tokens_details": {"cached_tokens": 256, "audio_tokens": 0, "cache_write_tokens": 40},
         "completion_tokens_details": {"reasoning_tokens": 12, "audio_tokens": 0}}


def _completion(choices: list[dict[str, Any]], usage: dict[str, Any] | None = USAGE, **head: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "chatcmpl-7", "object": "chat.completion", "created": 1,
                            "model": "gpt-4o-mini-2024-07-18", "service_tier": "default",
                            "choices": choices, "usage": usage}
    body.update(head)
    return body


def _choice(index: int, content: str | None, reason: str | None = "stop", **message: Any) -> dict[str, Any]:
    return {"index": index, "finish_reason": reason, "logprobs": None,
            "message": {"role": "assistant", "content": content, "refusal": None, **message}}


CALL = {"id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\": \"a.py\"}"}}

BODIES = {
    "plain": _completion([_choice(0, "Step 3 done.")]),
    "two choices": _completion([_choice(0, "one"), _choice(1, "two", "length")]),
    "tool call": _completion([_choice(0, None, "tool_calls", tool_calls=[CALL])]),
    "text and tool call": _completion([_choice(0, "Reading.", "tool_calls", tool_calls=[CALL])]),
    "no usage": _completion([_choice(0, "hi")], usage=None, service_tier=None),
    "usage without details": _completion([_choice(0, "hi")], usage={"prompt_tokens": 5, "completion_tokens": 1,
                                                                     "total_tokens": 6}),
    "no choices": _completion([]),
}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_sdk_completion_and_json_body_give_the_same_response(name: str) -> None:
    body = json.loads(json.dumps(BODIES[name]))
    model = construct_type(type_=ChatCompletion, value=body)
    assert type(model) is ChatCompletion
    assert chat_response(model) == chat_response(body)


def test_the_plain_completion_reads_every_figure() -> None:
    model = construct_type(type_=ChatCompletion, value=json.loads(json.dumps(BODIES["plain"])))
    data = chat_response(model)
    assert (data.response_id, data.response_model, data.service_tier, data.text, data.finish_reasons) == \
        ("chatcmpl-7", "gpt-4o-mini-2024-07-18", "default", "Step 3 done.", ["stop"])
    assert data.usage is not None
    assert (data.usage.input_tokens, data.usage.output_tokens, data.usage.cache_read_tokens,
            data.usage.cache_write_tokens, data.usage.reasoning_tokens) == (1200, 80, 256, 40, 12)
    assert data.output_messages == [{"role": "assistant", "parts": [{"type": "text", "content": "Step 3 done."}],
                                     "finish_reason": "stop"}]


def test_the_sdk_completion_is_read_without_the_generic_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    walks: list[tuple[str, ...]] = []
    real = openai_inst.get

    def counting(obj: Any, *path: str) -> Any:
        walks.append(path)
        return real(obj, *path)

    monkeypatch.setattr(openai_inst, "get", counting)
    model = construct_type(type_=ChatCompletion, value=json.loads(json.dumps(BODIES["two choices"])))
    data = chat_response(model)
    assert walks == []  # was 18: id, model, usage (5), service_tier, choices, then 4 a choice
    assert data.finish_reasons == ["stop", "length"]
    chat_response(json.loads(json.dumps(BODIES["two choices"])))  # a JSON body still takes the walk
    assert len(walks) == 18
