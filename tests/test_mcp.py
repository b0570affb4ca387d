"""MCP tool calls through the real MCP Python SDK against a real stdio server subprocess."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind, StatusCode

pytest.importorskip("mcp.server.mcpserver", reason="these tests drive the mcp 2.x SDK")

from mcp import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402

import runtrace  # noqa: E402
from runtrace import detect, semconv  # noqa: E402
from runtrace.instrumentation import mcp as mcp_instrumentation  # noqa: E402
from runtrace.store.queries import get_run  # noqa: E402

SERVER = Path(__file__).with_name("mcp_server.py")
README = "# demo\n\nA small project.\n"


@asynccontextmanager
async def mcp_session(tmp_path: Path) -> AsyncIterator[ClientSession]:
    """A ClientSession to tests/mcp_server.py running as a subprocess over stdio."""
    params = StdioServerParameters(command=sys.executable, args=[str(SERVER)])
    with open(tmp_path / "mcp-server.log", "w") as errlog:
        async with stdio_client(params, errlog=errlog) as streams, ClientSession(*streams) as session:
            await session.initialize()
            yield session


def tool_spans(spans):
    return [s for s in spans if s.attributes.get(semconv.GEN_AI_OPERATION_NAME) == semconv.OP_EXECUTE_TOOL]


async def test_each_call_is_one_tool_span_with_hashes_repeats_and_errors(instrumented, tmp_path):
    async with mcp_session(tmp_path) as session:
        with runtrace.run("mcp agent", project="docs") as run:
            first = await session.call_tool("read_file", {"path": "README.md"})
            second = await session.call_tool("read_file", {"path": "README.md"})
            other = await session.call_tool("read_file", arguments={"path": "src/app.py"})
            missing = await session.call_tool("read_file", {"path": "nope.txt"})
            run.accept()

    assert first.content[0].text == README and second.content[0].text == README
    assert other.content[0].text == "print('hello')\n"
    # An isError result is the caller's to handle: returned unchanged, not raised.
    assert missing.is_error is True
    assert missing.content[0].text == "Error executing tool read_file: no such file: nope.txt"

    spans = instrumented.spans()
    tools = tool_spans(spans)
    assert [s.name for s in tools] == ["execute_tool read_file"] * 4
    assert [s.attributes[semconv.GEN_AI_TOOL_NAME] for s in tools] == ["read_file"] * 4
    assert {s.attributes[semconv.TOOL_SOURCE] for s in tools} == {semconv.TOOL_SOURCE_MCP}
    assert {s.attributes[semconv.GEN_AI_TOOL_TYPE] for s in tools} == {"extension"}
    assert {s.attributes[semconv.RUN_ID] for s in tools} == {run.id}

    readme_args = detect.stable_hash({"path": "README.md"})
    hashes = [s.attributes[semconv.TOOL_ARGS_HASH] for s in tools]
    assert hashes[0] == hashes[1] == readme_args
    assert hashes[2] == detect.stable_hash({"path": "src/app.py"}) != readme_args
    assert tools[0].attributes[semconv.TOOL_RESULT_HASH] == detect.stable_hash([{"type": "text", "text": README}])
    assert tools[1].attributes[semconv.TOOL_RESULT_HASH] == tools[0].attributes[semconv.TOOL_RESULT_HASH]

    # The second identical read is the repeated one, and only it.
    assert [s.attributes[semconv.TOOL_REPEATED_READ] for s in tools] == [False, True, False, False]
    assert [s.attributes[semconv.TOOL_REPEAT_COUNT] for s in tools] == [1, 2, 1, 1]
    assert [[e.name for e in s.events] for s in tools] == [[], [semconv.EVENT_REPEATED_READ], [], []]

    assert [s.status.status_code for s in tools] == [StatusCode.UNSET] * 3 + [StatusCode.ERROR]
    # Content capture is off: the tool's error text (it quotes the path) stays out of the span.
    assert tools[3].status.description == "the MCP tool returned isError"
    assert tools[3].attributes[semconv.ERROR_TYPE] == semconv.ERROR_TYPE_TOOL_ERROR
    assert semconv.ERROR_TYPE not in tools[0].attributes
    # Content capture is off: hashes only.
    assert not any(semconv.GEN_AI_TOOL_CALL_ARGUMENTS in s.attributes or semconv.GEN_AI_TOOL_CALL_RESULT
                   in s.attributes for s in tools)

    # The SDK's own request span for each call sits under runtrace's tool span.
    for tool in tools:
        sends = [s for s in spans if s.parent is not None and s.parent.span_id == tool.context.span_id
                 and s.name == "MCP send tools/call read_file"]
        assert len(sends) == 1 and sends[0].kind == SpanKind.CLIENT

    assert run.totals.tool_calls == 4 and run.totals.repeated_reads == 1
    stored = get_run(instrumented.open_store(), run.id)
    assert stored["tool_calls"] == 4
    assert stored["repeated_reads"] == 1
    assert stored["outcome"] == "accepted"
    assert [s["tool_name"] for s in stored["spans"] if s["kind"] == "tool"] == ["read_file"] * 4


async def test_trace_context_and_run_id_reach_the_server(instrumented, tmp_path):
    async with mcp_session(tmp_path) as session:
        with runtrace.run("propagation") as run:
            result = await session.call_tool("trace_context", {})
    seen = json.loads(result.content[0].text)

    spans = instrumented.spans()
    (tool,) = tool_spans(spans)
    (send,) = [s for s in spans if s.name == "MCP send tools/call trace_context"]
    assert send.parent.span_id == tool.context.span_id
    version, trace_id, parent_id, flags = seen["traceparent"].split("-")
    assert version == "00" and int(flags, 16) & 1 == 1  # sampled
    (run_span,) = [s for s in spans if s.name == "run propagation"]
    assert trace_id == f"{tool.context.trace_id:032x}" == f"{run_span.context.trace_id:032x}"
    assert parent_id == f"{send.context.span_id:016x}"
    assert seen["baggage"] == f"{semconv.BAGGAGE_RUN_ID}={run.id}"


async def test_budget_stops_the_call_before_it_is_sent(instrumented, tmp_path):
    async with mcp_session(tmp_path) as session:
        with pytest.raises(runtrace.BudgetExceeded) as stopped, \
                runtrace.run("budgeted", budget=runtrace.Budget(max_tool_calls=2)) as run:
            await session.call_tool("write_file", {"path": "notes.md", "text": "one"})
            await session.call_tool("write_file", {"path": "notes.md", "text": "two"})
            await session.call_tool("write_file", {"path": "notes.md", "text": "three"})
        # The third write never reached the server: the file still says "two".
        after = await session.call_tool("read_file", {"path": "notes.md"})
    assert after.content[0].text == "two"
    assert stopped.value.limit == "max_tool_calls"
    assert run.outcome == semconv.OUTCOME_BUDGET_STOPPED
    assert len([s for s in tool_spans(instrumented.spans())
                if s.attributes.get(semconv.RUN_ID) == run.id]) == 2


def test_uninstrument_restores_the_original_methods(instrumented):
    from mcp.client.client import Client
    from mcp.client.session import ClientSession as Session

    assert "mcp" in runtrace._state.current().patched
    assert type(Session.__dict__["call_tool"]).__name__ == "FunctionWrapper"
    patched_session, patched_client = Session.__dict__["call_tool"], Client.__dict__["call_tool"]
    originals = (patched_session.__wrapped__, patched_client.__wrapped__)
    runtrace.uninstrument()
    assert (Session.__dict__["call_tool"], Client.__dict__["call_tool"]) == originals
    assert Session.__dict__["call_tool"] is originals[0] and Client.__dict__["call_tool"] is originals[1]
    assert mcp_instrumentation.instrument() is True
    assert Session.__dict__["call_tool"].__wrapped__ is originals[0]
    mcp_instrumentation.uninstrument()
    assert Session.__dict__["call_tool"] is originals[0]


def runtrace_tool_spans(spans):
    """Tool spans made by runtrace itself (an in-process MCP server makes execute_tool spans too)."""
    return [s for s in tool_spans(spans) if s.instrumentation_scope.name == "runtrace.tools"]


async def test_high_level_client_call_is_one_span(instrumented):
    """mcp 2.x Client.call_tool wraps ClientSession.call_tool: still one span per call."""
    from mcp.client.client import Client

    from mcp_server import server

    async with Client(server) as client:
        with runtrace.run("client") as run:
            result = await client.call_tool("read_file", {"path": "src/app.py"})
            again = await client.call_tool("read_file", {"path": "src/app.py"})
    assert result.content[0].text == again.content[0].text == "print('hello')\n"
    tools = runtrace_tool_spans(instrumented.spans())
    assert [s.name for s in tools] == ["execute_tool read_file"] * 2
    assert [s.attributes[semconv.TOOL_REPEATED_READ] for s in tools] == [False, True]
    assert run.totals.tool_calls == 2 and run.totals.repeated_reads == 1


async def test_a_traced_mcp_server_does_not_double_count_tool_calls(instrumented):
    from mcp.client.client import Client

    from mcp_server import server

    async with Client(server) as client:
        with runtrace.run("traced server") as run:
            await client.call_tool("read_file", {"path": "README.md"})
    assert get_run(instrumented.open_store(), run.id)["tool_calls"] == 1
