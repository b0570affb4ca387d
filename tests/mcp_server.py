"""A tiny MCP server over stdio for tests/test_mcp.py (run as a subprocess).

It is deliberately not instrumented by runtrace: what it reports about trace
context is exactly what arrived in the request's ``_meta``.
"""

from __future__ import annotations

import json

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("runtrace-test-tools")

FILES = {"README.md": "# demo\n\nA small project.\n", "src/app.py": "print('hello')\n"}


@server.tool()
def read_file(path: str) -> str:
    """Read a file of the fixture project."""
    if path not in FILES:
        raise ToolError(f"no such file: {path}")
    return FILES[path]


@server.tool()
def write_file(path: str, text: str) -> str:
    """Replace a file of the fixture project."""
    FILES[path] = text
    return f"wrote {len(text)} characters to {path}"


@server.tool()
def trace_context(ctx: Context) -> str:
    """The W3C trace context and baggage this request carried in params._meta."""
    meta = ctx.request_context.meta or {}
    return json.dumps({key: meta.get(key) for key in ("traceparent", "baggage")})


if __name__ == "__main__":
    server.run("stdio")
