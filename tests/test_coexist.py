"""runtrace next to another GenAI instrumentation in the same process (issue 12).

Each case runs tests/coexist_driver.py in a process of its own (one global
TracerProvider per process; most instrumentors cannot be undone) under a hard
timeout, with the real peer package against a fake endpoint, and checks that
the run counts each request the endpoint received exactly once, at exact
dollars, while the peer's own span of each request is kept in the store,
marked ``runtrace.duplicate_of`` runtrace's span.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = Path(__file__).with_name("coexist_driver.py")
ORDERS = ("peer-first", "runtrace-first")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is absent
        return False


def _needs(module: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not _installed(module),
                              reason=f"{module} is not installed (pip install 'runtrace[peers]')")


def drive(tmp_path: Path, peer: str, order: str, sdk: str) -> dict:
    env = {**os.environ, "TRACELOOP_TELEMETRY": "false", "LOGFIRE_SEND_TO_LOGFIRE": "false",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    env.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
    proc = subprocess.run([sys.executable, str(DRIVER), peer, order, str(tmp_path / "runtrace.db"), sdk],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_counted_once(result: dict, *, requests: int, input_tokens: int, output_tokens: int,
                        cost: float, peer_scope: str, peer_requests: int | None = None) -> None:
    """``peer_requests``: how many of the requests the peer ends a span for (default: all)."""
    run = result["run"]
    assert result["requests"] == requests
    assert (run["llm_calls"], run["unpriced_calls"]) == (requests, 0)
    assert (run["input_tokens"], run["output_tokens"]) == (input_tokens, output_tokens)
    assert run["cost_usd"] == pytest.approx(cost, abs=1e-12)
    ours = [s for s in result["spans"] if s["scope"].startswith("runtrace.instrumentation.")]
    assert len(ours) == requests and all(s["kind"] == "llm" and s["duplicate_of"] is None for s in ours)
    # The peer's spans reached the same store (runtrace joined its provider), marked as
    # duplicates of every runtrace span (Logfire adds a second span per stream, for its reading).
    marked = [s for s in result["spans"] if s["scope"].startswith(peer_scope) and s["duplicate_of"]]
    assert len({s["duplicate_of"] for s in marked}) == (peer_requests or requests) <= len(marked)
    assert all(s["kind"] == "other" for s in marked)


# 5 OpenAI requests (sync, sync stream, async, async stream, sync): 20+20+20+20+100 input,
# 5+3+5+3+10 output; gpt-5.5 at $5/$30 per 1M: 2*0.00025 + 2*0.00019 + 0.0008 = $0.00168.
OPENAI = {"requests": 5, "input_tokens": 180, "output_tokens": 26, "cost": 0.00168}


@_needs("opentelemetry.instrumentation.openai_v2")
@pytest.mark.parametrize("order", ORDERS)
def test_openai_v2(tmp_path: Path, order: str) -> None:
    assert_counted_once(drive(tmp_path, "openai-v2", order, "openai"), **OPENAI,
                        peer_scope="opentelemetry.util.genai")


@_needs("opentelemetry.instrumentation.openai")
@pytest.mark.parametrize("order", ORDERS)
def test_openllmetry_openai(tmp_path: Path, order: str) -> None:
    assert_counted_once(drive(tmp_path, "openllmetry", order, "openai"), **OPENAI,
                        peer_scope="opentelemetry.instrumentation.openai")


@_needs("openinference.instrumentation.openai")
@pytest.mark.parametrize("order", ORDERS)
def test_openinference_sync_stream_is_read_and_priced(tmp_path: Path, order: str) -> None:
    """OpenInference's stream proxy has ``__anext__`` around the sync stream too: still priced."""
    assert_counted_once(drive(tmp_path, "openinference", order, "openai"), **OPENAI,
                        peer_scope="openinference.instrumentation.openai")


@_needs("logfire")
@pytest.mark.parametrize("order", ORDERS)
def test_logfire_configured_first_is_joined(tmp_path: Path, order: str) -> None:
    assert_counted_once(drive(tmp_path, "logfire", order, "openai"), **OPENAI, peer_scope="logfire.openai")


@_needs("pydantic_ai")
@pytest.mark.parametrize("order", ORDERS)
def test_pydantic_ai_agent_instrumentation(tmp_path: Path, order: str) -> None:
    """2 agent runs of one request each (20 in, 5 out at gpt-5.5): 2 calls, $0.0005."""
    result = drive(tmp_path, "pydantic-ai", order, "pydantic-ai")
    assert_counted_once(result, requests=2, input_tokens=40, output_tokens=10, cost=0.0005,
                        peer_scope="pydantic-ai")
    # the agent-run spans are not LLM requests: kept, unmarked, never counted
    agent_runs = [s for s in result["spans"] if s["scope"] == "pydantic-ai" and not s["duplicate_of"]]
    assert len(agent_runs) == 2 and all(s["kind"] == "other" for s in agent_runs)


@_needs("opentelemetry.instrumentation.anthropic")
@pytest.mark.parametrize("order", ORDERS)
def test_openllmetry_anthropic(tmp_path: Path, order: str) -> None:
    """4 Anthropic requests (create, stream=True, messages.stream, beta.messages.stream), 25 in / 10 out
    each at claude-sonnet-4-6 ($3/$15 per 1M): 4 * $0.000225 = $0.0009.

    OpenLLMetry's span is not made current, so runtrace's span is its sibling (runtrace-first),
    and its manager wrapper hid the manager runtrace patches (peer-first: the SDK's own span
    counted instead). Its messages.stream() span never ends (get_final_text() bypasses its
    proxy), so it marks 3 requests: its beta.messages.stream() span, which ends at stream(),
    before runtrace's span starts at __enter__, is marked ``runtrace.call_not_started``.
    """
    result = drive(tmp_path, "openllmetry", order, "anthropic")
    assert_counted_once(result, requests=4, input_tokens=100, output_tokens=40, cost=0.0009,
                        peer_scope="opentelemetry.instrumentation.anthropic", peer_requests=3)
    peer = [s["duplicate_of"] for s in result["spans"] if s["scope"] == "opentelemetry.instrumentation.anthropic"]
    assert len(peer) == 3 and peer.count("runtrace.call_not_started") == 1
    assert not any(s["scope"] == "com.anthropic.sdk.python" for s in result["spans"])


@pytest.mark.parametrize("order", ORDERS[:1])
def test_anthropic_beta_messages_stream_alone(tmp_path: Path, order: str) -> None:
    """No peer: the 4 Anthropic requests, beta.messages.stream() included, are 4 calls, $0.0009."""
    result = drive(tmp_path, "none", order, "anthropic")
    run = result["run"]
    assert result["requests"] == 4
    assert (run["llm_calls"], run["input_tokens"], run["output_tokens"]) == (4, 100, 40)
    assert run["cost_usd"] == pytest.approx(0.0009, abs=1e-12)
