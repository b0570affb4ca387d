"""OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]PROTOCOL: grpc or http/protobuf, per the OTel spec.

The end-to-end cases run a real gRPC OTLP receiver on 127.0.0.1 (the collector's
own service definitions from opentelemetry-proto) and a child process that exits
without flushing, so the spans and metrics got out through the atexit flush.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

import runtrace
from runtrace import _config
from test_setup import Receiver, run_child

TESTS = Path(__file__).resolve().parent
CHILD_PATH = f"{TESTS.parent / 'src'}:{TESTS}"


class GrpcReceiver:
    """A real OTLP/gRPC endpoint that keeps the span names and metric names it is sent."""

    def __init__(self) -> None:
        self.spans: list[str] = []
        self.metrics: list[str] = []
        outer = self

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):  # noqa: N802 - the service's name
                outer.spans.extend(s.name for rs in request.resource_spans for ss in rs.scope_spans
                                   for s in ss.spans)
                return trace_service_pb2.ExportTraceServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request, context):  # noqa: N802
                outer.metrics.extend(m.name for rm in request.resource_metrics for sm in rm.scope_metrics
                                     for m in sm.metrics)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self.server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.url = f"http://127.0.0.1:{port}"
        self.server.start()

    def close(self) -> None:
        self.server.stop(grace=None)


@pytest.fixture
def grpc_receiver() -> Iterator[GrpcReceiver]:
    r = GrpcReceiver()
    yield r
    r.close()


@pytest.fixture
def http_receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


LLM_AGENT = """
    import runtrace
    from llm_fakes import FakeLLM, chat_completion, json_reply
    runtrace.instrument(store=False)
    client = FakeLLM(default=json_reply(chat_completion())).openai()
    with runtrace.run("grpc run") as run:
        client.chat.completions.create(model="gpt-5.5-2026-04-23", messages=[{"role": "user", "content": "hi"}])
        run.accept()
"""


def test_protocol_grpc_sends_spans_and_metrics_over_grpc(tmp_path, grpc_receiver) -> None:
    run_child(textwrap.dedent(LLM_AGENT), {
        "PYTHONPATH": CHILD_PATH,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": grpc_receiver.url,  # no /v1/traces added over gRPC
    }, tmp_path)
    assert sorted(grpc_receiver.spans) == ["chat gpt-5.5-2026-04-23", "run grpc run"]
    assert {"gen_ai.client.token.usage", "gen_ai.client.operation.duration"} <= set(grpc_receiver.metrics)


def test_per_signal_protocols_win_over_the_shared_one(tmp_path, grpc_receiver, http_receiver) -> None:
    # traces over gRPC, metrics over HTTP, each to its own endpoint
    run_child(textwrap.dedent(LLM_AGENT), {
        "PYTHONPATH": CHILD_PATH,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": grpc_receiver.url,
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": http_receiver.url + "/v1/metrics",
    }, tmp_path)
    assert sorted(grpc_receiver.spans) == ["chat gpt-5.5-2026-04-23", "run grpc run"]
    assert grpc_receiver.metrics == []
    assert set(http_receiver.paths) == {"/v1/metrics"}


@pytest.fixture
def clean_otlp_env(monkeypatch) -> pytest.MonkeyPatch:
    for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_target_resolution(clean_otlp_env) -> None:
    env = clean_otlp_env
    T = _config.OtlpTarget
    assert _config.otlp_target(None, "traces") is None
    assert _config.otlp_target("http://c:4318/", "traces") == T("http://c:4318/v1/traces", "http/protobuf")
    env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    # a protocol without an endpoint: the spec's default port for it
    assert _config.otlp_target(None, "traces") == T("http://localhost:4317", "grpc")
    assert _config.otlp_target("http://c:4317/", "metrics") == T("http://c:4317", "grpc")
    env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://shared:4317")
    assert _config.otlp_target(None, "metrics") == T("http://shared:4317", "grpc")
    env.setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "HTTP/Protobuf")
    assert _config.otlp_target(None, "metrics") == T("http://shared:4317/v1/metrics", "http/protobuf")
    assert _config.otlp_target(None, "traces") == T("http://shared:4317", "grpc")
    env.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    env.delenv("OTEL_EXPORTER_OTLP_PROTOCOL")
    assert _config.otlp_target(None, "metrics") == T("http://localhost:4318/v1/metrics", "http/protobuf")
    assert _config.otlp_target(None, "traces") is None


def test_http_json_falls_back_to_protobuf_and_says_so(clean_otlp_env, caplog) -> None:
    clean_otlp_env.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")
    assert _config.otlp_protocol("traces") == "http/protobuf"
    assert "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json is not supported" in caplog.text


def test_an_unknown_protocol_fails_instrument_naming_the_variable(clean_otlp_env, tmp_path) -> None:
    clean_otlp_env.setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grcp")
    with pytest.raises(ValueError, match=r"^OTEL_EXPORTER_OTLP_METRICS_PROTOCOL='grcp' is not one of grpc"):
        runtrace.instrument(store=tmp_path / "s.db")
    assert runtrace._setup.is_instrumented() is False
    assert not (tmp_path / "s.db").exists()  # failed before anything was opened
