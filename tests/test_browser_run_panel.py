"""The run page's side panel in real headless Chromium: by click, by a #span= link, by keyboard; no overflow.

Against a real server on the fixture store (exact figures from
``test_server_support``) and on a store holding a 5,000-span run. Screenshots
land in the test's tmp path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser_support import Page, checked_page
from runtrace import semconv as sc
from runtrace.server import create_app
from runtrace.server.spanview import PAGE_SPANS
from runtrace.store.db import Store
from runtrace.store.queries import get_run
from test_server_spans import BIG_RUN, BIG_SPANS, build_big_store
from test_server_support import build_fixture_store, running_server

pytestmark = pytest.mark.browser

WIDTHS = (800, 1600)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixture_store(tmp_path_factory.mktemp("panel") / "runtrace.db")


@pytest.fixture(scope="module")
def base(store_path: Path) -> Iterator[str]:
    with running_server(create_app(store_path)) as url:
        yield url


@pytest.fixture(scope="module")
def spans(store_path: Path) -> dict[str, list[dict[str, Any]]]:
    with Store.open(store_path, create=False) as store:
        runs = {run_id: get_run(store, run_id) for run_id in ("r1-fix-flaky", "r7-xss")}
    return {run_id: run["spans"] for run_id, run in runs.items() if run is not None}


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    with checked_page(browser) as opened:
        yield opened


def row_ids(p: Any) -> list[str]:
    return p.locator("#waterfall .wf-span").evaluate_all("rows => rows.map(r => r.dataset.spanId)")


def selected(p: Any) -> list[str]:
    return p.locator("#waterfall .wf-span.selected").evaluate_all("rows => rows.map(r => r.dataset.spanId)")


def hash_of(p: Any) -> str:
    return str(p.evaluate("() => location.hash"))


def test_a_click_opens_the_span_beside_the_timeline(base: str, page: Page, spans: dict[str, Any],
                                                    tmp_path: Path) -> None:
    p = page.page
    p.goto(base + "/runs/r1-fix-flaky")
    assert p.locator("#span-panel").is_hidden()
    cached = next(s for s in spans["r1-fix-flaky"] if s["kind"] == "llm" and s["cached_input_tokens"])
    p.click(f"#span-{cached['span_id']} > summary .wf-name")
    panel = p.locator("#span-panel")
    panel.locator("dl.facts").wait_for()
    assert p.locator("#sp-title").inner_text() == "chat gpt-4o"
    facts = panel.locator("dl.facts").inner_text()
    assert "in 20,000 (cached 10,000) · out 500 (reasoning 0)" in facts
    assert "$0.0425 · source genai-prices" in facts
    assert "+13.0 s" in facts
    assert "No content was captured for this span" in panel.inner_text()
    assert hash_of(p) == f"#span={cached['span_id']}"
    assert selected(p) == [cached["span_id"]]
    assert p.locator("#waterfall details[open]").count() == 0  # the panel shows it, the row stays one line
    # Beside the timeline, not under it: the panel's left edge is right of the timeline's.
    timeline = p.locator(".timeline-panel").bounding_box()
    beside = panel.bounding_box()
    assert timeline is not None and beside is not None
    assert beside["x"] >= timeline["x"] + timeline["width"]
    p.screenshot(path=str(tmp_path / "run-panel.png"), full_page=True)


def test_a_span_link_opens_the_panel_and_the_keyboard_moves_through_spans(base: str, page: Page,
                                                                          spans: dict[str, Any]) -> None:
    p = page.page
    looped = next(s for s in spans["r1-fix-flaky"] if s["attributes"].get(sc.LOOP_DETECTED))
    p.goto(f"{base}/runs/r1-fix-flaky#span={looped['span_id']}")
    panel = p.locator("#span-panel")
    panel.locator("pre.content").wait_for()
    assert panel.locator("pre.content").inner_text() == '{\n  "path": "src/app.py"\n}'
    assert panel.locator(".sp-flags").inner_text().split() == ["loop", "repeated", "read"]
    assert "runtrace.loop.detected" in panel.locator("table.attrs").inner_text()
    order = row_ids(p)
    at = order.index(looped["span_id"])
    assert selected(p) == [looped["span_id"]]

    p.keyboard.press("j")
    assert selected(p) == [order[at + 1]]
    assert hash_of(p) == f"#span={order[at + 1]}"
    p.wait_for_function("() => document.getElementById('sp-title').textContent === 'chat gpt-4o'")
    p.keyboard.press("ArrowUp")
    p.keyboard.press("k")
    assert selected(p) == [order[at - 1]]
    p.keyboard.press("ArrowDown")
    assert selected(p) == [order[at]]
    p.keyboard.press("Escape")
    assert panel.is_hidden()
    assert selected(p) == []
    assert hash_of(p) == ""
    p.keyboard.press("ArrowDown")  # arrows scroll the page again once the panel is closed
    assert panel.is_hidden()
    p.keyboard.press("j")  # j starts at the first span
    assert selected(p) == [order[0]]


def test_the_jump_links_of_what_went_wrong_open_the_panel_too(base: str, page: Page, spans: dict[str, Any]) -> None:
    p = page.page
    p.goto(base + "/runs/r1-fix-flaky")
    p.locator(".detection.d-loop a.jump").click()
    looped = next(s for s in spans["r1-fix-flaky"] if s["attributes"].get(sc.LOOP_DETECTED))
    p.locator("#span-panel pre.content").wait_for()
    assert selected(p) == [looped["span_id"]]
    assert p.locator("#waterfall details[open]").count() == 1  # as before: the link also opens the row


def test_the_most_expensive_call_is_one_click_away(base: str, page: Page) -> None:
    p = page.page
    p.goto(base + "/runs/r1-fix-flaky")
    p.click("#dearest-call")
    p.wait_for_function("() => document.querySelector('#span-panel dl.facts') !== null")
    assert "$0.0425 · source genai-prices" in p.locator("#span-panel dl.facts").inner_text()
    assert len(selected(p)) == 1
    assert p.locator("#span-panel").is_visible()


def test_the_panel_shows_the_conversation_as_text(base: str, page: Page, spans: dict[str, Any],
                                                  tmp_path: Path) -> None:
    p = page.page
    llm = next(s for s in spans["r7-xss"] if s["kind"] == "llm")
    p.goto(f"{base}/runs/r7-xss#span={llm['span_id']}")
    message = p.locator("#span-panel .chat .msg")
    message.first.wait_for()
    assert message.count() == 1
    assert message.locator(".msg-role").inner_text().lower() == "assistant (response)"
    assert message.locator(".msg-text").inner_text() == "<b>hi</b><script>window.__xss_out=1</script>"
    tool = next(s for s in spans["r7-xss"] if s["kind"] == "tool")
    p.click(f"#span-{tool['span_id']} > summary .wf-name")
    p.wait_for_function("() => document.getElementById('sp-title').textContent === 'execute_tool search_docs'")
    assert p.locator("#span-panel pre.content").inner_text().startswith("<script>window.__xss=1;alert(1)</script>")
    assert p.evaluate("() => [window.__xss, window.__xss_out, window.__xss_img]") == [None, None, None]
    assert p.locator("#span-panel script, #span-panel img, #span-panel b").count() == 0
    p.screenshot(path=str(tmp_path / "run-panel-chat.png"), full_page=True)


@pytest.mark.parametrize("width", WIDTHS)
def test_no_page_overflows_sideways(base: str, browser: Any, spans: dict[str, Any], width: int,
                                    tmp_path: Path) -> None:
    opened = Page(browser)
    try:
        p = opened.page
        p.set_viewport_size({"width": width, "height": 900})
        first = spans["r1-fix-flaky"][1]["span_id"]
        for name, url in [("runs", "/"), ("run", "/runs/r1-fix-flaky"),
                          ("run-panel", f"/runs/r1-fix-flaky#span={first}"),
                          ("run-xss", "/runs/r7-xss"), ("spend", "/spend?period=all"),
                          ("spend-model", "/spend?by=model&period=all")]:
            p.goto(base + url)
            if "#span=" in url:
                p.locator("#span-panel dl.facts").wait_for()
            sizes = p.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")
            assert sizes[0] <= sizes[1], (url, sizes)
            p.screenshot(path=str(tmp_path / f"{name}-{width}.png"), full_page=True)
        assert opened.errors == [] and opened.dialogs == []
    finally:
        opened.close()


def test_the_narrow_runs_table_keeps_what_matters_and_shows_the_rest_on_demand(base: str, browser: Any) -> None:
    opened = Page(browser)
    try:
        p = opened.page
        p.set_viewport_size({"width": 800, "height": 900})
        p.goto(base + "/")
        def visible_headers() -> list[str]:
            return [h.strip() for h in p.locator("table.runs thead th").evaluate_all(
                "hs => hs.filter(h => h.offsetParent !== null).map(h => h.textContent)")]
        assert visible_headers() == ["Run", "Outcome", "Cost", "LLM", "Tools", "Flags", "Started (UTC) ▾", "Duration"]
        # Every kept column is inside the window, not scrolled off its right edge.
        right = p.evaluate("() => Math.max(...[...document.querySelectorAll('table.runs thead th')]"
                           ".filter(h => h.offsetParent !== null).map(h => h.getBoundingClientRect().right))")
        assert right <= 800
        p.click("#columns-toggle")
        assert len(visible_headers()) == 12
        sizes = p.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")
        assert sizes[0] <= sizes[1]  # the table scrolls inside its box, the page does not
        p.set_viewport_size({"width": 1600, "height": 900})
        assert p.locator("#columns-toggle").is_hidden()
        assert opened.errors == [] and opened.dialogs == []
    finally:
        opened.close()


def test_a_5000_span_run_loads_more_rows_on_demand(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = build_big_store(tmp_path_factory.mktemp("big-ui") / "big.db")
    opened = Page(browser)
    try:
        with running_server(create_app(path)) as url:
            p = opened.page
            p.goto(f"{url}/runs/{BIG_RUN}")
            assert p.locator("#waterfall .wf-span").count() == PAGE_SPANS
            assert p.locator("#spans-count").inner_text() == f"{PAGE_SPANS} of {BIG_SPANS} spans shown"
            p.click("#more-spans")
            p.wait_for_function(f"() => document.querySelectorAll('#waterfall .wf-span').length === {2 * PAGE_SPANS}")
            assert p.locator("#spans-count").inner_text() == f"{2 * PAGE_SPANS} of {BIG_SPANS} spans shown"
            ids = row_ids(p)
            assert len(set(ids)) == 2 * PAGE_SPANS
            # A fetched row opens the panel like a rendered one, and j past the last row fetches the next page.
            p.click(f"#span-{ids[-1]} .wf-name")
            p.locator("#span-panel dl.facts").wait_for()
            assert p.locator("#sp-title").inner_text() == "chat gpt-4o-mini"  # row 399: odd rows are LLM calls
            p.keyboard.press("j")
            p.wait_for_function(f"() => document.querySelectorAll('#waterfall .wf-span').length === {3 * PAGE_SPANS}")
            assert selected(p) == [row_ids(p)[2 * PAGE_SPANS]]
            # A link to a span far past the loaded rows still opens its panel.
            with Store.open(path, create=False) as store:
                run = get_run(store, BIG_RUN)
            assert run is not None
            far = run["spans"][4321]
            p.goto(f"{url}/runs/{BIG_RUN}#span={far['span_id']}")
            p.wait_for_function("() => document.querySelector('#span-panel dl.facts') !== null")
            assert "+43.2 s" in p.locator("#span-panel dl.facts").inner_text()
            for other in ("/", "/spend?period=all", "/spend?by=family&period=all&bucket=hour"):  # the rest, no errors
                p.goto(url + other)
                assert p.locator("main h1").inner_text() in ("Runs", "Spend")
        assert opened.errors == [] and opened.dialogs == []
    finally:
        opened.close()
