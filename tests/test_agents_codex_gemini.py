"""Codex CLI and Gemini CLI sessions as runs: the recorded samples through the adapters and a real Store.

Expected figures come from the fake model's usage script (call k = 0..6 reports
input 1100+k uncached, cache read 3300+k, output 440+k, reasoning 55+k in the
provider's own convention) and from the samples' tool plan (README.md read
twice, a missing file, an edit, ``git diff --stat``, ``touch denied.txt``).
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest
from genai_prices import Usage

from agent_samples import SAMPLES, log_requests, trace_requests
from runtrace import semconv as sc
from runtrace.agents import codex, gemini
from runtrace.agents.events import LogEvent
from runtrace.store.db import Store
from runtrace.store.queries import get_run, list_runs
from runtrace.store.records import SpanRecord

CODEX_ID = "01a230a6-a342-73e0-95cd-d58c49a3a89c"
GEMINI_ID = "174831ce-e119-40dd-8f8f-edff1096005a"
PROMPT = "read README.md and fix the typo"
CALLS = range(7)
FIGURES = ("id", "name", "project", "owner", "service", "cost_usd", "unpriced_calls", "input_tokens",
           "output_tokens", "cached_input_tokens", "reasoning_tokens", "llm_calls", "tool_calls",
           "repeated_reads", "repeated_read_tokens", "loop_detected", "models")

pytestmark = pytest.mark.skipif(not (SAMPLES / "codex" / "logs.jsonl").exists(),
                                reason="agent-telemetry samples not present")

Adapter = Callable[[Sequence[LogEvent]], list[SpanRecord]]


def _store(tmp_path: Path, name: str = "rt.db") -> Store:
    return Store.open(tmp_path / name)


def _ingest_logs(store: Store, adapter: Adapter, requests: Sequence[Sequence[LogEvent]]) -> None:
    for request in requests:
        store.ingest(adapter(request))


def _run(store: Store, run_id: str) -> dict[str, Any]:
    run = get_run(store, run_id)
    assert run is not None, f"no run {run_id}"
    return run


def _figures(run: dict[str, Any]) -> dict[str, Any]:
    return {k: run[k] for k in FIGURES}


def _errors(run: dict[str, Any]) -> list[str]:
    return [s["name"] for s in run["spans"] if s["status"] == "ERROR"]


def _cost(model: str, provider: str, usages: Sequence[Usage]) -> float:
    total = sum((genai_prices.calc_price(u, model_ref=model, provider_id=provider).total_price for u in usages),
                Decimal(0))
    return float(total)


# --- Codex -------------------------------------------------------------------------

def test_codex_sample_is_one_run_with_exact_figures(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        _ingest_logs(store, codex.to_records, log_requests("codex"))
        assert [r["id"] for r in list_runs(store)] == [CODEX_ID]  # the thread id `codex exec` prints
        run = _run(store, CODEX_ID)
    # OpenAI convention = runtrace's: input includes cached, output includes reasoning; no cache write sent.
    usages = [Usage(input_tokens=(1100 + k) + (3300 + k), cache_read_tokens=3300 + k, output_tokens=440 + k)
              for k in CALLS]
    assert run["name"] == PROMPT
    assert run["service"] == "codex_exec"
    assert run["llm_calls"] == 7
    assert run["input_tokens"] == sum(4400 + 2 * k for k in CALLS) == 30842
    assert run["cached_input_tokens"] == sum(3300 + k for k in CALLS) == 23121
    assert run["output_tokens"] == sum(440 + k for k in CALLS) == 3101
    assert run["reasoning_tokens"] == sum(55 + k for k in CALLS) == 406
    assert run["unpriced_calls"] == 0
    assert run["cost_usd"] == pytest.approx(_cost("gpt-5-codex", "openai", usages), abs=1e-9)
    # by hand, $/MTok 1.25 input, 0.125 cache read, 10 output: 7,721 uncached, 23,121 cached, 3,101 output
    assert run["cost_usd"] == pytest.approx(0.00965125 + 0.002890125 + 0.03101, abs=1e-9)
    assert run["models"][0]["provider"] == "openai" and run["models"][0]["model"] == "gpt-5-codex"
    assert run["tool_calls"] == 6
    assert run["repeated_reads"] == 1  # `cat README.md` twice, same output (Chunk ID / Wall time differ)
    assert run["loop_detected"] is False
    assert _errors(run) == ["execute_tool exec_command"]  # cat CONTRIBUTING.md: exit code 1
    tools = [s for s in run["spans"] if s["kind"] == "tool"]
    assert [s["attributes"][sc.TOOL_READ] for s in tools] == [True, True, True, False, True, False]
    assert [s["attributes"].get(sc.TOOL_REPEATED_READ, False) for s in tools] == [
        False, True, False, False, False, False]


def _codex_events() -> list[LogEvent]:
    return [e for request in log_requests("codex") for e in request]


def _tool_result(cmd: str) -> LogEvent:
    return next(e for e in _codex_events()
                if e.name == sc.CODEX_EV_TOOL_RESULT and json.loads(e.attributes["arguments"])["cmd"] == cmd)


def _again(event: LogEvent, n: int, **attrs: Any) -> LogEvent:
    """The same event as a later, distinct call (new call id, later time)."""
    new = dict(event.attributes, **attrs)
    if sc.CODEX_CALL_ID in new:
        new[sc.CODEX_CALL_ID] = f"{new[sc.CODEX_CALL_ID]}-again{n}"
    return dataclasses.replace(event, time_ns=event.time_ns + n * 1_000_000_000, attributes=new)


def test_codex_same_read_three_times_is_a_loop_and_two_repeated_reads(tmp_path: Path) -> None:
    read = _tool_result("cat README.md")
    with _store(tmp_path) as store:
        store.ingest(codex.to_records([read, _again(read, 1), _again(read, 2)]))
        run = _run(store, CODEX_ID)
    assert (run["tool_calls"], run["repeated_reads"], run["loop_detected"]) == (3, 2, True)
    looped = [s for s in run["spans"] if s["attributes"].get(sc.LOOP_DETECTED)]
    assert len(looped) == 1 and [e["name"] for e in looped[0]["events"]] == [
        sc.EVENT_REPEATED_READ, sc.EVENT_LOOP]


def test_codex_changed_output_or_a_write_is_not_a_repeated_read(tmp_path: Path) -> None:
    read = _tool_result("cat README.md")
    changed = _again(read, 1, output=read.attributes["output"].replace("teh", "the"))
    write = _tool_result("sed -i 's/teh/the/' README.md")
    with _store(tmp_path) as store:
        store.ingest(codex.to_records([read, changed, write, _again(write, 1)]))
        run = _run(store, CODEX_ID)
    assert (run["tool_calls"], run["repeated_reads"]) == (4, 0)


@pytest.mark.parametrize(("command", "read_only"), [
    ("cat README.md", True), ("sed -n 1,20p a.py", True), ("git diff --stat", True), ("rg foo src", True),
    ("sed -i 's/a/b/' x", False), ("cat a > b", False), ("git commit -m x", False), ("touch x", False),
    ("cat a; rm b", False), ("find . -delete", False), ("echo $(rm x)", False), ("'unbalanced", False),
])
def test_codex_read_only_commands(command: str, read_only: bool) -> None:
    assert codex.is_read_only(command) is read_only


def test_codex_sandbox_denial_is_a_refused_call_not_a_tool_call(tmp_path: Path) -> None:
    write = _tool_result("touch denied.txt")
    denied = LogEvent(time_ns=write.time_ns - 1_000_000, name=sc.CODEX_EV_SANDBOX_OUTCOME,
                      attributes={sc.CODEX_CONVERSATION_ID: CODEX_ID, sc.CODEX_TOOL_NAME: "exec_command",
                                  sc.CODEX_CALL_ID: write.attributes[sc.CODEX_CALL_ID],
                                  sc.CODEX_OUTCOME: "denied", "initial_duration_ms": "3"},
                      resource=write.resource, scope_name=write.scope_name, trace_id=None, span_id=None, body=None)
    with _store(tmp_path) as store:
        store.ingest(codex.to_records([denied, write]))
        run = _run(store, CODEX_ID)
    assert run["tool_calls"] == 1
    refused = [s for s in run["spans"] if s["attributes"].get(sc.TOOL_REFUSED) is True]
    assert [(s["name"], s["tool_name"], s["attributes"][sc.GEN_AI_TOOL_CALL_ID]) for s in refused] == [
        ("refused exec_command", "exec_command", write.attributes[sc.CODEX_CALL_ID])]


def test_codex_project_owner_and_redacted_prompt(tmp_path: Path) -> None:
    requests = [[dataclasses.replace(
        e, resource={**e.resource, sc.PROJECT: "billing", sc.OWNER: "ana"},
        attributes={**e.attributes, "prompt": "[REDACTED]"} if e.name == sc.CODEX_EV_USER_PROMPT else e.attributes)
        for e in request] for request in log_requests("codex")]
    with _store(tmp_path) as store:
        _ingest_logs(store, codex.to_records, requests)
        run = _run(store, CODEX_ID)
    assert (run["name"], run["project"], run["owner"]) == ("Codex session", "billing", "ana")


def test_codex_resumed_session_continues_the_run(tmp_path: Path) -> None:
    hour = 3600 * 1_000_000_000

    def second_process(e: LogEvent) -> LogEvent:  # `codex exec resume --last`: same conversation id
        attrs = dict(e.attributes)
        if e.name == sc.CODEX_EV_USER_PROMPT:
            attrs["prompt"] = "now add a test"
        if sc.CODEX_CALL_ID in attrs:
            attrs[sc.CODEX_CALL_ID] += "-resumed"
        return dataclasses.replace(e, time_ns=e.time_ns + hour, attributes=attrs)

    resumed = [[second_process(e) for e in request] for request in log_requests("codex")]
    with _store(tmp_path) as store:
        _ingest_logs(store, codex.to_records, log_requests("codex"))
        _ingest_logs(store, codex.to_records, resumed)
        assert [r["id"] for r in list_runs(store)] == [CODEX_ID]
        run = _run(store, CODEX_ID)
    first = next(e.attributes["prompt"] for request in log_requests("codex") for e in request
                 if e.name == sc.CODEX_EV_USER_PROMPT)
    assert first != "now add a test"
    assert (run["llm_calls"], run["tool_calls"], run["input_tokens"]) == (14, 12, 2 * 30842)
    assert run["name"] == first  # the first prompt names the session (issue 13), not the resumed one
    with _store(tmp_path / "reversed") as store:  # whatever order the two processes' records arrive in
        _ingest_logs(store, codex.to_records, resumed)
        _ingest_logs(store, codex.to_records, log_requests("codex"))
        assert _run(store, CODEX_ID)["name"] == first


# --- Gemini ------------------------------------------------------------------------

def _gemini_usages() -> list[Usage]:
    # Gemini: prompt count includes cached; thoughts beside the candidates -> output = candidates + thoughts.
    return [Usage(input_tokens=(1100 + k) + (3300 + k), cache_read_tokens=3300 + k,
                  output_tokens=(440 + k) + (55 + k)) for k in CALLS]


def test_gemini_sample_is_one_run_with_exact_figures(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        _ingest_logs(store, gemini.to_records, log_requests("gemini-autoedit"))
        assert [r["id"] for r in list_runs(store)] == [GEMINI_ID]
        run = _run(store, GEMINI_ID)
    assert run["name"] == PROMPT
    assert run["service"] == "gemini-cli"
    assert run["llm_calls"] == 7
    assert run["input_tokens"] == sum(u.input_tokens or 0 for u in _gemini_usages()) == 30842
    assert run["cached_input_tokens"] == 23121
    assert run["output_tokens"] == sum((440 + k) + (55 + k) for k in CALLS) == 3507
    assert run["reasoning_tokens"] == 406
    # The fake model answers with modelVersion "gemini-fake", which Gemini reports as the model:
    # unknown to genai-prices, so unpriced (never $0 priced).
    assert (run["cost_usd"], run["unpriced_calls"]) == (0.0, 7)
    assert [(m["provider"], m["model"], m["unpriced_calls"]) for m in run["models"]] == [
        ("gcp.gemini", "gemini-fake", 7)]
    llm = [s for s in run["spans"] if s["kind"] == "llm"]
    assert {s["attributes"][sc.GEN_AI_REQUEST_MODEL] for s in llm} == {"gemini-2.5-flash"}
    assert {s["attributes"][sc.COST_UNPRICED_REASON] for s in llm} == {sc.UNPRICED_UNKNOWN_MODEL}
    assert run["tool_calls"] == 6
    assert run["repeated_reads"] == 1  # read_file README.md twice, no write in between
    assert run["loop_detected"] is False
    assert _errors(run) == ["execute_tool read_file", "execute_tool run_shell_command",
                            "execute_tool run_shell_command"]


def _gemini_events(model: str | None = None) -> list[LogEvent]:
    events = [e for request in log_requests("gemini-autoedit") for e in request]
    if model is None:
        return events
    return [dataclasses.replace(e, attributes={**e.attributes, "model": model})
            if e.name == sc.GEMINI_EV_API_RESPONSE else e for e in events]


def test_gemini_known_model_is_priced_from_its_tokens(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        store.ingest(gemini.to_records(_gemini_events(model="gemini-2.5-flash")))
        run = _run(store, GEMINI_ID)
    assert run["unpriced_calls"] == 0
    assert run["cost_usd"] == pytest.approx(_cost("gemini-2.5-flash", "google", _gemini_usages()), abs=1e-9)
    # by hand, $/MTok 0.30 input, 0.03 cache read, 2.50 output: 7,721 uncached, 23,121 cached, 3,507 output
    assert run["cost_usd"] == pytest.approx(0.0023163 + 0.00069363 + 0.0087675, abs=1e-9)


def _gemini_tool(name: str, path_part: str) -> LogEvent:
    return next(e for e in _gemini_events() if e.name == sc.GEMINI_EV_TOOL_CALL
                and e.attributes["function_name"] == name and path_part in e.attributes["function_args"])


def test_gemini_read_after_a_write_to_the_path_is_not_a_repeat(tmp_path: Path) -> None:
    read = _gemini_tool("read_file", "README.md")
    edit = _gemini_tool("replace", "README.md")
    with _store(tmp_path) as store:
        store.ingest(gemini.to_records([read, _again(edit, 1), _again(read, 2), _again(read, 3)]))
        run = _run(store, GEMINI_ID)
    assert (run["tool_calls"], run["repeated_reads"], run["loop_detected"]) == (4, 1, False)


def test_gemini_same_read_three_times_is_a_loop(tmp_path: Path) -> None:
    read = _gemini_tool("read_file", "README.md")
    with _store(tmp_path) as store:
        store.ingest(gemini.to_records([read, _again(read, 1), _again(read, 2)]))
        run = _run(store, GEMINI_ID)
    assert (run["tool_calls"], run["repeated_reads"], run["loop_detected"]) == (3, 2, True)


def test_gemini_rejected_tool_is_refused_and_api_error_is_an_error(tmp_path: Path) -> None:
    read = _gemini_tool("read_file", "README.md")
    rejected = _again(read, 1, decision="reject", success=False)
    error = LogEvent(time_ns=read.time_ns + 5_000_000_000, name=sc.GEMINI_EV_API_ERROR,
                     attributes={sc.SESSION_ID: GEMINI_ID, "model": "gemini-2.5-flash", "error": "quota",
                                 "error_type": "RESOURCE_EXHAUSTED", "status_code": 429, "duration_ms": 12,
                                 "prompt_id": GEMINI_ID},
                     resource=read.resource, scope_name=read.scope_name, trace_id=None, span_id=None, body=None)
    with _store(tmp_path) as store:
        store.ingest(gemini.to_records([read, rejected, error]))
        run = _run(store, GEMINI_ID)
    assert (run["tool_calls"], run["llm_calls"], run["unpriced_calls"]) == (1, 0, 0)
    assert [s["name"] for s in run["spans"] if s["attributes"].get(sc.TOOL_REFUSED)] == ["refused read_file"]
    assert _errors(run) == ["chat gemini-2.5-flash"]
    failed = next(s for s in run["spans"] if s["status"] == "ERROR")
    assert failed["attributes"][sc.ERROR_TYPE] == "RESOURCE_EXHAUSTED"
    assert failed["attributes"][sc.HTTP_RESPONSE_STATUS_CODE] == 429


# --- both: delivery does not change the run ------------------------------------------

SAMPLES_UNDER_TEST = [("codex", codex.to_records, CODEX_ID), ("gemini-autoedit", gemini.to_records, GEMINI_ID)]


@pytest.mark.parametrize(("sample", "adapter", "run_id"), SAMPLES_UNDER_TEST)
def test_sent_twice_and_any_order_give_the_same_run(tmp_path: Path, sample: str, adapter: Adapter,
                                                     run_id: str) -> None:
    requests = log_requests(sample)
    with _store(tmp_path, "as_sent.db") as store:
        _ingest_logs(store, adapter, requests)
        expected = _run(store, run_id)
    shuffled = [random.Random(7).sample(r, len(r)) for r in reversed(requests)]
    with _store(tmp_path, "twice.db") as store:
        _ingest_logs(store, adapter, shuffled)
        _ingest_logs(store, adapter, requests)
        again = _run(store, run_id)
    with _store(tmp_path, "one_request.db") as store:
        _ingest_logs(store, adapter, [[e for r in requests for e in r]])
        merged = _run(store, run_id)
    assert _figures(again) == _figures(expected)
    assert _figures(merged) == _figures(expected)
    assert again["span_count"] == merged["span_count"] == expected["span_count"]


@pytest.mark.parametrize(("sample", "adapter", "run_id"), SAMPLES_UNDER_TEST)
def test_one_event_per_request_gives_the_same_figures_but_repeats(tmp_path: Path, sample: str,
                                                                   adapter: Adapter, run_id: str) -> None:
    """Every event in its own request: the same calls, tokens, dollars, name. Repeated reads are
    found within one request (the adapter is stateless), so they are the one figure that differs."""
    requests = log_requests(sample)
    with _store(tmp_path, "as_sent.db") as store:
        _ingest_logs(store, adapter, requests)
        expected = _figures(_run(store, run_id))
    with _store(tmp_path, "split.db") as store:
        _ingest_logs(store, adapter, [[e] for r in requests for e in reversed(r)])
        split = _figures(_run(store, run_id))
    for key in ("repeated_reads", "repeated_read_tokens"):
        expected.pop(key), split.pop(key)
    assert split == expected


@pytest.mark.parametrize(("sample", "module", "run_id"), [("codex", codex, CODEX_ID),
                                                            ("gemini-autoedit", gemini, GEMINI_ID)])
def test_logs_plus_traces_give_the_same_figures_as_logs_only(tmp_path: Path, sample: str, module: Any,
                                                               run_id: str) -> None:
    with _store(tmp_path, "logs.db") as store:
        _ingest_logs(store, module.to_records, log_requests(sample))
        logs_only = _figures(_run(store, run_id))
    with _store(tmp_path, "both.db") as store:
        for request in trace_requests(sample):  # traces first, then logs
            store.ingest([module.mark_trace_span(r) for r in request])
        _ingest_logs(store, module.to_records, log_requests(sample))
        both = _run(store, run_id)
    assert _figures(both) == logs_only
    assert both["span_count"] > 13  # the agent's own spans are in the run too, counted nowhere


def test_mark_trace_span_marks_each_agent_span_that_carries_usage() -> None:
    gemini_spans = [gemini.mark_trace_span(r) for req in trace_requests("gemini-autoedit") for r in req]
    marked = {(s.name, s.attributes.get(sc.DUPLICATE_OF), s.attributes.get(sc.RUN_ID)) for s in gemini_spans}
    assert marked == {("llm_call", sc.GEMINI_EV_API_RESPONSE, GEMINI_ID),
                      ("tool_call", sc.GEMINI_EV_TOOL_CALL, GEMINI_ID),
                      ("schedule_tool_calls", None, GEMINI_ID)}
    codex_spans = [codex.mark_trace_span(r) for req in trace_requests("codex") for r in req]
    with_usage = [s for s in codex_spans if sc.GEN_AI_USAGE_INPUT_TOKENS in s.attributes]
    assert len(with_usage) == 7
    assert {s.attributes.get(sc.DUPLICATE_OF) for s in with_usage} == {sc.CODEX_EV_SSE_EVENT}
    assert all(sc.DUPLICATE_OF not in s.attributes for s in codex_spans
               if sc.GEN_AI_USAGE_INPUT_TOKENS not in s.attributes)
    other = dataclasses.replace(with_usage[0], resource={sc.SERVICE_NAME: "my-app"})
    assert codex.mark_trace_span(other) is other  # another service's spans are left alone


def test_other_agents_events_are_dropped() -> None:
    gemini_events = _gemini_events()
    assert codex.to_records(gemini_events) == []
    assert gemini.to_records(_codex_events()) == []


def _codex_span(trace: str, span: str, service: str = "codex_exec", **attrs: Any) -> SpanRecord:
    return SpanRecord(trace * 32, span * 16, None, "s", "INTERNAL", 1, 2, "UNSET", None, dict(attrs),
                      {"service.name": service})


def test_codex_spans_join_the_one_session_of_their_trace_or_request_and_never_guess() -> None:
    def run_ids(records: list[SpanRecord]) -> list[Any]:
        return [r.attributes.get(sc.RUN_ID) for r in codex.join_sessions(records)]

    one = [_codex_span("a", "1", **{"conversation.id": "S"}), _codex_span("b", "2", thread_id="S"),
           _codex_span("b", "3"), _codex_span("c", "4"), _codex_span("c", "5", service="other")]
    assert run_ids(one) == ["S", "S", "S", "S", None]
    # two sessions in one request: a trace naming one joins it, an id-less trace stays a run of its own
    two = [_codex_span("a", "1", **{"conversation.id": "S"}), _codex_span("b", "2", thread_id="T"),
           _codex_span("b", "3"), _codex_span("c", "4")]
    assert run_ids(two) == ["S", "T", "T", None]
    # a span already in a run keeps it
    assert run_ids([_codex_span("a", "1", **{"runtrace.run.id": "R", "thread_id": "S"})]) == ["R"]
