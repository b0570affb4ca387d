"""The Spend page: bars per hour, day or week, a totals row, models grouped by family, on real stores."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runtrace import semconv as sc
from runtrace.server import reads
from runtrace.server.app import create_app
from runtrace.store.db import Store
from test_server_support import (
    FIXTURE_TOTAL_USD,
    SEC,
    at,
    build_fixture_store,
    llm_span,
    run_span,
    running_server,
    trace_id,
)

DAY = 24.0  # hours, for at()


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixture_store(tmp_path_factory.mktemp("spend") / "runtrace.db")


@pytest.fixture
def store(store_path: Path) -> Iterator[Store]:
    with Store.open(store_path, create=False) as opened:
        yield opened


@pytest.fixture(scope="module")
def snapshots_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three runs on gpt-5.5's snapshots (one of them on two), one on Claude, spread over 20 days."""
    path = tmp_path_factory.mktemp("snapshots") / "runtrace.db"
    records = []
    plan = [("s1", 0.0, [("gpt-5.5-2026-01-15", 0.10), ("gpt-5.5-2026-03-01", 0.20)]),
            ("s2", 3 * DAY, [("gpt-5.5-2026-03-01", 0.40)]),
            ("s3", 10 * DAY, [("gpt-5.5", 0.05)]),
            ("s4", 19 * DAY, [("claude-sonnet-4-20250514", 0.30)])]
    for n, (run_id, hours, calls) in enumerate(plan, start=1):
        t, s = trace_id(100 + n), at(hours)
        root = f"c{n:015x}"
        records.append(run_span(run_id, run_id, trace=t, start=s, end=s + 10 * SEC, project="p", owner="o",
                                span_id=root))
        for k, (model, usd) in enumerate(calls):
            provider = sc.PROVIDER_ANTHROPIC if model.startswith("claude") else sc.PROVIDER_OPENAI
            records.append(llm_span(run_id, trace=t, parent=root, start=s + (k + 1) * SEC, end=s + (k + 2) * SEC,
                                    model=model, provider=provider, input_tokens=100, output_tokens=10, cost=usd))
    with Store.open(path) as opened:
        assert opened.ingest(records) == len(records)
    return path


@pytest.mark.parametrize(("model", "family"), [
    ("gpt-4o-2024-08-06", "gpt-4o"), ("gpt-4o", "gpt-4o"), ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("claude-sonnet-4-20250514", "claude-sonnet-4"), ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
    ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"), ("gpt-5.5-2026-01-15", "gpt-5.5"),
    ("anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic.claude-3-5-sonnet"),
    ("gemini-1.5-flash-001", "gemini-1.5-flash"), ("gemini-2.5-pro-preview-05-06", "gemini-2.5-pro"),
    ("claude-opus-4@20250514", "claude-opus-4"), ("llama-3.1-8b", "llama-3.1-8b"), ("o3", "o3"),
    ("(unknown)", "(unknown)"),
])
def test_model_family_drops_the_snapshot_suffix(model: str, family: str) -> None:
    assert reads.model_family(model) == family


def test_family_groups_snapshots_and_counts_each_run_once(snapshots_path: Path) -> None:
    with Store.open(snapshots_path, create=False) as store:
        chart = reads.spend(store, "family", since_ns=None, until_ns=None, now_ns=at(30 * DAY))
    assert chart.bucket == "day"
    assert [(g, round(usd, 9), runs, u) for g, usd, runs, u in chart.totals] == [
        ("gpt-5.5", 0.75, 3, 0), ("claude-sonnet-4", 0.30, 1, 0)]
    assert {f: [(m, round(usd, 9), n) for m, usd, n, _u in rows] for f, rows in chart.members.items()} == {
        "gpt-5.5": [("gpt-5.5-2026-03-01", 0.60, 2), ("gpt-5.5-2026-01-15", 0.10, 1), ("gpt-5.5", 0.05, 1)],
        "claude-sonnet-4": [("claude-sonnet-4-20250514", 0.30, 1)]}
    assert (round(chart.total[0], 9), chart.total[1], chart.total[2]) == (1.05, 4, 0)
    # "by model" still splits them, as before.
    with Store.open(snapshots_path, create=False) as store:
        by_model = reads.spend(store, "model", since_ns=None, until_ns=None, now_ns=at(30 * DAY))
    assert [g for g, *_rest in by_model.totals] == ["gpt-5.5-2026-03-01", "claude-sonnet-4-20250514",
                                                    "gpt-5.5-2026-01-15", "gpt-5.5"]


def test_bars_per_week_start_on_mondays(snapshots_path: Path) -> None:
    with Store.open(snapshots_path, create=False) as store:
        weeks = reads.spend(store, "family", since_ns=None, until_ns=None, now_ns=at(30 * DAY), bucket="week")
        days = reads.spend(store, "project", since_ns=None, until_ns=None, now_ns=at(30 * DAY), bucket="day")
        hours = reads.spend(store, "project", since_ns=None, until_ns=None, now_ns=at(30 * DAY), bucket="hour")
    # 2026-11-20 is a Friday: its week began on Monday 11-16; the last run (12-09) is in the week of 12-07.
    assert weeks.bucket == "week"
    assert weeks.labels == ["2026-11-16", "2026-11-23", "2026-11-30", "2026-12-07"]
    assert dict(weeks.series)["gpt-5.5"] == pytest.approx([0.30, 0.40, 0.05, 0.0], abs=1e-12)  # s2 ran on Monday 11-23
    assert dict(weeks.series)["claude-sonnet-4"] == pytest.approx([0.0, 0.0, 0.0, 0.30], abs=1e-12)
    assert (days.bucket, len(days.labels), days.labels[0], days.labels[-1]) == ("day", 20, "2026-11-20", "2026-12-09")
    assert (hours.bucket, len(hours.labels)) == ("hour", 400)  # 457 hours: the newest 400 drawn


def test_auto_buckets_follow_the_range(store: Store) -> None:
    assert reads.spend(store, "project", since_ns=None, until_ns=None, now_ns=at(48)).bucket == "hour"
    assert reads.spend(store, "project", since_ns=at(-30 * DAY), until_ns=None, now_ns=at(48)).bucket == "day"
    long = reads.spend(store, "project", since_ns=at(-200 * DAY), until_ns=None, now_ns=at(48))
    assert (long.bucket, len(long.labels)) == ("week", 29)  # Monday 2026-05-04 to the week of 11-16
    assert (long.labels[0], long.labels[-1]) == ("2026-05-04", "2026-11-16")
    many = reads.spend(store, "project", since_ns=at(-200 * DAY), until_ns=None, now_ns=at(48), bucket="hour")
    assert len(many.labels) == 400  # the newest 400 hours
    with pytest.raises(ValueError, match="unknown bucket 'month'; choose one of auto, hour, day, week"):
        reads.spend(store, "project", since_ns=None, until_ns=None, now_ns=at(48), bucket="month")


def test_the_totals_row_is_the_whole_period(store: Store) -> None:
    chart = reads.spend(store, "provider", since_ns=None, until_ns=None, now_ns=at(48))
    assert chart.total[0] == pytest.approx(FIXTURE_TOTAL_USD, abs=1e-12)
    assert chart.total[1:] == (7, 1)


def test_spend_page_has_the_bucket_picker_the_totals_row_and_families(store_path: Path,
                                                                       snapshots_path: Path) -> None:
    with running_server(create_app(store_path)) as url:
        page = httpx.get(f"{url}/spend?by=owner&period=all&bucket=day").text
        assert "Cost per day by owner" in page
        assert '<option value="day" selected>per day</option>' in page
        assert re.search(r'<tr class="total" id="spend-total"><th>All</th><td class="num">\$0\.4182'
                         r'<span class="unpriced"[^>]*>\+\?</span></td><td class="num">7</td>', page)
        bad = httpx.get(f"{url}/spend?bucket=month")
        assert bad.status_code == 400
        assert "bucket=&#39;month&#39; is not one of auto, hour, day, week" in bad.text
    with running_server(create_app(snapshots_path)) as url:
        page = httpx.get(f"{url}/spend?by=family&period=all").text
        rows = re.findall(r'<tr(?: class="(\w+)")?><td>([^<]+)</td><td class="num">([^<]+)</td>'
                          r'<td class="num">(\d+)</td>', page)
        assert rows == [
            ("family", "gpt-5.5", "$0.75", "3"), ("member", "gpt-5.5-2026-03-01", "$0.60", "2"),
            ("member", "gpt-5.5-2026-01-15", "$0.10", "1"), ("member", "gpt-5.5", "$0.05", "1"),
            ("family", "claude-sonnet-4", "$0.30", "1"), ("member", "claude-sonnet-4-20250514", "$0.30", "1")]
        assert "by family" in page
