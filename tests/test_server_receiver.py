"""The OTLP/HTTP receiver of `runtrace serve`, against a real uvicorn server on 127.0.0.1.

Senders: the OpenTelemetry SDK's own OTLPSpanExporter (protobuf, plain and
gzip) and hand-written OTLP/JSON bodies posted with httpx. Bad bodies get the
right 4xx, the server keeps serving, and the store does not change.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from runtrace import semconv as sc
from runtrace.server import create_app
from runtrace.server.receiver import BodyTooLarge, gunzip_bounded
from runtrace.store.db import Store
from runtrace.store.otlp import decode_otlp_json, encode_otlp_protobuf
from runtrace.store.queries import get_run, list_runs
from test_server_support import build_fixture_store, running_server

LIMIT = 256 * 1024


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The fixture store behind a real server with a small body limit."""
    path = build_fixture_store(tmp_path / "runtrace.db")
    with running_server(create_app(path, max_body_bytes=LIMIT)) as base:
        yield base, path


def _snapshot(path: Path) -> tuple[int, list[dict[str, Any]]]:
    with Store.open(path, create=False) as store:
        return store.count_spans(), list_runs(store, limit=0)


def _sdk_provider(endpoint: str, compression: Compression) -> tuple[TracerProvider, OTLPSpanExporter]:
    exporter = OTLPSpanExporter(endpoint=endpoint, compression=compression, timeout=10)
    provider = TracerProvider(resource=Resource.create({sc.SERVICE_NAME: "go-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip], ids=["plain", "gzip"])
def test_sdk_exporter_spans_are_stored_aggregated_and_priced_at_ingest(
        served: tuple[str, Path], compression: Compression) -> None:
    base, path = served
    provider, exporter = _sdk_provider(f"{base}/v1/traces", compression)
    tracer = provider.get_tracer("other-sdk")
    run_id = f"sdk-run-{compression.value}"
    with tracer.start_as_current_span("run triage", attributes={
            sc.SPAN_ROLE: sc.ROLE_RUN, sc.RUN_ID: run_id, sc.RUN_NAME: "triage", sc.PROJECT: "remote",
            sc.OWNER: "dana", sc.RUN_OUTCOME: sc.OUTCOME_ACCEPTED}):
        # An LLM span from an SDK that knows nothing of runtrace's cost attribute.
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes={
                sc.RUN_ID: run_id, sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_PROVIDER_NAME: "openai",
                sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", sc.GEN_AI_USAGE_INPUT_TOKENS: 1000,
                sc.GEN_AI_USAGE_OUTPUT_TOKENS: 500}):
            pass
        with tracer.start_as_current_span("execute_tool grep", attributes={
                sc.RUN_ID: run_id, sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: "grep"}):
            pass
    provider.shutdown()

    with Store.open(path, create=False) as store:
        run = get_run(store, run_id)
    assert run is not None
    # 1,000 x $0.15/M + 500 x $0.60/M, priced by the receiver's ingest.
    assert run["cost_usd"] == pytest.approx(0.00045, abs=1e-12)
    assert (run["llm_calls"], run["tool_calls"], run["unpriced_calls"]) == (1, 1, 0)
    assert (run["input_tokens"], run["output_tokens"]) == (1000, 500)
    assert (run["outcome"], run["project"], run["owner"], run["service"]) == ("accepted", "remote", "dana",
                                                                             "go-agent")
    llm = next(s for s in run["spans"] if s["kind"] == "llm")
    assert llm["attributes"][sc.COST_PRICED_AT_INGEST] is True
    assert llm["cost_usd"] == pytest.approx(0.00045, abs=1e-12)
    assert sorted(s["name"] for s in run["spans"]) == ["chat gpt-4o-mini", "execute_tool grep", "run triage"]


def _json_body(run_id: str | None, *, trace: str = "5" * 32, span: str = "6" * 16) -> dict[str, Any]:
    attrs = [{"key": sc.GEN_AI_OPERATION_NAME, "value": {"stringValue": "chat"}},
             {"key": sc.GEN_AI_REQUEST_MODEL, "value": {"stringValue": "gpt-4o"}},
             {"key": sc.GEN_AI_PROVIDER_NAME, "value": {"stringValue": "openai"}},
             {"key": sc.GEN_AI_USAGE_INPUT_TOKENS, "value": {"intValue": "2000"}},
             {"key": sc.GEN_AI_USAGE_OUTPUT_TOKENS, "value": {"intValue": "100"}}]
    if run_id is not None:
        attrs.append({"key": sc.RUN_ID, "value": {"stringValue": run_id}})
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": sc.SERVICE_NAME, "value": {"stringValue": "ts-agent"}}]},
        "scopeSpans": [{"scope": {"name": "ts"}, "spans": [{
            "traceId": trace, "spanId": span, "name": "chat gpt-4o", "kind": 3,
            "startTimeUnixNano": "1790000000000000000", "endTimeUnixNano": "1790000001000000000",
            "attributes": attrs, "status": {"code": 1}}]}]}]}


def test_json_body_is_stored_and_answered_in_json(served: tuple[str, Path]) -> None:
    base, path = served
    response = httpx.post(f"{base}/v1/traces", content=json.dumps(_json_body("json-run")),
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    with Store.open(path, create=False) as store:
        run = get_run(store, "json-run")
    assert run is not None
    # 2,000 x $2.50/M + 100 x $10/M
    assert run["cost_usd"] == pytest.approx(0.006, abs=1e-12)
    assert run["service"] == "ts-agent"
    assert run["spans"][0]["span_id"] == "6" * 16


def test_spans_without_run_id_form_a_run_of_their_trace_without_a_warning(served: tuple[str, Path]) -> None:
    # DESIGN 6b: such spans used to be "stored, but belong to no run" (a partial-success warning);
    # now their trace is a run, so there is nothing to warn about.
    base, path = served
    spans_before, runs_before = _snapshot(path)
    response = httpx.post(f"{base}/v1/traces", json=_json_body(None, span="7" * 16))
    assert (response.status_code, response.json()) == (200, {})
    spans_after, runs_after = _snapshot(path)
    assert (spans_after, len(runs_after)) == (spans_before + 1, len(runs_before) + 1)
    with Store.open(path, create=False) as store:
        run = get_run(store, "5" * 32)
    assert run is not None
    assert (run["name"], run["service"], run["outcome"], run["llm_calls"]) == ("chat gpt-4o", "ts-agent", "open", 1)
    assert run["cost_usd"] == pytest.approx(0.006, abs=1e-12)  # 2,000 x $2.50/M + 100 x $10/M


def test_protobuf_answer_is_an_export_trace_service_response(served: tuple[str, Path]) -> None:
    base, path = served
    records = decode_otlp_json(json.dumps(_json_body(None, span="8" * 16)))
    response = httpx.post(f"{base}/v1/traces", content=encode_otlp_protobuf(records),
                          headers={"Content-Type": "application/x-protobuf"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    parsed = ExportTraceServiceResponse.FromString(response.content)
    # a span without run id is no longer a warning (DESIGN 6b: it forms its trace's run)
    assert parsed == ExportTraceServiceResponse()
    assert "5" * 32 in {r["id"] for r in _snapshot(path)[1]}


def test_an_empty_protobuf_request_is_a_success(served: tuple[str, Path]) -> None:
    base, path = served
    before = _snapshot(path)
    response = httpx.post(f"{base}/v1/traces", content=b"", headers={"Content-Type": "application/x-protobuf"})
    assert response.status_code == 200
    assert ExportTraceServiceResponse.FromString(response.content) == ExportTraceServiceResponse()
    assert _snapshot(path) == before


def _bomb(expanded: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * (1 << 20)
    parts = [compressor.compress(chunk) for _ in range(expanded // len(chunk))]
    return b"".join(parts) + compressor.flush()


_VALID_JSON = json.dumps(_json_body("never-stored", span="9" * 16)).encode()
_VALID_PB = encode_otlp_protobuf(decode_otlp_json(_VALID_JSON))

BAD_BODIES = [
    pytest.param("application/x-protobuf", None, b"\xff\xff\xff\xff\x0f", 400,
                 "body is not an OTLP/protobuf ExportTraceServiceRequest", id="garbage-protobuf"),
    pytest.param("application/x-protobuf", None, _VALID_PB[: len(_VALID_PB) // 2], 400,
                 "body is not an OTLP/protobuf ExportTraceServiceRequest", id="truncated-protobuf"),
    pytest.param("application/json", None, b'{"resourceSpans": [', 400, "body is not valid JSON",
                 id="truncated-json"),
    pytest.param("application/json", None, b'{"resourceSpans": "nope"}', 400, "resourceSpans must be an array",
                 id="wrong-shape-json"),
    pytest.param("application/json", None, _VALID_JSON.replace(b"9" * 16, b"zz" * 8), 400,
                 "spanId must be 16 hex chars", id="bad-span-id"),
    pytest.param("text/plain", None, _VALID_JSON, 415, "unsupported Content-Type 'text/plain'", id="wrong-type"),
    pytest.param("", None, _VALID_JSON, 415, "unsupported Content-Type '(none)'", id="no-type"),
    pytest.param("application/json", "br", _VALID_JSON, 415, "unsupported Content-Encoding 'br'",
                 id="wrong-encoding"),
    pytest.param("application/json", None, b" " * (LIMIT + 1), 413, "over the 262,144-byte limit", id="oversized"),
    pytest.param("application/json", "gzip", _bomb(64 << 20), 413, "expands past the 262,144-byte limit",
                 id="gzip-bomb"),
    pytest.param("application/json", "gzip", b"this is not gzip", 400, "the body is not valid gzip",
                 id="not-gzip"),
    pytest.param("application/json", "gzip", gzip.compress(_VALID_JSON)[:-12], 400, "the gzip body is truncated",
                 id="truncated-gzip"),
]


@pytest.mark.parametrize(("content_type", "encoding", "body", "status", "message"), BAD_BODIES)
def test_bad_bodies_get_the_right_4xx_and_change_nothing(
        served: tuple[str, Path], content_type: str, encoding: str | None, body: bytes, status: int,
        message: str) -> None:
    base, path = served
    before = _snapshot(path)
    headers = {"Content-Type": content_type} if content_type else {}
    if encoding:
        headers["Content-Encoding"] = encoding
    with httpx.Client() as client:
        response = client.post(f"{base}/v1/traces", content=body, headers=headers)
        assert ("content-type" in response.request.headers) == bool(content_type)
    assert response.status_code == status
    payload = response.json() if response.headers["content-type"] == "application/json" else None
    if payload is not None:
        assert message in payload["message"]
    else:
        from google.rpc import status_pb2

        assert message in status_pb2.Status.FromString(response.content).message
    # The server keeps serving, and a good body still goes in afterwards.
    assert httpx.get(f"{base}/healthz").text == "ok"
    assert _snapshot(path) == before
    ok = httpx.post(f"{base}/v1/traces", content=json.dumps(_json_body("after-bad-body", span="a" * 16)),
                    headers={"Content-Type": "application/json"})
    assert ok.status_code == 200


def test_gunzip_bounded_never_holds_more_than_the_limit() -> None:
    bomb = _bomb(256 << 20)  # 256 MiB of zeros in about 256 KiB
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge):
            gunzip_bounded(bomb, 1 << 20)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * (1 << 20)


def test_gunzip_bounded_reads_every_member() -> None:
    body = gzip.compress(b"hello ") + gzip.compress(b"world")
    assert gunzip_bounded(body, 100) == b"hello world"
    assert gunzip_bounded(gzip.compress(b"x" * 100), 100) == b"x" * 100
    with pytest.raises(BodyTooLarge):
        gunzip_bounded(gzip.compress(b"x" * 101), 100)


def test_token_guards_ingest_api_metrics_and_ui(tmp_path: Path) -> None:
    path = build_fixture_store(tmp_path / "runtrace.db")
    token = "s3cret-token"
    with running_server(create_app(path, token=token)) as base:
        body = json.dumps(_json_body("token-run")).encode()
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {token}"}):
            response = httpx.post(f"{base}/v1/traces", content=body,
                                  headers={"Content-Type": "application/json", **headers})
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == 'Bearer realm="runtrace"'
        for url in ("/", "/runs/r1-fix-flaky", "/search?q=x", "/spend", "/api/runs", "/metrics"):
            assert httpx.get(base + url).status_code == 401
        assert httpx.get(f"{base}/static/style.css").status_code == 200
        with Store.open(path, create=False) as store:
            assert get_run(store, "token-run") is None

        ok = httpx.post(f"{base}/v1/traces", content=body,
                        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        assert httpx.get(f"{base}/api/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 200

        # A browser: ?token= once, then the cookie; the token leaves the address bar.
        with httpx.Client(base_url=base) as browser:
            login = browser.get(f"/runs/r1-fix-flaky?token={token}&x=1")
            assert login.status_code == 303
            assert login.headers["location"] == "/runs/r1-fix-flaky?x=1"
            assert token not in login.headers["set-cookie"]
            assert "HttpOnly" in login.headers["set-cookie"]
            page = browser.get("/runs/r1-fix-flaky")
            assert page.status_code == 200
            assert "fix flaky test #412" in page.text
        assert httpx.get(f"{base}/?token=wrong").status_code == 401


def _raw_get(base: str, target: str) -> tuple[int, dict[str, str]]:
    """One request with ``target`` sent byte for byte (an HTTP client would normalise ``//x`` or ``\\``)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in head[1:])
    return int(head[0].split()[1]), {k.lower(): v for k, v in headers.items()}


@pytest.mark.parametrize(("target", "location"), [
    ("//evil.example/?token=T", "/evil.example/"),
    ("///evil.example/x?token=T&a=1", "/evil.example/x?a=1"),
    ("/\\evil.example/?token=T", "/%5Cevil.example/"),
    ("/%2F%2Fevil.example/?token=T", "/%2F%2Fevil.example/"),
    ("/runs/a%0D%0ASet-Cookie:x=1?token=T", "/runs/a%0D%0ASet-Cookie:x=1"),
    ("/spend?by=model&token=T", "/spend?by=model"),
])
def test_the_login_redirect_stays_on_this_site(tmp_path: Path, target: str, location: str) -> None:
    path = tmp_path / "runtrace.db"
    Store.open(path).close()
    with running_server(create_app(path, token="T")) as base:
        status, headers = _raw_get(base, target)
    assert status == 303
    assert headers["location"] == location
    assert "set-cookie" in headers and "x=1" not in headers["set-cookie"]


def test_bytes_decoded_at_once_are_capped_with_a_503_and_retry_after(tmp_path: Path) -> None:
    """Was: every concurrent body was read and decoded at once (six 55 MiB JSON bodies took 4 GiB)."""
    path = tmp_path / "runtrace.db"
    Store.open(path).close()
    body = json.dumps(_json_body("capped-run")).encode()
    with running_server(create_app(path, max_body_bytes=1 << 20, max_decode_bytes=100_000)) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as slow:
            # A sender that declared 99,900 bytes and is still sending them holds its share of the budget.
            slow.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 99900\r\n\r\n{")
            time.sleep(0.3)
            busy = httpx.post(f"{base}/v1/traces", content=body, headers={"Content-Type": "application/json"})
            assert busy.status_code == 503
            assert busy.headers["retry-after"] == "1"
            assert busy.json() == {"code": 14, "message": "the server is decoding 99,900 bytes of other requests "
                                                          "(its cap is 100,000); retry later"}
        time.sleep(0.3)  # the slow sender went away: its bytes are given back
        ok = httpx.post(f"{base}/v1/traces", content=body, headers={"Content-Type": "application/json"})
        assert ok.status_code == 200
        # One request alone always gets in, even one bigger than the cap (it is under the body limit).
        big = json.dumps(_json_body("big-run", span="7" * 16)).encode() + b" " * 200_000
        assert httpx.post(f"{base}/v1/traces", content=big, headers={"Content-Type": "application/json"}
                          ).status_code == 200
    with Store.open(path, create=False) as store:
        assert get_run(store, "capped-run") is not None and get_run(store, "big-run") is not None


def test_graceful_shutdown_loses_no_acknowledged_batch(tmp_path: Path) -> None:
    path = tmp_path / "runtrace.db"
    Store.open(path).close()
    acked: list[str] = []
    first_acks = threading.Event()

    def send(base: str) -> None:
        with httpx.Client() as client:
            for n in range(400):
                run_id = f"shutdown-{n}"
                try:
                    response = client.post(f"{base}/v1/traces",
                                           content=json.dumps(_json_body(run_id, span=f"{n + 1:016x}")),
                                           headers={"Content-Type": "application/json"}, timeout=10)
                except httpx.HTTPError:
                    return
                if response.status_code == 200:
                    acked.append(run_id)
                if len(acked) == 5:
                    first_acks.set()

    with running_server(create_app(path)) as base:
        sender = threading.Thread(target=send, args=(base,))
        sender.start()
        assert first_acks.wait(30)
    sender.join(30)
    assert len(acked) >= 5
    with Store.open(path, create=False) as store:
        stored = {r["id"] for r in list_runs(store, limit=0)}
    assert set(acked) <= stored
