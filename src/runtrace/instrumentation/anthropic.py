"""Anthropic client instrumentation: ``messages.create`` (plain and streamed), ``parse`` and ``stream()``.

The same shape as the openai module: a patch table, request attributes from
``kwargs``, one extractor for the ``Message`` model and its JSON body. Two
Anthropic specifics:

- Anthropic's ``input_tokens`` excludes cache reads and cache writes; the span
  records the total (input + cache read + cache creation), as the GenAI
  conventions and genai-prices count it, with the cache parts (and the 5m/1h
  split of cache writes) beside it, so cache writes are priced above input.
- anthropic 2.x emits its own ``anthropic.messages.create`` span, also marked
  ``gen_ai.operation.name=chat``. Stored next to runtrace's, every call would be
  counted twice, so while runtrace traces a call it stops the SDK from starting
  that span (row ``start_api_call_span`` below; the SDK's documented reaction
  to a span that cannot start is to go on without one). Calls runtrace does not
  trace keep the SDK's span.

``messages.stream()`` sends its request when its manager is entered; runtrace
hooks that moment (budget check, span) and hands the helper a proxied raw
stream, so ``text_stream``, ``get_final_message()`` and ``close()`` all feed
and end the span.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import anthropic  # noqa: F401 - absent: importing this module fails, so instrument() skips it

from .. import _config, _pending, semconv
from .._internal import fail_open
from . import _wrap
from ._llm import Request, RequestedToolCall, ResponseData, Usage, tool_call_part
from ._provider import Endpoint, Method, Provider, call_async, call_sync
from ._read import as_int, as_list, as_str, flatten_text, get, listed, put, server_attributes, stop_sequences

INTEGRATION = "anthropic"
TRACER = "runtrace.instrumentation.anthropic"


# --- requests ----------------------------------------------------------------------------

def _block_text(block: Any) -> str:
    kind = get(block, "type")
    if kind == "tool_use":
        return f"{get(block, 'name')}({json.dumps(get(block, 'input'), sort_keys=True, default=str)})"
    if kind == "tool_result":
        return flatten_text(get(block, "content"))
    return flatten_text([block])


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(_block_text(b) for b in as_list(content))


def _message_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    for block in as_list(content):
        kind = get(block, "type")
        if kind == "tool_use":
            parts.append(tool_call_part(get(block, "id"), get(block, "name"), get(block, "input")))
        elif kind == "tool_result":
            parts.append({"type": "tool_call_response", "id": get(block, "tool_use_id"),
                          "result": flatten_text(get(block, "content"))})
        else:
            parts.append({"type": "text", "content": flatten_text([block])})
    return parts


def messages_request(instance: Any, kwargs: dict[str, Any]) -> Request:
    attrs: dict[str, Any] = {}
    attrs.update(server_attributes(get(instance, "_client")))
    put(attrs, semconv.GEN_AI_REQUEST_MAX_TOKENS, kwargs.get("max_tokens"))
    put(attrs, semconv.GEN_AI_REQUEST_TEMPERATURE, kwargs.get("temperature"))
    put(attrs, semconv.GEN_AI_REQUEST_TOP_P, kwargs.get("top_p"))
    put(attrs, semconv.GEN_AI_REQUEST_TOP_K, kwargs.get("top_k"))
    put(attrs, semconv.GEN_AI_REQUEST_STOP_SEQUENCES, stop_sequences(kwargs.get("stop_sequences")))
    if get(kwargs.get("output_config"), "format") is not None or isinstance(kwargs.get("output_format"), type):
        attrs[semconv.GEN_AI_OUTPUT_TYPE] = "json"
    messages = listed(kwargs.get("messages"))  # never consume a generator
    system = kwargs.get("system")
    system_text = _message_text(system) if system is not None and not isinstance(system, (int, float)) else ""
    prompt: list[tuple[str, str]] | None = None
    if messages is not None:
        prompt = [(as_str(get(m, "role")) or "user", _message_text(get(m, "content"))) for m in messages]
        if system_text:
            prompt.insert(0, ("system", system_text))
    capture = _config.settings().capture_content
    return Request(
        provider=semconv.PROVIDER_ANTHROPIC, operation=semconv.OP_CHAT, model=as_str(kwargs.get("model")),
        attributes=attrs, stream=kwargs.get("stream") is True, prompt=prompt,
        input_messages=[{"role": as_str(get(m, "role")) or "user", "parts": _message_parts(get(m, "content"))}
                        for m in messages] if messages is not None and capture else None,
        system_instructions=[{"type": "text", "content": system_text}] if capture and system_text else None,
    )


# --- responses ---------------------------------------------------------------------------

# Hand-read, not _usage.extract: same numbers (tests/test_instrumentation_usage_extract_parity.py), but the stream merges
# message_start and message_delta usage on SDK objects, and extract drops a usage that has only one of the two.
def claude_usage(usage: Any) -> Usage | None:
    """Anthropic usage with input made total: input + cache reads + cache writes."""
    inp, out = as_int(get(usage, "input_tokens")), as_int(get(usage, "output_tokens"))
    if inp is None and out is None:
        return None
    read = as_int(get(usage, "cache_read_input_tokens")) or 0
    write = as_int(get(usage, "cache_creation_input_tokens")) or 0
    split_5m = as_int(get(usage, "cache_creation", "ephemeral_5m_input_tokens"))
    split_1h = as_int(get(usage, "cache_creation", "ephemeral_1h_input_tokens"))
    has_split = get(usage, "cache_creation") is not None
    return Usage(
        input_tokens=(inp or 0) + read + write, output_tokens=out or 0, cache_read_tokens=read,
        cache_write_tokens=write,
        cache_write_5m_tokens=(split_5m or 0) if has_split else None,
        cache_write_1h_tokens=(split_1h or 0) if has_split else None,
        reasoning_tokens=as_int(get(usage, "output_tokens_details", "thinking_tokens")),
    )


def _tool_use(block: Any) -> RequestedToolCall:
    args = get(block, "input")
    return RequestedToolCall(as_str(get(block, "id")), as_str(get(block, "name")),
                    json.dumps(args, separators=(",", ":"), default=str) if args is not None else None)


def _finish(data: ResponseData, content: list[Any], stop_reason: str | None) -> ResponseData:
    texts: list[str] = []
    parts: list[dict[str, Any]] = []
    for block in content:
        kind = get(block, "type")
        if kind == "text":
            text = get(block, "text")
            if isinstance(text, str):
                texts.append(text)
                parts.append({"type": "text", "content": text})
        elif kind == "tool_use":
            call = _tool_use(block)
            data.tool_calls.append(call)
            parts.append(tool_call_part(call.id, call.name, call.arguments))
    data.text = "".join(texts)
    if stop_reason:
        data.finish_reasons.append(stop_reason)
    if parts or stop_reason:
        data.output_messages.append({"role": "assistant", "parts": parts, "finish_reason": stop_reason or ""})
    return data


def message_response(body: Any) -> ResponseData:
    """A ``Message`` (model or JSON body) as ResponseData."""
    usage = get(body, "usage")
    data = ResponseData(response_id=as_str(get(body, "id")), response_model=as_str(get(body, "model")),
                        usage=claude_usage(usage), service_tier=as_str(get(usage, "service_tier")))
    return _finish(data, as_list(get(body, "content")), as_str(get(body, "stop_reason")))


_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
                 "cache_creation", "output_tokens_details", "service_tier")


class MessageAccumulator:
    """Rebuilds a ``Message`` from raw stream events (message_start ... message_stop)."""

    def __init__(self) -> None:
        self.head = ResponseData()
        self.usage: dict[str, Any] = {}
        self.blocks: dict[int, dict[str, Any]] = {}
        self.stop_reason: str | None = None

    def _merge_usage(self, usage: Any) -> None:
        for name in _USAGE_FIELDS:
            value = get(usage, name)
            if value is not None:
                self.usage[name] = value

    def add(self, event: Any) -> None:
        kind = get(event, "type")
        if kind == "message_start":
            message = get(event, "message")
            self.head.response_id = as_str(get(message, "id"))
            self.head.response_model = as_str(get(message, "model"))
            self._merge_usage(get(message, "usage"))
        elif kind == "content_block_start":
            block = get(event, "content_block")
            self.blocks[as_int(get(event, "index")) or 0] = {
                "type": get(block, "type"), "id": get(block, "id"), "name": get(block, "name"),
                "text": [get(block, "text") or ""], "json": []}
        elif kind == "content_block_delta":
            block = self.blocks.setdefault(as_int(get(event, "index")) or 0,
                                           {"type": "text", "text": [], "json": []})
            delta = get(event, "delta")
            if get(delta, "type") == "text_delta" and isinstance(get(delta, "text"), str):
                block["text"].append(get(delta, "text"))
            elif get(delta, "type") == "input_json_delta" and isinstance(get(delta, "partial_json"), str):
                block["json"].append(get(delta, "partial_json"))
        elif kind == "message_delta":
            self.stop_reason = as_str(get(event, "delta", "stop_reason")) or self.stop_reason
            self._merge_usage(get(event, "usage"))

    def result(self) -> ResponseData:
        data = ResponseData(response_id=self.head.response_id, response_model=self.head.response_model,
                            usage=claude_usage(self.usage) if self.usage else None,
                            service_tier=as_str(self.usage.get("service_tier")))
        content: list[dict[str, Any]] = []
        for _, block in sorted(self.blocks.items()):
            if block["type"] == "tool_use":
                raw = "".join(block["json"])
                try:
                    args: Any = json.loads(raw) if raw else {}
                except ValueError:
                    args = raw  # cut mid-way: keep what arrived
                content.append({"type": "tool_use", "id": block["id"], "name": block["name"], "input": args})
            elif block["type"] == "text":
                content.append({"type": "text", "text": "".join(block["text"])})
        return _finish(data, content, self.stop_reason)


# --- messages.stream(): trace the request its manager sends on entry -----------------------

@functools.cache
def _stream_endpoint(is_async: bool) -> Endpoint:
    """The request a stream manager sends: always a stream."""
    return PROVIDER.endpoint(Method("Messages.stream", is_async=is_async, stream=True))


def _traced_stream_request(api_request: Any, instance: Any, kwargs: dict[str, Any]) -> Any:
    return lambda: call_sync(_stream_endpoint(False), instance, kwargs, lambda _sent: api_request())


async def _traced_async_stream_request(api_request: Any, instance: Any, kwargs: dict[str, Any]) -> Any:
    return await call_async(_stream_endpoint(True), instance, kwargs, lambda _sent: api_request,
                            discard=api_request.close)


_MANAGER_DEPTH = 4  # wrappers looked through for the SDK's manager


def _sdk_manager(manager: Any) -> tuple[Any, str] | None:
    """The SDK's stream manager and the name of its request attribute, under other wrappers.

    The manager keeps its request in a name-mangled attribute; if a release renames
    it, stream() simply goes untraced. Another instrumentation patched before
    runtrace may hand back its own wrapper of the manager: OpenLLMetry's
    ``WrappedMessageStreamManager`` keeps it in ``_stream_manager``, a wrapt proxy in
    ``__wrapped__``. Looked through, or that stream() went untraced (and the SDK's
    own span of it counted instead).
    """
    obj = manager
    for _ in range(_MANAGER_DEPTH):
        attr = f"_{type(obj).__name__}__api_request"
        if getattr(obj, attr, None) is not None:
            return obj, attr
        inner = vars(obj).get("_stream_manager") if hasattr(obj, "__dict__") else None
        if inner is None:
            inner = getattr(obj, "__wrapped__", None)
        if inner is None or inner is obj:
            return None
        obj = inner
    return None


def _stream_helper(is_async: bool) -> Any:
    def make() -> Any:
        def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if not _wrap.is_active(INTEGRATION) or _wrap.IN_LLM_CALL.get():
                return wrapped(*args, **kwargs)
            # The call's span starts at __enter__: another instrumentation's span of it
            # starts here, and may end here too (_pending).
            with _pending.llm_call_setup():
                manager = wrapped(*args, **kwargs)
            with fail_open("anthropic: messages.stream"):
                found = _sdk_manager(manager)
                if found is not None:
                    sdk_manager, attr = found
                    original = getattr(sdk_manager, attr)
                    if is_async:
                        setattr(sdk_manager, attr, _traced_async_stream_request(original, instance, dict(kwargs)))
                    else:
                        setattr(sdk_manager, attr, _traced_stream_request(original, instance, dict(kwargs)))
            return manager
        return wrapper
    return make


def _sdk_span_gate() -> Any:
    """Wrapper of anthropic's ``start_api_call_span``: no SDK span for a call runtrace traces."""
    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if _wrap.is_active(INTEGRATION) and _wrap.IN_LLM_CALL.get():
            return None
        return wrapped(*args, **kwargs)
    return wrapper


_MESSAGES = "anthropic.resources.messages"
_BETA_MESSAGES = "anthropic.resources.beta.messages"

PROVIDER = Provider(
    name=INTEGRATION, tracer=TRACER, modules=(_MESSAGES, _BETA_MESSAGES),
    methods=(Method("Messages.create"), Method("AsyncMessages.create", is_async=True),
             Method("Messages.parse", module=_MESSAGES), Method("AsyncMessages.parse", module=_MESSAGES, is_async=True)),
    request=messages_request, response=message_response, accumulator=MessageAccumulator, raw_responses=True,
    # stream(): its (Beta)MessageStreamManager keeps the request the same way in both modules.
    extra=(*(_wrap.Patch(module, target, _stream_helper(target.startswith("Async")))
             for module in (_MESSAGES, _BETA_MESSAGES) for target in ("Messages.stream", "AsyncMessages.stream")),
           _wrap.Patch("anthropic._base_client", "start_api_call_span", _sdk_span_gate)),
)
PATCHES, instrument, uninstrument, patched_methods = PROVIDER.module_api()
