"""Policy caps across processes: the calls other processes have in flight, through the store (m008).

Why a table: the spend in ``runs`` only holds a call once its span is exported,
so two processes checking at the same moment both saw the same spend, and
together could overshoot a cap by each one's call in flight. Now a call that
passes the caps writes a ``cap_reservations`` row at its projected cost *in the
same* ``BEGIN IMMEDIATE`` *transaction as the check* (SQLite serialises them
across processes, so a second process checks with the first one's row in view).
At the call's end the row takes the real cost and the span's key; it counts
until ``spans`` holds that span (from then on the run's cost has it), so there
is no moment when a finished call is in neither. A failed call deletes its row.

A process that dies leaves rows behind: each carries a wall-clock
``expires_ns`` (:data:`ROW_TTL_S` after it was written or settled) after which
nobody counts it and the next check sweeps it. A process counts its own calls
in memory (``policy_spend``), so the rows it reads are only the other
processes' (``holder`` differs). A read-only store, or one a row cannot be
written to, falls back to the in-memory accounting (said once by the caller).
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Callable

from .policy import WINDOWS, Window

__all__ = ["ROW_TTL_S", "SharedReservations"]

ROW_TTL_S = 600.0  # as the in-process reservation: a call in flight (or unexported) longer stops counting
_SECOND = 1_000_000_000
_STORED = "EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = r.trace_id AND s.span_id = r.span_id)"


class SharedReservations:
    """This process's side of ``cap_reservations``: check transactions, rows of its calls, others' sums."""

    def __init__(self, path: str, *, wall_ns: Callable[[], int] = time.time_ns) -> None:
        self.path = path
        self._wall_ns = wall_ns
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._holder = ""

    @property
    def holder(self) -> str:
        self._connection()
        return self._holder

    def _connection(self) -> sqlite3.Connection:
        from .store.db import connect

        if self._conn is None or self._pid != os.getpid():
            # After a fork the parent's connection is not the child's to use (nor to close).
            self._conn = connect(self.path)
            self._pid = os.getpid()
            self._holder = f"{self._pid}-{uuid.uuid4().hex[:12]}"
        return self._conn

    def begin(self) -> sqlite3.Connection:
        """Open the write transaction a check runs in: its reads and the new row are one step for every process."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        return conn

    @staticmethod
    def end(conn: sqlite3.Connection, *, commit: bool) -> None:
        if conn.in_transaction:
            conn.execute("COMMIT" if commit else "ROLLBACK")

    def others(self, conn: sqlite3.Connection, scope: str, name: str,
               bounds: dict[Window, tuple[int, int]]) -> dict[Window, int]:
        """Nano-dollars per window of the other processes' live rows of ``scope`` ``name`` not yet stored."""
        column = "project" if scope == "project" else "owner"
        (d0, d1), (w0, w1), (m0, m1) = bounds["daily"], bounds["weekly"], bounds["monthly"]
        row = conn.execute(
            "SELECT COALESCE(SUM(CASE WHEN at_ns >= ? AND at_ns < ? THEN cost_nusd END), 0), "
            "COALESCE(SUM(CASE WHEN at_ns >= ? AND at_ns < ? THEN cost_nusd END), 0), "
            "COALESCE(SUM(CASE WHEN at_ns >= ? AND at_ns < ? THEN cost_nusd END), 0) "
            f"FROM cap_reservations r WHERE {column} = ? AND at_ns >= ? AND at_ns < ? "  # noqa: S608 - fixed column
            f"AND holder != ? AND expires_ns > ? AND (trace_id IS NULL OR NOT {_STORED})",
            (d0, d1, w0, w1, m0, m1, name, min(w0, m0), max(w1, m1), self._holder, self._wall_ns())).fetchone()
        return {w: int(v) for w, v in zip(WINDOWS, row, strict=True)}

    def add(self, conn: sqlite3.Connection, project: str | None, owner: str | None, at_ns: int,
            cost_nusd: int) -> int:
        """Write the row of a call about to be sent (inside :meth:`transaction`); returns its id."""
        now = self._wall_ns()
        conn.execute(f"DELETE FROM cap_reservations AS r WHERE expires_ns <= ? OR (trace_id IS NOT NULL "  # noqa: S608
                     f"AND {_STORED})", (now,))
        cursor = conn.execute("INSERT INTO cap_reservations (holder, project, owner, at_ns, cost_nusd, expires_ns) "
                              "VALUES (?, ?, ?, ?, ?, ?)",
                              (self._holder, project, owner, at_ns, cost_nusd, now + int(ROW_TTL_S * _SECOND)))
        return int(cursor.lastrowid or 0)

    def settle(self, row_id: int, span_key: tuple[str, str] | None, cost_nusd: int) -> None:
        """The call ended: its real cost until its span is stored, or (no span, no cost) no row at all."""
        if self._pid != os.getpid():
            return  # a row of the parent process: it settles its own
        conn = self._connection()
        if span_key is None or cost_nusd <= 0:
            conn.execute("DELETE FROM cap_reservations WHERE id = ?", (row_id,))
        else:
            conn.execute("UPDATE cap_reservations SET cost_nusd = ?, trace_id = ?, span_id = ?, expires_ns = ? "
                         "WHERE id = ?", (cost_nusd, span_key[0], span_key[1],
                                          self._wall_ns() + int(ROW_TTL_S * _SECOND), row_id))

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            conn.close()
