"""``runtrace prices export``: genai-prices' table as ClickHouse rows (loaded and checked
against runtrace.pricing in tests/test_scale_clickhouse.py; here the export itself)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from click.testing import CliRunner
from genai_prices.types import ClauseAnd, ClauseEquals, ClauseOr, ClauseRegex, ClauseStartsWith

from runtrace.cli import main
from runtrace.scale import prices


def test_match_logic_becomes_re2_alternatives() -> None:
    clause = ClauseOr(or_=[ClauseEquals(equals="gpt-4o"),
                           ClauseAnd(and_=[ClauseStartsWith(starts_with="gemini-2.5"),
                                           ClauseRegex(regex=r"^(?!.*-tts)")]),
                           ClauseRegex(regex=r"(a)\1")])  # a backreference RE2 cannot run: left out
    assert prices.to_dnf(clause) == [["(?i)^gpt-4o$"], ["(?i)^gemini-2\\.5", "!^.*-tts"]]


def test_provider_names_follow_runtrace_pricing() -> None:
    rows = prices.price_rows()
    by_provider = {r.provider_id: r.provider_names for r in rows}
    assert "gcp.vertex_ai" in by_provider["google"] and "gcp.gen_ai" in by_provider["google"]
    assert "x_ai" in by_provider["x-ai"]
    assert "azure.ai.inference" in by_provider["azure"]
    assert "openai" in by_provider["openai"]
    gpt4o = next(r for r in rows if r.provider_id == "openai" and r.model_id == "gpt-4o")
    assert (gpt4o.input_mtok, gpt4o.cache_read_mtok, gpt4o.output_mtok) == (2.5, 1.25, 10.0)
    sonnet = next(r for r in rows if r.provider_id == "anthropic" and r.model_id == "claude-sonnet-4-5")
    assert sonnet.input_tiers == (prices.Tier(200_000, 6.0),) and sonnet.valid_from == date(1970, 1, 1)
    # Azure borrows OpenAI's models after its own
    azure_gpt4o = [r for r in rows if r.provider_id == "azure" and r.model_id == "gpt-4o"]
    assert azure_gpt4o and all(r.rank >= 100_000 for r in azure_gpt4o)


def test_cli_exports_sql_and_tsv(tmp_path: Path) -> None:
    n = len(prices.price_rows())
    out = tmp_path / "prices.sql"
    result = CliRunner().invoke(main, ["prices", "export", "-o", str(out), "--table", "analytics.prices"],
                                catch_exceptions=False)
    assert result.exit_code == 0
    assert f"{n} price rows (genai-prices " in result.stderr
    sql = out.read_text()
    assert sql.startswith("TRUNCATE TABLE IF EXISTS analytics.prices;\nINSERT INTO analytics.prices (provider_id,")
    assert sql.count("INSERT INTO") == -(-n // 500)
    result = CliRunner().invoke(main, ["prices", "export", "--format", "tsv"], catch_exceptions=False)
    lines = result.stdout.splitlines()
    assert len(lines) == n and all(line.count("\t") == 14 for line in lines)
    assert any(line.startswith("openai\t['az.ai.openai','openai']\t") and "\tgpt-4o\t" in line
               for line in lines)


def test_committed_price_data_is_the_current_export() -> None:
    """compose loads collector/clickhouse/*.sql at ClickHouse init: the price rows must be there before
    any span arrives (the views price at insert time), and must not drift from runtrace's own table."""
    sql_dir = Path(__file__).resolve().parents[1] / "collector" / "clickhouse"
    data = sql_dir / "06_runtrace_prices_data.sql"
    assert data.read_text() == prices.to_clickhouse_sql(prices.price_rows()), \
        "stale: runtrace prices export --format clickhouse -o collector/clickhouse/06_runtrace_prices_data.sql"
    # the init runs files in name order: the table first, the rows after every DDL file
    assert sorted(p.name for p in sql_dir.glob("*.sql"))[-1] == data.name
