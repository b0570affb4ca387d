"""list_runs / get_run: the DESIGN section 8 JSON contract, filters, paging, id prefixes."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from runtrace.store.db import Store
from runtrace.store.errors import AmbiguousRunIdError
from runtrace.store.queries import get_run, list_runs, resolve_run_id
from runtrace.store.timespec import iso, to_ns
from store_helpers import BASE_NS, S, llm, outcome_span, run_span, tool

BASE = datetime.fromtimestamp(BASE_NS // S, tz=timezone.utc)

# DESIGN section 8: every run field and the types it may take.
RUN_FIELDS: dict[str, tuple[type, ...]] = {
    "id": (str,), "name": (str, type(None)), "project": (str, type(None)), "owner": (str, type(None)),
    "service": (str, type(None)), "outcome": (str,), "stop_reason": (str, type(None)), "cost_usd": (float,),
    "unpriced_calls": (int,), "input_tokens": (int,), "output_tokens": (int,), "cached_input_tokens": (int,),
    "reasoning_tokens": (int,), "llm_calls": (int,), "tool_calls": (int,), "repeated_reads": (int,),
    "loop_detected": (bool,), "started_at": (str,), "ended_at": (str, type(None)),
    "duration_s": (float, type(None)),
}
SPAN_FIELDS: dict[str, tuple[type, ...]] = {
    "span_id": (str,), "parent_span_id": (str, type(None)), "name": (str,), "kind": (str,),
    "model": (str, type(None)), "input_tokens": (int, type(None)), "output_tokens": (int, type(None)),
    "cached_input_tokens": (int, type(None)), "cost_usd": (float, type(None)),
    "tool_name": (str, type(None)), "start": (str,), "end": (str,), "status": (str,), "attributes": (dict,),
}
OUTCOMES = {"accepted", "rejected", "abandoned", "error", "budget_stopped", "unfinished", "open"}


def check_types(obj: dict, fields: dict[str, tuple[type, ...]]) -> None:
    for key, types in fields.items():
        assert key in obj, key
        value = obj[key]
        if bool not in types:
            assert not isinstance(value, bool), key
        assert isinstance(value, types), (key, value)


def check_time(value: str | None) -> None:
    if value is None:
        return
    assert value.endswith("Z")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() == timedelta(0)


@pytest.fixture
def store(tmp_path: Path):  # -> Iterator[Store]
    with Store.open(tmp_path / "q.db") as s:
        s.ingest([
            # r-old: billing/alice, accepted, gpt-5.5, ended
            run_span("r-old-1111", 1, start_s=0, end_s=20, name="fix flaky test", project="billing",
                     owner="alice", outcome="accepted"),
            llm("r-old-1111", 2, start_s=1, end_s=2, parent=1, input_tokens=100, output_tokens=10, cost=0.5),
            tool("r-old-1111", 3, start_s=3, end_s=4, parent=1, tool_name="grep"),
            # r-mid: search/bob, rejected later, o3
            run_span("r-mid-2222", 11, start_s=100, end_s=150, name="Summarise 100% of tickets",
                     project="search", owner="bob"),
            llm("r-mid-2222", 12, start_s=101, end_s=102, parent=11, model="o3", input_tokens=7,
                output_tokens=3, cost=0.25),
            outcome_span("r-mid-2222", 13, at_s=500, outcome="rejected", by="ci", reason="wrong"),
            # r-new: crashed, no run span
            llm("r-new-3333", 21, start_s=200, end_s=201, input_tokens=1, output_tokens=1, cost=None,
                source=None, model="local", provider="ollama"),
        ])
        yield s


def test_list_runs_json_shape_and_order(store: Store) -> None:
    runs = list_runs(store)
    assert [r["id"] for r in runs] == ["r-new-3333", "r-mid-2222", "r-old-1111"]  # newest first
    for run in runs:
        check_types(run, RUN_FIELDS)
        check_time(run["started_at"])
        check_time(run["ended_at"])
        assert run["outcome"] in OUTCOMES
        assert json.loads(json.dumps(run)) == run  # plain JSON, nothing lost
    old, mid, new = runs[2], runs[1], runs[0]
    assert (old["outcome"], old["cost_usd"], old["duration_s"], old["started_at"], old["ended_at"]) == (
        "accepted", 0.5, 20.0, "2026-11-18T11:06:40.000000Z", "2026-11-18T11:07:00.000000Z")
    assert (mid["outcome"], mid["outcome_by"], mid["outcome_reason"], mid["outcome_at"]) == (
        "rejected", "ci", "wrong", "2026-11-18T11:15:00.000000Z")
    assert (new["outcome"], new["ended_at"], new["duration_s"], new["unpriced_calls"], new["cost_usd"]) == (
        "unfinished", None, None, 1, 0.0)
    assert new["models"] == [{"provider": "ollama", "model": "local", "llm_calls": 1, "cost_usd": 0.0,
                              "input_tokens": 1, "output_tokens": 1, "cached_input_tokens": 0,
                              "unpriced_calls": 1}]


def test_get_run_json_shape(store: Store) -> None:
    run = get_run(store, "r-old-1111")
    assert run is not None
    check_types(run, RUN_FIELDS)
    assert json.loads(json.dumps(run)) == run
    assert [(s["kind"], s["name"]) for s in run["spans"]] == [
        ("run", "run fix flaky test"), ("llm", "chat gpt-5.5"), ("tool", "execute_tool grep")]
    for span in run["spans"]:
        check_types(span, SPAN_FIELDS)
        check_time(span["start"])
        check_time(span["end"])
    run_s, llm_s, tool_s = run["spans"]
    assert (llm_s["parent_span_id"], llm_s["model"], llm_s["input_tokens"], llm_s["output_tokens"],
            llm_s["cached_input_tokens"], llm_s["cost_usd"], llm_s["status"]) == (
        run_s["span_id"], "gpt-5.5", 100, 10, 0, 0.5, "UNSET")
    assert llm_s["attributes"]["gen_ai.response.finish_reasons"] == ["stop"]
    assert llm_s["attributes"]["runtrace.run.id"] == "r-old-1111"
    assert (tool_s["tool_name"], tool_s["model"], tool_s["input_tokens"], tool_s["cost_usd"]) == (
        "grep", None, None, None)
    assert run_s["parent_span_id"] is None


def test_filters(store: Store) -> None:
    def ids(**kw: object) -> list[str]:
        return [r["id"] for r in list_runs(store, **kw)]  # type: ignore[arg-type]

    assert ids(project="billing") == ["r-old-1111"]
    assert ids(owner="bob") == ["r-mid-2222"]
    assert ids(outcome="unfinished") == ["r-new-3333"]
    assert ids(outcome="rejected") == ["r-mid-2222"]
    assert ids(model="o3") == ["r-mid-2222"]
    assert ids(model="gpt-5.5") == ["r-old-1111"]
    assert ids(model="nope") == []
    assert ids(since=BASE + timedelta(seconds=100)) == ["r-new-3333", "r-mid-2222"]
    assert ids(until=BASE + timedelta(seconds=100)) == ["r-old-1111"]
    assert ids(since=BASE + timedelta(seconds=50), until=BASE + timedelta(seconds=199)) == ["r-mid-2222"]
    assert ids(text="FLAKY") == ["r-old-1111"]
    assert ids(text="100%") == ["r-mid-2222"]  # % is literal, not a wildcard
    assert ids(text="_") == []
    assert ids(text="3333") == ["r-new-3333"]
    assert ids(project="billing", owner="bob") == []
    assert ids(since=datetime(3000, 1, 1, tzinfo=timezone.utc)) == []  # beyond 64-bit ns: clamped
    assert ids(until=datetime(3000, 1, 1)) == ["r-new-3333", "r-mid-2222", "r-old-1111"]
    assert ids(since=datetime(1000, 1, 1)) == ["r-new-3333", "r-mid-2222", "r-old-1111"]
    assert ids(limit=2) == ["r-new-3333", "r-mid-2222"]
    assert ids(limit=2, offset=2) == ["r-old-1111"]
    assert ids(limit=0) == ["r-new-3333", "r-mid-2222", "r-old-1111"]
    with pytest.raises(ValueError, match="limit and offset must be >= 0"):
        list_runs(store, limit=-1)


def test_prefix_lookup(store: Store, tmp_path: Path) -> None:
    assert get_run(store, "r-mid")["id"] == "r-mid-2222"  # type: ignore[index]
    assert resolve_run_id(store, "r-old-1111") == "r-old-1111"
    assert get_run(store, "zzz") is None
    with pytest.raises(AmbiguousRunIdError) as info:
        get_run(store, "r-")
    assert info.value.candidates == ("r-mid-2222", "r-new-3333", "r-old-1111")
    assert str(info.value) == ("run id prefix 'r-' is ambiguous: it matches r-mid-2222, r-new-3333, "
                               "r-old-1111")
    with pytest.raises(ValueError, match="must not be empty"):
        get_run(store, "")


def test_exact_id_wins_over_longer_ids_with_that_prefix(tmp_path: Path) -> None:
    with Store.open(tmp_path / "p.db") as s:
        s.ingest([llm("ab", 1, start_s=0, end_s=1, cost=0.1), llm("abc", 2, start_s=0, end_s=1, cost=0.2)])
        assert get_run(s, "ab")["cost_usd"] == 0.1  # type: ignore[index]
        assert get_run(s, "abc")["cost_usd"] == 0.2  # type: ignore[index]


def test_time_helpers() -> None:
    assert iso(BASE_NS + 123_456_789) == "2026-11-18T11:06:40.123456Z"
    assert iso(None) is None
    assert to_ns(BASE) == BASE_NS
    assert to_ns(BASE.replace(tzinfo=None)) == BASE_NS  # naive means UTC
    assert to_ns(BASE.astimezone(timezone(timedelta(hours=5)))) == BASE_NS
    assert to_ns(datetime(3000, 1, 1)) == 2**63 - 1
    assert to_ns(datetime(1000, 1, 1)) == -(2**63)


def test_get_run_orders_spans_as_sqlite_does_ties_included(tmp_path: Path) -> None:
    """Whole get_run sorts in Python: by start, longest first at one start, then span id (UTF-8 byte order)."""
    records = [run_span("rord", 0, start_s=0, end_s=10)]
    # same start, different ends; same start and end, span ids that sort differently as code points and bytes
    for n, (start, end) in enumerate([(1, 2), (1, 5), (1, 5), (1, 5), (0, 3), (2, 2), (1, 2)], start=1):
        records.append(tool("rord", n, start_s=start, end_s=end))
    ids = ["b", "a", "\u00e9", "Z", "\U0001f600", "a1", "0"]
    records = [records[0]] + [dataclasses.replace(r, span_id=f"{ids[i]}{i:015x}")
                              for i, r in enumerate(records[1:])]
    path = tmp_path / "order.db"
    with Store.open(path) as store:
        store.ingest(records)
        run = get_run(store, "rord")
        assert run is not None
        expected = [r[0] for r in store.execute(
            "SELECT span_id FROM spans WHERE run_id = 'rord' ORDER BY start_ns, end_ns DESC, span_id")]
        assert [s["span_id"] for s in run["spans"]] == expected
        assert len(expected) == 8
        paged = get_run(store, "rord", offset=0, limit=8)
        assert paged is not None and paged["spans"] == run["spans"]
