"""The one ingest path: SpanRecords -> ``spans`` rows + commutative run updates.

Both adapters (SDK spans in-process, OTLP bodies from the HTTP receiver) end
here, and nothing else writes spans. Order of work, chosen so the write lock is
held as briefly as possible:

1. outside the transaction: drop repeats within the batch, read every attribute
   dialect into runtrace's canonical names (:mod:`.normalise`), drop numbers past
   the store's bounds (:mod:`.bounds`: the span is kept, marked), price spans
   from other SDKs that carry usage but no cost, build every row, and merge
   the batch's run contributions (one per run);
2. inside one ``BEGIN IMMEDIATE``: hold back verdicts for runs the store does
   not hold yet, and fold earlier such verdicts into a run's first row
   (``verdicts.settle``: a verdict never creates a run), then insert the spans
   with one executemany, index their words for search under the same rowids (:mod:`.search`), add each run's contribution with one upsert, then take
   back the calls that the innermost rule finds counted twice (:mod:`.innermost`:
   a usage span with a usage span nested below it). If the insert meets a span
   stored already, that transaction is rolled back and a second one finds the
   stored (trace_id, span_id) pairs, skips them and aggregates only the rest.

So a span re-sent is never counted twice, and two processes writing the same
file at once serialise on SQLite's write lock (busy_timeout waits for it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, NamedTuple

from .. import semconv as sc
from .._internal import fail_open
from ..pricing import default_pricer, needs_pricing
from ..pricing.attributes import cost_attributes
from .aggregate import KIND_LLM, SpanFacts, aggregate, apply_deltas, span_facts
from .bounds import BOUNDED, drop_out_of_range, in_range
from .innermost import recount
from .normalise import normalise
from .records import SpanRecord, with_attributes
from .rereads import recount as recount_rereads
from .rereads import runs_to_recount
from .search import INSERT_SQL as INSERT_SEARCH_SQL
from .search import Texts, max_rowid, texts
from .values import dumps, events_json
from .verdicts import settle

SPAN_COLUMNS = (
    "trace_id", "span_id", "parent_span_id", "run_id", "name", "kind", "span_kind", "start_ns", "end_ns",
    "status_code", "status_message", "service", "model", "provider", "input_tokens", "output_tokens",
    "cached_input_tokens", "reasoning_tokens", "cost_usd", "tool_name", "attributes", "resource", "events",
    "scope_name", "scope_version", "usage_below", "counted",
)
INSERT_SPAN_SQL = f"INSERT INTO spans ({', '.join(SPAN_COLUMNS)}) VALUES ({', '.join('?' * len(SPAN_COLUMNS))})"

_LOOKUP_CHUNK = 400  # (trace_id, span_id) pairs per existence query: 800 bound parameters


def price_at_ingest(record: SpanRecord) -> SpanRecord:
    """Add runtrace.cost.* to a span that :func:`runtrace.pricing.needs_pricing` accepted (usage, no cost).

    The test is made once, by the caller (``prepare``); the Pricer's result
    already carries ``runtrace.cost.priced_at_ingest``.
    """
    cost: dict[str, Any] = {}
    with fail_open("store.ingest.pricing"):
        seconds, nanos = divmod(record.start_ns, 1_000_000_000)
        when = datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=nanos // 1000)
        duration = (record.end_ns - record.start_ns) / 1e9 if record.end_ns >= record.start_ns else None
        cost = cost_attributes(default_pricer(), record.attributes, when=when, duration_s=duration)
    if not cost:
        return record
    priced = with_attributes(record, {**record.attributes, **cost})
    # Usage within bounds can still price past the cost bound (a user's price table). The
    # record's other bounded values were checked before pricing (``prepare``), so only the
    # values the price added can be past a bound: the whole check runs only when one is.
    if sc.COST_USD in cost and not in_range(cost):
        return drop_out_of_range(priced)
    return priced


class Prepared(NamedTuple):
    """A batch ready to write: one row per distinct span, and what aggregation needs of each."""

    keys: list[tuple[str, str]]
    rows: list[tuple[Any, ...]]
    spans: list[tuple[SpanRecord, SpanFacts]]
    texts: list[Texts]  # what the search index holds of each row (store/search.py)


def prepare(records: Iterable[SpanRecord]) -> Prepared:
    """Price, build rows, drop repeats within the batch (pure: no database).

    This loop runs once per span on the in-process hot path; it is written for speed.
    """
    keys: list[tuple[str, str]] = []
    rows: list[tuple[Any, ...]] = []
    spans: list[tuple[SpanRecord, SpanFacts]] = []
    found: list[Texts] = []
    seen: set[tuple[str, str]] = set()
    resource_json: dict[int, str] = {}  # records of a batch share resource dicts
    encode = dumps
    bounded = BOUNDED.keys()
    for record in records:
        key = (record.trace_id, record.span_id)
        if key in seen:
            continue
        seen.add(key)
        record = normalise(record)  # every dialect read here, once, for both adapters
        a = record.attributes
        if not bounded.isdisjoint(a):
            # A value past a bound would overflow a sum (or SQLite's int64) and lose the batch.
            record = drop_out_of_range(record)
            a = record.attributes
        if needs_pricing(a):
            record = price_at_ingest(record)
        facts = span_facts(record)
        run_id, kind, service, model, provider, in_tok, out_tok, cached, reasoning, cost, tool = facts
        counts = kind == KIND_LLM and sc.DUPLICATE_OF not in record.attributes  # innermost.eligible
        resource = record.resource
        res = resource_json.get(id(resource))
        if res is None:
            res = resource_json[id(resource)] = encode(resource)
        keys.append(key)
        spans.append((record, facts))
        events = record.events
        rows.append((
            key[0], key[1], record.parent_span_id, run_id, record.name, kind, record.kind, record.start_ns,
            record.end_ns, record.status_code, record.status_message, service, model, provider, in_tok,
            out_tok, cached, reasoning, cost, tool, encode(record.attributes), res,
            events_json(events) if events else "[]", record.scope_name, record.scope_version,
            # innermost.carries_usage / eligible, inlined (two calls a span on the hot path)
            int(counts and (in_tok is not None or out_tok is not None)), int(counts),
        ))
        found.append(texts(record.name, tool, model, record.attributes, record.status_message,
                           ((e.name, e.attributes) for e in events) if events else ()))
    return Prepared(keys, rows, spans, found)


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

    The common case, a batch of new spans, costs one executemany and one upsert
    per run. Only when the insert hits a span that is stored already (an
    exporter retry, a resumed forward) is that transaction rolled back and the
    batch written again without the stored spans, found inside the new
    transaction, so nothing is counted twice even if another process wrote
    some of them in between.
    """
    batch = prepare(records)
    if not batch.rows:
        return 0
    deltas = aggregate(batch.spans)  # outside the write lock
    rereads = runs_to_recount(batch.spans)  # agents' runs: repeated reads redone run-wide
    try:
        with _write_transaction(conn):
            deltas = settle(conn, batch.spans, deltas)  # before the insert: sees earlier batches only
            _insert(conn, batch.keys, batch.rows, batch.texts)
            apply_deltas(conn, deltas)
            apply_deltas(conn, recount(conn, batch.spans))
            if rereads:
                recount_rereads(conn, rereads)
        return len(batch.rows)
    except sqlite3.IntegrityError:
        pass  # some span is stored already; a constraint error of another kind is raised below
    with _write_transaction(conn):
        existing = _existing(conn, batch.keys)
        keep = [i for i, key in enumerate(batch.keys) if key not in existing]
        if keep:
            kept = [batch.spans[i] for i in keep]
            deltas = settle(conn, kept, aggregate(kept))
            _insert(conn, [batch.keys[i] for i in keep], [batch.rows[i] for i in keep],
                    [batch.texts[i] for i in keep])
            apply_deltas(conn, deltas)
            apply_deltas(conn, recount(conn, kept))
            if rereads:
                recount_rereads(conn, rereads)
    return len(keep)


def _insert(conn: sqlite3.Connection, keys: list[tuple[str, str]], rows: list[tuple[Any, ...]],
            found: list[Texts]) -> None:
    """Insert the spans, and their search rows under the same rowids.

    We hold the write lock, and SQLite gives each new row the largest rowid plus
    one, so the batch takes ``first`` .. ``first + n - 1``; the largest rowid
    afterwards proves it. Only a table whose rowids reached 2**63 (where SQLite
    picks random free ones) needs them read back by key.
    """
    first = max_rowid(conn) + 1
    conn.executemany(INSERT_SPAN_SQL, rows)
    if max_rowid(conn) == first + len(rows) - 1:
        conn.executemany(INSERT_SEARCH_SQL, [(first + i, *t) for i, t in enumerate(found)])
        return
    for key, t in zip(keys, found, strict=True):
        rowid = conn.execute("SELECT rowid FROM spans WHERE trace_id = ? AND span_id = ?", key).fetchone()[0]
        conn.execute(INSERT_SEARCH_SQL, (rowid, *t))


@contextmanager
def _write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
