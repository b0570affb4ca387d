"""Verdicts (``run.outcome`` spans) and the runs they name: no phantom runs.

A verdict for a run id the store does not hold yet must not create a run: a
typo would add an "(unnamed run)", accepted, $0, and lower the cost per
accepted run. But the id may be right and the run's spans simply not here yet
(they reach this store later through OTLP, or live in another store). So a
verdict for an unknown run is *pending*: its span is stored like any span
(``spans.kind = 'outcome'``), it adds nothing to the ``runs`` table, and when
the run's first other span arrives, the pending verdicts are folded into that
first contribution. The result is the same in every arrival order, because a
verdict contributes exactly what it would have contributed had the run been
there first (the aggregation stays commutative).

The rule "pending" is therefore simply: an outcome span whose run has no row.
:func:`settle` applies it inside the ingest transaction; :func:`record_verdict`
is the checked entry point of the CLI and the API (an unknown id is an error
there, and nothing is written).
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import semconv as sc
from .aggregate import KIND_OUTCOME, RunAccumulator, RunDelta, SpanFacts, span_facts
from .errors import UnknownRunError
from .records import SpanRecord
from .values import attributes_from_json, events_from_json

if TYPE_CHECKING:
    from .db import Store

__all__ = ["count_pending", "list_pending", "outcome_record", "record_verdict", "run_exists", "settle"]

_CHUNK = 500  # run ids per IN (...) query
_SPAN_COLUMNS = ("trace_id, span_id, parent_span_id, run_id, name, span_kind, start_ns, end_ns, status_code, "
                 "status_message, attributes, resource, events, scope_name, scope_version")
_PENDING_WHERE = "s.kind = 'outcome' AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = s.run_id)"


def _chunks(ids: Sequence[str]) -> list[Sequence[str]]:
    return [ids[i:i + _CHUNK] for i in range(0, len(ids), _CHUNK)]


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _existing_runs(conn: sqlite3.Connection, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(ids):
        found.update(r[0] for r in conn.execute(f"SELECT id FROM runs WHERE id IN ({_marks(len(chunk))})",
                                                list(chunk)))
    return found


def _record(row: Any) -> SpanRecord:
    return SpanRecord(
        trace_id=row[0], span_id=row[1], parent_span_id=row[2], name=row[4], kind=row[5], start_ns=row[6],
        end_ns=row[7], status_code=row[8], status_message=row[9], attributes=attributes_from_json(row[10]),
        resource=attributes_from_json(row[11]), events=events_from_json(row[12]), scope_name=row[13],
        scope_version=row[14])


def settle(conn: sqlite3.Connection, spans: Sequence[tuple[SpanRecord, SpanFacts]],
           deltas: list[RunDelta]) -> list[RunDelta]:
    """The deltas to apply for a batch, with verdicts for unknown runs held back or folded in.

    Call inside the write transaction, *before* the batch's spans are inserted
    (so the stored outcome spans found here are earlier batches', never this one's).

    - a run made only of verdicts in this batch, with no row yet: dropped (its
      spans are still stored, which is what makes them pending);
    - a run that gets its first row from this batch: every stored verdict span of
      it is pending (it had no row to go to) and is added to this contribution.
    """
    if not deltas:
        return deltas
    with_spans = {facts.run_id for _, facts in spans if facts.kind != KIND_OUTCOME}
    known = _existing_runs(conn, [d.run_id for d in deltas])  # primary-key lookups, a few per batch
    # A run with no row has no stored spans but pending verdicts (any other span would have made
    # the row), so this reads only those, through the (run_id, start_ns) index.
    new = [d.run_id for d in deltas if d.run_id in with_spans and d.run_id not in known]
    stored: dict[str, list[SpanRecord]] = {}
    for chunk in _chunks(new):
        for row in conn.execute(f"SELECT {_SPAN_COLUMNS} FROM spans WHERE run_id IN ({_marks(len(chunk))}) "
                                "AND kind = 'outcome'", list(chunk)):
            stored.setdefault(row[3], []).append(_record(row))
    out: list[RunDelta] = []
    for d in deltas:
        if d.run_id not in with_spans:
            if d.run_id in known:
                out.append(d)
            continue
        pending = stored.get(d.run_id) if d.run_id not in known else None
        if not pending:
            out.append(d)
            continue
        totals = RunAccumulator(d.run_id)
        totals.add(d)
        for record in pending:
            totals.add_span(record, span_facts(record))
        out.append(totals.freeze())
    return out


# --- the checked entry point: CLI and API ------------------------------------------


def outcome_record(run_id: str, outcome: str, *, by: str | None = None, reason: str | None = None,
                   service: str = "runtrace", now_ns: int | None = None) -> SpanRecord:
    """The ``run.outcome`` span a verdict is, as the SDK would have made it (a root span of its own trace)."""
    attrs: dict[str, Any] = {sc.SPAN_ROLE: sc.ROLE_OUTCOME, sc.RUN_ID: run_id, sc.RUN_OUTCOME: outcome}
    if by is not None:
        attrs[sc.RUN_OUTCOME_BY] = by
    if reason is not None:
        attrs[sc.RUN_OUTCOME_REASON] = reason
    at = time.time_ns() if now_ns is None else now_ns
    return SpanRecord(trace_id=uuid.uuid4().hex, span_id=uuid.uuid4().hex[:16], parent_span_id=None,
                      name=sc.OUTCOME_SPAN_NAME, kind="INTERNAL", start_ns=at, end_ns=at, status_code="UNSET",
                      status_message=None, attributes=attrs, resource={sc.SERVICE_NAME: service},
                      scope_name="runtrace")


def check_verdict(outcome: str, by: str | None, reason: str | None) -> None:
    """Raise ValueError naming the problem with a verdict's fields."""
    if outcome not in sc.VERDICTS:
        raise ValueError(f"outcome must be one of {', '.join(sorted(sc.VERDICTS))}, got {outcome!r}")
    for name, value in (("by", by), ("reason", reason)):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {type(value).__name__}")


def record_verdict(store: Store, run_id: str, outcome: str, *, by: str | None = None,
                   reason: str | None = None, service: str = "runtrace") -> SpanRecord:
    """Give the run ``run_id`` (its full id) a verdict; returns the stored span.

    Raises ValueError for a bad verdict and :class:`UnknownRunError` when the
    store holds no such run; in both cases nothing is written.
    """
    if not isinstance(run_id, str) or not run_id.strip():
        raise ValueError("a verdict needs the run id")
    check_verdict(outcome, by, reason)
    if not store.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)):
        raise UnknownRunError(_unknown_message(store, run_id))
    record = outcome_record(run_id, outcome, by=by, reason=reason, service=service)
    store.ingest([record])
    return record


def _unknown_message(store: Store, run_id: str) -> str:
    message = f"no run {run_id!r} in {store.path}; nothing was recorded"
    near = [r[0] for r in store.execute("SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
                                        (run_id, run_id + "\U0010ffff"))]
    if len(near) == 1:
        message += f" (a verdict needs the full run id: did you mean {near[0]}?)"
    return message


# --- reading -------------------------------------------------------------------------


def count_pending(store: Store) -> int:
    """How many verdicts wait for a run this store does not hold (never counted as runs)."""
    return int(store.execute(f"SELECT count(*) FROM spans s WHERE {_PENDING_WHERE}")[0][0])


def list_pending(store: Store, *, limit: int = 100) -> list[dict[str, Any]]:
    """The pending verdicts, newest first: run id, outcome, by, reason, at (ISO-8601 UTC)."""
    from .timespec import iso

    rows = store.execute(f"SELECT s.run_id, s.end_ns, s.attributes FROM spans s WHERE {_PENDING_WHERE} "
                         "ORDER BY s.end_ns DESC, s.span_id LIMIT ?", (limit if limit else -1,))
    out: list[dict[str, Any]] = []
    for r in rows:
        attrs = attributes_from_json(r["attributes"])
        out.append({"run_id": r["run_id"], "outcome": attrs.get(sc.RUN_OUTCOME),
                    "by": attrs.get(sc.RUN_OUTCOME_BY), "reason": attrs.get(sc.RUN_OUTCOME_REASON),
                    "at": iso(r["end_ns"])})
    return out


def run_exists(path: str | os.PathLike[str], run_id: str) -> bool | None:
    """Whether the store file at ``path`` holds the run (None: no such file, or it cannot be read).

    A read-only peek for the in-process ``record_outcome``: no migration, no write.
    """
    target = os.fspath(path)
    if not os.path.exists(target):
        return None
    try:
        conn = sqlite3.connect(Path(target).resolve().as_uri() + "?mode=ro", uri=True, timeout=5)
        try:
            return bool(conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone())
        finally:
            conn.close()
    except sqlite3.Error:
        return None
