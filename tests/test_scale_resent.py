"""At-least-once delivery on the scale path: spans re-sent to ClickHouse count once.

The collector's sending queue retries, and `runtrace forward` may re-send its last
batch after a crash. ClickHouse's insert deduplication cannot catch these (the
collector re-batches, and the exporter inserts asynchronously), so the run views
must count each (trace id, span id) once, as the embedded store does.
(Its own module: chDB runs one database path per process at a time.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtrace.scale import prices
from runtrace.store.db import Store
from runtrace.store.queries import list_runs
from scale_helpers import ClickHouse, build_fixture, insert_spans, split_sql
from test_scale_clickhouse import EXPECTED, FIELDS, ch_runs


@pytest.fixture(scope="module")
def store_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    path = tmp_path_factory.mktemp("store") / "runtrace.db"
    with Store.open(path) as store:
        for records, _ in build_fixture().batches:
            store.ingest(records)
            store.ingest(records)  # the store ignores spans it holds: the reference for ClickHouse
        return {r["id"]: r for r in list_runs(store, limit=0)}


@pytest.fixture(scope="module")
def ch_resent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouse]:
    """The fixture delivered at least once: every batch, then re-sends cut differently.

    ClickHouse's block deduplication cannot catch these (the collector re-batches, and
    the exporter inserts asynchronously): a re-sent batch whole, one overlapping half of
    two earlier batches, and one block holding the same span twice.
    """
    db = ClickHouse(tmp_path_factory.mktemp("chdb-resent"))
    db.execute("SYSTEM STOP MERGES otel.runtrace_spans")  # copies stay in their parts: FINAL must collapse them
    for statement in split_sql(prices.to_clickhouse_sql(prices.price_rows())):
        db.execute(statement)
    batches = build_fixture().batches
    for records, old in batches:
        insert_spans(db, records, old_spelling=old)
    reject, _ = batches[0]
    accept_late, _ = batches[2]
    accept_early, _ = batches[4]
    crash_first, _ = batches[1]
    insert_spans(db, reject)                                                        # the same batch again
    insert_spans(db, accept_late[len(accept_late) // 2:] + accept_early[:len(accept_early) // 2],
                 old_spelling=True)                                                 # half of two batches
    insert_spans(db, crash_first[:1] + crash_first[:1])                             # one span twice in a block
    yield db
    db.close()


def test_resent_spans_hold_duplicates_in_otel_traces(ch_resent: ClickHouse) -> None:
    # 23 spans + 6 (reject) + 2 + 1 (half of accept's two batches) + 2: the raw table keeps them all
    assert ch_resent.scalar("SELECT count() FROM otel.otel_traces") == 34
    assert ch_resent.scalar("SELECT uniqExact(TraceId, SpanId) FROM otel.otel_traces") == 23


def test_run_views_count_each_span_once(ch_resent: ClickHouse, store_runs: dict[str, dict]) -> None:
    runs = ch_runs(ch_resent)
    assert sorted(runs) == sorted(EXPECTED)
    for run_id, expected in EXPECTED.items():
        got = {f: runs[run_id][f] for f in FIELDS}
        got["cost_usd"] = round(got["cost_usd"], 9)
        assert got == expected, run_id
        assert runs[run_id]["span_count"] == store_runs[run_id]["span_count"], run_id
        assert runs[run_id]["repeated_read_tokens"] == store_runs[run_id]["repeated_read_tokens"], run_id
        assert runs[run_id]["reinjected_tokens"] == store_runs[run_id]["reinjected_tokens"], run_id
    assert runs["r-accept"]["span_count"] == 7 and runs["r-reject"]["span_count"] == 7


def test_model_and_tool_views_count_each_span_once(ch_resent: ClickHouse, store_runs: dict[str, dict]) -> None:
    mine = {(r["run_id"], r["provider"], r["model"]): r
            for r in ch_resent.rows("SELECT * FROM otel.runtrace_run_models_v")}
    theirs = {(run_id, m["provider"], m["model"]): m for run_id, run in store_runs.items() for m in run["models"]}
    assert sorted(mine) == sorted(theirs)
    for key, m in mine.items():
        for f in ("llm_calls", "input_tokens", "output_tokens", "cached_input_tokens", "unpriced_calls"):
            assert m[f] == theirs[key][f], (key, f)
        assert m["cost_usd"] == pytest.approx(theirs[key]["cost_usd"], abs=1e-12)
    rows = ch_resent.rows("SELECT tool_name, count() AS calls FROM otel.runtrace_tool_calls"
                          " GROUP BY tool_name ORDER BY tool_name")
    assert rows == [{"tool_name": "read_file", "calls": 2}, {"tool_name": "run_tests", "calls": 1},
                    {"tool_name": "search", "calls": 3}]
