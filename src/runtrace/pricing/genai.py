"""genai-prices, through its public API only, with per-price-set caches that keep a call's pricing arithmetic.

A genai-prices release may change anything private (``units._get_registry``,
``UnitRegistry._reported_usage_keys``, a ``ModelPrice``'s ``__dict__``), so
this module reads only what the package exports: ``data_snapshot.get_snapshot()``
and ``DataSnapshot.find_provider_model`` for the model, ``ModelInfo.get_prices``
and ``price_variants`` for the prices in force, ``ModelPrice.calc_price`` for
the dollars, ``ModelPrice(**prices)`` and its prices read by name, and the unit
definitions genai-prices exports as data (``data_units.unit_data``, parsed by
its public ``units.UnitRegistry``: each unit's usage key, price key, ``per``
and dimensions).

What makes it fast is :class:`PriceSet`: the prices a model charges, read once
per distinct set (found by identity, else by value) and kept with what the
per-call path needs: whether every price is flat, which usage keys it prices,
and (in :class:`runtrace.pricing.Pricer`) the affine form of ``calc_price``
learned from ``calc_price`` itself.
"""

from __future__ import annotations

import importlib
import warnings
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Final

import genai_prices
from genai_prices import Usage, data_snapshot
from genai_prices.data_units import unit_data
from genai_prices.types import (
    CalcPrice,
    ModelInfo,
    ModelPrice,
    StartDateConstraint,
    TieredPrices,
    TimeOfDateConstraint,
)
from genai_prices.units import UnitDef, UnitRegistry

from .._forksafe import first_use

__all__ = ["GENAI_PRICES_TABLE", "LinearForm", "PriceSet", "apply_form", "learn_form", "matched_context_keys",
           "price_set", "region", "split_by_unit", "stable_window", "table", "usage_for"]

GENAI_PRICES_TABLE: Final = f"genai-prices {genai_prices.__version__}"

# The units genai-prices prices (tokens by direction, modality and cache use; requests; seconds ...),
# from the data it exports. Built once: the bundled definitions do not change while the process runs.
_UNITS: Final[tuple[UnitDef, ...]] = tuple(UnitRegistry(unit_data).units.values())


def _reportable(usage_key: str) -> bool:
    """Whether ``Usage`` accepts the key as reported usage (it warns for those it does not, e.g. ``requests``)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Usage(**{usage_key: 0})
    return not caught


_REPORTABLE: Final = frozenset(unit.usage_key for unit in _UNITS if _reportable(unit.usage_key))


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: one object per distinct price set
class PriceSet:
    """The prices one model charges at one time and context, read by name once.

    ``flat`` when every price is a plain Decimal (no tiers by prompt length):
    then ``calc_price`` is affine in the token counts for a given usage shape.
    ``affine`` also for tiered prices (``TieredPrices``, public: a base and
    tiers starting at a total input count, each applying to *all* tokens once
    crossed): between two of its ``thresholds`` every price is constant, so
    ``calc_price`` is affine there too, region by region.
    """

    prices: ModelPrice  # genai-prices' own object, as first seen
    values: tuple[tuple[str, Decimal | TieredPrices], ...]  # price key -> price, the keys it prices
    flat: bool
    affine: bool
    thresholds: tuple[int, ...]  # the tiers' starts, ascending: total input above one changes the prices
    usage_keys: frozenset[str]  # the reportable usage keys it prices
    dimensions: Mapping[str, Mapping[str, str]]  # price key -> the unit's dimensions


def _plain_tiers(value: object) -> bool:
    return (isinstance(value, TieredPrices) and type(value.base) is Decimal
            and all(type(t.start) is int and t.start >= 0 and type(t.price) is Decimal for t in value.tiers))


_by_id: dict[int, tuple[ModelPrice, PriceSet]] = {}  # kept with its object, so an id stays its own
_by_value: dict[str, PriceSet] = {}


def price_set(prices: ModelPrice) -> PriceSet:
    """The :class:`PriceSet` of genai-prices' ``prices``: by identity (a model's standard prices are
    one object), else by value (a price context resolves to a fresh copy on every call)."""
    found = _by_id.get(id(prices))
    if found is not None and found[0] is prices:
        return found[1]
    key = repr(prices)  # public, and names every price it holds with its value
    known = _by_value.get(key)
    if known is None:
        values = tuple((unit.price_key, value) for unit in _UNITS
                       if (value := getattr(prices, unit.price_key, None)) is not None)
        priced = {key for key, _ in values}
        tiered = [value for _, value in values if isinstance(value, TieredPrices)]
        known = PriceSet(
            prices=prices,
            values=values,
            flat=not tiered and all(type(value) is Decimal for _, value in values),
            affine=all(type(value) is Decimal or _plain_tiers(value) for _, value in values),
            thresholds=tuple(sorted({tier.start for value in tiered for tier in value.tiers})),
            usage_keys=frozenset(u.usage_key for u in _UNITS if u.price_key in priced and u.usage_key in _REPORTABLE),
            dimensions={u.price_key: u.dimensions for u in _UNITS if u.price_key in priced},
        )
        if len(_by_value) > 4096:  # bounded: a program prices a handful of models
            _by_value.clear()
        _by_value[key] = known
    if len(_by_id) > 1024:
        _by_id.clear()
    _by_id[id(prices)] = (prices, known)
    return known


_zero_fill: dict[tuple[frozenset[str], frozenset[str]], tuple[str, ...]] = {}


def usage_for(kwargs: Mapping[str, int], prices: PriceSet) -> Usage:
    """genai-prices' Usage, with explicit zeros where it would infer them.

    genai-prices infers every priced unit the usage does not report (web
    searches, ...), which is most of its cost per call; whether the inference
    gives 0 depends only on which units are reported as > 0, so it is done
    once per shape and cached. Units whose inference would fail are left out,
    so genai-prices still raises as it would have.
    """
    positive = frozenset(k for k, v in kwargs.items() if v > 0)
    key = (prices.usage_keys, positive)
    fill = _zero_fill.get(key)
    if fill is None:
        probe = Usage(**dict.fromkeys(positive, 1))
        zeros: list[str] = []
        for usage_key in sorted(prices.usage_keys - positive):
            try:
                if getattr(probe, usage_key) == 0:
                    zeros.append(usage_key)
            except ValueError:
                continue
        if len(_zero_fill) > 4096:
            _zero_fill.clear()
        fill = _zero_fill[key] = tuple(zeros)
    return Usage(**{**dict.fromkeys(fill, 0), **kwargs}) if fill else Usage(**kwargs)


# (constant (total, input, output), ((usage key, slopes (total, input, output)), ...))
LinearForm = tuple[tuple[Decimal, Decimal, Decimal], tuple[tuple[str, tuple[Decimal, Decimal, Decimal]], ...]]
# Probe points inside the valid region (cache parts within the input, reasoning within the output).
_PROBE_BASE: Final = {"input_tokens": 1000, "output_tokens": 1000, "cache_read_tokens": 10,
                      "cache_write_tokens": 20, "cache_write_5m_tokens": 5, "cache_write_1h_tokens": 5,
                      "output_reasoning_tokens": 10}
_PROBE_CHECK: Final = {"input_tokens": 3001, "output_tokens": 777, "cache_read_tokens": 17,
                       "cache_write_tokens": 41, "cache_write_5m_tokens": 13, "cache_write_1h_tokens": 7,
                       "output_reasoning_tokens": 33}


def apply_form(form: LinearForm, kwargs: Mapping[str, int]) -> CalcPrice:
    """``calc_price``'s result for ``kwargs`` from its learned affine form, in exact Decimals."""
    (total, input_usd, output_usd), slopes = form
    for key, (d_total, d_input, d_output) in slopes:
        count = kwargs[key]
        total += d_total * count
        input_usd += d_input * count
        output_usd += d_output * count
    return {"input_price": input_usd, "output_price": output_usd, "total_price": total}


def region(prices: PriceSet, input_tokens: int) -> int:
    """How many of the price set's tier thresholds a call's total input is above (0 for flat prices)."""
    return bisect_left(prices.thresholds, input_tokens) if prices.thresholds else 0


def learn_form(kwargs: Mapping[str, int], calc: Callable[[dict[str, int]], CalcPrice],
               thresholds: tuple[int, ...] = ()) -> LinearForm | None:
    """The affine form of ``calc`` (an affine price set's ``calc_price``) for the shape and tier region of ``kwargs``.

    Learned at one base point and one step per positive count, then checked on
    another point, all inside the region of total input that ``kwargs`` is in;
    None when the region is too narrow for the probes, a probe fails or the
    check disagrees (then the caller keeps calling ``calc_price``, which raises
    what it raises).
    """
    positive = [k for k, v in kwargs.items() if v > 0]
    if any(k not in _PROBE_BASE for k in positive):
        return None
    base = {k: _PROBE_BASE[k] if v > 0 else 0 for k, v in kwargs.items()}
    check = {k: _PROBE_CHECK[k] if v > 0 else 0 for k, v in kwargs.items()}
    region_of = bisect_left(thresholds, kwargs.get("input_tokens", 0)) if thresholds else 0
    if region_of:  # above a threshold: probe just above it, and stay below the next one
        low = thresholds[region_of - 1]
        base["input_tokens"] += low
        check["input_tokens"] += low
        if region_of < len(thresholds) and check["input_tokens"] > thresholds[region_of]:
            return None
    elif thresholds and check["input_tokens"] > thresholds[0]:
        return None

    def point(usage: dict[str, int]) -> tuple[Decimal, Decimal, Decimal]:
        out = calc(usage)
        return out["total_price"], out["input_price"], out["output_price"]

    try:
        at_base = point(base)
        slopes = []
        for k in positive:
            bumped = point({**base, k: base[k] + 1})
            slopes.append((k, (bumped[0] - at_base[0], bumped[1] - at_base[1], bumped[2] - at_base[2])))
        const = tuple(at_base[i] - sum((s[i] * base[k] for k, s in slopes), Decimal(0)) for i in range(3))
        form: LinearForm = ((const[0], const[1], const[2]), tuple(slopes))
        expected = point(check)
    except ValueError:
        return None
    got = apply_form(form, check)
    if (got["total_price"], got["input_price"], got["output_price"]) != expected:
        return None
    return form


def split_by_unit(prices: PriceSet, usage: Usage) -> list[tuple[Mapping[str, str], Decimal]]:
    """What each priced unit of ``prices`` charges for ``usage``: (the unit's dimensions, dollars), nonzero only.

    genai-prices' public API gives totals, not per-unit amounts; a unit's
    amount is the total less the total with that one price at zero (the unit
    stays priced, so the usage decomposes the same way). Raises what
    ``calc_price`` raises.
    """
    full = dict(prices.values)
    total = ModelPrice(**full).calc_price(usage)["total_price"]
    out: list[tuple[Mapping[str, str], Decimal]] = []
    for key in full:
        without = ModelPrice(**{**full, key: Decimal(0)}).calc_price(usage)["total_price"]
        if total != without:
            out.append((prices.dimensions[key], total - without))
    return out


def matched_context_keys(info: ModelInfo, ts: datetime, applied: Mapping[str, str] | None) -> set[str]:
    """The context keys that an active genai-prices price variant matched.

    Matching on the variants themselves (``ModelInfo.price_variants``), rather
    than comparing the resolved price with the standard one, also counts a
    variant that happens to cost the same.
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


_ALWAYS: Final = (datetime.min.replace(tzinfo=timezone.utc), datetime.max.replace(tzinfo=timezone.utc))
_DAY: Final = timedelta(days=1)


def _utc_time_of_day(value: time) -> timedelta:
    """A constraint's time of day as an offset from UTC midnight (naive times are UTC, as genai-prices reads them)."""
    if value.tzinfo is not None:
        value = datetime.combine(date(1970, 1, 1), value).astimezone(timezone.utc).time()
    return timedelta(hours=value.hour, minutes=value.minute, seconds=value.second, microseconds=value.microsecond)


def stable_window(info: ModelInfo, ts: datetime, applied: Mapping[str, str] | None) -> tuple[datetime, datetime] | None:
    """The instants ``[lo, hi)`` around ``ts`` (aware) over which ``info``'s prices and matched variants stay as at ``ts``.

    What the Pricer caches per (provider, model, tier) holds only inside this
    window. genai-prices makes a price depend on the call's time through two
    public constraint kinds: a start date (active from a UTC date on: constant
    over a UTC day) and a daily time-of-day interval (active between two UTC
    times of day: constant between them). With neither, the prices hold at any
    time; with either, the window is the UTC day of ``ts`` cut at every
    time-of-day boundary. None for a constraint of another kind (nothing is
    cached for that model: every call resolves its prices afresh).
    """
    constraints = [] if isinstance(info.prices, ModelPrice) else [p.constraint for p in info.prices]
    if applied:
        constraints.extend(v.constraint for v in getattr(info, "price_variants", None) or ())
    constraints = [c for c in constraints if c is not None]
    if not constraints:
        return _ALWAYS
    utc = ts.astimezone(timezone.utc)
    lo = utc.replace(hour=0, minute=0, second=0, microsecond=0)
    hi = lo + _DAY
    midnight = lo
    for constraint in constraints:
        if type(constraint) is StartDateConstraint:
            continue  # the UTC date only: constant over the day
        if type(constraint) is not TimeOfDateConstraint:
            return None
        for boundary in (constraint.start_time, constraint.end_time):
            at = midnight + _utc_time_of_day(boundary)
            if at <= utc:
                lo = max(lo, at)
            else:
                hi = min(hi, at)
    return lo, hi


def table() -> str:
    """The price table a genai-prices price came from (with the data's time when it was auto-updated)."""
    snapshot = data_snapshot.get_snapshot()
    if snapshot.from_auto_update:
        return f"{GENAI_PRICES_TABLE} (data of {snapshot.timestamp.isoformat(timespec='seconds')})"
    return GENAI_PRICES_TABLE


# genai-prices imports these on its first price, from whichever thread prices first.
_LAZY_MODULES: Final = ("genai_prices.data", "genai_prices.decompose", "genai_prices.validation")


def import_lazy_modules() -> None:
    """Import what genai-prices would import on its first price, now and in this thread.

    A program that forks while another thread prices its first call would leave
    a child with a module's import lock held and hang it at its first price
    (``_forksafe.first_use``); ``instrument()`` calls this so no first import is left.
    """
    with first_use():
        for name in _LAZY_MODULES:
            importlib.import_module(name)
