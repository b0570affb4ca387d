"""What the run page reads of a long run without decoding every span's attributes.

The run page shows the run's totals, its sentences (what ended it, detections,
unpriced calls, notes), the cost curve and the first page of the timeline. Only
the timeline rows it renders need a span's whole attributes; the sentences read
a handful of attributes and the events. :func:`run_spans` reads every span's
outline from an index as columns (a tuple per field, no object per span) and,
for the few spans a sentence can be about, just those attributes, extracted in
SQL (a 5,000-span run's attribute JSON is megabytes that ``get_run`` would parse
only to throw away); :func:`spans_by_rowid` then reads the whole spans of the
rendered rows. :func:`span_facts` gives the same as a dict per span.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import semconv
from . import queries
from .db import Store
from .migrations import NOTABLE_SPANS, carries_mark
from .values import loads

__all__ = ["FACT_KEYS", "RunSpans", "run_spans", "span_facts", "span_name", "spans_by_rowid"]

#: The attributes the run page's sentences read (runtrace.explain and the page's notes).
#: ``gen_ai.tool.call.arguments`` only for its presence (content capture was on): its
#: value, which can be long, stays in the store.
FACT_KEYS = (semconv.TOOL_REPEATED_READ, semconv.TOOL_REPEAT_COUNT, semconv.ERROR_TYPE,
             semconv.COST_UNPRICED_REASON, semconv.GEN_AI_REQUEST_MODEL, semconv.GEN_AI_REQUEST_STREAM,
             semconv.GEN_AI_PROVIDER_NAME, semconv.TOOL_DETAILS_MISSING,
             # what a repeated read read again: one finding per read (explain.detections)
             semconv.TOOL_ARGS_HASH, semconv.TOOL_RESULT_HASH, semconv.TOOL_PATH_HASH)
_PRESENCE_KEYS = (semconv.GEN_AI_TOOL_CALL_ARGUMENTS,)


def _path(key: str) -> str:
    return f"'$.\"{key}\"'"


# A span a fact sentence reads the attributes of (a notable span without events or with them);
# ``carries_mark``: the span carries the key with any value but a literal compact ``false``.
_NEEDED = (f"kind = 'llm' AND cost_usd IS NULL OR status_code = 'ERROR' "
           f"OR {carries_mark(semconv.TOOL_REPEATED_READ)} OR {carries_mark(semconv.TOOL_DETAILS_MISSING)}")


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


# Every span's outline, read from the covering index spans_run_start (m007) in its order, never the table.
_OUTLINE_SQL = ("SELECT rowid, span_id, parent_span_id, kind, cost_usd, start_ns, end_ns "
                f"FROM spans WHERE run_id = ? {queries._SPAN_ORDER}")
# The notable spans' details, through m007's partial index (its WHERE repeated word for word).
_NOTABLE_SQL = ("SELECT rowid, name, model, tool_name, status_code, status_message, provider, events, "
                + _fact_columns() + f" FROM spans INDEXED BY spans_notable WHERE run_id = ? AND {NOTABLE_SPANS}")
_BASE = 8  # columns before the fact columns
_OUTLINE_COLUMNS = 7
_CHUNK = 500  # outline rows fetched at a time: each row is a tuple the collector counts while it lives


@dataclass(frozen=True, slots=True)
class RunSpans:
    """Every span of a run as columns in page order (start time), and the few notable spans' details.

    One tuple per field instead of one dict per span: a 5,000-span run's page
    made 5,000 dicts (and their event lists) that lived through the request, so
    Python's collector ran a full collection every other page (about 45 ms each
    on this machine, beside the ~50 ms the page itself takes).
    ``notable`` maps a span's index to :func:`span_facts`' dict of it, for the
    spans a sentence can be about (``migrations.NOTABLE_SPANS``).
    """

    rowid: tuple[int, ...]
    span_id: tuple[str, ...]
    parent_span_id: tuple[str | None, ...]
    kind: tuple[str, ...]
    cost_usd: tuple[float | None, ...]
    start_ns: tuple[int, ...]
    end_ns: tuple[int, ...]
    notable: dict[int, dict[str, Any]]

    def __len__(self) -> int:
        return len(self.rowid)

    def light(self, i: int) -> dict[str, Any]:
        """Span ``i`` as :func:`span_facts` gives it."""
        notable = self.notable.get(i)
        if notable is not None:
            return notable
        return {"rowid": self.rowid[i], "span_id": self.span_id[i], "parent_span_id": self.parent_span_id[i],
                "kind": self.kind[i], "cost_usd": self.cost_usd[i], "start_ns": self.start_ns[i],
                "end_ns": self.end_ns[i], "events": [], "attributes": {}}


def run_spans(store: Store, run_id: str) -> RunSpans:
    """Every span of the run ``run_id`` (a full id) by start time, as columns (:class:`RunSpans`).

    Two index reads (m007): the outline of every span from a covering index, and
    the details of the notable few from a partial index. Testing each span's
    attribute text for the marks, and reading 5,000 table rows for the outline,
    was most of the page's time.
    """
    reader = store.reader()
    cursor = reader.execute(_OUTLINE_SQL, (run_id,))
    cursor.row_factory = None
    cursor.arraysize = _CHUNK
    lists: list[list[Any]] = [[] for _ in range(_OUTLINE_COLUMNS)]
    for chunk in iter(cursor.fetchmany, []):  # a few hundred row tuples alive at a time, not 5,000
        for values, column in zip(lists, zip(*chunk, strict=True), strict=True):
            values.extend(column)
    columns = [tuple(values) for values in lists]
    del lists
    rowids = columns[0]
    notable: dict[int, dict[str, Any]] = {}
    cursor = reader.execute(_NOTABLE_SQL, (run_id,))
    cursor.row_factory = None
    found = cursor.fetchall()
    if found:
        index = {rowid: i for i, rowid in enumerate(rowids)}
        for row in found:
            i = index.get(row[0])
            if i is None:  # written between the two reads (the reader is not in one transaction)
                continue
            notable[i] = _notable(row, rowids[i], *(column[i] for column in columns[1:]))
    rowid, span_id, parent, kind, cost, start, end = columns
    return RunSpans(rowid, span_id, parent, kind, cost, start, end, notable=dict(sorted(notable.items())))


def _notable(row: Sequence[Any], rowid: int, span_id: str, parent: str | None, kind: str, cost: float | None,
             start: int, end: int) -> dict[str, Any]:
    """A notable span's dict: the outline, then name, status, model, provider, tool, events and fact attributes."""
    _rowid, name, model, tool, status, status_message, provider, events = row[:_BASE]
    attributes: dict[str, Any] = {}
    facts = row[_BASE]
    if facts is not None:
        attributes = {k: v for k, v in zip(FACT_KEYS, loads(facts), strict=True) if v is not None}
    for j, key in enumerate(_PRESENCE_KEYS):
        if row[_BASE + 1 + j]:
            attributes[key] = True
    return {"rowid": rowid, "span_id": span_id, "parent_span_id": parent, "kind": kind, "cost_usd": cost,
            "start_ns": start, "end_ns": end, "events": queries._events(events), "attributes": attributes,
            "name": name, "model": model, "tool_name": tool, "status": status, "status_message": status_message,
            "provider": provider}


def span_facts(store: Store, run_id: str) -> list[dict[str, Any]]:
    """Every span of the run ``run_id`` (a full id) by start time, as ``get_run``'s span dicts, but lighter.

    Each dict has the span's identity and tree (``span_id``, ``parent_span_id``),
    timing (``start_ns``/``end_ns``), kind and cost, a ``rowid`` for
    :func:`spans_by_rowid`, ``events`` and ``attributes``. Only the spans a
    sentence can be about (``migrations.NOTABLE_SPANS``: with events, unpriced
    LLM calls, errors, marked repeated reads or missing tool details) carry the
    rest: name, status, model, provider, tool, their events (decoded: they are
    what detections are made of), and ``attributes`` holding only
    :data:`FACT_KEYS` (the ones the span carries, read for unpriced LLM calls,
    errors and spans marked as a repeated read or as missing tool details) plus
    ``gen_ai.tool.call.arguments`` as ``True`` when it was captured on a span
    with events (only a detection event's sentence asks). Every other span has
    empty events and attributes, as it has in ``get_run`` for what a sentence reads,
    except that the run's most expensive LLM call is named (the page links to it).
    The run page reads the same as columns (:func:`run_spans`).
    """
    spans = run_spans(store, run_id)
    out = [spans.light(i) for i in range(len(spans))]
    _name_the_dearest(store, out)
    return out


def _name_the_dearest(store: Store, spans: list[dict[str, Any]]) -> None:
    """Give the run's most expensive LLM call its name (the page links to it by name), if it has none yet."""
    priced = [s for s in spans if s["kind"] == "llm" and s["cost_usd"] is not None and s["cost_usd"] > 0]
    if not priced:
        return
    dearest = max(priced, key=lambda s: s["cost_usd"])  # the first of equals, as the page picks it
    name = span_name(store, dearest["rowid"]) if "name" not in dearest else None
    if name is not None:
        dearest["name"] = name


def span_name(store: Store, rowid: int) -> str | None:
    """The name of the span in row ``rowid`` (None when it is gone)."""
    row = store.reader().execute("SELECT name FROM spans WHERE rowid = ?", (rowid,)).fetchone()
    return None if row is None else str(row[0])


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
