"""An OTLP endpoint that is down or hangs must not slow, break or lose the instrumented program.

``instrument(otlp_endpoint=...)`` adds a BatchSpanProcessor with the SDK's
OTLP/HTTP exporter next to the embedded store's. The endpoint is either a
closed port on 127.0.0.1 (connection refused) or a socket that accepts and
never answers. The program makes real openai calls over a mock transport and
``@runtrace.tool`` calls inside a run; in the hanging case it carries on only
once the exporter is stuck in a connection, so its calls demonstrably do not
wait for the exporter. Afterwards every span is in the store with exact run
totals, and nothing was raised into the program (runtrace's own errors would
be re-raised here by ``fail_open`` under pytest).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import runtrace
from llm_fakes import ChatUsage, FakeLLM, chat_completion, json_reply
from runtrace import semconv as sc
from runtrace.store.db import Store
from runtrace.store.queries import get_run

CALLS = 30  # LLM calls, and as many tool calls, in the run
PROGRAM_LIMIT_S = 120  # liveness guard only: a hung program fails the test instead of hanging CI


class HangingEndpoint:
    """Accepts connections on 127.0.0.1 and never reads or answers; closes them all at the end."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="hanging-endpoint", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(conn)
            self.connected.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def endpoint(kind: str) -> Iterator[tuple[str, HangingEndpoint | None]]:
    if kind == "down":
        yield f"http://127.0.0.1:{closed_port()}", None
        return
    hanging = HangingEndpoint()
    try:
        yield f"http://127.0.0.1:{hanging.port}", hanging
    finally:
        hanging.close()


@pytest.fixture
def bounded_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exporters' own bounds: 0.25 s per export (spans and runtrace's metrics, which go to the same
    endpoint), span batches sent every 20 ms (so they go out mid-run)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "0.25")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0.25")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "0.25")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)


@pytest.mark.parametrize("kind", ["down", "hanging"])
def test_calls_complete_and_every_span_is_stored_when_the_otlp_endpoint_is_down_or_hangs(
        tmp_path: Path, bounded_exporter: None, kind: str) -> None:
    store_path = tmp_path / "runtrace.db"
    memory = InMemorySpanExporter()
    fake = FakeLLM(default=json_reply(chat_completion(model="gpt-4o-mini", usage=ChatUsage(100, 10))))
    client = fake.openai()
    results: dict[str, Any] = {"replies": [], "tools": [], "error": None}

    @runtrace.tool
    def read_file(path: str) -> str:
        return f"contents of {path}"

    with endpoint(kind) as (url, hanging):
        runtrace.uninstrument()
        runtrace.instrument(service_name="exporter-down", store=store_path, otlp_endpoint=url,
                            span_processors=(SimpleSpanProcessor(memory),))
        try:
            def program() -> None:
                try:
                    with runtrace.run("endpoint " + kind, project="reliability") as run:
                        results["run_id"] = run.id
                        for i in range(CALLS):
                            if i == CALLS // 2 and hanging is not None:
                                # Carry on only once the exporter sits in a connection that never answers.
                                results["stuck"] = hanging.connected.wait(PROGRAM_LIMIT_S / 2)
                            reply = client.chat.completions.create(
                                model="gpt-4o-mini", messages=[{"role": "user", "content": f"step {i}"}])
                            results["replies"].append(reply.choices[0].message.content)
                            results["tools"].append(read_file(path=f"src/file_{i}.py"))
                        run.accept()
                except BaseException as exc:  # noqa: BLE001 - reported below
                    results["error"] = exc

            worker = threading.Thread(target=program, name="instrumented-program")
            worker.start()
            worker.join(PROGRAM_LIMIT_S)
            assert not worker.is_alive(), "the instrumented program hung on the exporter"
            assert results["error"] is None, repr(results["error"])
            assert results["replies"] == ["Hello!"] * CALLS
            assert results["tools"] == [f"contents of src/file_{i}.py" for i in range(CALLS)]
            if hanging is not None:
                assert results["stuck"] is True
                assert hanging.accepted  # the exporter was stuck while the calls went on
            runtrace.flush(timeout_millis=3_000)  # the OTLP side may report failure; it must not raise
        finally:
            runtrace.uninstrument()  # shuts the exporters down, each within its own timeout

    exported = memory.get_finished_spans()
    assert len(exported) == 2 * CALLS + 1
    with Store.open(store_path, create=False) as store:
        assert store.count_spans() == len(exported)
        stored = {r[0] for r in store.execute("SELECT span_id FROM spans")}
        assert stored == {f"{s.context.span_id:016x}" for s in exported}
        run = get_run(store, results["run_id"])
    assert run is not None
    assert (run["outcome"], run["llm_calls"], run["tool_calls"], run["input_tokens"], run["output_tokens"],
            run["unpriced_calls"]) == (sc.OUTCOME_ACCEPTED, CALLS, CALLS, 100 * CALLS, 10 * CALLS, 0)
    # gpt-4o-mini: $0.15 in / $0.60 out per million tokens.
    assert run["cost_usd"] == pytest.approx(CALLS * (100 * 0.15 + 10 * 0.6) / 1e6, abs=1e-12)
