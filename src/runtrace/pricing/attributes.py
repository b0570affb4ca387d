"""Usage read from a span's attributes: the one GenAI-semconv usage reader, and pricing a span another SDK sent.

Spans from other SDKs describe a model call in attributes, not in a
:class:`.types.TokenUsage`. :func:`read_genai` reads the GenAI semantic
conventions (current and deprecated names, and the OpenLLMetry spellings of
the cache and reasoning counts) into one :class:`SpanUsage`; the store's
dialect normaliser (``store/normalise.py``) builds every dialect on it, and
:func:`cost_attributes` prices from it. Each caller passes how a raw value
becomes a count or a text: the normaliser keeps what a span says, pricing
takes only clean non-negative counts.

Used once per span, at ingest (``store.ingest.prepare`` prices a span that
:func:`needs_pricing` accepts), and by :meth:`runtrace.pricing.Pricer.price_attributes`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Final, NamedTuple, TypeVar

from .. import semconv as sc
from .types import TokenUsage

if TYPE_CHECKING:
    from .pricer import Pricer

__all__ = ["USAGE_KEYS", "SpanUsage", "already_priced", "clean_count", "clean_text", "cost_attributes", "first",
           "needs_pricing", "read_genai"]

T = TypeVar("T")

# The usage counts pricing reads; a span with none of them cannot be priced.
USAGE_KEYS: Final = frozenset({
    sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_OUTPUT_TOKENS, sc.GEN_AI_USAGE_PROMPT_TOKENS,
    sc.GEN_AI_USAGE_COMPLETION_TOKENS, sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
})
_OPENLLMETRY_OPERATIONS: Final = {"chat": sc.OP_CHAT, "completion": sc.OP_TEXT_COMPLETION,
                                  "embedding": sc.OP_EMBEDDINGS}


class SpanUsage(NamedTuple):
    """One model call in runtrace's terms (None: the source did not say).

    A NamedTuple rather than a frozen dataclass: built for every foreign span
    at ingest, and a tuple is built several times faster.
    """

    dialect: str
    operation: str | None = None
    provider: str | None = None
    request_model: str | None = None
    response_model: str | None = None
    input_tokens: int | None = None  # all input: uncached + cache reads + cache writes
    output_tokens: int | None = None  # reasoning included
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    source_input_tokens: int | None = None  # set when the source's input count was converted

    def canonical_attributes(self) -> dict[str, str | int]:
        """The canonical attributes this usage stands for (None fields left out): what the reader reads first."""
        values = (self.operation, self.provider, self.request_model, self.response_model, self.input_tokens,
                  self.output_tokens, self.cache_read_tokens, self.cache_write_tokens, self.reasoning_tokens)
        return {key: value for key, value in zip(_CANONICAL, values, strict=True) if value is not None}


# The names SpanUsage.canonical_attributes writes, in its fields' order.
_CANONICAL: Final = (sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_REQUEST_MODEL,
                     sc.GEN_AI_RESPONSE_MODEL, sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_OUTPUT_TOKENS,
                     sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
                     sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)


def first(attrs: Mapping[str, object], names: tuple[str, ...], convert: Callable[[object], T | None]) -> T | None:
    """The first of ``names`` whose value ``convert`` accepts."""
    for name in names:
        value = attrs.get(name)
        if value is not None:
            converted = convert(value)
            if converted is not None:
                return converted
    return None


def clean_count(value: object) -> int | None:
    """A token count pricing trusts: a non-negative int, integral float or string of digits."""
    if type(value) is int:  # the common case first (a bool is not of type int)
        return value if value >= 0 else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def clean_text(value: object) -> str | None:
    """A non-empty string, stripped."""
    return value.strip() or None if isinstance(value, str) else None


_INPUT: Final = (sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_PROMPT_TOKENS)
_OUTPUT: Final = (sc.GEN_AI_USAGE_OUTPUT_TOKENS, sc.GEN_AI_USAGE_COMPLETION_TOKENS)
_CACHE_READ: Final = (sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, sc.OPENLLMETRY_CACHE_READ_INPUT_TOKENS)
_CACHE_WRITE: Final = (sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
                       sc.OPENLLMETRY_CACHE_CREATION_INPUT_TOKENS)
_REASONING: Final = (sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, sc.OPENLLMETRY_REASONING_TOKENS,
                     sc.OPENLLMETRY_GEN_AI_REASONING_TOKENS)
_PROVIDER: Final = (sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_SYSTEM)
_TIER: Final = (sc.GEN_AI_OPENAI_RESPONSE_SERVICE_TIER, sc.OPENAI_RESPONSE_SERVICE_TIER)


def read_genai(attrs: Mapping[str, object], dialect: str, count: Callable[[object], int | None],
               text: Callable[[object], str | None]) -> SpanUsage:
    """GenAI semconv, current and deprecated names (also what OpenLLMetry, OpenLIT and Logfire write)."""
    get = attrs.get
    operation = get(sc.GEN_AI_OPERATION_NAME)
    operation = None if operation is None else text(operation)
    if operation is None and dialect == sc.DIALECT_OPENLLMETRY:
        kind = get(sc.OPENLLMETRY_REQUEST_TYPE)
        operation = _OPENLLMETRY_OPERATIONS.get((None if kind is None else text(kind)) or "")
    request_model, response_model = get(sc.GEN_AI_REQUEST_MODEL), get(sc.GEN_AI_RESPONSE_MODEL)
    return SpanUsage(
        dialect, operation, first(attrs, _PROVIDER, text),
        None if request_model is None else text(request_model),
        None if response_model is None else text(response_model),
        first(attrs, _INPUT, count), first(attrs, _OUTPUT, count), first(attrs, _CACHE_READ, count),
        first(attrs, _CACHE_WRITE, count), first(attrs, _REASONING, count),
    )


def already_priced(attrs: Mapping[str, object]) -> bool:
    """The span carries a cost, or a verdict on its cost (``runtrace.cost.source=unknown``)."""
    return sc.COST_USD in attrs or sc.COST_SOURCE in attrs


def needs_pricing(attrs: Mapping[str, object]) -> bool:
    """A span from another SDK: usage but neither a cost nor a verdict on its cost (the ingest test, once)."""
    return not already_priced(attrs) and not USAGE_KEYS.isdisjoint(attrs)


def cost_attributes(pricer: Pricer, attrs: Mapping[str, object], *, when: datetime | None = None,
                    duration_s: float | None = None) -> dict[str, str | float | bool]:
    """The ``runtrace.cost.*`` attributes of a span not priced yet, with ``priced_at_ingest=True``.

    ``{}`` for spans that are not LLM calls (an agent span's usage is the sum of
    its children's) and for spans that carry neither usage nor model. The
    caller has checked :func:`already_priced`.
    """
    operation = attrs.get(sc.GEN_AI_OPERATION_NAME)
    if operation is not None and operation not in sc.LLM_OPERATIONS:
        return {}
    read = read_genai(attrs, sc.DIALECT_GENAI, clean_count, clean_text)
    model = read.response_model or read.request_model
    if read.input_tokens is None and read.output_tokens is None and model is None:
        return {}
    usage: TokenUsage | None = None
    if read.input_tokens is not None or read.output_tokens is not None:
        cache_read, cache_write = read.cache_read_tokens or 0, read.cache_write_tokens or 0
        total_input = read.input_tokens or 0
        if cache_read + cache_write > total_input:
            # Per semconv the input count is the total; a count smaller than its
            # own cached parts can only be the exclusive (Anthropic API) count.
            total_input += cache_read + cache_write
        out = read.output_tokens or 0
        usage = TokenUsage(input_tokens=total_input, output_tokens=out, cache_read_tokens=cache_read,
                           cache_write_tokens=cache_write, reasoning_tokens=min(read.reasoning_tokens or 0, out))
    tier = first(attrs, _TIER, clean_text)
    result = pricer.price(usage, model=model, provider=read.provider, service_tier=tier, when=when,
                          duration_s=duration_s).attributes()
    result[sc.COST_PRICED_AT_INGEST] = True
    return result
