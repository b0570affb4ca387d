"""Each model call counted once when two instrumentations' spans of it are siblings.

The innermost rule (:mod:`.innermost`) drops a usage span that has another
below it. Some instrumentations make their span without making it current, so
the other span of the same request is not nested but beside it: OpenLLMetry's
``anthropic.chat`` and the anthropic SDK's own ``anthropic.messages.create``
are both children of the app's span, both with usage, and over OTLP (no
runtrace in the process to mark one in advance) every request counted twice.

The rule: two usage-carrying LLM spans (eligible, with tokens; see
:func:`.innermost.carries_usage`) are one model call when they are

- siblings: same run, same trace, same parent (a root has no siblings);
- from different instrumentation scopes (all of runtrace's scopes are one:
  runtrace never makes two spans of one call);
- of the same model family, lower-cased (:func:`.model_family.model_family`:
  one span may name the request model ``gpt-4o``, the other the response's
  ``gpt-4o-2024-08-06``);
- at the same time: they start within :data:`START_WINDOW_NS` of each other
  (two spans of one request start together; this also bounds the look-up to
  an index range) and their intervals overlap, with :data:`SLACK_NS` of
  tolerance, because a wrapper's span of a stream manager can end (at
  ``beta.messages.stream()``) just before the SDK's own span of the request
  starts (at ``__enter__``).

Of such a pair only the preferred span counts; the other stays in the trace
with ``counted = 0``, as a wrapper uncounted by the innermost rule. Preferred,
whatever the arrival order (:func:`preference`, the smaller key wins):

1. the span reporting tokens over one reporting zero (OpenLLMetry's span of
   ``beta.messages.stream()`` reports 0 tokens: it must not be the one counted);
2. runtrace's own span;
3. the client SDK's own span (``semconv.SDK_OWN_SCOPE_PREFIXES``) over a wrapper's;
4. the lowest span id.

A span is uncounted when *some* compatible sibling is preferred to it, a fact
that once true stays true as spans arrive (nothing is ever deleted): so each
pair is settled when the later of its two spans arrives, and the result is the
rule on the full set, in any order and batching (``tests/test_innermost.py``,
hypothesis). Concurrent calls of one model under one parent: every span of the
preferred scope counts (one scope never pairs with itself), the other scope's
overlapping spans do not. The same rule, in SQL, is ClickHouse's
``runtrace_sibling_spans`` view (collector/clickhouse/04_runtrace_runs.sql).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable
from typing import Any, NamedTuple

from .. import semconv as sc
from .aggregate import SpanFacts
from .model_family import model_family
from .records import SpanRecord

SLACK_NS = 100_000_000  # 0.1 s: two spans of one call closer than this count as overlapping

START_WINDOW_NS = 1_000_000_000  # 1 s: two spans of one call start together (and so overlap, with the slack)

_CANDIDATES_SQL = (
    "SELECT trace_id, parent_span_id, span_id, scope_name, model, input_tokens, output_tokens, start_ns, end_ns"
    " FROM spans INDEXED BY spans_run_start"
    " WHERE run_id = ? AND start_ns BETWEEN ? AND ? AND kind = 'llm' AND usage_below = 1"
    " AND parent_span_id IS NOT NULL AND model IS NOT NULL"
    " AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)")


@functools.lru_cache(maxsize=256)
def scope_family(scope_name: str | None) -> str:
    """The instrumentation a scope belongs to: runtrace's scopes are one."""
    name = scope_name or ""
    if name == sc.RUNTRACE_SCOPE or name.startswith(sc.RUNTRACE_SCOPE + "."):
        return sc.RUNTRACE_SCOPE
    return name


def preference(span_id: str, scope_name: str | None, input_tokens: int | None,
               output_tokens: int | None) -> tuple[bool, bool, bool, str]:
    """The key that picks which span of a sibling pair counts: the smaller wins (module docstring)."""
    scope = scope_family(scope_name)
    return ((input_tokens or 0) + (output_tokens or 0) <= 0,
            scope != sc.RUNTRACE_SCOPE,
            not scope.startswith(sc.SDK_OWN_SCOPE_PREFIXES),
            span_id)


class _Call(NamedTuple):
    """What the rule reads of one usage-carrying span."""

    span_id: str
    scope: str
    family: str
    start_ns: int
    end_ns: int
    key: tuple[bool, bool, bool, str]


def _call(span_id: str, scope_name: str | None, model: str, input_tokens: int | None, output_tokens: int | None,
          start_ns: int, end_ns: int) -> _Call:
    return _Call(span_id, scope_family(scope_name), _family(model), start_ns, end_ns,
                 preference(span_id, scope_name, input_tokens, output_tokens))


@functools.lru_cache(maxsize=1024)
def _family(model: str) -> str:
    """Cached: a store sees few model names, and the suffix patterns are run many times per name."""
    return model_family(model.lower())


def same_call(a: _Call, b: _Call) -> bool:
    """Whether two sibling usage spans (same run, trace and parent) are two instrumentations' spans of one call."""
    return (a.span_id != b.span_id and a.scope != b.scope and a.family == b.family and a.family != ""
            and abs(a.start_ns - b.start_ns) <= START_WINDOW_NS
            and a.start_ns <= b.end_ns + SLACK_NS and b.start_ns <= a.end_ns + SLACK_NS)


def _windows(starts: list[int]) -> list[tuple[int, int]]:
    """The start-time ranges where a sibling of one of ``starts`` may start, merged where they meet."""
    out: list[tuple[int, int]] = []
    for start in sorted(starts):
        low, high = start - START_WINDOW_NS, start + START_WINDOW_NS
        if out and low <= out[-1][1]:
            out[-1] = (out[-1][0], high)
        else:
            out.append((low, high))
    return out


def losers(conn: sqlite3.Connection, carriers: Iterable[tuple[SpanRecord, SpanFacts]]) -> set[tuple[str, str]]:
    """The stored spans (batch included) that a sibling of a span in ``carriers`` is preferred to.

    ``carriers`` are the batch's usage-carrying spans, already inserted, so a
    pair of two batch spans is found from either side. The candidates are read
    by (run, start) from ``spans_run_start``: only the spans of the same run
    starting within :data:`START_WINDOW_NS` of a batch span, so the work is
    proportional to the batch, not to the run (one run's calls all under its
    run span are one parent).
    """
    runs: dict[str, dict[tuple[str, str], list[_Call]]] = {}
    for record, facts in carriers:
        if record.parent_span_id is None or not facts.model:
            continue
        runs.setdefault(facts.run_id, {}).setdefault((record.trace_id, record.parent_span_id), []).append(
            _call(record.span_id, record.scope_name, facts.model, facts.input_tokens, facts.output_tokens,
                  record.start_ns, record.end_ns))
    found: set[tuple[str, str]] = set()
    for run_id, groups in runs.items():
        stored: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
        for low, high in _windows([c.start_ns for calls in groups.values() for c in calls]):
            for row in conn.execute(_CANDIDATES_SQL, (run_id, low, high)):
                group = (row[0], row[1])
                if group in groups:
                    stored.setdefault(group, []).append(row[2:])
        for group, rows in stored.items():
            if len({scope_family(row[1]) for row in rows}) < 2:
                continue  # one instrumentation under this parent (the common case: runtrace's own calls)
            others = [_call(*row) for row in rows]
            for mine in groups[group]:
                for other in others:
                    if same_call(mine, other):
                        found.add((group[0], max(mine, other, key=lambda c: c.key).span_id))
    return found
