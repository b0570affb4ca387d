"""Realistic OpenAI and Anthropic HTTP responses, and a mock endpoint that serves them.

The bodies follow the shapes the real APIs return (ids, usage details, SSE
framing with ``data: [DONE]`` for chat and named events for the Responses and
Messages APIs), so tests and the demo drive the real SDK clients through their
real parsing code. Nothing here imports pytest: the demo reuses it.

``FakeLLM`` records every request it receives (tests assert that a budget stop
sent nothing) and answers from a queue of ``Reply`` objects; it works with
``httpx`` (openai 1.x/2.x) and ``httpx2`` (openai 3.x, anthropic 2.x) alike.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# --- which HTTP library the installed SDKs are built on --------------------------------


def http_module(package: str = "openai") -> Any:
    """``httpx2`` when ``package`` (openai or anthropic) is built on it, else ``httpx``."""
    import importlib

    mod = importlib.import_module(package)
    base = importlib.import_module(f"{package}._base_client")
    if "httpx2" in getattr(base, "__dict__", {}) or getattr(mod, "_httpx2", None) is not None:
        import httpx2

        return httpx2
    import httpx

    return httpx


# --- OpenAI chat completions ----------------------------------------------------------

@dataclass(frozen=True)
class ChatUsage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    def body(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        }


def tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments, separators=(",", ":"))}}


def chat_completion(*, model: str = "gpt-5.5-2026-04-23", content: str | None = "Hello!",
                    tool_calls: Sequence[dict[str, Any]] = (), usage: ChatUsage | None = ChatUsage(20, 5),
                    completion_id: str = "chatcmpl-AbC123", service_tier: str | None = "default",
                    finish_reason: str | None = None, created: int = 1_790_000_000) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if tool_calls:
        message["tool_calls"] = list(tool_calls)
    body: dict[str, Any] = {
        "id": completion_id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop")}],
        "service_tier": service_tier, "system_fingerprint": "fp_5e1d6a1c2b",
    }
    if usage is not None:
        body["usage"] = usage.body()
    return body


def chat_chunks(*, model: str = "gpt-5.5-2026-04-23", pieces: Sequence[str] = ("Hel", "lo", "!"),
                tool_calls: Sequence[dict[str, Any]] = (), usage: ChatUsage | None = None,
                completion_id: str = "chatcmpl-StR456", service_tier: str = "default",
                created: int = 1_790_000_000) -> list[dict[str, Any]]:
    """The chunks of a streamed chat completion; with ``usage``, the final usage chunk too."""
    def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None,
                                             "finish_reason": finish}]
        return {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "service_tier": service_tier, "system_fingerprint": "fp_5e1d6a1c2b", "choices": choices,
                "usage": None, **extra}

    chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
    chunks += [chunk({"content": p}) for p in pieces]
    for i, call in enumerate(tool_calls):
        args = call["function"]["arguments"]
        half = len(args) // 2
        chunks.append(chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                             "function": {"name": call["function"]["name"], "arguments": ""}}]}))
        chunks.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": args[:half]}}]}))
        chunks.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": args[half:]}}]}))
    chunks.append(chunk({}, "tool_calls" if tool_calls else "stop"))
    if usage is not None:
        chunks.append(chunk(None, usage=usage.body()))
    return chunks


def sse_data(payloads: Iterable[dict[str, Any]], *, done: bool = True) -> bytes:
    """Chat-completions framing: ``data: {...}`` events, then ``data: [DONE]``."""
    out = [f"data: {json.dumps(p)}\n\n" for p in payloads]
    if done:
        out.append("data: [DONE]\n\n")
    return "".join(out).encode()


def sse_events(events: Iterable[tuple[str, dict[str, Any]]]) -> bytes:
    """Named-event framing (Responses and Messages APIs): ``event: type`` + ``data: {...}``."""
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events).encode()


# --- OpenAI Responses API ----------------------------------------------------------------

def response_object(*, model: str = "gpt-5.5-2026-04-23", text: str | None = "Hi there.",
                    function_calls: Sequence[tuple[str, str, dict[str, Any]]] = (),
                    input_tokens: int = 30, output_tokens: int = 12, cached_tokens: int = 0,
                    reasoning_tokens: int = 0, response_id: str = "resp_0a1b2c3d",
                    service_tier: str = "default", status: str = "completed",
                    with_usage: bool = True) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if reasoning_tokens:
        output.append({"id": "rs_01", "type": "reasoning", "summary": []})
    if text is not None:
        output.append({"id": "msg_01", "type": "message", "status": "completed", "role": "assistant",
                       "content": [{"type": "output_text", "text": text, "annotations": []}]})
    for call_id, name, args in function_calls:
        output.append({"id": f"fc_{call_id}", "type": "function_call", "status": "completed",
                       "call_id": call_id, "name": name, "arguments": json.dumps(args)})
    body: dict[str, Any] = {
        "id": response_id, "object": "response", "created_at": 1_790_000_000, "status": status,
        "model": model, "output": output, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
        "temperature": 1.0, "top_p": 1.0, "service_tier": service_tier, "error": None,
        "incomplete_details": None, "instructions": None, "metadata": {},
        "text": {"format": {"type": "text"}}, "truncation": "disabled",
    }
    if with_usage:
        body["usage"] = {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": cached_tokens},
                         "output_tokens": output_tokens,
                         "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
                         "total_tokens": input_tokens + output_tokens}
    return body


def response_events(final: dict[str, Any], *, deltas: Sequence[str] = ("Hi ", "there."),
                    complete: bool = True) -> list[tuple[str, dict[str, Any]]]:
    """The event stream of ``responses.create(stream=True)`` ending in ``final``."""
    start = {**final, "status": "in_progress", "output": [], "usage": None}
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"type": "response.created", "sequence_number": 0, "response": start}),
        ("response.in_progress", {"type": "response.in_progress", "sequence_number": 1, "response": start}),
    ]
    seq = 2
    for i, item in enumerate(final["output"]):
        events.append(("response.output_item.added", {"type": "response.output_item.added", "sequence_number": seq,
                                                      "output_index": i, "item": {**item, "status": "in_progress"}}))
        seq += 1
        if item["type"] == "message":
            for d in deltas:
                events.append(("response.output_text.delta", {
                    "type": "response.output_text.delta", "sequence_number": seq, "item_id": item["id"],
                    "output_index": i, "content_index": 0, "delta": d, "logprobs": []}))
                seq += 1
        events.append(("response.output_item.done", {"type": "response.output_item.done", "sequence_number": seq,
                                                     "output_index": i, "item": item}))
        seq += 1
    if complete:
        events.append(("response.completed", {"type": "response.completed", "sequence_number": seq,
                                              "response": final}))
    return events


# --- OpenAI embeddings -------------------------------------------------------------------

def embeddings(*, model: str = "text-embedding-3-small", count: int = 2, dims: int = 4,
               prompt_tokens: int = 16) -> dict[str, Any]:
    return {"object": "list", "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": [0.25 * (i + 1)] * dims}
                     for i in range(count)],
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}


def openai_error(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    kinds = {400: "invalid_request_error", 401: "invalid_api_key", 429: "rate_limit_exceeded",
             500: "server_error"}
    return {"error": {"message": message, "type": kinds.get(status, "api_error"), "param": None,
                      "code": code or kinds.get(status)}}


# --- Anthropic Messages API --------------------------------------------------------------

@dataclass(frozen=True)
class ClaudeUsage:
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    ephemeral_5m: int | None = None
    ephemeral_1h: int | None = None
    service_tier: str = "standard"

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "service_tier": self.service_tier,
        }
        if self.ephemeral_5m is not None or self.ephemeral_1h is not None:
            body["cache_creation"] = {"ephemeral_5m_input_tokens": self.ephemeral_5m or 0,
                                      "ephemeral_1h_input_tokens": self.ephemeral_1h or 0}
        return body


def claude_message(*, model: str = "claude-sonnet-4-6", text: str | None = "Hello from Claude.",
                   tool_uses: Sequence[tuple[str, str, dict[str, Any]]] = (),
                   usage: ClaudeUsage | None = ClaudeUsage(25, 10), message_id: str = "msg_01XyZ",
                   stop_reason: str | None = None) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text is not None:
        content.append({"type": "text", "text": text})
    for tool_id, name, args in tool_uses:
        content.append({"type": "tool_use", "id": tool_id, "name": name, "input": args})
    body: dict[str, Any] = {"id": message_id, "type": "message", "role": "assistant", "model": model,
                            "content": content, "stop_reason": stop_reason or ("tool_use" if tool_uses else
                                                                               "end_turn"),
                            "stop_sequence": None}
    if usage is not None:
        body["usage"] = usage.body()
    return body


def claude_events(message: dict[str, Any], *, pieces: Sequence[str] | None = None,
                  complete: bool = True) -> list[tuple[str, dict[str, Any]]]:
    """The event stream of ``messages.create(stream=True)`` that builds ``message``."""
    usage = dict(message.get("usage") or {})
    start_usage = {**usage, "output_tokens": 1} if usage else None
    start = {**message, "content": [], "stop_reason": None}
    if start_usage is not None:
        start["usage"] = start_usage
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
    for i, block in enumerate(message["content"]):
        if block["type"] == "text":
            events.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {"type": "text", "text": ""}}))
            text = block["text"]
            parts = list(pieces) if pieces is not None else [text[: len(text) // 2], text[len(text) // 2:]]
            for p in parts:
                events.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                       "delta": {"type": "text_delta", "text": p}}))
        else:
            events.append(("content_block_start", {"type": "content_block_start", "index": i, "content_block": {
                "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}}))
            args = json.dumps(block["input"])
            for p in (args[: len(args) // 2], args[len(args) // 2:]):
                events.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                       "delta": {"type": "input_json_delta", "partial_json": p}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    if complete:
        delta_usage = {"output_tokens": usage.get("output_tokens", 0)} if usage else {"output_tokens": 0}
        events.append(("message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                                         "usage": delta_usage}))
        events.append(("message_stop", {"type": "message_stop"}))
    return events


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    kinds = {400: "invalid_request_error", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}
    return {"type": "error", "error": {"type": kinds.get(status, "api_error"), "message": message}}


# --- the mock endpoint -------------------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    """One HTTP answer: a JSON body, or an SSE byte stream, or an exception raised by the transport."""

    status: int = 200
    json: Any = None
    sse: bytes | None = None
    raise_exc: Callable[[Any, Any], BaseException] | None = None  # called with (request, http module)
    headers: dict[str, str] = field(default_factory=dict)


class FakeLLM:
    """A mock transport handler that answers from a queue and records each request.

    ``default`` answers when the queue is empty (so concurrent tests need not
    script every call). ``requests`` holds ``(path, json body)`` in arrival order.
    """

    def __init__(self, replies: Iterable[Reply] = (), *, default: Reply | Callable[[Any], Reply] | None = None,
                 http: Any = None) -> None:
        self.replies = list(replies)
        self.default = default
        self.requests: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self.http = http if http is not None else http_module()

    def __call__(self, request: Any) -> Any:
        body = json.loads(request.content) if request.content else None
        with self._lock:
            self.requests.append((request.url.path, body))
            reply = self.replies.pop(0) if self.replies else self.default
        if callable(reply) and not isinstance(reply, Reply):
            reply = reply(body)
        if reply is None:
            raise AssertionError(f"FakeLLM: no reply scripted for {request.url.path}")
        if reply.raise_exc is not None:
            raise reply.raise_exc(request, self.http)
        headers = {"x-request-id": "req_fake_0001", **reply.headers}
        if reply.sse is not None:
            return self.http.Response(reply.status, content=reply.sse,
                                      headers={"content-type": "text/event-stream", **headers})
        return self.http.Response(reply.status, json=reply.json, headers=headers)

    def transport(self) -> Any:
        return self.http.MockTransport(self)

    def openai(self, *, async_client: bool = False, base_url: str = "https://api.openai.test/v1",
               max_retries: int = 0, **kwargs: Any) -> Any:
        """A real ``openai.OpenAI`` (or ``AsyncOpenAI``) client talking to this endpoint."""
        import openai

        client_cls = self.http.AsyncClient if async_client else self.http.Client
        cls = openai.AsyncOpenAI if async_client else openai.OpenAI
        return cls(api_key="sk-test-not-a-real-key", base_url=base_url, max_retries=max_retries,
                   http_client=client_cls(transport=self.transport()), **kwargs)

    def anthropic(self, *, async_client: bool = False, base_url: str = "https://api.anthropic.test",
                  max_retries: int = 0, **kwargs: Any) -> Any:
        """A real ``anthropic.Anthropic`` (or ``AsyncAnthropic``) client talking to this endpoint."""
        import anthropic

        client_cls = self.http.AsyncClient if async_client else self.http.Client
        cls = anthropic.AsyncAnthropic if async_client else anthropic.Anthropic
        return cls(api_key="sk-ant-test-not-a-real-key", base_url=base_url, max_retries=max_retries,
                   http_client=client_cls(transport=self.transport()), **kwargs)


def json_reply(body: Any, status: int = 200, **headers: str) -> Reply:
    return Reply(status=status, json=body, headers=dict(headers))


def chat_sse_reply(chunks: Sequence[dict[str, Any]], *, done: bool = True) -> Reply:
    return Reply(sse=sse_data(chunks, done=done))


def events_reply(events: Sequence[tuple[str, dict[str, Any]]]) -> Reply:
    return Reply(sse=sse_events(events))


def timeout_reply() -> Reply:
    """The transport times out reading the response (the SDK raises its APITimeoutError)."""
    def boom(request: Any, http: Any) -> BaseException:
        return http.ReadTimeout("timed out reading the response", request=request)

    return Reply(raise_exc=boom)
