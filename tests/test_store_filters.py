"""store/filters.py: one RunFilter, so `runtrace runs` and the runs page pick the same runs."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from runtrace.server import reads
from runtrace.store.db import Store
from runtrace.store.filters import FLAGS, RunFilter
from runtrace.store.queries import list_runs
from store_helpers import BASE_NS, S, llm, run_span


def test_an_empty_filter_has_no_where() -> None:
    assert RunFilter().where() == ("", [])


def test_the_where_clause_and_its_parameters() -> None:
    sql, params = RunFilter(project="billing", outcome="accepted", model="o3", flag="loop",
                            since_ns=10, until_ns=20, text="50%").where()
    assert sql == (" WHERE project = ? AND outcome = ?"
                   " AND EXISTS (SELECT 1 FROM run_models m WHERE m.run_id = runs.id AND m.model = ?)"
                   " AND loop_detected = 1 AND started_ns >= ? AND started_ns < ?"
                   " AND (id LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\' OR project LIKE ? ESCAPE '\\'"
                   " OR owner LIKE ? ESCAPE '\\')")
    assert params == ["billing", "accepted", "o3", 10, 20] + ["%50\\%%"] * 4


def test_the_server_uses_the_same_filter() -> None:
    assert reads.RunFilter is RunFilter
    assert reads.FLAGS is FLAGS


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "f.db") as s:
        s.ingest([
            run_span("r-a", 1, start_s=0, end_s=5, project="billing", owner="alice"),
            llm("r-a", 2, start_s=1, end_s=2, parent=1, model="o3", cost=0.5),
            run_span("r-b", 11, start_s=100, end_s=150, project="search", owner="bob"),
            llm("r-b", 12, start_s=101, end_s=102, parent=11, cost=0.25),
            run_span("r-c", 21, start_s=200, end_s=250, project="billing", owner="bob"),
        ])
        yield s


def test_list_runs_and_the_runs_page_agree(store: Store) -> None:
    since = datetime.fromtimestamp(BASE_NS // S + 50, tz=timezone.utc)
    cli = [r["id"] for r in list_runs(store, owner="bob", since=since)]
    page = reads.runs_page(store, RunFilter(owner="bob", since_ns=BASE_NS + 50 * S), limit=100)
    assert cli == ["r-c", "r-b"]
    assert [r["id"] for r in page.rows] == cli
    assert [r["id"] for r in list_runs(store, project="billing", model="o3")] == ["r-a"]


def test_the_time_window_is_since_inclusive_until_exclusive() -> None:
    from runtrace.store.filters import started_between

    assert started_between(None, None) == ([], [])
    assert started_between(5, None, column="runs.started_ns") == (["runs.started_ns >= ?"], [5])
    assert started_between(5, 9) == (["started_ns >= ?", "started_ns < ?"], [5, 9])


def test_the_filter_qualified_for_a_join() -> None:
    # report (runs JOIN run_models) and reprice (spans JOIN runs) need every column qualified.
    clauses, params = RunFilter(project="billing", owner="bob", outcome="error", model="o3", flag="unpriced",
                                since_ns=10, until_ns=20, text="x").clauses("runs")
    assert clauses == [
        "runs.project = ?", "runs.owner = ?", "runs.outcome = ?",
        "EXISTS (SELECT 1 FROM run_models m WHERE m.run_id = runs.id AND m.model = ?)",
        "runs.unpriced_calls > 0", "runs.started_ns >= ?", "runs.started_ns < ?",
        "(runs.id LIKE ? ESCAPE '\\' OR runs.name LIKE ? ESCAPE '\\' OR runs.project LIKE ? ESCAPE '\\'"
        " OR runs.owner LIKE ? ESCAPE '\\')"]
    assert params == ["billing", "bob", "error", "o3", 10, 20] + ["%x%"] * 4
    assert RunFilter(flag="error").where("runs") == (" WHERE runs.outcome = 'error'", [])
    assert RunFilter(flag="error").where() == (" WHERE outcome = 'error'", [])


def test_report_and_reprice_narrow_runs_through_the_one_filter() -> None:
    # Issue 10 item 4: no module but store/filters.py spells the project/time filter of runs.
    import inspect

    from runtrace import report, reprice
    from runtrace.server import reads as server_reads

    for module in (report, reprice, server_reads):
        source = inspect.getsource(module)
        assert "RunFilter(" in source, module.__name__
        for own in ("started_ns >= ?", "started_ns < ?", "project = ?", "owner = ?", "outcome = ?"):
            assert own not in source, (module.__name__, own)


def test_list_runs_report_and_reprice_pick_the_same_runs(store: Store) -> None:
    from runtrace.report import build_report
    from runtrace.reprice import reprice

    since = datetime.fromtimestamp(BASE_NS // S + 50, tz=timezone.utc)
    until = datetime.fromtimestamp(BASE_NS // S + 200, tz=timezone.utc)
    assert [r["id"] for r in list_runs(store, since=since, until=until)] == ["r-b"]
    report = build_report(store, since=since, until=until, by="project")
    assert (report.total.runs, [(g.group, g.runs) for g in report.groups]) == (1, [("search", 1)])
    assert report.total.cost_usd == 0.25
    repriced = reprice(store, model="gpt-4o-mini", since=since, until=until)
    assert [r.run_id for r in repriced.runs] == ["r-b"]
    assert [r.run_id for r in reprice(store, model="gpt-4o-mini", project="billing").runs] == ["r-a"]
