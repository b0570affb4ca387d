"""One reader for every attribute dialect: a span's usage, model, provider and operation in runtrace's terms.

Other SDKs describe the same model call in different words. This module reads
them all once, at the single ingest entry (:func:`runtrace.store.ingest.prepare`,
which both the in-process adapter and the OTLP adapter feed), so the two paths
cannot disagree and pricing, the run totals and the ClickHouse views all work
from one set of names. It is pure: a record in, a record out.

What it writes (docs/architecture.md): the original attributes stay; the canonical
ones (``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
``gen_ai.response.model``, ``gen_ai.usage.*``) are added only where absent, and
``runtrace.source.dialect`` names the dialect they were read from. Token
semantics are runtrace's: input is all input (uncached + cache reads + cache
writes), cached input the cache reads, output includes reasoning. The one case
where a dialect's own ``gen_ai.usage.input_tokens`` means something else
(OpenLIT's Anthropic spans: the uncached part, as Anthropic's API reports it)
is recognised by the instrumentation scope, never guessed from magnitudes; the
total replaces it and the value as sent is kept in ``runtrace.source.input_tokens``.

Where each dialect's names come from:
- GenAI semconv: ``opentelemetry-semantic-conventions`` (current names, and the
  deprecated ``gen_ai.system``, ``gen_ai.usage.prompt_tokens``/``completion_tokens``).
- OpenLLMetry: ``opentelemetry-semantic-conventions-ai`` 0.5.1 ``SpanAttributes``
  (``llm.request.type``, ``gen_ai.usage.cache_read_input_tokens``, ``llm.usage.*``);
  its Anthropic instrumentation already adds the cache parts to the prompt count.
- OpenInference: ``openinference-semantic-conventions`` 0.1.42 (``openinference.span.kind``,
  ``llm.model_name``, ``llm.provider``/``llm.system``, ``llm.token_count.*``, where
  the prompt count is the total and ``prompt_details.cache_*`` are parts of it).
- OpenLIT 1.45: ``instrumentation/anthropic/utils.py`` sets
  ``gen_ai.usage.input_tokens`` to Anthropic's ``usage.input_tokens`` ("exclusive
  of cache read / creation tokens", its own comment); its tracer is
  ``get_tracer("openlit.otel.tracing")``, so the scope starts with ``openlit``.
- Logfire 4.x: current semconv names; its Anthropic integration adds the cache
  parts to the input count (``llm_providers/anthropic.py``), so nothing to convert.
- Vercel AI SDK (from its telemetry docs, no Python package to read): ``ai.model.id``,
  ``ai.model.provider`` (``"openai.chat"``: the provider is the part before the
  dot), v4 ``ai.usage.promptTokens``/``completionTokens``, v5 ``ai.usage.inputTokens``/
  ``outputTokens``/``cachedInputTokens``/``reasoningTokens``, ``ai.usage.tokens`` on
  embeddings; taken as total input per the SDK's ``LanguageModelUsage`` contract.
  Known gap: AI SDK v4's Anthropic provider reports Anthropic's uncached
  ``input_tokens`` as ``promptTokens`` and the cache figures only in
  ``ai.response.providerMetadata`` (vercel/ai#4335), which is not read here, so
  such a call is priced as uncached input only.
  Its aggregate spans (``ai.generateText``) carry the sum of their ``doGenerate``
  steps; the innermost rule (:mod:`.innermost`) counts only the steps.
The coding agents' spans (Claude Code, Codex, Gemini CLI) are read with the coding-agents work.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from .. import semconv as sc
from ..pricing.attributes import SpanUsage, first, read_genai
from .aggregate import as_int, to_text
from .records import AttrValue, SpanRecord, with_attributes

_OPENINFERENCE_OPERATIONS: Final = {"LLM": sc.OP_CHAT, "EMBEDDING": sc.OP_EMBEDDINGS}
# Vercel span operations that are model calls (the aggregates too: see the module docstring).
_VERCEL_OPERATIONS: Final = {
    "ai.generateText": sc.OP_CHAT, "ai.streamText": sc.OP_CHAT, "ai.generateObject": sc.OP_CHAT,
    "ai.streamObject": sc.OP_CHAT, "ai.embed": sc.OP_EMBEDDINGS, "ai.embedMany": sc.OP_EMBEDDINGS,
}
_VERCEL_STEPS: Final = {".doGenerate": sc.OP_CHAT, ".doStream": sc.OP_CHAT, ".doEmbed": sc.OP_EMBEDDINGS}
# A plain GenAI span needs reading when it carries any of these (deprecated or other spellings).
_DEPRECATED_GENAI: Final = frozenset({
    sc.GEN_AI_SYSTEM, sc.GEN_AI_USAGE_PROMPT_TOKENS, sc.GEN_AI_USAGE_COMPLETION_TOKENS,
    sc.OPENLLMETRY_CACHE_READ_INPUT_TOKENS, sc.OPENLLMETRY_CACHE_CREATION_INPUT_TOKENS,
    sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
})


Usage = SpanUsage  # the one usage type of a span's attributes (runtrace.pricing.attributes)


def _count(attrs: Mapping[str, AttrValue], *names: str) -> int | None:
    return first(attrs, names, as_int)


def _text(attrs: Mapping[str, AttrValue], *names: str) -> str | None:
    return first(attrs, names, to_text)


# Every attribute that names a dialect below, and the scopes that do: a span with none of
# them speaks none (runtrace's own spans, unrelated spans), found by one pass over its keys.
_DIALECT_KEYS: Final = frozenset({
    sc.OPENINFERENCE_SPAN_KIND, sc.VERCEL_MODEL_ID, sc.VERCEL_OPERATION_ID, sc.OPENLLMETRY_REQUEST_TYPE,
    sc.OPENLLMETRY_CACHE_READ_INPUT_TOKENS, *_DEPRECATED_GENAI,
})
_DIALECT_SCOPES: Final = (sc.SCOPE_OPENLIT, sc.SCOPE_LOGFIRE, sc.SCOPE_PYDANTIC_AI)


def dialect_of(attrs: Mapping[str, AttrValue], scope_name: str | None) -> str | None:
    """Which dialect a span speaks; None when it needs no reading (runtrace's own spans, unrelated spans)."""
    scope = scope_name or ""
    if _DIALECT_KEYS.isdisjoint(attrs) and not scope.startswith(_DIALECT_SCOPES):
        return None  # the common case, on the ingest hot path: none of the tests below can match
    if scope.startswith(sc.SCOPE_OPENLIT):
        return sc.DIALECT_OPENLIT
    if sc.OPENINFERENCE_SPAN_KIND in attrs:
        return sc.DIALECT_OPENINFERENCE
    if sc.VERCEL_MODEL_ID in attrs or sc.VERCEL_OPERATION_ID in attrs:
        return sc.DIALECT_VERCEL
    if scope.startswith((sc.SCOPE_LOGFIRE, sc.SCOPE_PYDANTIC_AI)):
        return sc.DIALECT_LOGFIRE
    if sc.OPENLLMETRY_REQUEST_TYPE in attrs or sc.OPENLLMETRY_CACHE_READ_INPUT_TOKENS in attrs:
        return sc.DIALECT_OPENLLMETRY
    if not _DEPRECATED_GENAI.isdisjoint(attrs):
        return sc.DIALECT_GENAI
    return None


def _genai(attrs: Mapping[str, AttrValue], dialect: str) -> Usage:
    """GenAI semconv, current and deprecated names (also what OpenLLMetry, OpenLIT and Logfire write)."""
    return read_genai(attrs, dialect, as_int, to_text)


def _openlit(attrs: Mapping[str, AttrValue]) -> Usage:
    usage = _genai(attrs, sc.DIALECT_OPENLIT)
    if usage.provider != sc.PROVIDER_ANTHROPIC or usage.input_tokens is None:
        return usage
    # Anthropic's input_tokens excludes cache reads and writes; OpenLIT passes it on as is.
    total = usage.input_tokens + (usage.cache_read_tokens or 0) + (usage.cache_write_tokens or 0)
    return usage._replace(input_tokens=total, source_input_tokens=usage.input_tokens)


def _openinference(attrs: Mapping[str, AttrValue]) -> Usage:
    kind = _text(attrs, sc.OPENINFERENCE_SPAN_KIND)
    base = _genai(attrs, sc.DIALECT_OPENINFERENCE)
    provider = _text(attrs, sc.OPENINFERENCE_PROVIDER, sc.OPENINFERENCE_SYSTEM)
    return Usage(
        dialect=sc.DIALECT_OPENINFERENCE,
        operation=base.operation or _OPENINFERENCE_OPERATIONS.get((kind or "").upper()),
        provider=base.provider or (provider.lower() if provider else None),
        request_model=base.request_model or _text(attrs, sc.OPENINFERENCE_MODEL_NAME),
        response_model=base.response_model,
        input_tokens=_count(attrs, sc.OPENINFERENCE_PROMPT_TOKENS) if base.input_tokens is None
        else base.input_tokens,
        output_tokens=_count(attrs, sc.OPENINFERENCE_COMPLETION_TOKENS) if base.output_tokens is None
        else base.output_tokens,
        cache_read_tokens=_count(attrs, sc.OPENINFERENCE_CACHE_READ_TOKENS) if base.cache_read_tokens is None
        else base.cache_read_tokens,
        cache_write_tokens=_count(attrs, sc.OPENINFERENCE_CACHE_WRITE_TOKENS)
        if base.cache_write_tokens is None else base.cache_write_tokens,
        reasoning_tokens=_count(attrs, sc.OPENINFERENCE_REASONING_TOKENS) if base.reasoning_tokens is None
        else base.reasoning_tokens,
    )


def _vercel_operation(attrs: Mapping[str, AttrValue], name: str) -> str | None:
    operation_id = _text(attrs, sc.VERCEL_OPERATION_ID) or name
    for suffix, operation in _VERCEL_STEPS.items():
        if operation_id.endswith(suffix):
            return operation
    return _VERCEL_OPERATIONS.get(operation_id)


def _vercel(attrs: Mapping[str, AttrValue], name: str) -> Usage:
    base = _genai(attrs, sc.DIALECT_VERCEL)
    provider = _text(attrs, sc.VERCEL_MODEL_PROVIDER)
    operation = base.operation if base.operation in sc.LLM_OPERATIONS else _vercel_operation(attrs, name)
    return Usage(
        dialect=sc.DIALECT_VERCEL,
        operation=operation,
        provider=base.provider or (provider.split(".", 1)[0] if provider else None),
        request_model=base.request_model or _text(attrs, sc.VERCEL_MODEL_ID),
        response_model=base.response_model or _text(attrs, sc.VERCEL_RESPONSE_MODEL),
        input_tokens=base.input_tokens if base.input_tokens is not None else _count(
            attrs, sc.VERCEL_INPUT_TOKENS, sc.VERCEL_PROMPT_TOKENS, sc.VERCEL_EMBED_TOKENS),
        output_tokens=base.output_tokens if base.output_tokens is not None else _count(
            attrs, sc.VERCEL_OUTPUT_TOKENS, sc.VERCEL_COMPLETION_TOKENS),
        cache_read_tokens=base.cache_read_tokens if base.cache_read_tokens is not None else _count(
            attrs, sc.VERCEL_CACHED_INPUT_TOKENS),
        cache_write_tokens=base.cache_write_tokens,
        reasoning_tokens=base.reasoning_tokens if base.reasoning_tokens is not None else _count(
            attrs, sc.VERCEL_REASONING_TOKENS),
    )


def read_usage(attrs: Mapping[str, AttrValue], scope_name: str | None = None, span_name: str = "") -> Usage | None:
    """The model call a span describes, in runtrace's terms; None for runtrace's own and unrelated spans."""
    dialect = dialect_of(attrs, scope_name)
    if dialect is None:
        return None
    if dialect == sc.DIALECT_OPENLIT:
        return _openlit(attrs)
    if dialect == sc.DIALECT_OPENINFERENCE:
        return _openinference(attrs)
    if dialect == sc.DIALECT_VERCEL:
        return _vercel(attrs, span_name)
    return _genai(attrs, dialect)


def normalise(record: SpanRecord) -> SpanRecord:
    """Add runtrace's canonical attributes to a span from another SDK (else return it unchanged).

    Canonical names are added where absent; the one converted value (a source
    whose input count excludes the cache parts) replaces the sent one, which is
    kept under ``runtrace.source.input_tokens``.
    """
    attrs = record.attributes
    if sc.SOURCE_DIALECT in attrs:  # read once already (a span forwarded from another store)
        return record
    usage = read_usage(attrs, record.scope_name, record.name)
    if usage is None:
        return record
    added = {key: value for key, value in usage.canonical_attributes().items() if key not in attrs}
    if usage.source_input_tokens is not None and usage.input_tokens is not None:
        added[sc.GEN_AI_USAGE_INPUT_TOKENS] = usage.input_tokens
        added[sc.SOURCE_INPUT_TOKENS] = usage.source_input_tokens
    if not added:
        return record
    added[sc.SOURCE_DIALECT] = usage.dialect
    return with_attributes(record, {**attrs, **added})
