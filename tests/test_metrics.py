"""runtrace's metrics: exact data points through an InMemoryMetricReader and a real OTLP receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import runtrace
from runtrace import metrics, semconv

SRC = Path(__file__).parent.parent / "src"

MODEL = "gpt-4o-mini"
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"


@pytest.fixture
def reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemoryMetricReader]:
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    memory = InMemoryMetricReader()
    runtrace.uninstrument()
    runtrace.instrument(service_name="metered-agent", store=tmp_path / "runtrace.db", metric_readers=(memory,))
    try:
        yield memory
    finally:
        runtrace.uninstrument()


def collect(reader: InMemoryMetricReader) -> dict[str, Any]:
    """{metric name: Metric} of everything the reader holds now."""
    data = reader.get_metrics_data()
    found: dict[str, Any] = {}
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            assert scope_metrics.scope.name == "runtrace"
            for metric in scope_metrics.metrics:
                found[metric.name] = metric
    return found


def by_attributes(metric: Any) -> dict[frozenset, Any]:
    return {frozenset(p.attributes.items()): p for p in metric.data.data_points}


def key(**attributes: Any) -> frozenset:
    return frozenset(attributes.items())


def llm_call(**overrides: Any) -> None:
    values: dict[str, Any] = dict(
        operation=semconv.OP_CHAT, provider=semconv.PROVIDER_OPENAI, request_model=MODEL,
        response_model=RESPONSE_MODEL, input_tokens=1200, output_tokens=300, duration_s=0.5,
        error_type=None, cost_usd=0.00036, project="billing", owner="alice")
    values.update(overrides)
    metrics.record_llm_call(**values)


def test_llm_calls_record_token_usage_and_duration_as_the_semantic_conventions_define(reader):
    llm_call()
    llm_call(input_tokens=3000, output_tokens=5, duration_s=1.5, cost_usd=0.0009)
    found = collect(reader)

    usage = found[semconv.METRIC_TOKEN_USAGE]
    assert usage.unit == "{token}"
    common = {semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_PROVIDER_NAME: "openai",
              semconv.GEN_AI_REQUEST_MODEL: MODEL, semconv.GEN_AI_RESPONSE_MODEL: RESPONSE_MODEL}
    points = by_attributes(usage)
    assert set(points) == {key(**common, **{semconv.GEN_AI_TOKEN_TYPE: "input"}),
                           key(**common, **{semconv.GEN_AI_TOKEN_TYPE: "output"})}
    inputs = points[key(**common, **{semconv.GEN_AI_TOKEN_TYPE: "input"})]
    outputs = points[key(**common, **{semconv.GEN_AI_TOKEN_TYPE: "output"})]
    assert tuple(inputs.explicit_bounds) == semconv.TOKEN_USAGE_BUCKETS
    assert (inputs.count, inputs.sum, inputs.min, inputs.max) == (2, 4200, 1200, 3000)
    # 1200 and 3000 both fall in (1024, 4096]; 300 in (256, 1024]; 5 in (4, 16].
    assert list(inputs.bucket_counts) == [0] * 6 + [2] + [0] * 8
    assert (outputs.count, outputs.sum) == (2, 305)
    assert list(outputs.bucket_counts) == [0, 0, 1, 0, 0, 1] + [0] * 9

    duration = found[semconv.METRIC_OPERATION_DURATION]
    assert duration.unit == "s"
    (point,) = duration.data.data_points
    assert dict(point.attributes) == common
    assert tuple(point.explicit_bounds) == semconv.DURATION_BUCKETS
    assert (point.count, point.sum, point.min, point.max) == (2, 2.0, 0.5, 1.5)
    # 0.5 in (0.32, 0.64]; 1.5 in (1.28, 2.56].
    assert list(point.bucket_counts) == [0] * 6 + [1, 0, 1] + [0] * 6

    cost = found[semconv.METRIC_COST]
    assert cost.unit == "USD" and cost.data.is_monotonic
    (point,) = cost.data.data_points
    assert dict(point.attributes) == {semconv.PROJECT: "billing", semconv.OWNER: "alice",
                                      semconv.GEN_AI_REQUEST_MODEL: MODEL,
                                      semconv.GEN_AI_PROVIDER_NAME: "openai"}
    assert point.value == 0.00036 + 0.0009


def test_failed_and_unpriced_calls_record_only_what_is_known(reader):
    llm_call(input_tokens=None, output_tokens=None, duration_s=0.03, error_type="APITimeoutError",
             cost_usd=None, response_model=None, project=None, owner=None)
    metrics.record_llm_call(operation=semconv.OP_CHAT, provider="anthropic", request_model="claude-x",
                            response_model="claude-x", input_tokens=10, output_tokens=2, duration_s=0.2,
                            error_type=None, cost_usd=None, project="lab", owner=None)
    found = collect(reader)

    (failed, ok) = sorted(found[semconv.METRIC_OPERATION_DURATION].data.data_points,
                          key=lambda p: p.sum)
    assert dict(failed.attributes) == {semconv.GEN_AI_OPERATION_NAME: "chat",
                                       semconv.GEN_AI_PROVIDER_NAME: "openai",
                                       semconv.GEN_AI_REQUEST_MODEL: MODEL,
                                       semconv.ERROR_TYPE: "APITimeoutError"}
    assert (failed.count, failed.sum) == (1, 0.03)
    assert (ok.count, ok.sum) == (1, 0.2)
    # No usage reported, nothing recorded for the failed call; an unpriced call is never a $0 cost.
    usage = by_attributes(found[semconv.METRIC_TOKEN_USAGE])
    assert {dict(k)[semconv.GEN_AI_PROVIDER_NAME] for k in usage} == {"anthropic"}
    assert sorted(p.sum for p in usage.values()) == [2, 10]
    assert semconv.METRIC_COST not in found


def test_runs_by_outcome_budget_stops_and_loops(reader):
    @runtrace.tool
    def read_file(path: str) -> str:
        return "unchanged"

    with runtrace.run("accepted", project="billing", owner="alice") as run:
        run.accept()
    with runtrace.run("no verdict", project="billing", owner="alice"):
        pass
    with pytest.raises(ValueError), runtrace.run("crashes", project="billing"):
        raise ValueError("boom")
    with pytest.raises(runtrace.BudgetExceeded), \
            runtrace.run("stopped", project="billing", owner="bob", budget=runtrace.Budget(max_tool_calls=1)):
        read_file("a.txt")
        read_file("b.txt")
    with runtrace.run("warned", project="billing", budget=runtrace.Budget(max_tool_calls=1, on_exceed="warn")):
        read_file("a.txt")
        read_file("b.txt")  # over the limit, but warn lets it through: not a stop
    with runtrace.run("looping", project="billing", owner="alice") as run:
        for _ in range(4):  # the same call with the same result: detected once, at the third
            read_file("a.txt")
        run.reject("went round in circles")

    found = collect(reader)
    runs = {k: p.value for k, p in by_attributes(found[semconv.METRIC_RUNS]).items()}
    assert found[semconv.METRIC_RUNS].unit == "{run}"
    alice = {semconv.PROJECT: "billing", semconv.OWNER: "alice"}
    assert runs == {
        key(**{semconv.RUN_OUTCOME: "accepted"}, **alice): 1,
        key(**{semconv.RUN_OUTCOME: "open"}, **alice): 1,
        key(**{semconv.RUN_OUTCOME: "error", semconv.PROJECT: "billing"}): 1,
        key(**{semconv.RUN_OUTCOME: "budget_stopped", semconv.PROJECT: "billing", semconv.OWNER: "bob"}): 1,
        key(**{semconv.RUN_OUTCOME: "open", semconv.PROJECT: "billing"}): 1,
        key(**{semconv.RUN_OUTCOME: "rejected"}, **alice): 1,
    }
    stops = {k: p.value for k, p in by_attributes(found[semconv.METRIC_BUDGET_STOPS]).items()}
    assert stops == {key(**{semconv.RUN_STOP_REASON: "max_tool_calls", semconv.PROJECT: "billing",
                            semconv.OWNER: "bob"}): 1}
    loops = {k: p.value for k, p in by_attributes(found[semconv.METRIC_LOOPS]).items()}
    assert loops == {key(**{semconv.LOOP_KIND: "same_call"}, **alice): 1}


def test_nothing_is_recorded_after_uninstrument(reader):
    llm_call()
    runtrace.uninstrument()
    assert runtrace._state.current() is None  # the state holding the meters is swapped out
    llm_call()  # a no-op, not an error
    with runtrace.run("after"):
        pass


class _Receiver(BaseHTTPRequestHandler):
    bodies: dict[str, list[bytes]]

    def do_POST(self) -> None:  # noqa: N802
        self.bodies.setdefault(self.path, []).append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, dict[str, list[bytes]]]]:
    bodies: dict[str, list[bytes]] = {}
    handler = type("Receiver", (_Receiver,), {"bodies": bodies})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    finally:
        server.shutdown()
        server.server_close()


def test_flush_exports_metrics_over_otlp(tmp_path, otlp_receiver, monkeypatch):
    endpoint, bodies = otlp_receiver
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_COMPRESSION", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", raising=False)
    runtrace.uninstrument()
    runtrace.instrument(service_name="otlp-agent", store=tmp_path / "runtrace.db", otlp_endpoint=endpoint)
    try:
        llm_call()
        with runtrace.run("exported", project="billing", owner="alice") as run:
            run.accept()
        assert runtrace.flush() is True
        assert len(bodies.get("/v1/metrics", [])) == 1
    finally:
        runtrace.uninstrument()

    request = ExportMetricsServiceRequest.FromString(bodies["/v1/metrics"][0])
    (resource_metrics,) = request.resource_metrics
    # Metrics carry the resource of runtrace's TracerProvider (one per process, so the first
    # instrument() of this test session named it), so spans and metrics name the same service.
    service = {a.key: a.value.string_value for a in resource_metrics.resource.attributes}[semconv.SERVICE_NAME]
    assert service == trace.get_tracer_provider().resource.attributes[semconv.SERVICE_NAME]
    exported = {m.name: m for sm in resource_metrics.scope_metrics for m in sm.metrics}
    assert set(exported) == {semconv.METRIC_TOKEN_USAGE, semconv.METRIC_OPERATION_DURATION,
                             semconv.METRIC_COST, semconv.METRIC_RUNS}
    usage = exported[semconv.METRIC_TOKEN_USAGE]
    assert usage.unit == "{token}"
    assert sorted(p.sum for p in usage.histogram.data_points) == [300, 1200]
    assert list(usage.histogram.data_points[0].explicit_bounds) == list(semconv.TOKEN_USAGE_BUCKETS)
    assert [p.as_double for p in exported[semconv.METRIC_COST].sum.data_points] == [0.00036]
    (runs,) = exported[semconv.METRIC_RUNS].sum.data_points
    assert runs.as_int == 1
    assert {a.key: a.value.string_value for a in runs.attributes} == {
        semconv.RUN_OUTCOME: "accepted", semconv.PROJECT: "billing", semconv.OWNER: "alice"}


JOIN_SCRIPT = """
import json, sys
from opentelemetry import metrics as api
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
import runtrace
from runtrace import metrics

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

reader = InMemoryMetricReader()
api.set_meter_provider(MeterProvider(metric_readers=[reader]))
trace.set_tracer_provider(TracerProvider())
runtrace.instrument(store=False)
with runtrace.run("joined", project="p") as run:
    run.accept()
data = reader.get_metrics_data()
points = [(m.name, dict(p.attributes), p.value) for rm in data.resource_metrics
          for sm in rm.scope_metrics for m in sm.metrics for p in m.data.data_points]
print(json.dumps({"own_provider": runtrace._state.current().meters.own_provider is not None, "points": points}))
runtrace.uninstrument()
"""


def test_joins_a_meter_provider_the_application_installed(tmp_path):
    """The global MeterProvider can be set once per process, so this runs in a fresh one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RUNTRACE_", "PYTEST_"))}
    # An endpoint in the environment belongs to the application's providers, not to new ones of runtrace's.
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9"
    env["PYTHONPATH"] = str(SRC)
    out = subprocess.run([sys.executable, "-c", JOIN_SCRIPT], env=env, capture_output=True, text=True,
                         timeout=60, check=True, cwd=tmp_path)
    result = json.loads(out.stdout)
    assert result == {"own_provider": False, "points": [
        [semconv.METRIC_RUNS, {semconv.RUN_OUTCOME: "accepted", semconv.PROJECT: "p"}, 1]]}


def test_openai_calls_feed_the_llm_metrics(reader, tmp_path):
    """Through the real openai client: the metrics agree with the spans, call for call."""
    import openai

    from llm_fakes import ChatUsage, FakeLLM, chat_completion, json_reply, openai_error
    from runtrace.store.db import Store
    from runtrace.store.queries import get_run

    fake = FakeLLM([json_reply(chat_completion(model="gpt-5.5-2026-04-23", usage=ChatUsage(1200, 300))),
                    json_reply(chat_completion(model="gpt-5.5-2026-04-23", usage=ChatUsage(3000, 5))),
                    json_reply(openai_error(500, "nope"), status=500)])
    client = fake.openai()
    messages = [{"role": "user", "content": "What is 2+2?"}]
    with runtrace.run("metered", project="billing", owner="alice") as run:
        client.chat.completions.create(model="gpt-5.5", messages=messages)
        client.chat.completions.create(model="gpt-5.5", messages=messages)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-5.5", messages=messages)
    found = collect(reader)

    common = {semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_PROVIDER_NAME: "openai",
              semconv.GEN_AI_REQUEST_MODEL: "gpt-5.5", semconv.GEN_AI_RESPONSE_MODEL: "gpt-5.5-2026-04-23"}
    usage = by_attributes(found[semconv.METRIC_TOKEN_USAGE])
    assert set(usage) == {key(**common, **{semconv.GEN_AI_TOKEN_TYPE: "input"}),
                          key(**common, **{semconv.GEN_AI_TOKEN_TYPE: "output"})}
    assert usage[key(**common, **{semconv.GEN_AI_TOKEN_TYPE: "input"})].sum == 4200
    assert usage[key(**common, **{semconv.GEN_AI_TOKEN_TYPE: "output"})].sum == 305
    durations = {dict(p.attributes).get(semconv.ERROR_TYPE): p.count
                 for p in found[semconv.METRIC_OPERATION_DURATION].data.data_points}
    assert durations == {None: 2, "InternalServerError": 1}
    (cost,) = found[semconv.METRIC_COST].data.data_points
    assert dict(cost.attributes) == {semconv.PROJECT: "billing", semconv.OWNER: "alice",
                                     semconv.GEN_AI_REQUEST_MODEL: "gpt-5.5",
                                     semconv.GEN_AI_PROVIDER_NAME: "openai"}
    runtrace.flush()
    store = Store.open(tmp_path / "runtrace.db")
    try:
        span_costs = [s["attributes"][semconv.COST_USD] for s in get_run(store, run.id)["spans"]
                      if s["kind"] == "llm"]
    finally:
        store.close()
    assert len(span_costs) == 3 and span_costs[0] > 0 and span_costs[2] == 0.0  # a 500 is not billed
    assert cost.value == span_costs[0] + span_costs[1] + span_costs[2]
