"""The run totals declared once (runtrace/totals.py, issue 10 item 3): every place that lists them agrees.

The SQLite ``runs`` table and the ClickHouse run view must carry the same
totals (the first test: both read from the declaration, and neither holds a
total it does not declare); the committed view SQL is the one written from
the declaration; both paths give every declared total the same value for the
same spans; and the in-process run's live totals, its run span and the
store's aggregation all hold exactly the declared fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

import runtrace
from runtrace import semconv
from runtrace.runs import RunTotals
from runtrace.scale import views
from runtrace.store import aggregate
from runtrace.store.db import Store
from runtrace.store.queries import list_runs
from runtrace.totals import (
    CONTRACT_TOTALS,
    RUN_TOTALS,
    SPAN_TOTALS,
    STORED_TOTALS,
    TotalField,
    _check,
    json_totals,
)
from scale_helpers import SQL_DIR, ClickHouse, build_fixture, fixture_clickhouse

# Columns of `runs` that are no total: the run's identity, its descriptive fields and the key that
# picked them, the outcome, the budget, times and the run-span flag.
SQLITE_NOT_TOTALS = {
    "id", "name", "project", "owner", "service", "desc_rank", "desc_end_ns", "desc_span_id", "stop_reason",
    "budget_max_cost_usd", "budget_max_llm_calls", "budget_max_tool_calls", "budget_max_seconds",
    "budget_max_input_tokens", "budget_on_exceed", "outcome", "outcome_at_ns", "outcome_by", "outcome_reason",
    "has_run_span", "started_ns", "ended_ns",
}
# Columns of runtrace_runs_v that are no total: the same kinds of field, plus the view's helpers
# (_d, _v), its trace, when a span was last seen, and error_spans (ClickHouse only: any span
# with an error status, for the dashboards; the run totals count api and tool errors).
CLICKHOUSE_NOT_TOTALS = {
    "run_id", "_d", "_v", "name", "project", "owner", "service", "outcome", "outcome_by", "outcome_reason",
    "stop_reason", "budget_max_cost_usd", "budget_max_seconds", "trace_id", "error_spans", "started_at",
    "ended_at", "last_seen_at", "duration_s",
}


@pytest.fixture(scope="module")
def fixture_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with Store.open(tmp_path_factory.mktemp("store") / "runtrace.db") as store:
        for records, _ in build_fixture().batches:
            store.ingest(records)
        yield store


@pytest.fixture(scope="module")
def ch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouse]:
    db = fixture_clickhouse(tmp_path_factory.mktemp("chdb"))
    yield db
    db.close()


def test_sqlite_runs_and_the_clickhouse_run_view_carry_the_same_totals(fixture_store: Store,
                                                                       ch: ClickHouse) -> None:
    sqlite_columns = {r["name"] for r in fixture_store.execute("PRAGMA table_info(runs)")}
    view_columns = {r["name"] for r in ch.rows("DESCRIBE TABLE otel.runtrace_runs_v")}
    # each side holds exactly the declared totals beside its non-total columns: none missing, none extra
    assert sqlite_columns - SQLITE_NOT_TOTALS == {f.column for f in STORED_TOTALS}
    assert view_columns - CLICKHOUSE_NOT_TOTALS == {f.name for f in RUN_TOTALS}
    # so, by field: the view has every total the table stores, and the one it computes from parts
    by_column = {f.column: f.name for f in STORED_TOTALS}
    assert {by_column[c] for c in sqlite_columns - SQLITE_NOT_TOTALS} | {"errors"} \
        == view_columns - CLICKHOUSE_NOT_TOTALS
    assert len(RUN_TOTALS) == 18


def test_the_committed_run_view_is_the_one_written_from_the_declaration() -> None:
    text = (SQL_DIR / "04_runtrace_runs.sql").read_text(encoding="utf-8")
    assert views.replace_block(text) == text, \
        "stale: python -m runtrace.scale.views collector/clickhouse/04_runtrace_runs.sql"
    block = text[text.index(views.BEGIN) + len(views.BEGIN):text.index(views.END)]
    assert block.splitlines()[0] == "    sumIf(s.cost_nusd, s.counted = 1) / 1e9 AS cost_usd,"
    assert block.splitlines()[-1] == "    count() AS span_count,"
    assert len(block.splitlines()) == len(RUN_TOTALS)


def test_a_view_without_the_generated_block_is_named_as_such(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no generated totals block"):
        views.replace_block("CREATE VIEW v AS SELECT count() AS span_count FROM t;\n")
    path = tmp_path / "04.sql"
    path.write_text(f"SELECT\n{views.BEGIN}    0 AS old,\n{views.END}    1 AS x\n", encoding="utf-8")
    assert views.main([str(path)]) == 0
    assert path.read_text(encoding="utf-8") == f"SELECT\n{views.BEGIN}{views.run_totals_sql()}{views.END}    1 AS x\n"


def test_both_paths_give_every_declared_total_the_same_value(fixture_store: Store, ch: ClickHouse) -> None:
    mine = {r["id"]: r for r in list_runs(fixture_store, limit=0)}
    theirs = {r["run_id"]: r for r in ch.rows("SELECT * FROM otel.runtrace_runs_v")}
    assert sorted(mine) == sorted(theirs) == ["r-accept", "r-budget", "r-crash", "r-old", "r-other", "r-reject"]
    for run_id, run in mine.items():
        for f in RUN_TOTALS:
            if f.kind == "usd" and run[f.name] is not None:
                assert theirs[run_id][f.name] == pytest.approx(run[f.name], abs=1e-12), (run_id, f.name)
            else:
                assert theirs[run_id][f.name] == run[f.name], (run_id, f.name)
    assert mine["r-accept"]["errors"] == mine["r-accept"]["api_errors"] + mine["r-accept"]["tool_errors"]
    assert [mine["r-accept"][f.name] for f in CONTRACT_TOTALS] == [0.0596, 0, 15700, 1250, 1200, 200, 3, 2, 1,
                                                                    False]


def test_the_run_dict_lists_the_totals_in_declaration_order(fixture_store: Store) -> None:
    run = list_runs(fixture_store, limit=1)[0]
    keys = list(run)
    contract = keys[keys.index("stop_reason") + 1:keys.index("started_at")]
    extras = keys[keys.index("outcome_at") + 1:keys.index("has_run_span")]
    assert contract + extras == [f.name for f in RUN_TOTALS]


def test_json_values_follow_the_declared_kind() -> None:
    row = {f.column: 0 for f in STORED_TOTALS}
    row.update(cost_nusd=1_500_000_000, api_errors=2, tool_errors=3, loop_detected=1)
    values = json_totals(row, RUN_TOTALS)
    assert values["cost_usd"] == 1.5 and values["agent_cost_usd"] is None
    assert values["loop_detected"] is True and values["errors"] == 5 and values["api_errors"] == 2
    row["agent_cost_nusd"] = 250_000_000
    assert json_totals(row, RUN_TOTALS)["agent_cost_usd"] == 0.25


def test_a_declaration_that_cannot_work_fails_at_import() -> None:
    twice = (TotalField("llm_calls", "count", "sum", True, "count()"),) * 2
    with pytest.raises(ValueError, match=r"declared twice: \['llm_calls', 'llm_calls'\]"):
        _check(twice)
    bad_part = (TotalField("errors", "count", "parts", False, "x", parts=("nope",)),)
    with pytest.raises(ValueError, match="run total 'errors': its parts \\('nope',\\) must be summed counts"):
        _check(bad_part)


def test_the_aggregation_holds_every_stored_total() -> None:
    delta_fields = {f.name for f in dataclasses.fields(aggregate.RunDelta)}
    assert {str(f.column) for f in STORED_TOTALS} <= delta_fields
    assert set(aggregate._SUMS) | set(aggregate._MAXES) == {str(f.column) for f in STORED_TOTALS}
    accumulator = aggregate.RunAccumulator("r")
    assert all(getattr(accumulator, str(f.column)) == 0 for f in STORED_TOTALS)
    upsert = aggregate.UPSERT_RUN_SQL
    assert "loop_detected = max(runs.loop_detected, excluded.loop_detected)" in upsert
    assert "cost_nusd = min(runs.cost_nusd + excluded.cost_nusd, 9223372036854775807)" in upsert


def test_the_live_totals_and_the_run_span_carry_the_span_totals(instrumented) -> None:
    assert [f.name for f in dataclasses.fields(RunTotals)] == [f.name for f in SPAN_TOTALS]
    assert [f.span_attribute for f in SPAN_TOTALS] == [
        semconv.RUN_COST_USD, semconv.RUN_UNPRICED_CALLS, semconv.RUN_INPUT_TOKENS, semconv.RUN_OUTPUT_TOKENS,
        semconv.RUN_CACHED_INPUT_TOKENS, semconv.RUN_REASONING_TOKENS, semconv.RUN_LLM_CALLS,
        semconv.RUN_TOOL_CALLS, semconv.RUN_REPEATED_READS, semconv.RUN_LOOP_DETECTED]

    @runtrace.tool
    def read_file(path: str) -> str:
        return "same text"

    with runtrace.run("totals") as run:
        read_file("a.py")
        read_file("a.py")
        run.totals.cost_usd = 0.1 + 0.2  # rounded to 10 places on the span, as the JSON is
    span = next(s for s in instrumented.spans() if s.name == "run totals")
    carried = {k: v for k, v in span.attributes.items() if k.startswith("runtrace.run.")
               and k in {f.span_attribute for f in SPAN_TOTALS}}
    assert carried == {semconv.RUN_COST_USD: 0.3, semconv.RUN_UNPRICED_CALLS: 0, semconv.RUN_INPUT_TOKENS: 0,
                       semconv.RUN_OUTPUT_TOKENS: 0, semconv.RUN_CACHED_INPUT_TOKENS: 0,
                       semconv.RUN_REASONING_TOKENS: 0, semconv.RUN_LLM_CALLS: 0, semconv.RUN_TOOL_CALLS: 2,
                       semconv.RUN_REPEATED_READS: 1, semconv.RUN_LOOP_DETECTED: False}
    figures = run.figures()
    assert {k: figures[k] for k in ("cost_usd", "tool_calls", "repeated_reads")} == \
        {"cost_usd": 0.3, "tool_calls": 2, "repeated_reads": 1}


def test_the_csv_columns_are_the_section_8_fields_in_json_order(fixture_store: Store) -> None:
    from runtrace.cli.tables import CSV_FIELDS

    run = list_runs(fixture_store, limit=1)[0]
    keys = list(run)
    assert list(CSV_FIELDS) == [*keys[:keys.index("duration_s") + 1]]
    assert CSV_FIELDS[7:17] == tuple(f.name for f in CONTRACT_TOTALS)
