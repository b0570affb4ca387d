"""What the run page reads of a long run without decoding every span's attributes.

The run page shows the run's totals, its sentences (what ended it, detections,
unpriced calls, notes), the cost curve and the first page of the timeline. Only
the timeline rows it renders need a span's whole attributes; the sentences read
a handful of attributes and the events. :func:`span_facts` reads every span's
columns plus just those attributes, extracted in SQL (a 5,000-span run's
attribute JSON is megabytes that ``get_run`` would parse only to throw away);
:func:`spans_by_rowid` then reads the whole spans of the rendered rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import semconv
from . import queries
from .db import Store
from .values import loads

__all__ = ["FACT_KEYS", "span_facts", "spans_by_rowid"]

#: The attributes the run page's sentences read (runtrace.explain and the page's notes).
#: ``gen_ai.tool.call.arguments`` only for its presence (content capture was on): its
#: value, which can be long, stays in the store.
FACT_KEYS = (semconv.TOOL_REPEATED_READ, semconv.TOOL_REPEAT_COUNT, semconv.ERROR_TYPE,
             semconv.COST_UNPRICED_REASON, semconv.GEN_AI_REQUEST_MODEL, semconv.GEN_AI_REQUEST_STREAM,
             semconv.GEN_AI_PROVIDER_NAME, semconv.TOOL_DETAILS_MISSING)
_PRESENCE_KEYS = (semconv.GEN_AI_TOOL_CALL_ARGUMENTS,)


def _path(key: str) -> str:
    return f"'$.\"{key}\"'"


def _marked(key: str) -> str:
    """The span carries ``key`` with any value but a literal compact ``false`` (the store writes compact JSON;
    a value written with spaces is merely parsed, never skipped)."""
    return (f"(instr(attributes, '\"{key}\"') > 0 AND instr(attributes, '\"{key}\":false') = 0)")


_NEEDED = (f"kind = 'llm' AND cost_usd IS NULL OR status_code = 'ERROR' "
           f"OR {_marked(semconv.TOOL_REPEATED_READ)} OR {_marked(semconv.TOOL_DETAILS_MISSING)}")


def _fact_columns() -> str:
    """The fact keys' values as one JSON array (null where absent), and whether the arguments were captured.

    One ``json_extract`` with every path parses a span's JSON once (a call per
    key parsed it once per key: a quarter of a second on 5,000 spans), and only
    for the spans a sentence can be about: unpriced LLM calls, errors, and
    spans that carry a repeated-read or missing-details mark. ``instr`` is a
    cheap substring test that skips the parse for the others.
    """
    paths = ", ".join(_path(key) for key in FACT_KEYS)
    columns = [f"CASE WHEN {_NEEDED} THEN json_extract(attributes, {paths}) END"]
    for key in _PRESENCE_KEYS:
        columns.append(f"CASE WHEN events != '[]' AND instr(attributes, '\"{key}\"') > 0 "
                       f"THEN json_type(attributes, {_path(key)}) IS NOT NULL ELSE 0 END")
    return ", ".join(columns)


_FACTS_SQL = ("SELECT rowid, span_id, parent_span_id, name, kind, model, cost_usd, tool_name, start_ns, end_ns, "
              "status_code, status_message, provider, events, " + _fact_columns()
              + f" FROM spans WHERE run_id = ? {queries._SPAN_ORDER}")
_BASE = 14  # columns before the fact columns


def span_facts(store: Store, run_id: str) -> list[dict[str, Any]]:
    """Every span of the run ``run_id`` (a full id) by start time, as ``get_run``'s span dicts, but lighter.

    Each dict has the span's identity, tree, timing (``start_ns``/``end_ns``),
    kind, cost, status, model, provider, tool and events (decoded: they are
    what detections are made of), a ``rowid`` for :func:`spans_by_rowid`, and
    ``attributes`` holding only :data:`FACT_KEYS` (the ones the span carries,
    read for unpriced LLM calls, errors and spans marked as a repeated read or
    as missing tool details: no sentence reads them of any other span) plus
    ``gen_ai.tool.call.arguments`` as ``True`` when it was captured on a span
    with events (only a detection event's sentence asks).
    """
    cursor = store.reader().execute(_FACTS_SQL, (run_id,))
    cursor.row_factory = None
    out = []
    for row in cursor.fetchall():
        (rowid, span_id, parent, name, kind, model, cost, tool, start, end, status, status_message, provider,
         events) = row[:_BASE]
        attributes: dict[str, Any] = {}
        facts = row[_BASE]
        if facts is not None:
            attributes = {k: v for k, v in zip(FACT_KEYS, loads(facts), strict=True) if v is not None}
        for j, key in enumerate(_PRESENCE_KEYS):
            if row[_BASE + 1 + j]:
                attributes[key] = True
        out.append({"rowid": rowid, "span_id": span_id, "parent_span_id": parent, "name": name, "kind": kind,
                    "model": model, "cost_usd": cost, "tool_name": tool, "start_ns": start, "end_ns": end,
                    "status": status, "status_message": status_message, "provider": provider,
                    "duration_s": (end - start) / 1e9, "events": queries._events(events),
                    "attributes": attributes})
    return out


def spans_by_rowid(store: Store, rowids: Sequence[int]) -> list[dict[str, Any]]:
    """The whole spans (``get_run``'s span dicts) of these rows, in the order given."""
    found: dict[int, dict[str, Any]] = {}
    for start in range(0, len(rowids), 500):  # under SQLite's bound-parameter limit
        chunk = list(rowids[start:start + 500])
        marks = ",".join("?" * len(chunk))
        cursor = store.reader().execute(f"SELECT rowid, {queries._SPAN_COLUMNS} FROM spans WHERE rowid IN ({marks})",
                                        chunk)
        cursor.row_factory = None
        for row in cursor.fetchall():
            found[row[0]] = queries._span_dict(row[1:])
    return [found[r] for r in rowids if r in found]
