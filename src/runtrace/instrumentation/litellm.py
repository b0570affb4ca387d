"""LiteLLM instrumentation: ``litellm.completion`` / ``acompletion``, streamed or not.

The span sits at LiteLLM's entry point, whatever backend serves the call:
LiteLLM reaches the openai client through its low-level ``post()`` (which the
openai instrumentation does not see), other backends through its own HTTP
handlers or a native (Rust) path, so only the entry point sees every call.
While the span is open ``_wrap.IN_LLM_CALL`` is set, so an openai or anthropic
method LiteLLM calls inside passes straight through: one span per call, never
two. The budget is checked here too, before LiteLLM runs: LiteLLM wraps
exceptions raised inside the clients it calls (``BudgetExceeded`` would reach
the caller as ``InternalServerError``), this way it reaches the caller as itself.

The provider comes from LiteLLM's own resolution (``custom_llm_provider`` or the
``provider/`` model prefix), mapped to ``gen_ai.provider.name``; for LiteLLM's
generic OpenAI-compatible providers the ``api_base`` decides, as for the openai
client (``instrumentation/endpoints.py``). The usage is LiteLLM's
``ModelResponse`` (OpenAI's shape), streamed through ``CustomStreamWrapper``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

import litellm  # noqa: F401 - absent: importing this module fails, so instrument() skips it

from .. import _config, semconv
from .._internal import fail_open
from . import endpoints
from ._llm import Request, ResponseData, Usage
from ._provider import Method, Provider
from ._read import as_int, as_str, get, given, listed, put, server_attributes
from .openai import ChatAccumulator, chat_message_parts, chat_parameters, chat_response

INTEGRATION = "litellm"
TRACER = "runtrace.instrumentation.litellm"

# LiteLLM provider name -> gen_ai.provider.name. A name not listed is kept as
# LiteLLM spells it (genai-prices knows many of them under the same id).
_PROVIDERS: Final = {
    "openai": semconv.PROVIDER_OPENAI,
    "chatgpt": semconv.PROVIDER_OPENAI,
    "text-completion-openai": semconv.PROVIDER_OPENAI,
    "azure": semconv.PROVIDER_AZURE_OPENAI,
    "azure_text": semconv.PROVIDER_AZURE_OPENAI,
    "azure_ai": "azure.ai.inference",
    "anthropic": semconv.PROVIDER_ANTHROPIC,
    "anthropic_text": semconv.PROVIDER_ANTHROPIC,
    "bedrock": semconv.PROVIDER_AWS_BEDROCK,
    "vertex_ai": semconv.PROVIDER_GCP_VERTEX_AI,
    "vertex_ai_beta": semconv.PROVIDER_GCP_VERTEX_AI,
    "gemini": semconv.PROVIDER_GCP_GEMINI,
    "mistral": semconv.PROVIDER_MISTRAL_AI,
    "codestral": semconv.PROVIDER_MISTRAL_AI,
    "text-completion-codestral": semconv.PROVIDER_MISTRAL_AI,
    "xai": semconv.PROVIDER_X_AI,
    "groq": semconv.PROVIDER_GROQ,
    "deepseek": semconv.PROVIDER_DEEPSEEK,
    "perplexity": semconv.PROVIDER_PERPLEXITY,
    "cohere": semconv.PROVIDER_COHERE,
    "cohere_chat": semconv.PROVIDER_COHERE,
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "moonshot": "moonshotai",
    "openrouter": "openrouter",
    "ollama": semconv.PROVIDER_LOCAL,
    "ollama_chat": semconv.PROVIDER_LOCAL,
    "lm_studio": semconv.PROVIDER_LOCAL,
    "llamafile": semconv.PROVIDER_LOCAL,
}
# LiteLLM providers that only say "speaks the OpenAI format": the api_base says whose it is.
_GENERIC: Final = frozenset({"openai", "custom_openai", "openai_like", "text-completion-openai",
                             "hosted_vllm", "vllm"})


def provider_name(litellm_provider: str | None, api_base: str | None) -> str:
    """``gen_ai.provider.name`` for a call LiteLLM routes to ``litellm_provider`` at ``api_base``."""
    name = (litellm_provider or "").strip().lower()
    if name in _GENERIC or not name:
        if api_base:
            return endpoints.provider_of_url(api_base)
        if name in ("hosted_vllm", "vllm"):
            return semconv.PROVIDER_LOCAL
        return semconv.PROVIDER_OPENAI if name else semconv.PROVIDER_LITELLM
    return _PROVIDERS.get(name, name)


def _resolve(kwargs: dict[str, Any]) -> tuple[str | None, str]:
    """(the model LiteLLM sends, the provider) as LiteLLM itself resolves them."""
    model = as_str(kwargs.get("model"))
    api_base = as_str(kwargs.get("api_base")) or as_str(kwargs.get("base_url"))
    custom = as_str(kwargs.get("custom_llm_provider"))
    if model is None:
        return None, provider_name(custom, api_base)
    resolved_model, resolved_provider = model, custom
    with fail_open("litellm: resolve provider"):
        from litellm import get_llm_provider

        found = get_llm_provider(model=model, custom_llm_provider=custom, api_base=api_base)
        resolved_model, resolved_provider = found[0] or model, found[1]
        api_base = api_base or as_str(found[3])
    return resolved_model, provider_name(resolved_provider, api_base)


def completion_request(instance: Any, kwargs: dict[str, Any]) -> Request:
    """The request of ``litellm.completion(model=..., messages=...)`` (OpenAI's parameters)."""
    model, provider = _resolve(kwargs)
    attrs: dict[str, Any] = {}
    api_base = as_str(kwargs.get("api_base")) or as_str(kwargs.get("base_url"))
    if api_base:
        attrs.update(server_attributes({"base_url": api_base}))
    put(attrs, semconv.GEN_AI_REQUEST_TEMPERATURE, kwargs.get("temperature"))
    put(attrs, semconv.GEN_AI_REQUEST_TOP_P, kwargs.get("top_p"))
    chat_parameters(kwargs, attrs)
    tier = kwargs.get("service_tier")
    if isinstance(tier, str) and tier and tier != "auto":
        attrs[semconv.OPENAI_REQUEST_SERVICE_TIER] = tier
    messages = listed(kwargs.get("messages"))
    capture = _config.settings().capture_content
    prompt, content = chat_message_parts(messages, capture) if messages is not None else (None, None)
    return Request(provider=provider, operation=semconv.OP_CHAT, model=model, attributes=attrs,
                   stream=kwargs.get("stream") is True, prompt=prompt, input_messages=content)


def _fabricated(usage: Usage | None) -> bool:
    """LiteLLM fills in ``Usage(0, 0)`` when the provider sent no usage; no chat call reads 0 tokens."""
    return usage is not None and usage.input_tokens == 0 and usage.output_tokens == 0


def litellm_response(body: Any) -> ResponseData:
    """A LiteLLM ``ModelResponse``: OpenAI's shape, plus LiteLLM's cache-write count.

    A response without usage is counted unpriced (``Usage(0, 0)`` is LiteLLM's
    stand-in for it, not a free call).
    """
    data = chat_response(body)
    usage = data.usage
    if _fabricated(usage):
        data.usage = None
        return data
    if usage is not None and usage.cache_write_tokens is None:
        raw = get(body, "usage")
        written = as_int(get(raw, "cache_creation_input_tokens"))
        if written is None:
            written = as_int(get(raw, "prompt_tokens_details", "cache_creation_tokens"))
        if written:
            data.usage = dataclasses.replace(usage, cache_write_tokens=written)
    return data


class LiteLLMAccumulator(ChatAccumulator):
    """Chunks of a ``CustomStreamWrapper`` (``ModelResponseStream``): chat chunks, usage last."""

    def add(self, chunk: Any) -> None:
        super().add(chunk)
        if _fabricated(self.head.usage):
            self.head.usage = None
        raw = get(chunk, "usage")
        if raw is not None and self.head.usage is not None and self.head.usage.cache_write_tokens is None:
            written = as_int(get(raw, "cache_creation_input_tokens"))
            if written:
                self.head.usage = dataclasses.replace(self.head.usage, cache_write_tokens=written)


def _with_stream_usage(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``instrument(stream_usage=True)``: ask for the usage chunk unless the caller chose stream_options."""
    if (kwargs.get("stream") is True and _config.settings().stream_usage
            and not given(kwargs.get("stream_options"))):
        return {**kwargs, "stream_options": {"include_usage": True}}
    return kwargs


_POSITIONAL: Final = ("model", "messages")


def _keywords(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
              ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``completion("gpt-4o", msgs)`` as keywords, so the request builder sees the model and messages."""
    if not args:
        return args, kwargs
    named = dict(zip(_POSITIONAL, args, strict=False))
    if any(name in kwargs for name in named):
        return args, kwargs  # a TypeError for LiteLLM to raise, as without runtrace
    return args[len(named):], {**named, **kwargs}


def _sync_keywords(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
                   ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    if kwargs.get("acompletion") is True:  # returns a coroutine: traced by acompletion, which made it
        return None
    return _keywords(instance, args, kwargs)


# litellm.completion is the public dispatcher (native or Python); litellm.main.completion
# is the Python implementation, which some code calls directly. A call through both
# makes one span: the inner one passes through (IN_LLM_CALL).
PROVIDER = Provider(
    name=INTEGRATION, tracer=TRACER, modules=("litellm", "litellm.main"),
    methods=(Method("completion", adapt=_sync_keywords, prepare=_with_stream_usage),
             Method("acompletion", is_async=True, adapt=_keywords, prepare=_with_stream_usage)),
    request=completion_request, response=litellm_response, accumulator=LiteLLMAccumulator,
)
PATCHES, instrument, uninstrument, patched_methods = PROVIDER.module_api()
