"""OTLP/protobuf and OTLP/JSON bodies <-> SpanRecords (the HTTP receiver's adapter).

Parsing is left to protobuf itself. OTLP/JSON differs from protobuf's standard
JSON mapping in one way that matters: trace and span ids are hex, not base64
(enum integers, int64 as strings and lowerCamelCase keys are things
``json_format`` already accepts). So the JSON decoder rewrites the ids to the
base64 that ``json_format`` expects, validating each one with its path, and
then lets ``json_format.ParseDict`` do the rest. Values are folded exactly as
the SDK adapter folds them (:mod:`runtrace.store.values`).
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from .errors import OTLPDecodeError
from .records import Attributes, AttrValue, EventRecord, SpanRecord
from .values import dumps, normalise_value

__all__ = ["OTLPDecodeError", "decode_otlp_json", "decode_otlp_protobuf", "encode_otlp_protobuf"]

# SPAN_KIND_UNSPECIFIED: the spec lets receivers read it as INTERNAL.
_KINDS = {0: "INTERNAL", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_KIND_NUMBERS = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}
_STATUS_NUMBERS = {v: k for k, v in _STATUS.items()}


# --- decoding ------------------------------------------------------------------

def decode_otlp_protobuf(body: bytes) -> list[SpanRecord]:
    """Decode an OTLP/protobuf ``ExportTraceServiceRequest`` body."""
    try:
        request = ExportTraceServiceRequest.FromString(bytes(body))
    except (DecodeError, ValueError, TypeError) as exc:
        raise OTLPDecodeError(f"body is not an OTLP/protobuf ExportTraceServiceRequest: {exc}") from exc
    return _records_from_request(request)


def decode_otlp_json(body: bytes | str) -> list[SpanRecord]:
    """Decode an OTLP/JSON ``ExportTraceServiceRequest`` body (hex ids, per the OTLP spec)."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OTLPDecodeError(f"body is not valid JSON: {exc}") from exc
    except RecursionError:  # the parser's stack ends near 1,000 levels; no OTLP body nests like that
        raise OTLPDecodeError("body is not valid OTLP/JSON: it is nested too deeply to read "
                              f"(past {sys.getrecursionlimit():,} levels)") from None
    if not isinstance(document, dict):
        raise OTLPDecodeError(f"body must be a JSON object, got {type(document).__name__}")
    _hex_ids_to_base64(document)
    try:
        request = json_format.ParseDict(document, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise OTLPDecodeError(f"invalid OTLP/JSON: {exc}") from exc
    return _records_from_request(request)


def _get(obj: dict[str, Any], camel: str, snake: str) -> tuple[str, Any]:
    """OTLP/JSON uses lowerCamelCase; tolerate protobuf's original names like json_format does."""
    if camel in obj:
        return camel, obj[camel]
    return snake, obj.get(snake)


def _list_at(obj: dict[str, Any], camel: str, snake: str, where: str) -> tuple[str, list[Any]]:
    key, value = _get(obj, camel, snake)
    if value is None:
        return key, []
    if not isinstance(value, list):
        raise OTLPDecodeError(f"{where}{camel} must be an array, got {type(value).__name__}")
    return key, value


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise OTLPDecodeError(f"{where} must be an object, got {type(value).__name__}")
    return value


def _rewrite_id(obj: dict[str, Any], camel: str, snake: str, nbytes: int, where: str,
                *, optional: bool) -> None:
    key, value = _get(obj, camel, snake)
    if value is None or (optional and value == ""):
        if not optional:
            raise OTLPDecodeError(f"{where}: {camel} is missing")
        obj.pop(key, None)
        return
    if not isinstance(value, str) or len(value) != 2 * nbytes:
        raise OTLPDecodeError(f"{where}: {camel} must be {2 * nbytes} hex chars, got {value!r}")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if len(raw) != nbytes:  # also catches the spaces bytes.fromhex would skip
        raise OTLPDecodeError(f"{where}: {camel} must be {2 * nbytes} hex chars, got {value!r}")
    obj[key] = base64.b64encode(raw).decode("ascii")


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    """Rewrite every hex id in place to base64, so protobuf's json_format reads the right bytes."""
    _, resource_spans = _list_at(document, "resourceSpans", "resource_spans", "")
    for r, rs in enumerate(resource_spans):
        rwhere = f"resourceSpans[{r}]"
        _, scope_spans = _list_at(_object(rs, rwhere), "scopeSpans", "scope_spans", rwhere + ".")
        for s, ss in enumerate(scope_spans):
            swhere = f"{rwhere}.scopeSpans[{s}]"
            _, spans = _list_at(_object(ss, swhere), "spans", "spans", swhere + ".")
            for i, span in enumerate(spans):
                where = f"{swhere}.spans[{i}]"
                _object(span, where)
                _rewrite_id(span, "traceId", "trace_id", 16, where, optional=False)
                _rewrite_id(span, "spanId", "span_id", 8, where, optional=False)
                _rewrite_id(span, "parentSpanId", "parent_span_id", 8, where, optional=True)
                _, links = _list_at(span, "links", "links", where + ".")
                for n, link in enumerate(links):
                    lwhere = f"{where}.links[{n}]"
                    _object(link, lwhere)
                    _rewrite_id(link, "traceId", "trace_id", 16, lwhere, optional=False)
                    _rewrite_id(link, "spanId", "span_id", 8, lwhere, optional=False)


def _any_value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return value.int_value
    if which == "bool_value":
        return value.bool_value
    if which == "double_value":
        return value.double_value
    if which == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return value.bytes_value
    return None


def _attributes(pairs: Iterable[KeyValue]) -> Attributes:
    """Attribute pairs as record attributes, folded as :func:`normalise_value` folds them.

    Runs once per attribute of every span and log record received (a third of
    the ``/v1/logs`` decode): the scalar kinds, nearly every value, are read
    straight off the message, since protobuf hands back exact str/int/bool/float
    values that ``normalise_value`` would return unchanged. The rest (arrays,
    maps, bytes, an empty value) take the general path.
    """
    out: Attributes = {}
    for kv in pairs:
        value = kv.value
        which = value.WhichOneof("value")
        if which == "string_value":
            out[kv.key] = value.string_value
        elif which == "int_value":
            out[kv.key] = value.int_value
        elif which == "bool_value":
            out[kv.key] = value.bool_value
        elif which == "double_value":
            out[kv.key] = value.double_value
        else:
            folded = normalise_value(_any_value(value))
            if folded is not None:
                out[kv.key] = folded
    return out


def _check_id(raw: bytes, nbytes: int, name: str, where: str, *, optional: bool = False) -> str | None:
    if optional and not raw:
        return None
    if len(raw) != nbytes:
        raise OTLPDecodeError(f"{where}: {name} must be {nbytes} bytes, got {len(raw)}")
    if not any(raw):
        if optional:
            return None
        raise OTLPDecodeError(f"{where}: {name} must not be all zeros")
    return raw.hex()


_MAX_NS = 2**63 - 1  # OTLP times are fixed64; SQLite (and ClickHouse's DateTime64) stop at int64


def _check_time(value: int, name: str, where: str) -> int:
    if value > _MAX_NS:
        raise OTLPDecodeError(f"{where}: {name} {value} is past the year 2262 (more than 2^63-1 ns)")
    return value


def _records_from_request(request: ExportTraceServiceRequest) -> list[SpanRecord]:
    """Every span of a request as a SpanRecord (per span: the hot loop of ``/v1/traces``).

    A span's place (``resourceSpans[r].scopeSpans[s].spans[i]``) is only written
    out when something in it is wrong: valid kinds, statuses, ids and times are
    read inline and the checks (:func:`_checked_span`) see only the others, so
    every error names the same place with the same words as before.
    """
    out: list[SpanRecord] = []
    append = out.append
    for r, rs in enumerate(request.resource_spans):
        resource = _attributes(rs.resource.attributes)
        for s, ss in enumerate(rs.scope_spans):
            scope_name = ss.scope.name or None
            scope_version = ss.scope.version or None
            for i, span in enumerate(ss.spans):
                kind = _KINDS.get(span.kind)
                status = _STATUS.get(span.status.code)
                trace_raw, span_raw, parent_raw = span.trace_id, span.span_id, span.parent_span_id
                start_ns, end_ns = span.start_time_unix_nano, span.end_time_unix_nano
                events = span.events
                if kind is None or status is None or len(trace_raw) != 16 or not any(trace_raw) \
                        or len(span_raw) != 8 or not any(span_raw) \
                        or (parent_raw and (len(parent_raw) != 8 or not any(parent_raw))) \
                        or start_ns > _MAX_NS or end_ns > _MAX_NS \
                        or (events and any(e.time_unix_nano > _MAX_NS for e in events)):
                    trace_id, span_id, parent_id, kind, status = _checked_span(
                        span, f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]")
                else:
                    trace_id, span_id = trace_raw.hex(), span_raw.hex()
                    parent_id = parent_raw.hex() if parent_raw else None
                append(SpanRecord(
                    trace_id, span_id, parent_id, span.name, kind, start_ns, end_ns, status,
                    span.status.message or None, _attributes(span.attributes), resource,
                    tuple(EventRecord(e.name, e.time_unix_nano, _attributes(e.attributes)) for e in events)
                    if events else (),
                    scope_name, scope_version,
                ))
    return out


def _checked_span(span: Span, where: str) -> tuple[str, str, str | None, str, str]:
    """(trace id, span id, parent id, kind, status) of a span the fast path doubts; raises naming ``where``."""
    kind = _KINDS.get(span.kind)
    if kind is None:
        raise OTLPDecodeError(f"{where}: kind {span.kind} is not a SpanKind (0-5)")
    status = _STATUS.get(span.status.code)
    if status is None:
        raise OTLPDecodeError(f"{where}: status.code {span.status.code} is not a StatusCode (0-2)")
    trace_id = _check_id(span.trace_id, 16, "traceId", where)
    span_id = _check_id(span.span_id, 8, "spanId", where)
    parent_id = _check_id(span.parent_span_id, 8, "parentSpanId", where, optional=True)
    _check_time(span.start_time_unix_nano, "startTimeUnixNano", where)
    _check_time(span.end_time_unix_nano, "endTimeUnixNano", where)
    for j, e in enumerate(span.events):
        _check_time(e.time_unix_nano, f"events[{j}].timeUnixNano", where)
    return trace_id, span_id, parent_id, kind, status  # type: ignore[return-value]


# --- encoding (runtrace forward: replay the store to a collector) ---------------

def _to_any(value: AttrValue) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(array_value=ArrayValue(values=[_to_any(v) for v in value]))


def _to_kvs(attributes: Attributes) -> list[KeyValue]:
    return [KeyValue(key=k, value=_to_any(v)) for k, v in attributes.items()]


def encode_otlp_protobuf(records: Sequence[SpanRecord]) -> bytes:
    """Encode records as one OTLP/protobuf ExportTraceServiceRequest, grouped by resource and scope."""
    groups: dict[str, tuple[Attributes, dict[tuple[str | None, str | None], list[Span]]]] = {}
    for rec in records:
        res_key = dumps(sorted(rec.resource.items()))
        _, scopes = groups.setdefault(res_key, (rec.resource, {}))
        scopes.setdefault((rec.scope_name, rec.scope_version), []).append(Span(
            trace_id=bytes.fromhex(rec.trace_id),
            span_id=bytes.fromhex(rec.span_id),
            parent_span_id=bytes.fromhex(rec.parent_span_id) if rec.parent_span_id else b"",
            name=rec.name,
            kind=_KIND_NUMBERS.get(rec.kind, 0),  # type: ignore[arg-type]
            start_time_unix_nano=rec.start_ns,
            end_time_unix_nano=rec.end_ns,
            attributes=_to_kvs(rec.attributes),
            events=[Span.Event(name=e.name, time_unix_nano=e.time_ns, attributes=_to_kvs(e.attributes))
                    for e in rec.events],
            status=Status(code=_STATUS_NUMBERS.get(rec.status_code, 0),  # type: ignore[arg-type]
                          message=rec.status_message or ""),
        ))
    request = ExportTraceServiceRequest(resource_spans=[
        ResourceSpans(
            resource=Resource(attributes=_to_kvs(resource)),
            scope_spans=[ScopeSpans(scope=InstrumentationScope(name=name or "", version=version or ""),
                                    spans=spans)
                         for (name, version), spans in scopes.items()],
        )
        for resource, scopes in groups.values()
    ])
    return bytes(request.SerializeToString())
