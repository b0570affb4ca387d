"""The alert engine of ``runtrace serve``: two background threads on their own store connections.

Why threads beside the event loop rather than work in the receiver: the
receiver answers as soon as a batch is committed and only calls
:meth:`AlertEngine.notify` (an ``Event.set``), so a slow or dead webhook, or a
long evaluation, never delays an exporter's response. The evaluator also wakes
every ``poll_seconds`` to see spans that other processes wrote to the same
file, and after a wake-up waits ``settle_seconds`` so a burst of batches costs
one evaluation. The deliverer posts due firings and sleeps until the next retry is due.
Both swallow and log their errors (once per distinct message): an alert
problem never stops the server.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..store.db import connect
from .config import AlertsConfig
from .deliver import deliver_due, next_due_ns, retry_failed
from .rules import evaluate, start_cursor

__all__ = ["AlertEngine"]

logger = logging.getLogger("runtrace.alerts")
_SECOND = 1_000_000_000


class AlertEngine:
    """Evaluate ``config`` against the store at ``path`` as spans arrive, and deliver the firings."""

    def __init__(self, path: str | os.PathLike[str], config: AlertsConfig, *, base_url: str,
                 poll_seconds: float = 1.0, settle_seconds: float = 0.2,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.path = Path(path)
        self.config = config
        self.base_url = (config.base_url or base_url).rstrip("/")
        self.poll_seconds = poll_seconds
        self.settle_seconds = settle_seconds
        self.clock_ns = clock_ns
        self._changed = threading.Event()
        self._queued = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_error: dict[str, str] = {}

    def start(self) -> None:
        """Start both threads; the store's cursor is set first, here, before the server takes a request."""
        conn = self._connection()
        try:
            start_cursor(conn, self.clock_ns())
        finally:
            conn.close()
        for name, target in (("evaluate", self._evaluate_loop), ("deliver", self._deliver_loop)):
            thread = threading.Thread(target=target, name=f"runtrace-alerts-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def notify(self) -> None:
        """Spans were committed: evaluate soon. Never blocks."""
        self._changed.set()

    def retry(self, alert_id: int) -> str | None:
        """Post one failed firing again now, on a connection of its own (None: delivered, else the error).

        Raises LookupError for an unknown id, ValueError for an alert that is not failed
        (:mod:`.deliver`'s ``UnknownAlertError`` / ``NotRetryableError``).
        """
        conn = self._connection()
        try:
            return retry_failed(conn, self.config.webhook, alert_id, self.clock_ns)
        finally:
            conn.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop both threads; a post in flight is left to its lease (retried at the next start)."""
        self._stop.set()
        self._changed.set()
        self._queued.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    def _log(self, where: str, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {exc}"
        if self._last_error.get(where) != message:
            self._last_error[where] = message
            logger.warning("runtrace alerts: %s failed (retrying): %s", where, message)

    def _connection(self) -> sqlite3.Connection:
        return connect(self.path)

    def _evaluate_loop(self) -> None:
        conn: sqlite3.Connection | None = None
        while not self._stop.is_set():
            self._changed.clear()
            try:
                conn = conn or self._connection()
                if evaluate(conn, self.config, self.base_url, self.clock_ns()):
                    self._queued.set()
                self._last_error.pop("evaluation", None)
            except Exception as exc:  # noqa: BLE001 - logged; the next round tries again
                self._log("evaluation", exc)
            if self._changed.wait(self.poll_seconds):
                # Let the batches of a burst land first: one evaluation then covers them all, rather
                # than one per batch competing with the receiver for the write lock and the GIL.
                self._stop.wait(self.settle_seconds)
        if conn is not None:
            conn.close()

    def _deliver_loop(self) -> None:
        conn: sqlite3.Connection | None = None
        while not self._stop.is_set():
            self._queued.clear()
            wait = self.poll_seconds
            try:
                conn = conn or self._connection()
                deliver_due(conn, self.config.webhook, self.clock_ns)
                due = next_due_ns(conn)
                if due is not None:
                    wait = min(wait, max(0.01, (due - self.clock_ns()) / _SECOND))
                self._last_error.pop("delivery", None)
            except Exception as exc:  # noqa: BLE001 - logged; the next round tries again
                self._log("delivery", exc)
            self._queued.wait(wait)
        if conn is not None:
            conn.close()
