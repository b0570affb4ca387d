"""responses_response reads the SDK's own ``Response`` by attribute; the result must equal the generic walk's.

As for chat (tests/test_instrumentation_response_reader.py): the direct path
exists for speed (issue 14: about fifteen ``get()`` walks a Responses API call),
so each body is read once as the SDK's model (built the way the SDK builds it,
``construct_type`` without validation) and once as its JSON body (what
``with_raw_response`` reads), and both must give the same ResponseData.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai._models import construct_type
from openai.types.responses import Response

from runtrace.instrumentation import openai as openai_inst
from runtrace.instrumentation.openai import responses_response

USAGE = {"input_tokens": 1300, "input_tokens_details": {"cached_tokens": 256, "cache_write_tokens": 40},
         "output_tokens": 90, "output_tokens_details": {"reasoning_tokens": 12}, "total_tokens": 1390}


def _response(output: list[dict[str, Any]], usage: dict[str, Any] | None = USAGE, **head: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "resp_7", "object": "response", "created_at": 1, "status": "completed",
                            "model": "gpt-4o-mini-2024-07-18", "service_tier": "default", "output": output,
                            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "usage": usage}
    body.update(head)
    return body


def _message(*pieces: dict[str, Any]) -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant", "content": list(pieces)}


def _text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}


CALL = {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "read_file",
        "arguments": "{\"path\": \"a.py\"}", "status": "completed"}
REASONING = {"id": "rs_1", "type": "reasoning", "summary": []}

BODIES = {
    "plain": _response([_message(_text("Answer number 3."))]),
    "two pieces": _response([_message(_text("one "), _text("two"))]),
    "refusal": _response([_message({"type": "refusal", "refusal": "I can't help with that."})]),
    "function call": _response([CALL]),
    "reasoning, text and call": _response([REASONING, _message(_text("Reading.")), CALL]),
    "incomplete": _response([_message(_text("cut"))], status="incomplete",
                            incomplete_details={"reason": "max_output_tokens"}),
    "incomplete without a reason": _response([], status="incomplete", incomplete_details=None),
    "failed": _response([], status="failed", usage=None),
    "in progress": _response([], status="in_progress", usage=None, service_tier=None),
    "usage without details": _response([_message(_text("hi"))],
                                       usage={"input_tokens": 5, "output_tokens": 1, "total_tokens": 6}),
    "no output": _response([]),
}


def _model(name: str) -> Any:
    """BODIES[name] as the SDK builds its ``Response`` (``construct_type``, no validation)."""
    return construct_type(type_=Response, value=json.loads(json.dumps(BODIES[name])))


@pytest.mark.parametrize("name", sorted(BODIES))
def test_sdk_response_and_json_body_give_the_same_response(name: str) -> None:
    model = _model(name)
    assert type(model) is Response  # the direct path's type, not a subclass
    assert responses_response(model) == responses_response(BODIES[name])


def test_the_sdk_response_reads_every_figure() -> None:
    data = responses_response(_model("reasoning, text and call"))
    usage = data.usage
    assert usage is not None
    assert (data.response_id, data.response_model, data.service_tier, data.text, data.finish_reasons,
            usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens,
            usage.reasoning_tokens) == \
        ("resp_7", "gpt-4o-mini-2024-07-18", "default", "Reading.", ["tool_calls"], 1300, 90, 256, 40, 12)
    assert [(c.id, c.name, c.arguments) for c in data.tool_calls] == [("call_1", "read_file", "{\"path\": \"a.py\"}")]
    assert data.output_messages == [{"role": "assistant", "finish_reason": "tool_calls", "parts": [
        {"type": "text", "content": "Reading."},
        {"type": "tool_call", "name": "read_file", "id": "call_1", "arguments": {"path": "a.py"}}]}]


def test_the_sdk_response_is_read_without_the_generic_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    walks: list[tuple[str, ...]] = []
    real = openai_inst.get
    monkeypatch.setattr(openai_inst, "get", lambda obj, *path: walks.append(path) or real(obj, *path))
    data = responses_response(_model("two pieces"))
    assert walks == []  # was 15: id, model, usage (5), service_tier, output, then type, content, text a piece, status
    assert (data.text, data.finish_reasons) == ("one two", ["stop"])
    responses_response(BODIES["two pieces"])  # a JSON body still takes the walk
    assert len(walks) == 15
