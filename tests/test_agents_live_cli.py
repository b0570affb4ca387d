"""A real Codex CLI and a real Gemini CLI session, set up with ``runtrace agents setup``, into a real ``runtrace serve``.

Like the live Claude Code test (tests/test_agents_live.py): the kit
(shared/agent-telemetry/kit) runs the agent headless inside a loopback-only
network namespace (``unshare -n -m``, root) against its scripted fake model,
with ``runtrace serve`` as the OTLP receiver in the same namespace
(``OTLP_SERVER``). Inside the namespace the agent is pointed at runtrace by
``runtrace agents setup AGENT --details --write`` (what README's "Coding agents"
section tells a user to run) plus ``OTEL_RESOURCE_ATTRIBUTES`` for the project
and owner, which the setup prints for both agents.

The run read back is compared with a hand count of what the fake model served
(its usage script: call k = 0..6 has input 1100+k, cache read 3300+k, output
440+k, reasoning 55+k) and with what the agent printed itself. Skipped, saying
why, when the kit, the agent or unshare is absent; every subprocess has a hard timeout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest
from genai_prices import Usage

from runtrace import semconv as sc
from runtrace.store.db import Store
from runtrace.store.queries import get_run
from test_agents_live import KIT, KIT_WORK, _env, _shim, skip_unless_agent

PROMPT = "read README.md and fix the typo"
STEPS = range(7)  # read, read again, read a missing file, edit, git diff, touch, answer
FIGURES = ("id", "name", "project", "owner", "service", "llm_calls", "input_tokens", "cached_input_tokens",
           "output_tokens", "reasoning_tokens", "tool_calls", "refused_tool_calls", "repeated_reads",
           "tool_errors", "api_errors", "unpriced_calls", "loop_detected")

# What runs inside the namespace: wait for runtrace serve, set the agent up as a user would, run it.
_SCRIPT = """#!/usr/bin/env bash
set -u
for _ in $(seq 1 150); do (echo > /dev/tcp/127.0.0.1/4318) 2>/dev/null && break; sleep 0.2; done
runtrace agents setup {agent} --project billing --owner alice --details --write \
  >"$CAPTURE_DIR/setup.stdout" 2>"$CAPTURE_DIR/setup.stderr" || exit 97
export OTEL_RESOURCE_ATTRIBUTES=runtrace.project=billing,runtrace.owner=alice
exec {command}
"""


def _live_session(tmp_path: Path, agent: str, label: str, command: str) -> tuple[str, str, Path]:
    """Run one session through the kit: (agent stdout, runtrace serve's log, the store). Cleans the kit's folders.

    Skips, saying why, when the kit, the agent or unshare is absent.
    """
    runner = f"run_{agent}.sh"
    skip_unless_agent(agent, runner, label)
    name = f"runtrace-live-{agent}-{os.getpid()}"
    store = tmp_path / "rt.db"
    bin_dir = _shim(tmp_path / "bin")
    script = tmp_path / "live.sh"
    script.write_text(_SCRIPT.format(agent=agent, command=command))
    env = _env(bin_dir, AGENT_KIT_WORK=str(KIT_WORK), AGENT_TIMEOUT="180", FLUSH_WAIT="4",
               CMD=f"bash {script}", OTLP_SERVER=f"{bin_dir / 'runtrace'} serve --port 4318 --store {store}")
    captured = KIT_WORK / "captured" / name
    try:
        done = subprocess.run(["bash", str(KIT / runner), name], capture_output=True, text=True,
                              timeout=420, env=env, cwd=tmp_path)

        def read(file: str) -> str:
            return (captured / file).read_text() if (captured / file).exists() else ""

        stdout, log = read("agent.stdout"), read("otlp_server.log")
        assert "agent rc=0" in done.stdout, (done.stdout, done.stderr, stdout, read("agent.stderr"),
                                             read("setup.stderr"), log)
        return stdout, log, store
    finally:
        for folder in ("captured", "scratch", "home"):
            shutil.rmtree(KIT_WORK / folder / name, ignore_errors=True)


def _subjects(run: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """(span name, what it acted on: the arguments the timeline row and the panel show) of each executed tool call."""
    return [(s["name"], json.loads(s["attributes"].get(sc.GEN_AI_TOOL_CALL_ARGUMENTS) or "{}"))
            for s in sorted(run["spans"], key=lambda s: s["start"]) if s["kind"] == "tool"]


def _run(store: Path, run_id: str, log: str) -> dict[str, Any]:
    with Store.open(store, create=False) as opened:
        run = get_run(opened, run_id)
    assert run is not None, (run_id, log)
    return run


@pytest.mark.slow
def test_a_live_codex_session_is_a_run_in_runtrace_serve(tmp_path: Path) -> None:
    stdout, log, store = _live_session(
        tmp_path, "codex", "Codex CLI",
        f'codex exec --json --skip-git-repo-check --dangerously-bypass-approvals-and-sandbox "{PROMPT}"')
    printed = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    thread = next(p["thread_id"] for p in printed if p.get("type") == "thread.started")
    run = _run(store, thread, log)
    # OpenAI's convention (runtrace's): input includes the cached part; the fake writes no cache for Codex.
    usages = [Usage(input_tokens=(1100 + k) + (3300 + k), cache_read_tokens=3300 + k, output_tokens=440 + k)
              for k in STEPS]
    assert {k: run[k] for k in FIGURES} == {
        "id": thread, "name": PROMPT, "project": "billing", "owner": "alice", "service": "codex_exec",
        "llm_calls": 7, "input_tokens": sum(u.input_tokens or 0 for u in usages),
        "cached_input_tokens": sum(u.cache_read_tokens or 0 for u in usages),
        "output_tokens": sum(u.output_tokens or 0 for u in usages), "reasoning_tokens": sum(55 + k for k in STEPS),
        # cat README.md, cat README.md again (a repeated read: same command, same output), cat of the
        # missing file (exit 1: the one tool error), the sed edit, git diff --stat, touch (full access: ran)
        "tool_calls": 6, "refused_tool_calls": 0, "repeated_reads": 1, "tool_errors": 1, "api_errors": 0,
        "unpriced_calls": 0, "loop_detected": False}
    cost = float(sum((genai_prices.calc_price(u, model_ref="gpt-5-codex", provider_id="openai").total_price
                      for u in usages), Decimal(0)))
    assert run["cost_usd"] == pytest.approx(cost, abs=1e-9)
    assert run["agent_cost_usd"] is None  # Codex reports no cost
    assert _subjects(run) == [("execute_tool exec_command", {"command": command}) for command in (
        "cat README.md", "cat README.md", "cat CONTRIBUTING.md", "sed -i 's/teh/the/' README.md",
        "git diff --stat", "touch denied.txt")]
    # What Codex itself printed at the end of the turn: the same tokens.
    usage = next(p["usage"] for p in printed if p.get("type") == "turn.completed")
    assert (usage["input_tokens"], usage["cached_input_tokens"], usage["output_tokens"],
            usage["reasoning_output_tokens"]) == (run["input_tokens"], run["cached_input_tokens"],
                                                  run["output_tokens"], run["reasoning_tokens"])


@pytest.mark.slow
def test_a_live_gemini_cli_session_is_a_run_in_runtrace_serve(tmp_path: Path) -> None:
    stdout, log, store = _live_session(
        tmp_path, "gemini", "Gemini CLI",
        f'gemini -p "{PROMPT}" --output-format json --approval-mode auto_edit -m gemini-2.5-flash')
    printed = json.loads(stdout)
    session = printed["session_id"]
    run = _run(store, session, log)
    assert {k: run[k] for k in FIGURES} == {
        "id": session, "name": PROMPT, "project": "billing", "owner": "alice", "service": "gemini-cli",
        "llm_calls": 7,
        # Gemini's prompt count includes the cached part; its thoughts come beside the candidates
        # and runtrace's output includes them: 3101 + 406.
        "input_tokens": sum((1100 + k) + (3300 + k) for k in STEPS), "cached_input_tokens": 23121,
        "output_tokens": sum((440 + k) + (55 + k) for k in STEPS), "reasoning_tokens": 406,
        # read_file x3 (the second a repeated read, the third a missing file), replace, and two
        # run_shell_command calls that fail (auto_edit does not register the shell tool): 3 tool errors
        "tool_calls": 6, "refused_tool_calls": 0, "repeated_reads": 1, "tool_errors": 3, "api_errors": 0,
        # the fake answers as "gemini-fake", a model no price list knows: unpriced, never $0 a call
        "unpriced_calls": 7, "loop_detected": False}
    assert run["cost_usd"] == 0.0 and run["agent_cost_usd"] is None
    scratch = KIT_WORK / "scratch" / f"runtrace-live-gemini-{os.getpid()}"
    readme, missing = {"file_path": f"{scratch}/README.md"}, {"file_path": f"{scratch}/CONTRIBUTING.md"}
    assert _subjects(run) == [
        ("execute_tool read_file", readme), ("execute_tool read_file", readme), ("execute_tool read_file", missing),
        ("execute_tool replace", readme), ("execute_tool run_shell_command", {"command": "git diff --stat"}),
        ("execute_tool run_shell_command", {"command": "touch denied.txt"})]
    # What Gemini itself printed: the same calls, tokens and tool calls.
    model = printed["stats"]["models"]["gemini-fake"]
    assert (model["api"]["totalRequests"], model["tokens"]["prompt"], model["tokens"]["cached"],
            model["tokens"]["candidates"] + model["tokens"]["thoughts"], printed["stats"]["tools"]["totalCalls"],
            printed["stats"]["tools"]["totalFail"]) == (
        run["llm_calls"], run["input_tokens"], run["cached_input_tokens"], run["output_tokens"],
        run["tool_calls"], run["tool_errors"])
