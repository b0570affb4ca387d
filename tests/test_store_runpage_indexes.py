"""m007: the run page reads its outline from an index and the notable spans from a partial index.

The page of a 5,000-span run used to read every span's table row (about a KB
of JSON each) and test its attribute text for the repeated-read and
missing-details marks. These tests hold the page's queries to the indexes
(by SQLite's own query plan, not by timing), check that an older store gets
them on upgrade with the same page facts, and that the partial index follows
a later rewrite of a span's attributes (the agents' re-read recount does one).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from runtrace import semconv as sc
from runtrace.store import migrations, queries, runpage
from runtrace.store.db import Store
from runtrace.store.records import EventRecord
from store_helpers import llm, run_span, tool

RUN = "run-page-indexes"


def _records() -> list:
    return [
        run_span(RUN, 1, start_s=0, end_s=30),
        llm(RUN, 2, start_s=1, end_s=2, input_tokens=100, output_tokens=10, cost=0.25),
        llm(RUN, 3, start_s=3, end_s=4, input_tokens=100, output_tokens=10),  # unpriced: notable
        tool(RUN, 4, start_s=5, end_s=6),
        tool(RUN, 5, start_s=7, end_s=8, repeated=True,
             events=(EventRecord(sc.EVENT_REPEATED_READ, 1, {sc.TOOL_REPEAT_COUNT: 2}),)),
        tool(RUN, 6, start_s=9, end_s=10),  # repeated_read false (every tool span here): not notable
        tool(RUN, 7, start_s=11, end_s=12),
    ]


def _plan(store: Store, sql: str) -> str:
    return " | ".join(str(r[3]) for r in store.reader().execute(f"EXPLAIN QUERY PLAN {sql}", (RUN,)).fetchall())


def _notable(store: Store) -> list[str]:
    return [s["span_id"] for s in runpage.span_facts(store, RUN) if "name" in s]


def test_the_outline_comes_from_a_covering_index_in_page_order_and_details_from_the_partial_index(
        tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        store.ingest(_records())
        assert _plan(store, runpage._OUTLINE_SQL) == "SEARCH spans USING COVERING INDEX spans_run_start (run_id=?)"
        assert _plan(store, runpage._NOTABLE_SQL) == "SEARCH spans USING INDEX spans_notable (run_id=?)"
        whole = f"SELECT {queries._SPAN_COLUMNS} FROM spans WHERE run_id = ? {queries._SPAN_ORDER}"
        assert "TEMP B-TREE" not in _plan(store, whole)  # get_run's order is the index's: no sorter
        # the unpriced call and the marked read with its event; the priced call is named as the dearest
        assert _notable(store) == [f"{2:016x}", f"{3:016x}", f"{5:016x}"]
        facts = {s["span_id"]: s for s in runpage.span_facts(store, RUN)}
        assert facts[f"{5:016x}"]["attributes"] == {sc.TOOL_REPEATED_READ: True}
        assert facts[f"{4:016x}"] == {"rowid": 4, "span_id": f"{4:016x}", "parent_span_id": None, "kind": "tool",
                                      "cost_usd": None, "start_ns": facts[f"{4:016x}"]["start_ns"],
                                      "end_ns": facts[f"{4:016x}"]["end_ns"], "events": [], "attributes": {}}


def test_the_partial_index_follows_a_later_rewrite_of_a_spans_attributes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store.open(path) as store:
        store.ingest(_records())
        assert f"{7:016x}" not in _notable(store)
        with sqlite3.connect(path) as conn:  # what store/rereads.py does to a read it finds repeated
            conn.execute("UPDATE spans SET attributes = json_set(attributes, ?, json('true')) WHERE span_id = ?",
                         (f'$."{sc.TOOL_REPEATED_READ}"', f"{7:016x}"))
        assert f"{7:016x}" in _notable(store)
        facts = {s["span_id"]: s for s in runpage.span_facts(store, RUN)}
        assert facts[f"{7:016x}"]["attributes"] == {sc.TOOL_REPEATED_READ: True}


def test_an_older_store_gets_the_indexes_on_upgrade_and_the_same_facts(tmp_path: Path) -> None:
    path = tmp_path / "v6.db"
    with Store.open(path) as store:
        store.ingest(_records())
        expected = runpage.span_facts(store, RUN)
    conn = sqlite3.connect(path, isolation_level=None)
    try:  # back to what runtrace wrote before m007
        conn.execute("DROP INDEX spans_notable")
        conn.execute("DROP INDEX spans_run_start")
        conn.execute("CREATE INDEX spans_run_start ON spans (run_id, start_ns)")
        conn.execute(f"PRAGMA user_version = {migrations.MIGRATIONS.index(migrations.m007_run_page_indexes)}")
    finally:
        conn.close()
    with Store.open(path) as store:
        assert runpage.span_facts(store, RUN) == expected
        columns = [r[2] for r in store.execute("PRAGMA index_info(spans_run_start)")]
        assert columns == ["run_id", "start_ns", "end_ns", "span_id", "parent_span_id", "kind", "cost_usd"]
        assert _plan(store, runpage._NOTABLE_SQL) == "SEARCH spans USING INDEX spans_notable (run_id=?)"
