"""A coding agent's session on the run page: its tool calls, the refused one, and its own cost beside runtrace's.

The recorded Claude Code session (shared/agent-telemetry/samples/claude) is sent
to a real ``runtrace serve`` as the agent sent it (OTLP/JSON logs and traces).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from agent_samples import SAMPLES, raw_requests
from runtrace.server.app import create_app
from runtrace.store.db import Store
from test_server_support import running_server

SESSION = "5694915b-b3bc-412d-acc2-f3876e276bc6"
AGENT_COST = 0.0319 + 0.03193675 + 0.0319735 + 0.03201025 + 0.032047 + 0.03208375 + 0.0321205

if not (SAMPLES / "claude").is_dir():  # pragma: no cover - the samples ship with the repository's CI data
    pytest.skip(f"no agent samples at {SAMPLES}", allow_module_level=True)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("agent-ui") / "rt.db"
    Store.open(path).close()
    with running_server(create_app(path)) as url:
        for signal in ("logs", "traces"):
            for body in raw_requests("claude", signal):
                answer = httpx.post(f"{url}/v1/{signal}", content=json.dumps(body),
                                    headers={"Content-Type": "application/json"}, timeout=30)
                assert answer.status_code == 200, answer.text
        yield url


def test_the_run_page_puts_the_agents_cost_beside_runtraces_and_counts_refusals(base: str) -> None:
    html = httpx.get(f"{base}/runs/{SESSION}").text
    assert f'<div class="sub" id="agent-cost">the agent reported ${AGENT_COST:.4f}</div>' in html
    assert '<span class="refused" id="refused-count">1 refused</span>' in html
    refused_rows = re.findall(r'<details class="wf-span k-\w+" id="span-(\w+)"[^>]*>\s*<summary class="wf-row">'
                              r'\s*<span class="wf-name"[^>]*>([^<]+)[^\n]*<span class="flag f-refused">refused</span>',
                              html)
    assert [name.strip() for _id, name in refused_rows] == ["claude_code.tool.blocked_on_user"]


def test_the_timeline_api_lists_the_tool_calls_and_marks_the_refused_one(base: str) -> None:
    rows = httpx.get(f"{base}/api/runs/{SESSION}/spans?limit=1000").json()["rows"]
    tools = [(r["name"], r["flags"]) for r in rows if r["kind"] == "tool"]
    assert tools == [("execute_tool Read", []), ("execute_tool Read", ["repeated read"]),
                     ("execute_tool Read", ["error"]),  # the file did not exist
                     ("execute_tool Edit", []), ("execute_tool Bash", [])]
    refused = [r for r in rows if "refused" in r["flags"]]
    assert len(refused) == 1
    detail = httpx.get(f"{base}/api/runs/{SESSION}/spans/{refused[0]['span_id']}").json()
    assert detail["flags"] == ["refused"]
    assert dict(detail["attribute_rows"])["decision"] == "reject"
