"""A webhook receiver on 127.0.0.1 that can be down, slow, or answer 500, and OTLP JSON from SpanRecords.

Used by tests/test_alerts.py; kept apart so the test file reads as the behaviour.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from runtrace.store.records import SpanRecord


class Webhook:
    """Records every POST body; ``fail_first`` answers 500 that many times, ``delay`` sleeps before answering."""

    def __init__(self, port: int, *, fail_first: int = 0, delay: float = 0.0,
                 gate: threading.Event | None = None) -> None:
        self.port = port
        self.gate = gate  # when set: every post waits for it (at most 30 s) before being answered
        self.entered = threading.Event()  # a post has arrived
        self.fail_first = fail_first
        self.delay = delay
        self.received: list[dict[str, Any]] = []  # 2xx-answered posts
        self.refused: int = 0  # 500-answered posts
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Webhook:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                hook.entered.set()
                if hook.gate is not None:
                    hook.gate.wait(30)
                if hook.delay:
                    time.sleep(hook.delay)
                with hook._lock:
                    fail = hook.fail_first > 0
                    if fail:
                        hook.fail_first -= 1
                        hook.refused += 1
                    else:
                        hook.received.append(json.loads(body))
                self.send_response(500 if fail else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(p["key"] for p in self.received)


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_value(v) for v in value]}}
    return {"stringValue": str(value)}


def otlp_json(records: list[SpanRecord]) -> bytes:
    """An OTLP/JSON ExportTraceServiceRequest holding ``records`` (one resource per record: simple, valid)."""
    kinds = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
    codes = {"UNSET": 0, "OK": 1, "ERROR": 2}
    spans = [{
        "resource": {"attributes": [{"key": k, "value": _value(v)} for k, v in r.resource.items()]},
        "scopeSpans": [{"scope": {"name": r.scope_name or "test"}, "spans": [{
            "traceId": r.trace_id, "spanId": r.span_id, **({"parentSpanId": r.parent_span_id}
                                                          if r.parent_span_id else {}),
            "name": r.name, "kind": kinds.get(r.kind, 1), "startTimeUnixNano": str(r.start_ns),
            "endTimeUnixNano": str(r.end_ns),
            "attributes": [{"key": k, "value": _value(v)} for k, v in r.attributes.items()],
            "status": {"code": codes.get(r.status_code, 0)}}]}],
    } for r in records]
    return json.dumps({"resourceSpans": spans}).encode()
