"""The web UI in real headless Chromium (Debian's, driven by Playwright), against a real server.

A person's path: the runs page lists the runs, a filter narrows them, a click
opens a run with its timeline and the sentence that explains its loop, search
finds a run by tool name, and markup inside span attributes stays text.
Screenshots land in the test's tmp path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser_support import Page, checked_page, run_rows
from runtrace.server import create_app
from test_server_support import LOOP_SENTENCE, XSS_NAME, build_fixture_store, running_server

pytestmark = pytest.mark.browser



@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = build_fixture_store(tmp_path_factory.mktemp("browser") / "runtrace.db")
    with running_server(create_app(path)) as url:
        yield url


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    with checked_page(browser) as opened:
        yield opened


def test_runs_page_lists_the_runs_and_a_filter_narrows_them(base: str, page: Page, tmp_path: Path) -> None:
    p = page.page
    p.goto(base + "/")
    assert run_rows(p) == ["r7-xss", "r6-answer", "r5-explore", "r4-summarise", "r3-triage", "r2-refactor",
                           "r1-fix-flaky"]
    assert p.locator("#h-spend").inner_text() == "$0.4182"
    p.screenshot(path=str(tmp_path / "runs.png"), full_page=True)

    with p.expect_navigation():
        p.select_option("select[name=project]", "billing")  # applies on change, no button needed
    assert "project=billing" in p.url
    assert run_rows(p) == ["r2-refactor", "r1-fix-flaky"]
    assert p.locator("#h-spend").inner_text() == "$0.2575"

    p.fill("form.filters input[name=q]", "flaky")
    with p.expect_navigation():
        p.press("form.filters input[name=q]", "Enter")
    assert run_rows(p) == ["r1-fix-flaky"]
    p.screenshot(path=str(tmp_path / "runs-filtered.png"), full_page=True)


def test_a_run_shows_its_waterfall_and_explains_its_loop(base: str, page: Page, tmp_path: Path) -> None:
    p = page.page
    p.goto(base + "/")
    with p.expect_navigation():
        p.click("text=fix flaky test #412")
    assert p.url.endswith("/runs/r1-fix-flaky")
    spans = p.locator("#waterfall details.wf-span")
    assert spans.count() == 7
    assert p.locator("#waterfall details.k-llm").count() == 2
    assert p.locator("#waterfall details.k-tool").count() == 4
    sentences = p.locator(".detection .sentence").all_inner_texts()
    assert LOOP_SENTENCE + "." in sentences
    # Each bar sits where its span started: the run's own bar at 0, the last tool at 31 s of 40.
    run_left = p.locator("#waterfall details.k-run .wf-bar").evaluate("b => b.style.left")
    last_tool_left = spans.nth(6).locator(".wf-bar").evaluate("b => b.style.left")
    assert (run_left, last_tool_left) == ("0%", "77.5%")
    p.screenshot(path=str(tmp_path / "run.png"), full_page=True)

    loop_span = p.locator(".detection.d-loop a.jump")
    loop_span.click()
    opened = p.locator("#waterfall details[open]")
    assert opened.count() == 1
    assert "runtrace.loop.detected" in opened.locator("table.attrs").inner_text()
    p.screenshot(path=str(tmp_path / "run-span-open.png"), full_page=True)


def test_search_finds_a_run_by_tool_name(base: str, page: Page, tmp_path: Path) -> None:
    p = page.page
    p.goto(base + "/")
    p.keyboard.press("/")  # focuses the search box
    p.keyboard.type("run_tests")
    with p.expect_navigation():
        p.keyboard.press("Enter")
    assert "/search?q=run_tests" in p.url
    results = p.locator("table.results tr.hit")
    assert results.count() == 1
    assert results.first.locator("td").nth(1).inner_text() == "tool"
    p.screenshot(path=str(tmp_path / "search.png"), full_page=True)
    with p.expect_navigation():
        results.first.locator("td.run-name a").click()
    assert p.url.endswith("/runs/r1-fix-flaky")


def test_markup_in_attributes_is_shown_as_text_and_never_runs(base: str, page: Page, tmp_path: Path) -> None:
    p = page.page
    for url in ("/", "/runs/r7-xss", "/search?q=__xss", "/search?q=bold&field=attribute", "/spend?by=owner"):
        p.goto(base + url)
        if url == "/runs/r7-xss":
            p.click("#expand-all")
            assert p.locator("h1").inner_text() == XSS_NAME
            result = p.locator("pre.content").all_inner_texts()
            assert any("<script>window.__xss=1;alert(1)</script>" in text for text in result)
            assert "<b>bold</b>" in p.locator("table.attrs").nth(2).inner_text()
            p.screenshot(path=str(tmp_path / "xss.png"), full_page=True)
        injected = p.evaluate("() => [window.__xss, window.__xss_name, window.__xss_img, window.__xss_out]")
        assert injected == [None, None, None, None], url
        assert p.locator("body script").count() == 0
        assert p.locator("img[src=x]").count() == 0


def test_dark_scheme_and_spend_plot(base: str, browser: Any, tmp_path: Path) -> None:
    dark = Page(browser, color_scheme="dark")
    try:
        p = dark.page
        p.goto(base + "/runs/r4-summarise")
        background = p.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(21, 23, 26)"
        assert "The budget max_cost_usd was exceeded" in p.locator(".detections").inner_text()
        p.screenshot(path=str(tmp_path / "run-dark.png"), full_page=True)
        p.goto(base + "/spend?by=model&period=all")
        assert p.locator("svg.chart rect.bar").count() == 7  # gpt-4o in 3 hours, the others in 2; $0 draws none
        p.screenshot(path=str(tmp_path / "spend-dark.png"), full_page=True)
        assert dark.errors == [] and dark.dialogs == []
    finally:
        dark.close()
