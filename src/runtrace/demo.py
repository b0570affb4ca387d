"""``runtrace demo``: a small scripted coding agent, run through the real openai client.

Each script is one run of the agent on a task, with the model's replies
scripted and served by ``_fake_llm`` (no network, no key). Together they show
every thing runtrace is for: an accepted run, a rejected one, an abandoned
one, one that errors, a runaway loop, a run stopped by its budget, and a run
that keeps re-reading the same file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _setup, runs
from ._fake_llm import FakeLLM, Reply, client_for
from .instrumentation.tools import tool

SERVICE_NAME = "demo-coding-agent"
SYSTEM_PROMPT = ("You are a careful coding agent working in a Python repository. Use the tools to read "
                 "files, edit them and run the tests; stop when the tests pass.")

TOOLS = [
    {"type": "function", "function": {"name": name, "description": desc, "parameters": {
        "type": "object", "properties": {k: {"type": "string"} for k in params}, "required": list(params)}}}
    for name, desc, params in (
        ("read_file", "Read a file of the repository.", ("path",)),
        ("edit_file", "Replace a file's content.", ("path", "content")),
        ("run_tests", "Run the test suite (or one test file).", ("target",)),
        ("search", "Search the repository for a string.", ("query",)),
    )
]


@dataclass
class Repo:
    """The agent's working copy: a dict of files, and a test runner that reads it."""

    files: dict[str, str] = field(default_factory=dict)
    passing: set[str] = field(default_factory=set)

    def read_file(self, path: str) -> str:
        if path not in self.files:
            raise FileNotFoundError(path)
        return self.files[path]

    def edit_file(self, path: str, content: str) -> str:
        self.files[path] = content
        if "retry(" in content or "cursor" in content:
            self.passing.add("tests")
        return f"wrote {len(content)} characters to {path}"

    def run_tests(self, target: str) -> str:
        if "tests" in self.passing:
            return f"{target}: 14 passed in 2.31s"
        return (f"{target}: 1 failed, 13 passed in 2.40s\nFAILED tests/test_invoices.py::test_page_two - "
                "AssertionError: expected 25 invoices, got 0")

    def search(self, query: str) -> str:
        hits = [p for p, text in sorted(self.files.items()) if query in text]
        return "\n".join(hits) or "no matches"


def make_tools(repo: Repo, pace: float = 0.0) -> dict[str, Callable[..., str]]:
    """The agent's tools, each traced with @runtrace.tool (``pace`` simulates their latency)."""

    @tool
    def read_file(path: str) -> str:
        """Read a file of the repository."""
        time.sleep(pace * 0.02)
        return repo.read_file(path)

    @tool
    def edit_file(path: str, content: str) -> str:
        """Replace a file's content."""
        time.sleep(pace * 0.01)
        return repo.edit_file(path, content)

    @tool
    def run_tests(target: str) -> str:
        """Run the test suite."""
        time.sleep(pace * 0.2)
        return repo.run_tests(target)

    @tool
    def search(query: str) -> str:
        """Search the repository."""
        time.sleep(pace * 0.05)
        return repo.search(query)

    return {"read_file": read_file, "edit_file": edit_file, "run_tests": run_tests, "search": search}


def base_repo() -> Repo:
    return Repo(files={
        "src/billing/retry.py": ("import time\n\n\ndef call_with_backoff(fn, attempts=3):\n"
                                 "    for i in range(attempts):\n        try:\n            return fn()\n"
                                 "        except TimeoutError:\n            time.sleep(0.1 * i)\n"
                                 "    return fn()\n") * 3,
        "tests/test_retry.py": ("from billing.retry import call_with_backoff\n\n\n"
                                "def test_retries_on_timeout(flaky):\n"
                                "    assert call_with_backoff(flaky) == 'ok'\n") * 4,
        "src/billing/invoices.py": ("def list_invoices(db, page=1, size=25):\n"
                                    "    rows = db.query('select * from invoices order by id')\n"
                                    "    return rows[page * size:(page + 1) * size]\n") * 5,
        "docs/billing-api.md": ("# Billing API\n\n## GET /invoices\n\nReturns the invoices of the "
                                "account, 25 per page, newest first.\n\n") * 12,
        "pyproject.toml": "[project]\nname = 'billing'\ndependencies = ['httpx>=0.27', 'sqlalchemy>=2']\n",
    })


@dataclass(frozen=True)
class Script:
    name: str
    project: str
    owner: str
    model: str
    replies: tuple[Reply, ...]
    verdict: str  # accept | reject | abandon | none (an error or a budget stop ends it)
    reason: str | None = None
    budget: runs.Budget | None = None


def _call(name: str, **args: str) -> tuple[str, dict[str, Any]]:
    return (name, args)


FIXED_RETRY = "def call_with_backoff(fn, attempts=3):\n    return retry(fn, attempts, on=TimeoutError)\n"
FAILING_TESTS = "tests/test_invoices.py"

SCRIPTS: tuple[Script, ...] = (
    Script("fix flaky test #412", "billing", "alice", "gpt-5.5", (
        Reply(tool_calls=[_call("read_file", path="tests/test_retry.py")]),
        Reply(tool_calls=[_call("read_file", path="src/billing/retry.py")]),
        Reply(tool_calls=[_call("edit_file", path="src/billing/retry.py", content=FIXED_RETRY)]),
        Reply(tool_calls=[_call("run_tests", target="tests/test_retry.py")]),
        Reply(text="The flaky test came from sleeping 0s on the first retry; retries now use retry() "
                   "with backoff. All 14 tests pass."),
    ), "accept"),
    Script("add pagination to /invoices", "billing", "bob", "gpt-5.5", (
        Reply(tool_calls=[_call("search", query="def list_invoices")]),
        Reply(tool_calls=[_call("read_file", path="src/billing/invoices.py")]),
        Reply(tool_calls=[_call("edit_file", path="src/billing/invoices.py",
                                content="def list_invoices(db, page=1, size=25):\n    return []\n")]),
        Reply(tool_calls=[_call("run_tests", target=FAILING_TESTS)]),
        Reply(text="Pagination is in place; one test still fails and needs a fixture update."),
    ), "reject", "tests still failing"),
    Script("upgrade dependencies", "platform", "carol", "gpt-5-mini", (
        Reply(tool_calls=[_call("read_file", path="pyproject.toml")]),
        Reply(text="httpx can move to 0.28 and sqlalchemy to 2.1; shall I open the PR?"),
    ), "abandon", "superseded by renovate PR #98"),
    Script("summarise incident 2291", "support", "dave", "gpt-5-mini", (
        Reply(status=500),
    ), "none"),
    Script("make invoices test pass", "billing", "erin", "gpt-5.5", (
        Reply(tool_calls=[_call("run_tests", target=FAILING_TESTS)]),
        Reply(tool_calls=[_call("read_file", path="src/billing/invoices.py")]),
        Reply(tool_calls=[_call("run_tests", target=FAILING_TESTS)]),
        Reply(tool_calls=[_call("run_tests", target=FAILING_TESTS)]),
        Reply(text="The test keeps failing the same way; I could not find the cause."),
    ), "reject", "looped on the same failing test"),
    Script("triage all flaky tests", "qa", "frank", "gpt-5.5", tuple(
        Reply(tool_calls=[_call("run_tests", target=f"tests/test_{area}.py")])
        for area in ("retry", "invoices", "auth", "exports", "webhooks", "ledger", "tax", "refunds",
                     "search", "reports", "email", "audit")
    ), "none", budget=runs.Budget(max_cost_usd=0.03)),
    Script("document the billing API", "docs", "alice", "gpt-5.5", (
        Reply(tool_calls=[_call("read_file", path="docs/billing-api.md")]),
        Reply(tool_calls=[_call("read_file", path="src/billing/invoices.py")]),
        Reply(tool_calls=[_call("read_file", path="docs/billing-api.md")]),
        Reply(tool_calls=[_call("read_file", path="src/billing/invoices.py")]),
        Reply(text="docs/billing-api.md now documents paging, sizes and ordering of GET /invoices."),
    ), "accept"),
)


def run_agent(script: Script, echo: Callable[[str], None] | None = None, pace: float = 0.0) -> str:
    """Run one script through the agent loop; returns the run id."""
    fake = FakeLLM(list(script.replies), pace=pace)
    client = client_for(fake)
    tools = make_tools(base_repo(), pace)
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT},
                                      {"role": "user", "content": f"Task: {script.name}"}]
    with runs.run(script.name, project=script.project, owner=script.owner, budget=script.budget,
                  metadata={"agent": "demo-coder"}) as run:
        try:
            while True:
                response = client.chat.completions.create(model=script.model, messages=messages, tools=TOOLS)
                message = response.choices[0].message
                if not message.tool_calls:
                    break
                messages.append(message.model_dump(exclude_none=True))
                for call in message.tool_calls:
                    args = json.loads(call.function.arguments)
                    result = tools[call.function.name](**args)
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        except runs.BudgetExceeded as exc:
            if echo:
                echo(f"  {script.name}: stopped by its budget ({exc.breach.describe()})")
            raise
        if script.verdict == "accept":
            run.accept(by="demo-reviewer")
        elif script.verdict == "reject":
            run.reject(script.reason, by="demo-reviewer")
        elif script.verdict == "abandon":
            run.abandon(script.reason, by=script.owner)
    return run.id


def run_demo(store_path: str | os.PathLike[str] | None = None,
             echo: Callable[[str], None] | None = None, pace: float = 0.0) -> str:
    """Run every script into the store; returns the store's path.

    ``pace`` > 0 adds simulated model and tool latency (about ``pace`` seconds
    per 1,000 output tokens), so timelines look like a real agent's.
    """
    was_instrumented = _setup.is_instrumented()
    if not was_instrumented:
        _setup.instrument(service_name=SERVICE_NAME, store=store_path)
    path = _setup.store_path() or str(Path(store_path or "").expanduser())
    try:
        for script in SCRIPTS:
            if echo:
                echo(f"run: {script.name} ({script.project}/{script.owner}, {script.model})")
            try:
                run_agent(script, echo, pace)
            except runs.BudgetExceeded:
                pass
            except Exception as exc:  # the erroring script: the run records it, the demo goes on
                if echo:
                    echo(f"  {script.name}: failed with {type(exc).__name__}: {exc}")
        from . import _demo_providers

        try:
            _demo_providers.run_multi_provider(echo)
        except Exception as exc:  # noqa: BLE001 - an optional extra run never stops the demo
            if echo:
                echo(f"  {_demo_providers.NAME}: failed with {type(exc).__name__}: {exc}")
        _setup.flush()
    finally:
        if not was_instrumented:
            _setup.uninstrument()
    return path
