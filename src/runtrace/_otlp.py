"""OTLP exporters for a resolved target: gRPC or HTTP/protobuf, whichever the target says.

Both exporter packages come with ``opentelemetry-exporter-otlp``; they are imported only
for the protocol in use (the gRPC one loads grpcio, which is slow to import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._config import PROTOCOL_GRPC, OtlpTarget

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricExporter
    from opentelemetry.sdk.trace.export import SpanExporter


def span_exporter(target: OtlpTarget) -> SpanExporter:
    if target.protocol == PROTOCOL_GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans

        return GrpcSpans(endpoint=target.endpoint)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans

    return HttpSpans(endpoint=target.endpoint)


def metric_exporter(target: OtlpTarget) -> MetricExporter:
    if target.protocol == PROTOCOL_GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetrics

        return GrpcMetrics(endpoint=target.endpoint)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetrics

    return HttpMetrics(endpoint=target.endpoint)
