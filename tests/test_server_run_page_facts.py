"""The run page reads whole spans only for the rows it renders, and still says exactly what it said from get_run.

A 5,000-span run's page used to decode every span's attributes (``get_run``)
to build a page that shows 200 rows: about a second and a half. The page now
builds its sentences from ``store.runpage.span_facts`` (a few attributes
extracted in SQL); these tests hold it to the rows it renders without timing
anything, and check on the demo's and the fixture's runs (loops, repeated
reads, an error, budget stops, unpriced calls) that every figure and sentence
is the one the whole-run view gives.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtrace import semconv as sc
from runtrace.server.app import create_app
from runtrace.server.pages import load_run_view
from runtrace.server.runview import RunView, build_run_view
from runtrace.server.spanview import PAGE_SPANS
from runtrace.store import queries
from runtrace.store.db import Store
from runtrace.store.queries import get_run, list_runs
from runtrace.store.runpage import FACT_KEYS, span_facts
from test_server_spans import BIG_RUN, BIG_SPANS, build_big_store, page_span_ids
from test_server_support import (
    SEC,
    at,
    build_fixture_store,
    llm_span,
    running_server,
    span,
    tool_span,
    trace_id,
)


def _counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Count calls to ``runtrace.store.queries.<name>`` (the whole-span builder or the JSON decoder)."""
    calls: list[int] = []
    real: Callable[..., Any] = getattr(queries, name)

    def counted(*args: Any) -> Any:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(queries, name, counted)
    return calls


def test_the_page_of_a_5000_span_run_decodes_only_the_200_rows_it_renders(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = build_big_store(tmp_path / "big.db")
    span_dicts = _counting(monkeypatch, "_span_dict")
    decoded = _counting(monkeypatch, "loads")  # attributes JSON (the big run's spans have no events)
    with running_server(create_app(path)) as url:
        page = httpx.get(f"{url}/runs/{BIG_RUN}", timeout=60)
    assert page.status_code == 200
    assert len(page_span_ids(page.text)) == PAGE_SPANS
    assert f"{PAGE_SPANS} of {BIG_SPANS} spans shown" in page.text
    assert 'id="dearest-call"' in page.text and "most expensive call: chat gpt-4o-mini" in page.text
    assert len(span_dicts) == PAGE_SPANS
    assert len(decoded) == PAGE_SPANS


def _same_view(new: RunView, old: RunView) -> None:
    assert new.rows == old.rows
    assert (new.row_total, new.total_s, new.curve) == (old.row_total, old.total_s, old.curve)
    assert (new.gauges, new.detections, new.verdict) == (old.gauges, old.detections, old.verdict)
    assert (new.headline, new.unpriced, new.notes, new.agent_cost_usd) == (
        old.headline, old.unpriced, old.notes, old.agent_cost_usd)
    pick = ("span_id", "name", "cost_usd")
    assert ({k: new.dearest[k] for k in pick} if new.dearest else None) == (
        {k: old.dearest[k] for k in pick} if old.dearest else None)
    assert {k: v for k, v in new.run.items() if k != "spans"} == {k: v for k, v in old.run.items() if k != "spans"}


def _check_every_run(path: Path) -> dict[str, int]:
    """Compare every run's page view with the whole-run view; count the runs with each kind of sentence."""
    seen = {"runs": 0, "detections": 0, "headline": 0, "unpriced": 0}
    with Store.open(path, create=False) as store:
        for listed in list_runs(store, limit=0):
            whole = get_run(store, listed["id"])
            assert whole is not None
            loaded = load_run_view(store, listed["id"])
            assert loaded is not None
            view = loaded[1]
            _same_view(view, build_run_view(whole, row_limit=PAGE_SPANS))
            for kind in ("detections", "headline", "unpriced"):
                seen[kind] += bool(getattr(view, kind))
            by_id = {s["span_id"]: s for s in whole["spans"]}
            for light in span_facts(store, listed["id"]):  # the few attributes, exactly as stored
                whole_span = by_id[light["span_id"]]
                attrs = whole_span["attributes"]
                about = (whole_span["kind"] == "llm" and whole_span["cost_usd"] is None
                         or whole_span["status"] == "ERROR" or attrs.get(sc.TOOL_REPEATED_READ) is not None
                         and attrs.get(sc.TOOL_REPEATED_READ) is not False or sc.TOOL_DETAILS_MISSING in attrs)
                expected = {k: attrs[k] for k in FACT_KEYS if k in attrs} if about else {}
                assert {k: v for k, v in light["attributes"].items() if k in FACT_KEYS} == expected
                captured = bool(whole_span["events"]) and sc.GEN_AI_TOOL_CALL_ARGUMENTS in attrs
                assert (sc.GEN_AI_TOOL_CALL_ARGUMENTS in light["attributes"]) is captured
                assert light["events"] == by_id[light["span_id"]]["events"]
            seen["runs"] += 1
    return seen


def test_the_fixture_runs_pages_say_what_the_whole_run_view_says(tmp_path: Path) -> None:
    seen = _check_every_run(build_fixture_store(tmp_path / "fixture.db"))
    assert seen["runs"] == 7
    assert seen["detections"] >= 1


def test_the_demo_runs_pages_say_what_the_whole_run_view_says(tmp_path: Path) -> None:
    path = tmp_path / "demo.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", "import sys; from runtrace import demo; demo.run_demo(sys.argv[1])",
                    str(path)], check=True, timeout=120, env=env, capture_output=True)
    seen = _check_every_run(path)
    print(seen)
    assert seen["runs"] >= 5
    assert seen["detections"] >= 1 and seen["headline"] >= 1


def test_a_run_prefix_that_matches_two_runs_is_a_400_and_an_absent_run_a_404(tmp_path: Path) -> None:
    path = build_fixture_store(tmp_path / "fixture.db")
    with running_server(create_app(path)) as url:
        ambiguous = httpx.get(f"{url}/runs/r", timeout=30)
        absent = httpx.get(f"{url}/runs/no-such-run", timeout=30)
    assert ambiguous.status_code == 400
    assert "is ambiguous" in ambiguous.text
    assert absent.status_code == 404
    assert "no run &#39;no-such-run&#39; in this store" in absent.text


def test_an_errored_run_with_unpriced_calls_and_blind_tool_calls_says_the_same_sentences(tmp_path: Path) -> None:
    """The attributes the sentences read, extracted in SQL: booleans, counts, strings; absent, false and true."""
    t, s, root = trace_id(77), at(0), "c0" * 8
    records = [
        span("run broken", trace=t, run_id="broken", start=s, end=s + 10 * SEC, span_id=root, status="ERROR",
             attrs={sc.SPAN_ROLE: sc.ROLE_RUN, sc.RUN_NAME: "broken", sc.PROJECT: "p", sc.OWNER: "o",
                    sc.ERROR_TYPE: "ValueError", sc.RUN_OUTCOME: sc.OUTCOME_ERROR}),
        llm_span("broken", trace=t, parent=root, start=s + SEC, end=s + 2 * SEC, model="gpt-5.5",
                 provider=sc.PROVIDER_OPENAI, input_tokens=0, output_tokens=0,
                 extra={sc.COST_UNPRICED_REASON: sc.UNPRICED_MISSING_USAGE, sc.GEN_AI_REQUEST_STREAM: True}),
        llm_span("broken", trace=t, parent=root, start=s + 3 * SEC, end=s + 4 * SEC, model="acme-private-7",
                 provider="acme", input_tokens=10, output_tokens=5),
        llm_span("broken", trace=t, parent=root, start=s + 4 * SEC, end=s + 5 * SEC, model="acme-private-7",
                 provider="acme", input_tokens=10, output_tokens=5, extra={sc.GEN_AI_REQUEST_STREAM: False}),
        tool_span("broken", "Read", trace=t, parent=root, start=s + 5 * SEC, end=s + 6 * SEC,
                  extra={sc.TOOL_DETAILS_MISSING: True}),
        tool_span("broken", "read_file", trace=t, parent=root, start=s + 6 * SEC, end=s + 7 * SEC,
                  repeated=True, repeat_count=3, extra={sc.GEN_AI_TOOL_CALL_ARGUMENTS: '{"path": "a.py"}'}),
    ]
    path = tmp_path / "broken.db"
    with Store.open(path) as store:
        assert store.ingest(records) == len(records)
    seen = _check_every_run(path)
    assert seen == {"runs": 1, "detections": 1, "headline": 1, "unpriced": 1}
    with Store.open(path, create=False) as store:
        loaded = load_run_view(store, "broken")
    assert loaded is not None
    view = loaded[1]
    assert view.headline == ["The run failed with ValueError."]
    assert [u.count for u in view.unpriced] == [1, 2]
    assert view.unpriced[0].sentence.startswith("A streamed call to gpt-5.5 is unpriced: the stream carried no usage")
    assert len(view.notes) == 1 and view.notes[0].startswith("The agent did not send tool details for 1 tool call(s)")
    assert [d.sentence for d in view.detections] == [
        "read_file returned content identical to an earlier read (3 times so far)."]
