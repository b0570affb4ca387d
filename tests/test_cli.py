"""The `runtrace` command: runs, show, and its errors, on a real store file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import runtrace
from runtrace.cli import main, parse_when

RUN_FIELDS = {
    "id": str, "name": str, "project": (str, type(None)), "owner": (str, type(None)),
    "service": (str, type(None)), "outcome": str, "stop_reason": (str, type(None)), "cost_usd": float,
    "unpriced_calls": int, "input_tokens": int, "output_tokens": int, "cached_input_tokens": int,
    "reasoning_tokens": int, "llm_calls": int, "tool_calls": int, "repeated_reads": int,
    "loop_detected": bool, "started_at": str, "ended_at": (str, type(None)), "duration_s": (float, type(None)),
}
SPAN_FIELDS = {"span_id", "parent_span_id", "name", "kind", "model", "input_tokens", "output_tokens",
               "cached_input_tokens", "cost_usd", "tool_name", "start", "end", "status", "attributes"}


@pytest.fixture
def populated(instrumented) -> tuple[Path, dict[str, str]]:
    @runtrace.tool
    def grep(pattern: str) -> str:
        return f"3 matches for {pattern}"

    ids = {}
    with runtrace.run("fix login", project="web", owner="alice") as run:
        grep("login")
        grep("login")
        run.accept()
    ids["fix"] = run.id
    with runtrace.run("refactor <b>billing</b>", project="billing", owner="bob") as run:
        grep("invoice")
        run.reject("too big")
    ids["refactor"] = run.id
    runtrace.flush()
    return instrumented.store_path, ids


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_runs_json_is_the_design_contract(populated) -> None:
    store, ids = populated
    code, out, _ = invoke("runs", "--store", str(store), "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert [r["id"] for r in rows] == [ids["refactor"], ids["fix"]]  # newest first
    for row in rows:
        for key, kind in RUN_FIELDS.items():
            assert isinstance(row[key], kind), (key, row[key])
    fix = rows[1]
    assert (fix["outcome"], fix["tool_calls"], fix["repeated_reads"], fix["llm_calls"]) == ("accepted", 2, 1, 0)


def test_runs_filters(populated) -> None:
    store, ids = populated
    _, out, _ = invoke("runs", "--store", str(store), "--format", "json", "--project", "billing")
    assert [r["id"] for r in json.loads(out)] == [ids["refactor"]]
    _, out, _ = invoke("runs", "--store", str(store), "--format", "json", "--outcome", "accepted")
    assert [r["id"] for r in json.loads(out)] == [ids["fix"]]
    _, out, _ = invoke("runs", "--store", str(store), "--format", "json", "--owner", "nobody")
    assert json.loads(out) == []
    _, out, _ = invoke("runs", "--store", str(store), "--format", "json", "--since", "2999-01-01")
    assert json.loads(out) == []
    _, out, _ = invoke("runs", "--store", str(store), "--format", "json", "--since", "1h", "-n", "1")
    assert len(json.loads(out)) == 1


def test_runs_table_shows_names_outcomes_and_flags(populated) -> None:
    store, _ = populated
    code, out, _ = invoke("runs", "--store", str(store))
    assert code == 0
    assert "fix login" in out and "accepted" in out and "1 re-read" in out
    assert "refactor <b>billing</b>" in out  # shown as text, not interpreted


def test_show_json_has_the_run_fields_and_its_spans(populated) -> None:
    store, ids = populated
    code, out, _ = invoke("show", ids["fix"][:10], "--store", str(store), "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["id"] == ids["fix"]
    assert set(RUN_FIELDS) <= set(data)
    assert [s["name"] for s in data["spans"]] == ["run fix login", "execute_tool grep", "execute_tool grep"]
    for span in data["spans"]:
        assert set(span) >= SPAN_FIELDS
    assert [s["kind"] for s in data["spans"]] == ["run", "tool", "tool"]
    assert [s["tool_name"] for s in data["spans"]] == [None, "grep", "grep"]


def test_show_tree(populated) -> None:
    store, ids = populated
    code, out, _ = invoke("show", ids["fix"], "--store", str(store))
    assert code == 0
    assert "execute_tool grep" in out and "repeated read x2" in out


def test_clear_messages_not_tracebacks(tmp_path, populated) -> None:
    store, _ = populated
    code, _, err = invoke("runs", "--store", str(tmp_path / "missing.db"))
    assert code == 1
    assert "missing.db" in err and "Traceback" not in err
    code, _, err = invoke("show", "ffffffffffff", "--store", str(store))
    assert code == 1
    assert "no run 'ffffffffffff'" in err
    code, _, err = invoke("runs", "--store", str(store), "--since", "yesterday-ish")
    assert code == 2
    assert "neither a duration" in err


def test_parse_when() -> None:
    assert parse_when("2026-11-01").isoformat() == "2026-11-01T00:00:00+00:00"
    assert parse_when("2026-11-01T10:00:00Z").isoformat() == "2026-11-01T10:00:00+00:00"
    assert parse_when(None) is None


def test_show_marks_a_wrapper_span_over_the_counted_call_as_a_duplicate(tmp_path) -> None:
    """An OpenLLMetry-style wrapper with usage over the SDK's own span: one call, shown once as counted."""
    from runtrace.store.db import Store
    from store_helpers import llm, run_span

    path = tmp_path / "dup.db"
    with Store.open(path) as store:
        store.ingest([run_span("r-dup", 1, start_s=0, end_s=10),
                      llm("r-dup", 2, start_s=1, end_s=5, parent=1, input_tokens=1000, output_tokens=100, cost=0.25),
                      llm("r-dup", 3, start_s=1.1, end_s=4.9, parent=2, input_tokens=1000, output_tokens=100,
                          cost=0.25)])
    code, out, _ = invoke("show", "r-dup", "--store", str(path))
    assert code == 0
    marked = [line for line in out.splitlines() if "duplicate: another span counts this call" in line]
    assert len(marked) == 1 and "4000 ms" in marked[0]  # the wrapper, not the SDK's span inside it (3800 ms)
    assert out.count("$0.25") == 3  # the run's total, the counted call, and the duplicate's struck-through cost
