"""Retrying a failed alert from the Alerts page (issue 16): one more attempt through the same delivery code.

A real webhook on 127.0.0.1 that answers 500 three times, then 200; a real
``runtrace serve`` app under uvicorn; the store file read back for the figures.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from alert_support import Webhook, wait_for
from runtrace.server import create_app
from store_helpers import llm, run_span
from test_alerts import BASE, config_at, post_spans
from test_server_support import free_port, running_server

JSON = {"content-type": "application/json"}


def row(path: Path) -> tuple[int, str, int, str | None]:
    conn = sqlite3.connect(path)
    try:
        r = conn.execute("SELECT id, status, attempts, last_error FROM alerts").fetchone()
        return int(r[0]), str(r[1]), int(r[2]), r[3]
    finally:
        conn.close()


def dear_run() -> list[object]:
    return [run_span("r-dear", 11, start_s=10, end_s=60, outcome="accepted"),
            llm("r-dear", 12, start_s=11, end_s=20, parent=11, cost=1.5),
            llm("r-dear", 13, start_s=21, end_s=30, parent=11, cost=1.0)]


@pytest.fixture
def failed_alert(tmp_path: Path) -> Iterator[tuple[str, Path, Webhook, int]]:
    """A server whose one firing ("dear run") failed both its attempts; the webhook now fails once more."""
    hook = Webhook(free_port(), fail_first=3).start()
    config = config_at(tmp_path, hook.url, backoff_seconds=0.05, max_backoff_seconds=0.1, max_attempts=2,
                       timeout_seconds=5)
    path = tmp_path / "runtrace.db"
    app = create_app(path, alerts=config, base_url=BASE, alerts_poll_seconds=0.1)
    try:
        with running_server(app) as base:
            post_spans(base, dear_run())  # type: ignore[arg-type]
            wait_for(lambda: path.exists() and _status(path) == "failed", what="the firing to fail twice")
            alert_id, status, attempts, error = row(path)
            assert (status, attempts, error, hook.refused) == ("failed", 2, "HTTP 500 Internal Server Error", 2)
            yield base, path, hook, alert_id
    finally:
        hook.stop()


def _status(path: Path) -> str | None:
    conn = sqlite3.connect(path)
    try:
        r = conn.execute("SELECT status FROM alerts").fetchone() if conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'alerts'").fetchone() else None
        return None if r is None else str(r[0])
    finally:
        conn.close()


def test_retry_posts_a_failed_alert_again_and_records_each_attempt(
        failed_alert: tuple[str, Path, Webhook, int]) -> None:
    base, path, hook, alert_id = failed_alert
    page = httpx.get(f"{base}/alerts").text
    assert f'data-retry="{alert_id}">Retry</button>' in page
    first = httpx.post(f"{base}/api/alerts/{alert_id}/retry", content=b"{}", headers=JSON, timeout=20)
    assert first.status_code == 200
    assert first.json() == {"id": alert_id, "status": "failed", "attempts": 3,
                            "last_error": "HTTP 500 Internal Server Error", "delivered_at": None}
    assert row(path) == (alert_id, "failed", 3, "HTTP 500 Internal Server Error")
    second = httpx.post(f"{base}/api/alerts/{alert_id}/retry", content=b"{}", headers=JSON, timeout=20)
    assert second.status_code == 200
    body = second.json()
    assert (body["status"], body["attempts"], body["last_error"]) == ("delivered", 4, None)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", body["delivered_at"])
    assert hook.refused == 3 and hook.keys() == ["dear run|r-dear"]
    assert hook.received[0]["text"].startswith("runtrace alert \u201cdear run\u201d: run fix flaky test (r-dear)")
    again = httpx.post(f"{base}/api/alerts/{alert_id}/retry", content=b"{}", headers=JSON, timeout=20)
    assert again.status_code == 409
    assert again.json() == {"error": f"alert {alert_id} is delivered, not failed: only a failed alert is retried "
                                     "by hand (a pending one is retried on its own)"}
    assert len(hook.received) == 1 and row(path)[1:3] == ("delivered", 4)  # nothing posted, nothing counted
    page = httpx.get(f"{base}/alerts").text
    assert "data-retry=" not in page and "delivered (1)" in page and "failed (0)" in page


def test_retry_refuses_what_a_cross_site_page_could_send_and_unknown_ids(
        failed_alert: tuple[str, Path, Webhook, int]) -> None:
    base, path, hook, alert_id = failed_alert
    url = f"{base}/api/alerts/{alert_id}/retry"
    form = httpx.post(url, data={"x": "1"}, timeout=20)
    assert (form.status_code, form.json()) == (415, {"error": "send the retry as JSON (Content-Type: "
                                                              "application/json), not application/x-www-form-urlencoded"})
    cross = httpx.post(url, content=b"{}", headers={**JSON, "origin": "https://evil.example"}, timeout=20)
    assert (cross.status_code, cross.json()) == (403, {"error": "cross-site request from 'https://evil.example' "
                                                                "refused"})
    unknown = httpx.post(f"{base}/api/alerts/{alert_id + 99}/retry", content=b"{}", headers=JSON, timeout=20)
    assert (unknown.status_code, unknown.json()) == (404, {"error": f"no alert {alert_id + 99} in this store"})
    assert row(path)[1:3] == ("failed", 2) and hook.refused == 2  # none of them posted or counted an attempt


def test_a_server_without_alert_rules_cannot_retry(tmp_path: Path) -> None:
    path = tmp_path / "runtrace.db"
    with running_server(create_app(path)) as base:
        answer = httpx.post(f"{base}/api/alerts/1/retry", content=b"{}", headers=JSON, timeout=20)
    assert (answer.status_code, answer.json()) == (409, {"error": "this server has no alert webhook to post to: "
                                                                  "start it with `runtrace serve --alerts "
                                                                  "alerts.toml` to retry alerts"})
