"""Mistral (``mistralai``) instrumentation: ``chat.complete`` / ``chat.stream``, sync and async.

mistralai 2.x+ keeps its client in ``mistralai.client``; 1.x had it at the
package root (``mistralai.chat``). The table lists both, and the rows of the
release that is not installed are skipped. Responses are OpenAI-shaped
(``usage.prompt_tokens`` is the total input, ``prompt_tokens_details.cached_tokens``
the cached part), read by genai-prices' Mistral extractor. A stream is an
``EventStream`` of ``CompletionEvent`` whose ``data`` is the chunk; the last
chunk carries the usage.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from .. import _config, semconv
from . import _usage, _wrap
from ._llm import (
    LLMCall,
    Request,
    ResponseData,
    ToolCall,
    as_int,
    as_list,
    as_str,
    flatten_text,
    get,
    put,
    server_attributes,
    stop_sequences,
    to_json,
    tool_call_part,
    traced,
    traced_async,
)
from ._stream import wrap_stream

for _name in ("mistralai.client.chat", "mistralai.chat"):  # absent: instrument() skips this client
    try:
        importlib.import_module(_name)
        break
    except ImportError:
        continue
else:
    raise ModuleNotFoundError("mistralai's chat client is not installed")

INTEGRATION = "mistral"
TRACER = "runtrace.instrumentation.mistral"
PRICES_PROVIDER = "mistral"  # genai-prices' id for the usage extractor


def chat_request(instance: Any, kwargs: dict[str, Any]) -> Request:
    attrs: dict[str, Any] = {}
    url = kwargs.get("server_url") or get(instance, "sdk_configuration", "server_url")
    if not url:
        with_url = getattr(get(instance, "sdk_configuration"), "get_server_details", None)
        url = with_url()[0] if callable(with_url) else None
    attrs.update(server_attributes({"base_url": url}))
    put(attrs, semconv.GEN_AI_REQUEST_MAX_TOKENS, as_int(kwargs.get("max_tokens")))
    put(attrs, semconv.GEN_AI_REQUEST_TEMPERATURE, kwargs.get("temperature"))
    put(attrs, semconv.GEN_AI_REQUEST_TOP_P, kwargs.get("top_p"))
    put(attrs, semconv.GEN_AI_REQUEST_CHOICE_COUNT, as_int(kwargs.get("n")))
    put(attrs, semconv.GEN_AI_REQUEST_STOP_SEQUENCES, stop_sequences(kwargs.get("stop")))
    messages = kwargs.get("messages")
    listed = list(messages) if isinstance(messages, (list, tuple)) else None  # never consume a generator
    prompt = [(as_str(get(m, "role")) or "user", flatten_text(get(m, "content"))) for m in listed] \
        if listed is not None else None
    capture = _config.settings().capture_content
    return Request(
        provider=semconv.PROVIDER_MISTRAL, operation=semconv.OP_CHAT, model=as_str(kwargs.get("model")),
        attributes=attrs, stream=kwargs.get("stream") is True, prompt=prompt,
        input_messages=[{"role": role, "parts": [{"type": "text", "content": text}]} for role, text in prompt]
        if capture and prompt else None,
    )


def _stream_request(instance: Any, kwargs: dict[str, Any]) -> Request:
    return dataclasses.replace(chat_request(instance, kwargs), stream=True)


def _dump(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json", by_alias=True, exclude_none=True) if callable(dump) else value


class ChatAccumulator:
    """A ``ChatCompletionResponse``, or the chunks of a stream, merged into one response."""

    def __init__(self) -> None:
        self.data = ResponseData()
        self.texts: list[str] = []
        self.usage: Any = None
        self.finish: str | None = None
        self.tools: dict[int, list[Any]] = {}  # index -> [id, name, argument pieces]

    def add(self, chunk: Any) -> None:
        chunk = get(chunk, "data") if get(chunk, "choices") is None and get(chunk, "data") is not None else chunk
        data = self.data
        data.response_id = data.response_id or as_str(get(chunk, "id"))
        data.response_model = data.response_model or as_str(get(chunk, "model"))
        if get(chunk, "usage") is not None:
            self.usage = get(chunk, "usage")
        choices = as_list(get(chunk, "choices"))
        if not choices:
            return
        choice = choices[0]
        self.finish = as_str(get(choice, "finish_reason")) or self.finish
        message = get(choice, "message") if get(choice, "message") is not None else get(choice, "delta")
        text = flatten_text(get(message, "content")) if get(message, "content") is not None else ""
        if text:
            self.texts.append(text)
        for position, call in enumerate(as_list(get(message, "tool_calls"))):
            index = as_int(get(call, "index"))
            slot = self.tools.setdefault(position if index is None else index, [None, None, []])
            slot[0] = slot[0] or as_str(get(call, "id"))
            slot[1] = slot[1] or as_str(get(call, "function", "name"))
            arguments = get(call, "function", "arguments")
            if arguments is not None:
                slot[2].append(arguments if isinstance(arguments, str) else to_json(arguments))

    def result(self) -> ResponseData:
        data = self.data
        out = ResponseData(response_id=data.response_id, response_model=data.response_model,
                           usage=_usage.extract({"usage": _dump(self.usage)}, PRICES_PROVIDER)
                           if self.usage is not None else None,
                           text="".join(self.texts))
        out.tool_calls = [ToolCall(i, n, "".join(p) or None) for i, n, p in (self.tools[k] for k in sorted(self.tools))]
        if self.finish:
            out.finish_reasons.append(self.finish)
        parts: list[dict[str, Any]] = [{"type": "text", "content": out.text}] if out.text else []
        parts.extend(tool_call_part(c.id, c.name, c.arguments) for c in out.tool_calls)
        if parts or self.finish:
            out.output_messages.append({"role": "assistant", "parts": parts, "finish_reason": self.finish or ""})
        return out


def chat_response(response: Any) -> ResponseData:
    acc = ChatAccumulator()
    acc.add(response)
    return acc.result()


def _on_result(result: Any, call: LLMCall) -> Any:
    if call.request.stream:
        return wrap_stream(result, call, ChatAccumulator())
    call.finish(chat_response(result))
    return result


def _sync() -> Any:
    return traced(INTEGRATION, TRACER, chat_request, _on_result)


def _sync_stream() -> Any:
    return traced(INTEGRATION, TRACER, _stream_request, _on_result)


def _async() -> Any:
    return traced_async(INTEGRATION, TRACER, chat_request, _on_result)


def _async_stream() -> Any:
    return traced_async(INTEGRATION, TRACER, _stream_request, _on_result)


PATCHES: tuple[_wrap.Patch, ...] = tuple(
    _wrap.Patch(module, target, factory)
    for module in ("mistralai.client.chat", "mistralai.chat")
    for target, factory in (("Chat.complete", _sync), ("Chat.stream", _sync_stream),
                            ("Chat.complete_async", _async), ("Chat.stream_async", _async_stream))
)

_integration = _wrap.Integration(INTEGRATION, PATCHES)
instrument = _integration.instrument
uninstrument = _integration.uninstrument
patched_methods = _integration.patched_methods
