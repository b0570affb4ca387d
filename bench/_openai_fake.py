"""A minimal fake OpenAI endpoint for the overhead benchmark: canned bytes, one counter.

The baseline ("no instrumentation") pays for this handler too, so it is kept
as cheap as it can be: bodies are prebuilt byte strings with one slot where
the call number goes (so completions differ from call to call, as an agent's
do, and the loop detectors see real work instead of tripping on a repeat).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

MODEL = "gpt-4o-mini"
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
CHAT_USAGE = (1200, 80, 256)  # prompt, completion, cached
RESPONSES_USAGE = (1300, 90, 0)
SLOT = "@@N@@"


def _split(text: str) -> list[bytes]:
    return [piece.encode() for piece in text.split(SLOT)]


def _chat_body() -> str:
    prompt, completion, cached = CHAT_USAGE
    return json.dumps({
        "id": "chatcmpl-bench" + SLOT, "object": "chat.completion", "created": 1_790_000_000, "model": RESPONSE_MODEL,
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Step " + SLOT + " done: the test passes now.",
                                 "refusal": None, "annotations": []}}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                  "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                "accepted_prediction_tokens": 0,
                                                "rejected_prediction_tokens": 0}},
        "service_tier": "default", "system_fingerprint": "fp_bench",
    })


def _chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> str:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    return "data: " + json.dumps({
        "id": "chatcmpl-stream", "object": "chat.completion.chunk", "created": 1_790_000_000,
        "model": RESPONSE_MODEL, "service_tier": "default", "system_fingerprint": "fp_bench",
        "choices": choices, "usage": usage}) + "\n\n"


def _stream_body() -> str:
    prompt, completion, cached = CHAT_USAGE
    pieces = ["Step ", SLOT, " done", ": the test", " passes now."]  # the one slot: the call number
    parts = [_chunk({"role": "assistant", "content": "", "refusal": None})]
    parts += [_chunk({"content": p}) for p in pieces]
    parts.append(_chunk({}, "stop"))
    parts.append(_chunk(None, usage={
        "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached}, "completion_tokens_details": {"reasoning_tokens": 0},
    }))
    parts.append("data: [DONE]\n\n")
    return "".join(parts)


def _responses_body() -> str:
    prompt, completion, cached = RESPONSES_USAGE
    return json.dumps({
        "id": "resp_bench" + SLOT, "object": "response", "created_at": 1_790_000_000, "status": "completed",
        "model": RESPONSE_MODEL, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
        "output": [{"id": "msg_bench", "type": "message", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "Answer number " + SLOT + ".",
                                 "annotations": []}]}],
        "temperature": 1.0, "top_p": 1.0, "service_tier": "default", "error": None,
        "incomplete_details": None, "instructions": None, "metadata": {}, "text": {"format": {"type": "text"}},
        "truncation": "disabled",
        "usage": {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached},
                  "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": prompt + completion},
    })


class FakeOpenAI:
    """The transport handler: ``/chat/completions`` (plain or SSE) and ``/responses``."""

    def __init__(self, http: Any) -> None:
        self.http = http
        self.counter = itertools.count()
        self.chat = _split(_chat_body())
        self.stream = _split(_stream_body())
        self.responses = _split(_responses_body())
        self.json_headers = {"content-type": "application/json", "x-request-id": "req_bench"}
        self.sse_headers = {"content-type": "text/event-stream", "x-request-id": "req_bench"}

    def __call__(self, request: Any) -> Any:
        n = str(next(self.counter)).encode()
        if request.url.path.endswith("/responses"):
            return self.http.Response(200, content=n.join(self.responses), headers=self.json_headers)
        if b'"stream":true' in request.content:
            return self.http.Response(200, content=n.join(self.stream), headers=self.sse_headers)
        return self.http.Response(200, content=n.join(self.chat), headers=self.json_headers)

    def client(self) -> Any:
        import openai

        return openai.OpenAI(api_key="sk-bench-not-a-key", base_url="https://api.openai.test/v1", max_retries=0,
                             http_client=self.http.Client(transport=self.http.MockTransport(self)))


def http_module() -> Any:
    """httpx2 for openai 3.x, httpx before."""
    import openai

    major = int(openai.__version__.split(".")[0])
    if major >= 3:
        import httpx2

        return httpx2
    import httpx

    return httpx


SYSTEM_PROMPT = ("You are a careful coding agent. You read files before changing them, run the tests after "
                 "every change, and explain what you did in one short paragraph. " * 8)


def messages(i: int) -> list[dict[str, str]]:
    """An agent-like prompt of about 4 KB whose last turns change from call to call."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "The test tests/test_billing.py::test_invoice_total is flaky. Fix it."},
        {"role": "assistant", "content": f"Step {i - 1} done: I read src/billing.py and the test."},
        {"role": "user", "content": f"Tool result {i}: " + "def invoice_total(lines): ... " * 20},
    ]
