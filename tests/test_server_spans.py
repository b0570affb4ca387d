"""The run page's side panel and paged timeline over HTTP: /api/runs/{id}/spans[/{span_id}], on real stores.

The fixture store of ``test_server_support`` gives the exact figures; a second
store holds one run of 5,000 spans, which the page must serve a page at a time.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtrace import semconv as sc
from runtrace.server import charts
from runtrace.server.app import create_app
from runtrace.server.spanview import PAGE_SPANS, chat, tool_subject
from runtrace.store.db import Store
from runtrace.store.queries import get_run
from test_server_support import (
    SEC,
    XSS_RESULT,
    at,
    build_fixture_store,
    llm_span,
    run_span,
    running_server,
    tool_span,
    trace_id,
)

BIG_RUN = "big-run"
BIG_SPANS = 5000


def build_big_store(path: Path) -> Path:
    """One run of 5,000 spans: the run span, then LLM and tool calls in turn, 10 ms apart."""
    t, s = trace_id(99), at(0)
    root = "b0" * 8
    records = [run_span(BIG_RUN, "a very long run", trace=t, start=s, end=s + BIG_SPANS * SEC // 100,
                        project="load", owner="bench", span_id=root)]
    for i in range(1, BIG_SPANS):
        start = s + i * SEC // 100
        if i % 2:
            records.append(llm_span(BIG_RUN, trace=t, parent=root, start=start, end=start + SEC // 200,
                                    model="gpt-4o-mini", provider=sc.PROVIDER_OPENAI, input_tokens=100,
                                    output_tokens=10, cost=0.0001))
        else:
            records.append(tool_span(BIG_RUN, "read_file", trace=t, parent=root, start=start,
                                     end=start + SEC // 200,
                                     extra={sc.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps({"path": f"src/f{i}.py"})}))
    with Store.open(path) as store:
        assert store.ingest(records) == BIG_SPANS
    return path


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixture_store(tmp_path_factory.mktemp("spans") / "runtrace.db")


@pytest.fixture(scope="module")
def base(store_path: Path) -> Iterator[str]:
    with running_server(create_app(store_path)) as url:
        yield url


@pytest.fixture(scope="module")
def run1(store_path: Path) -> dict[str, Any]:
    with Store.open(store_path, create=False) as store:
        run = get_run(store, "r1-fix-flaky")
    assert run is not None
    return run


def page_span_ids(html: str) -> list[str]:
    return re.findall(r'<details class="wf-span k-\w+" id="span-(\w+)"', html)


def test_spans_api_pages_the_timeline_in_the_order_the_page_shows(base: str) -> None:
    html = httpx.get(f"{base}/runs/r1-fix-flaky").text
    whole = httpx.get(f"{base}/api/runs/r1-fix-flaky/spans").json()
    assert whole["total"] == 7
    assert [r["span_id"] for r in whole["rows"]] == page_span_ids(html)
    assert [(r["kind"], r["depth"]) for r in whole["rows"]] == [("run", 0), ("llm", 1), ("tool", 1), ("tool", 1),
                                                                 ("tool", 1), ("llm", 1), ("tool", 1)]
    assert [r["offset_pct"] for r in whole["rows"]] == [0.0, 2.5, 17.5, 22.5, 27.5, 32.5, 77.5]
    assert [r["cost_text"] for r in whole["rows"]] == ["", "$0.035", "", "", "", "$0.0425", ""]
    assert [r["flags"] for r in whole["rows"]][2:5] == [[], ["repeated read"], ["loop", "repeated read"]]
    assert [r["subject"] for r in whole["rows"]][2:5] == ["src/app.py"] * 3
    tail = httpx.get(f"{base}/api/runs/r1/spans?offset=5&limit=10").json()  # a unique prefix works too
    assert (tail["run_id"], tail["total"], tail["offset"]) == ("r1-fix-flaky", 7, 5)
    assert [r["span_id"] for r in tail["rows"]] == page_span_ids(html)[5:]


def test_span_api_gives_the_panel_everything_about_one_span(base: str, run1: dict[str, Any]) -> None:
    llm = next(s for s in run1["spans"] if s["kind"] == "llm" and s["cached_input_tokens"])
    detail = httpx.get(f"{base}/api/runs/r1-fix-flaky/spans/{llm['span_id']}").json()
    assert (detail["name"], detail["model"], detail["input_tokens"], detail["cached_input_tokens"]) == (
        "chat gpt-4o", "gpt-4o", 20_000, 10_000)
    assert detail["cost_usd"] == pytest.approx(0.0425, abs=1e-12)
    assert detail["cost_source"] == sc.SOURCE_GENAI_PRICES
    assert detail["text"] == {"duration": "17.0 s", "cost": "$0.0425", "offset": "+13.0 s",
                              "start": "2026-11-20 10:00:13 UTC", "input_tokens": "20,000",
                              "output_tokens": "500", "cached_input_tokens": "10,000", "reasoning_tokens": "0"}
    assert detail["unpriced"] is None
    assert detail["chat"] == [] and detail["tool"] == {}  # nothing captured on this call
    assert [k for k, _v in detail["attribute_rows"]] == sorted(llm["attributes"])

    looped = next(s for s in run1["spans"] if s["attributes"].get(sc.LOOP_DETECTED))
    tool = httpx.get(f"{base}/api/runs/r1-fix-flaky/spans/{looped['span_id']}").json()
    assert tool["flags"] == ["loop", "repeated read"]
    assert tool["tool"] == {"arguments": '{\n  "path": "src/app.py"\n}'}
    assert [e["name"] for e in tool["events"]] == [sc.EVENT_LOOP]
    assert sc.GEN_AI_TOOL_CALL_ARGUMENTS not in dict(tool["attribute_rows"])  # shown as Arguments instead


def test_span_api_says_why_a_call_is_unpriced(base: str, store_path: Path) -> None:
    with Store.open(store_path, create=False) as store:
        run = get_run(store, "r5-explore")
    assert run is not None
    local = next(s for s in run["spans"] if s["model"] == "my-local-llm")
    detail = httpx.get(f"{base}/api/runs/r5-explore/spans/{local['span_id']}").json()
    assert detail["flags"] == ["unpriced"]
    assert detail["text"]["cost"] == "unpriced"
    assert detail["unpriced"] == (
        "A call to my-local-llm is unpriced: runtrace has no price for my-local-llm; add a price override "
        "(RUNTRACE_PRICES / instrument(prices=...)); list known models with `runtrace prices list`.")


def test_captured_content_comes_as_a_conversation_of_plain_text(base: str, store_path: Path) -> None:
    with Store.open(store_path, create=False) as store:
        run = get_run(store, "r7-xss")
    assert run is not None
    llm = next(s for s in run["spans"] if s["kind"] == "llm")
    answer = httpx.get(f"{base}/api/runs/r7-xss/spans/{llm['span_id']}")
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["chat"] == [{"role": "assistant", "output": True, "parts": [
        {"type": "text", "text": "<b>hi</b><script>window.__xss_out=1</script>"}]}]
    tool = next(s for s in run["spans"] if s["kind"] == "tool")
    assert httpx.get(f"{base}/api/runs/r7-xss/spans/{tool['span_id']}").json()["tool"] == {"result": XSS_RESULT}


@pytest.mark.parametrize(("path", "status", "error"), [
    ("/api/runs/r1-fix-flaky/spans/nope", 404, "no span 'nope' in run 'r1-fix-flaky'"),
    ("/api/runs/nope/spans", 404, "no run 'nope' in this store"),
    ("/api/runs/nope/spans/abc", 404, "no run 'nope' in this store"),
    ("/api/runs/r1-fix-flaky/spans?limit=0", 400, "limit=0 is outside 1..1000"),
    ("/api/runs/r1-fix-flaky/spans?offset=-1", 400, "offset=-1 is outside 0..1000000000"),
    ("/api/runs/r1-fix-flaky/spans?page=2", 400, "unknown query parameter 'page': this page takes limit, offset"),
])
def test_bad_span_requests_are_json_errors_naming_the_problem(base: str, path: str, status: int, error: str) -> None:
    answer = httpx.get(base + path)
    assert answer.status_code == status
    assert answer.json() == {"error": error}


def test_an_ambiguous_prefix_is_a_400(base: str) -> None:
    answer = httpx.get(f"{base}/api/runs/r/spans")
    assert answer.status_code == 400
    assert "is ambiguous" in answer.json()["error"]


def test_a_5000_span_run_page_renders_one_page_and_the_api_serves_the_rest(tmp_path: Path) -> None:
    path = build_big_store(tmp_path / "big.db")
    with running_server(create_app(path)) as url:
        httpx.get(f"{url}/runs/{BIG_RUN}", timeout=60)  # warm up (templates, SQLite cache)
        started = time.perf_counter()
        page = httpx.get(f"{url}/runs/{BIG_RUN}", timeout=60)
        page_s = time.perf_counter() - started
        assert page.status_code == 200
        assert len(page_span_ids(page.text)) == PAGE_SPANS
        assert f'data-total="{BIG_SPANS}" data-shown="{PAGE_SPANS}"' in page.text
        assert f"{PAGE_SPANS} of {BIG_SPANS} spans shown" in page.text
        started = time.perf_counter()
        last = httpx.get(f"{url}/api/runs/{BIG_RUN}/spans?offset=4900&limit=200", timeout=60).json()
        api_s = time.perf_counter() - started
        assert (last["total"], len(last["rows"])) == (BIG_SPANS, 100)
        assert last["rows"][-1]["offset_pct"] == 99.98  # span 4999 starts at 49.99 s of 50 s
        assert [r["subject"] for r in last["rows"][-2:]] == ["src/f4998.py", None]  # a tool call, an LLM call
        one = httpx.get(f"{url}/api/runs/{BIG_RUN}/spans/{last['rows'][0]['span_id']}").json()
        assert one["text"]["offset"] == "+49.0 s"
    # Generous bounds only (a shared 2-core machine): the page and an API page each well under 10 s.
    assert page_s < 10 and api_s < 10, (page_s, api_s)
    print(f"5,000-span run: page {page_s * 1000:.0f} ms, API page {api_s * 1000:.0f} ms")


def test_chat_reads_parts_the_older_content_shape_system_and_tool_calls() -> None:
    attrs = {
        sc.GEN_AI_SYSTEM_INSTRUCTIONS: json.dumps([{"type": "text", "content": "be brief"}]),
        sc.GEN_AI_INPUT_MESSAGES: json.dumps([
            {"role": "user", "parts": [{"type": "text", "content": "fix it"}]},
            {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "read_file",
                                             "arguments": {"path": "a.py"}}]},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "result": "print(1)"}]},
            {"role": "user", "content": "older shape"},
        ]),
        sc.GEN_AI_OUTPUT_MESSAGES: json.dumps([{"role": "assistant", "finish_reason": "stop",
                                                "parts": [{"type": "text", "content": "done"}]}]),
    }
    assert chat(attrs) == [
        {"role": "system", "output": False, "parts": [{"type": "text", "text": "be brief"}]},
        {"role": "user", "output": False, "parts": [{"type": "text", "text": "fix it"}]},
        {"role": "assistant", "output": False, "parts": [
            {"type": "tool_call", "name": "read_file", "id": "c1", "arguments": '{\n  "path": "a.py"\n}'}]},
        {"role": "tool", "output": False, "parts": [{"type": "tool_result", "id": "c1", "text": "print(1)"}]},
        {"role": "user", "output": False, "parts": [{"type": "text", "text": "older shape"}]},
        {"role": "assistant", "output": True, "finish_reason": "stop", "parts": [{"type": "text", "text": "done"}]},
    ]
    assert chat({sc.GEN_AI_INPUT_MESSAGES: "not json"}) == [
        {"role": "user", "output": False, "parts": [{"type": "text", "text": "not json"}]}]
    assert chat({}) == []


@pytest.mark.parametrize(("arguments", "subject"), [
    ('{"file_path": "/src/app.py", "limit": 20}', "/src/app.py"),
    ('{"command": "pytest  -q\\n tests/"}', "pytest -q tests/"),
    ('{"command": ["ls", "-la"]}', "ls -la"),
    ('{"x": 1}', None),
    ("not json", None),
    (None, None),
    ('{"command": "' + "a" * 200 + '"}', "a" * 79 + "…"),
])
def test_a_tool_calls_subject_is_its_file_or_command(arguments: str | None, subject: str | None) -> None:
    assert tool_subject(arguments) == subject


@pytest.mark.parametrize(("total_s", "ticks"), [
    (0.012, [(0.0, "0 ms"), (41.667, "5 ms"), (83.333, "10 ms")]),
    (0.0, [(0.0, "0 ms")]),
    (40.0, [(0.0, "0 s"), (25.0, "10 s"), (50.0, "20 s"), (75.0, "30 s"), (100.0, "40 s")]),
    (600.0, [(0.0, "0 min"), (25.0, "2.5 min"), (50.0, "5 min"), (75.0, "7.5 min"), (100.0, "10 min")]),
    (3 * 3600.0, [(0.0, "0 h"), (33.333, "1 h"), (66.667, "2 h"), (100.0, "3 h")]),
])
def test_time_axes_pick_their_unit_from_the_length(total_s: float, ticks: list[tuple[float, str]]) -> None:
    assert charts.time_axis(total_s) == ticks


def test_a_short_runs_cost_curve_reads_milliseconds() -> None:
    svg = charts.cost_curve([(0.004, 0.001), (0.011, 0.002)], duration_s=0.012)
    assert re.findall(r'<text class="xlabel"[^>]*>([^<]*)</text>', str(svg)) == ["0 ms", "5 ms", "10 ms"]


def test_the_run_page_links_to_its_most_expensive_call(base: str, run1: dict[str, Any]) -> None:
    dearest = next(s for s in run1["spans"] if s["cost_usd"] == pytest.approx(0.0425, abs=1e-12))
    html = httpx.get(f"{base}/runs/r1-fix-flaky").text
    assert (f'<a class="dearest" id="dearest-call" href="#span={dearest["span_id"]}">most expensive call: '
            "chat gpt-4o ($0.0425)</a>") in html
