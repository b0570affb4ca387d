"""Approved tools on MCP calls (issue 16, item 2): refused before the request reaches the server."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("mcp.server.mcpserver", reason="these tests drive the mcp 2.x SDK")

import runtrace  # noqa: E402
from runtrace.policy import Policy, Rules  # noqa: E402
from test_mcp import mcp_session  # noqa: E402


async def test_an_mcp_tool_outside_the_lists_never_reaches_the_server(tmp_path: Path) -> None:
    runtrace.uninstrument()
    runtrace.instrument(service_name="policy-mcp", store=tmp_path / "rt.db",
                        policies=Policy(projects={"docs": Rules(allowed_tools=frozenset({"read_file"}))}))
    try:
        async with mcp_session(tmp_path) as session:
            with pytest.raises(runtrace.BudgetExceeded) as info, runtrace.run("policy", project="docs") as run:
                await session.call_tool("write_file", {"path": "README.md", "text": "overwritten"})
            with pytest.raises(runtrace.BudgetExceeded) as by_budget, \
                    runtrace.run("budget", budget=runtrace.Budget(allowed_tools={"read_file"})):
                await session.call_tool("write_file", {"path": "README.md", "text": "overwritten"})
            with runtrace.run("allowed", project="docs"):
                after = await session.call_tool("read_file", {"path": "README.md"})
        assert after.content[0].text == "# demo\n\nA small project.\n"  # neither write reached the server
        assert (info.value.limit, by_budget.value.limit) == ("tool_not_allowed", "tool_not_allowed")
        assert (run.outcome, run.stop_reason) == ("budget_stopped", "tool_not_allowed")
    finally:
        runtrace.uninstrument()
