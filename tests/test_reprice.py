"""`runtrace reprice`: exact what-if figures on the hand-built fixture store.

Target gpt-4o-mini (openai): $0.15 per million input tokens, $0.075 cached, $0.60 output;
batch is half of that. Each run's calls are in test_server_support.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtrace.cli import main
from runtrace.reprice import OutputStats, bucket_of, reprice
from runtrace.store.db import Store
from test_server_support import build_fixture_store

MINI = {"model": "gpt-4o-mini", "provider": "openai"}
# run -> (actual USD, repriced on gpt-4o-mini USD), worked out call by call
EXPECTED = {
    "r2-refactor": (0.18, 50_000 * 0.15e-6 + 2_000 * 0.6e-6),  # 0.0087
    "r4-summarise": (0.133, (30_000 + 12_000) * 0.15e-6 + (2_000 + 800) * 0.6e-6),  # 0.00798
    "r1-fix-flaky": (0.0775, 10_000 * 0.15e-6 + 1_000 * 0.6e-6
                     + 10_000 * 0.15e-6 + 10_000 * 0.075e-6 + 500 * 0.6e-6),  # 0.00465
    "r6-answer": (0.015, 3_000 * 0.15e-6 + 400 * 0.6e-6),  # 0.00069
    "r5-explore": (0.012, (1_000 + 4_000) * 0.15e-6 + (100 + 200) * 0.6e-6),  # 0.00093, one call unpriced
    "r3-triage": (0.00048, 2_000 * 0.15e-6 + 300 * 0.6e-6),
    "r7-xss": (0.00021, 1_000 * 0.15e-6 + 100 * 0.6e-6),
}
R3_ONLY = {"since": datetime(2026, 11, 20, 12, tzinfo=timezone.utc),
           "until": datetime(2026, 11, 20, 13, tzinfo=timezone.utc)}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixture_store(tmp_path_factory.mktemp("reprice") / "runtrace.db")


@pytest.fixture
def store(store_path: Path):  # -> Iterator[Store]
    with Store.open(store_path, create=False) as opened:
        yield opened


def test_every_run_repriced_beside_its_actual_cost(store: Store) -> None:
    result = reprice(store, **MINI)
    assert [r.run_id for r in result.runs] == list(EXPECTED)  # biggest actual cost first
    for run in result.runs:
        actual, repriced = EXPECTED[run.run_id]
        assert run.actual_usd == pytest.approx(actual, abs=1e-12), run.run_id
        assert run.repriced_usd == pytest.approx(repriced, abs=1e-12), run.run_id
    explore = next(r for r in result.runs if r.run_id == "r5-explore")
    assert (explore.actual_unpriced, explore.repriced_unpriced, explore.difference_usd) == (1, 0, None)
    assert explore.models == ["my-local-llm", "gpt-4o"]
    flaky = next(r for r in result.runs if r.run_id == "r1-fix-flaky")
    assert flaky.difference_usd == pytest.approx(0.00465 - 0.0775, abs=1e-12)
    assert result.calls == 10
    assert result.actual_usd == pytest.approx(0.41819, abs=1e-12)
    assert result.repriced_usd == pytest.approx(0.02364, abs=1e-12)
    assert result.comparable_actual_usd == pytest.approx(0.41819 - 0.012, abs=1e-12)
    assert result.comparable_repriced_usd == pytest.approx(0.02364 - 0.00093, abs=1e-12)
    assert (result.actual_unpriced, result.repriced_unpriced, result.tier_note) == (1, 0, None)


def test_routing_lists_small_runs_on_a_frontier_priced_model(store: Store) -> None:
    result = reprice(store, **MINI)
    # Only r6 is small (1 call, 3,400 tokens) and cost >= 4x the target: $0.015 against $0.00069.
    assert [(c.run_id, c.llm_calls, c.tokens) for c in result.routing] == [("r6-answer", 1, 3_400)]
    assert result.routing[0].saving_usd == pytest.approx(0.015 - 0.00069, abs=1e-12)
    wider = reprice(store, **MINI, small_calls=2, small_tokens=40_000)
    assert [c.run_id for c in wider.routing] == ["r1-fix-flaky", "r6-answer"]
    stricter = reprice(store, **MINI, frontier_ratio=25.0)
    assert stricter.routing == []  # r6 cost 21.7x the target


def test_output_tokens_per_call_by_prompt_size(store: Store) -> None:
    result = reprice(store, **MINI)
    assert result.verbosity == [
        OutputStats("claude-sonnet-4-20250514", "1k-10k", 1, 400.0, 400, 400, 400),
        OutputStats("claude-sonnet-4-20250514", "over 10k", 1, 2000.0, 2000, 2000, 2000),
        OutputStats("gpt-4o", "1k-10k", 2, 600.0, 200, 1000, 1000),  # 10,000 in -> 1,000 out; 4,000 -> 200
        OutputStats("gpt-4o", "over 10k", 3, 1100.0, 800, 2000, 2000),  # 500, 800, 2,000
        OutputStats("gpt-4o-mini", "up to 1k", 1, 100.0, 100, 100, 100),
        OutputStats("gpt-4o-mini", "1k-10k", 1, 300.0, 300, 300, 300),
        OutputStats("my-local-llm", "up to 1k", 1, 100.0, 100, 100, 100),
    ]
    assert [bucket_of(n) for n in (0, 1_000, 1_001, 10_000, 10_001)] == [
        "up to 1k", "up to 1k", "1k-10k", "1k-10k", "over 10k"]


def test_token_ratio_scales_every_count_before_pricing(store: Store) -> None:
    r3 = reprice(store, **MINI, token_ratio=1.35, **R3_ONLY)
    assert [r.run_id for r in r3.runs] == ["r3-triage"]
    assert r3.runs[0].repriced_usd == pytest.approx(2_700 * 0.15e-6 + 405 * 0.6e-6, abs=1e-12)  # 0.000648
    r1 = reprice(store, **MINI, token_ratio=1.35, until=datetime(2026, 11, 20, 11, tzinfo=timezone.utc))
    # 13,500 in / 1,350 out; then 27,000 in of which 13,500 cached / 675 out.
    expected = (13_500 * 0.15e-6 + 1_350 * 0.6e-6) + (13_500 * 0.15e-6 + 13_500 * 0.075e-6 + 675 * 0.6e-6)
    assert r1.runs[0].repriced_usd == pytest.approx(expected, abs=1e-12)  # 0.0062775


def test_tiers(store: Store) -> None:
    batch = reprice(store, **MINI, tier="batch", **R3_ONLY)
    assert batch.runs[0].repriced_usd == pytest.approx((2_000 * 0.15e-6 + 300 * 0.6e-6) / 2, abs=1e-12)
    assert batch.tier_note is None
    priority = reprice(store, **MINI, tier="priority", **R3_ONLY)
    assert priority.runs[0].repriced_usd == pytest.approx(2_000 * 0.25e-6 + 300 * 1.0e-6, abs=1e-12)
    flex = reprice(store, **MINI, tier="flex", **R3_ONLY)
    assert flex.runs[0].repriced_usd == pytest.approx(0.00048, abs=1e-12)  # no flex price: standard
    assert flex.tier_note is not None and "no 'flex' tier price" in flex.tier_note


def test_project_filter_and_progress(store: Store) -> None:
    seen: list[tuple[int, int]] = []
    result = reprice(store, **MINI, project="billing", progress=lambda done, total: seen.append((done, total)))
    assert [r.run_id for r in result.runs] == ["r2-refactor", "r1-fix-flaky"]
    assert seen[0] == (0, 3) and seen[-1] == (3, 3)


def test_bad_targets_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="no price known for model 'no-such-model'"):
        reprice(store, model="no-such-model")
    with pytest.raises(ValueError, match="token ratio must be a positive number"):
        reprice(store, **MINI, token_ratio=0)


def test_cli_json_csv_and_table(store_path: Path) -> None:
    runner = CliRunner()
    as_json = runner.invoke(main, ["reprice", "--store", str(store_path), "--model", "gpt-4o-mini", "--provider",
                                   "openai", "--format", "json"], catch_exceptions=False)
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["total"]["repriced_usd"] == pytest.approx(0.02364, abs=1e-12)
    assert data["total"]["comparable_runs"] == 6
    assert data["routing"][0]["run_id"] == "r6-answer"
    assert len(data["runs"]) == 7

    as_csv = runner.invoke(main, ["reprice", "--store", str(store_path), "--model", "gpt-4o-mini", "--format",
                                  "csv", "--project", "web"], catch_exceptions=False)
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert [(r["run_id"], r["actual_unpriced_calls"], r["difference_usd"]) for r in rows] == [
        ("r5-explore", "1", ""), ("r7-xss", "0", "0.0")]

    table = runner.invoke(main, ["reprice", "--store", str(store_path), "--model", "gpt-4o-mini"],
                          catch_exceptions=False)
    assert table.exit_code == 0, table.output
    assert "10 LLM calls in 7 runs, repriced on gpt-4o-mini" in table.output
    assert "$0.0143" in table.output  # r6's saving
    assert "-$0.1713" in table.output  # r2: $0.0087 instead of $0.18


def test_cli_unknown_model_is_a_one_line_error(store_path: Path) -> None:
    result = CliRunner().invoke(main, ["reprice", "--store", str(store_path), "--model", "no-such-model"])
    assert result.exit_code == 1
    assert "Error: no price known for model 'no-such-model'" in result.output
    bad_ratio = CliRunner().invoke(main, ["reprice", "--store", str(store_path), "--model", "gpt-4o-mini",
                                          "--token-ratio", "-1"])
    assert bad_ratio.exit_code == 2
    assert "--token-ratio" in bad_ratio.output


def test_a_call_the_provider_refused_costs_nothing_on_any_model(tmp_path: Path) -> None:
    from runtrace import semconv as sc
    from test_server_support import at, llm_span, run_span, span, trace_id

    trace = trace_id(99)
    refused = span("chat gpt-5.5", trace=trace, run_id="r-refused", start=at(1, 1), end=at(1, 2),
                   status="ERROR", attrs={sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_PROVIDER_NAME: "openai",
                                          sc.GEN_AI_REQUEST_MODEL: "gpt-5.5", sc.COST_USD: 0.0,
                                          sc.COST_SOURCE: sc.SOURCE_NOT_BILLED})
    ok = llm_span("r-refused", trace=trace, parent=None, start=at(1, 3), end=at(1, 4), model="gpt-4o",
                  provider="openai", input_tokens=10_000, output_tokens=1_000, cost=0.035)
    with Store.open(tmp_path / "refused.db") as store:
        store.ingest([run_span("r-refused", "retry", trace=trace, start=at(1), end=at(1, 5), project="p",
                               owner="o"), refused, ok])
        (run,) = reprice(store, **MINI).runs
    assert (run.llm_calls, run.actual_unpriced, run.repriced_unpriced) == (2, 0, 0)
    assert run.actual_usd == pytest.approx(0.035, abs=1e-12)
    assert run.repriced_usd == pytest.approx(10_000 * 0.15e-6 + 1_000 * 0.6e-6, abs=1e-12)


def test_reprice_one_run_by_id_prefix_from_the_command_line(store_path: Path) -> None:
    out = CliRunner().invoke(main, ["reprice", "--store", str(store_path), "--model", "gpt-4o-mini",
                                    "--provider", "openai", "--run", "r3-tri", "--format", "json"],
                             catch_exceptions=False)
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert [r["run_id"] for r in data["runs"]] == ["r3-triage"]
    missing = CliRunner().invoke(main, ["reprice", "--store", str(store_path), "--model", "gpt-4o-mini",
                                        "--run", "zzz"])
    assert missing.exit_code == 1 and "no run 'zzz'" in missing.stderr
