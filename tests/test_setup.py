"""instrument(): environment variables, joining an existing provider, flushing at exit.

The process-level behaviours run in fresh subprocesses: OpenTelemetry allows one
global TracerProvider per process, and "flushes at exit" needs a process to exit.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import runtrace
from runtrace import _config, _setup
from runtrace.store.db import Store
from runtrace.store.otlp import decode_otlp_protobuf
from runtrace.store.queries import list_runs

SRC = str(Path(__file__).resolve().parents[1] / "src")


class Receiver:
    """A real OTLP/HTTP endpoint on 127.0.0.1 that keeps what it is sent."""

    def __init__(self) -> None:
        self.spans: list = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.paths.append(self.path)
                if self.path == "/v1/traces":
                    receiver.spans.extend(decode_otlp_protobuf(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def run_child(code: str, env: dict[str, str], tmp_path: Path) -> str:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(code))
    full_env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": SRC, "HOME": str(tmp_path), **env}
    done = subprocess.run([sys.executable, str(script)], env=full_env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


AGENT = """
    import runtrace

    @runtrace.tool
    def read_file(path):
        return "text of " + path

    with runtrace.run("env run", project="p") as run:
        read_file("a.py")
        read_file("a.py")
        run.accept()
    print(run.id)
"""


def test_environment_configures_service_store_and_otlp_and_exit_flushes(tmp_path, receiver) -> None:
    store = tmp_path / "from-env.db"
    run_id = run_child("import runtrace\nruntrace.instrument()\n" + textwrap.dedent(AGENT), {
        "OTEL_SERVICE_NAME": "svc-from-env",
        "RUNTRACE_STORE": str(store),
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
    }, tmp_path).strip()
    # no flush() in the child: the spans got out at interpreter exit
    s = Store.open(store, create=False)
    try:
        (row,) = list_runs(s, limit=0)
    finally:
        s.close()
    assert (row["id"], row["service"], row["tool_calls"], row["repeated_reads"]) == \
        (run_id, "svc-from-env", 2, 1)
    assert sorted(sp.name for sp in receiver.spans) == ["execute_tool read_file", "execute_tool read_file",
                                                         "run env run"]
    assert {sp.resource["service.name"] for sp in receiver.spans} == {"svc-from-env"}


def test_joins_the_tracer_provider_the_program_installed(tmp_path) -> None:
    store = tmp_path / "joined.db"
    out = run_child("""
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        mine = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": "app-owned"}))
        provider.add_span_processor(SimpleSpanProcessor(mine))
        trace.set_tracer_provider(provider)

        import runtrace
        runtrace.instrument(service_name="ignored", store=STORE)
        assert trace.get_tracer_provider() is provider
        with trace.get_tracer("app").start_as_current_span("app work"):
            with runtrace.run("joined") as run:
                pass
        runtrace.flush()
        print(sorted(s.name for s in mine.get_finished_spans()))
    """.replace("STORE", repr(str(store))), {}, tmp_path)
    assert out.strip() == "['app work', 'run joined']"
    s = Store.open(store, create=False)
    try:
        rows = {r["name"]: r for r in list_runs(s, limit=0)}
    finally:
        s.close()
    row = rows["joined"]
    assert (row["name"], row["service"], row["outcome"]) == ("joined", "app-owned", "open")
    # The app's own span carries no run id: by DESIGN 6b it forms the run of its trace.
    assert sorted(rows) == ["app work", "joined"]
    assert (rows["app work"]["llm_calls"], rows["app work"]["outcome"]) == (0, "open")


def test_store_false_keeps_nothing_locally(tmp_path) -> None:
    out = run_child("""
        import os, runtrace
        runtrace.instrument(store=False)
        with runtrace.run("nowhere"):
            pass
        runtrace.flush()
        print(os.path.exists(os.path.expanduser("~/.runtrace")))
    """, {}, tmp_path)
    assert out.strip() == "False"


@pytest.mark.parametrize(("value", "expected"), [
    ("true", True), ("True", True), ("SPAN_ONLY", True), ("span_and_event", True),
    ("false", False), ("NO_CONTENT", False), ("EVENT_ONLY", False), ("", False),
])
def test_content_capture_from_the_environment(monkeypatch, value, expected) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", value)
    assert _config.capture_content_from_env() is expected


def test_an_unknown_capture_value_stays_off_and_says_so(monkeypatch, caplog) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "yes please")
    assert _config.capture_content_from_env() is False
    assert "content capture stays off" in caplog.text


def test_otlp_endpoint_resolution(monkeypatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert _config.otlp_endpoint(None, "traces") is None
    assert _config.otlp_endpoint("http://c:4318/", "traces") == "http://c:4318/v1/traces"
    assert _config.otlp_endpoint("http://c:4318/v1/traces", "traces") == "http://c:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://shared:4318")
    assert _config.otlp_endpoint(None, "metrics") == "http://shared:4318/v1/metrics"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://own:9999/x")
    assert _config.otlp_endpoint(None, "traces") == "http://own:9999/x"


def test_a_bad_prices_file_fails_instrument_and_attaches_nothing(tmp_path, monkeypatch) -> None:
    bad = tmp_path / "prices.toml"
    bad.write_text('[models."m"]\ninput_per_mtok = "cheap"\n')
    monkeypatch.setenv("RUNTRACE_PRICES", str(bad))
    from runtrace import pricing

    pricing._default = None  # type: ignore[attr-defined]  # forget a pricer built by earlier tests
    runtrace.uninstrument()
    with pytest.raises(ValueError, match="prices.toml"):
        runtrace.instrument(store=tmp_path / "x.db")
    assert not _setup.is_instrumented()
    monkeypatch.delenv("RUNTRACE_PRICES")
    pricing._default = None  # type: ignore[attr-defined]


def test_instrument_is_idempotent_and_uninstrument_twice_is_harmless(tmp_path) -> None:
    runtrace.uninstrument()
    runtrace.instrument(store=tmp_path / "a.db")
    runtrace.instrument(store=tmp_path / "b.db")  # ignored: the first configuration stays
    assert _setup.store_path() == str(tmp_path / "a.db")
    runtrace.uninstrument()
    runtrace.uninstrument()
    assert not _setup.is_instrumented()


def test_a_store_that_cannot_be_opened_does_not_stop_the_program(tmp_path, caplog) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a folder should be")
    runtrace.uninstrument()
    runtrace.instrument(store=blocker / "runtrace.db")
    try:
        assert _setup.is_instrumented() and _setup.store_path() is None
        assert "cannot open the store" in caplog.text
        with runtrace.run("still works") as run:
            run.accept()
        assert runtrace.flush() is True
    finally:
        runtrace.uninstrument()
