"""Everything the run page shows, computed from a run's spans as columns (``store.runpage.run_spans``).

Kept apart from the HTML so it can be tested as data: the waterfall rows in
tree order with their offsets, the cumulative cost curve, the budget gauges,
and the run's sentences (what ended it, detections, unpriced calls, verdict),
which come from :mod:`runtrace.explain` so ``runtrace show`` says the same.
A whole section-8 run dict (``get_run``) gives the same view (:func:`build_run_view`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import semconv
from ..explain import (
    Finding,
    Gauge,
    Unpriced,
    detections,
    explain_event,
    gauges,
    headline,
    tree_order_indices,
    unpriced,
    verdict,
)
from ..store.runpage import RunSpans
from ..store.timespec import from_iso
from .duplicates import Calls, Duplicate
from .spanview import is_tool_call, row_flags, tool_subject

__all__ = ["CONTENT_KEYS", "Finding", "Gauge", "RunView", "SpanRow", "Unpriced", "build_run_view",
           "build_view", "explain_event"]

CONTENT_KEYS = (semconv.GEN_AI_SYSTEM_INSTRUCTIONS, semconv.GEN_AI_INPUT_MESSAGES, semconv.GEN_AI_OUTPUT_MESSAGES,
                semconv.GEN_AI_TOOL_CALL_ARGUMENTS, semconv.GEN_AI_TOOL_CALL_RESULT)
_MIN_BAR_PCT = 0.4


@dataclass(frozen=True)
class SpanRow:
    span: dict[str, Any]
    depth: int
    offset_pct: float
    width_pct: float
    offset_s: float
    content: list[tuple[str, str]]  # (attribute, pretty text) of captured prompt/completion/tool content
    attributes: list[tuple[str, str]]  # everything else, as text
    flags: list[str]
    subject: str | None = None  # a tool call's file or command, when its arguments were captured
    duplicate: Duplicate | None = None  # a span of a call another span counts: greyed, not in the totals


@dataclass(frozen=True)
class RunView:
    run: dict[str, Any]
    rows: list[SpanRow]
    total_s: float
    curve: list[tuple[float, float]]  # (seconds since start, cumulative USD) at each priced call's end
    gauges: list[Gauge]
    detections: list[Finding]
    verdict: str | None
    headline: list[str]  # what ended the run: its error, or its budget stop
    unpriced: list[Unpriced]  # why each kind of unpriced call is unpriced, and how to fix it
    notes: tuple[str, ...] = ()  # what the page cannot show, and agent figures beside runtrace's
    row_total: int = 0  # rows of the whole timeline; ``rows`` holds the first page of them
    agent_cost_usd: float | None = None  # a coding agent's own figure for the run, beside runtrace's price
    dearest: dict[str, Any] | None = None  # the run's most expensive LLM call: the page links straight to it


_AGENT_NAMES = {name: "Claude Code" for name in semconv.CLAUDE_SERVICE_NAMES}


def _notes(run: Mapping[str, Any], spans: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """Sentences about a coding-agent session: missing tool details, refusals, the agent's own cost."""
    notes: list[str] = []
    agent = _AGENT_NAMES.get(str(run.get("service") or ""), "The agent")
    blind = sum(1 for s in spans if s["attributes"].get(semconv.TOOL_DETAILS_MISSING))
    if blind:
        notes.append(f"{agent} did not send tool details for {blind} tool call(s) (set OTEL_LOG_TOOL_DETAILS=1 "
                     "to send them), so repeated reads and loops cannot be detected for them.")
    refused = run.get("refused_tool_calls") or 0
    if refused:
        notes.append(f"{refused} tool call(s) were refused by the agent's sandbox or user and never ran.")
    agent_cost = run.get("agent_cost_usd")
    if agent_cost is not None:
        notes.append(f"{agent} reported its own cost as ${agent_cost:,.6f}; the cost above is runtrace's, "
                     "priced from the tokens and the model.")
    return tuple(notes)


def _text(value: Any) -> str:
    """An attribute value as the page shows it: strings as they are, the rest as JSON."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)  # what json.dumps writes, without its encoder per value
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _pretty(value: Any) -> str:
    """Captured content is usually JSON text; indent it so a person can read it."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if isinstance(parsed, (dict, list)):
            return json.dumps(parsed, indent=2, ensure_ascii=False)
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def _time_ns(span: Mapping[str, Any], key: str) -> int:
    """A whole span's start or end (``key``) in ns, from the ISO text of ``get_run`` (to the microsecond)."""
    return from_iso(span.get(key)) or 0


def _micro(ns: int) -> int:
    """An exact time in ns cut to the microsecond, as the ISO text of ``get_run`` gives it (the page placed its bars
    from that text; :class:`RunSpans` carries the exact ``start_ns``/``end_ns``)."""
    return ns - ns % 1000


def build_run_view(run: dict[str, Any], *, row_limit: int | None = None) -> RunView:
    """The run page's data from a whole ``get_run`` dict; only the first ``row_limit`` timeline rows are built."""
    spans = run["spans"]
    columns = RunSpans(tuple(range(len(spans))), tuple(s["span_id"] for s in spans),
                       tuple(s["parent_span_id"] for s in spans), tuple(s["kind"] for s in spans),
                       tuple(s["cost_usd"] for s in spans), tuple(_time_ns(s, "start") for s in spans),
                       tuple(_time_ns(s, "end") for s in spans), notable=dict(enumerate(spans)))
    return build_view(run, columns, lambda chosen: [spans[i] for i in chosen], row_limit=row_limit,
                      calls=Calls.from_spans(spans))


def build_view(run: dict[str, Any], spans: RunSpans, details: Callable[[list[int]], list[dict[str, Any]]], *,
               row_limit: int | None = None, calls: Calls | None = None,
               name_of: Callable[[int], str | None] | None = None) -> RunView:
    """The run page's data from the run's spans as columns by start time (:func:`runtrace.store.runpage.run_spans`).

    The sentences read only the notable spans (``spans.notable``: all of them for a
    whole ``get_run`` dict); the curve and the tree read the columns, without a
    dict per span. ``details`` turns the indices of the rendered rows into whole
    spans (the page shows their attributes), so a long run's other spans are
    never decoded; ``name_of`` names the most expensive call when it is not a
    notable span. ``calls`` says which spans are duplicates of a call another
    span counts (:mod:`.duplicates`): their rows are marked, and the cost curve
    and the most expensive call leave them out, as the run's totals do.
    """
    uncounted = set() if calls is None else calls.uncounted()
    count = len(spans)
    span_ids, kinds, costs = spans.span_id, spans.kind, spans.cost_usd
    ends = [e - e % 1000 for e in spans.end_ns]
    t0 = _micro(min(spans.start_ns)) if count else 0  # the cut is monotonic: the least cut start
    t1 = max(ends) if count else 0
    total_ns = max(t1 - t0, 1)
    # a row takes its times from the last span of its id (ids repeat only in bad data), as it always has
    last_of_id = {span_id: i for i, span_id in enumerate(span_ids)}
    order, depths = tree_order_indices(span_ids, spans.parent_span_id)
    shown = order[:row_limit]
    rows = []
    for i, span in zip(shown, details(shown), strict=True):
        timed = last_of_id[span_ids[i]]
        st, en = _micro(spans.start_ns[timed]), ends[timed]
        attrs = span["attributes"]
        duplicate = None if calls is None else calls.duplicate(span["span_id"])
        rows.append(SpanRow(
            span=span, depth=depths[i],
            offset_pct=100.0 * (st - t0) / total_ns,
            width_pct=max(_MIN_BAR_PCT, 100.0 * max(en - st, 0) / total_ns),
            offset_s=(st - t0) / 1e9,
            content=[(k, _pretty(attrs[k])) for k in CONTENT_KEYS if k in attrs],
            attributes=[(k, _text(v)) for k, v in sorted(attrs.items()) if k not in CONTENT_KEYS],
            flags=row_flags(span, duplicate),
            subject=tool_subject(attrs.get(semconv.GEN_AI_TOOL_CALL_ARGUMENTS)) if is_tool_call(span) else None,
            duplicate=duplicate,
        ))
    # the counted priced calls in page order: the dearest is the first of equals, the curve sorts them by end
    counted = [i for i in range(count) if kinds[i] == "llm" and costs[i] is not None
               and (not uncounted or span_ids[i] not in uncounted)]
    priced = [i for i in counted if costs[i] > 0]  # type: ignore[operator]
    dearest = None
    if priced:
        best = max(priced, key=costs.__getitem__)  # type: ignore[arg-type]
        dearest = spans.light(best)
        if "name" not in dearest and name_of is not None:
            dearest["name"] = name_of(best)  # a light span (a new dict): the store names it
    counted.sort(key=ends.__getitem__)
    curve: list[tuple[float, float]] = []
    total = 0.0
    for i in counted:
        total += costs[i]  # type: ignore[operator]
        curve.append(((ends[i] - t0) / 1e9, total))
    total_s = (t1 - t0) / 1e9
    notable = spans.notable
    told = list(notable.values())  # by start time
    explained = {**run, "spans": told}
    # detections() finds nothing on a span without events or a repeated-read mark: skip those
    found = [notable[i] for i in order if i in notable] if notable else []
    return RunView(run=run, rows=rows, total_s=total_s, curve=curve, gauges=gauges(run, total_s),
                   detections=detections([s for s in found if s.get("events")
                                          or (s.get("attributes") or {}).get(semconv.TOOL_REPEATED_READ)]),
                   verdict=verdict(run),
                   headline=headline(explained), unpriced=unpriced(explained),
                   notes=_notes(run, told), row_total=len(order),
                   agent_cost_usd=run.get("agent_cost_usd"), dearest=dearest)
