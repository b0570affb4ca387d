"""A real Claude Code session, set up with the README's one command, into a real `runtrace serve`.

The kit (shared/agent-telemetry/kit) runs ``claude -p`` headless inside a
loopback-only network namespace (``unshare -n -m``, root) against its scripted
fake model, with ``runtrace serve`` as the OTLP receiver in the same namespace
(``OTLP_SERVER``). The agent is pointed at runtrace by exactly the line the
README shows under "Point Claude Code at runtrace". Skipped, saying why, when
the kit, the agent binary or unshare is not available (CI need not install the
agents); every step runs under a hard timeout.

The README line itself is also checked without the agent: it must export the
variables Claude Code reads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest
from genai_prices import Usage

from runtrace.store.db import Store
from runtrace.store.queries import get_run

ROOT = Path(__file__).resolve().parent.parent
KIT = Path(os.environ.get("RUNTRACE_AGENT_KIT", "/work/shared/agent-telemetry/kit"))
KIT_WORK = Path(os.environ.get("AGENT_KIT_WORK", Path.home() / ".cache" / "agent-kit"))
MODEL = "claude-opus-4-8"  # what Claude Code 2.1.197 asks for by default; the fake answers as it


def readme_setup_line() -> str:
    """The one command of README's "Point Claude Code at runtrace"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Point Claude Code at runtrace", 1)
    assert len(section) == 2, "README has no 'Point Claude Code at runtrace' section"
    lines = [line.strip() for line in section[1].split("\n#", 1)[0].splitlines()
             if line.strip().startswith('eval "$(runtrace agents setup claude')]
    assert len(lines) == 1, lines
    return lines[0]


def _shim(directory: Path) -> Path:
    """A ``runtrace`` command that runs this checkout's runtrace (the README calls it by name)."""
    directory.mkdir(parents=True, exist_ok=True)
    shim = directory / "runtrace"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m runtrace.cli "$@"\n')
    shim.chmod(0o755)
    return directory


def _env(bin_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def test_the_readme_line_exports_what_claude_code_reads(tmp_path: Path) -> None:
    line = readme_setup_line()
    done = subprocess.run(["bash", "-c", f"set -e; {line}; env"], capture_output=True, text=True, timeout=120,
                          env=_env(_shim(tmp_path / "bin")), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    env = dict(x.split("=", 1) for x in done.stdout.splitlines() if "=" in x)
    project = re.search(r"--project (\S+)", line)
    owner = re.search(r"--owner (\S+)", line)
    assert project is not None and owner is not None
    assert {k: env.get(k) for k in ("CLAUDE_CODE_ENABLE_TELEMETRY", "OTEL_LOGS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
                                    "OTEL_LOG_TOOL_DETAILS", "OTEL_RESOURCE_ATTRIBUTES")} == {
        "CLAUDE_CODE_ENABLE_TELEMETRY": "1", "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_LOG_TOOL_DETAILS": "1",
        "OTEL_RESOURCE_ATTRIBUTES": f"runtrace.project={project.group(1)},runtrace.owner={owner.group(1)}"}
    assert "privacy: OTEL_LOG_TOOL_DETAILS" in done.stderr  # the trade-off, on stderr, not eval'd


def _skip_unless_kit() -> Path:
    return skip_unless_agent("claude", "run_claude.sh", "Claude Code")


def skip_unless_agent(binary: str, runner: str, label: str) -> Path:
    """The agent's binary in the kit's work folder; skips, saying why, when the kit, the agent or unshare is absent."""
    if not (KIT / runner).exists() or not (KIT / "netns_run.sh").exists():
        pytest.skip(f"agent kit not found at {KIT} (set RUNTRACE_AGENT_KIT)")
    agent = KIT_WORK / "node_modules" / ".bin" / binary
    if not agent.exists():
        pytest.skip(f"{label} not installed in {KIT_WORK} (run {KIT}/install.sh; set AGENT_KIT_WORK)")
    if not (KIT_WORK / "venv" / "bin" / "python").exists():
        pytest.skip(f"the kit's venv is missing in {KIT_WORK} (run {KIT}/install.sh)")
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("unshare or ip not available: the kit needs a loopback-only network namespace")
    probe = subprocess.run(["unshare", "-n", "-m", "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"unshare -n -m is not permitted here (needs root): {probe.stderr.strip()}")
    return agent


def _expected_cost() -> float:
    return float(sum((genai_prices.calc_price(
        Usage(input_tokens=(1100 + k) + (2200 + k) + (3300 + k), cache_write_tokens=2200 + k,
              cache_read_tokens=3300 + k, output_tokens=440 + k),
        model_ref=MODEL, provider_id="anthropic").total_price for k in range(7)), Decimal(0)))


def test_a_live_claude_code_session_is_a_run_in_runtrace_serve(tmp_path: Path) -> None:
    _skip_unless_kit()
    name = f"runtrace-live-{os.getpid()}"
    store = tmp_path / "rt.db"
    bin_dir = _shim(tmp_path / "bin")
    script = tmp_path / "live.sh"
    # Wait for runtrace serve (started by the kit inside the namespace), point Claude Code at it
    # with the README's line, run one headless session.
    script.write_text(f"""#!/usr/bin/env bash
set -u
for _ in $(seq 1 150); do (echo > /dev/tcp/127.0.0.1/4318) 2>/dev/null && break; sleep 0.2; done
{readme_setup_line()}
exec claude -p "read README.md and fix the typo" --output-format json --allowedTools "Read,Edit,Bash(git diff:*)"
""")
    env = _env(bin_dir, AGENT_KIT_WORK=str(KIT_WORK), AGENT_TIMEOUT="180", FLUSH_WAIT="4",
               CMD=f"bash {script}", OTLP_SERVER=f"{bin_dir / 'runtrace'} serve --port 4318 --store {store}")
    try:
        done = subprocess.run(["bash", str(KIT / "run_claude.sh"), name], capture_output=True, text=True,
                              timeout=420, env=env, cwd=tmp_path)
        captured = KIT_WORK / "captured" / name
        stdout = (captured / "agent.stdout").read_text() if (captured / "agent.stdout").exists() else ""
        server_log = (captured / "otlp_server.log").read_text() if (captured / "otlp_server.log").exists() else ""
        assert "agent rc=0" in done.stdout, (done.stdout, done.stderr, stdout, server_log)
        printed = json.loads(stdout)
        session = printed["session_id"]
        with Store.open(store, create=False) as opened:
            run = get_run(opened, session)
        assert run is not None, (session, server_log)
        cost = _expected_cost()
        assert {k: run[k] for k in ("id", "name", "project", "owner", "service", "llm_calls", "input_tokens",
                                    "cached_input_tokens", "output_tokens", "tool_calls", "refused_tool_calls",
                                    "repeated_reads", "tool_errors", "api_errors", "unpriced_calls")} == {
            "id": session, "name": "read README.md and fix the typo", "project": "billing", "owner": "alice",
            "service": "claude-code", "llm_calls": 7, "input_tokens": 46263, "cached_input_tokens": 23121,
            "output_tokens": 3101, "tool_calls": 5, "refused_tool_calls": 1, "repeated_reads": 1,
            "tool_errors": 1, "api_errors": 0, "unpriced_calls": 0}
        assert run["cost_usd"] == pytest.approx(cost, abs=1e-9)
        assert run["agent_cost_usd"] == pytest.approx(printed["total_cost_usd"], abs=1e-9)
    finally:
        shutil.rmtree(KIT_WORK / "captured" / name, ignore_errors=True)
        shutil.rmtree(KIT_WORK / "scratch" / name, ignore_errors=True)
        shutil.rmtree(KIT_WORK / "home" / name, ignore_errors=True)
