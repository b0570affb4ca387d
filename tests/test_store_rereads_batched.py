"""The run-wide re-read recount reads every run of a batch at once: split batches and one batch give the same rows.

``store/rereads.recount`` walks all the runs a batch touched with one query and
writes their changes with one executemany each. Several Claude Code sessions
(the recorded one, which reads README.md in its first request and again,
unchanged, in its second: a repeated read only the run-wide recount finds;
copied under other session ids, two of them without that second Read), stored in one
batch, in two batches (every session's first half, then the second halves)
and one record at a time in reverse, must leave identical spans, runs and
rollup rows: a run's reads never count against another's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from agent_samples import log_requests
from runtrace import agents
from runtrace import semconv as sc
from runtrace.store.db import Store
from runtrace.store.records import LogEvent, SpanRecord

SESSIONS = 5


def _session_copy(events: list[LogEvent], n: int, *, without_read: bool) -> list[LogEvent]:
    out = []
    for event in events:
        if without_read and event.attributes.get(sc.CLAUDE_TOOL_NAME) == "Read" \
                and event.attributes.get(sc.CLAUDE_SUCCESS) == "true":
            continue
        attrs = dict(event.attributes)
        for key in (sc.SESSION_ID, sc.CLAUDE_PROMPT_ID):
            if key in attrs:
                attrs[key] = f"{attrs[key]}-{n}"
        out.append(dataclasses.replace(event, attributes=attrs))
    return out


def _records() -> tuple[list[SpanRecord], list[SpanRecord]]:
    """(first halves, second halves) of every session's records, each half as its request's adapter made it."""
    requests = log_requests("claude")
    first: list[LogEvent] = []
    second: list[LogEvent] = []
    for n in range(SESSIONS):
        first += _session_copy(requests[0], n, without_read=False)
        second += _session_copy([e for r in requests[1:] for e in r], n, without_read=n % 2 == 1)
    return agents.records_from_events(first), agents.records_from_events(second)


def _state(path: Path) -> dict[str, Any]:
    with Store.open(path) as store:
        spans = [tuple(r) for r in store.execute(
            "SELECT trace_id, span_id, run_id, name, kind, attributes, events, usage_below, counted FROM spans "
            "ORDER BY trace_id, span_id")]
        runs = [tuple(r) for r in store.execute("SELECT * FROM runs ORDER BY id")]
        rollup = [tuple(r) for r in store.execute("SELECT * FROM report_rollup ORDER BY dim, grp, day, outcome")]
    return {"spans": spans, "runs": runs, "rollup": rollup}


def test_split_batches_and_one_batch_give_identical_rows(tmp_path: Path) -> None:
    first, second = _records()
    everything = first + second
    with Store.open(tmp_path / "one.db") as store:
        assert store.ingest(everything) == len(everything)
    with Store.open(tmp_path / "two.db") as store:
        assert store.ingest(first) + store.ingest(second) == len(everything)
    with Store.open(tmp_path / "each.db") as store:
        assert sum(store.ingest([r]) for r in reversed(everything)) == len(everything)
    one = _state(tmp_path / "one.db")
    assert _state(tmp_path / "two.db") == one
    assert _state(tmp_path / "each.db") == one
    runs = {row[0]: row for row in one["runs"]}
    assert len(runs) == SESSIONS
    with Store.open(tmp_path / "one.db") as store:
        per_run = {r[0]: (r[1], r[2]) for r in store.execute("SELECT id, repeated_reads, tool_calls FROM runs")}
    # (repeated reads, tool calls): the recorded session's second Read of README.md is a repeat
    # (5 tool calls); without it a session has none (4), whatever the other runs of the batch read.
    assert sorted(per_run.values()) == [(0, 4), (0, 4), (1, 5), (1, 5), (1, 5)]
