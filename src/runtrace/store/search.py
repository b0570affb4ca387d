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

Numbers and booleans are not indexed (token counts and costs are not words),
nor runtrace's own hashes (``NOT_INDEXED``). The table is contentless
(``content=''``, ``columnsize=0``) with ``detail=column``: it stores which span
and column hold a word, not where in it, which keeps it small and its inserts
cheap; so a query is an AND of words (the last one a prefix), never a phrase.
The text of each span is built by :func:`texts` from the attributes ingest
already holds (outside the write lock), and inserted with the span's rowid in
the ingest transaction; migration m005 runs the same function over the stored
spans. (Reading the stored JSON back with SQLite's ``json_each`` instead cost
twice as much per span.)

Words are what SQLite's ``unicode61`` tokenizer makes: runs of letters and
digits; ``git_diff`` is the two words ``git`` and ``diff``, and case and
diacritics do not matter. User input is never passed as FTS syntax: each word
is quoted, so ``"``, ``*``, ``:``, ``(``, ``NEAR`` or ``OR`` are plain text.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from .. import semconv as sc
from .values import loads

__all__ = ["COLUMNS", "CONTENT_KEYS", "INSERT_SQL", "TABLE", "create", "index_all", "match_expression", "texts",
           "words"]

TABLE = "span_search"
COLUMNS = ("name", "attrs", "text")
CONTENT_KEYS = (sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES, sc.GEN_AI_SYSTEM_INSTRUCTIONS,
                sc.GEN_AI_TOOL_CALL_ARGUMENTS, sc.GEN_AI_TOOL_CALL_RESULT)
# runtrace's own hashes: unique hex per span, never searched for, and the costliest words to index
NOT_INDEXED = frozenset({sc.TOOL_ARGS_HASH, sc.TOOL_RESULT_HASH, sc.TOOL_PATH_HASH, sc.CONTEXT_FINGERPRINT})
_CONTENT = frozenset(CONTENT_KEYS)
INSERT_SQL = f"INSERT INTO {TABLE} (rowid, name, attrs, text) VALUES (?, ?, ?, ?)"
_WORD = re.compile(r"[^\W_]+")  # unicode61's tokens: letters and digits; "_" separates
MAX_WORDS = 16
_BACKFILL_CHUNK = 5_000

Texts = tuple[str, str, str]


def texts(name: str, tool_name: str | None, model: str | None, attributes: Mapping[str, Any],
          status_message: str | None, events: Iterable[tuple[str, Mapping[str, Any]]]) -> Texts:
    """The (name, attrs, text) a span is indexed under: strings and lists of its attributes, no numbers.

    Called once per span at ingest (outside the write lock) and by the migration
    for stored spans, so both index the same words.
    """
    attrs: list[str] = []
    text: list[str] = []
    add = attrs.append
    content, skipped = _CONTENT, NOT_INDEXED
    for key, value in attributes.items():  # the hot loop of ingest's search work: exact type checks
        kind = type(value)
        if kind is str:
            if key in content:
                text.append(value)
            elif key not in skipped:
                add(value)
        elif kind is tuple or kind is list:
            for item in value:
                if type(item) is str:
                    add(item)
        elif kind is not int and kind is not float and kind is not bool and isinstance(value, str):
            add(value)  # a str subclass
    if status_message:
        add(status_message)
    for event_name, event_attributes in events:
        add(event_name)
        for item in event_attributes.values():
            if isinstance(item, str):
                add(item)
    if tool_name is None and model is None:
        return name, " ".join(attrs), " ".join(text)
    return " ".join([x for x in (name, tool_name, model) if x]), " ".join(attrs), " ".join(text)


def create(conn: sqlite3.Connection) -> None:
    """Create the index table (empty); call inside the migration's transaction."""
    conn.execute(f"CREATE VIRTUAL TABLE {TABLE} USING fts5(name, attrs, text, content='', detail=column, "
                 "columnsize=0, tokenize='unicode61')")


def index_all(conn: sqlite3.Connection) -> None:
    """Index every stored span (the migration's backfill), a chunk of rows at a time."""
    after = 0
    while True:
        rows = conn.execute(
            "SELECT rowid, name, tool_name, model, attributes, status_message, events FROM spans "
            "WHERE rowid > ? ORDER BY rowid LIMIT ?", (after, _BACKFILL_CHUNK)).fetchall()
        if not rows:
            return
        conn.executemany(INSERT_SQL, [
            (r[0], *texts(r[1], r[2], r[3], loads(r[4]), r[5],
                          ((e["name"], e.get("attributes") or {}) for e in loads(r[6])) if r[6] != "[]" else ()))
            for r in rows])
        after = rows[-1][0]


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
