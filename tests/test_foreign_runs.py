"""Runs from outside runtrace (DESIGN 6b), end to end through ``runtrace serve``.

Spans from another SDK carry no ``runtrace.run.id``. Before 6b they were stored
and priced but shown nowhere ("Spend $0.00 · 0 runs", ``/api/runs`` = ``[]``).
Now a trace is a run (named after its root span), and spans that share a
``session.id`` are one run (id = the session id). These tests send real OTel
SDK spans to a real server on 127.0.0.1 and read every place runs appear.

Prices (per million tokens): gpt-4o-mini $0.15 in / $0.60 out, gpt-4o $2.50 / $10.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from runtrace import semconv as sc
from runtrace.report import build_report
from runtrace.server.app import create_app
from runtrace.store.db import Store
from test_adapters import otlp_json
from test_server_support import running_server

TRIAGE_USD = 0.00045  # 1,000 x $0.15/M + 500 x $0.60/M
SESSION_USD = 0.018  # (2,000 x $2.50/M + 100 x $10/M) + (4,000 x $2.50/M + 200 x $10/M)


def _chat(model: str, inp: int, out: int, **extra: Any) -> dict[str, Any]:
    return {sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_PROVIDER_NAME: "openai",
            sc.GEN_AI_REQUEST_MODEL: model, sc.GEN_AI_USAGE_INPUT_TOKENS: inp,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: out, **extra}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """An empty store behind a real server, fed one trace (protobuf) and one two-trace session (JSON)."""
    path = tmp_path / "runtrace.db"
    Store.open(path).close()
    with running_server(create_app(path)) as base:
        # A plain OTel app, no runtrace: one trace = one run, sent by the SDK's own OTLP exporter.
        provider = TracerProvider(resource=Resource.create({sc.SERVICE_NAME: "go-agent", sc.PROJECT: "remote"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces",
                                                                          timeout=10)))
        tracer = provider.get_tracer("other-sdk")
        with tracer.start_as_current_span("triage ticket", attributes={sc.OWNER: "dana"}) as root:
            trace_id = format(root.get_span_context().trace_id, "032x")
            with tracer.start_as_current_span("chat gpt-4o-mini", attributes=_chat("gpt-4o-mini", 1000, 500)):
                pass
            with tracer.start_as_current_span("execute_tool grep", attributes={
                    sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: "grep"}):
                pass
        provider.shutdown()

        # A coding agent's session over two traces (session.id on its resource), as OTLP/JSON.
        memory = InMemorySpanExporter()
        agent = TracerProvider(resource=Resource.create({sc.SERVICE_NAME: "claude-code",
                                                         sc.SESSION_ID: "sess-42"}))
        agent.add_span_processor(SimpleSpanProcessor(memory))
        agent_tracer = agent.get_tracer("agent")
        for turn, (inp, out) in enumerate(((2000, 100), (4000, 200)), start=1):
            with agent_tracer.start_as_current_span(f"turn {turn}"):
                with agent_tracer.start_as_current_span("chat gpt-4o", attributes=_chat("gpt-4o", inp, out)):
                    pass
        agent.shutdown()
        response = httpx.post(f"{base}/v1/traces", content=otlp_json(memory.get_finished_spans()),
                              headers={"Content-Type": "application/json"})
        assert (response.status_code, response.json()) == (200, {})  # no "belongs to no run" warning
        yield base, path, trace_id


def test_api_runs_lists_the_trace_run_and_the_session_run(served: tuple[str, Path, str]) -> None:
    base, _path, trace_id = served
    runs = {r["id"]: r for r in httpx.get(f"{base}/api/runs").json()}
    assert sorted(runs) == sorted([trace_id, "sess-42"])
    triage, session = runs[trace_id], runs["sess-42"]
    assert (triage["name"], triage["project"], triage["owner"], triage["service"], triage["outcome"],
            triage["llm_calls"], triage["tool_calls"], triage["input_tokens"], triage["output_tokens"],
            triage["unpriced_calls"]) == ("triage ticket", "remote", "dana", "go-agent", "open", 1, 1, 1000, 500, 0)
    assert triage["cost_usd"] == pytest.approx(TRIAGE_USD, abs=1e-12)
    assert (session["name"], session["service"], session["outcome"], session["llm_calls"],
            session["input_tokens"], session["output_tokens"]) == ("turn 1", "claude-code", "open", 2, 6000, 300)
    assert session["cost_usd"] == pytest.approx(SESSION_USD, abs=1e-12)
    one = httpx.get(f"{base}/api/runs/{trace_id}").json()
    assert sorted(s["name"] for s in one["spans"]) == ["chat gpt-4o-mini", "execute_tool grep", "triage ticket"]


def test_runs_page_headline_spend_and_search_show_them(served: tuple[str, Path, str]) -> None:
    base, _path, trace_id = served
    page = httpx.get(f"{base}/").text
    assert '<div class="value num" id="h-spend">$0.0185</div>' in page  # 0.00045 + 0.018 = 0.01845
    assert "2 runs" in page
    assert "triage ticket" in page and "turn 1" in page and f"/runs/{trace_id}" in page
    spend = httpx.get(f"{base}/spend", params={"by": "model"}).text
    assert "Nothing to plot" not in spend
    assert "gpt-4o-mini" in spend
    found = httpx.get(f"{base}/search", params={"q": "grep"}).text
    assert f"/runs/{trace_id}" in found and "no run" not in found
    assert httpx.get(f"{base}/runs/sess-42").status_code == 200


def test_metrics_count_them(served: tuple[str, Path, str]) -> None:
    base, _path, _trace_id = served
    lines = set(httpx.get(f"{base}/metrics").text.splitlines())
    assert 'runtrace_runs{project="remote",outcome="open"} 1' in lines
    assert 'runtrace_runs{project="",outcome="open"} 1' in lines
    assert 'runtrace_llm_calls_total{project="remote"} 1' in lines
    assert 'runtrace_llm_calls_total{project=""} 2' in lines
    assert 'runtrace_tool_calls_total{project="remote"} 1' in lines
    costs = {line.split(" ")[0]: float(line.split(" ")[1]) for line in lines
             if line.startswith("runtrace_cost_usd_total{")}
    assert costs == {'runtrace_cost_usd_total{project=""}': pytest.approx(SESSION_USD, abs=1e-12),
                     'runtrace_cost_usd_total{project="remote"}': pytest.approx(TRIAGE_USD, abs=1e-12)}


def test_verdict_and_report_work_on_them(served: tuple[str, Path, str]) -> None:
    base, path, trace_id = served
    answer = httpx.post(f"{base}/api/runs/{trace_id}/outcome",
                        content=json.dumps({"outcome": "accepted", "by": "ci"}),
                        headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    run = httpx.get(f"{base}/api/runs/{trace_id}").json()
    assert (run["outcome"], run["name"]) == ("accepted", "triage ticket")
    with Store.open(path, create=False) as store:
        report = build_report(store, by="project")
    total = report.total
    assert (total.runs, total.accepted, total.llm_calls, total.tool_calls) == (2, 1, 3, 1)
    assert total.cost_usd == pytest.approx(TRIAGE_USD + SESSION_USD, abs=1e-12)
    assert total.cost_per_accepted_run == pytest.approx(TRIAGE_USD + SESSION_USD, abs=1e-12)
    assert {(g.group, g.runs) for g in report.groups} == {("remote", 1), ("(none)", 1)}
