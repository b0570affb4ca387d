"""Coding agents' OpenTelemetry (Claude Code, Codex CLI, Gemini CLI) as runtrace runs.

One module per agent turns its log events into the store's normalised span
records (see each module's docstring); they enter the store through the one
ingest path like any span. Each module exposes ``SERVICE_NAMES``,
``to_records(events)`` and ``mark_trace_span(record)``; this package
dispatches by resource ``service.name`` and drops events of other services
(accepted, never an error). The receiver calls :func:`records_from_events`
for ``/v1/logs`` and :func:`mark_trace_span` for every span of ``/v1/traces``
(the store itself never imports this package).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

from .. import semconv as sc
from ..store.records import SpanRecord
from . import claude, codex, gemini
from .events import LogEvent

__all__ = ["LogEvent", "attribute_keys", "mark_trace_span", "mark_trace_spans", "records_from_events"]

_ADAPTERS: dict[str, Callable[[Sequence[LogEvent]], list[SpanRecord]]] = {
    name: module.to_records for module in (claude, codex, gemini) for name in module.SERVICE_NAMES
}
_MARKERS = (claude.mark_trace_span, codex.mark_trace_span, gemini.mark_trace_span)
# The record attributes an adapter reads, for those that declare them (the others get every attribute).
_KEYS: dict[str, frozenset[str]] = {name: claude.EVENT_KEYS for name in claude.SERVICE_NAMES}
_NONE: frozenset[str] = frozenset()


def attribute_keys(resource: Mapping[str, object]) -> frozenset[str] | None:
    """The only log-record attributes worth decoding for a resource's records (the logs decoder's ``keys_for``).

    None (all of them) for an agent whose adapter does not declare what it
    reads; none for a service no adapter takes, whose events are dropped.
    """
    service = resource.get(sc.SERVICE_NAME)
    if not isinstance(service, str) or service not in _ADAPTERS:
        return _NONE
    return _KEYS.get(service)


def records_from_events(events: Sequence[LogEvent]) -> list[SpanRecord]:
    """The span records of every known agent's events; events of other services are dropped."""
    by_service: dict[str, list[LogEvent]] = defaultdict(list)
    for event in events:
        service = event.resource.get(sc.SERVICE_NAME)
        if isinstance(service, str) and service in _ADAPTERS:
            by_service[service].append(event)
    records: list[SpanRecord] = []
    for service, service_events in by_service.items():
        records.extend(_ADAPTERS[service](service_events))
    return records


def mark_trace_span(record: SpanRecord) -> SpanRecord:
    """An agent's own span put in its session's run and marked when its logs count it already."""
    for mark in _MARKERS:
        marked = mark(record)
        if marked is not record:
            return marked
    return record


def mark_trace_spans(records: Sequence[SpanRecord]) -> list[SpanRecord]:
    """:func:`mark_trace_span` for one OTLP request's spans, then what takes the whole request: Claude Code's
    refusals named by their parent span, Codex's id-less spans joined to their session."""
    return codex.join_sessions(claude.name_refusals([mark_trace_span(r) for r in records]))
