"""`runtrace serve` as a user starts it: the real command in a subprocess, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import runtrace
from runtrace import semconv as sc
from runtrace.cli import main
from runtrace.cli.serve import is_loopback
from runtrace.store.db import Store
from runtrace.store.queries import get_run
from test_server_support import free_port


def test_binding_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--store", str(tmp_path / "s.db")],
                                env={sc.ENV_SERVE_TOKEN: ""})
    assert result.exit_code == 1
    assert "binding 0.0.0.0 exposes your runs to the network: pass --token" in result.output
    assert not (tmp_path / "s.db").exists()


def test_loopback_names() -> None:
    assert [is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]")] == [True] * 5
    assert [is_loopback(h) for h in ("0.0.0.0", "192.168.1.10", "example.com", "::")] == [False] * 4


def _start(store: Path, port: int, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    src = str(Path(runtrace.__file__).resolve().parent.parent)
    environ = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    environ.pop("PYTEST_CURRENT_TEST", None)
    process = subprocess.Popen([sys.executable, "-m", "runtrace.cli", "serve", "--port", str(port), "--store",
                                str(store), *extra], env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/static/style.css", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("serve did not start within 60 s")


@pytest.mark.slow
def test_serve_receives_an_sdk_export_and_stops_gracefully(tmp_path: Path) -> None:
    store_path = tmp_path / "runtrace.db"
    port = free_port()
    process = _start(store_path, port, env={sc.ENV_SERVE_TOKEN: "tok"})
    try:
        base = f"http://127.0.0.1:{port}"
        exporter = OTLPSpanExporter(endpoint=f"{base}/v1/traces", headers={"Authorization": "Bearer tok"})
        provider = TracerProvider(resource=Resource.create({sc.SERVICE_NAME: "cli-test"}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("run cli", attributes={
                sc.SPAN_ROLE: sc.ROLE_RUN, sc.RUN_ID: "cli-run", sc.RUN_NAME: "cli", sc.PROJECT: "ops"}):
            for _ in range(3):
                with tracer.start_as_current_span("chat gpt-4o", attributes={
                        sc.RUN_ID: "cli-run", sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_PROVIDER_NAME: "openai",
                        sc.GEN_AI_REQUEST_MODEL: "gpt-4o", sc.GEN_AI_USAGE_INPUT_TOKENS: 4000,
                        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 100}):
                    pass
        assert provider.force_flush(30_000)
        provider.shutdown()
        assert httpx.get(f"{base}/").status_code == 401  # the token guards the UI too
        page = httpx.get(f"{base}/runs/cli-run", headers={"Authorization": "Bearer tok"})
        assert page.status_code == 200 and "run cli" in page.text
        # DNS rebinding: a loopback server answers only to loopback host names.
        assert httpx.get(f"{base}/healthz", headers={"Host": "evil.example", "Authorization": "Bearer tok"}
                         ).status_code == 400
    finally:
        process.send_signal(signal.SIGTERM)
        # uvicorn drains the requests, runs the lifespan shutdown (closing the store), then
        # re-raises the signal so the exit status still says "terminated".
        assert process.wait(30) in (0, -signal.SIGTERM)
        assert b"Traceback" not in (process.stderr.read() if process.stderr else b"")
    assert not Path(f"{store_path}-wal").exists()  # every connection closed: the WAL was checkpointed away
    with Store.open(store_path, create=False) as store:
        run = get_run(store, "cli-run")
    assert run is not None
    assert (run["llm_calls"], run["project"], run["outcome"]) == (3, "ops", "open")
    assert run["cost_usd"] == pytest.approx(3 * (4000 * 2.5e-6 + 100 * 10e-6), abs=1e-12)  # $0.033
