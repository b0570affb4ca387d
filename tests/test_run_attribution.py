"""A run without its run span keeps its name, project and owner (issue 9, item 15b).

The run's first spans carry ``runtrace.run.name``/``runtrace.project``/
``runtrace.owner`` too; the store takes them from there when the run span is
absent, and the run span's values win when present, in any arrival order.
"""

from __future__ import annotations

import itertools
from functools import reduce
from pathlib import Path

import pytest

import runtrace
from llm_fakes import ChatUsage, FakeLLM, chat_completion, json_reply
from runtrace import _config
from runtrace import semconv as sc
from runtrace.store.aggregate import merge, run_contribution
from runtrace.store.db import Store
from runtrace.store.queries import get_run
from runtrace.store.records import SpanRecord
from store_helpers import llm, run_span, span, tool

NAMED = {sc.RUN_NAME: "fix flaky test #412", sc.PROJECT: "billing", sc.OWNER: "alice"}


def crashed_run_spans() -> list[SpanRecord]:
    """The first LLM call (named) ends first; the later spans carry no name and end later."""
    return [
        llm("r", 1, start_s=1, end_s=2, input_tokens=100, cost=0.001, attrs=dict(NAMED)),
        tool("r", 2, start_s=3, end_s=4),
        llm("r", 3, start_s=5, end_s=9, input_tokens=200, cost=0.002),
        span("r", 4, start_s=6, end_s=7),
    ]


def orders(spans: list[SpanRecord]):
    """Every arrival order, each once as one batch and once as one batch per span."""
    for perm in itertools.permutations(spans):
        yield [list(perm)]
        yield [[s] for s in perm]


def stored_descriptor(tmp_path: Path, batches: list[list[SpanRecord]], n: int) -> tuple:
    with Store.open(tmp_path / f"a{n}.db") as store:
        for batch in batches:
            store.ingest(batch)
        run = get_run(store, "r")
    assert run is not None
    return run["name"], run["project"], run["owner"], run["outcome"]


def test_a_crashed_run_is_named_by_its_first_span_in_any_order(tmp_path: Path) -> None:
    spans = crashed_run_spans()
    seen = {stored_descriptor(tmp_path, batches, n) for n, batches in enumerate(orders(spans))}
    assert seen == {("fix flaky test #412", "billing", "alice", "unfinished")}
    deltas = [run_contribution(s) for s in spans]
    for perm in itertools.permutations(deltas):
        total = reduce(merge, perm)  # type: ignore[arg-type]
        assert (total.descriptor.name, total.descriptor.project, total.descriptor.owner) == (
            "fix flaky test #412", "billing", "alice")


def test_the_run_span_wins_over_the_named_child_in_any_order(tmp_path: Path) -> None:
    spans = [*crashed_run_spans()[:2],
             run_span("r", 9, start_s=0, end_s=1.5, name="the real name", project="p-run", owner=None)]
    seen = {stored_descriptor(tmp_path, batches, n) for n, batches in enumerate(orders(spans))}
    assert seen == {("the real name", "p-run", None, "open")}


def test_spans_without_names_still_give_the_service(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        store.ingest([llm("r", 1, start_s=1, end_s=2, cost=0.001)])
        run = get_run(store, "r")
    assert run is not None
    assert (run["name"], run["service"]) == (None, "support-agent")


THREE_CENTS = json_reply(chat_completion(model="gpt-5.5", usage=ChatUsage(3000, 500)))


def test_the_runs_first_spans_carry_its_name_until_one_has_ended(instrumented) -> None:
    fake = FakeLLM(default=THREE_CENTS)
    client = fake.openai()

    @runtrace.tool
    def read_file(path: str) -> str:
        return "contents of " + path

    tracer = _config.settings().tracer("test")
    with runtrace.run("fix flaky test #412", project="billing", owner="alice") as run:
        outer = tracer.start_span("agent step")  # starts first, still open while the LLM call runs
        client.chat.completions.create(model="gpt-5.5", messages=[{"role": "user", "content": "go"}])
        read_file(path="a.py")
        client.chat.completions.create(model="gpt-5.5", messages=[{"role": "user", "content": "go on"}])
        outer.end()
    spans = {s.name: s for s in instrumented.spans()}
    llm_spans = [s for s in instrumented.spans() if s.name == "chat gpt-5.5"]
    assert len(llm_spans) == 2

    def naming(s) -> dict:
        attrs = dict(s.attributes or {})
        return {k: attrs[k] for k in (sc.RUN_NAME, sc.PROJECT, sc.OWNER) if k in attrs}

    assert naming(spans["agent step"]) == NAMED  # started before any span of the run had ended
    assert naming(llm_spans[0]) == NAMED
    assert naming(spans["execute_tool read_file"]) == {}  # the first LLM span had ended by then
    assert naming(llm_spans[1]) == {}
    assert all((s.attributes or {}).get(sc.RUN_ID) == run.id for s in instrumented.spans())


def test_an_unnamed_project_and_owner_are_left_out(instrumented) -> None:
    fake = FakeLLM(default=THREE_CENTS)
    client = fake.openai()
    with runtrace.run("just a name"):
        client.chat.completions.create(model="gpt-5.5", messages=[{"role": "user", "content": "go"}])
    (only,) = instrumented.llm_spans()
    attrs = dict(only.attributes or {})
    assert attrs[sc.RUN_NAME] == "just a name"
    assert sc.PROJECT not in attrs and sc.OWNER not in attrs


@pytest.mark.parametrize("named_first", [True, False])
def test_a_named_span_is_not_overridden_by_a_later_unnamed_one_in_sqlite(tmp_path: Path,
                                                                          named_first: bool) -> None:
    named, later = crashed_run_spans()[0], crashed_run_spans()[2]
    batches = [[named], [later]] if named_first else [[later], [named]]
    assert stored_descriptor(tmp_path, batches, 0)[:3] == ("fix flaky test #412", "billing", "alice")


def test_the_clickhouse_run_view_names_a_crashed_run_the_same_way(tmp_path: Path) -> None:
    pytest.importorskip("chdb")
    from scale_helpers import ClickHouse, insert_spans

    db = ClickHouse(tmp_path / "chdb")
    try:
        crashed = crashed_run_spans()
        with_run = [llm("w", 11, start_s=1, end_s=2, cost=0.001, attrs=dict(NAMED)),
                    run_span("w", 12, start_s=0, end_s=1.5, name="the real name", project="p-run", owner=None)]
        for record in [*reversed(crashed), *with_run]:  # one insert block per span, latest first
            insert_spans(db, [record])
        rows = {r["run_id"]: r for r in db.rows("SELECT run_id, name, project, owner, outcome"
                                                  " FROM otel.runtrace_runs_v")}
    finally:
        db.close()
    assert {k: (r["name"], r["project"], r["owner"], r["outcome"]) for k, r in rows.items()} == {
        "r": ("fix flaky test #412", "billing", "alice", "unfinished"),
        "w": ("the real name", "p-run", None, "open"),
    }
