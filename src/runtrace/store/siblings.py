"""Each model call counted once when two instrumentations' spans of it are siblings.

The innermost rule (:mod:`.innermost`) drops a usage span that has another
below it. Some instrumentations make their span without making it current, so
the other span of the same request is not nested but beside it: OpenLLMetry's
``anthropic.chat`` and the anthropic SDK's own ``anthropic.messages.create``
are both children of the app's span, both with usage, and over OTLP (no
runtrace in the process to mark one in advance) every request counted twice.

The rule: two usage-carrying LLM spans (eligible, with tokens; see
:func:`.innermost.carries_usage`) are one model call when they are

- siblings: same trace, same parent (a root has no siblings);
- from different instrumentation scopes (all of runtrace's scopes are one:
  runtrace never makes two spans of one call);
- of the same model family, lower-cased (:func:`.model_family.model_family`:
  one span may name the request model ``gpt-4o``, the other the response's
  ``gpt-4o-2024-08-06``);
- at the same time: their intervals overlap, with :data:`SLACK_NS` of
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

import sqlite3
from collections.abc import Iterable
from typing import NamedTuple

from .. import semconv as sc
from .aggregate import SpanFacts
from .model_family import model_family
from .records import SpanRecord

SLACK_NS = 100_000_000  # 0.1 s: two spans of one call closer than this count as overlapping

_CANDIDATES_SQL = (
    "SELECT span_id, scope_name, model, input_tokens, output_tokens, start_ns, end_ns"
    " FROM spans INDEXED BY spans_usage_parent"
    " WHERE trace_id = ? AND parent_span_id = ? AND usage_below = 1 AND kind = 'llm'"
    " AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL) AND model IS NOT NULL"
    " AND start_ns <= ? AND end_ns >= ?")


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
    return _Call(span_id, scope_family(scope_name), model_family(model.lower()), start_ns, end_ns,
                 preference(span_id, scope_name, input_tokens, output_tokens))


def same_call(a: _Call, b: _Call) -> bool:
    """Whether two sibling usage spans are two instrumentations' spans of one model call."""
    return (a.span_id != b.span_id and a.scope != b.scope and a.family == b.family and a.family != ""
            and a.start_ns <= b.end_ns + SLACK_NS and b.start_ns <= a.end_ns + SLACK_NS)


def losers(conn: sqlite3.Connection, carriers: Iterable[tuple[SpanRecord, SpanFacts]]) -> set[tuple[str, str]]:
    """The stored spans (batch included) that a sibling of a span in ``carriers`` is preferred to.

    ``carriers`` are the batch's usage-carrying spans, already inserted, so a
    pair of two batch spans is found from either side.
    """
    groups: dict[tuple[str, str], list[_Call]] = {}
    for record, facts in carriers:
        if record.parent_span_id is None or not facts.model:
            continue
        groups.setdefault((record.trace_id, record.parent_span_id), []).append(
            _call(record.span_id, record.scope_name, facts.model, facts.input_tokens, facts.output_tokens,
                  record.start_ns, record.end_ns))
    found: set[tuple[str, str]] = set()
    for (trace_id, parent), calls in groups.items():
        low = min(c.start_ns for c in calls) - SLACK_NS
        high = max(c.end_ns for c in calls) + SLACK_NS
        stored = [_call(*row) for row in conn.execute(_CANDIDATES_SQL, (trace_id, parent, high, low))]
        if len({c.scope for c in stored}) < 2:
            continue  # one instrumentation under this parent (the common case: runtrace's own calls)
        for mine in calls:
            for other in stored:
                if same_call(mine, other):
                    found.add((trace_id, max(mine, other, key=lambda c: c.key).span_id))
    return found
