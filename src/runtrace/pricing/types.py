"""The values pricing takes and gives: a call's token usage, its price, and a user's price for a model.

Kept apart from the arithmetic so that the instrumentations, the store and
the what-if pages can hold them without importing genai-prices' machinery.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import semconv

__all__ = ["ModelOverride", "Price", "TokenUsage"]


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts of one call, in the OpenTelemetry/genai-prices convention: runtrace's one usage type.

    The instrumentations build it (``instrumentation/_usage.py`` from genai-prices'
    extractors, or a provider module by hand) and the Pricer prices it as it is;
    genai-prices' own ``Usage`` appears only at those two edges. ``None`` for a
    cache-write or reasoning count means the provider does not report it (no
    span attribute is written); it is priced as 0.
    """

    input_tokens: int = 0  # TOTAL input, cache reads and writes included
    output_tokens: int = 0  # total output, reasoning included
    cache_read_tokens: int = 0
    cache_write_tokens: int | None = None  # total cache writes; None: not reported
    cache_write_5m_tokens: int | None = None  # Anthropic split, when known
    cache_write_1h_tokens: int | None = None
    reasoning_tokens: int | None = None  # None: not reported


@dataclass(frozen=True, slots=True)
class Price:
    """The priced call; ``total_usd is None`` means unpriced, never free."""

    total_usd: float | None
    input_usd: float | None
    output_usd: float | None
    source: str  # semconv.SOURCE_GENAI_PRICES | SOURCE_OVERRIDE | SOURCE_UNKNOWN
    price_table: str | None
    unpriced_reason: str | None
    service_tier: str | None  # the tier that was priced (the served one)
    tier_matched: bool | None  # False: the tier had no price of its own

    def attributes(self) -> dict[str, str | float | bool]:
        """The ``runtrace.cost.*`` span attributes, leaving out what is unknown."""
        pairs = (
            (semconv.COST_USD, self.total_usd),
            (semconv.COST_INPUT_USD, self.input_usd),
            (semconv.COST_OUTPUT_USD, self.output_usd),
            (semconv.COST_SOURCE, self.source),
            (semconv.COST_PRICE_TABLE, self.price_table),
            (semconv.COST_UNPRICED_REASON, self.unpriced_reason),
            (semconv.COST_SERVICE_TIER, self.service_tier),
            (semconv.COST_TIER_MATCHED, self.tier_matched),
        )
        return {key: value for key, value in pairs if value is not None}


@dataclass(frozen=True, slots=True)
class ModelOverride:
    """A user's price for one model, in USD per million tokens and/or per second.

    Either both token prices or ``per_second`` (or all of them) must be given; the
    cache prices default to the input price.
    """

    input_per_mtok: float | None = None
    output_per_mtok: float | None = None
    cache_read_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None
    per_second: float | None = None
