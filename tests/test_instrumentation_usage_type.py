"""One usage type: what a provider module reads is what the Pricer prices, with no copy between.

Claude Haiku 4.5 list prices per million tokens: $1 input, $0.10 cache read,
$1.25 cache write (5 minutes), $5 output.
"""

from __future__ import annotations

import dataclasses

import pytest

from runtrace import pricing
from runtrace.instrumentation import _llm, _usage
from runtrace.pricing import Pricer, TokenUsage

BODY = {"usage": {"input_tokens": 100, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 200,
                  "output_tokens": 50}}


def test_the_provider_modules_usage_is_the_pricers() -> None:
    assert _llm.Usage is pricing.TokenUsage
    usage = _usage.extract(BODY, "anthropic")
    assert type(usage) is TokenUsage
    # Anthropic's input_tokens exclude the cache parts; the one type holds the total.
    assert (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_tokens, usage.output_tokens) == \
        (1300, 1000, 200, 50)
    # 100 x 1 + 1,000 x 0.10 + 200 x 1.25 + 50 x 5 = 700 per million
    assert Pricer().price(usage, model="claude-haiku-4-5", provider="anthropic").total_usd == \
        pytest.approx(0.0007, abs=1e-12)


def test_counts_a_provider_does_not_report_are_none_and_priced_as_zero() -> None:
    unreported = TokenUsage(input_tokens=1000, output_tokens=100)
    assert (unreported.cache_write_tokens, unreported.reasoning_tokens) == (None, None)
    zeros = TokenUsage(input_tokens=1000, output_tokens=100, cache_write_tokens=0, reasoning_tokens=0)
    pricer = Pricer()
    # gpt-4o-mini: 1,000 x 0.15 + 100 x 0.60 = 210 per million, either way
    for usage in (unreported, zeros):
        assert pricer.price(usage, model="gpt-4o-mini", provider="openai").total_usd == \
            pytest.approx(0.00021, abs=1e-12)
    with pytest.raises(dataclasses.FrozenInstanceError):
        unreported.output_tokens = 5  # type: ignore[misc]
