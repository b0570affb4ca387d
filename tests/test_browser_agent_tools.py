"""A coding agent's tool calls in real headless Chromium: each row names its file or command, the panel its arguments.

Recorded Claude Code (with tool details) and Codex sessions (tests/fixtures/agents)
are sent to a real ``runtrace serve`` as the agents sent them; the run page is
read as a person sees it. Screenshots land in the test's tmp path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_samples import FIXTURES
from browser_support import Page, checked_page
from test_agents_tool_subjects import serving_recordings

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"recordings not found in {FIXTURES}")]

CLAUDE = "d34ec385-a875-4a25-9b18-379204112e9d"  # claude-project: OTEL_LOG_TOOL_DETAILS=1
CODEX = "01a2316b-e59a-76e0-888d-8b3ebba7238b"  # codex-readonly: the sandbox refused the edit
README = "/root/.cache/agent-kit/scratch/s3a-claude-project/README.md"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving_recordings(tmp_path_factory.mktemp("agent-browser") / "rt.db",
                            ("claude-project", "codex-readonly")) as url:
        yield url


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    with checked_page(browser) as opened:
        yield opened


def _rows(p: Any) -> list[list[str]]:
    """(name, subject) of each timeline row that has a subject, as the page shows them."""
    return p.locator("#waterfall .wf-span .wf-subject").evaluate_all(
        "subjects => subjects.map(s => [s.parentElement.firstChild.textContent.trim(), s.textContent])")


def test_each_agent_tool_row_names_its_file_or_command(base: str, page: Page, tmp_path: Path) -> None:
    p = page.page
    p.goto(f"{base}/runs/{CLAUDE}")
    assert _rows(p) == [["claude_code.tool.blocked_on_user", "touch denied.txt"],
                        ["execute_tool Read", README], ["execute_tool Read", README],
                        ["execute_tool Read", README.replace("README", "CONTRIBUTING")],
                        ["execute_tool Edit", README], ["execute_tool Bash", "git diff --stat"]]
    p.screenshot(path=str(tmp_path / "claude-tools.png"), full_page=True)
    p.goto(f"{base}/runs/{CODEX}")
    assert [subject for _name, subject in _rows(p)] == [
        "cat README.md", "cat README.md", "cat CONTRIBUTING.md", "sed -i 's/teh/the/' README.md",
        "sed -i 's/teh/the/' README.md", "git diff --stat", "touch denied.txt"]


def test_the_panel_shows_what_the_call_was_given(base: str, page: Page, tmp_path: Path) -> None:
    p = page.page
    p.goto(f"{base}/runs/{CODEX}")
    refused = p.locator("#waterfall .wf-span", has_text="refused exec_command").first
    refused.locator("summary .wf-name").first.click()
    panel = p.locator("#span-panel")
    panel.locator("dl.facts").wait_for()
    assert p.locator("#sp-title").inner_text() == "refused exec_command"
    text = panel.inner_text()
    assert "Arguments" in text
    assert '"command": "sed -i \'s/teh/the/\' README.md"' in text
    p.screenshot(path=str(tmp_path / "codex-refused-panel.png"), full_page=True)
