"""A call's price split by token class, and the classes a target model has no price for.

What-if repricing moves recorded calls onto another provider's model ("these
runs on Bedrock Claude, on Gemini, on DeepSeek"). Price tables differ in what
they price: DeepSeek has a cache-read price and no cache-write one, a legacy
completion model has an input price and no output price, Perplexity's models
add a fee per request, a local model is priced per second by the user. A total
alone hides that, and a class the target does not price would cost a silent
$0. So each call is split into classes::

    input        input tokens that are neither cache reads nor cache writes
    cache_read   input tokens read from the provider's prompt cache
    cache_write  input tokens written to it
    output       output tokens other than reasoning
    reasoning    reasoning/thinking tokens (billed as output by most providers)
    requests     a fee per call (genai-prices' ``requests_kcount``)
    seconds      a price per second of the call (a user's ``per_second`` override)

and :func:`price_parts` says, for one call, what each class cost on the
target, which classes were charged at another class's price (cache reads at
the input price, reasoning at the output price: the target bills them so; their
dollars are then part of that class's), and
which classes the call used that the target has *no* price for at all. A call
with such a class has no what-if price (``total_usd is None``), never $0.

The total is always :meth:`runtrace.pricing.Pricer.price`'s; the split is
genai-prices' own per-unit arithmetic (so tiered prices split as they are
charged), scaled to that total when a tier multiplier applies.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Final

from genai_prices import Usage
from genai_prices.types import ModelPrice, TieredPrices

from .pricing import ModelOverride, Price, Pricer, TokenUsage
from .pricing.genai import price_set, split_by_unit

__all__ = ["CLASSES", "CLASS_LABELS", "PriceParts", "price_parts", "split_tokens"]

logger = logging.getLogger("runtrace")

CLASSES: Final = ("input", "cache_read", "cache_write", "output", "reasoning", "requests", "seconds")
CLASS_LABELS: Final = {"input": "input", "cache_read": "cached read", "cache_write": "cache write",
                       "output": "output", "reasoning": "reasoning", "requests": "per request",
                       "seconds": "per second"}
TOKEN_CLASSES: Final = CLASSES[:5]

# class -> (genai-prices price keys that price it, the class it is charged as without one)
_OWN_KEYS: Final[dict[str, tuple[tuple[str, ...], str | None]]] = {
    "input": (("input_mtok",), None),
    "cache_read": (("cache_read_mtok",), "input"),
    "cache_write": (("cache_write_mtok", "cache_write_5m_mtok", "cache_write_1h_mtok"), "input"),
    "output": (("output_mtok",), None),
    "reasoning": (("output_reasoning_mtok",), "output"),
}
_MTOK: Final = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class PriceParts:
    """One call repriced on a target, by class."""

    price: Price
    usd: dict[str, float] = field(default_factory=dict)  # class -> dollars; empty when the split is unknown
    charged_as: dict[str, str] = field(default_factory=dict)  # class -> the class whose price it paid
    missing: tuple[str, ...] = ()  # classes the call used that the target has no price for

    @property
    def total_usd(self) -> float | None:
        """The what-if price, None when it is unknown or a used class has no price."""
        return None if self.missing else self.price.total_usd


def split_tokens(usage: TokenUsage) -> dict[str, int]:
    """The call's tokens by class (input and output without their cached / reasoning parts)."""
    cache_write, reasoning = usage.cache_write_tokens or 0, usage.reasoning_tokens or 0
    return {
        "input": max(0, usage.input_tokens - usage.cache_read_tokens - cache_write),
        "cache_read": usage.cache_read_tokens,
        "cache_write": cache_write,
        "output": max(0, usage.output_tokens - reasoning),
        "reasoning": reasoning,
    }


def price_parts(pricer: Pricer, usage: TokenUsage, *, model: str, provider: str | None,
                service_tier: str | None = None, when: datetime | None = None,
                duration_s: float | None = None) -> PriceParts:
    """Price ``usage`` on ``model`` and split the price by class (see the module docstring)."""
    price = pricer.price(usage, model=model, provider=provider, service_tier=service_tier, when=when,
                         duration_s=duration_s)
    prices = pricer.target_prices(model=model, provider=provider, service_tier=service_tier, when=when)
    if price.total_usd is None or prices is None:
        return PriceParts(price)
    tokens = split_tokens(usage)
    if isinstance(prices, ModelOverride):
        return _override_parts(price, prices, tokens, duration_s)
    return _genai_parts(price, prices, usage, tokens)


def _override_parts(price: Price, rates: ModelOverride, tokens: dict[str, int],
                    duration_s: float | None) -> PriceParts:
    """A user's override prices every token class (cache prices default to the input price)."""
    usd: dict[str, Decimal] = {}
    charged_as: dict[str, str] = {}
    if rates.input_per_mtok is not None and rates.output_per_mtok is not None:
        per_class = {"input": rates.input_per_mtok, "cache_read": rates.cache_read_per_mtok,
                     "cache_write": rates.cache_write_per_mtok, "output": rates.output_per_mtok}
        counts = {**tokens, "output": tokens["output"] + tokens["reasoning"]}  # reasoning is billed as output
        for name, rate in per_class.items():
            if counts[name]:
                usd[name] = counts[name] * _dec(rate if rate is not None else rates.input_per_mtok) / _MTOK
        if tokens["reasoning"]:
            charged_as["reasoning"] = "output"
    if rates.per_second is not None and duration_s is not None:
        usd["seconds"] = _dec(rates.per_second) * _dec(duration_s)
    return PriceParts(price, _scaled(usd, price), charged_as)


def _genai_parts(price: Price, prices: ModelPrice, usage: TokenUsage, tokens: dict[str, int]) -> PriceParts:
    used = tuple(name for name in TOKEN_CLASSES if tokens[name])
    key = (id(prices), used)
    found = _coverage.get(key)
    if found is None or found[0] is not prices:
        priced = set(price_set(prices).dimensions)
        charged: dict[str, str] = {}
        missing: list[str] = []
        for name in used:
            own, parent = _OWN_KEYS[name]
            if priced.intersection(own):
                continue
            if parent is not None and priced.intersection(_OWN_KEYS[parent][0]):
                charged[name] = parent
            else:
                missing.append(name)
        if len(_coverage) > 4096:
            _coverage.clear()
        found = _coverage[key] = (prices, charged, tuple(missing))
    _prices, charged_as, missing_classes = found
    return PriceParts(price, _scaled(_split(prices, usage, tokens), price), dict(charged_as), missing_classes)


# (id of a price set, the classes a call used) -> (that price set, kept so the id stays its own;
# class -> the class it is charged as; the used classes it has no price for)
_coverage: dict[tuple[int, tuple[str, ...]], tuple[ModelPrice, dict[str, str], tuple[str, ...]]] = {}


# (flat prices) -> (dollars of a call with no tokens, {class: {class charged: dollars per token}})
_Form = tuple[dict[str, Decimal], dict[str, dict[str, Decimal]]]
_forms: dict[tuple[tuple[str, Decimal | TieredPrices], ...], _Form] = {}
_form_of: dict[int, tuple[ModelPrice, _Form | None]] = {}  # by id of a price set, kept alive beside it
_PROBES: Final = {  # a million tokens of one class, as a usage that holds them
    "input": TokenUsage(input_tokens=1_000_000),
    "cache_read": TokenUsage(input_tokens=1_000_000, cache_read_tokens=1_000_000),
    "cache_write": TokenUsage(input_tokens=1_000_000, cache_write_tokens=1_000_000),
    "output": TokenUsage(output_tokens=1_000_000),
    "reasoning": TokenUsage(output_tokens=1_000_000, reasoning_tokens=1_000_000),
}


def _split(prices: ModelPrice, usage: TokenUsage, tokens: dict[str, int]) -> dict[str, Decimal]:
    """The per-class split; for flat prices through a form learned once from genai-prices' own split.

    genai-prices' per-unit arithmetic costs about 0.3 ms a call (more than pricing
    the call). With flat prices the split is linear in each class's tokens, so it
    is learned once per price set from a call with no tokens and a million
    tokens of each class, and applied in exact Decimal arithmetic. Tiered
    prices and the Anthropic 5m/1h split keep the per-call arithmetic.
    """
    if usage.cache_write_5m_tokens is not None or usage.cache_write_1h_tokens is not None:
        return _genai_split(prices, usage)
    known = _form_of.get(id(prices))
    if known is not None and known[0] is prices:
        form = known[1]
    else:
        form = _learn(prices)
        if len(_form_of) > 1024:
            _form_of.clear()
        _form_of[id(prices)] = (prices, form)
    if form is None:
        return _genai_split(prices, usage)
    base, rates = form
    usd = dict(base)
    for name, count in tokens.items():
        if count:
            for charged, rate in rates[name].items():
                usd[charged] = usd.get(charged, Decimal(0)) + count * rate
    return usd


def _learn(prices: ModelPrice) -> _Form | None:
    """The split's linear form for a flat price set (shared by equal price sets); None when tiered."""
    found = price_set(prices)
    if not found.flat:
        return None
    items = found.values
    form = _forms.get(items)
    if form is None:
        base = _genai_split(prices, TokenUsage())
        rates: dict[str, dict[str, Decimal]] = {}
        for name, probe in _PROBES.items():
            got = _genai_split(prices, probe)
            rates[name] = {k: (v - base.get(k, Decimal(0))) / _MTOK for k, v in got.items()
                           if v != base.get(k, Decimal(0))}
        if len(_forms) > 1024:  # bounded: a what-if prices a handful of targets
            _forms.clear()
        form = _forms[items] = (base, rates)
    return form


def _genai_split(prices: ModelPrice, usage: TokenUsage) -> dict[str, Decimal]:
    """genai-prices' per-unit amounts, by class; {} if genai-prices rejects the usage or its API moved."""
    try:
        kwargs: dict[str, int] = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                                  "cache_read_tokens": usage.cache_read_tokens,
                                  "cache_write_tokens": usage.cache_write_tokens or 0}
        if usage.cache_write_5m_tokens is not None:
            kwargs["cache_write_5m_tokens"] = usage.cache_write_5m_tokens
        if usage.cache_write_1h_tokens is not None:
            kwargs["cache_write_1h_tokens"] = usage.cache_write_1h_tokens
        if usage.reasoning_tokens:
            kwargs["output_reasoning_tokens"] = usage.reasoning_tokens
        usd: dict[str, Decimal] = {}
        for dimensions, amount in split_by_unit(price_set(prices), Usage(**kwargs)):
            name = _class_of(dimensions)
            usd[name] = usd.get(name, Decimal(0)) + amount
        return usd
    except Exception:  # noqa: BLE001 - the split is a view; the total stands without it
        logger.debug("runtrace: no per-class split from this genai-prices version", exc_info=True)
        return {}


def _class_of(dimensions: Mapping[str, str]) -> str:
    family, token_type = dimensions.get("family"), dimensions.get("token_type")
    if family == "requests":
        return "requests"
    if family == "durations":
        return "seconds"
    if token_type in ("cache_read", "cache_write", "reasoning"):
        return str(token_type)
    if family == "tokens" and dimensions.get("direction") == "output":
        return "output"
    return "input" if family == "tokens" else "other"


def _scaled(usd: dict[str, Decimal], price: Price) -> dict[str, float]:
    """The split in floats, scaled to add up to the total (a tier multiplier scales every class)."""
    total = sum(usd.values(), Decimal(0))
    if price.total_usd is None or not total or abs(float(total) - price.total_usd) <= 1e-9:
        return {name: round(float(v), 12) for name, v in usd.items()}
    factor = _dec(price.total_usd) / total
    return {name: round(float(v * factor), 12) for name, v in usd.items()}


def _dec(value: float) -> Decimal:
    return Decimal(repr(float(value)))
