"""``runtrace forward``: the store's spans replayed as OTLP/HTTP protobuf, batched and resumable.

Targets are real servers on 127.0.0.1: ``runtrace serve`` (the spans land in a
second store, whose runs must equal the first's), and a small OTLP receiver that
counts every span it decodes, so "every span arrives once" is checked exactly,
across an interruption, a collector outage and a resume.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from runtrace.cli import main
from runtrace.scale.forward import Forwarder, ForwardError, traces_url
from runtrace.store.db import Store
from runtrace.store.otlp import decode_otlp_protobuf
from runtrace.store.queries import list_runs
from scale_helpers import build_fixture

TOTAL = 23  # spans in build_fixture() (its call outside any run moved to foreign_fixture)


class Receiver:
    """An OTLP/HTTP traces receiver: decodes each body with the store's decoder and keeps the spans.

    ``script`` holds the status codes to answer with before accepting (e.g. [503, 503]).
    """

    def __init__(self) -> None:
        self.spans: list[tuple[str, str]] = []
        self.requests = 0
        self.script: list[int] = []
        self.rejected_per_batch = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests += 1
                if self.path != "/v1/traces" or self.headers["Content-Type"] != "application/x-protobuf":
                    self.send_response(404)
                    self.end_headers()
                    return
                if receiver.script:
                    status = receiver.script.pop(0)
                    self.send_response(status)
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(b"not now")
                    return
                records = decode_otlp_protobuf(body)
                receiver.spans.extend((r.trace_id, r.span_id) for r in records)
                reply = ExportTraceServiceResponse()
                if receiver.rejected_per_batch:
                    reply.partial_success.CopyFrom(ExportTracePartialSuccess(
                        rejected_spans=receiver.rejected_per_batch, error_message="too old"))
                data = reply.SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "source.db"
    with Store.open(path) as store:
        for records, _ in build_fixture().batches:
            store.ingest(records)
        assert store.count_spans() == TOTAL
    return path


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def source_keys(path: Path) -> list[tuple[str, str]]:
    with Store.open(path) as store:
        return [(r["trace_id"], r["span_id"]) for r in store.execute("SELECT trace_id, span_id FROM spans ORDER BY rowid")]


def test_traces_url() -> None:
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert traces_url("https://x.example/otlp/v1/traces") == "https://x.example/otlp/v1/traces"
    with pytest.raises(ValueError, match="http"):
        traces_url("collector:4318")


def test_forward_to_runtrace_serve_reproduces_the_runs(source: Path, tmp_path: Path) -> None:
    from runtrace.server.app import create_app
    from test_server_support import running_server

    target = tmp_path / "target.db"
    Store.open(target).close()
    with running_server(create_app(target)) as base:
        result = CliRunner().invoke(main, ["forward", "--to", base, "--store", str(source), "--batch", "5"],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert f"forwarded {TOTAL} spans in 5 batches to {base}/v1/traces" in result.stdout
        # a second forward sends nothing new
        again = CliRunner().invoke(main, ["forward", "--to", base, "--store", str(source)], catch_exceptions=False)
        assert "forwarded 0 spans in 0 batches" in again.stdout
    with Store.open(source) as a, Store.open(target) as b:
        assert b.count_spans() == TOTAL
        assert list_runs(b, limit=0) == list_runs(a, limit=0)


def test_every_span_arrives_once(source: Path, receiver: Receiver) -> None:
    result = CliRunner().invoke(main, ["forward", "--to", receiver.url, "--store", str(source), "--batch", "7"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sorted(receiver.spans) == sorted(source_keys(source))
    assert receiver.requests == 4  # 7 + 7 + 7 + 3


def test_interrupted_forward_resumes_without_loss_or_repeat(source: Path, receiver: Receiver) -> None:
    batches = 0

    def interrupt_after_two(n: int) -> None:
        nonlocal batches
        batches += 1
        if batches == 2:
            raise KeyboardInterrupt

    with Store.open(source) as store, Forwarder(store, receiver.url, batch_size=5) as fwd:
        with pytest.raises(KeyboardInterrupt):
            fwd.run(on_batch=interrupt_after_two)
        assert len(receiver.spans) == 10
        assert fwd.checkpoint()[1] == 10
        assert fwd.pending() == TOTAL - 10
    result = CliRunner().invoke(main, ["forward", "--to", receiver.url, "--store", str(source), "--batch", "5"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "resuming: 10 spans already sent" in result.stderr
    assert f"forwarded {TOTAL - 10} spans in 3 batches" in result.stdout
    assert sorted(receiver.spans) == sorted(source_keys(source))


def test_collector_outage_keeps_the_checkpoint(source: Path, receiver: Receiver) -> None:
    with Store.open(source) as store, Forwarder(store, receiver.url, batch_size=10, max_attempts=3,
                                                backoff_s=0.01) as fwd:
        receiver.script = [503, 429]  # retried: the first batch gets through on the third attempt
        outage_started = False

        def go_down(n: int) -> None:
            nonlocal outage_started
            if not outage_started:
                outage_started = True
                receiver.script = [503, 502, 504]  # the next batch fails all three attempts

        with pytest.raises(ForwardError, match=r"unreachable after 3 attempts \(HTTP 504\)"):
            fwd.run(on_batch=go_down)
        assert len(receiver.spans) == 10 and fwd.checkpoint()[1] == 10
        result = fwd.run()
    assert result.sent == TOTAL - 10 and result.batches == 2
    assert sorted(receiver.spans) == sorted(source_keys(source))
    assert receiver.requests == 3 + 3 + 2


def test_later_spans_are_sent_by_the_next_forward(source: Path, receiver: Receiver) -> None:
    runner = CliRunner()
    runner.invoke(main, ["forward", "--to", receiver.url, "--store", str(source)], catch_exceptions=False)
    verdict = next(r for r in build_fixture().records if r.name == "run.outcome")
    with Store.open(source) as store:  # a verdict recorded later, with an older timestamp than the last span
        store.ingest([dataclasses.replace(verdict, span_id="00000000000000ff")])
    result = runner.invoke(main, ["forward", "--to", receiver.url, "--store", str(source)], catch_exceptions=False)
    assert "forwarded 1 spans in 1 batches" in result.stdout
    assert sorted(receiver.spans) == sorted(source_keys(source)) and len(receiver.spans) == TOTAL + 1
    # --restart sends everything again
    result = runner.invoke(main, ["forward", "--to", receiver.url, "--store", str(source), "--restart"],
                           catch_exceptions=False)
    assert f"forwarded {TOTAL + 1} spans" in result.stdout


def test_refused_batch_is_a_clear_error(source: Path, receiver: Receiver) -> None:
    receiver.script = [400]
    result = CliRunner().invoke(main, ["forward", "--to", receiver.url, "--store", str(source)])
    assert result.exit_code == 1
    assert f"{receiver.url}/v1/traces refused a batch with HTTP 400: not now" in result.output
    assert receiver.requests == 1  # 400 is never retried


def test_partial_success_is_reported(source: Path, receiver: Receiver) -> None:
    receiver.rejected_per_batch = 2
    result = CliRunner().invoke(main, ["forward", "--to", receiver.url, "--store", str(source), "--batch", "12"],
                                catch_exceptions=False)
    assert "warning: the target rejected 4 spans (OTLP partial success)" in result.stderr


def test_bad_arguments(source: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["forward", "--to", "localhost:4318", "--store", str(source)])
    assert result.exit_code == 1 and "--to must be an http(s) URL" in result.output
    result = runner.invoke(main, ["forward", "--to", "http://127.0.0.1:9", "--store", str(tmp_path / "nope.db")])
    assert result.exit_code == 1 and "no runtrace store at" in result.output
    result = runner.invoke(main, ["forward", "--to", "http://127.0.0.1:9", "--store", str(source), "--batch", "0"])
    assert result.exit_code == 2 and "--batch" in result.output
