"""google-genai (Gemini) instrumentation: ``models.generate_content`` and its stream, sync and async.

The rows patch ``Models._generate_content`` / ``_generate_content_stream``
(and the ``AsyncModels`` pair), the methods that send one HTTP request each.
The public ``generate_content`` may send several: automatic function calling
and continuation hops loop over ``_generate_content``, and each request is
billed, so each is its own span. Both names have been there since
google-genai 1.0; a release without them goes untraced, it does not break.

Gemini specifics (all handled by genai-prices' extractor, see ``_usage``):
``promptTokenCount`` already includes ``cachedContentTokenCount``;
``thoughtsTokenCount`` is billed as output and counted as reasoning;
``toolUsePromptTokenCount`` is input. The provider is ``gcp.gemini``, or
``gcp.vertex_ai`` for a client made with ``vertexai=True``.
"""

from __future__ import annotations

from typing import Any

import google.genai.models  # noqa: F401 - absent: importing this module fails, so instrument() skips it

from .. import _config, semconv
from . import _usage
from ._llm import Request, RequestedToolCall, ResponseData, Usage, assistant_message
from ._provider import Method, Provider, whole_response
from ._read import as_int, as_list, as_str, dump, get, put, server_attributes, stop_sequences, to_json

INTEGRATION = "gemini"
TRACER = "runtrace.instrumentation.gemini"
PRICES_PROVIDER = "google"  # genai-prices' id for the usage extractor


# --- requests ----------------------------------------------------------------------------

def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    text = get(part, "text")
    if isinstance(text, str):
        return text
    call = get(part, "function_call")
    if call is not None:
        return f"{get(call, 'name')}({to_json(get(call, 'args'))})"
    result = get(part, "function_response")
    if result is not None:
        return to_json(get(result, "response"))
    return "[part]"  # inline data, a file: counted, not read


def _contents(contents: Any) -> list[tuple[str, str]] | None:
    """(role, text) per content; None for what cannot be read without consuming it."""
    if isinstance(contents, str) or get(contents, "parts") is not None:
        contents = [contents]
    if not isinstance(contents, (list, tuple)):
        return None
    prompt: list[tuple[str, str]] = []
    for item in contents:
        parts = get(item, "parts")
        if parts is None:  # a bare string or part: one user turn
            prompt.append(("user", _part_text(item)))
            continue
        role = as_str(get(item, "role")) or "user"
        prompt.append(("assistant" if role == "model" else role, "\n".join(_part_text(p) for p in as_list(parts))))
    return prompt


def _model(value: Any) -> str | None:
    model = as_str(value)
    return model.removeprefix("models/") if model else None


def content_request(instance: Any, kwargs: dict[str, Any]) -> Request:
    config = kwargs.get("config")
    attrs: dict[str, Any] = {}
    client = get(instance, "_api_client")
    attrs.update(server_attributes(get(client, "_http_options")))
    put(attrs, semconv.GEN_AI_REQUEST_MAX_TOKENS, as_int(get(config, "max_output_tokens")))
    put(attrs, semconv.GEN_AI_REQUEST_TEMPERATURE, get(config, "temperature"))
    put(attrs, semconv.GEN_AI_REQUEST_TOP_P, get(config, "top_p"))
    put(attrs, semconv.GEN_AI_REQUEST_TOP_K, get(config, "top_k"))
    put(attrs, semconv.GEN_AI_REQUEST_CHOICE_COUNT, as_int(get(config, "candidate_count")))
    put(attrs, semconv.GEN_AI_REQUEST_STOP_SEQUENCES, stop_sequences(get(config, "stop_sequences")))
    prompt = _contents(kwargs.get("contents"))
    system = get(config, "system_instruction")
    system_text = "\n".join(text for _, text in _contents(system) or []) if system is not None else ""
    if prompt is not None and system_text:
        prompt.insert(0, ("system", system_text))
    capture = _config.settings().capture_content
    return Request(
        provider=semconv.PROVIDER_VERTEX_AI if get(client, "vertexai") is True else semconv.PROVIDER_GEMINI,
        operation=semconv.OP_GENERATE_CONTENT, model=_model(kwargs.get("model")), attributes=attrs,
        stream=False, prompt=prompt,
        input_messages=[{"role": role, "parts": [{"type": "text", "content": text}]}
                        for role, text in prompt if role != "system"] if capture and prompt else None,
        system_instructions=[{"type": "text", "content": system_text}] if capture and system_text else None,
    )


# --- responses ---------------------------------------------------------------------------

def gemini_usage(metadata: Any) -> Usage | None:
    """``usage_metadata`` (an SDK model or its JSON) through genai-prices' Gemini extractor."""
    if metadata is None:
        return None
    return _usage.extract({"usageMetadata": dump(metadata)}, PRICES_PROVIDER)


class ContentAccumulator:
    """One response, or the chunks of a stream (each a ``GenerateContentResponse``) merged."""

    def __init__(self) -> None:
        self.data = ResponseData()
        self.texts: list[str] = []
        self.metadata: Any = None
        self.finish: str | None = None

    def add(self, chunk: Any) -> None:
        data = self.data
        data.response_id = data.response_id or as_str(get(chunk, "response_id"))
        data.response_model = data.response_model or _model(get(chunk, "model_version"))
        metadata = get(chunk, "usage_metadata")
        if metadata is not None:  # cumulative: the last one counts
            self.metadata = metadata
        candidates = as_list(get(chunk, "candidates"))
        if not candidates:
            return
        first = candidates[0]
        reason = get(first, "finish_reason")
        if reason is not None:
            self.finish = as_str(get(reason, "value")) or as_str(reason) or self.finish
        for part in as_list(get(first, "content", "parts")):
            text = get(part, "text")
            if isinstance(text, str) and get(part, "thought") is not True:
                self.texts.append(text)
            call = get(part, "function_call")
            if call is not None:
                args = get(call, "args")
                data.tool_calls.append(RequestedToolCall(as_str(get(call, "id")), as_str(get(call, "name")),
                                                to_json(args) if args is not None else None))

    def result(self) -> ResponseData:
        data = self.data
        out = ResponseData(response_id=data.response_id, response_model=data.response_model,
                           usage=gemini_usage(self.metadata), tool_calls=list(data.tool_calls))
        return assistant_message(out, "".join(self.texts), self.finish)


content_response = whole_response(ContentAccumulator)  # a whole response is read as one chunk


PROVIDER = Provider(
    name=INTEGRATION, tracer=TRACER, modules=("google.genai.models",),
    methods=(Method("Models._generate_content"), Method("Models._generate_content_stream", stream=True),
             Method("AsyncModels._generate_content", is_async=True),
             Method("AsyncModels._generate_content_stream", is_async=True, stream=True)),
    request=content_request, response=content_response, accumulator=ContentAccumulator,
)
PATCHES, instrument, uninstrument, patched_methods = PROVIDER.module_api()
