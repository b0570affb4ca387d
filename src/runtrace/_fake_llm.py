"""A fake OpenAI-compatible endpoint for the demo: scripted replies, realistic usage.

It plugs into the real ``openai`` client as a mock HTTP transport (httpx2 for
openai 3.x, httpx before), so the demo exercises exactly the code paths a real
agent does, with no network and no API key. Usage figures are derived from
the request the way the real API counts them closely enough to be
believable and exactly enough to check by hand: prompt tokens are the
characters sent divided by four (rounded up) plus a fixed overhead for the
system prompt and tool schemas; cached tokens are the previous request's
prompt rounded down to a multiple of 128 once it reaches 1,024 (OpenAI's
prompt-cache rule); output tokens are the reply's characters divided by four
plus a fixed reasoning allowance.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

PROMPT_OVERHEAD_TOKENS = 900
REASONING_TOKENS = {"gpt-5.5": 96, "gpt-5-mini": 32}


@dataclass(frozen=True)
class Reply:
    """One scripted model turn: either tool calls or a final message (or an HTTP error)."""

    text: str | None = None
    tool_calls: Sequence[tuple[str, dict[str, Any]]] = ()
    status: int = 200


def tokens_of(text: str) -> int:
    return math.ceil(len(text) / 4)


def prompt_tokens(messages: Sequence[dict[str, Any]]) -> int:
    chars = 0
    for m in messages:
        chars += len(m.get("content") or "")
        for call in m.get("tool_calls") or ():
            chars += len(call["function"]["name"]) + len(call["function"]["arguments"])
    return math.ceil(chars / 4) + PROMPT_OVERHEAD_TOKENS


def cached_tokens(previous_prompt: int | None) -> int:
    if previous_prompt is None or previous_prompt < 1024:
        return 0
    return previous_prompt // 128 * 128


@dataclass
class FakeLLM:
    """Serves ``/v1/chat/completions`` from a queue of replies, one per request."""

    replies: list[Reply]
    pace: float = 0.0  # seconds of simulated latency per 1,000 output tokens, plus a base of pace/25
    requests: list[dict[str, Any]] = field(default_factory=list)
    _previous_prompt: int | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def respond(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.requests.append(body)
        if not self.replies:
            return 500, {"error": {"message": "the demo script ran out of replies", "type": "server_error"}}
        reply = self.replies.pop(0)
        if reply.status != 200:
            return reply.status, {"error": {"message": "upstream overloaded, try again later",
                                            "type": "server_error", "code": None}}
        model = body["model"]
        n = next(self._ids)
        prompt = prompt_tokens(body["messages"])
        cached = cached_tokens(self._previous_prompt)
        self._previous_prompt = prompt
        reasoning = REASONING_TOKENS.get(model, 0)
        message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
        out_chars = len(reply.text or "")
        if reply.tool_calls:
            calls = []
            for i, (name, args) in enumerate(reply.tool_calls):
                arguments = json.dumps(args)
                out_chars += len(name) + len(arguments)
                calls.append({"id": f"call_{n:03d}_{i}", "type": "function",
                              "function": {"name": name, "arguments": arguments}})
            message["tool_calls"] = calls
        completion = math.ceil(out_chars / 4) + reasoning
        if self.pace:
            time.sleep(self.pace / 25 + self.pace * completion / 1000)
        return 200, {
            "id": f"chatcmpl-demo{n:04d}", "object": "chat.completion", "created": 1_790_000_000 + n,
            "model": f"{model}-2026-08-01" if model == "gpt-5.5" else model,
            "service_tier": "default", "system_fingerprint": "fp_demo",
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if reply.tool_calls else "stop", "logprobs": None}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion,
                      "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
                                                    "accepted_prediction_tokens": 0,
                                                    "rejected_prediction_tokens": 0}},
        }

    def handler(self, http: Any) -> Callable[[Any], Any]:
        """A MockTransport handler for the given httpx-like module."""

        def handle(request: Any) -> Any:
            status, payload = self.respond(json.loads(request.content))
            return http.Response(status, json=payload, headers={"x-request-id": "req_demo"})

        return handle


def http_module() -> Any:
    """httpx2 for openai >= 3 (which is built on it), httpx for older openai."""
    import openai

    if int(openai.__version__.split(".")[0]) >= 3:
        import httpx2

        return httpx2
    import httpx

    return httpx


def client_for(fake: FakeLLM) -> Any:
    """A real ``openai.OpenAI`` client whose HTTP goes to the fake endpoint."""
    import openai

    http = http_module()
    return openai.OpenAI(api_key="sk-demo-not-a-real-key", base_url="https://llm.demo.invalid/v1",
                         max_retries=0,
                         http_client=http.Client(transport=http.MockTransport(fake.handler(http))))
