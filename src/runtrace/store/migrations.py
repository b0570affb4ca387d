"""The store's schema history: an append-only list of migrations keyed by ``PRAGMA user_version``.

Never edit a migration that has shipped; fix mistakes with a new one (llm's
discipline, with an integer in the file header instead of a table). The
version header is written in the same transaction as the DDL, so a crash
leaves either the old schema or the new one, never half of it; and two
processes opening a blank file at once are serialised by ``BEGIN IMMEDIATE``
(the loser re-reads the version inside its transaction and finds nothing to do).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from .. import semconv as sc
from . import rollup, search
from .errors import ForeignStoreError, StoreVersionError

# PRAGMA application_id of every runtrace store ("RTRC"): how a foreign SQLite file is told apart.
APPLICATION_ID = 0x52545243

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_initial(conn: sqlite3.Connection) -> None:
    script(conn, """
        CREATE TABLE spans (
            trace_id TEXT NOT NULL,
            span_id TEXT NOT NULL,
            parent_span_id TEXT,
            run_id TEXT,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            span_kind TEXT NOT NULL,
            start_ns INTEGER NOT NULL,
            end_ns INTEGER NOT NULL,
            status_code TEXT NOT NULL,
            status_message TEXT,
            service TEXT,
            model TEXT,
            provider TEXT,
            input_tokens INTEGER,
            output_tokens INTEGER,
            cached_input_tokens INTEGER,
            reasoning_tokens INTEGER,
            cost_usd REAL,
            tool_name TEXT,
            attributes TEXT NOT NULL,
            resource TEXT NOT NULL,
            events TEXT NOT NULL,
            scope_name TEXT,
            scope_version TEXT,
            PRIMARY KEY (trace_id, span_id)
        );
        CREATE INDEX spans_run_start ON spans (run_id, start_ns);
        CREATE INDEX spans_start ON spans (start_ns);
        CREATE INDEX spans_tool_name ON spans (tool_name) WHERE tool_name IS NOT NULL;
        CREATE INDEX spans_model ON spans (model) WHERE model IS NOT NULL;

        -- One row per run, maintained by commutative upserts (store/aggregate.py).
        -- cost is kept as integer nano-dollars so that sums are exact in any order.
        CREATE TABLE runs (
            id TEXT PRIMARY KEY NOT NULL,
            name TEXT,
            project TEXT,
            owner TEXT,
            service TEXT,
            -- which span the descriptive fields above came from: a run span (rank 1)
            -- beats any other span (rank 0); then the later end, then the larger span id
            desc_rank INTEGER NOT NULL,
            desc_end_ns INTEGER NOT NULL,
            desc_span_id TEXT NOT NULL,
            stop_reason TEXT,
            budget_max_cost_usd REAL,
            budget_max_llm_calls INTEGER,
            budget_max_tool_calls INTEGER,
            budget_max_seconds REAL,
            budget_max_input_tokens INTEGER,
            budget_on_exceed TEXT,
            outcome TEXT NOT NULL DEFAULT 'unfinished',
            outcome_at_ns INTEGER,
            outcome_by TEXT,
            outcome_reason TEXT,
            cost_nusd INTEGER NOT NULL DEFAULT 0,
            unpriced_calls INTEGER NOT NULL DEFAULT 0,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cached_input_tokens INTEGER NOT NULL DEFAULT 0,
            reasoning_tokens INTEGER NOT NULL DEFAULT 0,
            llm_calls INTEGER NOT NULL DEFAULT 0,
            tool_calls INTEGER NOT NULL DEFAULT 0,
            repeated_reads INTEGER NOT NULL DEFAULT 0,
            repeated_read_tokens INTEGER NOT NULL DEFAULT 0,
            reinjected_tokens INTEGER NOT NULL DEFAULT 0,
            loop_detected INTEGER NOT NULL DEFAULT 0,
            span_count INTEGER NOT NULL DEFAULT 0,
            has_run_span INTEGER NOT NULL DEFAULT 0,
            started_ns INTEGER NOT NULL,
            ended_ns INTEGER
        );
        CREATE INDEX runs_started ON runs (started_ns DESC, id);
        CREATE INDEX runs_project ON runs (project, started_ns DESC);
        CREATE INDEX runs_owner ON runs (owner, started_ns DESC);
        CREATE INDEX runs_outcome ON runs (outcome, started_ns DESC);

        CREATE TABLE run_models (
            run_id TEXT NOT NULL,
            provider TEXT NOT NULL,   -- '' when the span named none
            model TEXT NOT NULL,      -- '' when the span named none
            llm_calls INTEGER NOT NULL DEFAULT 0,
            cost_nusd INTEGER NOT NULL DEFAULT 0,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cached_input_tokens INTEGER NOT NULL DEFAULT 0,
            unpriced_calls INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (run_id, provider, model)
        ) WITHOUT ROWID;
        CREATE INDEX run_models_model ON run_models (model, run_id);

        CREATE TABLE run_traces (
            run_id TEXT NOT NULL,
            trace_id TEXT NOT NULL,
            PRIMARY KEY (run_id, trace_id)
        ) WITHOUT ROWID;
    """)


@migration
def m002_innermost_counts(conn: sqlite3.Connection) -> None:
    """Per-span state of the innermost rule (store/innermost.py): each model call counted once.

    ``usage_below``: this span or a stored descendant carries usage; ``counted``:
    its LLM figures are in its run's totals. Spans stored before this version
    keep the counts they were given (an LLM span counted, never re-examined).
    """
    script(conn, """
        ALTER TABLE spans ADD COLUMN usage_below INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE spans ADD COLUMN counted INTEGER NOT NULL DEFAULT 0;
        UPDATE spans SET counted = (kind = 'llm'),
            usage_below = (kind = 'llm' AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL));
        -- Only spans at or above usage: the child check of every arriving span reads this index.
        CREATE INDEX spans_usage_parent ON spans (trace_id, parent_span_id) WHERE usage_below = 1;
    """)


@migration
def m003_refused_tool_calls(conn: sqlite3.Connection) -> None:
    """Coding-agent sessions: tool calls the agent's sandbox or user refused (never executed, so
    not tool calls), and the agent's own cost figure (Claude Code's ``cost_usd``) beside runtrace's."""
    conn.execute("ALTER TABLE runs ADD COLUMN refused_tool_calls INTEGER NOT NULL DEFAULT 0")
    conn.execute("ALTER TABLE runs ADD COLUMN agent_cost_nusd INTEGER NOT NULL DEFAULT 0")


@migration
def m004_alerts(conn: sqlite3.Connection) -> None:
    """Alert firings of ``runtrace serve --alerts`` (runtrace/alerts/): the store is their memory.

    ``alerts`` holds one row per (rule, subject), the subject being a run id or a
    project's window, so a rule fires at most once per run or window whatever the
    order spans arrive in, across restarts and processes; the row is also the
    delivery queue (status, attempts, next attempt). ``alert_cursor`` is the last
    ``spans`` rowid whose run was evaluated: rowids grow with each committed write,
    so every span committed later, by any process, is seen exactly once.
    """
    script(conn, """
        CREATE TABLE alerts (
            id INTEGER PRIMARY KEY,
            rule TEXT NOT NULL,
            subject TEXT NOT NULL,
            kind TEXT NOT NULL,
            run_id TEXT,
            project TEXT,
            window_start_ns INTEGER,
            window_end_ns INTEGER,
            fired_ns INTEGER NOT NULL,
            payload TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_ns INTEGER NOT NULL,
            last_error TEXT,
            delivered_ns INTEGER,
            UNIQUE (rule, subject)
        );
        CREATE INDEX alerts_due ON alerts (status, next_attempt_ns);
        CREATE INDEX alerts_fired ON alerts (fired_ns DESC, id);
        CREATE TABLE alert_cursor (
            name TEXT PRIMARY KEY NOT NULL,
            span_rowid INTEGER NOT NULL
        ) WITHOUT ROWID;
    """)


@migration
def m005_search_fts(conn: sqlite3.Connection) -> None:
    """Search and the report by model without scans (issue 14).

    ``span_search``: an FTS5 index of span names, attribute values and captured text
    (store/search.py), filled here for every stored span and at ingest for new ones.
    ``report_rollup``: the report by model/provider per day and outcome, kept by
    triggers (store/rollup.py), filled here from the stored runs.
    """
    search.create(conn)
    search.index_all(conn)
    rollup.create(conn)


@migration
def m006_run_errors(conn: sqlite3.Connection) -> None:
    """Errors per run: model calls that finally failed (API errors) and tool calls that failed."""
    present = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    for column in ("api_errors", "tool_errors"):  # tolerant of a file rolled back by hand (tests do)
        if column not in present:
            conn.execute(f"ALTER TABLE runs ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")
    # Runs stored before: recount from their spans (the same rule as store/aggregate.py).
    duplicate = f"json_extract(s.attributes, '$.\"{sc.DUPLICATE_OF}\"') IS NULL"
    conn.execute(f"""
        UPDATE runs SET
            tool_errors = (SELECT count(*) FROM spans s WHERE s.run_id = runs.id AND s.status_code = 'ERROR'
                           AND s.kind = 'tool' AND {duplicate}),
            api_errors = (SELECT count(*) FROM spans s WHERE s.run_id = runs.id AND s.status_code = 'ERROR'
                          AND {duplicate}
                          AND (s.kind = 'llm' OR (s.kind = 'other' AND s.span_kind = 'CLIENT'
                                                  AND s.provider IS NOT NULL)))""")


def carries_mark(key: str) -> str:
    """The span carries ``key`` with any value but a literal compact ``false`` (stored JSON is compact)."""
    return f"(instr(attributes, '\"{key}\"') > 0 AND instr(attributes, '\"{key}\":false') = 0)"


#: The spans a run page's sentence can be about (store/runpage.py): with events (detections, budget
#: stops), unpriced LLM calls, errors, and spans marked as a repeated read or as missing tool details.
#: The WHERE of m007's partial index, so a query must repeat it word for word to use that index.
NOTABLE_SPANS = (f"(events != '[]' OR kind = 'llm' AND cost_usd IS NULL OR status_code = 'ERROR' "
                 f"OR {carries_mark(sc.TOOL_REPEATED_READ)} OR {carries_mark(sc.TOOL_DETAILS_MISSING)})")


@migration
def m007_run_page_indexes(conn: sqlite3.Connection) -> None:
    """The run page of a long run without reading every span's row (issue 14).

    ``spans_run_start`` grows from (run_id, start_ns) to also cover what the
    page's outline reads of every span (end, ids, parent, kind, cost), so that
    read never touches the table: a 5,000-span run's rows are ~5 MB of JSON.
    ``spans_notable`` holds only the spans a sentence can be about
    (:data:`NOTABLE_SPANS`), so their details are read without testing every
    span's attribute text (that test was most of the page's query time). SQLite
    keeps both in step with every write, whoever makes it.
    """
    script(conn, f"""
        DROP INDEX IF EXISTS spans_run_start;
        CREATE INDEX spans_run_start ON spans (run_id, start_ns, end_ns DESC, span_id, parent_span_id, kind, cost_usd);
        CREATE INDEX IF NOT EXISTS spans_notable ON spans (run_id) WHERE {NOTABLE_SPANS};
    """)


@migration
def m008_cap_reservations(conn: sqlite3.Connection) -> None:
    """Policy caps across processes (issue 16): each LLM call that passed a cap, while the store lacks its span.

    A row is written in the same ``BEGIN IMMEDIATE`` transaction as the cap check
    that let the call through (``policy_shared.py``), at the call's projected cost;
    at the call's end it gets the real cost and the span's key, and counts until
    ``spans`` holds that span (then the run's cost has it). ``expires_ns`` (wall
    clock) is the TTL of a row whose process died: it stops counting then.

    Safe to run again (``IF NOT EXISTS``): a store written while this migration
    was the seventh has it already when it is run as the eighth.
    """
    script(conn, """
        CREATE TABLE IF NOT EXISTS cap_reservations (
            id INTEGER PRIMARY KEY,
            holder TEXT NOT NULL,     -- the process (pid and a random part) that made it
            project TEXT,
            owner TEXT,
            at_ns INTEGER NOT NULL,   -- the policy clock's instant the run counts at: its windows
            cost_nusd INTEGER NOT NULL,
            expires_ns INTEGER NOT NULL,
            trace_id TEXT,            -- set at the call's end: the span that, once stored, replaces the row
            span_id TEXT
        );
        CREATE INDEX IF NOT EXISTS cap_reservations_project ON cap_reservations (project, at_ns) WHERE project IS NOT NULL;
        CREATE INDEX IF NOT EXISTS cap_reservations_owner ON cap_reservations (owner, at_ns) WHERE owner IS NOT NULL;
    """)


def schema_version() -> int:
    """The version this code writes: the number of migrations."""
    return len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file up to :func:`schema_version`; return the number of migrations applied.

    ``conn`` must be in autocommit mode (``isolation_level=None``) and outside a
    transaction. Raises :class:`StoreVersionError` for a file written by a newer
    runtrace and :class:`ForeignStoreError` for another program's database,
    which is never given runtrace's tables.
    """
    target = schema_version()
    current, marked = identify(conn)
    if current > target:
        raise _too_new(current, target)
    if current == target and marked:
        return 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        current, marked = identify(conn)  # another process may have won
        if current > target:
            raise _too_new(current, target)
        for fn in MIGRATIONS[current:]:
            fn(conn)
        conn.execute(f"PRAGMA user_version = {target:d}")
        if not marked:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return target - current


def check_readable(conn: sqlite3.Connection) -> None:
    """What :func:`migrate` checks, for a file opened read-only (nothing can be written to it)."""
    target = schema_version()
    current, _marked = identify(conn)
    if current > target:
        raise _too_new(current, target)
    if current == 0:
        raise ForeignStoreError("the file is an empty database, not a runtrace store")
    if current < target:
        raise StoreVersionError(
            f"this store file has schema version {current} and needs upgrading to version {target}, "
            "which a read-only file cannot be: open it once where it is writable")


# Tables a runtrace store has had since m001; a file with user_version set but no
# application_id mark is a store written before the mark existed only if it has them.
_RUNTRACE_SHAPE = {"spans": {"trace_id", "span_id", "span_kind", "run_id"},
                   "runs": {"id", "cost_nusd", "desc_rank"}, "run_models": {"run_id", "model"},
                   "run_traces": {"run_id", "trace_id"}}


def identify(conn: sqlite3.Connection) -> tuple[int, bool]:
    """(schema version, has runtrace's application_id) of the file, or ForeignStoreError.

    A blank file is version 0. A file with tables of its own but neither
    runtrace's ``application_id`` nor runtrace's tables belongs to another
    program: the caller must leave it alone.
    """
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if app_id == APPLICATION_ID:
        return version, True
    if app_id != 0:
        raise ForeignStoreError(f"the file belongs to another program (SQLite application_id {app_id:#x})")
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY name")]
    if not tables:
        if version:
            raise ForeignStoreError(f"the file has user_version {version} but no tables")
        return 0, False
    shape_ok = version > 0 and all(
        set(columns) <= {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        for table, columns in _RUNTRACE_SHAPE.items())
    if not shape_ok:
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        raise ForeignStoreError(f"the file is another program's SQLite database (tables: {shown}); "
                                "runtrace leaves it untouched")
    return version, False


def script(conn: sqlite3.Connection, sql: str) -> None:
    """Run a DDL script statement by statement inside the open transaction.

    ``executescript`` would COMMIT first, breaking the all-or-nothing upgrade.
    """
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            conn.execute(buffer)
            buffer = ""


def _too_new(current: int, target: int) -> StoreVersionError:
    return StoreVersionError(
        f"this store file has schema version {current}, but this runtrace understands up to "
        f"version {target}: upgrade runtrace, or point --store / RUNTRACE_STORE at another file")
