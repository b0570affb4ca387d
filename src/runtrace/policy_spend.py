"""The spend and runs so far of a project or owner in a UTC window, for the policy caps.

Every process that shares a store sees the others' runs there, so the figures
are read from the store's ``runs`` table (the cost and the count of the runs
of that project or owner *started* in the window: a run is counted in the
window it began in, through an index, never by scanning spans). A read is kept
for ``cache_seconds``: the enforcement lag for other processes' calls that were
stored meanwhile (their in-flight and not-yet-exported calls are counted through
``cap_reservations``, below, read at every check).

This process's own calls count at once: a call that passed the caps counts at
its projected cost while it is in flight (so two threads cannot both take the
last of a cap), then each finished LLM call and each run that reached a policy
check is kept in a ledger here until the store holds it. Other processes' calls
in flight (and finished but not yet stored) count through the store's
``cap_reservations`` rows (``policy_shared``): inside :meth:`SpendBook.check_transaction`
they are read fresh at every check, in the write transaction that also records
this process's call, so two processes cannot both take the last of a cap either.
Whether the store holds a ledger entry is read in the same read transaction as
the sums, so an entry is counted exactly once, whichever side of the export
the read falls on. An entry is dropped once the store held it at a read older
than ``cache_seconds`` (every read used after that counts it itself).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from ._forksafe import ForkSafeLock
from .policy import WINDOWS, Window, window_bounds
from .policy_shared import SharedReservations

logger = logging.getLogger("runtrace")

NANO = 1_000_000_000
LEDGER_MAX = 100_000  # entries the store has not confirmed yet (export dropped them?): oldest go first
RESERVATION_MAX_S = 600.0  # a call in flight longer than this (or never recorded) stops being counted
_IN_CHUNK = 500  # ids per IN (...) query
_shared_error_logged = False
T = TypeVar("T")


@dataclass(frozen=True)
class Figures:
    """A scope's figures in the windows holding one instant."""

    usd: dict[Window, float]
    runs_today: int
    mean_output_tokens: int  # per LLM call of the scope this month (0: no call yet): projects a run's first call


@dataclass
class _Call:
    key: tuple[str, str]  # (trace id, span id): the spans table's primary key
    project: str | None
    owner: str | None
    at: float  # the run's first policy check, on the policy clock: the window it counts in
    cost_nusd: int
    output_tokens: int
    stored_at: float | None = None  # monotonic time of the first read that found it in the store


@dataclass
class _LocalRun:
    run_id: str
    project: str | None
    owner: str | None
    at: float
    stored_at: float | None = None


@dataclass
class _Reservation:
    """A call that passed the caps and has not finished yet: its projected cost counts meanwhile."""

    project: str | None
    owner: str | None
    at: float
    cost_nusd: int
    made: float  # monotonic
    row_id: int | None = None  # its cap_reservations row, which other processes count (None: none written)


@dataclass
class _Read:
    fetched: float  # monotonic
    bounds: dict[Window, tuple[int, int]]
    nusd: dict[Window, int]
    runs_today: int
    month_output_tokens: int
    month_llm_calls: int
    stored_calls: frozenset[tuple[str, str]]
    stored_runs: frozenset[str]


class SpendBook:
    """Spend so far per (scope, name, window): the store's figures (cached) plus this process's unstored ones."""

    def __init__(self, store_path: str, *, cache_seconds: float, clock: Callable[[], float],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store_path = store_path
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._monotonic = monotonic
        self._lock = ForkSafeLock()
        self._calls: dict[tuple[str, str], _Call] = {}
        self._runs: dict[str, _LocalRun] = {}
        self._run_at: dict[str, float] = {}
        self._places: dict[tuple[str, str, str], int] = {}  # (run id, scope, name) -> its place in its day
        self._reserved: dict[str, list[_Reservation]] = {}  # run id -> its calls in flight, oldest first
        self._reads: dict[tuple[str, str], _Read] = {}
        self._store: object | None = None
        self._shared: SharedReservations | None = None  # None: a read-only store (no rows to write)
        self._txn: sqlite3.Connection | None = None  # set inside check_transaction()

    # -- this process's side ------------------------------------------------------
    def note_run(self, run_id: str, project: str | None, owner: str | None) -> float:
        """Count a run (once); returns the instant it counts at (its window)."""
        with self._lock:
            known = self._run_at.get(run_id)  # outlives the ledger entry: a run is counted once
            if known is not None:
                return known
            at = self.clock()
            self._run_at[run_id] = at
            self._runs[run_id] = _LocalRun(run_id, project, owner, at)
            self._bound(self._runs)
            self._bound(self._run_at)
            return at

    def run_place(self, run_id: str, scope: str, name: str, runs_today: int) -> int:
        """The run's place among the runs of ``scope`` ``name`` of its UTC day, fixed at its first check.

        ``runs_today`` is the count :meth:`figures` gives at that check (the run itself
        included): the runs before it are those counted then. Kept afterwards, so a run
        among the first N stays so when later runs start, or when another process's
        run that began earlier reaches the store late (runs_per_day, docs/policies.md).
        """
        key = (run_id, scope, name)
        with self._lock:
            place = self._places.get(key)
            if place is None:
                place = self._places[key] = runs_today
                self._bound(self._places)
            return place

    def note_call(self, key: tuple[str, str], run_id: str, project: str | None, owner: str | None,
                  cost_usd: float, output_tokens: int) -> None:
        """Count a finished call of this process until the store holds its span."""
        at = self.note_run(run_id, project, owner)
        with self._lock:
            self._calls[key] = _Call(key, project, owner, at, round(cost_usd * NANO), output_tokens)
            self._bound(self._calls)

    def reserve(self, run_id: str, project: str | None, owner: str | None, cost_usd: float) -> None:
        """Count a call about to be sent at its projected cost until :meth:`release` (it finished).

        Inside :meth:`check_transaction` the store gets a row of it too, for the other processes.
        """
        at = self.note_run(run_id, project, owner)
        nusd = round(cost_usd * NANO)
        row_id = None
        if self._txn is not None and self._shared is not None:
            row_id = self._shared.add(self._txn, project, owner, int(at * NANO), nusd)
        with self._lock:
            self._reserved.setdefault(run_id, []).append(
                _Reservation(project, owner, at, nusd, self._monotonic(), row_id))
            self._bound(self._reserved)

    def release(self, run_id: str, span_key: tuple[str, str] | None = None, cost_usd: float | None = None) -> None:
        """A call of the run finished (its cost is now a ledger entry): drop its oldest reservation.

        Its store row keeps counting for the other processes at ``cost_usd`` until
        the span ``span_key`` is stored (no span or no cost: the row goes now).
        """
        with self._lock:
            held = self._reserved.get(run_id)
            done = held.pop(0) if held else None
            if held is not None and not held:
                del self._reserved[run_id]
        if done is not None and done.row_id is not None and self._shared is not None:
            self._shared.settle(done.row_id, span_key, round((cost_usd or 0.0) * NANO))

    @contextmanager
    def check_transaction(self) -> Iterator[None]:
        """One cap check and its reservation as one write transaction of the store, for every process.

        A store that cannot be opened or locked leaves the check to the in-memory
        figures (and :meth:`figures` to say why), as before the shared rows existed.
        """
        from .store.errors import StoreError

        conn: sqlite3.Connection | None = None
        try:
            self._connection()
            if self._shared is not None:
                conn = self._shared.begin()
        except (sqlite3.Error, StoreError) as exc:
            global _shared_error_logged
            if not _shared_error_logged:
                _shared_error_logged = True
                logger.error("runtrace: policy caps: cannot write the store %s (%s); other processes' calls in "
                             "flight are not counted", self.store_path, exc)
        if conn is None or self._shared is None:
            yield
            return
        self._txn = conn
        try:
            yield
        except BaseException:
            self._txn = None
            self._shared.end(conn, commit=False)
            raise
        self._txn = None
        self._shared.end(conn, commit=True)

    @staticmethod
    def _bound(entries: dict[Any, Any]) -> None:
        while len(entries) > LEDGER_MAX:
            del entries[next(iter(entries))]

    # -- figures --------------------------------------------------------------------
    def figures(self, scope: str, name: str) -> Figures:
        """What ``scope`` (``project``/``owner``) ``name`` spent and how many runs it started, now.

        Raises ``sqlite3.Error`` or ``StoreError`` when the store cannot be read.
        """
        now = self.clock()
        with self._lock:
            read = self._reads.get((scope, name))
            mono = self._monotonic()
            bounds = {w: window_bounds(w, now) for w in WINDOWS}
            if read is None or mono - read.fetched >= self.cache_seconds or read.bounds != bounds:
                read = self._read(scope, name, bounds, mono)
                self._reads[(scope, name)] = read
            self._prune(mono, now)
            nusd = dict(read.nusd)
            if self._txn is not None and self._shared is not None:  # other processes' calls, read now
                for w, others in self._shared.others(self._txn, scope, name, bounds).items():
                    nusd[w] += others
            runs_today = read.runs_today
            out_tokens, llm_calls = read.month_output_tokens, read.month_llm_calls
            for call in self._calls.values():
                if _matches(call.project, call.owner, scope, name) and call.key not in read.stored_calls:
                    at_ns = int(call.at * NANO)
                    for w in WINDOWS:
                        start, end = bounds[w]
                        if start <= at_ns < end:
                            nusd[w] += call.cost_nusd
                            if w == "monthly":
                                out_tokens += call.output_tokens
                                llm_calls += 1
            for held in self._reserved.values():
                for r in held:
                    if _matches(r.project, r.owner, scope, name):
                        at_ns = int(r.at * NANO)
                        for w in WINDOWS:
                            start, end = bounds[w]
                            if start <= at_ns < end:
                                nusd[w] += r.cost_nusd
            start, end = bounds["daily"]
            for run in self._runs.values():
                if _matches(run.project, run.owner, scope, name) and run.run_id not in read.stored_runs \
                        and start <= int(run.at * NANO) < end:
                    runs_today += 1
        mean = -(-out_tokens // llm_calls) if llm_calls > 0 else 0
        return Figures({w: nusd[w] / NANO for w in WINDOWS}, runs_today, mean)

    def _read(self, scope: str, name: str, bounds: dict[Window, tuple[int, int]], mono: float) -> _Read:
        """One read transaction: the sums, and which ledger entries the store already holds.

        Inside :meth:`check_transaction` it is part of that (write) transaction.
        """
        conn = self._txn or self._connection()
        column = "project" if scope == "project" else "owner"
        own = self._txn is None
        if own:
            conn.execute("BEGIN")
        try:
            # One pass over the index range holding the three windows (a week may begin last month).
            (d0, d1), (w0, w1), (m0, m1) = bounds["daily"], bounds["weekly"], bounds["monthly"]
            row = conn.execute(
                "SELECT COALESCE(SUM(CASE WHEN started_ns >= ? AND started_ns < ? THEN cost_nusd END), 0), "
                "COALESCE(SUM(CASE WHEN started_ns >= ? AND started_ns < ? THEN cost_nusd END), 0), "
                "COALESCE(SUM(CASE WHEN started_ns >= ? AND started_ns < ? THEN cost_nusd END), 0), "
                "COUNT(CASE WHEN started_ns >= ? AND started_ns < ? THEN 1 END), "
                "COALESCE(SUM(CASE WHEN started_ns >= ? AND started_ns < ? THEN output_tokens END), 0), "
                "COALESCE(SUM(CASE WHEN started_ns >= ? AND started_ns < ? THEN llm_calls END), 0) "
                f"FROM runs WHERE {column} = ? AND started_ns >= ? AND started_ns < ?",  # noqa: S608 - fixed column
                (d0, d1, w0, w1, m0, m1, d0, d1, m0, m1, m0, m1, name, min(w0, m0), max(w1, m1))).fetchone()
            nusd: dict[Window, int] = {"daily": int(row[0]), "weekly": int(row[1]), "monthly": int(row[2])}
            runs_today, out_tokens, llm_calls = int(row[3]), int(row[4]), int(row[5])
            calls = [c.key for c in self._calls.values() if _matches(c.project, c.owner, scope, name)]
            runs = [r.run_id for r in self._runs.values() if _matches(r.project, r.owner, scope, name)]
            stored_calls = frozenset(_stored_spans(conn, calls))
            stored_runs = frozenset(_stored_runs(conn, runs))
        finally:
            if own:
                conn.execute("COMMIT")
        for key in stored_calls:
            call = self._calls.get(key)
            if call is not None and call.stored_at is None:
                call.stored_at = mono
        for run_id in stored_runs:
            run = self._runs.get(run_id)
            if run is not None and run.stored_at is None:
                run.stored_at = mono
        return _Read(mono, bounds, nusd, runs_today, out_tokens, llm_calls, stored_calls, stored_runs)

    def _prune(self, mono: float, now: float) -> None:
        """Drop entries every usable read counts itself, and those of months gone by."""
        month_start = window_bounds("monthly", now)[0]

        def done(entry: _Call | _LocalRun) -> bool:
            return ((entry.stored_at is not None and mono - entry.stored_at >= self.cache_seconds)
                    or int(entry.at * NANO) < month_start)

        for key in [k for k, c in self._calls.items() if done(c)]:
            del self._calls[key]
        for run_id in [k for k, r in self._runs.items() if done(r)]:
            del self._runs[run_id]
        for run_id, held in list(self._reserved.items()):
            held[:] = [r for r in held if mono - r.made < RESERVATION_MAX_S]
            if not held:
                del self._reserved[run_id]

    def _connection(self) -> sqlite3.Connection:
        from .store.db import Store

        if self._store is None:
            self._store = store = Store.open(self.store_path, create=False, readonly=None)
            if not store.readonly:
                self._shared = SharedReservations(str(store.path))
        assert isinstance(self._store, Store)
        return self._store.reader()

    def close(self) -> None:
        from .store.db import Store

        store, self._store = self._store, None
        shared, self._shared = self._shared, None
        if shared is not None:
            shared.close()
        if isinstance(store, Store):
            store.close()


def _matches(project: str | None, owner: str | None, scope: str, name: str) -> bool:
    return (project if scope == "project" else owner) == name


def _chunks(items: Sequence[T]) -> Iterable[Sequence[T]]:
    for i in range(0, len(items), _IN_CHUNK):
        yield items[i:i + _IN_CHUNK]


def _stored_spans(conn: sqlite3.Connection, keys: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for chunk in _chunks(keys):
        marks = ", ".join("(?, ?)" for _ in chunk)
        params = [part for key in chunk for part in key]
        found += [(r[0], r[1]) for r in conn.execute(
            f"SELECT trace_id, span_id FROM spans WHERE (trace_id, span_id) IN (VALUES {marks})",  # noqa: S608
            params)]
    return found


def _stored_runs(conn: sqlite3.Connection, run_ids: Sequence[str]) -> list[str]:
    found: list[str] = []
    for chunk in _chunks(run_ids):
        marks = ", ".join("?" for _ in chunk)
        found += [r[0] for r in conn.execute(f"SELECT id FROM runs WHERE id IN ({marks})", list(chunk))]  # noqa: S608
    return found
