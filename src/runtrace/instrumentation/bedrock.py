"""AWS Bedrock instrumentation through boto3/botocore ``bedrock-runtime``.

boto3 builds its client classes at run time, so there is no ``converse`` method
to patch: the one row wraps ``botocore.client.BaseClient._make_api_call`` and
dispatches on the operation name, for the ``bedrock-runtime`` service only
(every other AWS call passes straight through, after one string compare):

- ``Converse`` / ``ConverseStream``: Bedrock's own message format; usage is
  camelCase (``inputTokens`` excludes ``cacheReadInputTokens`` and
  ``cacheWriteInputTokens``; genai-prices adds them into the total input).
- ``InvokeModel`` / ``InvokeModelWithResponseStream``: the model's native body.
  Anthropic bodies are read with genai-prices' Anthropic-on-Bedrock extractor
  (5m/1h cache split included); any other model falls back to the
  ``x-amzn-bedrock-*-token-count`` headers (or the stream's
  ``amazon-bedrock-invocationMetrics``), which Bedrock sends for all models.

``InvokeModel`` returns its body as a one-shot ``StreamingBody``: runtrace reads
it and hands the caller a fresh ``StreamingBody`` over the same bytes. Model ids
and inference-profile ids (``us.anthropic.claude-...``, or their ARNs) are
priced by genai-prices under provider ``aws.bedrock``.
"""

from __future__ import annotations

import io
import json
from typing import Any

import botocore.client  # noqa: F401 - absent: importing this module fails, so instrument() skips it
from botocore.response import StreamingBody

from .. import _config, semconv
from . import _usage
from ._llm import LLMCall, Request, RequestedToolCall, ResponseData, ToolCallPieces, Usage, assistant_message
from ._provider import Method, Provider
from ._read import as_int, as_list, as_str, flatten_text, get, put, server_attributes, stop_sequences, to_json
from ._stream import wrap_stream

INTEGRATION = "bedrock"
TRACER = "runtrace.instrumentation.bedrock"
PRICES_PROVIDER = "aws"  # genai-prices' id for the usage extractors
SERVICE = "bedrock-runtime"
_OPERATIONS = frozenset({"Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream"})
_STREAMS = frozenset({"ConverseStream", "InvokeModelWithResponseStream"})


# --- requests ----------------------------------------------------------------------------

def _model(model_id: Any) -> str | None:
    """The model or inference-profile id; an ARN is cut to its last segment."""
    model = as_str(model_id)
    if model and model.startswith("arn:"):
        model = model.rsplit("/", 1)[-1]
    return model


def _block_text(block: Any) -> str:
    text = get(block, "text")
    if isinstance(text, str):
        return text
    use = get(block, "toolUse")
    if use is not None:
        return f"{get(use, 'name')}({to_json(get(use, 'input'))})"
    result = get(block, "toolResult")
    if result is not None:
        return "\n".join(_block_text(b) for b in as_list(get(result, "content")))
    json_value = get(block, "json")
    if json_value is not None:
        return to_json(json_value)
    return f"[{next(iter(block), 'block')}]" if isinstance(block, dict) else "[block]"


def _invoke_body(params: dict[str, Any]) -> Any:
    body = params.get("body")
    if isinstance(body, (bytes, bytearray, str)):
        try:
            return json.loads(body)
        except ValueError:
            return None
    return None  # a file object: reading it would consume the caller's request


def bedrock_request(instance: Any, kwargs: dict[str, Any]) -> Request:
    operation: str = kwargs["operation_name"]
    params: dict[str, Any] = kwargs["api_params"] if isinstance(kwargs["api_params"], dict) else {}
    attrs: dict[str, Any] = server_attributes({"base_url": get(instance, "meta", "endpoint_url")})
    prompt: list[tuple[str, str]] | None = None
    system_text = ""
    if operation.startswith("Converse"):
        config = params.get("inferenceConfig")
        put(attrs, semconv.GEN_AI_REQUEST_MAX_TOKENS, as_int(get(config, "maxTokens")))
        put(attrs, semconv.GEN_AI_REQUEST_TEMPERATURE, get(config, "temperature"))
        put(attrs, semconv.GEN_AI_REQUEST_TOP_P, get(config, "topP"))
        put(attrs, semconv.GEN_AI_REQUEST_STOP_SEQUENCES, stop_sequences(get(config, "stopSequences")))
        messages = params.get("messages")
        if isinstance(messages, (list, tuple)):
            prompt = [(as_str(get(m, "role")) or "user", "\n".join(_block_text(b) for b in as_list(get(m, "content"))))
                      for m in messages]
        system_text = "\n".join(_block_text(b) for b in as_list(params.get("system")))
    else:
        body = _invoke_body(params)
        put(attrs, semconv.GEN_AI_REQUEST_MAX_TOKENS, as_int(get(body, "max_tokens")))
        put(attrs, semconv.GEN_AI_REQUEST_TEMPERATURE, get(body, "temperature"))
        put(attrs, semconv.GEN_AI_REQUEST_TOP_P, get(body, "top_p"))
        messages = get(body, "messages")
        if isinstance(messages, list):
            prompt = [(as_str(get(m, "role")) or "user", flatten_text(get(m, "content"))) for m in messages]
        system = get(body, "system")
        system_text = flatten_text(system) if system is not None else ""
    if prompt is not None and system_text:
        prompt.insert(0, ("system", system_text))
    capture = _config.settings().capture_content
    return Request(
        provider=semconv.PROVIDER_BEDROCK, operation=semconv.OP_CHAT, model=_model(params.get("modelId")),
        attributes=attrs, stream=operation in _STREAMS, prompt=prompt,
        input_messages=[{"role": role, "parts": [{"type": "text", "content": text}]}
                        for role, text in prompt if role != "system"] if capture and prompt else None,
        system_instructions=[{"type": "text", "content": system_text}] if capture and system_text else None,
    )


# --- responses ---------------------------------------------------------------------------

def _header_usage(headers: Any) -> Usage | None:
    """The token counts Bedrock sends as headers (or invocation metrics) for every model."""
    inp = as_int(_int_text(get(headers, "x-amzn-bedrock-input-token-count")))
    out = as_int(_int_text(get(headers, "x-amzn-bedrock-output-token-count")))
    if inp is None or out is None:
        return None
    return Usage(input_tokens=inp, output_tokens=out)


def _int_text(value: Any) -> Any:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _finish(data: ResponseData, texts: list[str], stop: str | None) -> ResponseData:
    return assistant_message(data, "".join(texts), stop)


def converse_response(result: Any) -> ResponseData:
    data = ResponseData(response_id=as_str(get(result, "ResponseMetadata", "RequestId")),
                        usage=_usage.extract(result, PRICES_PROVIDER))
    texts: list[str] = []
    for block in as_list(get(result, "output", "message", "content")):
        text = get(block, "text")
        if isinstance(text, str):
            texts.append(text)
        use = get(block, "toolUse")
        if use is not None:
            args = get(use, "input")
            data.tool_calls.append(RequestedToolCall(as_str(get(use, "toolUseId")), as_str(get(use, "name")),
                                            to_json(args) if args is not None else None))
    return _finish(data, texts, as_str(get(result, "stopReason")))


class ConverseAccumulator:
    """ConverseStream events (``{"contentBlockDelta": {...}}`` ...) rebuilt into one response."""

    def __init__(self, response_id: str | None) -> None:
        self.response_id = response_id
        self.texts: list[str] = []
        self.tools = ToolCallPieces()
        self.stop: str | None = None
        self.metadata: Any = None

    def add(self, event: Any) -> None:
        if "contentBlockDelta" in event:
            delta = get(event, "contentBlockDelta", "delta")
            text = get(delta, "text")
            if isinstance(text, str):
                self.texts.append(text)
            piece = get(delta, "toolUse", "input")
            if isinstance(piece, str):
                index = as_int(get(event, "contentBlockDelta", "contentBlockIndex")) or 0
                self.tools.add(index, None, None, piece)
        elif "contentBlockStart" in event:
            use = get(event, "contentBlockStart", "start", "toolUse")
            if use is not None:
                index = as_int(get(event, "contentBlockStart", "contentBlockIndex")) or 0
                self.tools.start(index, as_str(get(use, "toolUseId")), as_str(get(use, "name")))
        elif "messageStop" in event:
            self.stop = as_str(get(event, "messageStop", "stopReason"))
        elif "metadata" in event:
            self.metadata = get(event, "metadata")

    def result(self) -> ResponseData:
        data = ResponseData(response_id=self.response_id,
                            usage=_usage.extract(self.metadata, PRICES_PROVIDER) if self.metadata else None)
        data.tool_calls = self.tools.calls()
        return _finish(data, self.texts, self.stop)


def invoke_response(body: Any, headers: Any, response_id: str | None) -> ResponseData:
    """A native model body: Anthropic's shape through genai-prices, else the token headers."""
    usage = _usage.extract(body, PRICES_PROVIDER, "anthropic") if get(body, "usage") is not None else None
    data = ResponseData(response_id=as_str(get(body, "id")) or response_id, response_model=as_str(get(body, "model")),
                        usage=usage or _header_usage(headers))
    texts: list[str] = []
    for block in as_list(get(body, "content")):
        if get(block, "type") == "text" and isinstance(get(block, "text"), str):
            texts.append(get(block, "text"))
        elif get(block, "type") == "tool_use":
            data.tool_calls.append(RequestedToolCall(as_str(get(block, "id")), as_str(get(block, "name")),
                                            to_json(get(block, "input"))))
    return _finish(data, texts, as_str(get(body, "stop_reason")))


class InvokeStreamAccumulator:
    """InvokeModelWithResponseStream ``{"chunk": {"bytes": ...}}`` events (Anthropic's stream events)."""

    def __init__(self, response_id: str | None) -> None:
        self.response_id = response_id
        self.model: str | None = None
        self.usage: dict[str, Any] = {}
        self.metrics: Any = None
        self.texts: list[str] = []
        self.stop: str | None = None

    def add(self, event: Any) -> None:
        raw = get(event, "chunk", "bytes")
        if not isinstance(raw, (bytes, bytearray, str)):
            return
        payload = json.loads(raw)
        metrics = get(payload, "amazon-bedrock-invocationMetrics")
        if metrics is not None:
            self.metrics = metrics
        kind = get(payload, "type")
        if kind == "message_start":
            self.model = as_str(get(payload, "message", "model"))
            self.response_id = as_str(get(payload, "message", "id")) or self.response_id
            self.usage.update(get(payload, "message", "usage") or {})
        elif kind == "message_delta":
            self.stop = as_str(get(payload, "delta", "stop_reason")) or self.stop
            self.usage.update(get(payload, "usage") or {})
        elif kind == "content_block_delta" and isinstance(get(payload, "delta", "text"), str):
            self.texts.append(get(payload, "delta", "text"))

    def result(self) -> ResponseData:
        usage = _usage.extract({"usage": self.usage}, PRICES_PROVIDER, "anthropic") if self.usage else None
        if usage is None and self.metrics is not None:
            usage = _header_usage({"x-amzn-bedrock-input-token-count": get(self.metrics, "inputTokenCount"),
                                   "x-amzn-bedrock-output-token-count": get(self.metrics, "outputTokenCount")})
        data = ResponseData(response_id=self.response_id, response_model=self.model, usage=usage)
        return _finish(data, self.texts, self.stop)


class _Events:
    """botocore's ``EventStream`` as an iterator the stream proxy can step and close."""

    def __init__(self, events: Any) -> None:
        self.events = events
        self._it = iter(events)

    def __iter__(self) -> _Events:
        return self

    def __next__(self) -> Any:
        return next(self._it)

    def close(self) -> Any:
        return self.events.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.events, name)


def _on_result(result: Any, call: LLMCall) -> Any:
    request_id = as_str(get(result, "ResponseMetadata", "RequestId"))
    headers = get(result, "ResponseMetadata", "HTTPHeaders")
    if not isinstance(result, dict):
        call.finish(None)
        return result
    # A stream ends its span later: the caller gets a copy of the dict holding the proxy
    # (handing back the very same object would tell the lifecycle that reading it failed).
    if "stream" in result and call.request.stream:  # ConverseStream
        return {**result, "stream": wrap_stream(_Events(result["stream"]), call, ConverseAccumulator(request_id))}
    if call.request.stream:  # InvokeModelWithResponseStream
        return {**result, "body": wrap_stream(_Events(result["body"]), call, InvokeStreamAccumulator(request_id))}
    if "output" in result or "usage" in result or "stopReason" in result:  # Converse
        call.finish(converse_response(result))
        return result
    body = result.get("body")
    if isinstance(body, StreamingBody):  # InvokeModel: read it, hand back the same bytes
        raw = body.read()
        result["body"] = StreamingBody(io.BytesIO(raw), len(raw))
        parsed: Any = None
        try:
            parsed = json.loads(raw)
        except ValueError:
            pass
        call.finish(invoke_response(parsed, headers, request_id))
        return result
    call.finish(converse_response(result))
    return result


def _runtime_calls(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
                   ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """Only the bedrock-runtime model calls are traced; every other AWS call passes straight through."""
    operation = args[0] if args else kwargs.get("operation_name")
    if operation not in _OPERATIONS or get(instance, "meta", "service_model", "service_name") != SERVICE:
        return None
    params = args[1] if len(args) > 1 else kwargs.get("api_params")
    return (), {"operation_name": operation, "api_params": params}


PROVIDER = Provider(
    name=INTEGRATION, tracer=TRACER, modules=("botocore.client",),
    methods=(Method("BaseClient._make_api_call", adapt=_runtime_calls, on_result=_on_result),),
    request=bedrock_request, response=converse_response, accumulator=lambda: ConverseAccumulator(None),
)
PATCHES, instrument, uninstrument, patched_methods = PROVIDER.module_api()
