"""Store lifecycle and schema: migrations on real files, paths, closing, connections."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from runtrace.store import migrations
from runtrace.store.db import Store
from runtrace.store.errors import StoreClosedError, StoreError, StoreNotFoundError, StoreVersionError
from runtrace.store.queries import list_runs
from store_helpers import llm, run_span

SPANS_COLUMNS = {
    "trace_id": "TEXT", "span_id": "TEXT", "parent_span_id": "TEXT", "run_id": "TEXT", "name": "TEXT",
    "kind": "TEXT", "span_kind": "TEXT", "start_ns": "INTEGER", "end_ns": "INTEGER", "status_code": "TEXT",
    "status_message": "TEXT", "service": "TEXT", "model": "TEXT", "provider": "TEXT",
    "input_tokens": "INTEGER", "output_tokens": "INTEGER", "cached_input_tokens": "INTEGER",
    "reasoning_tokens": "INTEGER", "cost_usd": "REAL", "tool_name": "TEXT", "attributes": "TEXT",
    "resource": "TEXT", "events": "TEXT", "scope_name": "TEXT", "scope_version": "TEXT",
    "usage_below": "INTEGER", "counted": "INTEGER",  # m002: the innermost rule's state
}
RUNS_COLUMNS = {
    "id": "TEXT", "name": "TEXT", "project": "TEXT", "owner": "TEXT", "service": "TEXT",
    "desc_rank": "INTEGER", "desc_end_ns": "INTEGER", "desc_span_id": "TEXT", "stop_reason": "TEXT",
    "budget_max_cost_usd": "REAL", "budget_max_llm_calls": "INTEGER", "budget_max_tool_calls": "INTEGER",
    "budget_max_seconds": "REAL", "budget_max_input_tokens": "INTEGER", "budget_on_exceed": "TEXT",
    "outcome": "TEXT", "outcome_at_ns": "INTEGER", "outcome_by": "TEXT", "outcome_reason": "TEXT",
    "cost_nusd": "INTEGER", "unpriced_calls": "INTEGER", "input_tokens": "INTEGER",
    "output_tokens": "INTEGER", "cached_input_tokens": "INTEGER", "reasoning_tokens": "INTEGER",
    "llm_calls": "INTEGER", "tool_calls": "INTEGER", "repeated_reads": "INTEGER",
    "repeated_read_tokens": "INTEGER", "reinjected_tokens": "INTEGER", "refused_tool_calls": "INTEGER", "agent_cost_nusd": "INTEGER", "api_errors": "INTEGER", "tool_errors": "INTEGER", "loop_detected": "INTEGER",
    "span_count": "INTEGER", "has_run_span": "INTEGER", "started_ns": "INTEGER", "ended_ns": "INTEGER",
}
RUN_MODELS_COLUMNS = {
    "run_id": "TEXT", "provider": "TEXT", "model": "TEXT", "llm_calls": "INTEGER", "cost_nusd": "INTEGER",
    "input_tokens": "INTEGER", "output_tokens": "INTEGER", "cached_input_tokens": "INTEGER",
    "unpriced_calls": "INTEGER",
}


def columns(path: Path, table: str) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        return {row[1]: row[2] for row in conn.execute(f"PRAGMA table_info({table})")}


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA user_version").fetchone()[0]


def test_blank_file_gets_exact_schema_and_version(tmp_path: Path) -> None:
    path = tmp_path / "blank.db"
    Store.open(path).close()
    assert columns(path, "spans") == SPANS_COLUMNS
    assert columns(path, "runs") == RUNS_COLUMNS
    assert columns(path, "run_models") == RUN_MODELS_COLUMNS
    assert columns(path, "run_traces") == {"run_id": "TEXT", "trace_id": "TEXT"}
    assert user_version(path) == len(migrations.MIGRATIONS) == migrations.schema_version()
    assert [m.__name__ for m in migrations.MIGRATIONS] == [
        "m001_initial", "m002_innermost_counts", "m003_refused_tool_calls", "m004_alerts", "m005_search_fts",
        "m006_run_errors", "m007_run_page_indexes", "m008_cap_reservations"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                                              "AND name NOT LIKE 'sqlite_autoindex%'")}
    assert indexes == {"spans_run_start", "spans_start", "spans_tool_name", "spans_model", "runs_started",
                       "runs_project", "runs_owner", "runs_outcome", "run_models_model", "spans_usage_parent",
                       "alerts_due", "alerts_fired", "spans_notable", "cap_reservations_project",
                       "cap_reservations_owner"}


def test_reopen_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store.open(path) as store:
        store.ingest([llm("r1", 1, start_s=0, end_s=1, input_tokens=5, cost=0.5)])
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrations.migrate(conn) == 0
    finally:
        conn.close()
    with Store.open(path) as store:
        assert store.count_spans() == 1
        assert [r["input_tokens"] for r in list_runs(store)] == [5]
    assert user_version(path) == migrations.schema_version()


def test_migrate_applies_missing_migrations_in_one_transaction(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    try:
        assert migrations.migrate(conn) == len(migrations.MIGRATIONS)
        assert conn.in_transaction is False
        assert migrations.migrate(conn) == 0
    finally:
        conn.close()


def test_failed_migration_leaves_the_file_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def m099_broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("boom in m099")

    path = tmp_path / "f.db"
    Store.open(path).close()
    version = migrations.schema_version()
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, m099_broken])
    with pytest.raises(RuntimeError, match="boom in m099"):
        Store.open(path)
    assert user_version(path) == version
    assert columns(path, "half_done") == {}


def test_file_from_the_future_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    Store.open(path).close()
    future = migrations.schema_version() + 1  # one more than this code knows, whatever that is
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {future}")
    with pytest.raises(StoreVersionError, match=f"schema version {future}, but this runtrace understands up to "
                                                f"version {migrations.schema_version()}: upgrade runtrace"):
        Store.open(path)
    assert user_version(path) == future


def test_open_missing_without_create(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "x.db"
    with pytest.raises(StoreNotFoundError, match="no runtrace store at .*x.db"):
        Store.open(path, create=False)
    assert not path.parent.exists()
    Store.open(path).close()  # create=True makes the folder
    with Store.open(path, create=False) as store:
        assert store.count_runs() == 0


def test_a_file_that_is_not_a_database_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are not the spans you are looking for\n" * 100)
    with pytest.raises(StoreError, match=r"notes.txt is not a runtrace store: file is not a database"):
        Store.open(path)
    assert path.read_text().startswith("these are not")


def test_path_from_env_then_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTRACE_STORE", str(tmp_path / "env" / "e.db"))
    with Store.open() as store:
        assert store.path == tmp_path / "env" / "e.db"
    assert (tmp_path / "env" / "e.db").exists()
    monkeypatch.delenv("RUNTRACE_STORE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with Store.open() as store:
        assert store.path == tmp_path / "home" / ".runtrace" / "runtrace.db"
    assert (tmp_path / "home" / ".runtrace" / "runtrace.db").exists()


def test_close_is_idempotent_and_later_use_is_loud(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "c.db")
    store.ingest([llm("r1", 1, start_s=0, end_s=1, cost=0.1)])
    assert store.count_spans() == 1
    store.close()
    store.close()
    assert store.closed
    with pytest.raises(StoreClosedError, match="is closed"):
        store.ingest([llm("r1", 2, start_s=0, end_s=1, cost=0.1)])
    with pytest.raises(StoreClosedError):
        list_runs(store)


def test_connections_are_prepared(tmp_path: Path) -> None:
    with Store.open(tmp_path / "p.db") as store:
        reader = store.reader()
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert reader.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert reader.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
        assert reader.execute("PRAGMA query_only").fetchone()[0] == 1
        assert isinstance(reader.execute("SELECT 1 AS one").fetchone(), sqlite3.Row)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.execute("DELETE FROM runs")
        seen: list[sqlite3.Connection] = []
        thread = threading.Thread(target=lambda: seen.append(store.reader()))
        thread.start()
        thread.join()
        assert seen[0] is not reader
        assert store.reader() is reader


def test_threads_share_one_store(tmp_path: Path) -> None:
    with Store.open(tmp_path / "t.db") as store:
        def work(t: int) -> None:
            for k in range(20):
                store.ingest([llm("shared", t * 1000 + k, start_s=k, end_s=k + 1, input_tokens=3,
                                  cost=0.25)])
                list_runs(store)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        (run,) = list_runs(store)
        assert (run["llm_calls"], run["input_tokens"], run["cost_usd"]) == (80, 240, 20.0)
        assert store.count_spans() == 80


def test_stored_spans_read_back_as_the_same_records(tmp_path: Path) -> None:
    records = [run_span("r1", 1, start_s=0, end_s=9, outcome="accepted"),
               llm("r1", 2, start_s=1, end_s=2, input_tokens=10, cost=0.01, parent=1)]
    with Store.open(tmp_path / "r.db") as store:
        store.ingest(records)
        assert list(store.iter_span_records()) == records
        assert list(store.iter_span_records(run_id="nope")) == []


@pytest.mark.parametrize("readonly", [False, True])
def test_an_interrupted_open_leaves_no_connection_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       readonly: bool) -> None:
    """Ctrl-C (or any error) in the middle of opening a store closes what was opened: every step alike."""
    from runtrace.store import db

    path = tmp_path / "runtrace.db"
    Store.open(path).close()
    opened: list[sqlite3.Connection] = []
    real_connect = db.connect

    def recording_connect(*args: object, **kwargs: object) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)  # type: ignore[arg-type]
        opened.append(conn)
        return conn

    def interrupted(conn: sqlite3.Connection) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(db, "connect", recording_connect)
    monkeypatch.setattr(db, "check_readable" if readonly else "migrate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Store.open(path, readonly=readonly)
    assert len(opened) == 1
    with pytest.raises(sqlite3.ProgrammingError, match="closed database"):
        opened[0].execute("SELECT 1")
