"""OpenAI client instrumentation: chat completions, responses and embeddings, sync and async.

Laid out like the official OpenTelemetry openai-v2 instrumentation: one patch
table (below), request attributes read from ``kwargs`` by pure functions, and
the response read from the SDK's model object or, for ``with_raw_response`` /
``with_streaming_response``, from the JSON body, through the same extractors
(they accept both). Works with openai 1.x (httpx) through 3.x (httpx2): each row
is patched on its own, so a method a release lacks is skipped alone.

``chat.completions.stream()`` and ``responses.stream()`` call the patched
``create(stream=True)``, so they are traced through it; ``parse()`` posts on its
own in newer releases and is patched too (in openai 1.x the beta ``parse``
calls ``create``; the inner call then passes through, one span per request).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai  # noqa: F401 - absent: importing this module fails, so instrument() skips it

from .. import _config, semconv
from . import _wrap, endpoints  # noqa: F401 - _wrap: the patch-table rows PATCHES holds
from ._llm import (
    Request,
    RequestedToolCall,
    ResponseData,
    ToolCallPieces,
    Usage,
    assistant_message,
    tool_call_part,
)
from ._provider import Method, Provider
from ._read import (
    as_int,
    as_list,
    as_str,
    flatten_text,
    get,
    given,
    listed,
    put,
    shared_server_attributes,
    stop_sequences,
)

# The SDK's chunk types, read directly by ChatAccumulator (an older openai without them: the generic walk).
try:
    from openai.types.chat import ChatCompletionChunk as _SDKChunk
    from openai.types.chat.chat_completion_chunk import Choice as _SDKChoice
    from openai.types.chat.chat_completion_chunk import ChoiceDelta as _SDKDelta
except ImportError:  # pragma: no cover - every supported openai release has them
    _SDKChunk = _SDKChoice = _SDKDelta = None  # type: ignore[assignment,misc]
# The same for a whole ChatCompletion, read directly by chat_response and chat_usage.
try:
    from openai.types.chat import ChatCompletion as _SDKCompletion
    from openai.types.chat import ChatCompletionMessage as _SDKMessage
    from openai.types.chat.chat_completion import Choice as _SDKCompletionChoice
    from openai.types.completion_usage import CompletionUsage as _SDKUsage
except ImportError:  # pragma: no cover - every supported openai release has them
    _SDKCompletion = _SDKMessage = _SDKCompletionChoice = _SDKUsage = None  # type: ignore[assignment,misc]

try:
    from openai.types.responses import Response as _SDKResponse
    from openai.types.responses import ResponseFunctionToolCall as _SDKFunctionCall
    from openai.types.responses import ResponseOutputMessage as _SDKOutputMessage
    from openai.types.responses import ResponseOutputText as _SDKOutputText
    from openai.types.responses import ResponseUsage as _SDKResponseUsage
except ImportError:  # pragma: no cover - openai 1.x releases before the Responses API
    _SDKResponse = _SDKFunctionCall = _SDKOutputMessage = _SDKOutputText = None  # type: ignore[assignment,misc]
    _SDKResponseUsage = None  # type: ignore[assignment,misc]

INTEGRATION = "openai"
TRACER = "runtrace.instrumentation.openai"


# --- requests ----------------------------------------------------------------------------

def provider(instance: Any) -> str:
    """gen_ai.provider.name of the client behind a resource (Azure, DeepSeek, local, ... or openai).

    Remembered per (client class, ``base_url`` object): matching a URL against
    the provider patterns costs tens of us, and a client asks the same every call.
    """
    client = get(instance, "_client")
    base_url = getattr(client, "base_url", None) if client is not None else None
    if base_url is None or type(base_url) is str:
        return endpoints.provider_of_client(client)
    hit = _providers.get(id(base_url))
    if hit is not None and hit[0] is base_url and hit[1] is type(client):
        return hit[2]
    found = endpoints.provider_of_client(client)
    if len(_providers) >= 256:  # bounded: a program has a handful of clients
        _providers.clear()
    _providers[id(base_url)] = (base_url, type(client), found)
    return found


# id(base_url) -> (that base_url, the client's class, provider); the URL is held, so its id is not reused
_providers: dict[int, tuple[Any, type, str]] = {}


_COMMON_SAMPLING = (("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE), ("top_p", semconv.GEN_AI_REQUEST_TOP_P))


def _common_request(instance: Any, kwargs: dict[str, Any], attrs: dict[str, Any]) -> None:
    attrs.update(shared_server_attributes(get(instance, "_client")))
    for key, attribute in _COMMON_SAMPLING:
        value = kwargs.get(key)
        if value is not None:
            put(attrs, attribute, value)
    tier = kwargs.get("service_tier")
    if not (isinstance(tier, str) and given(tier)):
        tier = get(kwargs.get("extra_body"), "service_tier")
    if isinstance(tier, str) and tier != "auto":
        attrs[semconv.OPENAI_REQUEST_SERVICE_TIER] = tier


def _output_type(fmt: Any) -> str | None:
    if isinstance(fmt, type):  # parse(response_format=PydanticModel)
        return "json"
    kind = get(fmt, "type")
    if kind in ("json_schema", "json_object"):
        return "json"
    return "text" if kind == "text" else None


def _chat_message(message: Any) -> tuple[str, str]:
    if type(message) is dict:  # the common case, read without the generic walk
        content = message.get("content")
        if type(content) is str and not message.get("tool_calls"):
            role = message.get("role")
            return (role if type(role) is str and role else "user"), content
    role = as_str(get(message, "role")) or "user"
    text = flatten_text(get(message, "content"))
    calls = [f"{get(c, 'function', 'name')}({get(c, 'function', 'arguments') or ''})"
             for c in as_list(get(message, "tool_calls"))]
    return role, "\n".join([text, *calls]) if calls else text


def _chat_content(message: Any) -> dict[str, Any]:
    role = as_str(get(message, "role")) or "user"
    content = get(message, "content")
    parts: list[dict[str, Any]] = []
    if role == "tool":
        parts.append({"type": "tool_call_response", "id": get(message, "tool_call_id"),
                      "result": flatten_text(content)})
    elif content is not None:
        parts.append({"type": "text", "content": flatten_text(content)})
    for c in as_list(get(message, "tool_calls")):
        parts.append(tool_call_part(get(c, "id"), get(c, "function", "name"), get(c, "function", "arguments")))
    return {"role": role, "parts": parts}


_SAMPLING = (("frequency_penalty", semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY),
             ("presence_penalty", semconv.GEN_AI_REQUEST_PRESENCE_PENALTY), ("seed", semconv.GEN_AI_REQUEST_SEED))


def chat_parameters(kwargs: dict[str, Any], attrs: dict[str, Any]) -> None:
    """The sampling parameters of a chat completion request; shared with LiteLLM, which takes OpenAI's."""
    max_tokens = kwargs.get("max_completion_tokens")
    put(attrs, semconv.GEN_AI_REQUEST_MAX_TOKENS, max_tokens if given(max_tokens) else kwargs.get("max_tokens"))
    for key, attribute in _SAMPLING:  # usually absent: a look-up each, no put() call (issue 14)
        value = kwargs.get(key)
        if value is not None:
            put(attrs, attribute, value)
    stop = kwargs.get("stop")
    if stop is not None:
        put(attrs, semconv.GEN_AI_REQUEST_STOP_SEQUENCES, stop_sequences(stop))
    n = as_int(kwargs.get("n"))
    if n is not None and n != 1:
        attrs[semconv.GEN_AI_REQUEST_CHOICE_COUNT] = n


def chat_request(instance: Any, kwargs: dict[str, Any]) -> Request:
    attrs: dict[str, Any] = {}
    _common_request(instance, kwargs, attrs)
    chat_parameters(kwargs, attrs)
    put(attrs, semconv.GEN_AI_OUTPUT_TYPE, _output_type(kwargs.get("response_format")))
    messages = listed(kwargs.get("messages"))  # never a generator the SDK has yet to send
    capture = _config.settings().capture_content
    prompt, content = chat_message_parts(messages, capture) if messages is not None else (None, None)
    return Request(
        provider=provider(instance), operation=semconv.OP_CHAT, model=as_str(kwargs.get("model")),
        attributes=attrs, stream=kwargs.get("stream") is True, prompt=prompt, input_messages=content,
    )


def chat_message_parts(messages: list[Any], capture: bool
                       ) -> tuple[list[tuple[str, str]], list[dict[str, Any]] | None]:
    """Chat messages as (role, text) pairs for the detectors, and in semconv shape when capturing.

    Shared with LiteLLM, whose ``completion()`` takes OpenAI's messages.
    """
    return [_chat_message(m) for m in messages], [_chat_content(m) for m in messages] if capture else None


def _responses_input(value: Any) -> tuple[list[tuple[str, str]], list[dict[str, Any]]] | None:
    if isinstance(value, str):
        return [("user", value)], [{"role": "user", "parts": [{"type": "text", "content": value}]}]
    if not isinstance(value, (list, tuple)):
        return None
    prompt: list[tuple[str, str]] = []
    content: list[dict[str, Any]] = []
    for item in value:
        kind = get(item, "type")
        if kind == "function_call_output":
            output = get(item, "output")
            text = output if isinstance(output, str) else flatten_text(output)
            prompt.append(("tool", text))
            content.append({"role": "tool", "parts": [
                {"type": "tool_call_response", "id": get(item, "call_id"), "result": text}]})
        elif kind == "function_call":
            name, arguments = get(item, "name"), get(item, "arguments")
            prompt.append(("assistant", f"{name}({arguments or ''})"))
            content.append({"role": "assistant", "parts": [tool_call_part(get(item, "call_id"), name, arguments)]})
        elif get(item, "role") is not None:
            role = as_str(get(item, "role")) or "user"
            text = flatten_text(get(item, "content"))
            prompt.append((role, text))
            content.append({"role": role, "parts": [{"type": "text", "content": text}]})
    return prompt, content


def responses_request(instance: Any, kwargs: dict[str, Any]) -> Request:
    attrs: dict[str, Any] = {}
    _common_request(instance, kwargs, attrs)
    put(attrs, semconv.GEN_AI_REQUEST_MAX_TOKENS, kwargs.get("max_output_tokens"))
    text_format = kwargs.get("text_format")
    put(attrs, semconv.GEN_AI_OUTPUT_TYPE,
        _output_type(text_format if isinstance(text_format, type) else get(kwargs.get("text"), "format")))
    conversation = kwargs.get("conversation")
    put(attrs, semconv.GEN_AI_CONVERSATION_ID,
        conversation if isinstance(conversation, str) else get(conversation, "id"))
    found = _responses_input(kwargs.get("input"))
    instructions = kwargs.get("instructions")
    prompt: list[tuple[str, str]] | None = None
    content: list[dict[str, Any]] | None = None
    if found is not None:
        prompt, content = found
        if isinstance(instructions, str) and instructions:
            prompt.insert(0, ("system", instructions))
    capture = _config.settings().capture_content
    return Request(
        provider=provider(instance), operation=semconv.OP_CHAT, model=as_str(kwargs.get("model")),
        attributes=attrs, stream=kwargs.get("stream") is True, prompt=prompt,
        input_messages=content if capture else None,
        system_instructions=[{"type": "text", "content": instructions}]
        if capture and isinstance(instructions, str) and instructions else None,
    )


def embeddings_request(instance: Any, kwargs: dict[str, Any]) -> Request:
    attrs: dict[str, Any] = {}
    attrs.update(shared_server_attributes(get(instance, "_client")))
    fmt = kwargs.get("encoding_format")
    if isinstance(fmt, str):
        attrs[semconv.GEN_AI_REQUEST_ENCODING_FORMATS] = [fmt]
    return Request(provider=provider(instance), operation=semconv.OP_EMBEDDINGS,
                   model=as_str(kwargs.get("model")), attributes=attrs)


def _with_stream_usage(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``instrument(stream_usage=True)``: ask for the usage chunk unless the caller chose stream_options."""
    if (kwargs.get("stream") is True and _config.settings().stream_usage
            and not given(kwargs.get("stream_options"))):
        return {**kwargs, "stream_options": {"include_usage": True}}
    return kwargs


# --- responses ---------------------------------------------------------------------------

def _int_or_none(value: Any) -> int | None:
    """``as_int`` for what the SDK's models hold: an int read as it is, anything else as ``as_int`` reads it."""
    return value if type(value) is int else as_int(value)


# (input, output, input details, output details): chat's CompletionUsage and the Responses API's
# ResponseUsage are the same shape under two sets of names.
_CHAT_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details")
_RESPONSES_USAGE_FIELDS = ("input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details")


# Hand-read, not _usage.extract: same numbers (tests/test_instrumentation_usage_extract_parity.py), but extract needs a dumped SDK
# object (~6x this reader per call) and drops a partial usage (a stream broken off) that this one still prices.
def chat_usage(usage: Any) -> Usage | None:
    if type(usage) is _SDKUsage:
        return _sdk_usage(usage, _CHAT_USAGE_FIELDS, _any_usage)
    return _any_usage(usage)


def _sdk_usage(usage: Any, fields: tuple[str, str, str, str],
               walk: Callable[[Any], Usage | None]) -> Usage | None:
    """The SDK's own usage model read by attribute (five ``get()`` walks a call before, issue 14).

    ``fields`` names its parts; a part the SDK left as a raw dict goes to ``walk``, the generic reader.
    """
    inp_name, out_name, inp_details_name, out_details_name = fields
    prompt = _int_or_none(getattr(usage, inp_name, None))
    completion = _int_or_none(getattr(usage, out_name, None))
    if prompt is None and completion is None:
        return None
    details = getattr(usage, inp_details_name, None)
    cached = cache_write = None
    if details is not None:
        if type(details) is dict:  # a field the SDK left raw: the generic walk reads it
            return walk(usage)
        cached = _int_or_none(getattr(details, "cached_tokens", None))
        cache_write = _int_or_none(getattr(details, "cache_write_tokens", None))  # an extra some servers send
    out = getattr(usage, out_details_name, None)
    if type(out) is dict:
        return walk(usage)
    return Usage(
        input_tokens=prompt or 0, output_tokens=completion or 0, cache_read_tokens=cached or 0,
        cache_write_tokens=cache_write if cache_write else None,
        reasoning_tokens=_int_or_none(getattr(out, "reasoning_tokens", None)) if out is not None else None,
    )


def _any_usage(usage: Any) -> Usage | None:
    prompt, completion = as_int(get(usage, "prompt_tokens")), as_int(get(usage, "completion_tokens"))
    if prompt is None and completion is None:
        return None
    cache_write = as_int(get(usage, "prompt_tokens_details", "cache_write_tokens"))
    return Usage(
        input_tokens=prompt or 0, output_tokens=completion or 0,
        cache_read_tokens=as_int(get(usage, "prompt_tokens_details", "cached_tokens")) or 0,
        cache_write_tokens=cache_write if cache_write else None,
        reasoning_tokens=as_int(get(usage, "completion_tokens_details", "reasoning_tokens")),
    )


def _tool_call(raw: Any) -> RequestedToolCall:
    return RequestedToolCall(as_str(get(raw, "id")), as_str(get(raw, "function", "name")),
                    get(raw, "function", "arguments"))


def _head(body: Any, usage: Callable[[Any], Usage | None], *, sdk: bool) -> ResponseData:
    """A response's id, model, usage and tier: by attribute from the SDK's own model (``sdk``), else walked."""
    if sdk:
        return ResponseData(response_id=as_str(getattr(body, "id", None)),
                            response_model=as_str(getattr(body, "model", None)),
                            usage=usage(getattr(body, "usage", None)),
                            service_tier=as_str(getattr(body, "service_tier", None)))
    return ResponseData(response_id=as_str(get(body, "id")), response_model=as_str(get(body, "model")),
                        usage=usage(get(body, "usage")), service_tier=as_str(get(body, "service_tier")))


def chat_response(body: Any) -> ResponseData:
    """A ``ChatCompletion`` (model or JSON body) as ResponseData.

    The SDK's own ``ChatCompletion`` is read by attribute (issue 14: about fifteen
    ``get()`` walks a call before); a choice or message of another type, or a
    message with tool calls, is read by the generic walk, which accepts anything.
    ``tests/test_instrumentation_response_reader.py`` holds both paths equal.
    """
    if type(body) is _SDKCompletion:
        data = _head(body, chat_usage, sdk=True)
        choices = getattr(body, "choices", None)
    else:
        data = _head(body, chat_usage, sdk=False)
        choices = get(body, "choices")
    for index, choice in enumerate(as_list(choices)):
        message = getattr(choice, "message", None) if type(choice) is _SDKCompletionChoice else None
        if type(message) is _SDKMessage and not getattr(message, "tool_calls", None):
            reason = as_str(getattr(choice, "finish_reason", None))
            text = getattr(message, "content", None)
            calls: list[RequestedToolCall] = []
        else:
            reason = as_str(get(choice, "finish_reason"))
            message = get(choice, "message")
            text = get(message, "content")
            calls = [_tool_call(c) for c in as_list(get(message, "tool_calls"))]
        if reason:
            data.finish_reasons.append(reason)
        text = text if isinstance(text, str) else ""
        data.tool_calls.extend(calls)
        if index == 0:
            data.text = text
        parts: list[dict[str, Any]] = [{"type": "text", "content": text}] if text else []
        parts.extend(tool_call_part(c.id, c.name, c.arguments) for c in calls)
        data.output_messages.append({"role": "assistant", "parts": parts, "finish_reason": reason or ""})
    return data


class ChatAccumulator:
    """Rebuilds a chat completion from ``ChatCompletionChunk``s."""

    def __init__(self) -> None:
        self.head = ResponseData()
        self.texts: dict[int, list[str]] = {}
        self.reasons: dict[int, str] = {}
        self.calls: dict[int, ToolCallPieces] = {}  # choice -> its tool calls' pieces

    def add(self, chunk: Any) -> None:
        """One chunk; the openai SDK's own ``ChatCompletionChunk`` has its fields read as attributes, no ``get()`` walk.

        A streamed call spends most of runtrace's per-chunk time here (about ten
        ``get()`` reads a chunk, 71 a stream in the benchmark); the SDK's model types
        are known, so a chunk, choice and delta of exactly those types are read
        directly, in this method (a second call a chunk before, issue 14). Anything
        else (a dict, a subclass, a field the SDK left as a raw dict because it did
        not match its type) goes through :meth:`_add_any`.
        """
        if type(chunk) is not _SDKChunk:
            self._add_any(chunk)
            return
        head = self.head
        if head.response_id is None:
            head.response_id = as_str(getattr(chunk, "id", None))
        if head.response_model is None:
            head.response_model = as_str(getattr(chunk, "model", None))
        tier = getattr(chunk, "service_tier", None)
        if isinstance(tier, str) and tier:
            head.service_tier = tier
        raw_usage = getattr(chunk, "usage", None)
        if raw_usage is not None:
            usage = chat_usage(raw_usage)
            if usage is not None:
                head.usage = usage
        choices = getattr(chunk, "choices", None)
        if not isinstance(choices, list):
            return
        for choice in choices:
            delta = getattr(choice, "delta", None)
            if type(choice) is not _SDKChoice or type(delta) is not _SDKDelta or getattr(delta, "tool_calls", None):
                self._add_choice(choice)
                continue
            index = getattr(choice, "index", None)
            if type(index) is not int:  # the SDK's int is used as it is: as_int for anything else
                index = as_int(index) or 0
            content = getattr(delta, "content", None)
            if isinstance(content, str):
                self.texts.setdefault(index, []).append(content)
            reason = getattr(choice, "finish_reason", None)
            if isinstance(reason, str) and reason:
                self.reasons[index] = reason

    def _add_any(self, chunk: Any) -> None:
        head = self.head
        if head.response_id is None:  # the first chunk names them; later ones are not read again
            head.response_id = as_str(get(chunk, "id"))
        if head.response_model is None:
            head.response_model = as_str(get(chunk, "model"))
        head.service_tier = as_str(get(chunk, "service_tier")) or head.service_tier
        raw_usage = get(chunk, "usage")  # only the last chunk carries it
        usage = chat_usage(raw_usage) if raw_usage is not None else None
        if usage is not None:
            head.usage = usage
        for choice in as_list(get(chunk, "choices")):
            self._add_choice(choice)

    def _add_choice(self, choice: Any) -> None:
        index = as_int(get(choice, "index")) or 0
        delta = get(choice, "delta")
        content = get(delta, "content")
        if isinstance(content, str):
            self.texts.setdefault(index, []).append(content)
        for call in as_list(get(delta, "tool_calls")):
            piece = get(call, "function", "arguments")
            self.calls.setdefault(index, ToolCallPieces()).add(
                as_int(get(call, "index")) or 0, as_str(get(call, "id")), as_str(get(call, "function", "name")),
                piece if isinstance(piece, str) else None)
        reason = as_str(get(choice, "finish_reason"))
        if reason:
            self.reasons[index] = reason

    def result(self) -> ResponseData:
        head = self.head
        data = ResponseData(response_id=head.response_id, response_model=head.response_model,
                            usage=head.usage, service_tier=head.service_tier)
        for index in sorted(set(self.texts) | set(self.reasons) | set(self.calls)):
            text = "".join(self.texts.get(index, ()))
            pieces = self.calls.get(index)
            calls = pieces.calls(keep_empty=True) if pieces is not None else []
            data.tool_calls.extend(calls)
            reason = self.reasons.get(index)
            if reason:
                data.finish_reasons.append(reason)
            if not data.text:
                data.text = text
            parts: list[dict[str, Any]] = [{"type": "text", "content": text}] if text else []
            parts.extend(tool_call_part(c.id, c.name, c.arguments) for c in calls)
            data.output_messages.append({"role": "assistant", "parts": parts, "finish_reason": reason or ""})
        return data


# Hand-read for the same reasons as chat_usage (SDK objects, not JSON; partial stream usage).
def responses_usage(usage: Any) -> Usage | None:
    if type(usage) is _SDKResponseUsage:
        return _sdk_usage(usage, _RESPONSES_USAGE_FIELDS, _any_responses_usage)
    return _any_responses_usage(usage)


def _any_responses_usage(usage: Any) -> Usage | None:
    inp, out = as_int(get(usage, "input_tokens")), as_int(get(usage, "output_tokens"))
    if inp is None and out is None:
        return None
    cache_write = as_int(get(usage, "input_tokens_details", "cache_write_tokens"))  # as genai-prices reads it
    return Usage(input_tokens=inp or 0, output_tokens=out or 0,
                 cache_read_tokens=as_int(get(usage, "input_tokens_details", "cached_tokens")) or 0,
                 cache_write_tokens=cache_write if cache_write else None,
                 reasoning_tokens=as_int(get(usage, "output_tokens_details", "reasoning_tokens")))


def _responses_finish_reason(body: Any, has_calls: bool, status: str | None) -> str | None:
    if status == "completed":
        return "tool_calls" if has_calls else "stop"
    if status == "incomplete":
        return as_str(get(body, "incomplete_details", "reason")) or "incomplete"
    if status == "failed":
        return "error"
    return status


def responses_response(body: Any) -> ResponseData:
    """A ``Response`` of the Responses API (model or JSON body) as ResponseData.

    The SDK's own ``Response`` is read by attribute, and so are its message and
    function-call items (issue 14: about fifteen ``get()`` walks a call, as chat's
    were); any other type (a JSON body, a ``ParsedResponse``, an item or content
    piece of another type) is read by the generic walk, which accepts anything.
    ``tests/test_instrumentation_responses_reader.py`` holds both paths equal.
    """
    if type(body) is _SDKResponse:
        data = _head(body, responses_usage, sdk=True)
        output, status = getattr(body, "output", None), as_str(getattr(body, "status", None))
    else:
        data = _head(body, responses_usage, sdk=False)
        output, status = get(body, "output"), as_str(get(body, "status"))
    texts: list[str] = []
    parts: list[dict[str, Any]] = []
    for item in as_list(output):
        item_type = type(item)
        if item_type is _SDKOutputMessage:
            kind, content = "message", getattr(item, "content", None)
        elif item_type is _SDKFunctionCall:
            kind, content = "function_call", None
        else:
            kind = get(item, "type")
            content = get(item, "content") if kind == "message" else None
        if kind == "message":
            for piece in as_list(content):
                text = getattr(piece, "text", None) if type(piece) is _SDKOutputText else get(piece, "text")
                if not isinstance(text, str):
                    text = get(piece, "refusal")
                if isinstance(text, str):
                    texts.append(text)
                    parts.append({"type": "text", "content": text})
        elif kind == "function_call":
            call = RequestedToolCall(as_str(get(item, "call_id")), as_str(get(item, "name")), get(item, "arguments"))
            data.tool_calls.append(call)
            parts.append(tool_call_part(call.id, call.name, call.arguments))
    data.text = "".join(texts)
    reason = _responses_finish_reason(body, bool(data.tool_calls), status)
    if reason:
        data.finish_reasons.append(reason)
    if parts or reason:
        data.output_messages.append({"role": "assistant", "parts": parts, "finish_reason": reason or ""})
    return data


_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesAccumulator:
    """Follows a Responses API event stream; the final event carries the whole response."""

    def __init__(self) -> None:
        self.final: ResponseData | None = None
        self.head = ResponseData()
        self.texts: list[str] = []
        self.calls: list[RequestedToolCall] = []

    def add(self, event: Any) -> None:
        kind = as_str(get(event, "type"))  # any JSON may stand here; only a string names an event
        if kind in _FINAL_EVENTS:
            self.final = responses_response(get(event, "response"))
        elif kind in ("response.created", "response.in_progress"):
            response = get(event, "response")
            self.head.response_id = self.head.response_id or as_str(get(response, "id"))
            self.head.response_model = self.head.response_model or as_str(get(response, "model"))
        elif kind == "response.output_text.delta":
            delta = get(event, "delta")
            if isinstance(delta, str):
                self.texts.append(delta)
        elif kind == "response.output_item.done":
            item = get(event, "item")
            if get(item, "type") == "function_call":
                self.calls.append(RequestedToolCall(as_str(get(item, "call_id")), as_str(get(item, "name")),
                                           get(item, "arguments")))

    def result(self) -> ResponseData:
        if self.final is not None:
            return self.final
        data = ResponseData(response_id=self.head.response_id, response_model=self.head.response_model,
                            tool_calls=list(self.calls))
        return assistant_message(data, "".join(self.texts), None)


def embeddings_response(body: Any) -> ResponseData:
    usage = get(body, "usage")
    prompt = as_int(get(usage, "prompt_tokens"))
    if prompt is None:
        prompt = as_int(get(usage, "total_tokens"))
    return ResponseData(response_model=as_str(get(body, "model")),
                        usage=Usage(input_tokens=prompt, output_tokens=0) if prompt is not None else None)


_CHAT = "openai.resources.chat.completions"
_BETA_CHAT = "openai.resources.beta.chat.completions"  # openai 1.x: the beta parse
_RESPONSES = "openai.resources.responses"
_EMBEDDINGS = "openai.resources.embeddings"


def _rows(module: str, request: Any, *targets: str, **reading: Any) -> tuple[Method, ...]:
    """One row per target (``Async...`` ones async); ``create`` asks for the stream's usage chunk."""
    return tuple(Method(target, module=module, is_async=target.startswith("Async"), request=request,
                        prepare=_with_stream_usage if target.endswith("Completions.create") else None, **reading)
                 for target in targets)


PROVIDER = Provider(
    name=INTEGRATION, tracer=TRACER, modules=(_CHAT,),
    methods=(*_rows(_CHAT, chat_request, "Completions.create", "AsyncCompletions.create",
                    "Completions.parse", "AsyncCompletions.parse"),
             *_rows(_BETA_CHAT, chat_request, "Completions.parse", "AsyncCompletions.parse"),
             *_rows(_RESPONSES, responses_request, "Responses.create", "AsyncResponses.create",
                    "Responses.parse", "AsyncResponses.parse",
                    response=responses_response, accumulator=ResponsesAccumulator),
             *_rows(_EMBEDDINGS, embeddings_request, "Embeddings.create", "AsyncEmbeddings.create",
                    response=embeddings_response)),
    request=chat_request, response=chat_response, accumulator=ChatAccumulator, raw_responses=True,
)
PATCHES, instrument, uninstrument, patched_methods = PROVIDER.module_api()
