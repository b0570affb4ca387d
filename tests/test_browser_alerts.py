"""The Alerts page's Retry button in real headless Chromium against a real server and webhook (issue 16)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import browser_support  # noqa: F401 - skips this module without Chromium
from alert_support import Webhook, wait_for
from browser_support import Page
from runtrace.server import create_app
from test_alerts import BASE, config_at, post_spans
from test_alerts_retry import dear_run
from test_server_support import free_port, running_server

pytestmark = pytest.mark.browser


def status(path: Path) -> tuple[str, int] | None:
    if not path.exists():
        return None
    conn = sqlite3.connect(path)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'alerts'").fetchone():
            return None
        r = conn.execute("SELECT status, attempts FROM alerts").fetchone()
        return None if r is None else (str(r[0]), int(r[1]))
    finally:
        conn.close()


def test_clicking_retry_delivers_the_failed_alert(browser: Any, tmp_path: Path) -> None:
    hook = Webhook(free_port(), fail_first=2).start()  # the two automatic attempts fail, the retry succeeds
    config = config_at(tmp_path, hook.url, backoff_seconds=0.05, max_backoff_seconds=0.1, max_attempts=2,
                       timeout_seconds=5)
    path = tmp_path / "runtrace.db"
    page = Page(browser)
    try:
        with running_server(create_app(path, alerts=config, base_url=BASE, alerts_poll_seconds=0.1)) as base:
            post_spans(base, dear_run())  # type: ignore[arg-type]
            wait_for(lambda: status(path) == ("failed", 2), what="the firing to fail twice")
            p = page.page
            p.goto(base + "/alerts?status=failed")
            assert p.locator("#alerts tbody tr").count() == 1
            assert p.locator("#alerts tbody tr .badge").inner_text() == "failed"
            with p.expect_navigation():  # the page reloads once the retry answered
                p.click("button[data-retry]")
            assert status(path) == ("delivered", 3)
            assert hook.keys() == ["dear run|r-dear"] and hook.refused == 2
            p.goto(base + "/alerts")
            assert p.locator("#alerts tbody tr .badge").inner_text() == "delivered"
            assert p.locator("#alerts tbody tr td.num").inner_text() == "3"
            assert p.locator("button[data-retry]").count() == 0
            assert page.errors == [] and page.dialogs == []
    finally:
        page.close()
        hook.stop()
