"""Token usage read by genai-prices' own extractors, mapped into :class:`runtrace.pricing.TokenUsage` once.

genai-prices knows the usage shape of ~40 providers' JSON bodies (Gemini's
``usageMetadata`` with thoughts billed as output, Bedrock's camelCase
``inputTokens`` with cache reads and writes, Anthropic's 5m/1h cache split...).
A provider module hands its response body (JSON-shaped: the SDK model dumped
by alias, or boto3's dict) and the genai-prices provider id and API flavour;
this module turns the result into runtrace's one usage type, so no provider
module re-implements a provider's token accounting.

genai-prices' ``Usage.input_tokens`` is already the total input (cache reads
and writes included), the same convention as ``TokenUsage``, runtrace's one
usage type (``_llm.Usage`` is the same class), which the Pricer prices as it is.
"""

from __future__ import annotations

from typing import Any

import genai_prices
from genai_prices import data_snapshot

from ..pricing import TokenUsage as Usage

_providers: dict[str, Any] = {}  # genai-prices provider id -> its Provider (the snapshot is fixed)


def _provider(provider_id: str) -> Any:
    found = _providers.get(provider_id)
    if found is None:
        found = data_snapshot.get_snapshot().find_provider(None, provider_id, None)
        _providers[provider_id] = found
    return found


def _count(values: dict[str, Any], key: str) -> int | None:
    value = values.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def from_genai_prices(usage: genai_prices.Usage) -> Usage:
    """genai-prices' usage as runtrace's: only the fields it actually set count as reported."""
    values = {k: v for k, v in vars(usage).items() if v is not None}
    return Usage(
        input_tokens=_count(values, "input_tokens") or 0,
        output_tokens=_count(values, "output_tokens") or 0,
        cache_read_tokens=_count(values, "cache_read_tokens") or 0,
        cache_write_tokens=_count(values, "cache_write_tokens"),
        cache_write_5m_tokens=_count(values, "cache_write_5m_tokens"),
        cache_write_1h_tokens=_count(values, "cache_write_1h_tokens"),
        reasoning_tokens=_count(values, "output_reasoning_tokens"),
    )


def extract(body: Any, provider_id: str, api_flavor: str = "default") -> Usage | None:
    """The usage in ``body`` (a JSON-shaped response); None when it carries none.

    The model is not looked up here (that would raise for a model genai-prices
    does not list): pricing is :mod:`runtrace.pricing`'s job, on the span's model.
    """
    if body is None:
        return None
    try:
        _model, usage = _provider(provider_id).extract_usage(body, api_flavor=api_flavor)
    except (ValueError, TypeError, LookupError):  # no usage object, or a required count missing
        return None
    return from_genai_prices(usage)
