"""The weekly review: ``runtrace report --since 7d --format markdown`` (and ``html``) of a seeded store."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from runtrace.cli import main as cli_main
from runtrace.store.db import Store
from store_helpers import llm, run_span, tool

DAY_S = 86_400
SINCE, UNTIL = "2026-11-18T00:00:00Z", "2026-11-25T00:00:00Z"  # BASE_NS is 2026-11-18T11:06:40Z


def seed(path: Path) -> None:
    spans = []
    n = 0

    def run(rid: str, name: str, project: str, owner: str, outcome: str, cost: float, *, at_s: float = 0,
            reason: str | None = None, loop: bool = False, rereads: int = 0, tokens: tuple[int, int] = (2000, 200),
            calls: int = 1) -> None:
        nonlocal n
        n += 100
        spans.append(run_span(rid, n, start_s=at_s, end_s=at_s + 60, name=name, project=project, owner=owner,
                              outcome=outcome, reason=reason, loop=loop))
        for i in range(calls):
            spans.append(llm(rid, n + 1 + i, start_s=at_s + 1 + i, end_s=at_s + 2 + i, parent=n,
                             input_tokens=tokens[0], output_tokens=tokens[1], cost=cost / calls))
        for i in range(rereads):
            spans.append(tool(rid, n + 50 + i, start_s=at_s + 10 + i, end_s=at_s + 11 + i, parent=n, repeated=True,
                              repeated_tokens=1200))

    week_before = -3 * DAY_S
    run("p1", "old fix", "billing", "alice", "accepted", 0.50, at_s=week_before, calls=5)
    run("p2", "old fix 2", "billing", "alice", "accepted", 0.30, at_s=week_before, calls=5)
    run("p3", "old checkout", "checkout", "bob", "accepted", 0.10, at_s=week_before, calls=5)
    run("r1", "fix flaky test", "billing", "alice", "accepted", 0.40, at_s=100, calls=5)
    run("r2", "fix the ledger", "billing", "alice", "rejected", 1.20, at_s=200, reason="wrong fix", calls=5)
    run("r3", "refactor", "billing", "alice", "abandoned", 0.30, at_s=300, loop=True, rereads=2, calls=5)
    run("r4", "rename a field", "billing", "carol", "accepted", 0.20, at_s=400, tokens=(10_000, 1_000))
    run("c1", "checkout flow", "checkout", "bob", "accepted", 0.05, at_s=500, calls=5)
    run("c2", "pay | <b>now</b>", "checkout", "bob", "rejected", 0.08, at_s=600, reason="tests fail", calls=5)
    run("c3", "cart", "checkout", "bob", "rejected", 0.02, at_s=700, calls=5)
    run("late", "next week", "checkout", "bob", "rejected", 9.0, at_s=8 * DAY_S, calls=5)  # after the period
    with Store.open(path) as store:
        store.ingest(spans)


def review(path: Path, fmt: str) -> str:
    result = CliRunner().invoke(cli_main, ["report", "--store", str(path), "--since", SINCE, "--until", UNTIL,
                                           "--format", fmt, "--base-url", "http://runs.example:8321"])
    assert result.exit_code == 0, result.output
    return result.output


EXPECTED_MARKDOWN = """\
# runtrace review: 2026-11-18 00:00 to 2026-11-25 00:00 UTC

7 runs, 3 accepted, cost $2.25, $0.75 per accepted run (the previous 7 days: $0.30, +150.0%). Rejected 42.9%, abandoned 14.3% of runs.

Cost per accepted run is all of a group's spend, wasted runs included, divided by its accepted runs. The previous period is 2026-11-11 00:00 to 2026-11-18 00:00 UTC.

## Cost per accepted run by project

| project | runs | accepted | rejected | abandoned | cost | per accepted run | previous | change |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
| billing | 4 | 2 | 25.0% | 25.0% | $2.10 | $1.05 | $0.40 | +162.5% |
| checkout | 3 | 1 | 66.7% | 0.0% | $0.15 | $0.15 | $0.10 | +50.0% |

## Cost per accepted run by owner

| owner | runs | accepted | rejected | abandoned | cost | per accepted run | previous | change |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
| alice | 3 | 1 | 33.3% | 33.3% | $1.90 | $1.90 | $0.40 | +375.0% |
| carol | 1 | 1 | 0.0% | 0.0% | $0.20 | $0.20 | — | — |
| bob | 3 | 1 | 66.7% | 0.0% | $0.15 | $0.15 | $0.10 | +50.0% |

## The dearest rejected runs

| run | project | owner | cost | reason |
|---|---|---|---:|---|
| [fix the ledger](http://runs.example:8321/runs/r2) | billing | alice | $1.20 | wrong fix |
| [pay \\| \\<b\\>now\\</b\\>](http://runs.example:8321/runs/c2) | checkout | bob | $0.08 | tests fail |
| [cart](http://runs.example:8321/runs/c3) | checkout | bob | $0.02 | — |

## Loops and repeated reads

- 1 run looped, costing $0.30: [refactor](http://runs.example:8321/runs/r3) ($0.30)
- 2 repeated reads (2,400 tokens read again) in 1 run that cost $0.30.

## Small work on expensive models

Runs of at most 3 LLM calls and 20,000 tokens that cost at least 4x what gpt-5-mini would (the What-if page's routing view, [open it](http://runs.example:8321/whatif)).

| models | runs | cost | on gpt-5-mini | saving |
|---|---:|---:|---:|---:|
| gpt-5.5 | 1 | $0.20 | $0.0045 | $0.1955 |
| total | 1 | $0.20 | $0.0045 | $0.1955 |
"""


def test_the_weekly_review_in_markdown(tmp_path: Path) -> None:
    seed(tmp_path / "s.db")
    assert review(tmp_path / "s.db", "markdown") == EXPECTED_MARKDOWN


def test_the_weekly_review_as_one_self_contained_html_page(tmp_path: Path) -> None:
    seed(tmp_path / "s.db")
    page = review(tmp_path / "s.db", "html")
    assert page.startswith("<!doctype html>") and page.endswith("</html>\n")
    assert not re.search(r"<script|<link|<img|\bsrc=|@import", page)  # nothing fetched, nothing run
    assert '<a href="http://runs.example:8321/runs/c2">pay | &lt;b&gt;now&lt;/b&gt;</a>' in page
    assert ("<tr><td>billing</td><td class=num>4</td><td class=num>2</td><td class=num>25.0%</td>"
            "<td class=num>25.0%</td><td class=num>$2.10</td><td class=num>$1.05</td><td class=num>$0.40</td>"
            "<td class=num>+162.5%</td></tr>") in page
    assert ("<tr><td>gpt-5.5</td><td class=num>1</td><td class=num>$0.20</td><td class=num>$0.0045</td>"
            "<td class=num>$0.1955</td></tr>") in page
    # the same outline as the Markdown: every heading of one is a heading of the other
    headings = re.findall(r"<h[12]>(.*?)</h[12]>", page)
    assert [h.replace("&#x27;", "'") for h in headings] == [
        line.lstrip("# ") for line in EXPECTED_MARKDOWN.splitlines() if line.startswith("#")]


def test_the_review_needs_a_period_and_takes_no_grouping(tmp_path: Path) -> None:
    seed(tmp_path / "s.db")
    runner = CliRunner()
    no_since = runner.invoke(cli_main, ["report", "--store", str(tmp_path / "s.db"), "--format", "markdown"])
    assert no_since.exit_code == 2
    assert "--format markdown is a review of a period: give --since (e.g. --since 7d)" in no_since.output
    by = runner.invoke(cli_main, ["report", "--store", str(tmp_path / "s.db"), "--since", "7d", "--by", "owner",
                                  "--format", "html"])
    assert by.exit_code == 2
    assert "--by does not apply to --format html: the review shows projects and owners" in by.output


def test_the_review_says_when_the_small_work_model_has_no_price(tmp_path: Path) -> None:
    seed(tmp_path / "s.db")
    result = CliRunner().invoke(cli_main, ["report", "--store", str(tmp_path / "s.db"), "--since", SINCE, "--until",
                                           UNTIL, "--format", "markdown", "--small-work-model", "no-such-model"])
    assert result.exit_code == 0, result.output
    tail = result.output.split("## Small work on expensive models\n\n", 1)[1]
    assert tail == ("Not computed: no price known for model 'no-such-model' (list the models that have a price with "
                    "\\`runtrace prices list PATTERN\\`, or add it to a prices file).\n")


def test_a_relative_since_reads_as_whole_days_not_hours(tmp_path: Path) -> None:
    """`--since 7d` with no --until: the period's end is taken microseconds after its start was parsed."""
    path = tmp_path / "rt.db"
    seed(path)
    result = CliRunner().invoke(cli_main, ["report", "--store", str(path), "--since", "7d", "--format", "markdown"])
    assert result.exit_code == 0, result.output
    assert "(the previous 7 days:" in result.output
    assert "hours" not in result.output
