"""The one ingest path: SpanRecords -> ``spans`` rows + commutative run updates.

Both adapters (SDK spans in-process, OTLP bodies from the HTTP receiver) end
here, and nothing else writes spans. Order of work, chosen so the write lock is
held as briefly as possible:

1. outside the transaction: price spans from other SDKs that carry usage but no
   cost, build every row and every run contribution;
2. inside one ``BEGIN IMMEDIATE``: find which (trace_id, span_id) are already
   stored (an exporter retry, a resumed forward), insert only the new spans,
   merge the new spans' contributions per run and upsert each run once.

So a span re-sent is never counted twice, and two processes writing the same
file at once serialise on SQLite's write lock (busy_timeout waits for it).
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from .. import semconv as sc
from .._internal import fail_open
from .aggregate import RunDelta, apply_deltas, merge_by_run, run_contribution, span_facts
from .records import SpanRecord
from .values import dumps, events_json

SPAN_COLUMNS = (
    "trace_id", "span_id", "parent_span_id", "run_id", "name", "kind", "span_kind", "start_ns", "end_ns",
    "status_code", "status_message", "service", "model", "provider", "input_tokens", "output_tokens",
    "cached_input_tokens", "reasoning_tokens", "cost_usd", "tool_name", "attributes", "resource", "events",
    "scope_name", "scope_version",
)
INSERT_SPAN_SQL = f"INSERT INTO spans ({', '.join(SPAN_COLUMNS)}) VALUES ({', '.join('?' * len(SPAN_COLUMNS))})"

_USAGE_PREFIX = "gen_ai.usage."
_LOOKUP_CHUNK = 400  # (trace_id, span_id) pairs per existence query: 800 bound parameters


def needs_pricing(attributes: dict[str, Any]) -> bool:
    """A span from another SDK: usage but neither a cost nor a verdict on its cost."""
    if sc.COST_USD in attributes or sc.COST_SOURCE in attributes:
        return False
    return any(key.startswith(_USAGE_PREFIX) for key in attributes)


def price_at_ingest(record: SpanRecord) -> SpanRecord:
    """Add runtrace.cost.* to a span that arrived with usage but no cost (else return it as is)."""
    if not needs_pricing(record.attributes):
        return record
    cost: dict[str, Any] = {}
    with fail_open("store.ingest.pricing"):
        from ..pricing import default_pricer

        seconds, nanos = divmod(record.start_ns, 1_000_000_000)
        when = datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=nanos // 1000)
        duration = (record.end_ns - record.start_ns) / 1e9 if record.end_ns >= record.start_ns else None
        cost = default_pricer().price_attributes(record.attributes, when=when, duration_s=duration)
    if not cost:
        return record
    attributes = {**record.attributes, **cost}
    attributes[sc.COST_PRICED_AT_INGEST] = True
    return dataclasses.replace(record, attributes=attributes)


def build(records: Iterable[SpanRecord]) -> tuple[list[tuple[Any, ...]], list[RunDelta | None]]:
    """Rows for ``spans`` and each row's run contribution (pure: no database)."""
    rows: list[tuple[Any, ...]] = []
    deltas: list[RunDelta | None] = []
    resource_json: dict[int, str] = {}  # records of a batch share resource dicts
    for record in records:
        record = price_at_ingest(record)
        facts = span_facts(record)
        res = resource_json.get(id(record.resource))
        if res is None:
            res = resource_json[id(record.resource)] = dumps(record.resource)
        rows.append((
            record.trace_id, record.span_id, record.parent_span_id, facts.run_id, record.name, facts.kind,
            record.kind, record.start_ns, record.end_ns, record.status_code, record.status_message,
            facts.service, facts.model, facts.provider, facts.input_tokens, facts.output_tokens,
            facts.cached_input_tokens, facts.reasoning_tokens, facts.cost_usd, facts.tool_name,
            dumps(record.attributes), res, events_json(record.events), record.scope_name,
            record.scope_version,
        ))
        deltas.append(run_contribution(record, facts) if facts.run_id is not None else None)
    return rows, deltas


def _existing(conn: sqlite3.Connection, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for i in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = keys[i:i + _LOOKUP_CHUNK]
        values = ",".join("(?,?)" for _ in chunk)
        params = [part for key in chunk for part in key]
        cursor = conn.execute(
            f"WITH batch(t, s) AS (VALUES {values}) "
            "SELECT spans.trace_id, spans.span_id FROM batch "
            "JOIN spans ON spans.trace_id = batch.t AND spans.span_id = batch.s",
            params)
        found.update((row[0], row[1]) for row in cursor)
    return found


def ingest(conn: sqlite3.Connection, records: Iterable[SpanRecord]) -> int:
    """Store the spans not stored yet and add them to their runs; return how many were new.

    ``conn`` must be in autocommit mode (``isolation_level=None``) with no open
    transaction; this function owns the ``BEGIN IMMEDIATE ... COMMIT``.
    """
    rows, deltas = build(records)
    if not rows:
        return 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        keys = [(row[0], row[1]) for row in rows]
        existing = _existing(conn, keys)
        seen: set[tuple[str, str]] = existing
        new_rows: list[tuple[Any, ...]] = []
        new_deltas: list[RunDelta] = []
        for key, row, delta in zip(keys, rows, deltas, strict=True):
            if key in seen:
                continue
            seen.add(key)
            new_rows.append(row)
            if delta is not None:
                new_deltas.append(delta)
        conn.executemany(INSERT_SPAN_SQL, new_rows)
        if new_deltas:
            apply_deltas(conn, merge_by_run(new_deltas).values())
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return len(new_rows)
