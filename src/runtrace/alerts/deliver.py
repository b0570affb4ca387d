"""Post recorded firings to the webhook: at least once, retried with exponential backoff.

The ``alerts`` row is the queue. A worker claims due rows by pushing their
next attempt past the request's timeout (a lease, so two ``serve`` processes on
one store never post the same firing at once, and a process killed mid-post
leaves a row that is retried when the lease runs out), posts the payload
recorded at firing time, and marks the row ``delivered`` on a 2xx, else
schedules the next attempt ``backoff * 2**(attempts-1)`` seconds later (capped),
or marks it ``failed`` after ``max_attempts``. Nothing is deleted: the Alerts
page shows every firing with its delivery status. Each payload carries a
stable ``key`` (rule and subject) for receivers that must drop the duplicate a
timed-out-but-received post can cause.
"""

from __future__ import annotations

import sqlite3
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from .config import Webhook

__all__ = ["DELIVERED", "FAILED", "PENDING", "Attempt", "NotRetryableError", "UnknownAlertError", "backoff_seconds", "claim_due",
           "deliver_due", "next_due_ns", "post", "retry_failed"]

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
_SECOND = 1_000_000_000
_CLAIM = 20  # rows per claim
_LEASE_MARGIN_S = 5.0
_ERROR_CHARS = 300


@dataclass(frozen=True)
class Attempt:
    alert_id: int
    attempts: int  # including this one
    payload: bytes


def backoff_seconds(webhook: Webhook, attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt."""
    return float(min(webhook.max_backoff_seconds, webhook.backoff_seconds * 2 ** max(0, attempts - 1)))


def claim_due(conn: sqlite3.Connection, webhook: Webhook, now_ns: int) -> list[Attempt]:
    """Take the due pending rows (oldest first) under a lease; one transaction."""
    lease_ns = int((webhook.timeout_seconds + _LEASE_MARGIN_S) * _SECOND)
    conn.execute("BEGIN IMMEDIATE")
    try:
        rows = conn.execute("SELECT id, attempts, payload FROM alerts WHERE status = ? AND next_attempt_ns <= ? "
                            "ORDER BY next_attempt_ns, id LIMIT ?", (PENDING, now_ns, _CLAIM)).fetchall()
        conn.executemany("UPDATE alerts SET attempts = attempts + 1, next_attempt_ns = ? WHERE id = ?",
                         [(now_ns + lease_ns, r[0]) for r in rows])
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return [Attempt(int(r[0]), int(r[1]) + 1, str(r[2]).encode()) for r in rows]


def post(webhook: Webhook, body: bytes) -> str | None:
    """POST ``body``; None on a 2xx answer, else what went wrong (one line)."""
    headers = {"Content-Type": "application/json", "User-Agent": "runtrace-alerts", **dict(webhook.headers)}
    request = urllib.request.Request(webhook.url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=webhook.timeout_seconds) as response:  # noqa: S310 - http(s) only, checked in config
            response.read(64 * 1024)
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        return f"cannot reach the webhook: {exc.reason}"
    except (TimeoutError, OSError) as exc:
        return f"cannot reach the webhook: {exc or type(exc).__name__}"
    return None if 200 <= status < 300 else f"HTTP {status}"


def _settle(conn: sqlite3.Connection, webhook: Webhook, attempt: Attempt, error: str | None, now_ns: int,
            *, last: bool = False) -> None:
    """Record how the attempt went; ``last``: a failure is final (a retry asked for by hand is one attempt)."""
    if error is None:
        conn.execute("UPDATE alerts SET status = ?, delivered_ns = ?, last_error = NULL WHERE id = ?",
                     (DELIVERED, now_ns, attempt.alert_id))
    elif last or attempt.attempts >= webhook.max_attempts:
        conn.execute("UPDATE alerts SET status = ?, last_error = ? WHERE id = ?",
                     (FAILED, error[:_ERROR_CHARS], attempt.alert_id))
    else:
        wait_ns = int(backoff_seconds(webhook, attempt.attempts) * _SECOND)
        conn.execute("UPDATE alerts SET next_attempt_ns = ?, last_error = ? WHERE id = ?",
                     (now_ns + wait_ns, error[:_ERROR_CHARS], attempt.alert_id))


def deliver_due(conn: sqlite3.Connection, webhook: Webhook, clock_ns: Callable[[], int]) -> int:
    """Claim and post every due firing; return how many were delivered."""
    delivered = 0
    while attempts := claim_due(conn, webhook, clock_ns()):
        for attempt in attempts:
            error = post(webhook, attempt.payload)
            _settle(conn, webhook, attempt, error, clock_ns())
            delivered += error is None
    return delivered


class NotRetryableError(ValueError):
    """The alert asked to be retried is pending or delivered, not failed: says which."""


class UnknownAlertError(LookupError):
    """No alert has the id asked to be retried."""


def retry_failed(conn: sqlite3.Connection, webhook: Webhook, alert_id: int, clock_ns: Callable[[], int]) -> str | None:
    """Post one ``failed`` firing again now, as one more recorded attempt; None when it was delivered.

    Why through the queue's own steps: the row is claimed under the same lease as
    :func:`claim_due` (so a second click, or another server, cannot post it twice at
    once), posted by :func:`post` and settled by :func:`_settle`, so the page shows
    the new attempt, its error or its delivery time like any other. A failure leaves
    the row ``failed`` (no new backoff series: the retry was asked for by hand).
    Raises :class:`UnknownAlertError` (a LookupError) for an unknown id and
    :class:`NotRetryableError` (a ValueError) for an alert that is not failed.
    """
    now_ns = clock_ns()
    lease_ns = int((webhook.timeout_seconds + _LEASE_MARGIN_S) * _SECOND)
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT status, attempts, payload FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        if row is None:
            raise UnknownAlertError(f"no alert {alert_id} in this store")
        if row[0] != FAILED:
            raise NotRetryableError(f"alert {alert_id} is {row[0]}, not failed: only a failed alert is retried "
                                    "by hand (a pending one is retried on its own)")
        conn.execute("UPDATE alerts SET status = ?, attempts = attempts + 1, next_attempt_ns = ? WHERE id = ?",
                     (PENDING, now_ns + lease_ns, alert_id))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    attempt = Attempt(alert_id, int(row[1]) + 1, str(row[2]).encode())
    error = post(webhook, attempt.payload)
    _settle(conn, webhook, attempt, error, clock_ns(), last=True)
    return error


def next_due_ns(conn: sqlite3.Connection) -> int | None:
    """When the next pending firing is due (None: nothing pending)."""
    row = conn.execute("SELECT min(next_attempt_ns) FROM alerts WHERE status = ?", (PENDING,)).fetchone()
    return None if row[0] is None else int(row[0])
