"""A user's prices: the overrides and tier multipliers, parsed and validated once, with errors naming the key.

Two doors lead here, ``instrument(prices={...})`` (a mapping) and a TOML file
(``RUNTRACE_PRICES`` or ``instrument(prices="prices.toml")``, format in
:mod:`runtrace.pricing`); both end as :class:`Rates` in exact Decimals, so
that a negotiated $0.4 per million adds up to the cent. Nothing here prices a
call: :mod:`.pricer` does, with what this module returns.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from .types import ModelOverride

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["STANDARD_TIERS", "Rates", "norm_tier", "parse_multipliers", "parse_overrides", "read_prices_file"]

# Served tiers that mean "the standard price" (OpenAI default/auto, Anthropic
# standard, Groq on_demand); anything else is looked up as a tier.
STANDARD_TIERS: Final = frozenset({"default", "auto", "standard", "standard_only", "on_demand"})
FIELDS: Final = ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok", "per_second")


@dataclass(frozen=True, slots=True)
class Rates:
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

    def as_override(self) -> ModelOverride:
        """The rates as the user's :class:`ModelOverride` (token prices None when only per_second was given)."""
        def opt(value: Decimal) -> float | None:
            return float(value) if self.has_token_prices else None
        return ModelOverride(input_per_mtok=opt(self.input), output_per_mtok=opt(self.output),
                             cache_read_per_mtok=opt(self.cache_read), cache_write_per_mtok=opt(self.cache_write),
                             per_second=None if self.per_second is None else float(self.per_second))


def decimal(value: float | int) -> Decimal:
    """A user's number as Decimal; repr() keeps the float as written (0.4, not 0.40000000000000002)."""
    return Decimal(value) if isinstance(value, int) else Decimal(repr(float(value)))


def norm_tier(tier: object) -> str | None:
    """A service tier as compared everywhere: stripped, lower case, None when empty or not text."""
    if not isinstance(tier, str):
        return None
    tier = tier.strip().lower()
    return tier or None


def _check_price(where: str, name: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValueError(f"{where}: {name} must be a number, got {value!r}")
    number = value if isinstance(value, Decimal) else decimal(value)
    if not number.is_finite() or number < 0:
        raise ValueError(f"{where}: {name} must be a finite number >= 0, got {value!r}")
    return number


def _parse_override(where: str, key: str, value: object) -> Rates:
    if isinstance(value, ModelOverride):
        fields: dict[str, object] = {name: getattr(value, name) for name in FIELDS}
        fields = {name: v for name, v in fields.items() if v is not None}
    elif isinstance(value, Mapping):
        fields = dict(value)
        unknown = sorted(str(name) for name in fields if name not in FIELDS)
        if unknown:
            raise ValueError(f"{where}: unknown price field {unknown[0]!r} (expected {', '.join(FIELDS)})")
    else:
        raise ValueError(f"{where}: expected a table of prices ({', '.join(FIELDS)}), got {value!r}")
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
    return Rates(
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


def parse_overrides(overrides: Mapping[str, Mapping[str, float] | ModelOverride] | None,
                    label: str) -> dict[str, Rates]:
    """``Pricer(overrides=...)``: model key (lower case) -> its rates; a bad entry raises naming it."""
    parsed: dict[str, Rates] = {}
    for key, value in (overrides or {}).items():
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"{label}: override key must be a model name, got {key!r}")
        norm = key.strip().lower()
        if norm in parsed:
            raise ValueError(f"{label}: override {key!r} is given twice")
        parsed[norm] = _parse_override(f"{label}: override {key!r}", key, value)
    return parsed


def parse_multipliers(tier_multipliers: Mapping[str, float] | None, label: str) -> dict[str, Decimal]:
    """``Pricer(tier_multipliers=...)``: tier (lower case) -> multiplier; the standard tier has none."""
    parsed: dict[str, Decimal] = {}
    for tier, multiplier in (tier_multipliers or {}).items():
        norm = norm_tier(tier)
        if norm is None:
            raise ValueError(f"{label}: tier multiplier key must be a tier name, got {tier!r}")
        if norm in STANDARD_TIERS:
            raise ValueError(f"{label}: tier {tier!r} is the standard tier; it has no multiplier")
        parsed[norm] = _parse_multiplier(f"{label}: tier {tier!r}", multiplier)
    return parsed


def read_prices_file(path: str | os.PathLike[str]) -> tuple[dict[str, Mapping[str, float]], dict[str, float], str]:
    """An overrides file's ``[models]`` and ``[tiers]``, validated so that a message names the TOML key as written.

    Returns (overrides, multipliers, the path as the source label), ready for ``Pricer(...)``.
    """
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
    overrides: dict[str, Mapping[str, float]] = {}
    for key, value in models.items():
        _parse_override(f"{where}: [models.\"{key}\"]", key, value)
        overrides[key] = value
    multipliers: dict[str, float] = {}
    for tier, value in tiers.items():
        if norm_tier(tier) in STANDARD_TIERS:
            raise ValueError(f"{where}: [tiers] {tier!r} is the standard tier; it has no multiplier")
        _parse_multiplier(f"{where}: [tiers] {tier}", value)
        multipliers[tier] = value
    return overrides, multipliers, where
