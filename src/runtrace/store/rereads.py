"""Repeated reads and loops over a whole run, for agent records flagged per request.

A coding agent's adapter (runtrace.agents) sees one OTLP request at a time, so
a file read in one request and read again, unchanged, in the next is not a
repeat to it. Its read records carry what a run-wide check needs
(``runtrace.tool.read``, ``runtrace.tool.args_hash`` / ``result_hash``,
``runtrace.tool.read_tokens``), and the ingest calls :func:`recount` inside its
write transaction, after the batch is stored, for every run the batch added such
a record to.

A read record may carry ``runtrace.tool.path_hash`` (an agent that sends no
file content: Claude Code); then a write record with the same path hash between
two reads makes the second a new read, in whichever requests they arrived.

The recount walks the run's stored read records in (end time, span id) order
with the same detector the adapters use, rewrites the flag, count, tokens and
``runtrace.repeated_read`` event of each record whose verdict changed, and adds
the difference to the run row. Loops (the same call with the same result 3
times, a repeating cycle) are found the same way over all the run's agent tool
records; a loop flag is only ever set, like the run row's (a max). The result is a function of the stored set of
spans only, so requests in any order, split or sent twice, give the same run;
and the run row stays the sum of its spans' flags, as everywhere else.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any

from .. import semconv as sc
from ..detect import LoopDetector, RepeatedReads
from .aggregate import KIND_TOOL, SpanFacts, as_int
from .records import EventRecord, SpanRecord
from .values import attributes_from_json, dumps, events_from_json, events_json

__all__ = ["recount", "runs_to_recount"]

_READ_PATH = f'$."{sc.TOOL_READ}"'
_CHUNK = 500  # run ids per query


def _select(n: int) -> str:
    """The read records of ``n`` runs, each run's in (end time, span id) order: one query for a batch's runs."""
    return ("SELECT run_id, trace_id, span_id, tool_name, end_ns, attributes, events FROM spans "
            f"WHERE run_id IN ({','.join('?' * n)}) AND kind = ? AND json_extract(attributes, ?) IS NOT NULL "
            "ORDER BY run_id, end_ns, span_id")


def runs_to_recount(spans: Iterable[tuple[SpanRecord, SpanFacts]]) -> set[str]:
    """The runs of a batch that gained a record flagged per request (``runtrace.tool.read`` true)."""
    return {facts.run_id for record, facts in spans
            if facts.run_id is not None and facts.kind == KIND_TOOL
            and sc.TOOL_READ in record.attributes}


def recount(conn: sqlite3.Connection, run_ids: Sequence[str] | set[str]) -> None:
    """Redo the repeated reads of each run over all its stored read records (in the write transaction).

    The read records of all the runs are read with one query per :data:`_CHUNK`
    runs (an OTLP request holds many sessions), and every changed record and run
    is written with one ``executemany`` each; each run is still walked on its own.
    """
    ordered = sorted(run_ids)
    updates: list[tuple[str, str, str, str]] = []
    looped: list[tuple[str]] = []
    deltas: list[tuple[int, int, str]] = []
    for i in range(0, len(ordered), _CHUNK):
        chunk = ordered[i:i + _CHUNK]
        rows = conn.execute(_select(len(chunk)), (*chunk, KIND_TOOL, _READ_PATH)).fetchall()
        for run_id, run_rows in groupby(rows, key=itemgetter(0)):
            run_looped, delta_reads, delta_tokens = _recount_run(run_rows, updates)
            if run_looped:
                looped.append((run_id,))
            if delta_reads or delta_tokens:
                deltas.append((delta_reads, delta_tokens, run_id))
    if updates:
        conn.executemany("UPDATE spans SET attributes = ?, events = ? WHERE trace_id = ? AND span_id = ?",
                         updates)
    if looped:
        conn.executemany("UPDATE runs SET loop_detected = 1 WHERE id = ?", looped)
    if deltas:
        conn.executemany("UPDATE runs SET repeated_reads = repeated_reads + ?, "
                         "repeated_read_tokens = repeated_read_tokens + ? WHERE id = ?", deltas)


def _recount_run(rows: Iterable[Any], updates: list[tuple[str, str, str, str]]) -> tuple[bool, int, int]:
    """Walk one run's read records in order; add each changed record to ``updates``.

    Returns (a loop was found, repeated reads added, repeated-read tokens added).
    """
    reads = RepeatedReads()
    delta_reads = delta_tokens = 0
    loops = LoopDetector()
    looped = False
    versions: dict[str, int] = {}  # path hash -> writes so far in the run
    for _run_id, trace_id, span_id, tool, end_ns, attrs_json, events_text in rows:
        attrs = dict(attributes_from_json(attrs_json))
        name, args_hash = str(tool or ""), str(attrs.get(sc.TOOL_ARGS_HASH, ""))
        path = attrs.get(sc.TOOL_PATH_HASH)
        is_read = attrs.get(sc.TOOL_READ) is True
        if not is_read and path is not None:  # a write: later reads of the file are new reads
            versions[str(path)] = versions.get(str(path), 0) + 1
        # With a path, the file's version run-wide is a read's result (the agent sent no content).
        result = (f"{path}@{versions.get(str(path), 0)}" if is_read and path is not None
                  else str(attrs.get(sc.TOOL_RESULT_HASH, "")))
        found = loops.observe_tool_call(name, args_hash, result)
        events = list(events_from_json(events_text))
        changed = False
        if found and attrs.get(sc.LOOP_DETECTED) is not True:
            attrs[sc.LOOP_DETECTED] = True
            events.extend(EventRecord(sc.EVENT_LOOP, int(end_ns), {
                sc.LOOP_KIND: d.kind, sc.LOOP_COUNT: d.count, sc.LOOP_DESCRIPTION: d.description})
                for d in found)
            looped = changed = True
        if not is_read:
            if changed:
                updates.append((dumps(attrs), events_json(events), trace_id, span_id))
            continue
        tokens = as_int(attrs.get(sc.TOOL_READ_TOKENS)) or 0
        seen = reads.observe(name, args_hash, result, tokens)
        was = attrs.get(sc.TOOL_REPEATED_READ) is True
        was_tokens = as_int(attrs.get(sc.TOOL_REPEATED_READ_TOKENS)) or 0
        if was == seen.repeat and attrs.get(sc.TOOL_REPEAT_COUNT) == seen.repeat_count \
                and was_tokens == seen.repeated_tokens:
            if changed:
                updates.append((dumps(attrs), events_json(events), trace_id, span_id))
            continue
        delta_reads += int(seen.repeat) - int(was)
        delta_tokens += seen.repeated_tokens - was_tokens
        attrs[sc.TOOL_REPEAT_COUNT] = seen.repeat_count
        events = [e for e in events if e.name != sc.EVENT_REPEATED_READ]
        if seen.repeat:
            attrs[sc.TOOL_REPEATED_READ] = True
            attrs[sc.TOOL_REPEATED_READ_TOKENS] = seen.repeated_tokens
            events.append(EventRecord(sc.EVENT_REPEATED_READ, int(end_ns),
                                      {sc.TOOL_REPEAT_COUNT: seen.repeat_count}))
        else:
            attrs.pop(sc.TOOL_REPEATED_READ, None)
            attrs.pop(sc.TOOL_REPEATED_READ_TOKENS, None)
        updates.append((dumps(attrs), events_json(events), trace_id, span_id))
    return looped, delta_reads, delta_tokens
