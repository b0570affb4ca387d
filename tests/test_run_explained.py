"""What ended a run, its verdict, budget use, detections and unpriced calls, in words: run page and `runtrace show`.

Runs are made through the real openai client against a mock transport into a
real store file; the page is fetched from a real server on 127.0.0.1 and the
CLI is invoked through click. Both print the sentences of ``runtrace.explain``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

import runtrace
from llm_fakes import ChatUsage, FakeLLM, chat_chunks, chat_completion, chat_sse_reply, json_reply
from runtrace.cli import main
from runtrace.server.app import create_app
from test_server_support import running_server

# gpt-5.5: 3,000 input x $5/M = $0.015 + 450 output x $30/M = $0.0135: $0.0285, 95% of a $0.03 budget
PRICED_0285 = json_reply(chat_completion(model="gpt-5.5", usage=ChatUsage(3000, 450)))
# gpt-5.5: 3,000 input + 500 output: $0.03 a call
PRICED_03 = json_reply(chat_completion(model="gpt-5.5", usage=ChatUsage(3000, 500)))
STREAM_NO_USAGE = chat_sse_reply(chat_chunks(model="gpt-5.5", usage=None))
UNKNOWN_MODEL = json_reply(chat_completion(model="acme-private-7", usage=ChatUsage(100, 10)))
SHORT = [{"role": "user", "content": "go"}]
SECRET = "customer jane.doe@example.com not found"

STREAM_FIX = ("A streamed call to gpt-5.5 is unpriced: the stream carried no usage; pass "
              "stream_options={'include_usage': True} or instrument(stream_usage=True).")
UNKNOWN_FIX = ("A call to acme-private-7 is unpriced: runtrace has no price for acme-private-7; add a price "
               "override (RUNTRACE_PRICES / instrument(prices=...)); list known models with `runtrace prices list`.")
LOOP = "lookup was called 3 times with the same arguments and returned the same result."
STOPPED = ("Stopped by its budget: max_cost_usd at $0.03 against a limit of $0.05; "
           "the next call would have added $0.03.")


@pytest.fixture
def chars_per_4(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin the token estimator, so budget projections do not depend on whether tiktoken is cached."""
    from runtrace import detect

    monkeypatch.setattr(detect, "_estimator", detect.CHARS_PER_4)


@pytest.fixture
def runs(instrumented: Any, chars_per_4: None) -> Iterator[tuple[Path, dict[str, str]]]:
    """Four runs: a looping one that is 95% into its budget, a budget-stopped one, an errored one, an unknown model."""
    @runtrace.tool
    def lookup(email: str) -> str:
        return "no such customer"

    ids: dict[str, str] = {}
    fake = FakeLLM([STREAM_NO_USAGE, PRICED_0285])
    client = fake.openai()
    with runtrace.run("triage", budget=runtrace.Budget(max_cost_usd=0.03, max_tool_calls=4)) as run:
        for _chunk in client.chat.completions.create(model="gpt-5.5", messages=SHORT, stream=True):
            pass
        client.chat.completions.create(model="gpt-5.5", messages=SHORT)
        for _ in range(3):
            lookup("jane.doe@example.com")
        run.reject("loops on lookup", by="alice")
    ids["triage"] = run.id

    capped = FakeLLM(default=PRICED_03).openai()
    with pytest.raises(runtrace.BudgetExceeded), \
            runtrace.run("capped", budget=runtrace.Budget(max_cost_usd=0.05)) as run:
        for _ in range(3):
            capped.chat.completions.create(model="gpt-5.5", messages=[{"role": "user", "content": "x" * 12_000}])
    ids["capped"] = run.id

    with pytest.raises(LookupError), runtrace.run("crash") as run:
        FakeLLM([PRICED_03]).openai().chat.completions.create(model="gpt-5.5", messages=SHORT)
        raise LookupError(SECRET)
    ids["crash"] = run.id

    with runtrace.run("private") as run:
        FakeLLM([UNKNOWN_MODEL]).openai().chat.completions.create(model="acme-private-7", messages=SHORT)
    ids["private"] = run.id
    runtrace.flush()
    yield instrumented.store_path, ids


def show(store: Path, run_id: str) -> str:
    result = CliRunner().invoke(main, ["show", run_id, "--store", str(store)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def page(runs: tuple[Path, dict[str, str]]) -> Iterator[Any]:
    store, ids = runs
    with running_server(create_app(store)) as base:
        def get(name: str) -> str:
            response = httpx.get(f"{base}/runs/{ids[name]}")
            assert response.status_code == 200
            return response.text
        yield get


def top_of(html: str) -> str:
    """The page above the run's figures (the cards): what a person reads first."""
    return html[: html.index('<section class="cards"')]


def test_an_errored_run_says_its_exception_type_at_the_top_without_its_message(page: Any, runs: Any) -> None:
    html = page("crash")
    assert ('<div class="run-headline" id="run-headline" role="alert"><p>The run failed with LookupError.</p></div>'
            in top_of(html))
    assert "jane.doe" not in html  # capture off: the exception's message is content
    out = show(runs[0], runs[1]["crash"])
    assert "The run failed with LookupError.\noutcome: Error at " in out
    assert "jane.doe" not in out


def test_a_budget_stopped_run_says_which_limit_stopped_it_at_the_top(page: Any, runs: Any) -> None:
    assert f"<p>{STOPPED}</p>" in top_of(page("capped"))
    out = show(runs[0], runs[1]["capped"])
    assert STOPPED + "\noutcome: Budget stopped at " in out
    assert "\nbudget: cost $0.03 of $0.05 (60%)\n" in out
    # $0.03 spent is under the limit: the next call's projection crossed it, and it was never sent
    assert ("\nbudget breach: The budget max_cost_usd was exceeded by the next call's projected cost: "
            "$0.03 spent + $0.03 projected, against a limit of $0.05; the run was stopped before that call. "
            "(run capped)\n") in out


def test_unpriced_calls_say_why_and_how_to_fix_it_near_the_top(page: Any) -> None:
    stream = top_of(page("triage"))
    assert STREAM_FIX.replace("'", "&#39;") in stream
    assert UNKNOWN_FIX in top_of(page("private"))
    assert 'id="run-headline"' not in stream  # a run that finished has nothing ending it to explain


def test_show_prints_verdict_budget_detections_and_unpriced_reasons(runs: Any) -> None:
    store, ids = runs
    out = show(store, ids["triage"])
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("verdict: Rejected by alice at "))
    assert lines[start].endswith(" UTC: loops on lookup")
    assert lines[start + 1:start + 6] == [
        "budget: cost $0.0285 of $0.03 (95%)",
        "budget: tool calls 3 of 4 (75%)",
        "repeated read: lookup returned content identical to an earlier read (3 times so far). (execute_tool lookup)",
        f"loop: {LOOP} (execute_tool lookup)",
        f"unpriced: {STREAM_FIX}",
    ]
    assert "jane.doe" not in out  # capture off: the loop sentence names the tool, not its arguments
    private = show(store, ids["private"])
    assert f"\nunpriced: {UNKNOWN_FIX}\n" in private
    assert "\nverdict: none yet (the run ended without being accepted, rejected or abandoned)\n" in private


def test_a_read_repeated_three_times_is_one_finding_with_its_latest_count(instrumented: Any,
                                                                          chars_per_4: None) -> None:
    # Before: one finding per repeat, "2 times so far" then "3 times so far" for the same read.
    @runtrace.tool
    def lookup(email: str) -> str:
        return "no such customer"

    @runtrace.tool
    def fetch_page(url: str) -> str:
        return "<html>same</html>"

    with runtrace.run("rereads") as run:
        for _ in range(2):  # a, page, a, page, a: lookup of a read 3 times, the page twice
            lookup("a@example.com")
            fetch_page("https://example.com")
        lookup("a@example.com")
        lookup("b@example.com")  # another subject, read once: no finding
    runtrace.flush()
    store = instrumented.store_path
    out = show(store, run.id)
    assert [line for line in out.splitlines() if line.startswith("repeated read: ")] == [
        "repeated read: fetch_page returned content identical to an earlier read (2 times so far). "
        "(execute_tool fetch_page)",
        "repeated read: lookup returned content identical to an earlier read (3 times so far). (execute_tool lookup)"]
    lookups = [s for s in instrumented.spans() if s.name == "execute_tool lookup"]
    fetches = [s for s in instrumented.spans() if s.name == "execute_tool fetch_page"]
    with running_server(create_app(store)) as base:
        html = httpx.get(f"{base}/runs/{run.id}", timeout=60).text
    items = re.findall(r'<li class="detection d-repeated_read">.*?<span class="sentence">([^<]*)</span> '
                       r'<a href="#span-([0-9a-f]+)"', html)
    assert items == [
        ("fetch_page returned content identical to an earlier read (2 times so far).",
         f"{fetches[1].context.span_id:016x}"),
        ("lookup returned content identical to an earlier read (3 times so far).",
         f"{lookups[2].context.span_id:016x}")]
