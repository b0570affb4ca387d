"""Full-text search over spans: an FTS5 index kept in step with ``spans`` at ingest.

Why FTS5 and not ``LIKE '%word%'``: a substring LIKE cannot use an index, so a
word that few spans contain reads every span's JSON (1.2 s on 1,000,000 spans).
The index answers the same question from its posting lists in milliseconds.

Shape (``span_search``, rowid = the span's ``spans.rowid``):

- ``name``: the span name, tool name and model;
- ``attrs``: every string (or list/object) attribute value except captured text,
  the status message and the events' string values (an exception's message);
- ``text``: captured prompts, completions, system instructions, tool arguments
  and results (the ``gen_ai.*`` content attributes).

Numbers and booleans are not indexed (token counts and costs are not words).
The table is contentless (``content=''``) with ``detail=column``: it stores
which span and column hold a word, not where in it, which keeps it small and
its inserts cheap; so a query is an AND of words (the last one a prefix), never
a phrase. Rows are filled by one ``INSERT ... SELECT`` that reads the new spans'
JSON with SQLite's ``json_each`` (C, no Python per span), the same statement at
ingest (inside the ingest transaction) and in migration m005 for older rows.

Words are what SQLite's ``unicode61`` tokenizer makes: runs of letters and
digits; ``git_diff`` is the two words ``git`` and ``diff``, and case and
diacritics do not matter. User input is never passed as FTS syntax: each word
is quoted, so ``"``, ``*``, ``:``, ``(``, ``NEAR`` or ``OR`` are plain text.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable

from .. import semconv as sc

__all__ = ["CONTENT_KEYS", "COLUMNS", "TABLE", "create", "index_new_rows", "match_expression", "words"]

TABLE = "span_search"
COLUMNS = ("name", "attrs", "text")
CONTENT_KEYS = (sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES, sc.GEN_AI_SYSTEM_INSTRUCTIONS,
                sc.GEN_AI_TOOL_CALL_ARGUMENTS, sc.GEN_AI_TOOL_CALL_RESULT)
_CONTENT_SQL = ", ".join("'" + k.replace("'", "''") + "'" for k in CONTENT_KEYS)
_INDEXED_TYPES = "('text', 'array', 'object')"

# One row of the index per span, read from the stored row itself (so the migration and
# ingest index exactly the same text). ``{where}`` selects the spans to index.
_INDEX_SQL = (
    f"INSERT INTO {TABLE} (rowid, name, attrs, text) "
    "SELECT s.rowid, "
    "s.name || coalesce(' ' || s.tool_name, '') || coalesce(' ' || s.model, ''), "
    f"coalesce((SELECT group_concat(j.value, ' ') FROM json_each(s.attributes) j WHERE j.type IN {_INDEXED_TYPES} "
    f"AND j.key NOT IN ({_CONTENT_SQL})), '') || coalesce(' ' || s.status_message, '') || "
    "CASE WHEN s.events != '[]' THEN coalesce(' ' || (SELECT group_concat(e.value, ' ') FROM json_tree(s.events) e "
    "WHERE e.type = 'text'), '') ELSE '' END, "
    "(SELECT group_concat(j.value, ' ') FROM json_each(s.attributes) j "
    f"WHERE j.key IN ({_CONTENT_SQL})) "
    "FROM spans s WHERE {where}"
)
_WORD = re.compile(r"[^\W_]+")  # unicode61's tokens: letters and digits; "_" separates
MAX_WORDS = 16
_ROWID_MAX = 2**63 - 1


def create(conn: sqlite3.Connection) -> None:
    """Create the index table (empty); call inside the migration's transaction."""
    conn.execute(f"CREATE VIRTUAL TABLE {TABLE} USING fts5(name, attrs, text, content='', detail=column, "
                 "tokenize='unicode61')")


def index_all(conn: sqlite3.Connection) -> None:
    """Index every stored span (the migration's backfill)."""
    conn.execute(_INDEX_SQL.format(where="1"))


def index_new_rows(conn: sqlite3.Connection, after_rowid: int, keys: list[tuple[str, str]]) -> None:
    """Index the spans just inserted in this transaction, ``keys``; ``after_rowid`` is the largest
    rowid before the insert (:func:`max_rowid`).

    SQLite gives a new row the largest rowid plus one, and the caller holds the write
    transaction, so the batch is exactly the rows above ``after_rowid``: one statement
    indexes them all. Only a table whose rowids are about to reach 2**63 (where SQLite
    picks random free ones) is indexed key by key instead.
    """
    if after_rowid >= _ROWID_MAX - len(keys):
        index_keys(conn, keys)
        return
    conn.execute(_INDEX_SQL.format(where="s.rowid > ?"), (after_rowid,))


def index_keys(conn: sqlite3.Connection, keys: Iterable[tuple[str, str]]) -> None:
    """Index the spans with these (trace_id, span_id) keys (the slow, always-right path)."""
    sql = _INDEX_SQL.format(where="s.trace_id = ? AND s.span_id = ?")
    conn.executemany(sql, list(keys))


def max_rowid(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(rowid), 0) FROM spans").fetchone()[0])


def words(query: str) -> list[str]:
    """The words of a user's query as the index sees them (letters and digits), at most MAX_WORDS."""
    return _WORD.findall(query)[:MAX_WORDS]


def match_expression(query: str, column: str | None = None) -> str | None:
    """An FTS5 MATCH expression for ``query``: every word quoted, all required, the last a prefix.

    None when the query has no word at all (only punctuation): nothing can match it.
    ``column`` (one of COLUMNS) limits the match to that column.
    """
    found = words(query)
    if not found:
        return None
    if column is not None and column not in COLUMNS:
        raise ValueError(f"unknown search column {column!r}; choose one of {', '.join(COLUMNS)}")
    terms = [f'"{w}"' for w in found]
    terms[-1] += "*"
    expression = " AND ".join(terms)
    return f"{column} : ({expression})" if column else expression
