"""The FTS5 search index (store/search.py) and the report rollup (store/rollup.py), on real SQLite files.

Both are kept in step by the store itself (the index in the ingest transaction,
the rollup by triggers), and migration m005 builds them for an older store.
"""

from __future__ import annotations

import dataclasses
import random
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from runtrace import semconv as sc
from runtrace.report import build_report
from runtrace.server import reads as ui
from runtrace.store import migrations, search
from runtrace.store.db import Store
from runtrace.store.queries import get_run, get_span
from runtrace.store.records import SpanRecord
from runtrace.store.verdicts import record_verdict
from store_helpers import BASE_NS, S, llm, run_span, span, tool

MODELS = ("gpt-5.5", "gpt-4o-mini", "claude-sonnet-4-6", "")


def rowids(store: Store, query: str, column: str | None = None) -> list[int]:
    expression = search.match_expression(query, column)
    assert expression is not None
    return [r[0] for r in store.execute(f"SELECT rowid FROM {search.TABLE} WHERE {search.TABLE} MATCH ? "
                                        "ORDER BY rowid", (expression,))]


def span_ids(store: Store, query: str, column: str | None = None) -> list[str]:
    ids = rowids(store, query, column)
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    return [r[0] for r in store.execute(f"SELECT span_id FROM spans WHERE rowid IN ({marks}) ORDER BY span_id", ids)]


def with_attrs(record: SpanRecord, **attrs: Any) -> SpanRecord:
    return dataclasses.replace(record, attributes={**record.attributes, **attrs})


def indexed(store: Store) -> list[int]:
    """Every span rowid the index holds (each span's name has the word of its kind in it)."""
    found: set[int] = set()
    for word in ("run", "execute", "chat", "step"):
        found.update(rowids(store, word, "name"))
    return sorted(found)


def sample_spans() -> list[SpanRecord]:
    return [
        run_span("r1", 1, start_s=0, end_s=9, name="fix the flaky test"),
        with_attrs(tool("r1", 2, start_s=1, end_s=2, tool_name="git_diff", parent=1),
                   **{"file.path": "src/needle-7f3a9c.py", sc.GEN_AI_TOOL_CALL_ARGUMENTS: '{"ref": "HEAD~1"}'}),
        llm("r1", 3, start_s=2, end_s=3, input_tokens=100, output_tokens=5, cost=0.01, parent=1,
            attrs={sc.GEN_AI_OUTPUT_MESSAGES: '[{"role": "assistant", "parts": [{"content": "Résumé ready"}]}]'}),
        span("r2", 4, start_s=5, end_s=6, name="step", status="ERROR", message="connection refused by upstream"),
    ]


def test_ingest_indexes_names_attribute_values_and_captured_text(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        assert store.ingest(sample_spans()) == 4
        assert indexed(store) == [1, 2, 3, 4]  # under the spans' own rowids
        assert [r[0] for r in store.execute("SELECT rowid FROM spans ORDER BY rowid")] == [1, 2, 3, 4]
        two, three, four = f"{2:016x}", f"{3:016x}", f"{4:016x}"
        assert span_ids(store, "needle-7f3a9c") == [two]  # an attribute value
        assert span_ids(store, "git_diff", "name") == [two]  # the tool, in the name column
        assert span_ids(store, "git_diff", "attrs") == [two]  # gen_ai.tool.name is an attribute too
        assert span_ids(store, "resume", "text") == [three]  # captured text; case and accents do not matter
        assert span_ids(store, "resume", "attrs") == []
        assert span_ids(store, "connection refused") == [four]  # the status message
        assert span_ids(store, "flaky tes") == [f"{1:016x}"]  # the last word is a prefix
        assert span_ids(store, "100") == []  # numbers (token counts) are not indexed
        assert span_ids(store, "stop") == [three]  # list values (finish reasons) are
        # a span sent again is not indexed twice; a batch mixing old and new spans indexes the new one
        assert store.ingest(sample_spans()[:2]) == 0
        assert store.ingest([*sample_spans()[:2], tool("r2", 5, start_s=7, end_s=8, tool_name="grep_needle")]) == 1
        assert indexed(store) == [1, 2, 3, 4, 5]
        assert span_ids(store, "needle") == [f"{2:016x}", f"{5:016x}"]


@pytest.mark.parametrize(("query", "runs"), [
    ('"', []), ('"needle', ["r1"]), ("needle*", ["r1"]), ("needle OR", []), ("NEAR(needle", []),
    ("file.path:needle", []), ("src:needle", ["r1"]), ("^needle", ["r1"]), ("needle AND NOT", []), ("(", []), ("-needle", ["r1"]),
    ("{attrs}: needle", []), ("\\", []), ("''", []), ("needle\x00", ["r1"]), ("refused)", ["r2"]),
])
def test_fts_syntax_in_a_query_is_plain_text(tmp_path: Path, query: str, runs: list[str]) -> None:
    with Store.open(tmp_path / "s.db") as store:
        store.ingest(sample_spans())
        assert sorted({h.run_id for h in ui.search(store, query)}) == runs
        assert sorted(g.run_id for g in ui.search_runs(store, query).groups) == runs


def test_match_expression_quotes_every_word() -> None:
    assert search.match_expression('say "hi" OR x*') == '"say" AND "hi" AND "OR" AND "x"*'
    assert search.match_expression("git_diff", "name") == 'name : ("git" AND "diff"*)'
    assert search.match_expression("*** ()") is None
    with pytest.raises(ValueError, match="unknown search column 'nope'"):
        search.match_expression("x", "nope")


def _schema3_store(path: Path) -> None:
    """A store as runtrace wrote it before m005 (no search index, no rollup)."""
    with Store.open(path) as store:
        store.ingest(sample_spans())
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for (trigger,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f"DROP TRIGGER {trigger}")
        conn.execute(f"DROP TABLE {search.TABLE}")
        conn.execute("DROP TABLE report_rollup")
        conn.execute(f"PRAGMA user_version = {migrations.MIGRATIONS.index(migrations.m005_search_fts)}")
    finally:
        conn.close()


def test_m005_indexes_the_spans_of_an_older_store(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _schema3_store(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = ?", (search.TABLE,)).fetchone()[0] == 0
    with Store.open(path) as store:
        assert indexed(store) == [1, 2, 3, 4]
        assert [h.run_id for h in ui.search(store, "needle-7f3a9c")] == ["r1"]
        assert [tuple(r) for r in store.execute(
            "SELECT grp, outcome, runs, cost_nusd FROM report_rollup WHERE dim = 'model'")] == [
            ("gpt-5.5", "open", 1, 10_000_000)]
        store.ingest([tool("r2", 9, start_s=7, end_s=8, tool_name="after_upgrade")])
        assert [h.span_id for h in ui.search(store, "after_upgrade", field="tool")] == [f"{9:016x}"]


def test_search_page_results_are_grouped_by_run_with_filters_and_paging(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        records: list[SpanRecord] = []
        for r in range(6):
            run = f"run{r}"
            records.append(run_span(run, 100 * r + 1, start_s=r * 100, end_s=r * 100 + 50, name=f"task {r}",
                                    project="billing" if r % 2 else "search", outcome="accepted" if r < 3 else None))
            for k in range(2, 5):
                records.append(tool(run, 100 * r + k, start_s=r * 100 + k, end_s=r * 100 + k + 1,
                                    tool_name="run_tests", parent=100 * r + 1))
        store.ingest(records)
        page = ui.search_runs(store, "run_tests", runs_per_page=4, hits_per_run=2)
        assert [g.run_id for g in page.groups] == ["run5", "run4", "run3", "run2"]  # newest stored first
        assert [len(g.hits) for g in page.groups] == [2, 2, 2, 2] and all(g.more for g in page.groups)
        assert page.groups[3].name == "task 2" and page.groups[3].outcome == "accepted"
        assert page.groups[0].outcome == "open" and page.groups[0].cost_usd == 0.0
        assert page.words == ["run", "tests"]
        assert page.next_cursor is not None
        older = ui.search_runs(store, "run_tests", runs_per_page=4, hits_per_run=2, after=page.next_cursor)
        assert [g.run_id for g in older.groups] == ["run1", "run0"] and older.next_cursor is None
        billing = ui.search_runs(store, "run_tests", flt=ui.SearchFilter(project="billing", outcome="accepted"))
        assert [g.run_id for g in billing.groups] == ["run1"]
        later = ui.search_runs(store, "run_tests", flt=ui.SearchFilter(since_ns=BASE_NS + 400 * S))
        assert [g.run_id for g in later.groups] == ["run5", "run4"]
        with pytest.raises(ValueError, match="bad page cursor"):
            ui.search_runs(store, "run_tests", after="garbage")


def _join_report(store: Store, by: str) -> dict[str, tuple]:
    """What the report by model/provider was before the rollup: the join over every run."""
    rows = store.execute(
        f"WITH rm AS (SELECT run_id, coalesce(nullif({by}, ''), '(none)') AS g, sum(cost_nusd) AS c, "
        "sum(llm_calls) AS l, sum(unpriced_calls) AS u FROM run_models GROUP BY run_id, g) "
        "SELECT rm.g, count(*), sum(rm.c), sum(rm.l), sum(runs.tool_calls), sum(runs.repeated_reads), sum(rm.u), "
        "group_concat(runs.outcome) FROM rm JOIN runs ON runs.id = rm.run_id GROUP BY rm.g")
    return {r[0]: (r[1], r[2], r[3], r[4], r[5], r[6], sorted(r[7].split(","))) for r in rows}


def _rollup_report(store: Store, by: str) -> dict[str, tuple]:
    out = {}
    for r in store.execute(
            "SELECT grp, sum(runs), sum(cost_nusd), sum(llm_calls), sum(tool_calls), sum(repeated_reads), "
            "sum(unpriced_calls) FROM report_rollup WHERE dim = ? GROUP BY grp HAVING sum(runs) > 0", (by,)):
        outcomes = sorted(o for o, n in store.execute(
            "SELECT outcome, sum(runs) FROM report_rollup WHERE dim = ? AND grp = ? GROUP BY outcome", (by, r[0]))
            for _ in range(n))
        out[r[0]] = (*tuple(r)[1:], outcomes)
    return out


def test_the_rollup_equals_the_join_whatever_the_order_batches_and_verdicts(tmp_path: Path) -> None:
    rng = random.Random(14)
    records: list[SpanRecord] = []
    for r in range(12):
        run = f"run{r:02d}"
        start = rng.randint(-3, 40) * 12 * 3600  # some runs before the epoch day boundary of BASE_NS, many days
        if r % 3:
            records.append(run_span(run, 1000 * r + 1, start_s=start + 5, end_s=start + 500, name=f"task {r}"))
        for k in range(2, rng.randint(3, 12)):
            if rng.random() < 0.6:
                records.append(llm(run, 1000 * r + k, start_s=start + k, end_s=start + k + 1,
                                   model=rng.choice(MODELS), provider=rng.choice(("openai", "anthropic")),
                                   input_tokens=rng.randint(1, 900), output_tokens=rng.randint(1, 90),
                                   cost=rng.choice((None, 0.001 * rng.randint(1, 50))),
                                   source=rng.choice((sc.SOURCE_GENAI_PRICES, sc.SOURCE_UNKNOWN))))
            else:
                records.append(tool(run, 1000 * r + k, start_s=start + k - 7, end_s=start + k,
                                    repeated=rng.random() < 0.3))
    rng.shuffle(records)
    with Store.open(tmp_path / "s.db") as store:
        for i in range(0, len(records), 7):  # many batches: every run row is updated several times
            store.ingest(records[i:i + 7])
            if i % 21 == 0:
                assert _rollup_report(store, "model") == _join_report(store, "model")
        for r in range(0, 12, 4):
            record_verdict(store, f"run{r:02d}", "rejected", by="ci")
        store.ingest(records[:5])  # resent: nothing changes
        for by in ("model", "provider"):
            assert _rollup_report(store, by) == _join_report(store, by)
            # and the report reads it: same groups as the join, also over periods cut inside a day
            report = build_report(store, by=by)
            assert {g.group: g.runs for g in report.groups} == {k: v[0] for k, v in _join_report(store, by).items()}
        for since_h, until_h in ((-30, 500), (7, 31), (0, 24), (13, 13 + 24 * 9)):
            def at(hours: int) -> datetime:
                return datetime.fromtimestamp((BASE_NS + hours * 3600 * S) / 1e9, tz=timezone.utc)

            cut = build_report(store, by="model", since=at(since_h), until=at(until_h))
            with sqlite3.connect(tmp_path / "s.db") as conn:  # the exact join over the same period
                expected = {g: n for g, n in conn.execute(
                    "SELECT coalesce(nullif(m.model, ''), '(none)') AS g, count(DISTINCT m.run_id) FROM run_models m "
                    "JOIN runs ON runs.id = m.run_id WHERE runs.started_ns >= ? AND runs.started_ns < ? GROUP BY g",
                    (BASE_NS + since_h * 3600 * S, BASE_NS + until_h * 3600 * S))}
            assert {g.group: g.runs for g in cut.groups} == expected, (since_h, until_h)


def test_the_rollup_refuses_a_rekeyed_run_models_row(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        store.ingest([llm("r1", 1, start_s=0, end_s=1, cost=0.5)])
    conn = sqlite3.connect(tmp_path / "s.db")
    try:
        with pytest.raises(sqlite3.IntegrityError, match="never re-keyed"):
            conn.execute("UPDATE run_models SET model = 'other'")
    finally:
        conn.close()


def test_get_run_pages_its_spans_and_get_span_reads_one(tmp_path: Path) -> None:
    records = [run_span("r1", 1, start_s=0, end_s=100)]
    records += [tool("r1", k, start_s=k, end_s=k + 0.5, parent=1, tool_name=f"t{k}") for k in range(2, 42)]
    with Store.open(tmp_path / "s.db") as store:
        store.ingest(records)
        whole = get_run(store, "r1")
        assert whole is not None and len(whole["spans"]) == 41 and whole["span_count"] == 41
        page = get_run(store, "r1", offset=10, limit=5)
        assert page is not None
        assert [s["span_id"] for s in page["spans"]] == [s["span_id"] for s in whole["spans"][10:15]]
        assert page["spans"] == whole["spans"][10:15]
        assert {k: v for k, v in page.items() if k != "spans"} == {k: v for k, v in whole.items() if k != "spans"}
        assert get_run(store, "r1", offset=40, limit=10)["spans"] == whole["spans"][40:]  # type: ignore[index]
        one = get_span(store, "r1", f"{7:016x}")
        assert one == whole["spans"][6]
        assert one is not None and one["tool_name"] == "t7" and one["start"] == "2026-11-18T11:06:47.000000Z"
        assert get_span(store, "r1", "nope") is None
        with pytest.raises(ValueError, match="offset and limit must be >= 0"):
            get_run(store, "r1", offset=-1)


def test_every_word_must_be_in_one_value_and_accents_do_not_matter(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        store.ingest([
            *sample_spans(),
            with_attrs(span("r3", 7, start_s=1, end_s=2, name="split"), **{"a.one": "alpha", "a.two": "beta"}),
            with_attrs(span("r4", 8, start_s=1, end_s=2, name="together"), **{"a.one": "alpha and beta"}),
        ])
        assert [(h.run_id, h.matched, h.snippet) for h in ui.search(store, "alpha beta")] == [
            ("r4", "attribute a.one", "alpha and beta")]
        resume = ui.search(store, "resume ready", field="text")
        assert [(h.run_id, h.matched) for h in resume] == [("r1", f"captured text {sc.GEN_AI_OUTPUT_MESSAGES}")]
        assert ui.search(store, "resume", field="attribute") == []


def test_spans_past_the_largest_rowid_are_indexed_by_key(tmp_path: Path) -> None:
    """Once a rowid reached 2**63 - 1, SQLite gives new rows random free rowids: the index follows them."""
    path = tmp_path / "s.db"
    with Store.open(path) as store:
        store.ingest(sample_spans())
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE spans SET rowid = 9223372036854775807 WHERE rowid = 4")
    with Store.open(path) as store:
        store.ingest([tool("r5", 20, start_s=1, end_s=2, tool_name="past_the_end"),
                      tool("r5", 21, start_s=2, end_s=3, tool_name="also_past")])
        stored = {r[0]: r[1] for r in store.execute("SELECT span_id, rowid FROM spans WHERE run_id = 'r5'")}
        assert rowids(store, "past_the_end", "name") == [stored[f"{20:016x}"]]
        assert rowids(store, "also_past", "name") == [stored[f"{21:016x}"]]
        assert [h.run_id for h in ui.search(store, "also_past", field="tool")] == ["r5"]
