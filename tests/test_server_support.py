"""A hand-built fixture store for the server, report and reprice tests (no tests in here).

Seven runs whose every figure is chosen so the expected numbers can be worked
out by hand from the list prices (per million tokens: gpt-4o $2.50 in / $1.25
cached / $10 out; gpt-4o-mini $0.15 / $0.075 / $0.60; claude-sonnet-4 $3 / $15).
Costs are written on the spans, as runtrace's instrumentation writes them.

| run | name | project/owner | outcome | calls (in/cached/out tokens, model) | cost |
|---|---|---|---|---|---|
| R1 | fix flaky test #412 | billing/alice | accepted | 10,000/0/1,000 + 20,000/10,000/500 gpt-4o; read_file x3 (2 repeated, loop), run_tests | 0.035 + 0.0425 = 0.0775 |
| R2 | refactor invoices | billing/bob | rejected | 50,000/0/2,000 claude-sonnet-4; write_file | 0.18 |
| R3 | triage bug 88 | support/alice | abandoned | 2,000/0/300 gpt-4o-mini | 0.00048 |
| R4 | summarise logs | support/carol | budget_stopped | 30,000/0/2,000 + 12,000/0/800 gpt-4o | 0.095 + 0.038 = 0.133 |
| R5 | explore api | web/bob | open | 1,000/0/100 my-local-llm (unpriced) + 4,000/0/200 gpt-4o | 0.012 |
| R6 | answer ticket | support/alice | accepted late, by ci | 3,000/0/400 claude-sonnet-4 | 0.015 |
| R7 | <script> name | web/mallory | accepted | 1,000/0/100 gpt-4o-mini; search_docs returning markup | 0.00021 |
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runtrace import semconv as sc
from runtrace.store.db import Store
from runtrace.store.records import EventRecord, SpanRecord

SEC = 1_000_000_000
T0 = int(datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc).timestamp()) * SEC
RESOURCE = {sc.SERVICE_NAME: "fixture-agent"}
XSS_NAME = "<script>window.__xss_name=1</script>"
XSS_RESULT = '<script>window.__xss=1;alert(1)</script><img src=x onerror="window.__xss_img=1">'
LOOP_SENTENCE = "read_file(path='src/app.py') returned the same result 3 times"

_ids = itertools.count(1)


def _span_id() -> str:
    return f"{next(_ids):016x}"


def trace_id(n: int) -> str:
    return f"{n:032x}"


def span(name: str, *, trace: str, run_id: str | None, start: int, end: int, parent: str | None = None,
         attrs: dict[str, Any] | None = None, events: Iterable[EventRecord] = (), status: str = "UNSET",
         span_id: str | None = None) -> SpanRecord:
    attributes: dict[str, Any] = dict(attrs or {})
    if run_id is not None:
        attributes[sc.RUN_ID] = run_id
    return SpanRecord(trace_id=trace, span_id=span_id or _span_id(), parent_span_id=parent, name=name,
                      kind="INTERNAL", start_ns=start, end_ns=end, status_code=status, status_message=None,
                      attributes=attributes, resource=RESOURCE, events=tuple(events))


def run_span(run_id: str, name: str, *, trace: str, start: int, end: int, project: str, owner: str,
             outcome: str | None = None, by: str | None = None, reason: str | None = None,
             stop_reason: str | None = None, budget: dict[str, Any] | None = None,
             events: Iterable[EventRecord] = (), span_id: str | None = None) -> SpanRecord:
    attrs: dict[str, Any] = {sc.SPAN_ROLE: sc.ROLE_RUN, sc.RUN_NAME: name, sc.PROJECT: project, sc.OWNER: owner}
    if outcome is not None:
        attrs[sc.RUN_OUTCOME] = outcome
    if by is not None:
        attrs[sc.RUN_OUTCOME_BY] = by
    if reason is not None:
        attrs[sc.RUN_OUTCOME_REASON] = reason
    if stop_reason is not None:
        attrs[sc.RUN_STOP_REASON] = stop_reason
    attrs.update(budget or {})
    return span(f"run {name}", trace=trace, run_id=run_id, start=start, end=end, attrs=attrs, events=events,
                span_id=span_id)


def llm_span(run_id: str, *, trace: str, parent: str | None, start: int, end: int, model: str, provider: str,
             input_tokens: int, output_tokens: int, cached: int = 0, cost: float | None = None,
             extra: dict[str, Any] | None = None) -> SpanRecord:
    attrs: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_PROVIDER_NAME: provider,
        sc.GEN_AI_REQUEST_MODEL: model, sc.GEN_AI_RESPONSE_MODEL: model,
        sc.GEN_AI_USAGE_INPUT_TOKENS: input_tokens, sc.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
    }
    if cached:
        attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cached
    if cost is None:
        attrs[sc.COST_SOURCE] = sc.SOURCE_UNKNOWN
        attrs[sc.COST_UNPRICED_REASON] = sc.UNPRICED_UNKNOWN_MODEL
    else:
        attrs[sc.COST_USD] = cost
        attrs[sc.COST_SOURCE] = sc.SOURCE_GENAI_PRICES
    attrs.update(extra or {})
    return span(f"chat {model}", trace=trace, run_id=run_id, start=start, end=end, parent=parent, attrs=attrs)


def tool_span(run_id: str, tool: str, *, trace: str, parent: str | None, start: int, end: int,
              repeated: bool = False, repeat_count: int = 1, events: Iterable[EventRecord] = (),
              extra: dict[str, Any] | None = None) -> SpanRecord:
    attrs: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: tool,
                             sc.TOOL_REPEATED_READ: repeated, sc.TOOL_REPEAT_COUNT: repeat_count}
    if repeated:
        attrs[sc.TOOL_REPEATED_READ_TOKENS] = 1200
    attrs.update(extra or {})
    return span(f"execute_tool {tool}", trace=trace, run_id=run_id, start=start, end=end, parent=parent,
                attrs=attrs, events=events)


def at(hours: float, seconds: float = 0.0) -> int:
    return T0 + int(hours * 3600 * SEC) + int(seconds * SEC)


def fixture_records() -> list[SpanRecord]:
    out: list[SpanRecord] = []
    openai, anthropic = sc.PROVIDER_OPENAI, sc.PROVIDER_ANTHROPIC
    sonnet = "claude-sonnet-4-20250514"

    # R1: accepted, a loop of three identical reads.
    t, s = trace_id(1), at(0)
    root = "a1" * 8
    out.append(run_span("r1-fix-flaky", "fix flaky test #412", trace=t, start=s, end=s + 40 * SEC,
                        project="billing", owner="alice", outcome=sc.OUTCOME_ACCEPTED, by="alice",
                        budget={sc.BUDGET_MAX_COST_USD: 0.5, sc.BUDGET_MAX_TOOL_CALLS: 10}, span_id=root))
    out.append(llm_span("r1-fix-flaky", trace=t, parent=root, start=s + 1 * SEC, end=s + 6 * SEC, model="gpt-4o",
                        provider=openai, input_tokens=10_000, output_tokens=1_000, cost=0.035))
    args = {sc.GEN_AI_TOOL_CALL_ARGUMENTS: '{"path": "src/app.py"}'}
    out.append(tool_span("r1-fix-flaky", "read_file", trace=t, parent=root, start=s + 7 * SEC, end=s + 8 * SEC,
                         extra=args))
    out.append(tool_span("r1-fix-flaky", "read_file", trace=t, parent=root, start=s + 9 * SEC, end=s + 10 * SEC,
                         repeated=True, repeat_count=2, extra=args, events=[EventRecord(
                             sc.EVENT_REPEATED_READ, s + 10 * SEC, {
                                 sc.TOOL_REPEAT_COUNT: 2, sc.LOOP_DESCRIPTION:
                                 "read_file(path='src/app.py') returned the same result as an earlier read "
                                 "(2 times so far)"})]))
    out.append(tool_span("r1-fix-flaky", "read_file", trace=t, parent=root, start=s + 11 * SEC,
                         end=s + 12 * SEC, repeated=True, repeat_count=3,
                         extra={**args, sc.LOOP_DETECTED: True}, events=[
                             EventRecord(sc.EVENT_LOOP, s + 12 * SEC, {
                                 sc.LOOP_KIND: "same_call", sc.LOOP_COUNT: 3, sc.LOOP_DESCRIPTION: LOOP_SENTENCE})]))
    out.append(llm_span("r1-fix-flaky", trace=t, parent=root, start=s + 13 * SEC, end=s + 30 * SEC,
                        model="gpt-4o", provider=openai, input_tokens=20_000, cached=10_000, output_tokens=500,
                        cost=0.0425))
    out.append(tool_span("r1-fix-flaky", "run_tests", trace=t, parent=root, start=s + 31 * SEC, end=s + 39 * SEC))

    # R2: rejected.
    t, s = trace_id(2), at(1)
    root = "a2" * 8
    out.append(run_span("r2-refactor", "refactor invoices", trace=t, start=s, end=s + 60 * SEC, project="billing",
                        owner="bob", outcome=sc.OUTCOME_REJECTED, by="bob", reason="wrong fix", span_id=root))
    out.append(llm_span("r2-refactor", trace=t, parent=root, start=s + SEC, end=s + 50 * SEC, model=sonnet,
                        provider=anthropic, input_tokens=50_000, output_tokens=2_000, cost=0.18))
    out.append(tool_span("r2-refactor", "write_file", trace=t, parent=root, start=s + 51 * SEC, end=s + 52 * SEC))

    # R3: abandoned, small and already cheap.
    t, s = trace_id(3), at(2)
    root = "a3" * 8
    out.append(run_span("r3-triage", "triage bug 88", trace=t, start=s, end=s + 10 * SEC, project="support",
                        owner="alice", outcome=sc.OUTCOME_ABANDONED, span_id=root))
    out.append(llm_span("r3-triage", trace=t, parent=root, start=s + SEC, end=s + 4 * SEC, model="gpt-4o-mini",
                        provider=openai, input_tokens=2_000, output_tokens=300, cost=0.00048))

    # R4: stopped by its cost budget.
    t, s = trace_id(4), at(3)
    root = "a4" * 8
    out.append(run_span("r4-summarise", "summarise logs", trace=t, start=s, end=s + 30 * SEC, project="support",
                        owner="carol", outcome=sc.OUTCOME_BUDGET_STOPPED, stop_reason="max_cost_usd",
                        budget={sc.BUDGET_MAX_COST_USD: 0.1, sc.BUDGET_ON_EXCEED: "raise"}, span_id=root,
                        events=[EventRecord(sc.EVENT_BUDGET, s + 29 * SEC, {
                            sc.BUDGET_LIMIT: "max_cost_usd", sc.BUDGET_LIMIT_VALUE: 0.1,
                            sc.BUDGET_OBSERVED: 0.133, sc.BUDGET_ACTION: "stop"})]))
    out.append(llm_span("r4-summarise", trace=t, parent=root, start=s + SEC, end=s + 15 * SEC, model="gpt-4o",
                        provider=openai, input_tokens=30_000, output_tokens=2_000, cost=0.095))
    out.append(llm_span("r4-summarise", trace=t, parent=root, start=s + 16 * SEC, end=s + 28 * SEC,
                        model="gpt-4o", provider=openai, input_tokens=12_000, output_tokens=800, cost=0.038))

    # R5: still open, one call on a model nobody prices.
    t, s = trace_id(5), at(4)
    root = "a5" * 8
    out.append(run_span("r5-explore", "explore api", trace=t, start=s, end=s + 20 * SEC, project="web",
                        owner="bob", span_id=root))
    out.append(llm_span("r5-explore", trace=t, parent=root, start=s + SEC, end=s + 5 * SEC, model="my-local-llm",
                        provider="ollama", input_tokens=1_000, output_tokens=100, cost=None))
    out.append(llm_span("r5-explore", trace=t, parent=root, start=s + 6 * SEC, end=s + 10 * SEC, model="gpt-4o",
                        provider=openai, input_tokens=4_000, output_tokens=200, cost=0.012))

    # R6: small work on a frontier model; accepted three hours later by CI.
    t, s = trace_id(6), at(5)
    root = "a6" * 8
    out.append(run_span("r6-answer", "answer ticket", trace=t, start=s, end=s + 8 * SEC, project="support",
                        owner="alice", span_id=root))
    out.append(llm_span("r6-answer", trace=t, parent=root, start=s + SEC, end=s + 7 * SEC, model=sonnet,
                        provider=anthropic, input_tokens=3_000, output_tokens=400, cost=0.015))
    late = s + 8 * SEC + 3 * 3600 * SEC
    out.append(span(sc.OUTCOME_SPAN_NAME, trace=trace_id(60), run_id="r6-answer", start=late, end=late,
                    attrs={sc.SPAN_ROLE: sc.ROLE_OUTCOME, sc.RUN_OUTCOME: sc.OUTCOME_ACCEPTED,
                           sc.RUN_OUTCOME_BY: "ci", sc.RUN_OUTCOME_REASON: "tests passed"}))

    # R7: markup everywhere a user can put it.
    t, s = trace_id(7), at(6)
    root = "a7" * 8
    out.append(run_span("r7-xss", XSS_NAME, trace=t, start=s, end=s + 5 * SEC, project="web", owner="mallory",
                        outcome=sc.OUTCOME_ACCEPTED, span_id=root))
    out.append(llm_span("r7-xss", trace=t, parent=root, start=s + SEC, end=s + 2 * SEC, model="gpt-4o-mini",
                        provider=openai, input_tokens=1_000, output_tokens=100, cost=0.00021,
                        extra={sc.GEN_AI_OUTPUT_MESSAGES: '[{"role": "assistant", "content": "<b>hi</b>'
                                                          '<script>window.__xss_out=1</script>"}]'}))
    out.append(tool_span("r7-xss", "search_docs", trace=t, parent=root, start=s + 3 * SEC, end=s + 4 * SEC,
                         extra={sc.GEN_AI_TOOL_CALL_RESULT: XSS_RESULT, "app.note": "<b>bold</b>"}))
    return out


FIXTURE_TOTAL_USD = 0.0775 + 0.18 + 0.00048 + 0.133 + 0.012 + 0.015 + 0.00021


def build_fixture_store(path: Path) -> Path:
    with Store.open(path) as store:
        records = fixture_records()
        assert store.ingest(records) == len(records)
    return path


# --- a real server on 127.0.0.1 -------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread; yield its base URL; shut it down gracefully."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn exited during start-up")
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start within 30 s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
