"""OTLP-only OpenLLMetry anthropic (no runtrace in the process): its span and the SDK's are siblings.

anthropic 2.14 traces itself (scope ``com.anthropic.sdk.python``, span
``anthropic.messages.create``), and OpenLLMetry's ``anthropic.chat`` is not its
parent but its sibling: both are children of the app's span, both carry usage.
The innermost rule (store/innermost.py) only drops an outer span, so before the
sibling rule (store/siblings.py) the run counted both: 4 requests gave 7 calls
(OpenLLMetry records 3 of the 4; its ``beta.messages.stream()`` span reports 0
tokens and ends before the SDK's span of that request starts, its stream=True
span 11 output tokens for the SDK's 10). Now the SDK's own span of each
request counts and OpenLLMetry's stays in the trace, uncounted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.instrumentation.anthropic")

_DRIVER = r"""
import json, os, sys
os.environ["TRACELOOP_TELEMETRY"] = "false"
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
AnthropicInstrumentor().instrument()
from coexist_driver import anthropic_fake, anthropic_requests
from runtrace.store.db import Store
from runtrace.store.queries import get_run
from runtrace.store.sdk_adapter import records_from_sdk
fake = anthropic_fake()
with trace.get_tracer("app").start_as_current_span("agent") as root:
    anthropic_requests(fake)
spans = exporter.get_finished_spans()
with Store.open(sys.argv[1]) as store:
    store.ingest(records_from_sdk(spans))
    run = get_run(store, format(root.get_span_context().trace_id, "032x"))
print(json.dumps({"requests": len(fake.requests), "scopes": sorted(s.instrumentation_scope.name for s in spans),
                  "parents": len({s.parent.span_id for s in spans if s.parent is not None}),
                  "run": {k: run[k] for k in ("llm_calls", "input_tokens", "output_tokens", "cost_usd",
                                               "unpriced_calls")},
                  "counted": sorted([s["name"], s["counted"], s["input_tokens"], s["output_tokens"]]
                                    for s in run["spans"] if s["kind"] == "llm")}))
"""


def _drive(tmp_path: Path) -> dict[str, object]:
    tests = Path(__file__).resolve().parent
    done = subprocess.run([sys.executable, "-c", _DRIVER, str(tmp_path / "rt.db")], capture_output=True,
                          text=True, timeout=120, cwd=tests,
                          env={**os.environ,
                               "PYTHONPATH": f"{tests.parent / 'src'}{os.pathsep}{tests}"})
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_openllmetry_and_the_sdk_span_are_siblings(tmp_path: Path) -> None:
    """Why the innermost rule cannot help: no LLM span is below another (4 requests of 25 in, 10 out)."""
    result = _drive(tmp_path)
    assert result["requests"] == 4
    assert result["scopes"] == ["app"] + ["com.anthropic.sdk.python"] * 4 + [
        "opentelemetry.instrumentation.anthropic"] * 3
    assert result["parents"] == 1  # every LLM span a child of the app's span: siblings, none nested


def test_each_request_counted_once(tmp_path: Path) -> None:
    """4 requests of 25 in, 10 out (the fake's replies) to claude-sonnet-4-6 ($3 in, $15 out per million):
    4 calls, 100 in, 40 out, 4 x $0.000225. Before the sibling rule: 7 calls, 150 in, 61 out."""
    result = _drive(tmp_path)
    assert result["requests"] == 4
    assert result["run"] == {"llm_calls": 4, "input_tokens": 4 * 25, "output_tokens": 4 * 10,
                             "cost_usd": 0.0009, "unpriced_calls": 0}
    # the SDK's own span of each request counts; OpenLLMetry's stay in the trace, uncounted
    assert result["counted"] == [["anthropic.chat", False, 0, 0], ["anthropic.chat", False, 25, 10],
                                 ["anthropic.chat", False, 25, 11]] + [["anthropic.messages.create", True, 25, 10]] * 4
