"""``POST /v1/traces``, ``/v1/logs``, ``/v1/metrics``: the OTLP/HTTP receivers, per the OTLP specification.

All three read the body the same way (:func:`_receive`): content types,
encodings, bounds and errors below apply to each. ``/v1/logs`` turns the log
events of known coding agents (:mod:`runtrace.agents`) into span records that
go through the same ingest as spans; every other log record is accepted and
dropped. ``/v1/metrics`` is validated and dropped (no run figure lives only in
metrics). Spans at ``/v1/traces`` pass through :func:`runtrace.agents.mark_trace_spans`
so an agent's own spans join its session's run without being counted twice.

- ``application/x-protobuf`` and ``application/json`` bodies, optionally
  ``Content-Encoding: gzip``; the answer has the request's content type.
- A body over ``max_body_bytes`` (before or after decompression) is a 413.
  Decompression stops as soon as the output passes the limit, so a gzip bomb
  costs at most ``max_body_bytes`` of memory, never its expanded size.
- A malformed body is a 400 whose ``google.rpc.Status`` message names the
  problem; any other content type or encoding is a 415. Nothing is stored
  from a body that fails.
- The bytes being read and decoded at once, across requests, are capped
  (``app.state.decode_budget``): beyond it a request is a 503 with Retry-After
  before its body is read, so concurrent big bodies cannot exhaust memory.
- 200 only after the spans are committed: the store write runs in a worker
  thread and the response waits for it. A store that cannot take the write
  (locked past its busy timeout) is a 503 with Retry-After, which exporters retry.
- A span with a number past the store's bounds (:mod:`runtrace.store.bounds`:
  tokens, costs, budget limits) is rejected and the rest of the batch stored:
  partial success, ``rejected_spans`` counting them and ``error_message``
  naming span, field and value (e.g. ``gen_ai.usage.input_tokens=1e30 is out
  of range``). When every span of the request is rejected, the request is a
  400 with the same message: there is nothing it succeeded at.
- Spans that carry no ``runtrace.run.id`` (any other SDK) form runs like any
  (docs/architecture.md: per session, else per trace), so they need no warning.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import zlib
from collections.abc import Callable, Sequence

from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from .. import agents
from ..store.bounds import describe, out_of_range
from ..store.errors import OTLPDecodeError, StoreError
from ..store.otlp import decode_otlp_json, decode_otlp_protobuf
from ..store.otlp_logs import (
    decode_logs_json,
    decode_logs_protobuf,
    decode_metrics_json,
    decode_metrics_protobuf,
)
from ..store.records import SpanRecord
from .admission import ByteBudget

__all__ = ["DEFAULT_MAX_BODY_BYTES", "BodyTooLarge", "gunzip_bounded", "receive_logs", "receive_metrics",
           "receive_traces"]

logger = logging.getLogger("runtrace.server")

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024  # the OTLP spec's suggested cap, after decompression
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_MEDIA = (PROTOBUF, JSON)


def _traces(body: bytes, media: str) -> list[SpanRecord]:
    records = decode_otlp_protobuf(body) if media == PROTOBUF else decode_otlp_json(body)
    return agents.mark_trace_spans(records)


def _logs(body: bytes, media: str) -> list[SpanRecord]:
    keys = agents.attribute_keys  # only the attributes an adapter reads are decoded
    events = decode_logs_protobuf(body, keys) if media == PROTOBUF else decode_logs_json(body, keys)
    return agents.records_from_events(events)


def _metrics(body: bytes, media: str) -> list[SpanRecord]:
    if media == PROTOBUF:
        decode_metrics_protobuf(body)
    else:
        decode_metrics_json(body)
    return []
# google.rpc.Code values
_INVALID_ARGUMENT, _RESOURCE_EXHAUSTED, _UNAVAILABLE, _INTERNAL = 3, 8, 14, 13
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # gzip container only
_CHUNK = 64 * 1024
_REJECTIONS_NAMED = 5  # rejected spans described in error_message; the rest are counted


class BodyTooLarge(ValueError):
    """The body, as sent or once decompressed, is over the receiver's limit."""


def gunzip_bounded(data: bytes, limit: int) -> bytes:
    """Decompress a gzip body (all its members) without ever holding more than ``limit`` bytes.

    Raises :class:`BodyTooLarge` past the limit and :class:`ValueError` naming
    the problem for a body that is not gzip or is cut short.
    """
    out = bytearray()
    rest = data
    while True:
        inflater = zlib.decompressobj(_GZIP_WBITS)
        pending = rest
        try:
            while pending:
                out += inflater.decompress(pending, limit + 1 - len(out))
                if len(out) > limit:
                    raise BodyTooLarge(f"the gzip body expands past the {limit:,}-byte limit")
                pending = inflater.unconsumed_tail
            # Flush what zlib still holds, bounded like the rest.
            while not inflater.eof:
                chunk = inflater.decompress(b"", limit + 1 - len(out))
                if not chunk:
                    break
                out += chunk
                if len(out) > limit:
                    raise BodyTooLarge(f"the gzip body expands past the {limit:,}-byte limit")
        except zlib.error as exc:
            raise ValueError(f"the body is not valid gzip ({exc})") from None
        if not inflater.eof:
            raise ValueError("the gzip body is truncated: the compressed stream ends early")
        rest = inflater.unused_data
        if not rest.strip(b"\x00"):  # some writers pad the end with zeros
            return bytes(out)


class Busy(Exception):
    """The bytes being decoded across requests are at the server's cap: retry later."""


class _Reservation:
    """The bytes one request holds in the app's :class:`ByteBudget`; given back when it is done."""

    def __init__(self, budget: ByteBudget) -> None:
        self.budget, self.held = budget, 0

    def take(self, size: int) -> None:
        if size <= 0:
            return
        if not self.budget.try_take(size):
            raise Busy(f"the server is decoding {self.budget.in_use:,} bytes of other requests (its cap is "
                       f"{self.budget.capacity:,}); retry later")
        self.held += size

    def release(self) -> None:
        self.budget.give_back(self.held)
        self.held = 0


async def _read_body(request: Request, limit: int, reservation: _Reservation) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        if int(declared) > limit:
            raise BodyTooLarge(f"the body of {int(declared):,} bytes is over the {limit:,}-byte limit")
        reservation.take(int(declared))  # before reading a byte of it
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"the body is over the {limit:,}-byte limit")
            reservation.take(size - reservation.held)  # a chunked body: take as it comes
    except ClientDisconnect:
        raise ValueError("the client went away before sending the whole body") from None
    return b"".join(chunks)


def _status(kind: str, code: int, message: str) -> bytes:
    status = status_pb2.Status(code=code, message=message)
    if kind == PROTOBUF:
        return bytes(status.SerializeToString())
    return json.dumps({"code": code, "message": message}).encode()


def _error(kind: str, http_status: int, code: int, message: str,
           headers: dict[str, str] | None = None) -> Response:
    return Response(_status(kind, code, message), status_code=http_status,
                    media_type=kind, headers=headers)


def _rejections_message(rejected: Sequence[str]) -> str:
    named = "; ".join(rejected[:_REJECTIONS_NAMED])
    more = len(rejected) - _REJECTIONS_NAMED
    return f"{len(rejected)} span(s) rejected: {named}" + (f"; and {more} more" if more > 0 else "")


def _success(kind: str, signal: str, rejected: Sequence[str] = ()) -> Response:
    response: Message
    if signal == "metrics":
        return _encode(kind, ExportMetricsServiceResponse())
    if signal == "traces":
        response = ExportTraceServiceResponse()
        if rejected:
            response.partial_success.CopyFrom(ExportTracePartialSuccess(
                rejected_spans=len(rejected), error_message=_rejections_message(rejected)))
    else:
        response = ExportLogsServiceResponse()
        if rejected:  # a rejected record here is one made from the log events (numbers past the bounds)
            response.partial_success.CopyFrom(ExportLogsPartialSuccess(
                rejected_log_records=len(rejected), error_message=_rejections_message(rejected)))
    return _encode(kind, response)


def _encode(kind: str, response: Message) -> Response:
    if kind == PROTOBUF:
        return Response(response.SerializeToString(), media_type=PROTOBUF)
    body = json_format.MessageToDict(response, use_integers_for_enums=True)
    return Response(json.dumps(body).encode(), media_type=JSON)


async def receive_traces(request: Request) -> Response:
    """``POST /v1/traces``. ``request.app.state`` holds ``store``, ``max_body_bytes`` and ``decode_budget``."""
    return await _admit(request, "traces", _traces)


async def receive_logs(request: Request) -> Response:
    """``POST /v1/logs``: known agents' events become runs; other log records are dropped."""
    return await _admit(request, "logs", _logs)


async def receive_metrics(request: Request) -> Response:
    """``POST /v1/metrics``: validated and dropped."""
    return await _admit(request, "metrics", _metrics)


async def _admit(request: Request, signal: str, to_records: Callable[[bytes, str], list[SpanRecord]]) -> Response:
    """Check the content type and encoding, then read and store under a share of the decode budget."""
    state = request.app.state
    limit: int = state.max_body_bytes
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in _MEDIA:
        return _error(JSON, 415, _INVALID_ARGUMENT,
                      f"unsupported Content-Type {media or '(none)'!r}: send {PROTOBUF} or {JSON}")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        return _error(media, 415, _INVALID_ARGUMENT,
                      f"unsupported Content-Encoding {encoding!r}: send gzip or no encoding")
    reservation = _Reservation(state.decode_budget)
    try:
        return await _receive(request, signal, media, to_records, encoding, limit, reservation)
    finally:
        reservation.release()


async def _receive(request: Request, signal: str, media: str,
                   to_records: Callable[[bytes, str], list[SpanRecord]], encoding: str,
                   limit: int, reservation: _Reservation) -> Response:
    """One OTLP/HTTP export: read, decode, store, answer (the rules in the module docstring)."""
    state = request.app.state
    try:
        body = await _read_body(request, limit, reservation)
        if encoding == "gzip":
            body = await run_in_threadpool(gunzip_bounded, body, limit)
            reservation.take(len(body))  # the inflated copy is decoded too
    except Busy as exc:
        return _error(media, 503, _UNAVAILABLE, str(exc), headers={"Retry-After": "1"})
    except BodyTooLarge as exc:
        return _error(media, 413, _RESOURCE_EXHAUSTED, str(exc))
    except ValueError as exc:
        return _error(media, 400, _INVALID_ARGUMENT, str(exc))
    store = state.store

    def decode_and_store() -> tuple[int, list[str]]:
        records = to_records(body, media)
        if not records:
            return 0, []
        good: list[SpanRecord] = []
        rejected: list[str] = []
        for record in records:
            problems = out_of_range(record)
            if problems:
                rejected.append(describe(record, problems))
            else:
                good.append(record)
        if rejected and not good:
            raise OTLPDecodeError(_rejections_message(rejected))
        return store.ingest(good), rejected

    try:
        _stored, rejected = await run_in_threadpool(decode_and_store)
    except OTLPDecodeError as exc:
        return _error(media, 400, _INVALID_ARGUMENT, str(exc))
    except sqlite3.OperationalError as exc:
        logger.warning("runtrace serve: store busy, asking the sender to retry: %s", exc)
        return _error(media, 503, _UNAVAILABLE, f"the store is busy ({exc}); retry later",
                      headers={"Retry-After": "2"})
    except StoreError as exc:
        logger.error("runtrace serve: store error: %s", exc)
        return _error(media, 503, _UNAVAILABLE, f"the store cannot take spans now ({exc})",
                      headers={"Retry-After": "5"})
    if rejected:
        logger.info("runtrace serve: %s", _rejections_message(rejected))
    if _stored and getattr(state, "alerts", None) is not None:
        state.alerts.notify()  # an Event.set: the rules run on the alert engine's thread, not here
    return _success(media, signal, rejected)
