"""The Pricer's per-(provider, model, tier) plans: the same dollars as genai-prices' calc_price, at any time.

A plan keeps what does not depend on the token counts (the prices in force,
the table, the tier match) for the window in which genai-prices' start dates
and time-of-day prices cannot change (``pricing.genai.stable_window``). These
tests price one long sequence of calls with one Pricer (plans reused and
invalidated as the times move across days and time-of-day boundaries) and
compare each result with a fresh Pricer's and with ``genai_prices.calc_price``,
with genai-prices' real time-of-day rule (conftest makes every window hold).
"""

from __future__ import annotations

import importlib.util
import itertools
import random
import sys
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

import genai_prices
import pytest
from genai_prices import Usage
from genai_prices import types as genai_types

from runtrace.pricing import Pricer
from runtrace.pricing.genai import stable_window
from runtrace.pricing.pricer import usage_kwargs
from runtrace.pricing.types import TokenUsage

UTC = timezone.utc


@pytest.fixture
def real_time_of_day(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """genai-prices' own ``TimeOfDateConstraint.active``, from a fresh copy of its module (conftest replaced it)."""
    spec = importlib.util.spec_from_file_location("_genai_types_fresh", genai_types.__file__)
    assert spec is not None and spec.loader is not None
    fresh = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, fresh)  # its dataclasses look their module up
    spec.loader.exec_module(fresh)
    monkeypatch.setattr(genai_types.TimeOfDateConstraint, "active", fresh.TimeOfDateConstraint.active)
    yield


MODELS = [
    ("anthropic", "claude-sonnet-4-5"),  # tiered above 200k input, a batch variant from a start date
    ("anthropic", "claude-haiku-4-5"),
    ("anthropic", "claude-opus-4-1"),
    ("openai", "gpt-4o"),
    ("openai", "gpt-5"),
    ("openai", "gpt-4o-mini"),
    ("deepseek", "deepseek-chat"),  # off-peak 16:30-00:30 UTC
    ("deepseek", "deepseek-v4-flash"),  # start dates and two time-of-day windows
    ("deepseek", "deepseek-v4-pro"),
    ("google", "gemini-2.5-pro"),  # tiered by prompt length
    ("google", "gemini-2.5-flash"),
    ("azure.ai.openai", "gpt-4o"),  # a provider alias, a model borrowed from another provider
]
DAYS = [date(2025, 6, 1), date(2026, 8, 16), date(2026, 8, 17), date(2026, 9, 10), date(2026, 10, 13),
        date(2026, 10, 14), date(2026, 12, 1)]
# Every time-of-day boundary of the models above, a microsecond either side, and some ordinary hours.
CLOCK = [time(0, 0), time(0, 29, 59, 999_999), time(0, 30), time(0, 59, 59, 999_999), time(1, 0), time(3, 59, 59),
         time(4, 0), time(5, 0), time(6, 0), time(9, 59, 59, 999_999), time(10, 0), time(12, 0),
         time(16, 29, 59, 999_999), time(16, 30), time(16, 30, 0, 1), time(23, 59, 59, 999_999)]
USAGES = [
    TokenUsage(input_tokens=1_234, output_tokens=567),
    TokenUsage(input_tokens=50_000, output_tokens=2_000, cache_read_tokens=40_000, cache_write_tokens=5_000),
    TokenUsage(input_tokens=250_000, output_tokens=9_999, cache_read_tokens=100_000, cache_write_tokens=0,
               reasoning_tokens=3_000),
    TokenUsage(input_tokens=7, output_tokens=0, cache_write_tokens=7, cache_write_5m_tokens=3,
               cache_write_1h_tokens=4),
]
TIERS: list[tuple[str | None, bool]] = [(None, False), ("batch", False), (None, True), ("priority", False),
                                        ("flex", False), ("default", False)]


def _calls() -> list[tuple[str, str, datetime, TokenUsage, str | None, bool]]:
    stamps = [datetime.combine(d, t, tzinfo=UTC) for d in DAYS for t in CLOCK]
    stamps += [s.astimezone(timezone(timedelta(hours=5, minutes=30))) for s in stamps[::5]]  # same instants
    calls = [(p, m, ts, u, tier, batch) for (p, m), ts, u, (tier, batch)
             in itertools.product(MODELS, stamps, USAGES[1:2], TIERS[:3])]
    calls += [(p, m, ts, u, tier, batch) for (p, m), ts, u, (tier, batch)
              in itertools.product(MODELS, stamps[::14], USAGES, TIERS)]
    random.Random(14).shuffle(calls)
    # and runs of calls in time order, as a session's records arrive
    calls += sorted(calls[:1000], key=lambda c: (c[0], c[1], c[2]))
    return calls


def test_a_long_lived_pricer_prices_every_call_as_a_fresh_one_and_as_calc_price(real_time_of_day: None) -> None:
    pricer = Pricer()
    compared = matched_calc_price = off_peak = 0
    for provider, model, ts, usage, tier, batch in _calls():
        got = pricer.price(usage, model=model, provider=provider, service_tier=tier, batch=batch, when=ts)
        fresh = Pricer().price(usage, model=model, provider=provider, service_tier=tier, batch=batch, when=ts)
        assert got == fresh, (provider, model, ts, usage, tier, batch)
        compared += 1
        if tier in (None, "default") and not batch and got.total_usd is not None:
            gp_provider = {"azure.ai.openai": "azure"}.get(provider, provider)
            expected = genai_prices.calc_price(Usage(**usage_kwargs(usage)), model, provider_id=gp_provider,
                                               genai_request_timestamp=ts)
            assert got.total_usd == round(float(expected.total_price), 10), (provider, model, ts, usage)
            assert got.input_usd == round(float(expected.input_price), 10)
            assert got.output_usd == round(float(expected.output_price), 10)
            matched_calc_price += 1
            off_peak += model == "deepseek-chat" and not time(0, 30) <= ts.astimezone(UTC).time() < time(16, 30)
    assert compared == 8_740
    assert matched_calc_price == 2_914
    assert off_peak == 72  # deepseek-chat calls in its off-peak window, at half price


def test_deepseek_off_peak_is_priced_by_the_time_of_the_call_with_one_pricer(real_time_of_day: None) -> None:
    pricer = Pricer()
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000)
    day = date(2026, 12, 1)
    figures = [pricer.price(usage, model="deepseek-chat", provider="deepseek",
                            when=datetime.combine(day, t, tzinfo=UTC)).total_usd
               for t in (time(12, 0), time(16, 29, 59, 999_999), time(16, 30), time(23, 0), time(0, 29, 59),
                         time(0, 30), time(12, 0))]
    peak = genai_prices.calc_price(Usage(input_tokens=1_000_000, output_tokens=1_000_000), "deepseek-chat",
                                   provider_id="deepseek",
                                   genai_request_timestamp=datetime.combine(day, time(12), tzinfo=UTC))
    off = genai_prices.calc_price(Usage(input_tokens=1_000_000, output_tokens=1_000_000), "deepseek-chat",
                                  provider_id="deepseek",
                                  genai_request_timestamp=datetime.combine(day, time(17), tzinfo=UTC))
    assert peak.total_price == Decimal("1.37") and off.total_price == Decimal("0.685")
    assert figures == [1.37, 1.37, 0.685, 0.685, 0.685, 1.37, 1.37]


def test_a_priced_call_resolves_the_model_and_its_prices_once_per_window(
        real_time_of_day: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The work that no token count changes is done once per (provider, model, tier) and price window."""
    resolved: list[str] = []
    get_prices = genai_types.ModelInfo.get_prices

    def counting(self: genai_types.ModelInfo, ts: datetime, ctx: genai_types.PriceContext | None = None
                 ) -> genai_types.ModelPrice:
        resolved.append(self.id)
        return get_prices(self, ts, ctx)

    monkeypatch.setattr(genai_types.ModelInfo, "get_prices", counting)
    pricer = Pricer()
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    for i in range(300):  # five hours of calls, one a minute, alternating two models
        usage = TokenUsage(input_tokens=1_000 + i, output_tokens=10 + i, cache_read_tokens=i)
        pricer.price(usage, model="claude-sonnet-4-5", provider="anthropic", when=start + timedelta(minutes=i))
        pricer.price(usage, model="deepseek-chat", provider="deepseek", when=start + timedelta(minutes=i))
    # Claude's prices hold at any time; DeepSeek's change at 16:30 UTC only (09:00 -> 14:00 stays peak).
    assert resolved == ["claude-sonnet-4-5", "deepseek-chat"]
    # At 16:30 the DeepSeek window ends: resolved again, once; then kept for the off-peak window.
    for minute in range(0, 120, 10):
        pricer.price(TokenUsage(input_tokens=5, output_tokens=5), model="deepseek-chat", provider="deepseek",
                     when=datetime(2026, 12, 1, 16, 0, tzinfo=UTC) + timedelta(minutes=minute))
    assert resolved == ["claude-sonnet-4-5", "deepseek-chat", "deepseek-chat"]


def test_the_price_window_follows_genai_prices_constraints() -> None:
    snapshot = genai_prices.data_snapshot.get_snapshot()
    _, chat = snapshot.find_provider_model("deepseek-chat", None, "deepseek", None)
    _, sonnet = snapshot.find_provider_model("claude-sonnet-4-5", None, "anthropic", None)
    at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert stable_window(chat, at, None) == (datetime(2026, 12, 1, 0, 30, tzinfo=UTC),
                                             datetime(2026, 12, 1, 16, 30, tzinfo=UTC))
    assert stable_window(chat, datetime(2026, 12, 1, 20, 0, tzinfo=UTC), None) == (
        datetime(2026, 12, 1, 16, 30, tzinfo=UTC), datetime(2026, 12, 2, 0, 0, tzinfo=UTC))
    lo, hi = stable_window(sonnet, at, None) or (None, None)
    assert lo is not None and hi is not None and lo.year == 1 and hi.year == 9999  # no constraint: any time
    # With a context its batch variant's start date counts: the UTC day.
    assert stable_window(sonnet, at, {"processing": "batch"}) == (datetime(2026, 12, 1, tzinfo=UTC),
                                                                  datetime(2026, 12, 2, tzinfo=UTC))


def test_a_constraint_of_another_kind_is_never_cached_and_naive_times_price_as_utc(
        real_time_of_day: None, monkeypatch: pytest.MonkeyPatch) -> None:
    class Holiday:  # a constraint kind stable_window does not know: prices may change at any time
        def active(self, request_timestamp: datetime) -> bool:
            return request_timestamp.minute % 2 == 0

    snapshot = genai_prices.data_snapshot.get_snapshot()
    _, chat = snapshot.find_provider_model("deepseek-chat", None, "deepseek", None)
    assert not isinstance(chat.prices, genai_types.ModelPrice)
    peak, off = chat.prices[1].prices, chat.prices[0].prices
    odd = [genai_types.ConditionalPrice(prices=peak), genai_types.ConditionalPrice(prices=off, constraint=Holiday())]
    monkeypatch.setattr(chat, "prices", odd)
    assert stable_window(chat, datetime(2026, 12, 1, 12, 0, tzinfo=UTC), None) is None
    pricer = Pricer()
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000)
    got = [pricer.price(usage, model="deepseek-chat", provider="deepseek",
                        when=datetime(2026, 12, 1, 12, minute, tzinfo=UTC)).total_usd for minute in range(4)]
    assert got == [0.685, 1.37, 0.685, 1.37]
    # A naive time is UTC (as genai-prices reads it), priced afresh, and never compared with a kept window.
    naive = pricer.price(usage, model="deepseek-chat", provider="deepseek", when=datetime(2026, 12, 1, 12, 1))
    assert naive.total_usd == 1.37
    assert pricer.price(usage, model="claude-haiku-4-5", provider="anthropic",
                        when=datetime(2026, 12, 1, 12, 1)) == Pricer().price(
        usage, model="claude-haiku-4-5", provider="anthropic", when=datetime(2026, 12, 1, 12, 1, tzinfo=UTC))
