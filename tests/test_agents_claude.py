"""Claude Code sessions as runs: the recorded sample replayed through a real `runtrace serve`.

Expected figures are hand-computed from the fake model's usage script: call
k = 0..6 reports (Anthropic's convention) input 1100+k uncached, cache write
2200+k, cache read 3300+k, output 440+k; Claude Code reports no reasoning
count. The tool plan: Read README.md twice (the second unchanged: a repeated
read), Read a missing CONTRIBUTING.md (a failed call), Edit README.md,
Bash ``git diff --stat``, Bash ``touch denied.txt`` (refused: only the beta
trace's ``claude_code.tool.blocked_on_user decision=reject`` says so).
"""

from __future__ import annotations

import copy
import gzip
import json
import random
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import httpx
import pytest
from genai_prices import Usage

from agent_samples import SAMPLES, log_events, log_requests, protobuf_body, raw_requests
from runtrace import semconv as sc
from runtrace.agents import claude, records_from_events
from runtrace.server import create_app
from runtrace.store.db import Store
from runtrace.store.queries import get_run, list_runs
from test_server_support import running_server

SESSION = "5694915b-b3bc-412d-acc2-f3876e276bc6"
PROMPT = "read README.md and fix the typo"
CALLS = range(7)
MODEL = "claude-opus-4-8"
FIGURES = ("id", "name", "project", "owner", "service", "cost_usd", "agent_cost_usd", "unpriced_calls",
           "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", "llm_calls",
           "tool_calls", "refused_tool_calls", "repeated_reads", "repeated_read_tokens", "loop_detected",
           "models")
# What Claude Code itself reported per call (its cost_usd attribute), summed by hand from the sample.
AGENT_COST = 0.0319 + 0.03193675 + 0.0319735 + 0.03201025 + 0.032047 + 0.03208375 + 0.0321205

pytestmark = pytest.mark.skipif(not (SAMPLES / "claude" / "logs.jsonl").exists(),
                                reason="agent-telemetry samples not present")


def _expected_cost(model: str = MODEL) -> float:
    total = Decimal(0)
    for k in CALLS:
        usage = Usage(input_tokens=(1100 + k) + (2200 + k) + (3300 + k), cache_write_tokens=2200 + k,
                      cache_read_tokens=3300 + k, output_tokens=440 + k)
        total += genai_prices.calc_price(usage, model_ref=model, provider_id="anthropic").total_price
    return float(total)


def _expected(*, refused: int) -> dict[str, Any]:
    return {
        "id": SESSION, "name": PROMPT, "project": None, "owner": None, "service": "claude-code",
        "cost_usd": pytest.approx(_expected_cost(), abs=1e-9),
        "agent_cost_usd": pytest.approx(AGENT_COST, abs=1e-9),
        "unpriced_calls": 0,
        "input_tokens": sum((1100 + k) + (2200 + k) + (3300 + k) for k in CALLS),  # 46,263
        "output_tokens": sum(440 + k for k in CALLS),  # 3,101
        "cached_input_tokens": sum(3300 + k for k in CALLS),  # 23,121
        "reasoning_tokens": 0,
        "llm_calls": 7,
        "tool_calls": 5,  # Read, Read, Read (failed), Edit, Bash; the refused touch never ran
        "refused_tool_calls": refused,
        "repeated_reads": 1,
        "repeated_read_tokens": 93 // 4,  # what the repeat put in the context: Claude's 93-byte notice
        "loop_detected": False,
        "models": [{"provider": "anthropic", "model": MODEL, "llm_calls": 7,
                    "cost_usd": pytest.approx(_expected_cost(), abs=1e-9),
                    "input_tokens": 46263, "output_tokens": 3101, "cached_input_tokens": 23121,
                    "unpriced_calls": 0}],
    }


def _figures(run: dict[str, Any] | None) -> dict[str, Any]:
    assert run is not None, f"no run {SESSION}"
    return {key: run[key] for key in FIGURES}


def _run(path: Path, run_id: str = SESSION) -> dict[str, Any] | None:
    with Store.open(path, create=False) as store:
        return get_run(store, run_id)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    path = tmp_path / "rt.db"
    Store.open(path).close()
    with running_server(create_app(path, max_body_bytes=256 * 1024)) as base:
        yield base, path


def _post(base: str, signal: str, body: dict[str, Any], protocol: str, *, gzipped: bool = False,
          chunked: bool = False) -> httpx.Response:
    if protocol == "json":
        content, media = json.dumps(body).encode(), "application/json"
    else:
        content, media = protobuf_body(body, signal), "application/x-protobuf"
    headers = {"Content-Type": media}
    if gzipped:
        content = gzip.compress(content)
        headers["Content-Encoding"] = "gzip"
    data: Any = content
    if chunked:  # no Content-Length, as Claude Code's exporter sends it
        data = iter([content[i:i + 1000] for i in range(0, len(content), 1000)])
    return httpx.post(f"{base}/v1/{signal}", content=data, headers=headers, timeout=30)


def _replay(base: str, signals: tuple[str, ...], protocol: str, **kwargs: Any) -> None:
    for signal in signals:
        for body in raw_requests("claude", signal):
            response = _post(base, signal, body, protocol, **kwargs)
            assert response.status_code == 200, response.text
            if protocol == "json":
                assert "rejected" not in response.text.lower()


@pytest.mark.parametrize(("protocol", "gzipped", "chunked"), [("json", False, True), ("protobuf", False, False),
                                                              ("protobuf", True, True)],
                         ids=["json-chunked", "protobuf", "protobuf-gzip-chunked"])
def test_logs_metrics_traces_over_serve_give_exact_figures(serve: tuple[str, Path], protocol: str,
                                                           gzipped: bool, chunked: bool) -> None:
    base, path = serve
    _replay(base, ("metrics", "logs", "traces"), protocol, gzipped=gzipped, chunked=chunked)
    assert _figures(_run(path)) == _expected(refused=1)


def test_logs_only_give_the_same_figures_but_the_refusal_only_a_span_carries(serve: tuple[str, Path]) -> None:
    base, path = serve
    _replay(base, ("logs",), "json")
    assert _figures(_run(path)) == _expected(refused=0)
    _replay(base, ("traces", "metrics"), "protobuf")  # the beta traces later: only the refusal is new
    run = _run(path)
    assert _figures(run) == _expected(refused=1)
    assert run is not None and run["span_count"] > 13  # Claude's own spans joined the run, counted nowhere


def test_the_same_requests_sent_twice_count_once(serve: tuple[str, Path]) -> None:
    base, path = serve
    _replay(base, ("logs", "traces"), "json")
    _replay(base, ("traces", "logs"), "protobuf")
    assert _figures(_run(path)) == _expected(refused=1)


def test_events_in_any_order_and_split_give_the_same_run(tmp_path: Path) -> None:
    """Every event in its own request, shuffled: the same run, repeated read included (found run-wide)."""
    events = [e for request in log_requests("claude") for e in request]
    random.Random(13).shuffle(events)
    with Store.open(tmp_path / "split.db") as store:
        for event in events:
            store.ingest(records_from_events([event]))
        split = _figures(get_run(store, SESSION))
    with Store.open(tmp_path / "reversed.db") as store:
        for request in reversed(log_requests("claude")):
            store.ingest(records_from_events(request))
        backwards = _figures(get_run(store, SESSION))
    assert split == backwards == _expected(refused=0)


def test_a_resumed_session_continues_the_same_run(tmp_path: Path) -> None:
    """``claude --resume``: a second process, same session.id, new prompt.id, event.sequence from 0."""
    first = [e for request in log_requests("claude") for e in request]
    hour = 3600 * 10**9
    resumed = [claude_event_copy(e, prompt_id="resumed-prompt", shift_ns=hour) for e in first]
    with Store.open(tmp_path / "rt.db") as store:
        store.ingest(records_from_events(first))
        store.ingest(records_from_events(resumed))
        runs = list_runs(store, limit=0)
        run = get_run(store, SESSION)
    assert [r["id"] for r in runs] == [SESSION]
    assert run is not None
    assert run["llm_calls"] == 14 and run["tool_calls"] == 10
    assert run["input_tokens"] == 2 * 46263 and run["output_tokens"] == 2 * 3101
    # README.md was edited at the end of the first process, so the second process's first Read
    # is a new read and only its second Read repeats: one repeated read per process.
    assert run["repeated_reads"] == 2


def claude_event_copy(event: Any, *, prompt_id: str, shift_ns: int) -> Any:
    attributes = dict(event.attributes)
    attributes[sc.CLAUDE_PROMPT_ID] = prompt_id
    if sc.CLAUDE_TOOL_USE_ID in attributes:  # the model names each new tool call anew
        attributes[sc.CLAUDE_TOOL_USE_ID] = f"{attributes[sc.CLAUDE_TOOL_USE_ID]}-resumed"
    return type(event)(time_ns=event.time_ns + shift_ns, name=event.name, attributes=attributes,
                       resource=event.resource, scope_name=event.scope_name, trace_id=None, span_id=None,
                       body=event.body)


def _with_attr(body: dict[str, Any], key: str, value: str | None) -> dict[str, Any]:
    doc = copy.deepcopy(body)
    for rl in doc["resourceLogs"]:
        for sl in rl["scopeLogs"]:
            for lr in sl["logRecords"]:
                attrs = [a for a in lr["attributes"] if a["key"] != key]
                if value is not None and any(a["key"] == key for a in lr["attributes"]):
                    attrs.append({"key": key, "value": {"stringValue": value}})
                lr["attributes"] = attrs
    return doc


def test_an_unknown_model_is_unpriced_never_zero(serve: tuple[str, Path]) -> None:
    base, path = serve
    for body in raw_requests("claude", "logs"):
        assert _post(base, "logs", _with_attr(body, "model", "claude-future-99"), "json").status_code == 200
    run = _run(path)
    assert run is not None
    assert run["llm_calls"] == 7 and run["unpriced_calls"] == 7
    assert run["agent_cost_usd"] == pytest.approx(AGENT_COST, abs=1e-9)  # the agent's figure is still kept


def test_without_tool_details_nothing_is_compared_and_the_run_page_says_why(serve: tuple[str, Path]) -> None:
    base, path = serve
    for body in raw_requests("claude", "logs"):
        assert _post(base, "logs", _with_attr(body, "tool_input", None), "json").status_code == 200
    run = _run(path)
    assert run is not None
    assert (run["tool_calls"], run["repeated_reads"], run["llm_calls"]) == (5, 0, 7)
    page = httpx.get(f"{base}/runs/{SESSION}")
    assert page.status_code == 200
    assert ("Claude Code did not send tool details for 5 tool call(s) (set OTEL_LOG_TOOL_DETAILS=1 to send "
            "them)") in page.text


def test_the_run_page_shows_refusals_and_the_agents_own_cost(serve: tuple[str, Path]) -> None:
    base, _ = serve
    _replay(base, ("logs", "traces"), "json")
    page = httpx.get(f"{base}/runs/{SESSION}").text
    assert "1 tool call(s) were refused by the agent&#39;s sandbox or user and never ran." in page
    assert f"Claude Code reported its own cost as ${AGENT_COST:,.6f}" in page
    assert "did not send tool details" not in page
    api = httpx.get(f"{base}/api/runs/{SESSION}").json()
    assert (api["refused_tool_calls"], api["repeated_reads"]) == (1, 1)
    assert api["agent_cost_usd"] == pytest.approx(AGENT_COST, abs=1e-9)


def test_other_services_logs_and_any_metrics_are_accepted_and_dropped(serve: tuple[str, Path]) -> None:
    base, path = serve
    other = {"resourceLogs": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "my-web-app"}}]},
        "scopeLogs": [{"scope": {"name": "app"}, "logRecords": [
            {"timeUnixNano": "1796112447060000000", "severityNumber": 9, "body": {"stringValue": "hello"},
             "traceId": "ab" * 16, "spanId": "cd" * 8,
             "attributes": [{"key": "session.id", "value": {"stringValue": "x"}}]}]}]}]}
    for protocol in ("json", "protobuf"):
        response = _post(base, "logs", other, protocol)
        assert response.status_code == 200, response.text
        for body in raw_requests("codex", "metrics") + raw_requests("claude", "metrics"):
            assert _post(base, "metrics", body, protocol).status_code == 200
    with Store.open(path, create=False) as store:
        assert store.count_spans() == 0
        assert list_runs(store, limit=0) == []


def test_logs_and_metrics_bad_bodies_are_4xx_never_5xx_and_lose_nothing(serve: tuple[str, Path]) -> None:
    base, path = serve
    _replay(base, ("logs",), "json")
    before = _figures(_run(path))
    with Store.open(path, create=False) as store:
        spans_before = store.count_spans()
    good = json.dumps(raw_requests("claude", "logs")[0]).encode()
    rng = random.Random(9)
    bodies: list[tuple[bytes, str, dict[str, str]]] = [
        (b"{", "application/json", {}),
        (b"[]", "application/json", {}),
        (b'{"resourceLogs": {}}', "application/json", {}),
        (b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}', "application/json", {}),
        (b'{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"sum": {"dataPoints": '
         b'[{"exemplars": [{"spanId": "12"}]}]}}]}]}]}', "application/json", {}),
        (b"\xff\xfe\x00garbage", "application/x-protobuf", {}),
        (b"not gzip", "application/json", {"Content-Encoding": "gzip"}),
        (good, "text/plain", {}),
        (good, "application/json", {"Content-Encoding": "br"}),
        (b"[" * 5000 + b"]" * 5000, "application/json", {}),
        (b" " * (300 * 1024), "application/json", {}),
        (gzip.compress(b" " * (2 * 1024 * 1024)), "application/json", {"Content-Encoding": "gzip"}),
    ]
    for _ in range(60):  # random mutations of a real body
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        bodies.append((bytes(data), "application/json", {}))
        bodies.append((bytes(rng.randbytes(rng.randint(1, 400))), "application/x-protobuf", {}))
    statuses = set()
    for signal in ("logs", "metrics"):
        for content, media, extra in bodies:
            response = httpx.post(f"{base}/v1/{signal}", content=content,
                                  headers={"Content-Type": media, **extra}, timeout=30)
            assert response.status_code < 500, (signal, content[:80], response.text)
            statuses.add(response.status_code)
    assert {400, 413, 415} <= statuses
    assert _figures(_run(path)) == before
    with Store.open(path, create=False) as store:
        # a mutated body that still parses may add a record, never take one away
        assert store.count_spans() >= spans_before


def test_adapter_drops_other_agents_and_keeps_ids_deterministic() -> None:
    events = [e for request in log_requests("claude") for e in request]
    assert claude.to_records([e for r in log_requests("codex") for e in r]) == []
    first = {(r.trace_id, r.span_id) for r in claude.to_records(events)}
    again = {(r.trace_id, r.span_id) for r in claude.to_records(list(reversed(events)))}
    assert first == again and len(first) == 1 + 7 + 5  # prompt, calls, tools
    assert log_events(raw_requests("claude", "logs")[0])[0].name == "user_prompt"


@pytest.mark.parametrize(("sample", "run_id"), [("codex", "01a230a6-a342-73e0-95cd-d58c49a3a89c"),
                                                 ("gemini-autoedit", "174831ce-e119-40dd-8f8f-edff1096005a")])
def test_codex_and_gemini_over_serve_match_their_adapters_and_traces_count_nothing(
        serve: tuple[str, Path], tmp_path: Path, sample: str, run_id: str) -> None:
    """The receiver runs every agent's adapter on /v1/logs and its mark_trace_span on /v1/traces."""
    base, path = serve
    with Store.open(tmp_path / "direct.db") as store:
        for request in log_requests(sample):
            store.ingest(records_from_events(request))
        direct = get_run(store, run_id)
    assert direct is not None and direct["llm_calls"] == 7
    for signal in ("traces", "logs", "metrics"):
        for body in raw_requests(sample, signal):
            if "_trimmed" in body:
                continue
            response = _post(base, signal, body, "protobuf" if signal != "metrics" else "json")
            assert response.status_code == 200, response.text
    served = _run(path, run_id)
    assert served is not None
    keys = [k for k in FIGURES if k != "refused_tool_calls"]
    assert {k: served[k] for k in keys} == {k: direct[k] for k in keys}
    # The agents' own spans join the session's run and count nowhere: Gemini's 17 (stamped by the
    # adapter), and all 341 Codex spans (only 27 carry conversation.id; codex.join_sessions puts the
    # thread_id-only and id-less ones of the same process in the session too).
    assert served["span_count"] == direct["span_count"] + (17 if sample == "gemini-autoedit" else 341)
    with Store.open(path, create=False) as store:
        assert [r["id"] for r in list_runs(store, limit=0)] == [run_id]


def test_logs_need_the_token_like_traces(tmp_path: Path) -> None:
    path = tmp_path / "rt.db"
    Store.open(path).close()
    body = json.dumps(raw_requests("claude", "logs")[0]).encode()
    with running_server(create_app(path, token="s3cret")) as base:
        for signal in ("logs", "metrics"):
            denied = httpx.post(f"{base}/v1/{signal}", content=body, headers={"Content-Type": "application/json"})
            assert denied.status_code == 401
        assert _run(path) is None
        ok = httpx.post(f"{base}/v1/logs", content=body,
                        headers={"Content-Type": "application/json", "Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
    run = _run(path)
    assert run is not None and run["llm_calls"] == 1


def test_runtrace_show_takes_the_session_id_the_agent_prints(tmp_path: Path) -> None:
    path = tmp_path / "rt.db"
    with Store.open(path) as store:
        for request in log_requests("claude"):
            store.ingest(records_from_events(request))
    done = subprocess.run([sys.executable, "-m", "runtrace.cli", "show", SESSION, "--store", str(path),
                           "--format", "json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert (shown["id"], shown["llm_calls"], shown["tool_calls"], shown["repeated_reads"]) == (SESSION, 7, 5, 1)


def _bash_event(base: Any, n: int) -> Any:
    """The sample's ``git diff --stat`` tool_result again, as call n (a new tool_use_id and time)."""
    attributes = dict(base.attributes)
    attributes[sc.CLAUDE_TOOL_USE_ID] = f"toolu_again_{n}"
    attributes[sc.CLAUDE_EVENT_SEQUENCE] = str(100 + n)
    return type(base)(time_ns=base.time_ns + n * 10**9, name=base.name, attributes=attributes,
                      resource=base.resource, scope_name=base.scope_name, trace_id=None, span_id=None,
                      body=base.body)


@pytest.mark.parametrize("split", [False, True], ids=["one-request", "one-request-each"])
def test_the_same_command_with_the_same_result_three_times_is_a_loop_in_any_requests(
        tmp_path: Path, split: bool) -> None:
    events = [e for request in log_requests("claude") for e in request]
    bash = next(e for e in events if e.name == "tool_result" and e.attributes.get("tool_name") == "Bash")
    extra = [_bash_event(bash, n) for n in (1, 2)]  # git diff --stat 3 times, same size, same success
    with Store.open(tmp_path / "rt.db") as store:
        requests = [[e] for e in [*events, *extra]] if split else [[*events, *extra]]
        for request in reversed(requests):
            store.ingest(records_from_events(request))
        run = get_run(store, SESSION)
    assert run is not None
    assert run["loop_detected"] is True and run["tool_calls"] == 7 and run["repeated_reads"] == 1
    sentences = [e["attributes"].get(sc.LOOP_DESCRIPTION) for s in run["spans"] for e in s.get("events", [])
                 if e["name"] == sc.EVENT_LOOP]
    # Within one request the adapter names the command; the run-wide recount has only hashes.
    assert sentences == (["Bash was called 3 times with the same arguments and returned the same result"] if split
                         else ["Bash(git diff --stat) returned the same result 3 times"])


@pytest.mark.parametrize(("sample", "run_id"), [("codex", "01a230a6-a342-73e0-95cd-d58c49a3a89c"),
                                                 ("gemini-autoedit", "174831ce-e119-40dd-8f8f-edff1096005a")])
def test_codex_and_gemini_split_into_one_event_per_request_keep_their_repeated_reads(
        tmp_path: Path, sample: str, run_id: str) -> None:
    requests = log_requests(sample)
    with Store.open(tmp_path / "whole.db") as store:
        for request in requests:
            store.ingest(records_from_events(request))
        whole = get_run(store, run_id)
    with Store.open(tmp_path / "split.db") as store:
        for event in reversed([e for r in requests for e in r]):
            store.ingest(records_from_events([event]))
        split = get_run(store, run_id)
    assert whole is not None and split is not None
    assert whole["repeated_reads"] == 1
    assert {k: split[k] for k in FIGURES if k in split} == {k: whole[k] for k in FIGURES if k in whole}
