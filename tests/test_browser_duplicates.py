"""Duplicate spans shown as duplicates on the run page (issue 12 item 3), through a real ``runtrace serve``.

A hand-made run through the one ingest path holds each way a call's second
span arises: a sibling pair (the anthropic SDK's own span and OpenLLMetry's
beside it: the SDK's counts), a nested pair (Vercel's ``ai.generateText`` over
its ``doGenerate`` step: the inner counts) and an in-process duplicate
(another instrumentation's span marked ``runtrace.duplicate_of`` with
runtrace's span id). The run's totals count three calls; the page greys the
three other spans, strikes their cost, names the span that counts each call
(a ``#span=`` link that opens it in the side panel) and the panel says which
rule decided. Exact HTML and JSON, then headless Chromium at 800 and 1600 px.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtrace import semconv as sc
from runtrace.server import create_app
from runtrace.store.db import Store
from runtrace.store.records import SpanRecord
from store_helpers import llm, run_span, span
from test_server_support import running_server

RUN = "dups"
SDK = "com.anthropic.sdk.python"
OLL = "opentelemetry.instrumentation.anthropic"
VERCEL = "ai"
OURS = "runtrace.instrumentation.openai"
OPENAI_V2 = "opentelemetry.instrumentation.openai_v2"


def hexid(n: int) -> str:
    return f"{n:016x}"


def _call(n: int, name: str, scope: str, *, start_s: float, end_s: float, parent: int, inp: int, out: int,
          model: str = "claude-sonnet-4-5", attrs: dict[str, Any] | None = None) -> SpanRecord:
    """One instrumentation's span of a model call (claude-sonnet-4-5 and gpt-4o: $3 in, $15 out per million
    for the first, $2.50 / $10 for the second)."""
    per_in, per_out = (2.5, 10.0) if model == "gpt-4o" else (3.0, 15.0)
    record = llm(RUN, n, start_s=start_s, end_s=end_s, model=model, provider="openai" if model == "gpt-4o"
                 else "anthropic", input_tokens=inp, output_tokens=out, cost=(inp * per_in + out * per_out) / 1e6,
                 parent=parent, attrs=attrs or {})
    return dataclasses.replace(record, name=name, scope_name=scope)


def records() -> list[SpanRecord]:
    return [
        run_span(RUN, 1, start_s=0, end_s=30, name="triage inbox"),
        # siblings: both children of the run span, same model, same time; the SDK's own span counts
        _call(2, "anthropic.messages.create", SDK, start_s=1, end_s=3, parent=1, inp=1_000, out=100),
        _call(3, "anthropic.chat", OLL, start_s=1.001, end_s=3.0, parent=1, inp=1_000, out=100),
        # nested: the aggregate over its one step; the step counts
        _call(4, "ai.generateText", VERCEL, start_s=10, end_s=14, parent=1, inp=2_000, out=200),
        _call(5, "ai.generateText.doGenerate", VERCEL, start_s=10.5, end_s=13.5, parent=4, inp=2_000, out=200),
        # in-process: runtrace's own span won; openai-v2's span inside it is marked with its id
        _call(6, "chat gpt-4o", OURS, start_s=20, end_s=22, parent=1, inp=500, out=50, model="gpt-4o"),
        dataclasses.replace(span(RUN, 7, start_s=20.01, end_s=21.99, name="chat gpt-4o", parent=6, kind="CLIENT",
                                 attrs={sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
                                        sc.GEN_AI_USAGE_INPUT_TOKENS: 500, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 50,
                                        sc.DUPLICATE_OF: hexid(6)}), scope_name=OPENAI_V2),
    ]


# The hand count: one SDK span ($0.0045), one doGenerate step ($0.009), runtrace's gpt-4o span ($0.00175).
CALLS = 3
COST = (1_000 * 3 + 100 * 15 + 2_000 * 3 + 200 * 15 + 500 * 2.5 + 50 * 10) / 1e6


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("dups") / "runtrace.db"
    with Store.open(path) as store:
        assert store.ingest(records()) == 7
    with running_server(create_app(path)) as url:
        yield url


def row_html(page: str, n: int) -> str:
    found = re.search(rf'<details class="[^"]*" id="span-{hexid(n)}".*?</summary>', page, re.S)
    assert found is not None, n
    return found.group(0)


def test_the_totals_count_each_call_once(base: str) -> None:
    run = httpx.get(f"{base}/api/runs/{RUN}", timeout=30).json()
    assert (run["llm_calls"], run["input_tokens"], run["output_tokens"]) == (CALLS, 3_500, 350)
    assert run["cost_usd"] == pytest.approx(COST, abs=1e-12)
    assert COST == 0.01525
    counted = {s["span_id"]: s["counted"] for s in run["spans"] if s["kind"] == "llm"}
    assert counted == {hexid(2): True, hexid(3): False, hexid(4): False, hexid(5): True, hexid(6): True}


def test_the_timeline_greys_each_duplicate_and_names_the_span_that_counts(base: str) -> None:
    page = httpx.get(f"{base}/runs/{RUN}", timeout=30).text
    sibling = row_html(page, 3)
    assert f'class="wf-span k-llm dup" id="span-{hexid(3)}" data-span-id="{hexid(3)}" data-dup-rule="sibling"' \
        in sibling
    assert (f'<span class="flag f-duplicate dup-of">duplicate of <a href="#span={hexid(2)}" class="dup-link">'
            'anthropic.messages.create</a></span>') in sibling
    assert ('<s class="not-counted" title="not counted: another span counts this call">$0.0045</s>') in sibling
    nested = row_html(page, 4)
    assert 'data-dup-rule="nested"' in nested
    assert f'duplicate of <a href="#span={hexid(5)}" class="dup-link">ai.generateText.doGenerate</a>' in nested
    assert '<s class="not-counted" title="not counted: another span counts this call">$0.009</s>' in nested
    marked = row_html(page, 7)
    assert f'class="wf-span k-other dup" id="span-{hexid(7)}"' in marked and 'data-dup-rule="in-process"' in marked
    assert f'duplicate of <a href="#span={hexid(6)}" class="dup-link">chat gpt-4o</a>' in marked
    # priced at ingest like any span with usage, but struck: runtrace's span counts the call
    assert '<s class="not-counted" title="not counted: another span counts this call">$0.00175</s>' in marked
    for counted in (2, 5, 6):
        row = row_html(page, counted)
        assert " dup" not in row.split(">", 1)[0] and "dup-of" not in row and "not-counted" not in row
    # the cost curve and the most expensive call leave the duplicates out, as the totals do
    assert (f'<a class="dearest" id="dearest-call" href="#span={hexid(5)}">most expensive call: '
            'ai.generateText.doGenerate ($0.009)</a>') in page


def test_the_panel_and_the_paged_rows_say_which_rule(base: str) -> None:
    detail = httpx.get(f"{base}/api/runs/{RUN}/spans/{hexid(3)}", timeout=30).json()
    assert detail["duplicate"] == {
        "rule": "sibling", "of_span_id": hexid(2), "of_name": "anthropic.messages.create",
        "sentence": "Not counted: a duplicate of anthropic.messages.create, another instrumentation's span of the "
                    "same request beside it (same parent, same model, same time), which counts the call. Its "
                    "tokens and cost are not in the run's totals."}
    assert detail["flags"] == ["duplicate"]
    nested = httpx.get(f"{base}/api/runs/{RUN}/spans/{hexid(4)}", timeout=30).json()["duplicate"]
    assert nested["rule"] == "nested" and nested["of_span_id"] == hexid(5)
    assert nested["sentence"].startswith("Not counted: the call is counted by ai.generateText.doGenerate, the span "
                                         "nested inside it")
    marked = httpx.get(f"{base}/api/runs/{RUN}/spans/{hexid(7)}", timeout=30).json()["duplicate"]
    assert marked["rule"] == "in-process" and marked["of_span_id"] == hexid(6)
    assert marked["sentence"].startswith("Not counted: runtrace's own span of the same request, chat gpt-4o, won "
                                         "in-process")
    assert httpx.get(f"{base}/api/runs/{RUN}/spans/{hexid(2)}", timeout=30).json()["duplicate"] is None
    rows = httpx.get(f"{base}/api/runs/{RUN}/spans?offset=0&limit=10", timeout=30).json()["rows"]
    rules = {r["span_id"]: (r["duplicate"] or {}).get("rule") for r in rows}
    assert rules == {hexid(1): None, hexid(2): None, hexid(3): "sibling", hexid(4): "nested", hexid(5): None,
                     hexid(6): None, hexid(7): "in-process"}


WIDTHS = (800, 1600)


@pytest.mark.browser
@pytest.mark.parametrize("width", WIDTHS)
def test_in_chromium_a_duplicate_is_grey_and_its_link_opens_the_counted_span(base: str, browser: Any, width: int,
                                                                              tmp_path: Path) -> None:
    from browser_support import checked_page

    with checked_page(browser) as opened:
        p = opened.page
        p.set_viewport_size({"width": width, "height": 900})
        p.goto(f"{base}/runs/{RUN}#span={hexid(3)}")
        panel = p.locator("#span-panel")
        panel.locator("p.sp-duplicate").wait_for()
        assert panel.locator("p.sp-duplicate").inner_text() == (
            "Not counted: a duplicate of anthropic.messages.create, another instrumentation's span of the same "
            "request beside it (same parent, same model, same time), which counts the call. Its tokens and cost "
            "are not in the run's totals. Open anthropic.messages.create")
        assert "$0.0045 · source genai-prices · not counted (duplicate)" in panel.locator("dl.facts").inner_text()
        # greyed: the duplicate's name in the muted colour and its bar faded; a counted call's not
        style = ("id => { const r = document.getElementById('span-' + id); const bar = r.querySelector('.wf-bar');"
                 " return [getComputedStyle(r.querySelector('.wf-row')).color, getComputedStyle(bar).opacity]; }")
        muted = p.evaluate("() => getComputedStyle(document.querySelector('.dim, .crumbs')).color")
        assert p.evaluate(style, hexid(3)) == [muted, "0.35"]
        assert p.evaluate(style, hexid(2))[1] == "1" and p.evaluate(style, hexid(2))[0] != muted
        # the panel's link opens the span that counts the call
        panel.locator("a.dup-link").click()
        p.wait_for_function(f"() => location.hash === '#span={hexid(2)}'")
        p.wait_for_function("() => document.getElementById('sp-title').textContent === 'anthropic.messages.create'")
        assert panel.locator("p.sp-duplicate").count() == 0
        # the timeline's "duplicate of" link does the same, for the nested aggregate's step
        p.locator(f"#span-{hexid(4)} a.dup-link").click()
        p.wait_for_function(f"() => location.hash === '#span={hexid(5)}'")
        p.wait_for_function("() => document.getElementById('sp-title').textContent === 'ai.generateText.doGenerate'")
        assert p.locator("#waterfall .wf-span.selected").evaluate_all("r => r.map(x => x.dataset.spanId)") \
            == [hexid(5)]
        assert p.locator(f"#span-{hexid(4)}").evaluate("d => d.open") is False  # the link did not expand the row
        # clicking the duplicate row itself opens its own details, with the rule (the narrow panel closed first)
        p.keyboard.press("Escape")
        p.click(f"#span-{hexid(7)} > summary .wf-name")
        panel.locator("p.sp-duplicate").wait_for()
        assert panel.locator("p.sp-duplicate").inner_text().startswith(
            "Not counted: runtrace's own span of the same request, chat gpt-4o, won in-process")
        sizes = p.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")
        assert sizes[0] <= sizes[1], sizes
        p.screenshot(path=str(tmp_path / f"duplicates-{width}.png"), full_page=True)


CLAUDE = "d34ec385-a875-4a25-9b18-379204112e9d"  # claude-project: beta traces on, OTEL_LOG_TOOL_DETAILS=1


def test_a_claude_code_span_names_the_record_its_log_event_counts(tmp_path: Path) -> None:
    """Claude Code's own spans (beta traces) are duplicates of the records its log events make.

    A ``claude_code.tool`` span links to the tool call with its ``gen_ai.tool.call.id``,
    its ``claude_code.tool.execution`` child to the same, a ``claude_code.llm_request``
    to the LLM call it overlaps that ends nearest to it; the refused call (never
    run, no ``tool_result``) has no counting span.
    """
    from agent_samples import FIXTURES
    from test_agents_tool_subjects import serving_recordings

    if not (FIXTURES / "claude-project").is_dir():
        pytest.skip(f"recordings not found in {FIXTURES}")
    with serving_recordings(tmp_path / "rt.db", ("claude-project",)) as url:
        run = httpx.get(f"{url}/api/runs/{CLAUDE}", timeout=30).json()
        page = httpx.get(f"{url}/runs/{CLAUDE}", timeout=30).text
        rows = httpx.get(f"{url}/api/runs/{CLAUDE}/spans?offset=0&limit=200", timeout=30).json()["rows"]
    names = {s["span_id"]: s["name"] for s in run["spans"]}
    links = [(names[r["span_id"]], r["duplicate"]["rule"], names.get(r["duplicate"]["of_span_id"] or ""))
             for r in rows if r["duplicate"]]
    tool, execution, request = "claude_code.tool", "claude_code.tool.execution", "claude_code.llm_request"
    chat = "chat claude-opus-4-8"
    assert links == [(request, "agent", chat), (tool, "agent", "execute_tool Read"),
                     (execution, "agent", "execute_tool Read"), (request, "agent", chat),
                     (tool, "agent", "execute_tool Read"), (execution, "agent", "execute_tool Read"),
                     (request, "agent", chat), (tool, "agent", "execute_tool Read"),
                     (execution, "agent", "execute_tool Read"), (request, "agent", chat),
                     (tool, "agent", "execute_tool Edit"), (execution, "agent", "execute_tool Edit"),
                     (request, "agent", chat), (tool, "agent", "execute_tool Bash"),
                     (execution, "agent", "execute_tool Bash"), (request, "agent", chat),
                     (tool, "agent", None), (request, "agent", chat)]
    by_id = {s["span_id"]: s for s in run["spans"]}
    for row in rows:
        dup = row["duplicate"]
        if dup and dup["of_span_id"] and by_id[row["span_id"]]["name"] == tool:
            assert (by_id[dup["of_span_id"]]["attributes"][sc.GEN_AI_TOOL_CALL_ID]
                    == by_id[row["span_id"]]["attributes"][sc.GEN_AI_TOOL_CALL_ID])
    # each model call once: 7 calls, and every chat row counted
    assert run["llm_calls"] == 7 == sum(1 for s in run["spans"] if s["kind"] == "llm" and s["counted"])
    first = next(r for r in rows if r["duplicate"])
    assert f'<a href="#span={first["duplicate"]["of_span_id"]}" class="dup-link">{chat}</a>' in page
    assert first["duplicate"]["sentence"] == ("Not counted: the agent's own trace span of a call that its "
                                              f"api_request log event counts, as {chat}. Its tokens and cost "
                                              "are not in the run's totals.")


def test_the_real_openllmetry_spans_beside_the_sdks_are_named_as_its_duplicates(tmp_path: Path) -> None:
    """OTLP-only OpenLLMetry over anthropic (tests/test_otlp_only_openllmetry_anthropic.py builds it, in a
    subprocess with a timeout): each of OpenLLMetry's 3 ``anthropic.chat`` spans is a sibling duplicate of
    the SDK's own ``anthropic.messages.create`` span of the same request, the one starting nearest to it."""
    pytest.importorskip("opentelemetry.instrumentation.anthropic")
    from runtrace.server.duplicates import read_calls
    from runtrace.store.queries import get_run, list_runs
    from test_otlp_only_openllmetry_anthropic import _drive

    assert _drive(tmp_path)["run"]["llm_calls"] == 4
    with Store.open(tmp_path / "rt.db", create=False) as store:
        (listed,) = list_runs(store)
        run = get_run(store, listed["id"])
        assert run is not None
        calls = read_calls(store, run["id"])
    spans = {s["span_id"]: s for s in run["spans"]}
    found = {}
    for span_id, s in spans.items():
        dup = calls.duplicate(span_id)
        if dup is not None:
            found[span_id] = dup
            assert (s["name"], s["counted"], dup.rule, dup.of_name) == (
                "anthropic.chat", False, "sibling", "anthropic.messages.create")
            assert dup.of_span_id is not None and spans[dup.of_span_id]["counted"] is True
    assert len(found) == 3
    assert len({d.of_span_id for d in found.values()}) == 3  # one SDK span per OpenLLMetry span
