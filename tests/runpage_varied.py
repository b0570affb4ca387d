"""A long run with everything the run page says something about, for tests that compare two ways of building it.

Kept out of the test files so a throwaway comparison against an older
runtrace can build the same store. One run of a few hundred spans nested
three deep (so the first page of 200 rows cuts through a subtree): priced and
unpriced LLM calls (unknown model, a streamed OpenAI call without usage),
ties for the most expensive call and calls ending in the same microsecond,
tool reads marked repeated (with the detector's hashes, so one finding per
subject) and loops (events), errors, a refused call, tool calls without
details, the three kinds of duplicate span (sibling, nested, in-process), an
orphan whose parent is not in the store, a span id used again in another
trace, and a budget stop event on the run span.
"""

from __future__ import annotations

import dataclasses
import json

from runtrace import semconv as sc
from runtrace.store.records import EventRecord, SpanRecord
from store_helpers import BASE_NS, S, llm, run_span, span, tool, trace_of

RUN = "varied"
STEPS = 60  # agent steps under the run span, each with its own calls: about 7 spans a step


def _with(record: SpanRecord, attrs: dict[str, object]) -> SpanRecord:
    return dataclasses.replace(record, attributes={**record.attributes, **attrs})


def _read(n: int, step: int, *, start_s: float, parent: int, path: str, times: int) -> SpanRecord:
    """A read_file call; ``times`` > 1 marks it a repeated read with the detector's hashes and an event."""
    args = json.dumps({"path": path})
    record = tool(RUN, n, start_s=start_s, end_s=start_s + 0.2, parent=parent, repeated=times > 1,
                  repeated_tokens=300 * times if times > 1 else None)
    attrs = {**record.attributes, sc.GEN_AI_TOOL_CALL_ARGUMENTS: args, sc.TOOL_ARGS_HASH: f"args-{path}",
             sc.TOOL_RESULT_HASH: f"result-{path}", sc.TOOL_REPEAT_COUNT: times}
    events: tuple[EventRecord, ...] = ()
    if times > 1:
        events = (EventRecord(sc.EVENT_REPEATED_READ, record.end_ns, {sc.TOOL_REPEAT_COUNT: times}),)
    if step % 9 == 4:  # a loop on the same read
        attrs[sc.LOOP_DETECTED] = True
        events += (EventRecord(sc.EVENT_LOOP, record.end_ns, {sc.LOOP_KIND: "same_call", sc.LOOP_COUNT: times,
                                                              sc.LOOP_DESCRIPTION: f"read_file {path} again"}),)
    return dataclasses.replace(record, attributes=attrs, events=events)


def varied_records() -> list[SpanRecord]:
    out = [_with(run_span(RUN, 1, start_s=0, end_s=STEPS * 10 + 5, name="a varied run", status="ERROR",
                          outcome=sc.OUTCOME_BUDGET_STOPPED, stop_reason="max_cost_usd",
                          budget={sc.BUDGET_MAX_COST_USD: 0.5, sc.BUDGET_MAX_LLM_CALLS: 400},
                          events=(EventRecord(sc.EVENT_BUDGET, BASE_NS + STEPS * 10 * S, {
                              sc.BUDGET_LIMIT: "max_cost_usd", sc.BUDGET_LIMIT_VALUE: 0.5,
                              sc.BUDGET_OBSERVED: 0.51, sc.BUDGET_ACTION: "stop"}),)),
                 {sc.ERROR_TYPE: "BudgetExceeded"})]
    n = 100
    for step in range(STEPS):
        base = step * 10.0
        agent = n
        out.append(span(RUN, agent, start_s=base, end_s=base + 9, name=f"agent step {step}", parent=1))
        model = "gpt-4o" if step % 2 else "claude-sonnet-4-5"
        provider = "openai" if step % 2 else "anthropic"
        cost = 0.004 if step % 7 == 3 else 0.0001 * (step % 5 + 1)  # ties for the dearest call
        out.append(llm(RUN, n + 1, start_s=base + 0.5, end_s=base + 2.0000004, parent=agent, model=model,
                       provider=provider, input_tokens=1000 + step, output_tokens=50, cost=cost))
        # a second call ending in the same microsecond as the first (the curve's order between them)
        out.append(llm(RUN, n + 2, start_s=base + 1, end_s=base + 2.0000001, parent=agent, model="gpt-4o-mini",
                       input_tokens=10, output_tokens=5, cost=0.00001))
        path = f"src/mod{step % 6}.py"
        out.append(_read(n + 3, step, start_s=base + 3, parent=agent, path=path, times=step // 6 + 1))
        if step % 4 == 1:
            out.append(llm(RUN, n + 4, start_s=base + 4, end_s=base + 5, parent=agent, model="acme-private-7",
                           provider="acme", input_tokens=10, output_tokens=5, cost=None,
                           source=sc.SOURCE_UNKNOWN, attrs={sc.COST_UNPRICED_REASON: sc.UNPRICED_UNKNOWN_MODEL}))
        if step % 5 == 2:
            out.append(llm(RUN, n + 8, start_s=base + 4, end_s=base + 5, parent=agent, model="gpt-5.5",
                           cost=None, source=sc.SOURCE_UNKNOWN,
                           attrs={sc.COST_UNPRICED_REASON: sc.UNPRICED_MISSING_USAGE, sc.GEN_AI_REQUEST_STREAM: True}))
        if step % 6 == 5:
            out.append(_with(tool(RUN, n + 5, start_s=base + 5, end_s=base + 5.5, parent=agent, tool_name="run_tests",
                                  status="ERROR", message="AssertionError"), {sc.ERROR_TYPE: "AssertionError"}))
        if step % 8 == 0:
            out.append(_with(tool(RUN, n + 6, start_s=base + 6, end_s=base + 6.1, parent=agent, tool_name="Bash"),
                             {sc.TOOL_DETAILS_MISSING: True}))
            out.append(span(RUN, n + 7, start_s=base + 6.2, end_s=base + 6.2, name="Bash refused", parent=agent,
                            attrs={sc.TOOL_REFUSED: True, sc.GEN_AI_TOOL_NAME: "Bash",
                                   sc.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps({"command": "rm -rf /"})}))
        n += 10
    out.extend(_duplicates(n))
    n += 10
    # an orphan (its parent never arrived) and a span id used again in another trace
    out.append(span(RUN, n, start_s=2.5, end_s=3.5, name="orphan", parent=99_999))
    again = span(RUN, 103, start_s=7.25, end_s=7.75, name="same id, other trace", parent=1,
                 trace_id=trace_of("another trace"))
    out.append(again)
    return out


def _duplicates(n: int) -> list[SpanRecord]:
    """The three kinds of second span of one call (store/innermost.py, store/siblings.py, the in-process mark)."""
    def call(k: int, name: str, scope: str, start_s: float, end_s: float, parent: int, model: str,
             attrs: dict[str, object] | None = None) -> SpanRecord:
        record = llm(RUN, k, start_s=start_s, end_s=end_s, parent=parent, model=model,
                     provider="anthropic" if model.startswith("claude") else "openai", input_tokens=1000,
                     output_tokens=100, cost=0.0045, attrs=attrs or {})
        return dataclasses.replace(record, name=name, scope_name=scope)

    return [
        call(n, "anthropic.messages.create", "com.anthropic.sdk.python", 11, 13, 100, "claude-sonnet-4-5"),
        call(n + 1, "anthropic.chat", "opentelemetry.instrumentation.anthropic", 11.001, 13, 100,
             "claude-sonnet-4-5"),
        call(n + 2, "ai.generateText", "ai", 21, 24, 110, "claude-sonnet-4-5"),
        call(n + 3, "ai.generateText.doGenerate", "ai", 21.5, 23.5, n + 2, "claude-sonnet-4-5"),
        call(n + 4, "chat gpt-4o", "runtrace.instrumentation.openai", 31, 33, 120, "gpt-4o"),
        dataclasses.replace(span(RUN, n + 5, start_s=31.01, end_s=32.99, name="chat gpt-4o", parent=n + 4,
                                 kind="CLIENT", attrs={sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT,
                                                       sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
                                                       sc.GEN_AI_USAGE_INPUT_TOKENS: 1000,
                                                       sc.GEN_AI_USAGE_OUTPUT_TOKENS: 100,
                                                       sc.DUPLICATE_OF: f"{n + 4:016x}"}),
                            scope_name="opentelemetry.instrumentation.openai_v2"),
    ]
