"""Each model call counted once: where spans carrying usage are nested, only the innermost count.

A wrapper instrumentation over an SDK's own span, an aggregate such as the
Vercel AI SDK's ``ai.generateText`` over its ``doGenerate`` steps, or
pydantic-ai's span over runtrace's: each reports the same tokens again. The
rule: an LLM span counts (its call, tokens and cost are in its run's totals)
only if no stored descendant of it carries usage. A span marked
``runtrace.duplicate_of`` (another SDK's span inside runtrace's own LLM span,
marked in-process) is stored but never counts and carries no usage for this
rule, so runtrace's span wins whichever is inner.

Spans arrive in any order and batch, so the rule is kept incrementally, with
two columns per stored span:

- ``usage_below``: the span or some stored descendant carries usage;
- ``counted``: its LLM figures are in the run's totals.

Every span is inserted with ``usage_below = usage`` and ``counted = eligible``
(its LLM figures were already added by :func:`.aggregate.aggregate`). Then,
for each inserted span X: if a stored child of X has ``usage_below``, X gets
``usage_below`` and is uncounted; and if X has ``usage_below``, its stored
ancestors are walked upward, each one getting ``usage_below`` and being
uncounted, stopping at the first that had ``usage_below`` already (its own
ancestors got it when it did; it is still uncounted itself). Uncounting takes
the span's contribution back out of its run (:func:`.aggregate.uncount_delta`).
Since a span once below usage stays so (nothing is ever deleted), the result
is the rule on the full set, whatever the order: ``tests/test_innermost.py``
checks that with hypothesis over random forests, orders and batches.

The child check of a batch reads the state before the walks start: a child
whose ``usage_below`` a walk sets later is on that walk's way up to X anyway.
Runs inside the ingest transaction, after the batch's rows are inserted.

Siblings: two instrumentations' spans of one call side by side (same parent,
same time, same model, different scopes) are settled by :mod:`.siblings` in the
same pass: the span not preferred is uncounted too (``counted = 0``; its
``usage_below`` stays, so a span over both is still an outer span).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from .. import semconv as sc
from . import siblings
from .aggregate import KIND_LLM, RunDelta, SpanFacts, uncount_delta
from .records import SpanRecord

_CHUNK = 400  # (trace_id, span_id) pairs per query: 800 bound parameters


def eligible(record: SpanRecord, kind: str) -> bool:
    """An LLM span whose figures count at all (not another SDK's copy of runtrace's own call)."""
    return kind == KIND_LLM and sc.DUPLICATE_OF not in record.attributes


def carries_usage(record: SpanRecord, facts: SpanFacts) -> bool:
    """An eligible span that reports tokens: a count an outer span must not repeat."""
    return eligible(record, facts.kind) and (facts.input_tokens is not None or facts.output_tokens is not None)


def _parents_of_usage(conn: sqlite3.Connection, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of ``keys`` have a stored child with ``usage_below``."""
    found: set[tuple[str, str]] = set()
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i:i + _CHUNK]
        values = ",".join("(?,?)" for _ in chunk)
        cursor = conn.execute(
            f"WITH batch(t, s) AS (VALUES {values}) "
            "SELECT DISTINCT spans.trace_id, spans.parent_span_id FROM batch "
            "JOIN spans INDEXED BY spans_usage_parent"
            " ON spans.trace_id = batch.t AND spans.parent_span_id = batch.s AND spans.usage_below = 1",
            [part for key in chunk for part in key])
        found.update((row[0], row[1]) for row in cursor)
    return found


class _State:
    """The (parent, usage_below, counted) of the spans a batch touches, read lazily, written once."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.rows: dict[tuple[str, str], list[Any]] = {}
        self.changed: set[tuple[str, str]] = set()
        self.uncounted: list[tuple[str, str]] = []

    def get(self, key: tuple[str, str]) -> list[Any] | None:
        row = self.rows.get(key)
        if row is None:
            found = self.conn.execute(
                "SELECT parent_span_id, usage_below, counted FROM spans WHERE trace_id = ? AND span_id = ?",
                key).fetchone()
            if found is None:
                return None
            row = self.rows[key] = [found[0], found[1], found[2]]
        return row

    def mark(self, key: tuple[str, str], row: list[Any]) -> None:
        """Give the span ``usage_below``, and uncount it if it was counted."""
        row[1] = 1
        self.uncount(key, row)

    def uncount(self, key: tuple[str, str], row: list[Any]) -> None:
        """Take the span out of its run's totals, once (both rules may find it)."""
        if row[2]:
            row[2] = 0
            self.uncounted.append(key)
        self.changed.add(key)


def recount(conn: sqlite3.Connection, spans: Iterable[tuple[SpanRecord, SpanFacts]]) -> list[RunDelta]:
    """Apply the innermost rule for a batch just inserted; return the corrections to add to the runs."""
    batch = list(spans)
    if not batch:
        return []
    state = _State(conn)
    keys: list[tuple[str, str]] = []
    carriers: list[tuple[SpanRecord, SpanFacts]] = []
    for record, facts in batch:
        key = (record.trace_id, record.span_id)
        keys.append(key)
        usage = carries_usage(record, facts)
        if usage:
            carriers.append((record, facts))
        state.rows[key] = [record.parent_span_id, int(usage), int(eligible(record, facts.kind))]
    above_usage = _parents_of_usage(conn, keys)
    for key in keys:
        row = state.rows[key]
        if key in above_usage:
            state.mark(key, row)
        if not row[1]:
            continue
        parent = row[0]
        while parent is not None:
            up_key = (key[0], parent)
            up = state.get(up_key)
            if up is None:
                break  # not stored yet: when it arrives, its child check finds this span
            had = up[1]
            state.mark(up_key, up)
            if had:
                break  # its ancestors got usage_below when it did
            parent = up[0]
    for key in siblings.losers(conn, carriers):
        loser = state.get(key)
        if loser is not None:
            state.uncount(key, loser)
    if state.changed:
        conn.executemany("UPDATE spans SET usage_below = ?, counted = ? WHERE trace_id = ? AND span_id = ?",
                         [(state.rows[k][1], state.rows[k][2], *k) for k in state.changed])
    return _corrections(conn, state.uncounted, {key: pair for key, pair in zip(keys, batch, strict=True)})


def _corrections(conn: sqlite3.Connection, uncounted: list[tuple[str, str]],
                 batch: dict[tuple[str, str], tuple[SpanRecord, SpanFacts]]) -> list[RunDelta]:
    out: list[RunDelta] = []
    for key in uncounted:
        pair = batch.get(key)
        if pair is not None:
            record, facts = pair
            if facts.run_id is not None:
                out.append(uncount_delta(facts.run_id, record.start_ns, record.attributes, facts))
            continue
        row = conn.execute(
            "SELECT run_id, start_ns, kind, service, model, provider, input_tokens, output_tokens,"
            " cached_input_tokens, reasoning_tokens, cost_usd, tool_name, attributes"
            " FROM spans WHERE trace_id = ? AND span_id = ?", key).fetchone()
        if row is None or row[0] is None:
            continue
        facts = SpanFacts(row[0], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10],
                          row[11])
        out.append(uncount_delta(row[0], row[1], json.loads(row[12]), facts))
    return out
