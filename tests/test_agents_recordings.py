"""Sessions recorded with the kit for these tests (tests/fixtures/agents), replayed through `runtrace serve`.

Each recording is a real agent run headless against the kit's scripted fake
model (shared/agent-telemetry/kit): a resumed Claude Code session, a retried
529, a model call that finally failed (HTTP 400), the default redaction
settings, a Codex session in the read-only sandbox with a retried 500, a
resumed Codex session, and a Gemini CLI session. Expected figures are
hand-computed from the fake model's usage script (call k reports input
1100+k uncached, cache write 2200+k, cache read 3300+k, output 440+k,
reasoning 55+k, in each provider's convention) and checked against what the
agent itself printed (``agent.stdout``: Claude's ``total_cost_usd``, Codex's
``turn.completed`` usage, Gemini's ``stats``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import httpx
import pytest
from genai_prices import Usage

from agent_samples import FIXTURES, protobuf_body, raw_requests
from runtrace.server import create_app
from runtrace.store.db import Store
from runtrace.store.queries import get_run, list_runs
from test_server_support import running_server

CLAUDE_MODEL = "claude-opus-4-8"
CODEX_MODEL = "gpt-5-codex"
PROMPT = "read README.md and fix the typo"
RESUME_PROMPT = "check README.md once more"
FIGURES = ("name", "project", "owner", "service", "cost_usd", "agent_cost_usd", "unpriced_calls", "input_tokens", "output_tokens",
           "cached_input_tokens", "reasoning_tokens", "llm_calls", "tool_calls", "refused_tool_calls",
           "repeated_reads", "loop_detected", "errors", "api_errors", "tool_errors")


def _claude_usage(k: int) -> Usage:
    # Anthropic: input_tokens is the uncached part; runtrace's input is all of it.
    return Usage(input_tokens=(1100 + k) + (2200 + k) + (3300 + k), cache_write_tokens=2200 + k,
                 cache_read_tokens=3300 + k, output_tokens=440 + k)


def _codex_usage(k: int) -> Usage:
    # OpenAI: input includes the cached part, output includes reasoning; the fake writes no cache for Codex.
    return Usage(input_tokens=(1100 + k) + (3300 + k), cache_read_tokens=3300 + k, output_tokens=440 + k)


def _price(usages: Iterable[Usage], model: str, provider: str) -> float:
    return float(sum((genai_prices.calc_price(u, model_ref=model, provider_id=provider).total_price
                      for u in usages), Decimal(0)))


def _sums(usages: list[Usage]) -> dict[str, int]:
    return {"input_tokens": sum(u.input_tokens or 0 for u in usages),
            "cached_input_tokens": sum(u.cache_read_tokens or 0 for u in usages),
            "output_tokens": sum(u.output_tokens or 0 for u in usages)}


def _claude(steps: list[int], **figures: Any) -> dict[str, Any]:
    usages = [_claude_usage(k) for k in steps]
    cost = _price(usages, CLAUDE_MODEL, "anthropic")
    return {"project": None, "owner": None, "service": "claude-code", "cost_usd": pytest.approx(cost, abs=1e-9),
            # Claude Code prices at the same list prices: its own figure equals runtrace's here
            "agent_cost_usd": pytest.approx(cost, abs=1e-9) if steps else None,
            "unpriced_calls": 0, **_sums(usages), "reasoning_tokens": 0, "llm_calls": len(steps),
            "loop_detected": False, **figures}


SEVEN = list(range(7))  # read, read again, read a missing file, edit, git diff, touch (refused), answer
# session id (as the agent printed it) -> expected run
EXPECTED: dict[str, tuple[str, dict[str, Any]]] = {
    # two processes: the second (`claude -p ... --resume <id>`) answers at once, its one call at step 6;
    # named by the first prompt, not the resumed one's (RESUME_PROMPT)
    "claude-resume": ("9e6044f2-b6fe-441d-bb6c-a26d2724428b", _claude(
        [*SEVEN, 6], name=PROMPT, tool_calls=5, refused_tool_calls=1, repeated_reads=1,
        errors=1, api_errors=0, tool_errors=1)),
    # the first model call got a 529 and was retried: one call, no error
    "claude-retry": ("28848fec-cd00-4776-862a-96449450c24e", _claude(
        SEVEN, name=PROMPT, tool_calls=5, refused_tool_calls=1, repeated_reads=1,
        errors=1, api_errors=0, tool_errors=1)),
    # every model call answered 400: no LLM call, one API error, nothing priced (and not unpriced)
    "claude-apierror": ("37a40272-3be9-404a-97ef-32234932ba74", _claude(
        [], name=PROMPT, tool_calls=0, refused_tool_calls=0, repeated_reads=0,
        errors=1, api_errors=1, tool_errors=0)),
    # OTEL_RESOURCE_ATTRIBUTES=runtrace.project=billing,runtrace.owner=alice, which Claude Code also
    # copies onto every span and event: the prompt still names the run
    "claude-project": ("d34ec385-a875-4a25-9b18-379204112e9d", _claude(
        SEVEN, name=PROMPT, project="billing", owner="alice", tool_calls=5, refused_tool_calls=1,
        repeated_reads=1, errors=1, api_errors=0, tool_errors=1)),
    # no OTEL_LOG_USER_PROMPTS / OTEL_LOG_TOOL_DETAILS: redacted name, no tool input to compare reads
    "claude-defaults": ("5f555fc0-9719-401d-bc15-d23a55af4c2a", _claude(
        SEVEN, name="Claude Code session", tool_calls=5, refused_tool_calls=1, repeated_reads=0,
        errors=1, api_errors=0, tool_errors=1)),
}


def _codex(steps: list[int], **figures: Any) -> dict[str, Any]:
    usages = [_codex_usage(k) for k in steps]
    return {"project": None, "owner": None, "service": "codex_exec", "cost_usd": pytest.approx(_price(usages, CODEX_MODEL, "openai"), abs=1e-9),
            "agent_cost_usd": None, "unpriced_calls": 0, **_sums(usages),
            "reasoning_tokens": sum(55 + k for k in steps), "llm_calls": len(steps), "loop_detected": False,
            **figures}


EXPECTED.update({
    # `codex exec -s read-only`, first request answered 500 then retried. The sandbox denied the
    # `sed -i` edit (a refused call; its failed attempt is a tool call too); cat of the missing
    # file, the sed and `touch` exited non-zero: three tool errors.
    "codex-readonly": ("01a2316b-e59a-76e0-888d-8b3ebba7238b", _codex(
        SEVEN, name=PROMPT, tool_calls=6, refused_tool_calls=1, repeated_reads=1,
        errors=3, api_errors=0, tool_errors=3)),
    # `codex exec` then `codex exec resume --last`: the same thread, one more call at step 6
    "codex-resume": ("01a2316c-582b-74d2-a99c-b2d6caf0bc83", _codex(
        [*SEVEN, 6], name=PROMPT, tool_calls=6, refused_tool_calls=0, repeated_reads=1,
        errors=1, api_errors=0, tool_errors=1)),
    # `gemini -p -m gemini-2.5-flash --approval-mode auto_edit`: the shell tool is not registered (two
    # failed calls) and the missing file fails too; the fake answers as "gemini-fake": unpriced, never $0.
    "gemini": ("d128c9cc-f3f7-4799-a897-f6679ea8e137", {
        "name": PROMPT, "project": None, "owner": None, "service": "gemini-cli", "cost_usd": 0.0, "agent_cost_usd": None, "unpriced_calls": 7,
        "input_tokens": sum((1100 + k) + (3300 + k) for k in SEVEN), "cached_input_tokens": 23121,
        "output_tokens": sum((440 + k) + (55 + k) for k in SEVEN), "reasoning_tokens": 406, "llm_calls": 7,
        "tool_calls": 6, "refused_tool_calls": 0, "repeated_reads": 1, "loop_detected": False,
        "errors": 3, "api_errors": 0, "tool_errors": 3}),
})

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"recordings not found in {FIXTURES}")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    path = tmp_path / "rt.db"
    Store.open(path).close()
    with running_server(create_app(path)) as base:
        yield base, path


def _replay(base: str, recording: str, protocol: str, signals: tuple[str, ...] = ("metrics", "logs", "traces"),
            ) -> None:
    for signal in signals:
        for body in raw_requests(recording, signal, FIXTURES):
            if "_trimmed" in body:
                continue
            if protocol == "json":
                content, media = json.dumps(body).encode(), "application/json"
            else:
                content, media = protobuf_body(body, signal), "application/x-protobuf"
            response = httpx.post(f"{base}/v1/{signal}", content=content, headers={"Content-Type": media},
                                  timeout=30)
            assert response.status_code == 200, (recording, signal, response.text)


def _figures(path: Path, run_id: str) -> dict[str, Any]:
    with Store.open(path, create=False) as store:
        run = get_run(store, run_id)
    assert run is not None, f"no run {run_id}"
    return {k: run[k] for k in FIGURES}


@pytest.mark.parametrize("protocol", ["json", "protobuf"])
@pytest.mark.parametrize("recording", sorted(EXPECTED))
def test_each_recording_is_one_run_with_exact_figures(serve: tuple[str, Path], recording: str,
                                                      protocol: str) -> None:
    base, path = serve
    run_id, expected = EXPECTED[recording]
    _replay(base, recording, protocol)
    assert _figures(path, run_id) == expected


@pytest.mark.parametrize("protocol", ["json", "protobuf"])
@pytest.mark.parametrize("recording", ["codex-readonly", "codex-resume"])
def test_every_codex_span_is_in_its_sessions_run(serve: tuple[str, Path], recording: str, protocol: str) -> None:
    """Codex spans without conversation.id (thread_id only, or no id: handle_responses, codex.exec) once
    made 4 (readonly) and 8 (resume) unnamed per-trace runs beside the session's."""
    base, path = serve
    run_id, expected = EXPECTED[recording]
    _replay(base, recording, protocol)
    traces = [b for b in raw_requests(recording, "traces", FIXTURES) if "_trimmed" not in b]
    sent = [s for b in traces for rs in b["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    with Store.open(path, create=False) as store:
        runs = list_runs(store)
        in_run = {(row[0], row[1]) for row in store.execute(
            "SELECT trace_id, span_id FROM spans WHERE run_id = ?", (run_id,))}
    assert [(r["id"], r["name"]) for r in runs] == [(run_id, "read README.md and fix the typo")]
    assert len(sent) == {"codex-readonly": 49, "codex-resume": 57}[recording]
    assert {(s["traceId"], s["spanId"]) for s in sent} <= in_run
    assert _figures(path, run_id) == expected


def test_the_same_recording_sent_twice_counts_once(serve: tuple[str, Path]) -> None:
    base, path = serve
    run_id, expected = EXPECTED["claude-resume"]
    _replay(base, "claude-resume", "json")
    _replay(base, "claude-resume", "protobuf", signals=("traces", "logs"))
    assert _figures(path, run_id) == expected


def _stdout_json(recording: str, name: str = "agent.stdout") -> list[Any]:
    """What the agent printed: one JSON document (Claude, Gemini) or JSON lines (`codex exec --json`)."""
    text = (FIXTURES / recording / name).read_text()
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_claude_figures_match_what_claude_code_printed(serve: tuple[str, Path]) -> None:
    """Claude's own total_cost_usd and usage (`--output-format json`) over both processes."""
    base, path = serve
    run_id, _ = EXPECTED["claude-resume"]
    _replay(base, "claude-resume", "json", signals=("logs", "traces"))
    printed = [_stdout_json("claude-resume", "first.json")[0], _stdout_json("claude-resume")[0]]
    assert {p["session_id"] for p in printed} == {run_id}
    run = _figures(path, run_id)
    assert run["agent_cost_usd"] == pytest.approx(sum(p["total_cost_usd"] for p in printed), abs=1e-9)
    assert run["input_tokens"] == sum(p["usage"]["input_tokens"] + p["usage"]["cache_read_input_tokens"]
                                      + p["usage"]["cache_creation_input_tokens"] for p in printed) == 52881
    assert run["output_tokens"] == sum(p["usage"]["output_tokens"] for p in printed) == 3547
    # the -p auto-denial Claude reports as permission_denials: the refusal (from the beta trace)
    assert [d["tool_input"]["command"] for d in printed[0]["permission_denials"]] == ["touch denied.txt"]
    assert run["refused_tool_calls"] == 1


def test_claude_api_error_is_printed_and_counted(serve: tuple[str, Path]) -> None:
    base, path = serve
    run_id, _ = EXPECTED["claude-apierror"]
    _replay(base, "claude-apierror", "json")
    printed = _stdout_json("claude-apierror")[0]
    assert (printed["is_error"], printed["api_error_status"], printed["session_id"]) == (True, 400, run_id)
    with Store.open(path, create=False) as store:
        run = get_run(store, run_id)
    assert run is not None and (run["id"], run["api_errors"]) == (run_id, 1)
    failed = [s for s in run["spans"] if s["status"] == "ERROR" and "runtrace.duplicate_of" not in s["attributes"]]
    assert [(s["name"], s["status"], s["attributes"]["error.type"]) for s in failed] == [
        ("chat claude-opus-4-8[1m]", "ERROR", "400")]


def test_claude_retried_529_is_one_call_and_no_error(serve: tuple[str, Path]) -> None:
    """The beta trace shows two attempts of the first call; the logs one api_request: one call."""
    base, path = serve
    run_id, _ = EXPECTED["claude-retry"]
    _replay(base, "claude-retry", "json")
    with Store.open(path, create=False) as store:
        run = get_run(store, run_id)
    expected = EXPECTED["claude-retry"][1]
    assert run is not None and run["id"] == run_id and {k: run[k] for k in expected} == expected
    attempts = [len([e for e in s.get("events", []) if e["name"] == "gen_ai.request.attempt"])
                for s in run["spans"] if s["name"] == "claude_code.llm_request"]
    assert sorted(attempts, reverse=True)[:2] == [2, 1] and len(attempts) == 7
    assert (run["llm_calls"], run["api_errors"]) == (7, 0)


@pytest.mark.parametrize("recording", ["codex-readonly", "codex-resume"])
def test_codex_figures_match_what_codex_printed(serve: tuple[str, Path], recording: str) -> None:
    """`codex exec --json` prints the thread's cumulative usage at each turn.completed."""
    base, path = serve
    run_id, _ = EXPECTED[recording]
    _replay(base, recording, "protobuf", signals=("logs",))
    events = _stdout_json(recording)
    assert {e["thread_id"] for e in events if e.get("type") == "thread.started"} == {run_id}
    usage = [e["usage"] for e in events if e.get("type") == "turn.completed"][-1]
    run = _figures(path, run_id)
    assert (run["input_tokens"], run["cached_input_tokens"], run["output_tokens"], run["reasoning_tokens"]) == (
        usage["input_tokens"], usage["cached_input_tokens"], usage["output_tokens"],
        usage["reasoning_output_tokens"])


def test_gemini_figures_match_what_gemini_printed(serve: tuple[str, Path]) -> None:
    base, path = serve
    run_id, _ = EXPECTED["gemini"]
    _replay(base, "gemini", "json", signals=("logs",))
    stats = _stdout_json("gemini")[0]["stats"]
    tokens = stats["models"]["gemini-fake"]["tokens"]
    run = _figures(path, run_id)
    assert (run["llm_calls"], run["input_tokens"], run["cached_input_tokens"]) == (
        stats["models"]["gemini-fake"]["api"]["totalRequests"], tokens["prompt"], tokens["cached"])
    assert (run["output_tokens"], run["reasoning_tokens"]) == (tokens["candidates"] + tokens["thoughts"],
                                                               tokens["thoughts"])
    assert (run["tool_calls"], run["tool_errors"]) == (stats["tools"]["totalCalls"], stats["tools"]["totalFail"])


def test_errors_in_runs_json_over_the_cli(serve: tuple[str, Path]) -> None:
    """`runtrace runs --format json` carries errors, api_errors and tool_errors beside the DESIGN 8 fields."""
    import subprocess
    import sys

    base, path = serve
    for recording in ("claude-apierror", "gemini"):
        _replay(base, recording, "json", signals=("logs",))
    done = subprocess.run([sys.executable, "-m", "runtrace.cli", "runs", "--store", str(path), "--format", "json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    runs = {r["id"]: r for r in json.loads(done.stdout)}
    assert {k: (r["errors"], r["api_errors"], r["tool_errors"], r["llm_calls"]) for k, r in runs.items()} == {
        EXPECTED["claude-apierror"][0]: (1, 1, 0, 0), EXPECTED["gemini"][0]: (3, 0, 3, 7)}
    with Store.open(path, create=False) as store:
        assert len(list_runs(store, limit=0)) == 2


def test_m006_counts_the_errors_of_runs_stored_before_it(tmp_path: Path) -> None:
    """A store written just before m006 (no error columns) gets its runs' errors from their spans."""
    import sqlite3

    from agent_samples import log_requests
    from runtrace.agents import records_from_events
    from runtrace.store import migrations

    path = tmp_path / "old.db"
    with Store.open(path) as store:
        for recording in ("gemini", "claude-apierror", "claude-retry"):
            for request in log_requests(recording, FIXTURES):
                store.ingest(records_from_events(request))
    conn = sqlite3.connect(path, isolation_level=None)
    try:  # back to the schema before m006
        conn.execute("ALTER TABLE runs DROP COLUMN api_errors")
        conn.execute("ALTER TABLE runs DROP COLUMN tool_errors")
        conn.execute(f"PRAGMA user_version = {migrations.MIGRATIONS.index(migrations.m006_run_errors):d}")
    finally:
        conn.close()
    with Store.open(path) as store:
        runs = {r["id"]: (r["api_errors"], r["tool_errors"]) for r in list_runs(store, limit=0)}
    assert runs == {EXPECTED["gemini"][0]: (0, 3), EXPECTED["claude-apierror"][0]: (1, 0),
                    EXPECTED["claude-retry"][0]: (0, 1)}


def _gemini_tool_events() -> list[Any]:
    from agent_samples import log_requests

    return [e for request in log_requests("gemini", FIXTURES) for e in request if e.name == "gemini_cli.tool_call"]


def _again(event: Any, n: int) -> Any:
    """The same Gemini tool call made again n minutes later (a new call id)."""
    import dataclasses

    attributes = {**event.attributes, "gen_ai.tool.call.id": f"again-{n}", "call_id": f"again-{n}"}
    return dataclasses.replace(event, time_ns=event.time_ns + n * 60 * 10**9, attributes=attributes)


@pytest.mark.parametrize("split", [False, True], ids=["one-request", "one-request-each"])
def test_gemini_reads_across_requests_are_compared_by_path_version(tmp_path: Path, split: bool) -> None:
    """Gemini sends no file content: a read_file after an edit of the same path (sent in another
    request) is a new read, an unchanged re-read in another request a repeated read."""
    from runtrace.agents import records_from_events

    events = _gemini_tool_events()
    read = next(e for e in events if e.attributes["function_name"] == "read_file" and e.attributes["success"]
                and "README.md" in e.attributes["function_args"])
    edit = next(e for e in events if e.attributes["function_name"] == "replace")
    # the recording (read, read again, missing file, edit, 2 failed shell calls), then README.md read
    # after the edit (new), and once more (a repeat): 2 repeated reads in all
    session = [*events, _again(read, 10), _again(read, 11)]
    assert edit.time_ns < session[-2].time_ns
    requests = [[e] for e in session] if split else [session]
    with Store.open(tmp_path / "rt.db") as store:
        for request in reversed(requests):
            store.ingest(records_from_events(request))
        run = get_run(store, EXPECTED["gemini"][0])
    assert run is not None and run["id"] == EXPECTED["gemini"][0]
    assert (run["tool_calls"], run["repeated_reads"], run["loop_detected"]) == (8, 2, False)
    flagged = [s["end"] for s in run["spans"] if s["attributes"].get("runtrace.tool.repeated_read")]
    assert len(flagged) == 2
