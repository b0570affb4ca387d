"""runtrace.pricing: exact dollars from genai-prices 0.2.3, overrides and tiers.

Dates matter: genai-prices' OpenAI tier rates apply from 2026-10-12 and batch
rates from 2026-10-14; before that every tier is priced at standard.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import genai_prices
import pytest

from runtrace import pricing, semconv
from runtrace.pricing import ModelOverride, Price, Pricer, TokenUsage, load_prices_file

NOV = datetime(2026, 11, 15, 12, 0, tzinfo=timezone.utc)  # tier and batch rates in force
SEP = datetime(2026, 9, 1, 12, 0, tzinfo=timezone.utc)  # before them
TABLE = f"genai-prices {genai_prices.__version__}"
DATA = Path(__file__).parent / "data"

# The DESIGN worked example: 12,000 input of which 8,000 cached, 900 output of which 300 reasoning.
WORKED = TokenUsage(input_tokens=12_000, output_tokens=900, cache_read_tokens=8_000, reasoning_tokens=300)
# Anthropic, already totalled: 5,000 plain + 10,000 cache reads + 5,000 cache writes (2,000 5m, 3,000 1h).
SONNET = TokenUsage(input_tokens=20_000, output_tokens=1_000, cache_read_tokens=10_000,
                    cache_write_tokens=5_000, cache_write_5m_tokens=2_000, cache_write_1h_tokens=3_000)


def gpt55(pricer: Pricer, **kw: object) -> Price:
    kw.setdefault("when", NOV)
    return pricer.price(WORKED, model="gpt-5.5", provider="openai", **kw)  # type: ignore[arg-type]


def test_worked_example_gpt55() -> None:
    price = gpt55(Pricer())
    # $5/M on 4,000 plain + $0.50/M on 8,000 cached = 0.0200 + 0.0040; $30/M on 900 output.
    assert price == Price(total_usd=0.051, input_usd=0.024, output_usd=0.027, source=semconv.SOURCE_GENAI_PRICES,
                          price_table=TABLE, unpriced_reason=None, service_tier=None, tier_matched=None)
    assert price.total_usd == 0.051  # exactly, not 0.051000000000000004
    assert price.attributes() == {
        semconv.COST_USD: 0.051,
        semconv.COST_INPUT_USD: 0.024,
        semconv.COST_OUTPUT_USD: 0.027,
        semconv.COST_SOURCE: "genai-prices",
        semconv.COST_PRICE_TABLE: TABLE,
    }


def test_default_tier_is_standard_and_stamped() -> None:
    price = gpt55(Pricer(), service_tier="default")
    assert (price.total_usd, price.service_tier, price.tier_matched) == (0.051, "default", None)
    assert price.attributes()[semconv.COST_SERVICE_TIER] == "default"
    assert semconv.COST_TIER_MATCHED not in price.attributes()


def test_anthropic_cache_reads_and_split_cache_writes() -> None:
    price = Pricer().price(SONNET, model="claude-sonnet-4-5", provider="anthropic", when=NOV)
    # input: 5,000 x $3 + 10,000 x $0.30 + 2,000 x $3.75 (5m write) + 3,000 x $6 (1h write), per M
    #      = 0.015 + 0.003 + 0.0075 + 0.018; output: 1,000 x $15 / M.
    assert (price.input_usd, price.output_usd, price.total_usd) == (0.0435, 0.015, 0.0585)
    assert price.source == semconv.SOURCE_GENAI_PRICES
    # Cache writes cost more than plain input: the same 5,000 tokens as plain input cost 0.0105 less
    # (2,000 x ($3.75 - $3) + 3,000 x ($6 - $3), per M).
    no_writes = Pricer().price(TokenUsage(20_000, 1_000, cache_read_tokens=10_000),
                               model="claude-sonnet-4-5", provider="anthropic", when=NOV)
    assert no_writes.input_usd == 0.033  # 10,000 x $3 + 10,000 x $0.30, per M
    assert round(price.input_usd - no_writes.input_usd, 10) == 0.0105


def test_anthropic_cache_writes_without_ttl_split_are_5m_writes() -> None:
    usage = TokenUsage(20_000, 1_000, cache_read_tokens=10_000, cache_write_tokens=5_000)
    price = Pricer().price(usage, model="claude-sonnet-4-5", provider="anthropic", when=NOV)
    assert price.input_usd == 0.03675  # 0.015 + 0.003 + 5,000 x $3.75 / M
    assert price.total_usd == 0.05175


@pytest.mark.parametrize(("tier", "when", "total", "inp", "out", "matched"), [
    # flex: $2.50 / $0.25 cached / $15 output
    ("flex", NOV, 0.0255, 0.012, 0.0135, True),
    # priority: $12.50 / $1.25 cached / $75 output
    ("priority", NOV, 0.1275, 0.06, 0.0675, True),
    ("priority", SEP, 0.051, 0.024, 0.027, False),  # before the tier rates: standard, flagged
    ("flex", SEP, 0.051, 0.024, 0.027, False),
    ("flx", NOV, 0.051, 0.024, 0.027, False),  # a misspelled tier silently falls back upstream
    ("Priority", NOV, 0.1275, 0.06, 0.0675, True),  # served tiers are compared case-insensitively
])
def test_openai_served_tier(tier: str, when: datetime, total: float, inp: float, out: float,
                            matched: bool) -> None:
    price = gpt55(Pricer(), service_tier=tier, when=when)
    assert (price.total_usd, price.input_usd, price.output_usd) == (total, inp, out)
    assert price.tier_matched is matched
    assert price.service_tier == tier.lower()
    assert price.attributes()[semconv.COST_TIER_MATCHED] is matched


def test_tier_multiplier_only_when_genai_prices_has_no_tier_price() -> None:
    pricer = Pricer(tier_multipliers={"priority": 1.8, "flx": 0.5})
    before = gpt55(pricer, service_tier="priority", when=SEP)
    assert (before.total_usd, before.input_usd, before.output_usd) == (0.0918, 0.0432, 0.0486)  # 0.051 x 1.8
    assert before.tier_matched is False
    assert before.source == semconv.SOURCE_GENAI_PRICES
    assert before.price_table == f"{TABLE} x1.8 priority tier (instrument(prices=...))"
    # Where genai-prices has the tier, its price wins over the multiplier.
    after = gpt55(pricer, service_tier="priority", when=NOV)
    assert (after.total_usd, after.tier_matched, after.price_table) == (0.1275, True, TABLE)
    assert gpt55(pricer, service_tier="flx").total_usd == 0.0255
    # No multiplier configured for flex: standard price, flagged.
    assert gpt55(pricer, service_tier="flex", when=SEP).total_usd == 0.051


def test_tier_of_a_borrowed_model_is_not_matched() -> None:
    # Azure prices gpt-5.5 from OpenAI's table; genai-prices applies no tier context to it.
    price = Pricer().price(WORKED, model="gpt-5.5", provider="azure", service_tier="priority", when=NOV)
    assert (price.total_usd, price.tier_matched) == (0.051, False)


def test_batch() -> None:
    price = gpt55(Pricer(), batch=True)
    assert (price.total_usd, price.input_usd, price.output_usd) == (0.0255, 0.012, 0.0135)
    assert (price.service_tier, price.tier_matched) == ("batch", True)
    early = gpt55(Pricer(), batch=True, when=SEP)
    assert (early.total_usd, early.tier_matched) == (0.051, False)
    halved = gpt55(Pricer(tier_multipliers={"batch": 0.5}), batch=True, when=SEP)
    assert (halved.total_usd, halved.tier_matched) == (0.0255, False)


def test_anthropic_batch_tier_and_unpriced_priority() -> None:
    pricer = Pricer()
    batch = pricer.price(SONNET, model="claude-sonnet-4-5", provider="anthropic", service_tier="batch", when=NOV)
    # Batch: $1.50 plain, $0.15 read, $1.875 write (5m), $3 write (1h), $7.50 output, per M.
    # 0.0075 + 0.0015 + 0.00375 + 0.009 = 0.02175 input; 0.0075 output.
    assert (batch.input_usd, batch.output_usd, batch.total_usd) == (0.02175, 0.0075, 0.02925)
    assert (batch.service_tier, batch.tier_matched) == ("batch", True)
    standard = pricer.price(SONNET, model="claude-sonnet-4-5", provider="anthropic",
                            service_tier="standard", when=NOV)
    assert (standard.total_usd, standard.service_tier, standard.tier_matched) == (0.0585, "standard", None)
    # genai-prices has no Anthropic priority rates: standard price, flagged; then the multiplier.
    priority = pricer.price(SONNET, model="claude-sonnet-4-5", provider="anthropic",
                            service_tier="priority", when=NOV)
    assert (priority.total_usd, priority.tier_matched) == (0.0585, False)
    multiplied = Pricer(tier_multipliers={"priority": 2}).price(
        SONNET, model="claude-sonnet-4-5", provider="anthropic", service_tier="priority", when=NOV)
    assert (multiplied.total_usd, multiplied.input_usd, multiplied.tier_matched) == (0.117, 0.087, False)


def test_unknown_model_and_provider_are_unpriced_not_free() -> None:
    pricer = Pricer()
    for model, provider in [("no-such-model-9", "openai"), ("gpt-5.5", "no-such-provider"),
                            ("my-llama", None), (None, "openai")]:
        price = pricer.price(WORKED, model=model, provider=provider, when=NOV)
        assert price == Price(None, None, None, semconv.SOURCE_UNKNOWN, TABLE, semconv.UNPRICED_UNKNOWN_MODEL,
                              None, None), (model, provider)
        assert price.attributes() == {semconv.COST_SOURCE: "unknown", semconv.COST_PRICE_TABLE: TABLE,
                                      semconv.COST_UNPRICED_REASON: "unknown_model"}
        assert semconv.COST_USD not in price.attributes()


def test_semconv_provider_names_resolve() -> None:
    pricer = Pricer()
    assert pricer.price(WORKED, model="gpt-5.5", provider=None, when=NOV).total_usd == 0.051
    gemini = TokenUsage(100_000, 10_000)
    for provider in ("gcp.gemini", "gcp.vertex_ai", "gcp.gen_ai", "google"):
        # gemini-2.5-pro: $1.25 input, $10 output per M under 200k.
        assert pricer.price(gemini, model="gemini-2.5-pro", provider=provider, when=NOV).total_usd == 0.225


def test_missing_usage() -> None:
    price = Pricer().price(None, model="gpt-5.5", provider="openai", service_tier="flex", when=NOV)
    assert price == Price(None, None, None, semconv.SOURCE_UNKNOWN, None, semconv.UNPRICED_MISSING_USAGE,
                          "flex", None)


def test_contradictory_usage_is_unpriced() -> None:
    pricer = Pricer()
    for usage in (TokenUsage(10, 5, cache_read_tokens=20),
                  TokenUsage(100, 5, cache_write_tokens=10, cache_write_1h_tokens=11),
                  TokenUsage(-1, 5)):
        price = pricer.price(usage, model="gpt-5.5", provider="openai", when=NOV)
        assert (price.total_usd, price.source, price.unpriced_reason) == (
            None, semconv.SOURCE_UNKNOWN, semconv.UNPRICED_INVALID_USAGE)


@pytest.mark.parametrize(("model", "provider", "usage"), [
    ("gpt-5.5", "openai", WORKED),
    ("gpt-4o", "openai", TokenUsage(3_000, 200, cache_read_tokens=1_024)),
    ("gemini-2.5-flash", "google", TokenUsage(50_000, 2_000, cache_read_tokens=20_000, reasoning_tokens=500)),
    ("claude-sonnet-4-5", "anthropic", SONNET),
    ("claude-sonnet-4-5", "anthropic", TokenUsage(250_000, 1_000, cache_read_tokens=100_000,
                                                  cache_write_tokens=50_000, cache_write_1h_tokens=50_000)),
    ("o3", "openai", TokenUsage(1_000_000, 1_000_000)),
])
def test_same_dollars_as_genai_prices_calc_price(model: str, provider: str, usage: TokenUsage) -> None:
    """The Pricer's shortcuts (lookup cache, explicit zero units) change no dollar."""
    kwargs = {k: v for k, v in {
        "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens, "cache_write_tokens": usage.cache_write_tokens,
        "cache_write_5m_tokens": usage.cache_write_5m_tokens, "cache_write_1h_tokens": usage.cache_write_1h_tokens,
        "output_reasoning_tokens": usage.reasoning_tokens or None}.items() if v is not None}
    pricer = Pricer()
    for ctx, tier in (({}, None), ({"service_tier": "priority"}, "priority")):
        expected = genai_prices.calc_price(genai_prices.Usage(**kwargs), model, provider_id=provider,
                                           genai_request_timestamp=NOV, price_context=ctx or None)
        for _ in range(2):  # the second call runs from the caches
            got = pricer.price(usage, model=model, provider=provider, service_tier=tier, when=NOV)
            assert got.total_usd == round(float(expected.total_price), 10)
            assert got.input_usd == round(float(expected.input_price), 10)
            assert got.output_usd == round(float(expected.output_price), 10)


def test_cliff_tier_past_200k_on_sonnet() -> None:
    usage = TokenUsage(250_000, 1_000)
    price = Pricer().price(usage, model="claude-sonnet-4-5", provider="anthropic", when=NOV)
    assert (price.input_usd, price.output_usd) == (1.5, 0.0225)  # all at $6 / $22.50 past 200k


# --- overrides ------------------------------------------------------------------

OVERRIDES = {
    "openai:gpt-5.5": {"input_per_mtok": 4.0, "cache_read_per_mtok": 0.4, "output_per_mtok": 24.0},
    "gpt-5.5": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
    "ollama:qwen3:8b": ModelOverride(input_per_mtok=0, output_per_mtok=0),
    "my-llama": {"per_second": 0.0004},
}


def test_override_provider_qualified_beats_plain_beats_list_price() -> None:
    pricer = Pricer(OVERRIDES)
    negotiated = gpt55(pricer)
    # 4,000 x $4 + 8,000 x $0.40 = 0.016 + 0.0032; 900 x $24 = 0.0216.
    assert (negotiated.input_usd, negotiated.output_usd, negotiated.total_usd) == (0.0192, 0.0216, 0.0408)
    assert negotiated.source == semconv.SOURCE_OVERRIDE
    assert negotiated.price_table == "override:instrument(prices=...)#openai:gpt-5.5"
    # Another provider gets the plain override; cache reads default to the input price.
    plain = pricer.price(WORKED, model="gpt-5.5", provider="azure", when=NOV)
    assert (plain.input_usd, plain.output_usd, plain.total_usd) == (0.012, 0.0018, 0.0138)
    # A dated snapshot of an overridden model is the overridden model.
    dated = pricer.price(WORKED, model="gpt-5.5-2026-04-23", provider="openai", when=NOV)
    assert (dated.total_usd, dated.source) == (0.0408, semconv.SOURCE_OVERRIDE)
    # Models with no override keep the list price.
    assert pricer.price(SONNET, model="claude-sonnet-4-5", provider="anthropic", when=NOV).total_usd == 0.0585


def test_override_cache_write_price() -> None:
    pricer = Pricer({"claude-sonnet-4-5": {"input_per_mtok": 2, "output_per_mtok": 10,
                                           "cache_read_per_mtok": 0.2, "cache_write_per_mtok": 2.5}})
    price = pricer.price(SONNET, model="claude-sonnet-4-5", provider="anthropic", when=NOV)
    # 5,000 x $2 + 10,000 x $0.20 + 5,000 x $2.50 = 0.01 + 0.002 + 0.0125; 1,000 x $10.
    assert (price.input_usd, price.output_usd, price.total_usd) == (0.0245, 0.01, 0.0345)


def test_zero_price_is_priced_not_unknown() -> None:
    price = Pricer(OVERRIDES).price(WORKED, model="qwen3:8b", provider="ollama", when=NOV)
    assert price == Price(0.0, 0.0, 0.0, semconv.SOURCE_OVERRIDE, "override:instrument(prices=...)#ollama:qwen3:8b",
                          None, None, None)
    assert price.attributes()[semconv.COST_USD] == 0.0
    # Free tokens stay free when the response carried no usage.
    assert Pricer(OVERRIDES).price(None, model="qwen3:8b", provider="ollama").total_usd == 0.0


def test_per_second_override() -> None:
    pricer = Pricer(OVERRIDES)
    price = pricer.price(TokenUsage(500, 200), model="my-llama", provider="vllm", duration_s=12.5)
    assert (price.total_usd, price.input_usd, price.output_usd, price.source) == (
        0.005, 0.0, 0.0, semconv.SOURCE_OVERRIDE)  # 12.5 s x $0.0004
    # The seconds are the usage: no token counts needed, but no duration means no price.
    assert pricer.price(None, model="my-llama", provider=None, duration_s=2.0).total_usd == 0.0008
    missing = pricer.price(TokenUsage(500, 200), model="my-llama", provider=None)
    assert (missing.total_usd, missing.unpriced_reason) == (None, semconv.UNPRICED_MISSING_USAGE)
    both = Pricer({"m": {"input_per_mtok": 100, "output_per_mtok": 1000, "per_second": 0.01}})
    mixed = both.price(TokenUsage(1_000, 100), model="m", provider=None, duration_s=3)
    assert (mixed.input_usd, mixed.output_usd, mixed.total_usd) == (0.1, 0.1, 0.23)


def test_override_with_usage_missing_is_unpriced() -> None:
    price = Pricer(OVERRIDES).price(None, model="gpt-5.5", provider="openai")
    assert (price.total_usd, price.unpriced_reason) == (None, semconv.UNPRICED_MISSING_USAGE)


def test_override_on_a_non_standard_tier() -> None:
    pricer = Pricer(OVERRIDES, {"priority": 1.5})
    price = gpt55(pricer, service_tier="priority")
    assert (price.total_usd, price.tier_matched, price.source) == (0.0612, False, semconv.SOURCE_OVERRIDE)
    assert price.price_table == "override:instrument(prices=...)#openai:gpt-5.5 x1.5 priority tier"
    flex = gpt55(pricer, service_tier="flex")
    assert (flex.total_usd, flex.tier_matched) == (0.0408, False)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"m": {"input_per_mtok": -1, "output_per_mtok": 1}}, "override 'm': input_per_mtok must be a finite number >= 0"),
    ({"m": {"input_per_mtok": "3", "output_per_mtok": 1}}, "override 'm': input_per_mtok must be a number, got '3'"),
    ({"m": {"input_per_mtok": True, "output_per_mtok": 1}}, "override 'm': input_per_mtok must be a number"),
    ({"m": {"input_per_mtok": float("nan"), "output_per_mtok": 1}}, "override 'm': input_per_mtok must be a finite"),
    ({"m": {"input_per_mtok": 1}}, "override 'm': output_per_mtok is required with input_per_mtok"),
    ({"m": {"input_mtok": 1, "output_per_mtok": 1}}, "override 'm': unknown price field 'input_mtok'"),
    ({"m": {}}, "override 'm': give input_per_mtok and output_per_mtok, or per_second"),
    ({"m": {"per_second": 1, "cache_read_per_mtok": 1}}, "override 'm': cache_read_per_mtok needs input_per_mtok"),
    ({"m": 3.0}, "override 'm': expected a table of prices"),
    ({"m": ModelOverride(per_second=-0.1)}, "override 'm': per_second must be a finite number >= 0"),
    ({"": {"per_second": 1}}, "override key must be a model name"),
    ({"M": {"per_second": 1}, "m": {"per_second": 2}}, "override 'm' is given twice"),
])
def test_bad_override_names_the_key(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match="^instrument\\(prices=...\\): ") as info:
        Pricer(overrides)  # type: ignore[arg-type]
    assert message in str(info.value)


@pytest.mark.parametrize(("tiers", "message"), [
    ({"priority": -1.8}, "tier 'priority': multiplier must be a finite number >= 0"),
    ({"priority": 0}, "tier 'priority': multiplier must be > 0"),
    ({"flex": "half"}, "tier 'flex': multiplier must be a number"),
    ({"default": 2}, "tier 'default' is the standard tier"),
])
def test_bad_tier_multiplier_names_the_tier(tiers: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        Pricer(tier_multipliers=tiers)  # type: ignore[arg-type]
    assert message in str(info.value)


# --- the TOML file --------------------------------------------------------------

def test_prices_file() -> None:
    path = DATA / "prices.toml"
    pricer = load_prices_file(path)
    negotiated = gpt55(pricer)
    assert (negotiated.total_usd, negotiated.source) == (0.0408, semconv.SOURCE_OVERRIDE)
    assert negotiated.price_table == f"override:{path}#openai:gpt-5.5"
    assert pricer.price(WORKED, model="gpt-5.5", provider="azure").total_usd == 0.0138
    assert pricer.price(WORKED, model="qwen3:8b", provider="ollama").total_usd == 0.0
    assert pricer.price(None, model="my-llama", provider=None, duration_s=10).total_usd == 0.004
    # [tiers] priority = 1.8 on a list price genai-prices has no priority rate for.
    claude = pricer.price(SONNET, model="claude-sonnet-4-5", provider="anthropic", service_tier="priority", when=NOV)
    assert (claude.total_usd, claude.tier_matched) == (0.1053, False)
    assert claude.price_table == f"{TABLE} x1.8 priority tier ({path})"


@pytest.mark.parametrize(("text", "message"), [
    ('[models."m"]\ninput_per_mtok = 1\noutput_per_mtok = -2\n',
     '[models."m"]: output_per_mtok must be a finite number >= 0, got -2'),
    ('[models."m"]\ninput_per_mtok = "cheap"\noutput_per_mtok = 2\n',
     "[models.\"m\"]: input_per_mtok must be a number, got 'cheap'"),
    ('[models."m"]\nper_secnod = 0.1\n', "[models.\"m\"]: unknown price field 'per_secnod'"),
    ('[models]\nm = 3\n', '[models."m"]: expected a table of prices'),
    ('models = 3\n', "'models' must be a table"),
    ('[tiers]\npriority = -1\n', "[tiers] priority: multiplier must be a finite number >= 0"),
    ('[tiers]\nflex = "0.5"\n', "[tiers] flex: multiplier must be a number"),
    ('[tiers]\ndefault = 1.1\n', "[tiers] 'default' is the standard tier"),
    ('[model."m"]\nper_second = 1\n', "unknown key 'model'"),
    ('[models."m"\nper_second = 1\n', "not valid TOML: "),
    ('[models."m"]\nper_second = 1\nper_second = 2\n', "not valid TOML: "),
])
def test_bad_prices_file_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        load_prices_file(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_missing_prices_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ValueError, match="cannot read prices file") as info:
        load_prices_file(path)
    assert str(info.value).startswith(f"{path}: ")


def test_default_pricer_reads_runtrace_prices_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pricing, "_default", None)
    monkeypatch.setenv(semconv.ENV_PRICES, str(DATA / "prices.toml"))
    first = pricing.default_pricer()
    assert gpt55(first).total_usd == 0.0408
    assert pricing.default_pricer() is first
    monkeypatch.setattr(pricing, "_default", None)
    monkeypatch.delenv(semconv.ENV_PRICES)
    assert gpt55(pricing.default_pricer()).total_usd == 0.051
    mine = Pricer({"gpt-5.5": {"input_per_mtok": 0, "output_per_mtok": 0}})
    pricing.set_default_pricer(mine)
    assert pricing.default_pricer() is mine
    with pytest.raises(TypeError):
        pricing.set_default_pricer({"gpt-5.5": {}})  # type: ignore[arg-type]


# --- spans from other SDKs --------------------------------------------------------

def test_price_attributes_current_names() -> None:
    attrs = {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.GEN_AI_REQUEST_MODEL: "gpt-5",
        semconv.GEN_AI_RESPONSE_MODEL: "gpt-5.5-2026-04-23",  # the response model wins
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 12_000,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 8_000,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 900,
        semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 300,
        semconv.GEN_AI_OPENAI_RESPONSE_SERVICE_TIER: "priority",
    }
    assert Pricer().price_attributes(attrs, when=NOV) == {
        semconv.COST_USD: 0.1275, semconv.COST_INPUT_USD: 0.06, semconv.COST_OUTPUT_USD: 0.0675,
        semconv.COST_SOURCE: "genai-prices", semconv.COST_PRICE_TABLE: TABLE,
        semconv.COST_SERVICE_TIER: "priority", semconv.COST_TIER_MATCHED: True,
        semconv.COST_PRICED_AT_INGEST: True,
    }
    newer = {**attrs, semconv.OPENAI_RESPONSE_SERVICE_TIER: "flex"}
    del newer[semconv.GEN_AI_OPENAI_RESPONSE_SERVICE_TIER]
    assert Pricer().price_attributes(newer, when=NOV)[semconv.COST_USD] == 0.0255


def test_price_attributes_deprecated_names() -> None:
    attrs = {
        semconv.GEN_AI_SYSTEM: "openai",
        semconv.GEN_AI_REQUEST_MODEL: "gpt-5.5",
        semconv.GEN_AI_USAGE_PROMPT_TOKENS: 12_000,
        semconv.GEN_AI_USAGE_COMPLETION_TOKENS: 900,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 8_000,
    }
    got = Pricer().price_attributes(attrs, when=NOV)
    assert (got[semconv.COST_USD], got[semconv.COST_INPUT_USD], got[semconv.COST_OUTPUT_USD]) == (
        0.051, 0.024, 0.027)
    assert got[semconv.COST_PRICED_AT_INGEST] is True


@pytest.mark.parametrize("write_attr", [semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
                                        semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS])
def test_price_attributes_cache_write_spellings(write_attr: str) -> None:
    attrs = {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: "anthropic",
        semconv.GEN_AI_RESPONSE_MODEL: "claude-sonnet-4-5",
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 20_000,  # total, per semconv
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 10_000,
        write_attr: 5_000,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 1_000,
    }
    got = Pricer().price_attributes(attrs, when=NOV)
    assert (got[semconv.COST_USD], got[semconv.COST_INPUT_USD]) == (0.05175, 0.03675)


def test_price_attributes_exclusive_anthropic_count_is_totalled() -> None:
    # An SDK that copied Anthropic's own input_tokens (cache excluded): 5,000 < its 15,000 cached parts.
    attrs = {
        semconv.GEN_AI_SYSTEM: "anthropic",
        semconv.GEN_AI_REQUEST_MODEL: "claude-sonnet-4-5",
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 5_000,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 10_000,
        semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 5_000,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 1_000,
    }
    assert Pricer().price_attributes(attrs, when=NOV)[semconv.COST_USD] == 0.05175


def test_price_attributes_unpriced_and_skipped() -> None:
    pricer = Pricer()
    no_usage = {semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_PROVIDER_NAME: "openai",
                semconv.GEN_AI_REQUEST_MODEL: "gpt-5.5"}
    assert pricer.price_attributes(no_usage, when=NOV) == {
        semconv.COST_SOURCE: "unknown", semconv.COST_UNPRICED_REASON: "missing_usage",
        semconv.COST_PRICED_AT_INGEST: True}
    unknown = {**no_usage, semconv.GEN_AI_REQUEST_MODEL: "mystery-1", semconv.GEN_AI_USAGE_INPUT_TOKENS: "10",
               semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 5.0}
    assert pricer.price_attributes(unknown, when=NOV)[semconv.COST_UNPRICED_REASON] == "unknown_model"
    embeddings = {semconv.GEN_AI_OPERATION_NAME: "embeddings", semconv.GEN_AI_PROVIDER_NAME: "openai",
                  semconv.GEN_AI_REQUEST_MODEL: "text-embedding-3-small",
                  semconv.GEN_AI_USAGE_INPUT_TOKENS: 1_000_000}
    assert pricer.price_attributes(embeddings, when=NOV)[semconv.COST_USD] == 0.02  # $0.02 / M, no output
    # An agent span's usage is the sum of its children's: pricing it would count twice.
    agent = {**no_usage, semconv.GEN_AI_OPERATION_NAME: "invoke_agent", semconv.GEN_AI_USAGE_INPUT_TOKENS: 12_000,
             semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 900}
    assert pricer.price_attributes(agent, when=NOV) == {}
    assert pricer.price_attributes({semconv.GEN_AI_TOOL_NAME: "read_file"}, when=NOV) == {}
    priced = {**agent, semconv.GEN_AI_OPERATION_NAME: "chat", semconv.COST_USD: 1.0,
              semconv.COST_SOURCE: "genai-prices"}
    assert pricer.price_attributes(priced, when=NOV) == {}


def test_price_attributes_uses_overrides_and_duration() -> None:
    pricer = Pricer(OVERRIDES)
    attrs = {semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_PROVIDER_NAME: "vllm",
             semconv.GEN_AI_RESPONSE_MODEL: "my-llama", semconv.GEN_AI_USAGE_INPUT_TOKENS: 100,
             semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 10}
    got = pricer.price_attributes(attrs, when=NOV, duration_s=5.0)
    assert (got[semconv.COST_USD], got[semconv.COST_SOURCE]) == (0.002, "override")
