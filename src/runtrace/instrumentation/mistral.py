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

import importlib
from typing import Any

from .. import _config, semconv
from . import _usage
from ._llm import Request, ResponseData, ToolCallPieces, assistant_message
from ._provider import Method, Provider, whole_response
from ._read import (
    as_int,
    as_list,
    as_str,
    dump,
    flatten_text,
    get,
    listed,
    put,
    server_attributes,
    stop_sequences,
    to_json,
)

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
    messages = listed(kwargs.get("messages"))  # never consume a generator
    prompt = [(as_str(get(m, "role")) or "user", flatten_text(get(m, "content"))) for m in messages] \
        if messages is not None else None
    capture = _config.settings().capture_content
    return Request(
        provider=semconv.PROVIDER_MISTRAL, operation=semconv.OP_CHAT, model=as_str(kwargs.get("model")),
        attributes=attrs, stream=kwargs.get("stream") is True, prompt=prompt,
        input_messages=[{"role": role, "parts": [{"type": "text", "content": text}]} for role, text in prompt]
        if capture and prompt else None,
    )


class ChatAccumulator:
    """A ``ChatCompletionResponse``, or the chunks of a stream, merged into one response."""

    def __init__(self) -> None:
        self.data = ResponseData()
        self.texts: list[str] = []
        self.usage: Any = None
        self.finish: str | None = None
        self.tools = ToolCallPieces()

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
            arguments = get(call, "function", "arguments")
            self.tools.add(position if index is None else index, as_str(get(call, "id")),
                           as_str(get(call, "function", "name")),
                           None if arguments is None else arguments if isinstance(arguments, str) else to_json(arguments))

    def result(self) -> ResponseData:
        data = self.data
        out = ResponseData(response_id=data.response_id, response_model=data.response_model,
                           usage=_usage.extract({"usage": dump(self.usage)}, PRICES_PROVIDER)
                           if self.usage is not None else None, tool_calls=self.tools.calls())
        return assistant_message(out, "".join(self.texts), self.finish)


chat_response = whole_response(ChatAccumulator)  # a whole response is read as one chunk


PROVIDER = Provider(
    name=INTEGRATION, tracer=TRACER, modules=("mistralai.client.chat", "mistralai.chat"),
    methods=(Method("Chat.complete"), Method("Chat.stream", stream=True),
             Method("Chat.complete_async", is_async=True), Method("Chat.stream_async", is_async=True, stream=True)),
    request=chat_request, response=chat_response, accumulator=ChatAccumulator,
)
PATCHES, instrument, uninstrument, patched_methods = PROVIDER.module_api()
