"""Fuzzing the pricing fast path: the learned affine form must give genai-prices' exact answer.

``Pricer._calc`` replaces genai-prices' ``calc_price`` by a per-(prices, usage
shape) affine form learned from ``calc_price`` itself. These tests price every
model of the bundled price table, and hypothesis-drawn usages on a sample of
them, once through the fast path and once through ``calc_price`` directly, and
require identical ``Price`` objects (dollars to the last digit, source, tier,
unpriced reason), including usages genai-prices rejects.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest
from genai_prices import data_snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtrace import pricing

WHEN = datetime(2026, 11, 1, tzinfo=timezone.utc)


class SlowPricer(pricing.Pricer):
    """The reference: genai-prices' calc_price on every call, as before the fast path."""

    def _calc(self, kwargs: dict[str, int], model_price: Any) -> Any:
        return model_price.calc_price(self._usage(kwargs, model_price))


def _models() -> list[tuple[str, str]]:
    snapshot = data_snapshot.get_snapshot()
    return sorted({(p.id, m.id) for p in snapshot.providers for m in p.models})


MODELS = _models()
USAGES = [
    pricing.TokenUsage(input_tokens=1200, output_tokens=80),
    pricing.TokenUsage(input_tokens=1200, output_tokens=80, cache_read_tokens=256),
    pricing.TokenUsage(input_tokens=250_000, output_tokens=9_000, cache_read_tokens=100_000,
                       cache_write_tokens=20_000, reasoning_tokens=4_000),
    pricing.TokenUsage(input_tokens=5_000, output_tokens=300, cache_write_tokens=3_000,
                       cache_write_5m_tokens=1_000, cache_write_1h_tokens=2_000),
    pricing.TokenUsage(input_tokens=0, output_tokens=0),
    pricing.TokenUsage(input_tokens=7, output_tokens=0, reasoning_tokens=0),
]


def _both(usage: pricing.TokenUsage, provider: str, model: str, tier: str | None = None
          ) -> tuple[pricing.Price, pricing.Price]:
    fast, slow = pricing.Pricer(), SlowPricer()
    kwargs = dict(model=model, provider=provider, service_tier=tier, when=WHEN, duration_s=1.5)
    return fast.price(usage, **kwargs), slow.price(usage, **kwargs)


@pytest.mark.slow
def test_every_model_of_the_price_table_prices_the_same_through_the_fast_path() -> None:
    fast, slow = pricing.Pricer(), SlowPricer()
    compared = priced = 0
    for provider, model in MODELS:
        for usage in USAGES:
            for tier in (None, "flex", "priority", "batch"):
                kwargs = dict(model=model, provider=provider, service_tier=tier, when=WHEN, duration_s=1.5)
                a, b = fast.price(usage, **kwargs), slow.price(usage, **kwargs)
                assert a == b, (provider, model, usage, tier)
                compared += 1
                priced += a.total_usd is not None
    assert compared == len(MODELS) * len(USAGES) * 4
    assert priced > compared // 2  # most of the table is priced: the comparison is not vacuous
    # The fast path was learned for flat prices and stayed off for tiered ones.
    assert any(form is not None for form in fast._linear.values())


def test_a_learned_form_reproduces_the_decimals_not_just_the_floats() -> None:
    fast = pricing.Pricer()
    usage = pricing.TokenUsage(input_tokens=123_457, output_tokens=6_789, cache_read_tokens=100_003)
    fast.price(usage, model="gpt-4o-mini", provider="openai", when=WHEN)
    (key, form), = [(k, f) for k, f in fast._linear.items() if f is not None]
    found = fast._lookup("openai", "gpt-4o-mini")
    assert not isinstance(found, str)
    model_price = found[1].get_prices(WHEN)
    kwargs = {"input_tokens": 123_457, "output_tokens": 6_789, "cache_read_tokens": 100_003,
              "cache_write_tokens": 0}
    reference = model_price.calc_price(fast._usage(dict(kwargs), model_price))
    got = fast._calc(dict(kwargs), model_price)
    for part in ("total_price", "input_price", "output_price"):
        assert got[part] == reference[part]
        assert isinstance(got[part], Decimal)
    # gpt-4o-mini: $0.15 in, $0.075 cached, $0.60 out per million tokens.
    assert reference["total_price"] == (Decimal(23_454) * Decimal("0.15") + Decimal(100_003) * Decimal("0.075")
                                        + Decimal(6_789) * Decimal("0.6")) / 1_000_000


token_counts = st.integers(min_value=0, max_value=3_000_000)


@st.composite
def usages(draw: st.DrawFn) -> pricing.TokenUsage:
    """Valid and invalid usages alike: parts may exceed their totals, which genai-prices rejects."""
    total_in = draw(token_counts)
    out = draw(token_counts)
    write = draw(st.one_of(st.just(0), token_counts))
    split = draw(st.booleans())
    five = draw(st.integers(0, max(write, 1))) if split else None
    return pricing.TokenUsage(
        input_tokens=total_in, output_tokens=out,
        cache_read_tokens=draw(st.one_of(st.just(0), st.integers(0, max(total_in, 1)))),
        cache_write_tokens=write,
        cache_write_5m_tokens=five, cache_write_1h_tokens=(write - five if five is not None and five <= write
                                                           else None),
        reasoning_tokens=draw(st.one_of(st.just(0), st.integers(0, max(out, 1)))),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(usage=usages(), model=st.sampled_from(MODELS),
       tier=st.sampled_from([None, "default", "flex", "priority", "batch", "scale"]))
def test_random_usages_price_the_same_through_the_fast_path(usage: pricing.TokenUsage, model: tuple[str, str],
                                                            tier: str | None) -> None:
    fast, slow = _both(usage, model[0], model[1], tier)
    assert fast == slow


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-20250514", "gemini-2.5-pro"])
def test_one_pricer_reused_across_shapes_agrees_with_calc_price(model: str) -> None:
    """The same Pricer learns several shapes in a row; none leaks into another."""
    fast, slow = pricing.Pricer(), SlowPricer()
    for usage in USAGES * 2:
        a = fast.price(usage, model=model, provider=None, when=WHEN)
        b = slow.price(usage, model=model, provider=None, when=WHEN)
        assert a == b
