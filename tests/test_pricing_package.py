"""runtrace.pricing as a package on genai-prices' public API: no private reads, one usage reader, the caches.

The per-call arithmetic and every figure are checked by tests/test_pricing.py and
tests/test_fuzz_pricing.py (the fast path against genai-prices' ``calc_price`` over
its whole table); here, what the split into a package promised.
"""

from __future__ import annotations

import ast
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from genai_prices import data_snapshot

from runtrace import price_parts, semconv
from runtrace.pricing import Pricer, TokenUsage, default_pricer

SRC = Path(__file__).resolve().parents[1] / "src" / "runtrace"
NOV = datetime(2026, 11, 1, tzinfo=timezone.utc)
# genai-prices internals the fast path used to read, which a genai-prices release may change.
PRIVATE = {"_get_registry", "_reported_usage_keys", "__dict__", "_collect_resolved_model_prices",
           "_compute_registry_priced_counts", "calc_unit_price"}


def _pricing_sources() -> list[Path]:
    old = SRC / "pricing.py"  # the single module this package replaced
    return [*([old] if old.exists() else []), *sorted((SRC / "pricing").glob("*.py")), SRC / "price_parts.py"]


def test_pricing_reads_only_genai_prices_public_api() -> None:
    found: list[str] = []
    for path in _pricing_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in PRIVATE:
                found.append(f"{path.name}: .{node.attr}")
            elif isinstance(node, ast.Name) and node.id in PRIVATE:
                found.append(f"{path.name}: {node.id}")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("genai_prices"):
                found += [f"{path.name}: from {node.module} import {a.name}" for a in node.names
                          if a.name.startswith("_") or a.name in PRIVATE]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "vars":
                found.append(f"{path.name}: vars()")
    assert found == []


def test_price_attributes_reads_the_openllmetry_cache_and_reasoning_spellings() -> None:
    """One reader for span usage: what the store's normaliser reads, pricing a span directly reads too."""
    attrs = {semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_PROVIDER_NAME: "openai",
             semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini", semconv.GEN_AI_USAGE_INPUT_TOKENS: 10_000,
             semconv.OPENLLMETRY_CACHE_READ_INPUT_TOKENS: 8_000, semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 1_000}
    got = Pricer().price_attributes(attrs, when=NOV)
    # gpt-4o-mini: $0.15 in, $0.075 cached, $0.60 out per million: 2,000 uncached + 8,000 cached + 1,000 out.
    assert (got[semconv.COST_USD], got[semconv.COST_INPUT_USD], got[semconv.COST_OUTPUT_USD]) == (
        0.0015, 0.0009, 0.0006)
    assert got[semconv.COST_PRICED_AT_INGEST] is True


def test_a_price_context_resolves_to_one_price_set_and_one_learned_form() -> None:
    from runtrace.pricing.genai import price_set

    _provider, info = data_snapshot.get_snapshot().find_provider_model("gpt-5.5", None, "openai", None)
    first, again = info.get_prices(NOV, {"service_tier": "priority"}), info.get_prices(NOV, {"service_tier": "priority"})
    assert first is not again  # genai-prices copies the prices for a context on every call
    assert price_set(first) is price_set(again)  # found again by value
    assert price_set(info.get_prices(NOV)) is not price_set(first)
    pricer = Pricer()
    usage = TokenUsage(input_tokens=12_000, output_tokens=900, cache_read_tokens=8_000)
    prices = [pricer.price(usage, model="gpt-5.5", provider="openai", service_tier="priority", when=NOV)
              for _ in range(3)]
    assert len({p.total_usd for p in prices}) == 1
    assert prices[0].tier_matched is True
    assert [form is not None for form in pricer._linear.values()] == [True]


def test_the_per_class_split_of_a_tiered_price_is_genai_prices_arithmetic() -> None:
    prices = default_pricer().target_prices(model="gemini-2.5-pro", provider="google", when=NOV)
    assert prices is not None
    # Above 200k input tokens every token pays the tier price: $2.50 in, $0.25 cached, $15 out per million.
    usage = TokenUsage(250_000, 8_000, cache_read_tokens=50_000, reasoning_tokens=3_000)
    assert price_parts._genai_split(prices, usage) == {
        "input": Decimal("0.5"), "cache_read": Decimal("0.0125"), "output": Decimal("0.12")}
    parts = price_parts.price_parts(default_pricer(), usage, model="gemini-2.5-pro", provider="google", when=NOV)
    assert parts.usd == {"input": 0.5, "cache_read": 0.0125, "output": 0.12}
    assert parts.total_usd == 0.6325
    assert parts.charged_as == {"reasoning": "output"}


class _CalcPricePricer(Pricer):
    """genai-prices' calc_price on every call: the reference the learned forms must equal."""

    def _calc(self, kwargs: dict[str, int], model_price: object) -> object:  # type: ignore[override]
        return model_price.calc_price(self._usage(kwargs, model_price))  # type: ignore[attr-defined]


def test_tiered_prices_are_priced_through_a_learned_form_per_tier_region() -> None:
    """Prices tiered by prompt length are affine between two thresholds: one form a region, the same Decimals."""
    fast, slow = Pricer(), _CalcPricePricer()
    checked = 0
    for model, provider in (("gemini-2.5-pro", "google"), ("claude-sonnet-4-5", "anthropic")):
        for total in (0, 1, 3_000, 199_999, 200_000, 200_001, 203_001, 250_000, 1_000_000):
            for usage in (TokenUsage(total, 900), TokenUsage(total, 900, cache_read_tokens=total // 2,
                                                             reasoning_tokens=300),
                          TokenUsage(total, 7, cache_write_tokens=total // 3, cache_write_5m_tokens=total // 3)):
                a = fast.price(usage, model=model, provider=provider, when=NOV)
                assert a == slow.price(usage, model=model, provider=provider, when=NOV), (model, usage)
                checked += a.total_usd is not None
    assert checked == 2 * 9 * 3
    # gemini-2.5-pro above 200k: $2.50 in, $15 out per million, on every token.
    assert fast.price(TokenUsage(250_000, 900), model="gemini-2.5-pro", provider="google",
                      when=NOV).total_usd == 0.6385
    regions = {key[1] for key, form in fast._linear.items() if form is not None}
    assert regions == {0, 1}  # below and above the 200k threshold, each learned
