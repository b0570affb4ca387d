"""The newcomer's path in real headless Chromium: `runtrace demo`, then `runtrace serve`.

The runs page lists the demo's runs, a click opens the looping run, whose page
explains the loop and the repeated reads in sentences; the budget-stopped run
says which limit stopped it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser_support import Page, run_rows
from runtrace import demo
from runtrace.server import create_app
from test_server_support import running_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("demo-ui") / "demo.db"
    demo.run_demo(path)
    with running_server(create_app(path)) as url:
        yield url


def test_the_demo_runs_and_the_loop_explained(base: str, browser: Any, tmp_path: Path) -> None:
    page = Page(browser)
    try:
        p = page.page
        p.goto(base + "/")
        from runtrace import _demo_providers

        assert len(run_rows(p)) == len(demo.SCRIPTS) + 1  # + the multi-provider run, the last one made
        names = p.locator("table.runs tbody tr td:first-child a").all_inner_texts()
        assert names == [_demo_providers.NAME, *(s.name for s in reversed(demo.SCRIPTS))]  # newest first
        p.screenshot(path=str(tmp_path / "demo-runs.png"), full_page=True)

        with p.expect_navigation():
            p.click("text=make invoices test pass")
        sentences = p.locator(".detection .sentence").all_inner_texts()
        # The demo runs with content capture off: the sentences name the tool and counts, not its arguments.
        assert "run_tests was called 3 times with the same arguments and returned the same result." in sentences
        assert any(s.startswith("run_tests returned content identical to an earlier read") for s in sentences)
        assert not any("test_invoices.py" in s for s in sentences)
        assert p.locator("#waterfall details.k-llm").count() == 5
        assert p.locator("#waterfall details.k-tool").count() == 4
        p.screenshot(path=str(tmp_path / "demo-loop.png"), full_page=True)

        p.goto(base + "/")
        with p.expect_navigation():
            p.click("text=triage all flaky tests")
        assert "max_cost_usd" in p.locator(".detections").inner_text()
        p.screenshot(path=str(tmp_path / "demo-budget.png"), full_page=True)
        assert page.errors == [] and page.dialogs == []
    finally:
        page.close()
