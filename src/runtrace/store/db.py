"""The Store: one SQLite file, one guarded write connection, a read connection per thread.

Why this shape (datasette's, with a lock instead of a writer thread): the SDK's
BatchSpanProcessor already calls the exporter from its own worker thread, and
the HTTP receiver from request threads, so a lock around the single write
connection is enough; readers never wait on it thanks to WAL. Several
*processes* may write the same file at once: each write is one ``BEGIN
IMMEDIATE`` transaction, and ``busy_timeout`` makes the others wait their turn.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .. import semconv as sc
from .errors import StoreClosedError, StoreError, StoreNotFoundError, StoreReadOnlyError
from .filters import started_between
from .ingest import ingest as _ingest
from .migrations import check_readable, identify, migrate
from .records import SpanRecord
from .values import attributes_from_json, events_from_json

BUSY_TIMEOUT_MS = 30_000
DEFAULT_PATH = Path("~/.runtrace/runtrace.db")


def _closing_on_error(conn: sqlite3.Connection, target: Path, step: Callable[[sqlite3.Connection], object],
                      not_a: str | None) -> None:
    """Run ``step(conn)`` while opening a store; on any error close ``conn`` first, so no file stays open.

    A StoreError comes back naming ``target``; with ``not_a`` a DatabaseError
    becomes a StoreError saying the file is not that ("a runtrace store").
    """
    try:
        step(conn)
    except StoreError as exc:
        conn.close()
        raise type(exc)(f"{target}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        conn.close()
        if not_a is None:
            raise
        raise StoreError(f"{target} is not {not_a}: {exc}") from exc
    except BaseException:
        conn.close()
        raise


# The columns of ``spans`` a SpanRecord is read back from (record_from_row): iter_span_records, forward.
RECORD_COLUMNS = ("trace_id, span_id, parent_span_id, name, span_kind, start_ns, end_ns, status_code, "
                  "status_message, attributes, resource, events, scope_name, scope_version")


def record_from_row(row: sqlite3.Row, resources: dict[str, Any]) -> SpanRecord:
    """A stored span back as the SpanRecord it was (selected with RECORD_COLUMNS).

    ``resources`` caches decoded resources by their JSON text: a run's spans share one.
    """
    res = resources.get(row["resource"])
    if res is None:
        res = resources[row["resource"]] = attributes_from_json(row["resource"])
    return SpanRecord(
        trace_id=row["trace_id"], span_id=row["span_id"], parent_span_id=row["parent_span_id"],
        name=row["name"], kind=row["span_kind"], start_ns=row["start_ns"], end_ns=row["end_ns"],
        status_code=row["status_code"], status_message=row["status_message"],
        attributes=attributes_from_json(row["attributes"]), resource=res,
        events=events_from_json(row["events"]), scope_name=row["scope_name"], scope_version=row["scope_version"],
    )


def default_path() -> Path:
    """``RUNTRACE_STORE`` if set, else ``~/.runtrace/runtrace.db``."""
    env = os.environ.get(sc.ENV_STORE)
    return Path(env).expanduser() if env else DEFAULT_PATH.expanduser()


def connect(path: str | os.PathLike[str], *, readonly: bool = False, immutable: bool = False,
            wal: bool = True) -> sqlite3.Connection:
    """A connection prepared like every other: WAL, synchronous=NORMAL, busy_timeout, Row.

    ``readonly`` opens the file with ``mode=ro`` (no WAL switch, nothing written);
    ``immutable`` also tells SQLite that nobody writes it, which a WAL file on a
    read-only mount needs (its ``-shm`` index cannot be created there).
    ``wal=False`` leaves the journal mode alone (call :func:`prepare` later), so a
    file can be identified before anything in it changes.
    """
    if readonly:
        uri = Path(os.path.abspath(os.fspath(path))).as_uri() + "?mode=ro" + ("&immutable=1" if immutable else "")
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
    else:
        conn = sqlite3.connect(os.fspath(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
    if readonly:
        conn.execute("PRAGMA query_only = 1")
    elif wal:
        prepare(conn, path)
    return conn


def prepare(conn: sqlite3.Connection, path: str | os.PathLike[str]) -> None:
    """WAL and synchronous=NORMAL on a writable connection; closes it when that fails."""
    try:
        _ensure_wal(conn, os.fspath(path))
        conn.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        conn.close()
        raise


def _writable(path: Path) -> bool:
    """Whether this process may write the file and create its -wal/-shm next to it."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _connect_readonly(path: Path) -> tuple[sqlite3.Connection, bool]:
    """(connection, immutable): ``mode=ro``, or ``immutable=1`` when ro cannot read a WAL file."""
    conn = connect(path, readonly=True)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn, False
    except sqlite3.OperationalError:
        conn.close()
    conn = connect(path, readonly=True, immutable=True)
    return conn, True


def _ensure_wal(conn: sqlite3.Connection, where: str) -> None:
    """Switch the file to WAL (persistent, so usually already done).

    Switching needs an exclusive lock and SQLite does not run the busy handler
    for it, so two processes creating the same blank file at once would see
    "database is locked": retry until the busy timeout instead.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
            continue
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"could not switch {where} to WAL (journal_mode={mode})")
        return


# Connections a forked child inherited from its parent. SQLite forbids using them in the
# child, and closing one there can checkpoint or delete the parent's WAL from stale state,
# so the child keeps them referenced (never finalised) and opens its own.
_inherited: list[sqlite3.Connection] = []
_open_stores: weakref.WeakSet[Store] = weakref.WeakSet()


FORK_WAIT_S = 5.0  # how long fork() waits for a write in progress before going ahead
_held_at_fork: list[threading.Lock] = []


def _before_fork() -> None:
    """Let no write be in progress at fork: SQLite's per-process lock state is copied into the
    child, and a child born in the middle of the parent's write transaction sees the file
    locked by itself forever (``database is locked``). Waits at most FORK_WAIT_S per store."""
    for store in list(_open_stores):
        lock = store._write_lock
        if lock.acquire(timeout=FORK_WAIT_S):
            _held_at_fork.append(lock)


def _after_fork_in_parent() -> None:
    while _held_at_fork:
        _held_at_fork.pop().release()


def _after_fork_in_child() -> None:
    _held_at_fork.clear()  # the child gets new locks; these copies are never used again
    for store in list(_open_stores):
        store._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)


def _keep_forever(conn: sqlite3.Connection) -> None:
    """Hold an inherited connection so that not even interpreter shutdown closes it."""
    _inherited.append(conn)
    try:
        import ctypes

        ctypes.pythonapi.Py_IncRef(ctypes.py_object(conn))  # module globals are cleared at exit
    except Exception:  # noqa: BLE001 - the list above still holds it while the program runs
        pass


class Store:
    """An open runtrace store. Create with :meth:`Store.open`; thread-safe; close when done.

    Fork-safe: in a forked child the locks (possibly held by a parent thread that does not
    exist in the child) are new, and the child opens its own connections on first use.
    """

    path: Path

    def __init__(self, path: Path, writer: sqlite3.Connection, *, readonly: bool = False,
                 immutable: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._immutable = immutable
        self._writer: sqlite3.Connection | None = writer
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        self._pid = os.getpid()
        _open_stores.add(self)

    def _reset_after_fork(self) -> None:
        """In a forked child: fresh locks, no connection of the parent's (see ``_inherited``)."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._write_lock = threading.Lock()
        self._readers_lock = threading.Lock()
        if self._writer is not None:
            _keep_forever(self._writer)
            self._writer = None  # reopened by the first write
        for conn in self._readers:
            _keep_forever(conn)
        self._readers = []
        self._local = threading.local()

    def _write_connection(self) -> sqlite3.Connection:
        """The write connection (call with the write lock held); a forked child opens its own."""
        if self._pid != os.getpid():  # forked without the at-fork hook (should not happen)
            raise StoreError(f"the store {self.path} was opened by another process")
        if self._writer is None:
            self._writer = connect(self.path)
        return self._writer

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *, create: bool = True,
             readonly: bool | None = False) -> Store:
        """Open (and migrate) the store at ``path``, ``RUNTRACE_STORE`` or ``~/.runtrace/runtrace.db``.

        With ``create=False`` a missing file raises :class:`StoreNotFoundError`
        instead of being created (for commands that only read). ``readonly=True``
        opens it read-only; ``readonly=None`` does so only when the file or its
        folder cannot be written (a read-only mount), which commands that only
        read use. Every file that is not a usable runtrace store (garbage, another
        program's database, a newer schema) raises a :class:`StoreError` naming it.
        """
        target = Path(path).expanduser() if path is not None else default_path()
        if not target.exists():
            if not create or readonly:
                raise StoreNotFoundError(f"no runtrace store at {target} (run something with "
                                         f"runtrace.instrument() first, or pass --store / {sc.ENV_STORE})")
            target.parent.mkdir(parents=True, exist_ok=True)
        elif not target.is_file():
            raise StoreError(f"{target} is not a runtrace store: not a regular file")
        auto = readonly is None
        if readonly is None:
            readonly = not _writable(target)
        if readonly:
            return cls._open_readonly(target)
        try:
            writer = connect(target, wal=False)

            def identify_then_prepare(conn: sqlite3.Connection) -> None:
                identify(conn)  # another program's database is left exactly as it was
                prepare(conn, target)

            # a DatabaseError goes on to the handlers below (a read-only file falls back to reading)
            _closing_on_error(writer, target, identify_then_prepare, None)
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc) and auto:  # a read-only file os.access did not see as one
                return cls._open_readonly(target)
            raise StoreError(f"cannot open the store {target}: {exc}") from exc
        except sqlite3.DatabaseError as exc:  # "file is not a database", a corrupt header
            raise StoreError(f"{target} is not a runtrace store: {exc}") from exc
        _closing_on_error(writer, target, migrate, "a usable runtrace store")
        return cls(target, writer)

    @classmethod
    def _open_readonly(cls, target: Path) -> Store:
        try:
            conn, immutable = _connect_readonly(target)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{target} is not a runtrace store: {exc}") from exc
        _closing_on_error(conn, target, check_readable, "a runtrace store")
        return cls(target, conn, readonly=True, immutable=immutable)

    # --- lifecycle ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close every connection. Idempotent; any later use raises StoreClosedError."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            if self._writer is not None:
                self._writer.close()
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Store {str(self.path)!r}{' closed' if self._closed else ''}>"

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"the store {self.path} is closed")

    # --- writing -----------------------------------------------------------------

    def ingest(self, records: Iterable[SpanRecord]) -> int:
        """Store spans not stored yet and add them to their runs; return how many were new."""
        batch = records if isinstance(records, list) else list(records)
        if self.readonly:
            raise StoreReadOnlyError(f"the store {self.path} was opened read-only")
        with self._write_lock:
            self._check_open()
            return _ingest(self._write_connection(), batch)

    # --- reading -----------------------------------------------------------------

    def reader(self) -> sqlite3.Connection:
        """This thread's read connection (``query_only``; opened on first use)."""
        self._check_open()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, readonly=self.readonly, immutable=self._immutable)
            conn.execute("PRAGMA query_only = 1")
            with self._readers_lock:
                self._check_open()
                self._readers.append(conn)
            self._local.conn = conn
        return conn

    def execute(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        """Run a read query on this thread's reader and return all rows."""
        return self.reader().execute(sql, params).fetchall()

    def count_spans(self, run_id: str | None = None) -> int:
        if run_id is None:
            return int(self.execute("SELECT count(*) FROM spans")[0][0])
        return int(self.execute("SELECT count(*) FROM spans WHERE run_id = ?", (run_id,))[0][0])

    def count_runs(self) -> int:
        return int(self.execute("SELECT count(*) FROM runs")[0][0])

    def iter_span_records(self, *, run_id: str | None = None, since_ns: int | None = None,
                          batch_size: int = 1000) -> Iterator[SpanRecord]:
        """Stored spans back as SpanRecords, oldest first (what ``runtrace forward`` replays)."""
        where, params = started_between(since_ns, None, column="start_ns")
        if run_id is not None:
            where.append("run_id = ?")
            params.append(run_id)
        sql = (f"SELECT {RECORD_COLUMNS} FROM spans" + (f" WHERE {' AND '.join(where)}" if where else "")
               + " ORDER BY start_ns, trace_id, span_id")
        cursor = self.reader().execute(sql, params)
        resources: dict[str, Any] = {}
        while rows := cursor.fetchmany(batch_size):
            for r in rows:
                yield record_from_row(r, resources)
