"""Pricing one call: the user's override first, then genai-prices, then the tier multipliers.

This is the per-call path of every instrumented LLM call (and of every span
priced at ingest), so the work that does not depend on the token counts is
done once and cached: the model lookup per (provider, model), the prices in
force, the table name and the tier match per (provider, model, served tier,
batch) for as long as genai-prices' start dates and time-of-day prices let
them hold (a plan, :func:`.genai.stable_window`), the prices'
:class:`.genai.PriceSet` per distinct price set, and ``calc_price``'s affine
form per (price set, usage shape). What is left per call is the usage check
and exact Decimal arithmetic on the counts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal, getcontext
from typing import Any, Final, NamedTuple

from genai_prices import Usage, data_snapshot
from genai_prices.types import CalcPrice, ModelInfo, ModelPrice, Provider

from .. import semconv
from .attributes import already_priced, cost_attributes
from .genai import (
    LinearForm,
    PriceSet,
    apply_form,
    learn_form,
    matched_context_keys,
    price_set,
    region,
    stable_window,
    table,
    usage_for,
)
from .overrides import STANDARD_TIERS, Rates, decimal, norm_tier, parse_multipliers, parse_overrides
from .types import ModelOverride, Price, TokenUsage

__all__ = ["Pricer", "genai_provider"]

logger = logging.getLogger("runtrace")

_BATCH: Final = "batch"
_CTX_TIER: Final = "service_tier"
_CTX_PROCESSING: Final = "processing"
_MTOK: Final = Decimal(1_000_000)

# gen_ai.provider.name / gen_ai.system values that are not genai-prices provider
# ids (azure.ai.openai -> azure, x_ai -> x-ai, ...): genai-prices' own name
# matching misses some of them (it does not find "azure" in "azure.ai.openai").
PROVIDER_ALIASES: Final = semconv.GENAI_PRICES_PROVIDER_IDS


class UnpricedUsage(ValueError):
    """Usage whose parts do not add up (cache reads above the total input, ...)."""


def genai_provider(provider: str | None) -> str | None:
    """genai-prices' provider id for a ``gen_ai.provider.name`` (None for none)."""
    if not provider:
        return None
    provider = provider.strip().lower()
    return PROVIDER_ALIASES.get(provider, provider) or None


def _to_float(value: Decimal) -> float:
    # Decimal -> float only at the very end, rounded so 0.051 is not 0.051000000000000004.
    return round(float(value), 10)


def usage_kwargs(usage: TokenUsage) -> dict[str, int]:
    """The usage as genai-prices' usage keys; raises :class:`UnpricedUsage` when its parts do not add up."""
    cache_write, reasoning = usage.cache_write_tokens or 0, usage.reasoning_tokens or 0
    values = (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, cache_write,
              usage.cache_write_5m_tokens or 0, usage.cache_write_1h_tokens or 0, reasoning)
    for v in values:  # a loop, not any(<generator>): seven generator steps a priced call (issue 14)
        if type(v) is int and v >= 0:  # the common case, one test (a bool is not of type int)
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise UnpricedUsage(f"token counts must be non-negative integers: {usage!r}")
    if usage.cache_read_tokens + cache_write > usage.input_tokens:
        raise UnpricedUsage(f"cache reads + writes exceed the total input: {usage!r}")
    split = (usage.cache_write_5m_tokens or 0) + (usage.cache_write_1h_tokens or 0)
    if split > cache_write:
        raise UnpricedUsage(f"the 5m + 1h cache writes exceed the cache writes: {usage!r}")
    if reasoning > usage.output_tokens:
        raise UnpricedUsage(f"reasoning tokens exceed the output: {usage!r}")
    kwargs = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": cache_write,
    }
    if usage.cache_write_5m_tokens is not None:
        kwargs["cache_write_5m_tokens"] = usage.cache_write_5m_tokens
    if usage.cache_write_1h_tokens is not None:
        kwargs["cache_write_1h_tokens"] = usage.cache_write_1h_tokens
    if reasoning:
        kwargs["output_reasoning_tokens"] = reasoning
    return kwargs


def _unpriced(reason: str, table_name: str | None, tier_label: str | None) -> Price:
    return Price(None, None, None, semconv.SOURCE_UNKNOWN, table_name, reason, tier_label, None)


def _invalid(message: str, tier_label: str | None) -> Price:
    logger.debug("runtrace: usage not priced: %s", message)
    return _unpriced(semconv.UNPRICED_INVALID_USAGE, None, tier_label)


class _Plan(NamedTuple):
    """What pricing one (provider, model, served tier, batch) takes that no token count changes.

    Valid for calls from ``lo`` to before ``hi`` (:func:`.genai.stable_window`:
    genai-prices' start dates and time-of-day windows), under the price table
    it was made from (checked on every call: ``UpdatePrices`` may swap it).
    A priced call inside the window pays only the usage check and the arithmetic.
    """

    snapshot: object  # the genai-prices table it was made from
    lo: datetime
    hi: datetime
    model_price: ModelPrice
    prices: PriceSet
    table_name: str
    matched: bool | None
    factor: Decimal | None


class Pricer:
    """Prices calls: user overrides first, then genai-prices, then tier multipliers.

    Thread-safe for concurrent ``price()`` calls (the caches only ever gain
    entries). Build one per configuration; ``default_pricer()`` is the shared one.
    """

    def __init__(
        self,
        overrides: Mapping[str, Mapping[str, float] | ModelOverride] | None = None,
        tier_multipliers: Mapping[str, float] | None = None,
        *,
        source_label: str = "instrument(prices=...)",
    ) -> None:
        self._label = source_label
        self._overrides: dict[str, Rates] = parse_overrides(overrides, source_label)
        self._multipliers: dict[str, Decimal] = parse_multipliers(tier_multipliers, source_label)
        # (genai provider id, model ref) -> (provider, model) or the LookupError message.
        self._models: dict[tuple[str | None, str], tuple[Provider, ModelInfo] | str] = {}
        self._snapshot: object = None
        # (price set, positive usage keys, usage keys) -> the affine form of calc_price, or None
        self._linear: dict[tuple[Any, ...], LinearForm | None] = {}
        # (genai provider id, model ref, served tier, batch) -> what its price is made of, for a time window
        self._plans: dict[tuple[str | None, str, str | None, bool], _Plan] = {}

    def __repr__(self) -> str:
        return (f"Pricer(overrides={sorted(self._overrides)}, "
                f"tier_multipliers={ {k: float(v) for k, v in self._multipliers.items()} }, "
                f"source_label={self._label!r})")

    # --- the hot path ---------------------------------------------------------

    def price(
        self,
        usage: TokenUsage | None,
        *,
        model: str | None,
        provider: str | None,
        service_tier: str | None = None,
        batch: bool = False,
        when: datetime | None = None,
        duration_s: float | None = None,
    ) -> Price:
        """Price one call. ``service_tier`` is the tier the response says was served."""
        served = None if service_tier is None else norm_tier(service_tier)
        tier = None if served in STANDARD_TIERS or served == _BATCH else served
        batch = batch or served == _BATCH  # Anthropic reports batch as a service tier
        ctx: dict[str, str] = {}
        if tier is not None:
            ctx[_CTX_TIER] = tier
        if batch:
            ctx[_CTX_PROCESSING] = _BATCH
            tier_label: str | None = _BATCH if tier is None else f"{tier}+{_BATCH}"
        else:
            tier_label = served
        gp_provider = genai_provider(provider)
        ts = when or datetime.now(timezone.utc)
        if model and self._overrides:
            rates = self._find_override(model, provider, gp_provider)
            if rates is not None:
                return self._price_override(rates, usage, ctx, tier_label, duration_s)
        if usage is None:
            return _unpriced(semconv.UNPRICED_MISSING_USAGE, None, tier_label)
        if gp_provider == semconv.PROVIDER_LOCAL:
            # A model on the user's own hardware has no list price, whatever its name
            # (a local "gpt-oss" is not billed at a cloud's price): only an override prices it.
            return _unpriced(semconv.UNPRICED_LOCAL_MODEL, None, tier_label)
        if not model:
            return _unpriced(semconv.UNPRICED_UNKNOWN_MODEL, table(), tier_label)
        try:
            kwargs = usage_kwargs(usage)
        except UnpricedUsage as exc:
            return _invalid(str(exc), tier_label)
        key = (gp_provider, model, served, batch)
        plan = self._plans.get(key)
        if (plan is None or plan.snapshot is not data_snapshot.get_snapshot() or ts.tzinfo is None
                or not plan.lo <= ts < plan.hi):
            found = self._lookup(gp_provider, model)  # a plan is only ever made for a model the table has
            if isinstance(found, str):
                return _unpriced(semconv.UNPRICED_UNKNOWN_MODEL, table(), tier_label)
            plan = self._plan(found, ctx, ts, tier_label)
            if ts.tzinfo is not None:  # a naive time (read as UTC) is never compared with a plan's window
                if len(self._plans) > 4096:  # bounded: a program prices a handful of models
                    self._plans.clear()
                self._plans[key] = plan
        try:
            calc = self._calc_with(kwargs, plan.model_price, plan.prices)
        except ValueError as exc:
            return _invalid(str(exc), tier_label)
        input_usd, output_usd = calc["input_price"], calc["output_price"]
        total = calc["total_price"]
        factor = plan.factor
        if factor is not None:
            input_usd, output_usd, total = input_usd * factor, output_usd * factor, total * factor
        return Price(_to_float(total), _to_float(input_usd), _to_float(output_usd),
                     semconv.SOURCE_GENAI_PRICES, plan.table_name, None, tier_label, plan.matched)

    def _plan(self, found: tuple[Provider, ModelInfo], ctx: dict[str, str], ts: datetime,
              tier_label: str | None) -> _Plan:
        """Resolve what a call at ``ts`` is priced from: genai-prices' prices in force, the table, the tier match.

        Its window is empty (lo == hi) when the prices may change at any time
        (a constraint kind :func:`.genai.stable_window` does not know) or the
        time is naive: then the plan serves this one call only.
        """
        gp_prov, info = found
        # genai-prices applies a context only to a provider's own models, not to
        # models it borrows from a fallback provider (Azure serving OpenAI's).
        applied = ctx if ctx and any(info is m for m in gp_prov.models) else None
        model_price = info.get_prices(ts, applied)
        table_name = table()
        matched: bool | None = None
        factor: Decimal | None = None
        if ctx:
            unmatched = set(ctx) - matched_context_keys(info, ts, applied)
            matched = not unmatched
            factor = self._factor(ctx, unmatched)
            if factor is not None:
                table_name = f"{table_name} x{factor} {tier_label} tier ({self._label})"
        window = stable_window(info, ts, applied) if ts.tzinfo is not None else None
        lo, hi = window if window is not None else (ts, ts)
        return _Plan(self._snapshot, lo, hi, model_price, price_set(model_price), table_name, matched, factor)

    def target_prices(self, *, model: str, provider: str | None, service_tier: str | None = None,
                      when: datetime | None = None) -> ModelPrice | ModelOverride | None:
        """The prices :meth:`price` would charge ``model`` at: the user's override, genai-prices' or None.

        For :mod:`runtrace.price_parts`, which splits a call's price by token
        class and must know which classes the target prices at all (a class it
        does not price would otherwise cost a silent $0).
        """
        gp_provider = genai_provider(provider)
        if self._overrides:
            rates = self._find_override(model, provider, gp_provider)
            if rates is not None:
                return rates.as_override()
        if gp_provider == semconv.PROVIDER_LOCAL:
            return None
        found = self._lookup(gp_provider, model)
        if isinstance(found, str):
            return None
        gp_prov, info = found
        served = None if service_tier is None else norm_tier(service_tier)
        ctx: dict[str, str] = {}
        if served is not None and served not in STANDARD_TIERS:
            if served == _BATCH:
                ctx[_CTX_PROCESSING] = _BATCH
            else:
                ctx[_CTX_TIER] = served
        applied = ctx if ctx and any(info is m for m in gp_prov.models) else None
        return info.get_prices(when or datetime.now(timezone.utc), applied)

    def _calc(self, kwargs: dict[str, int], model_price: ModelPrice) -> CalcPrice:
        """genai-prices' ``calc_price``, through a learned affine form when that gives the same Decimals.

        ``calc_price`` resolves and validates the model's prices and decomposes the
        usage on every call (about 70 us, most of runtrace's per-call cost). With
        flat prices its result is an affine function of the token counts for a
        given set of reported counts, and with tiered prices within each region
        between two tier thresholds; so the form is learned once per (price set,
        tier region, usage shape) from ``calc_price`` itself, checked on one
        more point, and applied in exact Decimal arithmetic: the very same
        Decimals. Shapes whose probes fail or disagree keep calling
        ``calc_price`` (which raises what it raises).
        """
        return self._calc_with(kwargs, model_price, price_set(model_price))

    def _calc_with(self, kwargs: dict[str, int], model_price: ModelPrice, prices: PriceSet) -> CalcPrice:
        """:meth:`_calc` with the :class:`.genai.PriceSet` of ``model_price`` already found."""
        if not prices.affine or getcontext().prec < 28:
            return model_price.calc_price(self._usage(kwargs, model_price))
        key = (prices, region(prices, kwargs.get("input_tokens", 0)), tuple([k for k, v in kwargs.items() if v > 0]),
               tuple(kwargs))
        try:
            form = self._linear[key]
        except KeyError:
            if len(self._linear) > 4096:  # bounded: a program prices a handful of models
                self._linear.clear()
            form = self._linear[key] = learn_form(
                kwargs, lambda usage: model_price.calc_price(self._usage(usage, model_price)), prices.thresholds)
        if form is None:
            return model_price.calc_price(self._usage(kwargs, model_price))
        return apply_form(form, kwargs)

    def _usage(self, kwargs: dict[str, int], model_price: ModelPrice) -> Usage:
        """genai-prices' Usage for ``kwargs`` on these prices (see :func:`.genai.usage_for`)."""
        return usage_for(kwargs, price_set(model_price))

    def _factor(self, ctx: Mapping[str, str], unmatched: set[str]) -> Decimal | None:
        factor: Decimal | None = None
        for key in unmatched:
            name = ctx[key] if key == _CTX_TIER else _BATCH
            mult = self._multipliers.get(name)
            if mult is not None:
                factor = mult if factor is None else factor * mult
        return factor

    def _lookup(self, gp_provider: str | None, model: str) -> tuple[Provider, ModelInfo] | str:
        snapshot = data_snapshot.get_snapshot()
        if snapshot is not self._snapshot:  # UpdatePrices or set_custom_snapshot swapped the table
            self._models = {}
            self._plans = {}
            self._snapshot = snapshot
        key = (gp_provider, model)
        found = self._models.get(key)
        if found is None:
            try:
                found = snapshot.find_provider_model(model, None, gp_provider, None)
            except LookupError as exc:
                found = str(exc)
            self._models[key] = found
        return found

    def _find_override(self, model: str, provider: str | None, gp_provider: str | None) -> Rates | None:
        overrides = self._overrides
        name = model.strip().lower()
        names = [name]
        found = self._lookup(gp_provider, model)
        if not isinstance(found, str):
            canonical = found[1].id.lower()
            if canonical != name:
                names.append(canonical)  # a dated snapshot, e.g. gpt-5.5-2026-04-23 -> gpt-5.5
        providers = [p for p in dict.fromkeys((provider.strip().lower() if provider else None, gp_provider))
                     if p]
        for candidate in names:
            for prov in providers:
                rates = overrides.get(f"{prov}:{candidate}")
                if rates is not None:
                    return rates
            rates = overrides.get(candidate)
            if rates is not None:
                return rates
        return None

    def _price_override(self, rates: Rates, usage: TokenUsage | None, ctx: Mapping[str, str],
                        tier_label: str | None, duration_s: float | None) -> Price:
        zero = Decimal(0)
        input_usd = output_usd = zero
        if usage is None:
            if rates.has_token_prices and not rates.free_tokens:
                return _unpriced(semconv.UNPRICED_MISSING_USAGE, None, tier_label)
        else:
            try:
                usage_kwargs(usage)
            except UnpricedUsage as exc:
                return _invalid(str(exc), tier_label)
            cache_write = usage.cache_write_tokens or 0
            plain = usage.input_tokens - usage.cache_read_tokens - cache_write
            input_usd = (plain * rates.input + usage.cache_read_tokens * rates.cache_read
                         + cache_write * rates.cache_write) / _MTOK
            output_usd = usage.output_tokens * rates.output / _MTOK
        total = input_usd + output_usd
        if rates.per_second is not None:
            if duration_s is None or not math.isfinite(duration_s) or duration_s < 0:
                return _unpriced(semconv.UNPRICED_MISSING_USAGE, None, tier_label)
            total += rates.per_second * decimal(duration_s)
        table_name = f"override:{self._label}#{rates.key}"
        matched: bool | None = None
        if ctx:
            matched = False
            factor = self._factor(ctx, set(ctx))
            if factor is not None:
                input_usd, output_usd, total = input_usd * factor, output_usd * factor, total * factor
                table_name = f"{table_name} x{factor} {tier_label} tier"
        return Price(_to_float(total), _to_float(input_usd), _to_float(output_usd),
                     semconv.SOURCE_OVERRIDE, table_name, None, tier_label, matched)

    # --- spans from other SDKs -----------------------------------------------

    def price_attributes(
        self,
        attributes: Mapping[str, object],
        *,
        when: datetime | None = None,
        duration_s: float | None = None,
    ) -> dict[str, str | float | bool]:
        """The cost attributes for an LLM span another SDK sent without them.

        Returns ``{}`` for spans already priced, for spans that are not LLM
        calls (an agent span's usage is the sum of its children's and must not
        be priced again) and for spans that are neither usage nor model.
        Otherwise the result carries ``runtrace.cost.priced_at_ingest=True``.
        See :mod:`.attributes`.
        """
        if already_priced(attributes):
            return {}
        return cost_attributes(self, attributes, when=when, duration_s=duration_s)
