"""Usage -> USD: genai-prices list prices, user overrides and service tiers.

Pure on purpose (no OpenTelemetry here beyond the names in ``semconv``): the
instrumentations price each call with :meth:`Pricer.price`, and the store prices
spans that other SDKs sent with :meth:`Pricer.price_attributes`. Pricing never
touches the network: genai-prices' bundled table is used as installed.

A price that is not known is ``None`` (``runtrace.cost.source=unknown``) and is
counted as unpriced, never shown as $0; a local model priced at zero by the user
*is* a price and is reported as one.

Token accounting follows OpenTelemetry and genai-prices: ``input_tokens`` is the
total input with cache reads and cache writes as parts of it (OpenAI's count is
already that; an Anthropic instrumentation adds ``cache_read_input_tokens`` and
``cache_creation_input_tokens`` to Anthropic's ``input_tokens`` first), and
``output_tokens`` includes reasoning.

Overrides file (``RUNTRACE_PRICES=/path/prices.toml`` or
``instrument(prices="prices.toml")``), prices in USD::

    # Keys are "model" or "provider:model"; the provider-qualified one wins.
    [models."my-llama"]          # a local model, priced per second of the call
    per_second = 0.0004

    [models."openai:gpt-5.5"]    # a negotiated price; beats the list price
    input_per_mtok = 4.0         # per million input tokens (required with output_per_mtok)
    output_per_mtok = 24.0       # per million output tokens, reasoning included
    cache_read_per_mtok = 0.4    # optional, default: input_per_mtok
    cache_write_per_mtok = 5.0   # optional, default: input_per_mtok

    [models."ollama:qwen3"]      # free is a real price ($0), not an unknown one
    input_per_mtok = 0
    output_per_mtok = 0

    [tiers]                      # used when genai-prices has no price for a served tier
    priority = 1.8               # x the standard price
    flex = 0.5
    batch = 0.5

``per_second`` can be combined with token prices; its cost is part of the total
but of neither the input nor the output split. An override applies to its model
whatever the served tier; a non-standard tier on an overridden model is marked
``tier_matched=False`` and gets the ``[tiers]`` multiplier when there is one.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, getcontext
from typing import Any, Final

import genai_prices
from genai_prices import Usage, data_snapshot
from genai_prices.types import CalcPrice, ModelInfo, ModelPrice, Provider

from . import _state, semconv
from ._forksafe import ForkSafeLock

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "ModelOverride",
    "Price",
    "Pricer",
    "TokenUsage",
    "default_pricer",
    "load_prices_file",
    "set_default_pricer",
]

logger = logging.getLogger("runtrace")

GENAI_PRICES_TABLE: Final = f"genai-prices {genai_prices.__version__}"

# Served tiers that mean "the standard price" (OpenAI default/auto, Anthropic
# standard, Groq on_demand); anything else is looked up as a tier.
_STANDARD_TIERS: Final = frozenset({"default", "auto", "standard", "standard_only", "on_demand"})
_BATCH: Final = "batch"
_CTX_TIER: Final = "service_tier"
_CTX_PROCESSING: Final = "processing"

# gen_ai.provider.name / gen_ai.system values that are not genai-prices provider
# ids (azure.ai.openai -> azure, x_ai -> x-ai, ...): genai-prices' own name
# matching misses some of them (it does not find "azure" in "azure.ai.openai").
_PROVIDER_ALIASES: Final = semconv.GENAI_PRICES_PROVIDER_IDS

_MTOK: Final = Decimal(1_000_000)
_OVERRIDE_FIELDS: Final = ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok",
                           "cache_write_per_mtok", "per_second")


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


@dataclass(frozen=True, slots=True)
class _Rates:
    """A validated override, in Decimal so that dollars add up exactly."""

    key: str
    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    per_second: Decimal | None
    has_token_prices: bool

    @property
    def free_tokens(self) -> bool:
        return not (self.input or self.output or self.cache_read or self.cache_write)


# (constant (total, input, output), ((usage key, slopes (total, input, output)), ...))
_LinearForm = tuple[tuple[Decimal, Decimal, Decimal], tuple[tuple[str, tuple[Decimal, Decimal, Decimal]], ...]]
# Probe points inside the valid region (cache parts within the input, reasoning within the output).
_PROBE_BASE: Final = {"input_tokens": 1000, "output_tokens": 1000, "cache_read_tokens": 10,
                      "cache_write_tokens": 20, "cache_write_5m_tokens": 5, "cache_write_1h_tokens": 5,
                      "output_reasoning_tokens": 10}
_PROBE_CHECK: Final = {"input_tokens": 3001, "output_tokens": 777, "cache_read_tokens": 17,
                       "cache_write_tokens": 41, "cache_write_5m_tokens": 13, "cache_write_1h_tokens": 7,
                       "output_reasoning_tokens": 33}


def _apply_form(form: _LinearForm, kwargs: Mapping[str, int]) -> CalcPrice:
    (total, input_usd, output_usd), slopes = form
    for key, (d_total, d_input, d_output) in slopes:
        count = kwargs[key]
        total += d_total * count
        input_usd += d_input * count
        output_usd += d_output * count
    return {"input_price": input_usd, "output_price": output_usd, "total_price": total}


class _UnpricedUsage(ValueError):
    """Usage whose parts do not add up (cache reads above the total input, ...)."""


def _to_float(value: Decimal) -> float:
    # Decimal -> float only at the very end, rounded so 0.051 is not 0.051000000000000004.
    return round(float(value), 10)


def _decimal(value: float | int) -> Decimal:
    # repr() keeps the float the user wrote (0.4 -> Decimal("0.4"), not 0.40000000000000002).
    return Decimal(value) if isinstance(value, int) else Decimal(repr(float(value)))


def _check_price(where: str, name: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValueError(f"{where}: {name} must be a number, got {value!r}")
    number = value if isinstance(value, Decimal) else _decimal(value)
    if not number.is_finite() or number < 0:
        raise ValueError(f"{where}: {name} must be a finite number >= 0, got {value!r}")
    return number


def _parse_override(where: str, key: str, value: object) -> _Rates:
    if isinstance(value, ModelOverride):
        fields: dict[str, object] = {name: getattr(value, name) for name in _OVERRIDE_FIELDS}
        fields = {name: v for name, v in fields.items() if v is not None}
    elif isinstance(value, Mapping):
        fields = dict(value)
        unknown = sorted(str(name) for name in fields if name not in _OVERRIDE_FIELDS)
        if unknown:
            raise ValueError(f"{where}: unknown price field {unknown[0]!r} "
                             f"(expected {', '.join(_OVERRIDE_FIELDS)})")
    else:
        raise ValueError(f"{where}: expected a table of prices ({', '.join(_OVERRIDE_FIELDS)}), "
                         f"got {value!r}")
    checked = {name: _check_price(where, name, v) for name, v in fields.items()}
    has_input, has_output = "input_per_mtok" in checked, "output_per_mtok" in checked
    if has_input != has_output:
        missing = "output_per_mtok" if has_input else "input_per_mtok"
        raise ValueError(f"{where}: {missing} is required with "
                         f"{'input_per_mtok' if has_input else 'output_per_mtok'} (write 0 if it is free)")
    has_tokens = has_input and has_output
    if not has_tokens:
        stray = [name for name in ("cache_read_per_mtok", "cache_write_per_mtok") if name in checked]
        if stray:
            raise ValueError(f"{where}: {stray[0]} needs input_per_mtok and output_per_mtok")
    if not has_tokens and "per_second" not in checked:
        raise ValueError(f"{where}: give input_per_mtok and output_per_mtok, or per_second")
    zero = Decimal(0)
    input_rate = checked.get("input_per_mtok", zero)
    return _Rates(
        key=key,
        input=input_rate,
        output=checked.get("output_per_mtok", zero),
        cache_read=checked.get("cache_read_per_mtok", input_rate),
        cache_write=checked.get("cache_write_per_mtok", input_rate),
        per_second=checked.get("per_second"),
        has_token_prices=has_tokens,
    )


def _parse_multiplier(where: str, value: object) -> Decimal:
    number = _check_price(where, "multiplier", value)
    if number == 0:
        raise ValueError(f"{where}: multiplier must be > 0, got {value!r}")
    return number


def _norm_tier(tier: object) -> str | None:
    if not isinstance(tier, str):
        return None
    tier = tier.strip().lower()
    return tier or None


def _genai_provider(provider: str | None) -> str | None:
    if not provider:
        return None
    provider = provider.strip().lower()
    return _PROVIDER_ALIASES.get(provider, provider) or None


def _usage_kwargs(usage: TokenUsage) -> dict[str, int]:
    cache_write, reasoning = usage.cache_write_tokens or 0, usage.reasoning_tokens or 0
    values = (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, cache_write,
              usage.cache_write_5m_tokens or 0, usage.cache_write_1h_tokens or 0, reasoning)
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values):
        raise _UnpricedUsage(f"token counts must be non-negative integers: {usage!r}")
    if usage.cache_read_tokens + cache_write > usage.input_tokens:
        raise _UnpricedUsage(f"cache reads + writes exceed the total input: {usage!r}")
    split = (usage.cache_write_5m_tokens or 0) + (usage.cache_write_1h_tokens or 0)
    if split > cache_write:
        raise _UnpricedUsage(f"the 5m + 1h cache writes exceed the cache writes: {usage!r}")
    if reasoning > usage.output_tokens:
        raise _UnpricedUsage(f"reasoning tokens exceed the output: {usage!r}")
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


def _usage_key_of_price_key() -> Mapping[str, str] | None:
    """genai-prices' price-key -> usage-key map, or None if its internals moved."""
    try:
        from genai_prices.units import _get_registry

        registry = _get_registry()
        reported = registry._reported_usage_keys
        return {unit.price_key: unit.usage_key for unit in registry.units.values()
                if unit.usage_key in reported}
    except Exception:  # noqa: BLE001 - only a speed-up; pricing works without it
        return None


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
        self._overrides: dict[str, _Rates] = {}
        for key, value in (overrides or {}).items():
            if not isinstance(key, str) or not key.strip():
                raise ValueError(f"{source_label}: override key must be a model name, got {key!r}")
            norm = key.strip().lower()
            if norm in self._overrides:
                raise ValueError(f"{source_label}: override {key!r} is given twice")
            self._overrides[norm] = _parse_override(f"{source_label}: override {key!r}", key, value)
        self._multipliers: dict[str, Decimal] = {}
        for tier, multiplier in (tier_multipliers or {}).items():
            norm_tier = _norm_tier(tier)
            if norm_tier is None:
                raise ValueError(f"{source_label}: tier multiplier key must be a tier name, got {tier!r}")
            if norm_tier in _STANDARD_TIERS:
                raise ValueError(f"{source_label}: tier {tier!r} is the standard tier; it has no multiplier")
            self._multipliers[norm_tier] = _parse_multiplier(f"{source_label}: tier {tier!r}", multiplier)
        # (genai provider id, model ref) -> (provider, model) or the LookupError message.
        self._models: dict[tuple[str | None, str], tuple[Provider, ModelInfo] | str] = {}
        self._snapshot: object = None
        self._price_keys = _usage_key_of_price_key()
        # (priced usage keys, reported positive usage keys) -> usage keys to pass as explicit 0
        self._zero_fill: dict[tuple[frozenset[str], frozenset[str]], tuple[str, ...]] = {}
        # (flat prices, positive usage keys, usage keys) -> the affine form of calc_price, or None
        self._linear: dict[tuple[Any, ...], _LinearForm | None] = {}

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
        served = _norm_tier(service_tier)
        tier = None if served in _STANDARD_TIERS or served == _BATCH else served
        batch = batch or served == _BATCH  # Anthropic reports batch as a service tier
        ctx: dict[str, str] = {}
        if tier is not None:
            ctx[_CTX_TIER] = tier
        if batch:
            ctx[_CTX_PROCESSING] = _BATCH
            tier_label: str | None = _BATCH if tier is None else f"{tier}+{_BATCH}"
        else:
            tier_label = served
        gp_provider = _genai_provider(provider)
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
            return _unpriced(semconv.UNPRICED_UNKNOWN_MODEL, _table(), tier_label)
        try:
            kwargs = _usage_kwargs(usage)
        except _UnpricedUsage as exc:
            return _invalid(str(exc), tier_label)
        found = self._lookup(gp_provider, model)
        if isinstance(found, str):
            return _unpriced(semconv.UNPRICED_UNKNOWN_MODEL, _table(), tier_label)
        gp_prov, info = found
        # genai-prices applies a context only to a provider's own models, not to
        # models it borrows from a fallback provider (Azure serving OpenAI's).
        applied = ctx if ctx and any(info is m for m in gp_prov.models) else None
        model_price = info.get_prices(ts, applied)
        try:
            calc = self._calc(kwargs, model_price)
        except ValueError as exc:
            return _invalid(str(exc), tier_label)
        input_usd, output_usd = calc["input_price"], calc["output_price"]
        total = calc["total_price"]
        table = _table()
        matched: bool | None = None
        if ctx:
            unmatched = set(ctx) - _matched_context_keys(info, ts, applied)
            matched = not unmatched
            factor = self._factor(ctx, unmatched)
            if factor is not None:
                input_usd, output_usd, total = input_usd * factor, output_usd * factor, total * factor
                table = f"{table} x{factor} {tier_label} tier ({self._label})"
        return Price(_to_float(total), _to_float(input_usd), _to_float(output_usd),
                     semconv.SOURCE_GENAI_PRICES, table, None, tier_label, matched)

    def target_prices(self, *, model: str, provider: str | None, service_tier: str | None = None,
                      when: datetime | None = None) -> ModelPrice | ModelOverride | None:
        """The prices :meth:`price` would charge ``model`` at: the user's override, genai-prices' or None.

        For :mod:`runtrace.price_parts`, which splits a call's price by token
        class and must know which classes the target prices at all (a class it
        does not price would otherwise cost a silent $0).
        """
        gp_provider = _genai_provider(provider)
        if self._overrides:
            rates = self._find_override(model, provider, gp_provider)
            if rates is not None:
                def opt(value: Decimal, given: bool) -> float | None:
                    return float(value) if given else None
                return ModelOverride(
                    input_per_mtok=opt(rates.input, rates.has_token_prices),
                    output_per_mtok=opt(rates.output, rates.has_token_prices),
                    cache_read_per_mtok=opt(rates.cache_read, rates.has_token_prices),
                    cache_write_per_mtok=opt(rates.cache_write, rates.has_token_prices),
                    per_second=None if rates.per_second is None else float(rates.per_second))
        if gp_provider == semconv.PROVIDER_LOCAL:
            return None
        found = self._lookup(gp_provider, model)
        if isinstance(found, str):
            return None
        gp_prov, info = found
        served = _norm_tier(service_tier)
        ctx: dict[str, str] = {}
        if served is not None and served not in _STANDARD_TIERS:
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
        flat (untiered) prices its result is an affine function of the token
        counts for a given set of reported counts, so the form is learned once
        per (prices, usage shape) from ``calc_price`` itself, checked on one more
        point, and applied in exact Decimal arithmetic: the very same Decimals.
        Tiered prices, and shapes whose probes fail or disagree, keep calling
        ``calc_price`` (which raises what it raises).
        """
        items = tuple(model_price.__dict__.items())
        if getcontext().prec < 28 or any(type(v) is not Decimal and v is not None or k.startswith("_")
                                         for k, v in items):
            return model_price.calc_price(self._usage(kwargs, model_price))
        key = (items, tuple(k for k, v in kwargs.items() if v > 0), tuple(kwargs))
        try:
            form = self._linear[key]
        except KeyError:
            if len(self._linear) > 4096:  # bounded: a program prices a handful of models
                self._linear.clear()
            form = self._linear[key] = self._learn(kwargs, model_price)
        if form is None:
            return model_price.calc_price(self._usage(kwargs, model_price))
        return _apply_form(form, kwargs)

    def _learn(self, kwargs: dict[str, int], model_price: ModelPrice) -> _LinearForm | None:
        positive = [k for k, v in kwargs.items() if v > 0]
        if any(k not in _PROBE_BASE for k in positive):
            return None
        base = {k: _PROBE_BASE[k] if v > 0 else 0 for k, v in kwargs.items()}
        check = {k: _PROBE_CHECK[k] if v > 0 else 0 for k, v in kwargs.items()}

        def calc(usage: dict[str, int]) -> tuple[Decimal, Decimal, Decimal]:
            out = model_price.calc_price(self._usage(usage, model_price))
            return out["total_price"], out["input_price"], out["output_price"]

        try:
            at_base = calc(base)
            slopes = []
            for k in positive:
                bumped = calc({**base, k: base[k] + 1})
                slopes.append((k, (bumped[0] - at_base[0], bumped[1] - at_base[1], bumped[2] - at_base[2])))
            const = tuple(at_base[i] - sum((s[i] * base[k] for k, s in slopes), Decimal(0)) for i in range(3))
            form: _LinearForm = ((const[0], const[1], const[2]), tuple(slopes))
            expected = calc(check)
        except ValueError:
            return None
        got = _apply_form(form, check)
        if (got["total_price"], got["input_price"], got["output_price"]) != expected:
            return None
        return form

    def _usage(self, kwargs: dict[str, int], model_price: ModelPrice) -> Usage:
        """Build genai-prices' Usage, with explicit zeros where it would infer them.

        genai-prices infers every priced unit the usage does not report (web
        searches, ...), which is most of its cost per call; whether the inference
        gives 0 depends only on which units are reported as > 0, so it is done
        once per shape and cached. Units whose inference would fail are left out,
        so genai-prices still raises as it would have.
        """
        key_map = self._price_keys
        if key_map is None:
            return Usage(**kwargs)
        priced = frozenset(key_map[k] for k, v in model_price.__dict__.items()
                           if v is not None and k in key_map)
        positive = frozenset(k for k, v in kwargs.items() if v > 0)
        fill = self._zero_fill.get((priced, positive))
        if fill is None:
            probe = Usage(**dict.fromkeys(positive, 1))
            zeros: list[str] = []
            for usage_key in sorted(priced - positive):
                try:
                    if getattr(probe, usage_key) == 0:
                        zeros.append(usage_key)
                except ValueError:
                    continue
            fill = self._zero_fill[(priced, positive)] = tuple(zeros)
        if fill:
            kwargs = {**dict.fromkeys(fill, 0), **kwargs}
        return Usage(**kwargs)

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

    def _find_override(self, model: str, provider: str | None, gp_provider: str | None) -> _Rates | None:
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

    def _price_override(self, rates: _Rates, usage: TokenUsage | None, ctx: Mapping[str, str],
                        tier_label: str | None, duration_s: float | None) -> Price:
        zero = Decimal(0)
        input_usd = output_usd = zero
        if usage is None:
            if rates.has_token_prices and not rates.free_tokens:
                return _unpriced(semconv.UNPRICED_MISSING_USAGE, None, tier_label)
        else:
            try:
                _usage_kwargs(usage)
            except _UnpricedUsage as exc:
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
            total += rates.per_second * _decimal(duration_s)
        table = f"override:{self._label}#{rates.key}"
        matched: bool | None = None
        if ctx:
            matched = False
            factor = self._factor(ctx, set(ctx))
            if factor is not None:
                input_usd, output_usd, total = input_usd * factor, output_usd * factor, total * factor
                table = f"{table} x{factor} {tier_label} tier"
        return Price(_to_float(total), _to_float(input_usd), _to_float(output_usd),
                     semconv.SOURCE_OVERRIDE, table, None, tier_label, matched)

    # --- spans from other SDKs -----------------------------------------------

    def price_attributes(
        self,
        attributes: Mapping[str, object],
        *,
        when: datetime | None = None,
        duration_s: float | None = None,
    ) -> dict[str, str | float | bool]:
        """The cost attributes for an LLM span another SDK sent without them.

        Returns ``{}`` for spans that are not LLM calls (an agent span's usage is
        the sum of its children's and must not be priced again), for spans that
        are neither usage nor model, and for spans already priced. Otherwise the
        result carries ``runtrace.cost.priced_at_ingest=True``.
        """
        attrs = attributes
        if semconv.COST_USD in attrs or semconv.COST_SOURCE in attrs:
            return {}
        operation = attrs.get(semconv.GEN_AI_OPERATION_NAME)
        if operation is not None and operation not in semconv.LLM_OPERATIONS:
            return {}
        input_tokens = _count(attrs, semconv.GEN_AI_USAGE_INPUT_TOKENS, semconv.GEN_AI_USAGE_PROMPT_TOKENS)
        output_tokens = _count(attrs, semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
                               semconv.GEN_AI_USAGE_COMPLETION_TOKENS)
        model = _text(attrs, semconv.GEN_AI_RESPONSE_MODEL, semconv.GEN_AI_REQUEST_MODEL)
        if input_tokens is None and output_tokens is None and model is None:
            return {}
        usage: TokenUsage | None = None
        if input_tokens is not None or output_tokens is not None:
            cache_read = _count(attrs, semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS) or 0
            cache_write = _count(attrs, semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
                                 semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS) or 0
            total_input = input_tokens or 0
            if cache_read + cache_write > total_input:
                # Per semconv the input count is the total; a count smaller than its
                # own cached parts can only be the exclusive (Anthropic API) count.
                total_input += cache_read + cache_write
            out = output_tokens or 0
            usage = TokenUsage(
                input_tokens=total_input,
                output_tokens=out,
                cache_read_tokens=cache_read,
                cache_write_tokens=cache_write,
                reasoning_tokens=min(_count(attrs, semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS) or 0, out),
            )
        provider = _text(attrs, semconv.GEN_AI_PROVIDER_NAME, semconv.GEN_AI_SYSTEM)
        tier = _text(attrs, semconv.GEN_AI_OPENAI_RESPONSE_SERVICE_TIER, semconv.OPENAI_RESPONSE_SERVICE_TIER)
        result = self.price(usage, model=model, provider=provider, service_tier=tier, when=when,
                            duration_s=duration_s).attributes()
        result[semconv.COST_PRICED_AT_INGEST] = True
        return result


def _count(attrs: Mapping[str, object], *names: str) -> int | None:
    """The first of ``names`` that holds a token count (int, integral float or digits)."""
    for name in names:
        value = attrs.get(name)
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value if value >= 0 else None
        if isinstance(value, float) and value.is_integer() and value >= 0:
            return int(value)
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
    return None


def _text(attrs: Mapping[str, object], *names: str) -> str | None:
    for name in names:
        value = attrs.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _matched_context_keys(info: ModelInfo, ts: datetime, applied: Mapping[str, str] | None) -> set[str]:
    """The context keys that an active genai-prices price variant matched.

    Matching on the variants themselves, rather than comparing the resolved price
    with the standard one, also counts a variant that happens to cost the same.
    """
    if not applied:
        return set()
    variants = getattr(info, "price_variants", None)
    if variants is None:  # not how this genai-prices version stores them: compare prices
        return set(applied) if info.get_prices(ts, applied) != info.get_prices(ts) else set()
    keys: set[str] = set()
    for variant in variants:
        if variant.constraint is not None and not variant.constraint.active(ts):
            continue
        if all(applied.get(k) == v for k, v in variant.when.items()):
            keys.update(variant.when)
    return keys


def _table() -> str:
    snapshot = data_snapshot.get_snapshot()
    if snapshot.from_auto_update:
        return f"{GENAI_PRICES_TABLE} (data of {snapshot.timestamp.isoformat(timespec='seconds')})"
    return GENAI_PRICES_TABLE


def _unpriced(reason: str, table: str | None, tier_label: str | None) -> Price:
    return Price(None, None, None, semconv.SOURCE_UNKNOWN, table, reason, tier_label, None)


def _invalid(message: str, tier_label: str | None) -> Price:
    logger.debug("runtrace: usage not priced: %s", message)
    return _unpriced(semconv.UNPRICED_INVALID_USAGE, None, tier_label)


# --- configuration ---------------------------------------------------------------

def load_prices_file(path: str | os.PathLike[str]) -> Pricer:
    """Read an overrides file (format in the module docstring) into a Pricer."""
    where = os.fspath(path)
    try:
        with open(where, "rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
    except OSError as exc:
        raise ValueError(f"{where}: cannot read prices file: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{where}: not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - {"models", "tiers"})
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (expected [models.\"NAME\"] and [tiers])")
    models = data.get("models", {})
    tiers = data.get("tiers", {})
    if not isinstance(models, dict):
        raise ValueError(f"{where}: 'models' must be a table of [models.\"NAME\"] tables")
    if not isinstance(tiers, dict):
        raise ValueError(f"{where}: 'tiers' must be a table of tier = multiplier")
    # Validate here so that the message names the TOML key as written.
    overrides: dict[str, Mapping[str, float]] = {}
    for key, value in models.items():
        _parse_override(f"{where}: [models.\"{key}\"]", key, value)
        overrides[key] = value
    multipliers: dict[str, float] = {}
    for tier, value in tiers.items():
        if _norm_tier(tier) in _STANDARD_TIERS:
            raise ValueError(f"{where}: [tiers] {tier!r} is the standard tier; it has no multiplier")
        _parse_multiplier(f"{where}: [tiers] {tier}", value)
        multipliers[tier] = value
    return Pricer(overrides, multipliers, source_label=where)


_default: Pricer | None = None
_default_lock = ForkSafeLock()


def default_pricer() -> Pricer:
    """The Pricer in effect: ``instrument(prices=...)``'s while instrumented (``_state``).

    Otherwise the process's own: ``RUNTRACE_PRICES`` if set, else plain genai-prices, built once.
    """
    global _default
    installed = _state.current()
    if installed is not None:
        return installed.pricer
    pricer = _default
    if pricer is not None:
        return pricer
    with _default_lock:
        if _default is None:
            path = os.environ.get(semconv.ENV_PRICES)
            _default = load_prices_file(path) if path else Pricer()
        return _default


def set_default_pricer(pricer: Pricer) -> None:
    """Replace the process's own Pricer (used while not instrumented; ``instrument(prices=...)`` wins)."""
    global _default
    if not isinstance(pricer, Pricer):
        raise TypeError(f"expected a Pricer, got {type(pricer).__name__}")
    with _default_lock:
        _default = pricer
