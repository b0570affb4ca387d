"""`runtrace report`: exact figures on the hand-built fixture store (see test_server_support)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtrace.cli import main
from runtrace.report import OUTCOME_ORDER, build_report
from runtrace.store.db import Store
from test_server_support import build_fixture_store


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixture_store(tmp_path_factory.mktemp("report") / "runtrace.db")


def _outcomes(**counts: int) -> dict[str, int]:
    return {o: counts.get(o, 0) for o in OUTCOME_ORDER}


def test_total_over_every_run(store_path: Path) -> None:
    with Store.open(store_path, create=False) as store:
        report = build_report(store)
    total = report.total
    assert report.groups == []
    assert total.runs == 7
    assert total.outcomes == _outcomes(accepted=3, rejected=1, abandoned=1, budget_stopped=1, open=1)
    assert total.cost_usd == pytest.approx(0.41819, abs=1e-12)
    assert total.cost_per_accepted_run == pytest.approx(0.41819 / 3, abs=1e-12)
    assert total.abandoned_rate == pytest.approx(1 / 7)
    assert (total.llm_calls, total.tool_calls, total.repeated_reads, total.unpriced_calls) == (10, 6, 2, 1)


def test_by_project(store_path: Path) -> None:
    with Store.open(store_path, create=False) as store:
        report = build_report(store, by="project")
    rows = {g.group: g for g in report.groups}
    assert [g.group for g in report.groups] == ["billing", "support", "web"]  # biggest spend first
    billing, support, web = rows["billing"], rows["support"], rows["web"]
    assert (billing.runs, billing.outcomes) == (2, _outcomes(accepted=1, rejected=1))
    assert billing.cost_usd == pytest.approx(0.2575, abs=1e-12)
    assert billing.cost_per_accepted_run == pytest.approx(0.2575, abs=1e-12)
    assert (billing.tool_calls, billing.repeated_reads, billing.llm_calls) == (5, 2, 3)
    assert support.outcomes == _outcomes(accepted=1, abandoned=1, budget_stopped=1)
    assert support.cost_usd == pytest.approx(0.14848, abs=1e-12)
    assert support.abandoned_rate == pytest.approx(1 / 3)
    assert (web.cost_usd, web.unpriced_calls, web.outcomes[  # r5 open with an unpriced call, r7 accepted
        "open"]) == (pytest.approx(0.01221, abs=1e-12), 1, 1)


def test_by_model_counts_a_run_under_each_model_with_that_models_cost(store_path: Path) -> None:
    with Store.open(store_path, create=False) as store:
        report = build_report(store, by="model")
    got = [(g.group, g.runs, round(g.cost_usd, 9), g.llm_calls, g.tool_calls, g.unpriced_calls, g.accepted)
           for g in report.groups]
    assert got == [
        ("gpt-4o", 3, 0.2225, 5, 4, 0, 1),
        ("claude-sonnet-4-20250514", 2, 0.195, 2, 1, 0, 1),
        ("gpt-4o-mini", 2, 0.00069, 2, 1, 0, 1),
        ("my-local-llm", 1, 0.0, 1, 0, 1, 0),
    ]
    assert report.total.runs == 7  # the total counts each run once


def test_by_provider(store_path: Path) -> None:
    with Store.open(store_path, create=False) as store:
        report = build_report(store, by="provider")
    openai = report.groups[0]
    assert openai.group == "openai"
    assert (openai.runs, openai.llm_calls, openai.tool_calls) == (5, 7, 5)
    assert openai.cost_usd == pytest.approx(0.22319, abs=1e-12)
    assert openai.outcomes == _outcomes(accepted=2, abandoned=1, budget_stopped=1, open=1)
    assert [g.group for g in report.groups] == ["openai", "anthropic", "ollama"]


def test_period_bounds_the_runs_by_start(store_path: Path) -> None:
    since = datetime(2026, 11, 20, 13, tzinfo=timezone.utc)
    with Store.open(store_path, create=False) as store:
        report = build_report(store, since=since)
        before = build_report(store, until=since)
    assert report.total.runs == 4
    assert report.total.cost_usd == pytest.approx(0.16021, abs=1e-12)  # r4 + r5 + r6 + r7
    assert report.total.cost_per_accepted_run == pytest.approx(0.16021 / 2, abs=1e-12)
    assert before.total.runs == 3
    assert before.total.cost_usd == pytest.approx(0.2575 + 0.00048, abs=1e-12)


def test_unknown_grouping_is_refused(store_path: Path) -> None:
    with Store.open(store_path, create=False) as store, pytest.raises(ValueError, match="cannot group by 'team'"):
        build_report(store, by="team")


def test_cli_json_is_the_report_dict(store_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", "--store", str(store_path), "--by", "owner", "--format", "json",
                                       "--since", "2026-11-20"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    with Store.open(store_path, create=False) as store:
        expected = build_report(store, by="owner", since=datetime(2026, 11, 20, tzinfo=timezone.utc)).as_dict()
    assert data == json.loads(json.dumps(expected))
    assert data["since"] == "2026-11-20T00:00:00.000000Z"
    assert [g["group"] for g in data["groups"]] == ["bob", "carol", "alice", "mallory"]


def test_cli_csv_has_a_row_per_group_and_the_total(store_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", "--store", str(store_path), "--by", "project", "--format", "csv"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["project"] for r in rows] == ["billing", "support", "web", "(total)"]
    assert rows[-1]["runs"] == "7"
    assert float(rows[-1]["cost_per_accepted_run"]) == pytest.approx(0.41819 / 3, abs=1e-12)
    assert rows[0]["accepted"] == "1" and rows[0]["rejected"] == "1"


def test_cli_table(store_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", "--store", str(store_path), "--by", "project"],
                                catch_exceptions=False, terminal_width=200)
    assert result.exit_code == 0, result.output
    total_line = next(line for line in result.output.splitlines() if "total" in line and "$" in line)
    cells = [c.strip() for c in total_line.strip("│ ").split("│")]
    assert cells == ["total", "7", "3", "1", "1", "1", "1", "$0.4182+?", "$0.1394", "14.3%", "10", "6", "2", "1"]


def test_cli_missing_store_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", "--store", str(tmp_path / "none.db")])
    assert result.exit_code == 1
    assert "no runtrace store at" in result.output
