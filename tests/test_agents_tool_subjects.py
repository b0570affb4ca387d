"""What a coding agent's tool call did: the file, command or pattern, in the timeline row and the side panel.

Recorded sessions (tests/fixtures/agents) are sent to a real ``runtrace serve``
as the agents sent them (OTLP/JSON logs and traces). The file or command shows
only when the agent sent it: Claude Code with ``OTEL_LOG_TOOL_DETAILS=1``
(claude-project) and not without (claude-defaults), Gemini with ``logPrompts``,
Codex always (it sends its arguments whatever its prompt flag). Only the subject
is kept (never an edit's old/new text), a long command is cut, and the
repeated-read detector still compares the hash of the agent's whole input.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_samples import FIXTURES, log_requests, raw_requests
from runtrace import semconv as sc
from runtrace.agents import records_from_events
from runtrace.agents._build import ARGUMENT_CHARS
from runtrace.server.app import create_app
from runtrace.server.spanview import tool_subject
from runtrace.store.db import Store
from test_server_support import running_server

IDS = {"claude-project": "d34ec385-a875-4a25-9b18-379204112e9d",
       "claude-defaults": "5f555fc0-9719-401d-bc15-d23a55af4c2a",
       "codex-readonly": "01a2316b-e59a-76e0-888d-8b3ebba7238b",
       "gemini": "d128c9cc-f3f7-4799-a897-f6679ea8e137"}
SCRATCH = "/root/.cache/agent-kit/scratch"  # where the kit ran each recorded session

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"recordings not found in {FIXTURES}")


@contextmanager
def serving_recordings(path: Path, recordings: Iterable[str]) -> Iterator[str]:
    """A real ``runtrace serve`` on a new store at ``path``, each recording's logs and traces sent to it as OTLP/JSON."""
    Store.open(path).close()
    with running_server(create_app(path)) as url:
        for recording in recordings:
            for signal in ("logs", "traces"):
                for body in raw_requests(recording, signal, FIXTURES):
                    answer = httpx.post(f"{url}/v1/{signal}", content=json.dumps(body),
                                        headers={"Content-Type": "application/json"}, timeout=60)
                    assert answer.status_code == 200, answer.text
        yield url


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving_recordings(tmp_path_factory.mktemp("agent-subjects") / "rt.db", IDS) as url:
        yield url


def _tool_rows(base: str, recording: str) -> list[tuple[str, str | None, list[str], str | None]]:
    """(name, subject, flags, the side panel's arguments) of each tool-call row, executed or refused."""
    run_id = IDS[recording]
    rows = httpx.get(f"{base}/api/runs/{run_id}/spans?limit=1000", timeout=30).json()["rows"]
    out = []
    for row in rows:
        if row["kind"] == "tool" or "refused" in row["flags"]:
            detail = httpx.get(f"{base}/api/runs/{run_id}/spans/{row['span_id']}", timeout=30).json()
            out.append((row["name"], row["subject"], row["flags"], detail["tool"].get("arguments")))
    return out


def _args(**values: str) -> str:
    return json.dumps(values, indent=2)


def test_claude_code_with_tool_details_names_each_file_and_command(base: str) -> None:
    readme, missing = f"{SCRATCH}/s3a-claude-project/README.md", f"{SCRATCH}/s3a-claude-project/CONTRIBUTING.md"
    assert _tool_rows(base, "claude-project") == [
        # the -p auto-denial: only Claude Code's span tells of it, named from its claude_code.tool parent
        ("claude_code.tool.blocked_on_user", "touch denied.txt", ["refused"], _args(command="touch denied.txt")),
        ("execute_tool Read", readme, [], _args(file_path=readme)),
        ("execute_tool Read", readme, ["repeated read"], _args(file_path=readme)),
        ("execute_tool Read", missing, ["error"], _args(file_path=missing)),
        ("execute_tool Edit", readme, [], _args(file_path=readme)),  # the file, not the old/new text
        ("execute_tool Bash", "git diff --stat", [], _args(command="git diff --stat")),
    ]


def test_an_edits_old_and_new_text_are_not_kept(base: str) -> None:
    run_id = IDS["claude-project"]
    rows = httpx.get(f"{base}/api/runs/{run_id}/spans?limit=1000", timeout=30).json()["rows"]
    edit = next(r for r in rows if r["name"] == "execute_tool Edit")
    detail = httpx.get(f"{base}/api/runs/{run_id}/spans/{edit['span_id']}", timeout=30).json()
    assert "old_string" not in json.dumps(detail) and "teh" not in json.dumps(detail)


def test_claude_code_without_tool_details_names_nothing_and_says_why(base: str) -> None:
    assert _tool_rows(base, "claude-defaults") == [
        ("claude_code.tool.blocked_on_user", None, ["refused"], None),
        ("execute_tool Read", None, [], None), ("execute_tool Read", None, [], None),
        ("execute_tool Read", None, ["error"], None), ("execute_tool Edit", None, [], None),
        ("execute_tool Bash", None, [], None)]
    html = httpx.get(f"{base}/runs/{IDS['claude-defaults']}", timeout=30).text
    assert 'class="wf-subject"' not in html
    assert "Claude Code did not send tool details for 5 tool call(s) (set OTEL_LOG_TOOL_DETAILS=1" in html


def test_codex_names_each_command_and_the_refused_one(base: str) -> None:
    sed = "sed -i 's/teh/the/' README.md"
    assert _tool_rows(base, "codex-readonly") == [
        ("execute_tool exec_command", "cat README.md", [], _args(command="cat README.md")),
        ("execute_tool exec_command", "cat README.md", ["repeated read"], _args(command="cat README.md")),
        ("execute_tool exec_command", "cat CONTRIBUTING.md", ["error"], _args(command="cat CONTRIBUTING.md")),
        # the read-only sandbox refused the edit (named from its attempt's tool_result, same call id)
        ("execute_tool exec_command", sed, ["error"], _args(command=sed)),
        ("refused exec_command", sed, ["refused"], _args(command=sed)),
        ("execute_tool exec_command", "git diff --stat", [], _args(command="git diff --stat")),
        ("execute_tool exec_command", "touch denied.txt", ["error"], _args(command="touch denied.txt")),
    ]


def test_gemini_names_each_file_and_command(base: str) -> None:
    readme, missing = f"{SCRATCH}/s3a-gemini/README.md", f"{SCRATCH}/s3a-gemini/CONTRIBUTING.md"
    assert _tool_rows(base, "gemini") == [
        ("execute_tool read_file", readme, [], _args(file_path=readme)),
        ("execute_tool read_file", readme, ["repeated read"], _args(file_path=readme)),
        ("execute_tool read_file", missing, ["error"], _args(file_path=missing)),
        ("execute_tool replace", readme, [], _args(file_path=readme)),
        ("execute_tool run_shell_command", "git diff --stat", ["error"], _args(command="git diff --stat")),
        ("execute_tool run_shell_command", "touch denied.txt", ["error"], _args(command="touch denied.txt")),
    ]


def test_the_run_page_html_shows_the_subject_in_the_row(base: str) -> None:
    html = httpx.get(f"{base}/runs/{IDS['codex-readonly']}", timeout=30).text
    subjects = re.findall(r'<span class="wf-subject">([^<]*)</span>', html)
    assert subjects == ["cat README.md", "cat README.md", "cat CONTRIBUTING.md", "sed -i &#39;s/teh/the/&#39; README.md",
                        "sed -i &#39;s/teh/the/&#39; README.md", "git diff --stat", "touch denied.txt"]


def _claude_bash(command: str, events: list[Any]) -> list[Any]:
    """The recorded session's Bash call, twice more with ``command`` (new tool_use ids, a minute apart)."""
    bash = next(e for e in events if e.name == sc.CLAUDE_EV_TOOL_RESULT and e.attributes[sc.CLAUDE_TOOL_NAME] == "Bash")
    return [dataclasses.replace(bash, time_ns=bash.time_ns + n * 60_000_000_000, attributes={
        **bash.attributes, sc.CLAUDE_TOOL_USE_ID: f"toolu_long{n}",
        sc.CLAUDE_TOOL_INPUT: json.dumps({"command": command + f" # run {n}"}),
        sc.CLAUDE_TOOL_PARAMETERS: json.dumps({"full_command": command + f" # run {n}"})}) for n in (1, 2)]


def test_a_long_command_is_cut_and_the_detectors_still_compare_the_whole_input() -> None:
    events = [e for request in log_requests("claude-project", FIXTURES) for e in request]
    command = "python -c '" + "x" * 2000 + "'"
    records = records_from_events(_claude_bash(command, events))
    assert len(records) == 2
    args = [json.loads(str(r.attributes[sc.GEN_AI_TOOL_CALL_ARGUMENTS]))["command"] for r in records]
    assert [len(a) for a in args] == [ARGUMENT_CHARS, ARGUMENT_CHARS] and ARGUMENT_CHARS == 500
    assert args[0] == args[1] == command[:499] + "…"  # the two differ only past the cut
    # ...but the inputs differ, so their hashes do: no loop, no repeat
    assert records[0].attributes[sc.TOOL_ARGS_HASH] != records[1].attributes[sc.TOOL_ARGS_HASH]
    assert [r.attributes.get(sc.LOOP_DETECTED) for r in records] == [None, None]
    row = tool_subject(records[0].attributes[sc.GEN_AI_TOOL_CALL_ARGUMENTS])
    assert row == command[:79] + "…"  # the timeline row shows 80 characters of it


def test_an_mcp_call_names_its_server_and_tool() -> None:
    """Claude Code's tool_parameters (with tool details) name the MCP server and tool; Codex sends mcp_server."""
    claude = [e for request in log_requests("claude-project", FIXTURES) for e in request]
    read = next(e for e in claude if e.name == sc.CLAUDE_EV_TOOL_RESULT)
    mcp = dataclasses.replace(read, attributes={
        **read.attributes, sc.CLAUDE_TOOL_NAME: "mcp__github__search_issues", sc.CLAUDE_TOOL_USE_ID: "toolu_mcp",
        sc.CLAUDE_TOOL_INPUT: json.dumps({"query": "is:open label:bug", "token": "not kept"}),
        sc.CLAUDE_TOOL_PARAMETERS: json.dumps({"mcp_server_name": "github", "mcp_tool_name": "search_issues"})})
    codex = [e for request in log_requests("codex-readonly", FIXTURES) for e in request]
    cat = next(e for e in codex if e.name == sc.CODEX_EV_TOOL_RESULT)
    codex_mcp = dataclasses.replace(cat, attributes={
        **cat.attributes, sc.CODEX_TOOL_NAME: "search_issues", sc.CODEX_CALL_ID: "call_mcp",
        sc.CODEX_ARGUMENTS: json.dumps({"query": "is:open"}), sc.CODEX_MCP_SERVER: "github"})
    tools = [r for r in records_from_events([mcp, codex_mcp]) if r.attributes.get(sc.GEN_AI_TOOL_NAME)]
    assert [(r.name, json.loads(str(r.attributes[sc.GEN_AI_TOOL_CALL_ARGUMENTS]))) for r in tools] == [
        ("execute_tool mcp__github__search_issues",
         {"query": "is:open label:bug", "mcp_server_name": "github", "mcp_tool_name": "search_issues"}),
        ("execute_tool search_issues", {"mcp_server": "github", "query": "is:open"})]
    assert [tool_subject(r.attributes[sc.GEN_AI_TOOL_CALL_ARGUMENTS]) for r in tools] == [
        "is:open label:bug", "is:open"]


def test_search_finds_an_agent_tool_call_by_its_file(base: str) -> None:
    """The search page finds the Codex session's tool call by the file its command named."""
    page = httpx.get(f"{base}/search", params={"q": "CONTRIBUTING"}, timeout=30).text
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    codex = text[text.index(IDS["codex-readonly"][:8]):]
    assert codex.startswith(f"{IDS['codex-readonly'][:8]} unfinished $0.0436 ")
    assert ('captured text gen_ai.tool.call.arguments execute_tool exec_command {"command": "cat CONTRIBUTING .md"}'
            in codex)
