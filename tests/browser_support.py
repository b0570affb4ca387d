"""Shared by the browser tests: Debian's Chromium driven by Playwright, and a page that records problems.

Importing this module skips the importing test module when Chromium or
Playwright is missing (`.ci/run` installs both).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not os.path.exists(CHROMIUM):  # pragma: no cover - .ci/run installs it
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


class Page:
    """A page that records JavaScript errors, console errors (CSP violations among them) and dialogs."""

    def __init__(self, browser: Any, color_scheme: str = "light") -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme=color_scheme)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)

        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(dialog.message)
            dialog.dismiss()

        self.page.on("dialog", on_dialog)

    def close(self) -> None:
        self.context.close()


@contextmanager
def checked_page(browser: Any) -> Iterator[Page]:
    """A :class:`Page` that fails the test if it saw a JavaScript or console error, or a dialog."""
    opened = Page(browser)
    yield opened
    assert opened.errors == []
    assert opened.dialogs == []
    opened.close()


def run_rows(p: Any) -> list[str]:
    return p.locator("table.runs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.runId)")
