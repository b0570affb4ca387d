"""What-if across providers: the same recorded calls repriced on DeepSeek, Bedrock Claude, Gemini,
a per-request model, a per-second local model and an input-only model, by token class.

One run, two calls (input counts are totals, cache reads and writes included):

| call | model | input | cache read | cache write | output | of it reasoning | seconds |
|---|---|---|---|---|---|---|---|
| A | claude-sonnet-4 (anthropic) | 20,000 | 8,000 | 2,000 | 1,500 | 500 | 4 |
| B | gpt-4o (openai) | 10,000 | 0 | 0 | 1,000 | 0 | 2 |

So by class: plain input 10,000 + 10,000, cache read 8,000, cache write 2,000,
output (without reasoning) 1,000 + 1,000, reasoning 500. List prices per million
tokens (genai-prices' bundled table), each worked out below call by call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import genai_prices
import httpx
import pytest
from click.testing import CliRunner

from runtrace import semconv as sc
from runtrace.cli import main
from runtrace.pricing import Pricer
from runtrace.reprice import reprice
from runtrace.server.app import create_app
from runtrace.store.db import Store
from test_server_support import SEC, at, llm_span, run_span, running_server, trace_id

START_A, START_B = at(0, 1), at(0, 10)


def records() -> list:  # list[SpanRecord]
    t, root = trace_id(41), "c1" * 8
    return [
        run_span("x1-mixed", "mixed providers", trace=t, start=at(0), end=at(0, 30), project="agents", owner="ana",
                 span_id=root),
        llm_span("x1-mixed", trace=t, parent=root, start=START_A, end=START_A + 4 * SEC,
                 model="claude-sonnet-4-20250514", provider=sc.PROVIDER_ANTHROPIC, input_tokens=20_000,
                 cached=8_000, output_tokens=1_500, cost=0.05,
                 extra={sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 2_000,
                        sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 500}),
        llm_span("x1-mixed", trace=t, parent=root, start=START_B, end=START_B + 2 * SEC, model="gpt-4o",
                 provider=sc.PROVIDER_OPENAI, input_tokens=10_000, output_tokens=1_000, cost=0.035),
    ]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reprice-providers") / "runtrace.db"
    with Store.open(path) as store:
        assert store.ingest(records()) == 3
    return path


@pytest.fixture
def store(store_path: Path):  # -> Iterator[Store]
    with Store.open(store_path, create=False) as opened:
        yield opened


def _calc(model: str, provider: str, when: int, **usage: int) -> float:
    """genai-prices' own price, to check the hand-worked figures against."""
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=when // 1000)
    return float(genai_prices.calc_price(genai_prices.Usage(**usage), model_ref=model, provider_id=provider,
                                         genai_request_timestamp=moment).total_price)


A_USAGE = {"input_tokens": 20_000, "cache_read_tokens": 8_000, "cache_write_tokens": 2_000, "output_tokens": 1_500,
           "output_reasoning_tokens": 500}
B_USAGE = {"input_tokens": 10_000, "output_tokens": 1_000}


def by_class(result) -> dict[str, tuple[float, float, str | None, int]]:  # noqa: ANN001
    return {name: (c.units, round(c.usd, 12), c.charged_as, c.missing_calls) for name, c in result.by_class.items()}


def test_deepseek_prices_cache_reads_and_charges_cache_writes_as_input(store: Store) -> None:
    # deepseek-chat: $0.27 input, $0.07 cache read, $1.10 output; no cache-write price (charged as input).
    # A: (10,000 + 2,000) x 0.27 + 8,000 x 0.07 + 1,500 x 1.10 = 0.00324 + 0.00056 + 0.00165 = 0.00545
    # B: 10,000 x 0.27 + 1,000 x 1.10 = 0.0027 + 0.0011 = 0.0038
    result = reprice(store, model="deepseek-chat", provider="deepseek")
    assert result.repriced_usd == pytest.approx(0.00925, abs=1e-12)
    assert 0.00545 == pytest.approx(_calc("deepseek-chat", "deepseek", START_A, **A_USAGE), abs=1e-12)
    assert 0.0038 == pytest.approx(_calc("deepseek-chat", "deepseek", START_B, **B_USAGE), abs=1e-12)
    assert by_class(result) == {
        "input": (22_000, 0.00594, None, 0),  # 22,000 x 0.27: the cache writes it charged are counted in it
        "cache_read": (8_000, 0.00056, None, 0),
        "cache_write": (2_000, 0.0, "input", 0),
        "output": (2_500, 0.00275, None, 0),  # 2,500 x 1.10: the reasoning it charged is counted in it
        "reasoning": (500, 0.0, "output", 0),
    }
    assert result.missing_classes == []
    assert (result.runs[0].repriced_unpriced, result.runs[0].difference_usd) == (0, pytest.approx(0.00925 - 0.085))


def test_bedrock_claude_prices_every_token_class(store: Store) -> None:
    # Claude 3.5 Haiku on Bedrock: $0.80 input, $0.08 cache read, $1.00 cache write, $4.00 output.
    # A: 10,000 x 0.8 + 8,000 x 0.08 + 2,000 x 1 + 1,500 x 4 = 0.008 + 0.00064 + 0.002 + 0.006 = 0.01664
    # B: 10,000 x 0.8 + 1,000 x 4 = 0.012
    model = "anthropic.claude-3-5-haiku-20241022-v1:0"
    result = reprice(store, model=model, provider=sc.PROVIDER_AWS_BEDROCK)
    assert result.repriced_usd == pytest.approx(0.02864, abs=1e-12)
    assert 0.01664 == pytest.approx(_calc(model, "aws", START_A, **A_USAGE), abs=1e-12)
    assert by_class(result) == {
        "input": (20_000, 0.016, None, 0),
        "cache_read": (8_000, 0.00064, None, 0),
        "cache_write": (2_000, 0.002, None, 0),
        "output": (2_500, 0.01, None, 0),  # 2,500 x 4.00, reasoning included
        "reasoning": (500, 0.0, "output", 0),
    }


def test_gemini_flash(store: Store) -> None:
    # gemini-2.5-flash: $0.30 input, $0.03 cache read, $2.50 output; cache writes charged as input.
    # A: 12,000 x 0.3 + 8,000 x 0.03 + 1,500 x 2.5 = 0.0036 + 0.00024 + 0.00375 = 0.00759
    # B: 10,000 x 0.3 + 1,000 x 2.5 = 0.0055
    result = reprice(store, model="gemini-2.5-flash", provider="google")
    assert result.repriced_usd == pytest.approx(0.01309, abs=1e-12)
    assert 0.00759 == pytest.approx(_calc("gemini-2.5-flash", "google", START_A, **A_USAGE), abs=1e-12)
    assert by_class(result)["cache_write"] == (2_000, 0.0, "input", 0)


def test_a_fee_per_request_is_its_own_class(store: Store) -> None:
    # Perplexity sonar: $1 input, $1 output, $12 per thousand requests (0.012 a call).
    # A: 20,000 x 1 + 1,500 x 1 + 0.012 = 0.0335; B: 10,000 x 1 + 1,000 x 1 + 0.012 = 0.023
    result = reprice(store, model="sonar", provider="perplexity")
    assert result.repriced_usd == pytest.approx(0.0565, abs=1e-12)
    assert 0.0335 == pytest.approx(_calc("sonar", "perplexity", START_A, **A_USAGE), abs=1e-12)
    assert by_class(result)["requests"] == (2, 0.024, None, 0)


def test_a_local_model_priced_per_second_is_repriced_on_the_calls_durations(store: Store) -> None:
    # 0.0004 per second: A took 4 s (0.0016), B 2 s (0.0008). Before, the probe had no duration and
    # the target was refused as "no price known".
    pricer = Pricer({"local:my-llama": {"per_second": 0.0004}})
    result = reprice(store, model="my-llama", provider=sc.PROVIDER_LOCAL, pricer=pricer)
    assert result.repriced_usd == pytest.approx(0.0024, abs=1e-12)
    assert by_class(result)["seconds"] == (6.0, 0.0024, None, 0)
    assert result.runs[0].repriced_unpriced == 0


def test_a_model_with_no_output_price_does_not_reprice_output_as_free(store: Store) -> None:
    # Azure's davinci has an input price only: both calls produced output, so neither is repriced
    # (before: 30,000 input tokens x $2 = $0.06, the output silently $0).
    result = reprice(store, model="davinci", provider="azure")
    assert (result.repriced_usd, result.repriced_unpriced) == (0.0, 2)
    assert [(c.name, c.missing_calls) for c in result.missing_classes] == [("output", 2), ("reasoning", 1)]
    assert result.runs[0].comparable is False and result.runs[0].difference_usd is None


def test_cli_json_has_the_split_and_the_table_says_what_is_missing(store_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(main, ["reprice", "--store", str(store_path), "--model", "deepseek-chat",
                               "--provider", "deepseek", "--format", "json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["total"]["repriced_usd"] == pytest.approx(0.00925, abs=1e-12)
    assert [(c["class"], c["units"], c["charged_as"]) for c in data["by_class"]] == [
        ("input", 22_000, None), ("cache_read", 8_000, None), ("cache_write", 2_000, "input"),
        ("output", 2_500, None), ("reasoning", 500, "output")]
    table = runner.invoke(main, ["reprice", "--store", str(store_path), "--model", "davinci", "--provider", "azure"])
    assert table.exit_code == 0, table.output
    text = " ".join(table.output.split())
    assert "davinci has no price for output tokens: 2 calls not repriced" in text
    assert "davinci has no price for reasoning tokens: 1 call not repriced" in text


# --- the What-if page, over HTTP on 127.0.0.1 -------------------------------------


@pytest.fixture(scope="module")
def base(store_path: Path) -> Iterator[str]:
    with running_server(create_app(store_path)) as url:
        yield url


def page(base: str, query: str) -> httpx.Response:
    return httpx.get(f"{base}/whatif?{query}", timeout=60)


def options(html: str, select_id: str) -> list[str]:
    select = html.split(f'id="{select_id}"', 1)[1].split("</select>", 1)[0]
    return re.findall(r'<option value="([^"]*)"', select)


def test_the_provider_picker_lists_the_chosen_providers_models(base: str) -> None:
    response = page(base, "pick_provider=deepseek&period=all")
    assert response.status_code == 200
    html = response.text
    providers = options(html, "wi-provider")
    assert providers[:4] == ["", "openai", "anthropic", "google"]
    assert {"aws", "deepseek", "mistral", "perplexity", "openrouter"} <= set(providers)
    assert '<option value="deepseek" selected>Deepseek</option>' in html
    models = options(html, "wi-pick")
    assert models[0] == "" and "deepseek:deepseek-chat" in models
    assert all(m.startswith("deepseek:") for m in models[1:])
    assert ('<option value="deepseek:deepseek-chat" title="cached read $0.07/Mtok, cache writes charged as input" >'
            "deepseek-chat  \u00b7  $0.27 in / $1.10 out per Mtok</option>") in html
    assert 'id="wi-start"' in html  # a provider without a model reprices nothing yet
    # The default list is still the common three; other providers are one quick pick away.
    default = page(base, "period=all").text
    assert {m.split(":")[0] for m in options(default, "wi-pick")[1:]} == {"openai", "anthropic", "google"}
    elsewhere = default.split('id="wi-elsewhere"', 1)[1].split("</p>", 1)[0]
    assert re.findall(r">([^<]+)</a>", elsewhere) == [
        "aws \u00b7 anthropic.claude-haiku-4-5-20251001-v1:0", "aws \u00b7 anthropic.claude-sonnet-4-5-20250929-v1:0",
        "deepseek \u00b7 deepseek-chat", "mistral \u00b7 mistral-small-latest"]


def class_cells(html: str) -> dict[str, tuple[str, str]]:
    table = html.split('id="wi-class-table"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr data-class="([^"]+)"><td>[^<]*</td>\s*<td class="num">([^<]*)</td>\s*'
                      r'<td class="num">(?:<span[^>]*>)?([^<]*)', table)
    return {name: (used.strip(), cost.strip()) for name, used, cost in rows}


def test_the_page_reprices_on_deepseek_by_token_class(base: str) -> None:
    response = page(base, "pick_provider=deepseek&pick=deepseek:deepseek-chat&period=all")
    assert response.status_code == 200
    html = response.text
    assert re.search(r'id="wi-whatif">\$0\.00925<', html)
    assert re.search(r'id="wi-actual">\$0\.085<', html)
    assert class_cells(html) == {
        "input": ("22,000", "$0.00594"), "cache_read": ("8,000", "$0.00056"),
        "cache_write": ("2,000", "charged as input"), "output": ("2,500", "$0.00275"),
        "reasoning": ("500", "charged as output")}
    assert 'id="wi-missing-class"' not in html


def test_the_page_on_bedrock_claude_and_on_a_per_request_model(base: str) -> None:
    bedrock = page(base, "pick=aws:anthropic.claude-3-5-haiku-20241022-v1:0&period=all").text
    assert re.search(r'id="wi-whatif">\$0\.0286<', bedrock)  # 0.02864, shown to three significant digits
    assert '<option value="aws" selected>AWS Bedrock</option>' in bedrock  # the pick's provider is listed
    assert class_cells(bedrock)["cache_write"] == ("2,000", "$0.002")
    sonar = page(base, "pick=perplexity:sonar&period=all").text
    assert class_cells(sonar)["requests"] == ("2 calls", "$0.024")


def test_the_page_says_which_token_class_has_no_price(base: str) -> None:
    html = page(base, "pick=azure:davinci&period=all").text
    notice = " ".join(html.split('id="wi-missing-class"', 1)[1].split("</div>", 1)[0].split())
    assert "davinci has no price for output tokens: 2 calls that used them are not repriced (never counted as $0)." \
        in notice
    assert "davinci has no price for reasoning tokens: 1 call that used them is not repriced" in notice
    assert class_cells(html)["output"] == ("0", "no price (2 calls not repriced)")
    assert re.search(r'id="wi-whatif">\$0\.00<', html)  # no run is priced on both sides
    assert "1 run could not be repriced</strong>: 2 calls recorded no token counts or used a token class davinci " \
        "has no price for" in " ".join(html.split())


def test_an_unknown_provider_is_said_and_the_form_kept(base: str) -> None:
    response = page(base, "pick_provider=%3Cnope%3E&period=all")
    assert response.status_code == 400
    assert "provider &#39;&lt;nope&gt;&#39; is not in genai-prices&#39; price table (choose one from the list)" \
        in response.text


def test_cli_lists_a_providers_models_to_pick_from() -> None:
    runner = CliRunner()
    listed = runner.invoke(main, ["reprice", "--provider", "aws.bedrock", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    models = {m["model"]: m for m in json.loads(listed.stdout)}
    assert models["anthropic.claude-3-5-haiku-20241022-v1:0"] == {
        "model": "anthropic.claude-3-5-haiku-20241022-v1:0", "input_per_mtok": pytest.approx(0.8),
        "cache_read_per_mtok": 0.08, "cache_write_per_mtok": 1.0, "output_per_mtok": pytest.approx(4.0),
        "per_request": None}
    assert not any(name.startswith("regional.") for name in models)  # listed by the id that prices
    sonar = json.loads(runner.invoke(main, ["reprice", "--provider", "perplexity", "--format", "json"]).stdout)
    assert next(m for m in sonar if m["model"] == "sonar")["per_request"] == pytest.approx(0.012)
    missing = runner.invoke(main, ["reprice"])
    assert missing.exit_code == 2
    assert "give --model, or --provider to list its models (one of: openai, anthropic, google, " in missing.output
    unknown = runner.invoke(main, ["reprice", "--provider", "nope"])
    assert unknown.exit_code == 2 and "'nope' is not a provider in genai-prices' price table" in unknown.output


@pytest.mark.parametrize(("model", "provider"), [("gpt-4o-mini", "openai"), ("claude-haiku-4-5", "anthropic"),
                                                 ("deepseek-chat", "deepseek"), ("sonar", "perplexity"),
                                                 ("gemini-2.5-pro", "google")])  # the last is tiered
def test_the_learned_split_is_genai_prices_own_to_the_last_digit(model: str, provider: str) -> None:
    from runtrace import price_parts
    from runtrace.pricing import TokenUsage, default_pricer

    prices = default_pricer().target_prices(model=model, provider=provider)
    assert prices is not None
    for inp, cached, written, out, reasoning in [(0, 0, 0, 0, 0), (1, 0, 0, 1, 0), (10_000, 4_000, 1_000, 500, 100),
                                                 (250_000, 0, 200_000, 7, 7), (123_457, 99_999, 0, 4_321, 0)]:
        usage = TokenUsage(inp, out, cache_read_tokens=cached, cache_write_tokens=written, reasoning_tokens=reasoning)
        assert price_parts._split(prices, usage, price_parts.split_tokens(usage)) == \
            price_parts._genai_split(prices, usage), usage


def test_reasoning_billed_as_output_is_counted_in_the_output_row(tmp_path: Path) -> None:
    # A newcomer's reasoning-heavy call (o3-mini): 1,000 input, 2,745 output of which 2,372 reasoning.
    # On deepseek-chat ($0.27 in, $1.10 out, no reasoning price) the reasoning is billed as output:
    # output 2,745 x 1.10 = $0.0030195, input 1,000 x 0.27 = $0.00027, total $0.0032895. Before, the
    # output row said 373 tokens for $0.00302 ($8.10/Mtok, not deepseek's $1.10).
    t, root = trace_id(42), "c2" * 8
    path = tmp_path / "runtrace.db"
    with Store.open(path) as opened:
        assert opened.ingest([
            run_span("x2-reason", "reasoning", trace=t, start=at(0), end=at(0, 30), project="agents", owner="ana",
                     span_id=root),
            llm_span("x2-reason", trace=t, parent=root, start=START_A, end=START_A + 3 * SEC, model="o3-mini",
                     provider=sc.PROVIDER_OPENAI, input_tokens=1_000, output_tokens=2_745, cost=0.0131,
                     extra={sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 2_372})]) == 2
        result = reprice(opened, model="deepseek-chat", provider="deepseek")
    assert by_class(result) == {"input": (1_000, 0.00027, None, 0), "output": (2_745, 0.0030195, None, 0),
                                "reasoning": (2_372, 0.0, "output", 0)}
    table = CliRunner().invoke(main, ["reprice", "--store", str(path), "--model", "deepseek-chat",
                                      "--provider", "deepseek"], env={"COLUMNS": "140"})
    assert table.exit_code == 0, table.output
    rows = [" ".join(re.sub(r"[\u2500-\u257f]", " ", line).split()) for line in table.output.splitlines()]
    assert "1 runs priced on both sides $0.0131 $0.00329 -$0.00981" in rows
    assert "output 2,745 $0.00302" in rows
    assert "reasoning 2,372 charged as output" in rows
    with running_server(create_app(path)) as url:
        html = page(url, "pick_provider=deepseek&pick=deepseek:deepseek-chat&period=all").text
    assert class_cells(html) == {"input": ("1,000", "$0.00027"), "output": ("2,745", "$0.00302"),
                                 "reasoning": ("2,372", "charged as output")}
