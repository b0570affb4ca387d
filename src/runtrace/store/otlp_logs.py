"""OTLP/protobuf and OTLP/JSON logs and metrics bodies (the ``/v1/logs`` and ``/v1/metrics`` receivers).

Logs become :class:`~runtrace.store.records.LogEvent` values, which the agent
adapters (:mod:`runtrace.agents`) turn into span records; metrics are only
validated (runtrace reads no fact that only metrics carry: every figure of an
agent session is in its log events) and then dropped.

Parsing and value folding are store/otlp.py's: the same hex-id rewrite for
OTLP/JSON, the same AnyValue reader and the same attribute normalisation, so a
log attribute reads exactly as the same span attribute would.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from .. import semconv as sc
from .errors import OTLPDecodeError
from .otlp import _MAX_NS, _any_value, _attributes, _check_id, _check_time, _list_at, _object, _rewrite_id
from .records import LogEvent, log_event

__all__ = ["KeysFor", "decode_logs_json", "decode_logs_protobuf", "decode_metrics_json", "decode_metrics_protobuf"]

# Given a resource's attributes: the only log-record attributes worth reading for its records, or None for all.
KeysFor = Callable[[Mapping[str, Any]], "frozenset[str] | None"]
_EVENT_NAME = frozenset({sc.EVENT_NAME})  # always read: it names the event

_M = TypeVar("_M", bound=Message)
_METRIC_KINDS = ("sum", "gauge", "histogram", "exponentialHistogram", "summary")
_METRIC_KINDS_SNAKE = ("sum", "gauge", "histogram", "exponential_histogram", "summary")


def _parse_protobuf(body: bytes, message: type[_M], what: str) -> _M:
    try:
        return cast(_M, message.FromString(bytes(body)))
    except (DecodeError, ValueError, TypeError) as exc:
        raise OTLPDecodeError(f"body is not an OTLP/protobuf {what}: {exc}") from exc


def _load_json(body: bytes | str) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OTLPDecodeError(f"body is not valid JSON: {exc}") from exc
    except RecursionError:
        raise OTLPDecodeError("body is not valid OTLP/JSON: it is nested too deeply to read "
                              f"(past {sys.getrecursionlimit():,} levels)") from None
    if not isinstance(document, dict):
        raise OTLPDecodeError(f"body must be a JSON object, got {type(document).__name__}")
    return document


def _parse_json(document: dict[str, Any], message: _M) -> _M:
    try:
        return cast(_M, json_format.ParseDict(document, message, ignore_unknown_fields=True))
    except json_format.ParseError as exc:
        raise OTLPDecodeError(f"invalid OTLP/JSON: {exc}") from exc
    except RecursionError:
        raise OTLPDecodeError("body is not valid OTLP/JSON: its values nest too deeply") from None


# --- logs --------------------------------------------------------------------------

def decode_logs_protobuf(body: bytes, keys_for: KeysFor | None = None) -> list[LogEvent]:
    """Decode an OTLP/protobuf ``ExportLogsServiceRequest`` body.

    ``keys_for`` (the receiver passes ``runtrace.agents.attribute_keys``) may
    name, per resource, the only record attributes its reader will look at:
    the others are skipped unread (``event.name`` is always read). Reading an
    attribute off protobuf's message is most of the decode's time (about 1 us
    each, 14.6 a Claude Code record, of which its adapter reads 8); the store
    never sees a log record's own attributes, only what an adapter makes of them.
    """
    return _events(_parse_protobuf(body, ExportLogsServiceRequest, "ExportLogsServiceRequest"), keys_for)


def decode_logs_json(body: bytes | str, keys_for: KeysFor | None = None) -> list[LogEvent]:
    """Decode an OTLP/JSON ``ExportLogsServiceRequest`` body (hex ids, per the OTLP spec); ``keys_for``: as
    :func:`decode_logs_protobuf`'s."""
    document = _load_json(body)
    _, resource_logs = _list_at(document, "resourceLogs", "resource_logs", "")
    for r, rl in enumerate(resource_logs):
        rwhere = f"resourceLogs[{r}]"
        _, scope_logs = _list_at(_object(rl, rwhere), "scopeLogs", "scope_logs", rwhere + ".")
        for s, sl in enumerate(scope_logs):
            swhere = f"{rwhere}.scopeLogs[{s}]"
            _, records = _list_at(_object(sl, swhere), "logRecords", "log_records", swhere + ".")
            for i, record in enumerate(records):
                where = f"{swhere}.logRecords[{i}]"
                _object(record, where)
                _rewrite_id(record, "traceId", "trace_id", 16, where, optional=True)
                _rewrite_id(record, "spanId", "span_id", 8, where, optional=True)
    return _events(_parse_json(document, ExportLogsServiceRequest()), keys_for)


def _events(request: ExportLogsServiceRequest, keys_for: KeysFor | None = None) -> list[LogEvent]:
    """Every log record of a request as a LogEvent (per record: the hot loop of ``/v1/logs``).

    A record's place (``resourceLogs[r].scopeLogs[s].logRecords[i]``) is only
    written out when one of its ids or times is wrong; valid ids and times are
    read inline, and ``_check_id`` / ``_check_time`` see only the others, so
    every error names the same place with the same words as before.
    With ``keys_for``, only the attributes it names are read (the pairs of
    those keys, in their order: the same values as reading them all).
    """
    out: list[LogEvent] = []
    append = out.append
    for r, rl in enumerate(request.resource_logs):
        resource = _attributes(rl.resource.attributes)
        keep = None if keys_for is None else keys_for(resource)
        if keep is not None:
            keep = keep | _EVENT_NAME
        for s, sl in enumerate(rl.scope_logs):
            scope_name = sl.scope.name or None
            for i, lr in enumerate(sl.log_records):
                attributes = _attributes(lr.attributes if keep is None
                                         else [kv for kv in lr.attributes if kv.key in keep])
                body = _any_value(lr.body) if lr.HasField("body") else None
                name = attributes.get(sc.EVENT_NAME) or lr.event_name or (body if isinstance(body, str) else "")
                time_ns, trace_raw, span_raw = lr.time_unix_nano, lr.trace_id, lr.span_id
                if time_ns > _MAX_NS or not time_ns or (trace_raw and (len(trace_raw) != 16 or not any(trace_raw))) \
                        or (span_raw and (len(span_raw) != 8 or not any(span_raw))):
                    where = f"resourceLogs[{r}].scopeLogs[{s}].logRecords[{i}]"
                    time_ns = (_check_time(time_ns, "timeUnixNano", where)
                               or _check_time(lr.observed_time_unix_nano, "observedTimeUnixNano", where))
                    trace_id = _check_id(trace_raw, 16, "traceId", where, optional=True)
                    span_id = _check_id(span_raw, 8, "spanId", where, optional=True)
                else:
                    trace_id = trace_raw.hex() if trace_raw else None
                    span_id = span_raw.hex() if span_raw else None
                append(log_event(time_ns, str(name), attributes, dict(resource), scope_name, trace_id, span_id,
                                 body))
    return out


# --- metrics: validated, then dropped --------------------------------------------------

def decode_metrics_protobuf(body: bytes) -> int:
    """Validate an OTLP/protobuf ``ExportMetricsServiceRequest``; return its number of data points."""
    return _points(_parse_protobuf(body, ExportMetricsServiceRequest, "ExportMetricsServiceRequest"))


def decode_metrics_json(body: bytes | str) -> int:
    """Validate an OTLP/JSON ``ExportMetricsServiceRequest``; return its number of data points."""
    document = _load_json(body)
    _, resource_metrics = _list_at(document, "resourceMetrics", "resource_metrics", "")
    for r, rm in enumerate(resource_metrics):
        rwhere = f"resourceMetrics[{r}]"
        _, scope_metrics = _list_at(_object(rm, rwhere), "scopeMetrics", "scope_metrics", rwhere + ".")
        for s, sm in enumerate(scope_metrics):
            swhere = f"{rwhere}.scopeMetrics[{s}]"
            _, metrics = _list_at(_object(sm, swhere), "metrics", "metrics", swhere + ".")
            for m, metric in enumerate(metrics):
                mwhere = f"{swhere}.metrics[{m}]"
                _object(metric, mwhere)
                for camel, snake in zip(_METRIC_KINDS, _METRIC_KINDS_SNAKE, strict=True):
                    data = metric.get(camel, metric.get(snake))
                    if data is None:
                        continue
                    dwhere = f"{mwhere}.{camel}"
                    _, points = _list_at(_object(data, dwhere), "dataPoints", "data_points", dwhere + ".")
                    for p, point in enumerate(points):
                        pwhere = f"{dwhere}.dataPoints[{p}]"
                        _, exemplars = _list_at(_object(point, pwhere), "exemplars", "exemplars", pwhere + ".")
                        for e, exemplar in enumerate(exemplars):
                            ewhere = f"{pwhere}.exemplars[{e}]"
                            _object(exemplar, ewhere)
                            _rewrite_id(exemplar, "traceId", "trace_id", 16, ewhere, optional=True)
                            _rewrite_id(exemplar, "spanId", "span_id", 8, ewhere, optional=True)
    return _points(_parse_json(document, ExportMetricsServiceRequest()))


def _points(request: ExportMetricsServiceRequest) -> int:
    count = 0
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                which = metric.WhichOneof("data")
                if which is not None:
                    count += len(getattr(metric, which).data_points)
    return count
