"""With content capture off, nothing a prompt, completion, tool or MCP server carried leaves the process.

One scripted agent plants a unique secret in every place content can hide:
prompts and system instructions, completions (plain, streamed, Responses API,
the same completion three times), tool-call arguments the model asked for,
``@runtrace.tool`` arguments and results (sync and async, a same-call loop,
repeated reads of a file whose path and contents are secret), exceptions
raised by a tool, by the provider (a 400 quoting the request) and out of a
run, and MCP arguments, results and ``isError`` text. Everything that could
carry them out is then searched:

- every finished span (name, status description, attribute keys and values,
  event names and attributes, resource),
- every row of every table of the SQLite store,
- the OTLP/HTTP protobuf bodies the standard exporter sent to a local receiver.

With capture off no secret may appear anywhere; with capture on every one must
appear in each of the three (so the search itself is proven able to find them).
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import runtrace
from llm_fakes import (
    ChatUsage,
    FakeLLM,
    chat_chunks,
    chat_completion,
    chat_sse_reply,
    claude_message,
    json_reply,
    openai_error,
    response_object,
    tool_call,
)
from runtrace import semconv

try:
    import mcp.server.mcpserver  # noqa: F401 - tests/mcp_server.py needs the mcp 2.x SDK
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client
    HAVE_MCP = True
except ImportError:  # pragma: no cover - the MCP part is left out, the rest still runs
    HAVE_MCP = False

MCP_SERVER = Path(__file__).with_name("mcp_server.py")
SCENARIO_TIMEOUT_S = 90

# The secrets: each unique, none a substring of another or of anything runtrace writes.
EMAIL = "jane.doe@example.com"
API_KEY = "sk-live-SECRET123"
SECRETS = {
    "email": EMAIL,
    "api_key": API_KEY,
    "system": "sysinstr-Kq7vXw2",
    "prompt_chat": "prompt-chat-Rb41Zt",
    "prompt_stream": "prompt-stream-Hm83Lp",
    "prompt_responses": "prompt-resp-Jd05Wq",
    "prompt_anthropic": "prompt-anth-Ns62Fy",
    "completion_chat": "compl-chat-Ty19Gv",
    "completion_stream": "compl-stream-Pw57Cx",
    "completion_responses": "compl-resp-Vu28Ke",
    "completion_anthropic": "compl-anth-Bz44Qr",
    "completion_repeated": "compl-again-Xs90Dm",
    "model_tool_args": "modelargs-Lc36Hn",
    "tool_result": "toolresult-Gq72Ua",
    "file_path": "filepath-Wm13Ej",
    "file_content": "filecontent-Ey85Ro",
    "tool_exception": "toolexc-Fi67Sb",
    "async_arg": "asyncarg-Ok21Yc",
    "async_result": "asyncresult-Zh49Pt",
    "llm_error": "llmerror-Da58Iw",
    "run_exception": "runexc-Cr30Nv",
    "mcp_path": "mcppath-Ux74Ml",
    "mcp_text": "mcptext-Sj16Ga",
    "mcp_missing": "mcpmissing-Qf92Bh",
}
MCP_SECRETS = ("mcp_path", "mcp_text", "mcp_missing")
MODEL = "gpt-5.5"


# --- a local OTLP/HTTP receiver that keeps the bytes -----------------------------------

@contextmanager
def otlp_receiver() -> Iterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's spelling
            length = int(self.headers.get("Content-Length") or 0)
            bodies.append(self.rfile.read(length))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="otlp-receiver", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", bodies
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


# --- the agent ---------------------------------------------------------------------------

def _llm_calls() -> None:
    s = SECRETS
    asked = tool_call("call_1", "lookup_customer", {"email": EMAIL, "note": s["model_tool_args"]})
    chat = FakeLLM([json_reply(chat_completion(content=s["completion_chat"], tool_calls=[asked]))]).openai()
    chat.chat.completions.create(model=MODEL, messages=[{"role": "system", "content": s["system"]},
                                                        {"role": "user", "content": s["prompt_chat"]}])

    half = len(s["completion_stream"]) // 2
    pieces = (s["completion_stream"][:half], s["completion_stream"][half:])
    streamed = FakeLLM([chat_sse_reply(chat_chunks(pieces=pieces, usage=ChatUsage(20, 5)))]).openai()
    for _ in streamed.chat.completions.create(model=MODEL, stream=True, stream_options={"include_usage": True},
                                              messages=[{"role": "user", "content": s["prompt_stream"]}]):
        pass

    responses = FakeLLM([json_reply(response_object(text=s["completion_responses"]))]).openai()
    responses.responses.create(model=MODEL, input=s["prompt_responses"], instructions=s["system"])

    again = FakeLLM([json_reply(chat_completion(content=s["completion_repeated"]))] * 3).openai()
    for i in range(3):  # the same completion three times: a same_completion loop event
        again.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"{s['prompt_chat']} {i}"}])

    import openai

    failing = FakeLLM([json_reply(openai_error(400, f"Invalid value: {s['llm_error']}"), status=400)]).openai()
    with pytest.raises(openai.BadRequestError):
        failing.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": s["prompt_chat"]}])

    claude = FakeLLM([json_reply(claude_message(text=s["completion_anthropic"]))]).anthropic()
    claude.messages.create(model="claude-sonnet-4-6", max_tokens=64, system=s["system"],
                           messages=[{"role": "user", "content": s["prompt_anthropic"]}])


def _tool_calls(tmp_path: Path) -> None:
    s = SECRETS

    @runtrace.tool
    def lookup_customer(email: str, api_key: str) -> dict[str, str]:
        return {"customer": s["tool_result"], "email": email}

    @runtrace.tool
    def read_file(path: str) -> str:
        return Path(path).read_text()

    @runtrace.tool
    def find_order(order_id: str) -> str:
        raise ValueError(f"no order {order_id}")

    for _ in range(3):  # the example: a same_call loop and two repeated reads
        lookup_customer(email=EMAIL, api_key=API_KEY)
    secret_file = tmp_path / f"{s['file_path']}.txt"
    secret_file.write_text(f"token = {s['file_content']}\n")
    for _ in range(2):
        read_file(str(secret_file))
    with pytest.raises(ValueError):
        find_order(s["tool_exception"])


async def _async_calls(tmp_path: Path) -> None:
    s = SECRETS

    @runtrace.tool
    async def fetch_doc(doc_id: str) -> str:
        await asyncio.sleep(0)
        return s["async_result"]

    for _ in range(3):
        await fetch_doc(s["async_arg"])
    if not HAVE_MCP:
        return
    params = StdioServerParameters(command=sys.executable, args=[str(MCP_SERVER)])
    with open(tmp_path / "mcp-server.log", "w") as errlog:
        await _mcp_calls(params, errlog)


async def _mcp_calls(params: Any, errlog: Any) -> None:
    s = SECRETS
    async with stdio_client(params, errlog=errlog) as streams, ClientSession(*streams) as session:
        await session.initialize()
        await session.call_tool("write_file", {"path": s["mcp_path"], "text": s["mcp_text"]})
        for _ in range(2):
            await session.call_tool("read_file", {"path": s["mcp_path"]})
        missing = await session.call_tool("read_file", {"path": s["mcp_missing"]})
        assert missing.is_error is True


def run_agent(tmp_path: Path) -> None:
    with runtrace.run("leak check", project="privacy") as run:
        _llm_calls()
        _tool_calls(tmp_path)
        asyncio.run(asyncio.wait_for(_async_calls(tmp_path), SCENARIO_TIMEOUT_S))
        run.accept()
    with pytest.raises(ValueError), runtrace.run("failing run"):
        raise ValueError(SECRETS["run_exception"])


# --- what left the process ---------------------------------------------------------------

def _span_text(span: ReadableSpan) -> str:
    parts = [span.name, span.status.description or ""]
    for key, value in {**(span.resource.attributes or {}), **(span.attributes or {})}.items():
        parts += [key, repr(value)]
    for event in span.events:
        parts.append(event.name)
        for key, value in (event.attributes or {}).items():
            parts += [key, repr(value)]
    return "\n".join(parts)


def _store_text(path: Path) -> str:
    parts: list[str] = []
    with sqlite3.connect(path) as db:
        # Every real table, the search index's shadow tables included; the FTS5 virtual table itself
        # cannot be scanned (its rows are the spans table's, scanned here, and its terms live in the
        # shadow tables).
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                           "AND sql NOT LIKE 'CREATE VIRTUAL TABLE%'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - names from sqlite_master
                for cell in row:
                    parts.append(cell.decode("utf-8", "replace") if isinstance(cell, bytes) else str(cell))
    return "\n".join(parts)


@dataclass
class Exported:
    spans: str
    store: str
    otlp: str
    span_count: int


def export_everything(tmp_path: Path, *, capture_content: bool) -> Exported:
    memory = InMemorySpanExporter()
    store_path = tmp_path / "leaks.db"
    with otlp_receiver() as (endpoint, bodies):
        otlp = OTLPSpanExporter(endpoint=endpoint, timeout=10, compression=Compression.NoCompression)
        runtrace.uninstrument()
        runtrace.instrument(service_name="leak-agent", store=store_path, capture_content=capture_content,
                            span_processors=(SimpleSpanProcessor(memory), SimpleSpanProcessor(otlp)))
        try:
            run_agent(tmp_path)
            runtrace.flush()
        finally:
            runtrace.uninstrument()
        sent = b"".join(bodies).decode("utf-8", "replace")
    spans = memory.get_finished_spans()
    return Exported("\n".join(_span_text(s) for s in spans), _store_text(store_path), sent, len(spans))


def _planted() -> dict[str, str]:
    return {k: v for k, v in SECRETS.items() if HAVE_MCP or k not in MCP_SECRETS}


def _found(exported: Exported) -> dict[str, list[str]]:
    sinks = {"spans": exported.spans, "store": exported.store, "otlp": exported.otlp}
    return {name: [k for k, secret in _planted().items() if secret in text] for name, text in sinks.items()}


def test_with_capture_off_no_secret_leaves_the_process(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    exported = export_everything(tmp_path, capture_content=False)
    assert exported.span_count >= 20  # the agent really ran: 9 LLM calls, 13 tool calls, 2 runs
    assert exported.otlp and exported.store  # and something was sent and stored
    assert _found(exported) == {"spans": [], "store": [], "otlp": []}
    # What the detections say instead: the tool and counts (the example).
    assert ("lookup_customer was called 3 times with the same arguments and returned the same result"
            in exported.spans)
    assert "read_file returned content identical to an earlier read (2 times so far)" in exported.spans


def test_with_capture_on_every_secret_is_recorded(tmp_path: Path) -> None:
    exported = export_everything(tmp_path, capture_content=True)
    everything = list(_planted())
    assert _found(exported) == {"spans": everything, "store": everything, "otlp": everything}
    assert f"lookup_customer(email='{EMAIL}', api_key='{API_KEY}') returned the same result 3 times" \
        in exported.spans
    assert semconv.EVENT_LOOP in exported.spans
