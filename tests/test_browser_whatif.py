"""The What-if page in real headless Chromium (Debian's, driven by Playwright), against a real server.

A person's path: open What if from the top navigation, pick a model from the
list, submit, and read the totals; and from a run's page, follow the link that
asks what that one run would cost elsewhere. Screenshots land in the test's
tmp path. Figures are the hand-worked ones of ``test_server_whatif``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import browser_support  # noqa: F401 - skips this module without Chromium
from runtrace.server import create_app
from test_server_support import build_fixture_store, running_server

pytestmark = pytest.mark.browser



@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = build_fixture_store(tmp_path_factory.mktemp("browser-whatif") / "runtrace.db")
    with running_server(create_app(path)) as url:
        yield url


@pytest.fixture
def problems() -> list[str]:
    return []


@pytest.fixture
def page(browser: Any, problems: list[str]) -> Iterator[Any]:
    """A page that fails the test on a JavaScript error, a console error (a CSP violation) or a dialog."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="light")
    opened = context.new_page()
    opened.on("pageerror", lambda exc: problems.append(str(exc)))
    opened.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    opened.on("dialog", lambda dialog: (problems.append(dialog.message), dialog.dismiss()))
    yield opened
    context.close()
    assert problems == []


def run_rows(p: Any) -> list[str]:
    return p.locator("#wi-runs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.runId)")


def test_pick_a_model_submit_and_read_the_totals(base: str, page: Any, problems: list[str],
                                                 tmp_path: Path) -> None:
    p = page
    p.goto(base + "/")
    with p.expect_navigation():
        p.click("header nav >> text=What if")
    assert p.url.endswith("/whatif")
    assert p.locator("header nav a[aria-current=page]").inner_text() == "What if"
    assert p.locator("#wi-start").is_visible()

    p.fill("#wi-model", "typed-then-dropped")
    p.select_option("#wi-pick", "openai:gpt-4o-mini")
    assert p.input_value("#wi-model") == ""  # picking from the list clears a typed name
    p.select_option("select[name=period]", "all")
    with p.expect_navigation():
        p.click("#wi-submit")
    assert "pick=openai%3Agpt-4o-mini" in p.url
    assert p.locator("#wi-actual").inner_text() == "$0.4062"
    assert p.locator("#wi-whatif").inner_text() == "$0.0227"
    assert p.locator("#wi-diff").inner_text() == "-$0.3835"
    assert p.locator("#wi-diff-pct").inner_text() == "-94.4% · cheaper"
    assert run_rows(p) == ["r2-refactor", "r4-summarise", "r1-fix-flaky", "r6-answer", "r5-explore", "r3-triage",
                           "r7-xss"]
    assert p.locator("#wi-pick").input_value() == "openai:gpt-4o-mini"  # the form keeps the choice
    assert p.locator("#wi-verbosity svg rect.bar").count() == 7
    # The markup in r7's name is text in the table, not an element.
    assert p.locator("#wi-runs tr[data-run-id=r7-xss] .run-name a").inner_text() == \
        "<script>window.__xss_name=1</script>"
    assert p.evaluate("() => window.__xss_name") is None
    p.screenshot(path=str(tmp_path / "whatif.png"), full_page=True)

    # A negative ratio typed past the browser's own check is refused in the page, with the form to fix it.
    p.goto(base + "/whatif?pick=openai:gpt-4o-mini&period=all&ratio=-2")
    assert "token ratio '-2' is not a positive number" in p.locator("#wi-errors").inner_text()
    assert p.locator("#wi-actual").count() == 0
    assert p.input_value("input[name=ratio]") == "-2"
    assert problems == ["Failed to load resource: the server responded with a status of 400 (Bad Request)"]
    problems.clear()


def test_from_a_run_page_to_what_that_run_would_cost(base: str, page: Any, tmp_path: Path) -> None:
    p = page
    p.goto(base + "/runs/r6-answer")
    with p.expect_navigation():
        p.click("#whatif-link")
    assert p.url.endswith("/whatif?run=r6-answer")
    assert "answer ticket" in p.locator("#wi-run-scope").inner_text()
    with p.expect_navigation():
        p.click(".quick >> text=gpt-4o-mini")
    assert run_rows(p) == ["r6-answer"]
    assert p.locator("#wi-actual").inner_text() == "$0.015"
    assert p.locator("#wi-whatif").inner_text() == "$0.00069"  # 3,000 x $0.15/M + 400 x $0.60/M
    assert p.locator("#wi-routing tbody tr").count() == 1
    p.screenshot(path=str(tmp_path / "whatif-run.png"), full_page=True)
