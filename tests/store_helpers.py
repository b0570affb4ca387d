"""Hand-built SpanRecords for the store tests, and the worker the multi-process test spawns.

Kept out of conftest.py (not the store's file) and importable by name, which a
``spawn`` child process needs.
"""

from __future__ import annotations

import hashlib
from typing import Any

from runtrace import semconv as sc
from runtrace.store.records import EventRecord, SpanRecord

BASE_NS = 1_795_000_000_000_000_000  # 2026-11-18T11:06:40Z
S = 1_000_000_000
RESOURCE = {sc.SERVICE_NAME: "support-agent", "deployment.environment": "test"}


def trace_of(run_id: str) -> str:
    """A stable trace id per run (each run is one trace unless a test says otherwise)."""
    return hashlib.md5(run_id.encode()).hexdigest()


def span(run_id: str | None, n: int, *, start_s: float, end_s: float, name: str = "work",
         attrs: dict[str, Any] | None = None, trace_id: str | None = None, parent: int | None = None,
         status: str = "UNSET", message: str | None = None, events: tuple[EventRecord, ...] = (),
         resource: dict[str, Any] | None = None, kind: str = "INTERNAL") -> SpanRecord:
    """A span of ``run_id`` (None: no run) with span id ``n``; times in seconds after BASE_NS."""
    attributes: dict[str, Any] = {} if run_id is None else {sc.RUN_ID: run_id}
    attributes.update(attrs or {})
    return SpanRecord(
        trace_id=trace_id or trace_of(run_id or "none"),
        span_id=f"{n:016x}",
        parent_span_id=None if parent is None else f"{parent:016x}",
        name=name,
        kind=kind,
        start_ns=BASE_NS + round(start_s * S),
        end_ns=BASE_NS + round(end_s * S),
        status_code=status,
        status_message=message,
        attributes=attributes,
        resource=RESOURCE if resource is None else resource,
        events=events,
        scope_name="runtrace",
        scope_version="0.1.0",
    )


def llm(run_id: str | None, n: int, *, start_s: float, end_s: float, model: str = "gpt-5.5",
        provider: str = "openai", input_tokens: int = 0, output_tokens: int = 0, cached: int = 0,
        reasoning: int = 0, cost: float | None = None, source: str | None = sc.SOURCE_GENAI_PRICES,
        reinjected: int | None = None, loop: bool = False, **kw: Any) -> SpanRecord:
    attrs: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT,
        sc.GEN_AI_PROVIDER_NAME: provider,
        sc.GEN_AI_REQUEST_MODEL: model,
        sc.GEN_AI_RESPONSE_MODEL: model,
        sc.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: cached,
        sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: reasoning,
        sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
    }
    if cost is not None:
        attrs[sc.COST_USD] = cost
    if source is not None:
        attrs[sc.COST_SOURCE] = source
    if reinjected is not None:
        attrs[sc.CONTEXT_REINJECTED_TOKENS] = reinjected
    if loop:
        attrs[sc.LOOP_DETECTED] = True
    attrs.update(kw.pop("attrs", {}))
    return span(run_id, n, start_s=start_s, end_s=end_s, name=f"chat {model}", attrs=attrs,
                kind="CLIENT", **kw)


def tool(run_id: str | None, n: int, *, start_s: float, end_s: float, tool_name: str = "read_file",
         repeated: bool = False, repeated_tokens: int | None = None, loop: bool = False,
         **kw: Any) -> SpanRecord:
    attrs: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL,
        sc.GEN_AI_TOOL_NAME: tool_name,
        sc.TOOL_REPEATED_READ: repeated,
    }
    if repeated_tokens is not None:
        attrs[sc.TOOL_REPEATED_READ_TOKENS] = repeated_tokens
    if loop:
        attrs[sc.LOOP_DETECTED] = True
    return span(run_id, n, start_s=start_s, end_s=end_s, name=f"execute_tool {tool_name}", attrs=attrs,
                **kw)


def run_span(run_id: str, n: int, *, start_s: float, end_s: float, name: str = "fix flaky test",
             project: str | None = "billing", owner: str | None = "alice", outcome: str | None = None,
             by: str | None = None, reason: str | None = None, stop_reason: str | None = None,
             loop: bool = False, budget: dict[str, Any] | None = None, **kw: Any) -> SpanRecord:
    attrs: dict[str, Any] = {sc.SPAN_ROLE: sc.ROLE_RUN, sc.RUN_NAME: name}
    for key, value in ((sc.PROJECT, project), (sc.OWNER, owner), (sc.RUN_OUTCOME, outcome),
                       (sc.RUN_OUTCOME_BY, by), (sc.RUN_OUTCOME_REASON, reason),
                       (sc.RUN_STOP_REASON, stop_reason)):
        if value is not None:
            attrs[key] = value
    if loop:
        attrs[sc.RUN_LOOP_DETECTED] = True
    attrs.update(budget or {})
    return span(run_id, n, start_s=start_s, end_s=end_s, name=f"run {name}", attrs=attrs, **kw)


def outcome_span(run_id: str, n: int, *, at_s: float, outcome: str, by: str | None = None,
                 reason: str | None = None, **kw: Any) -> SpanRecord:
    attrs: dict[str, Any] = {sc.SPAN_ROLE: sc.ROLE_OUTCOME, sc.RUN_OUTCOME: outcome}
    if by is not None:
        attrs[sc.RUN_OUTCOME_BY] = by
    if reason is not None:
        attrs[sc.RUN_OUTCOME_REASON] = reason
    return span(run_id, n, start_s=at_s, end_s=at_s, name=sc.OUTCOME_SPAN_NAME, attrs=attrs, **kw)


# --- the multi-process test ------------------------------------------------------

SPANS_PER_RUN = 10


def process_run_spans(run_index: int) -> list[SpanRecord]:
    """Ten spans of run ``p{run_index:03d}``: a run span, 6 LLM calls, 3 tool calls (one repeated)."""
    run_id = f"p{run_index:03d}"
    base = run_index * 100
    spans = [run_span(run_id, base + 1, start_s=run_index, end_s=run_index + 50, outcome=sc.OUTCOME_ACCEPTED)]
    for k in range(6):
        spans.append(llm(run_id, base + 10 + k, start_s=run_index + 1 + k, end_s=run_index + 1.5 + k,
                         input_tokens=1000 + k, output_tokens=100, cached=10, cost=0.001 * (k + 1)))
    for k in range(3):
        spans.append(tool(run_id, base + 20 + k, start_s=run_index + 10 + k, end_s=run_index + 10.5 + k,
                          repeated=(k == 2), repeated_tokens=250 if k == 2 else None))
    return spans


def ingest_worker(path: str, span_slice: tuple[int, int], batch: int, ready: Any, go: Any) -> None:
    """Spawned child: open the (maybe blank) store when told, ingest its slice of every run's spans."""
    from runtrace.store.db import Store

    records = [s for i in range(200) for s in process_run_spans(i)[span_slice[0]:span_slice[1]]]
    ready.set()
    go.wait(60)
    store = Store.open(path)
    try:
        for k in range(0, len(records), batch):
            store.ingest(records[k:k + batch])
    finally:
        store.close()
