"""Issue 10 item 5: a cost reads the same in the CLI and on the web pages (one formatter, display.money).

Before, ``runtrace runs`` printed $0.0340 and $12.5000 where the web UI and
``runtrace report`` printed $0.034 and $12.50 for the same runs.
"""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import httpx
from click.testing import CliRunner

from runtrace.cli import main
from runtrace.display import money
from runtrace.server.app import create_app
from runtrace.store.db import Store
from store_helpers import llm, run_span
from test_server_support import running_server

# (run id, name, cost, how every surface shows it)
RUNS = [("a" * 32, "small fix", 0.034, "$0.034"), ("b" * 32, "big refactor", 12.5, "$12.50"),
        ("c" * 32, "tiny triage", 0.00021, "$0.00021")]


def build(path: Path) -> Path:
    records = []
    for i, (run_id, name, cost, _shown) in enumerate(RUNS):
        records.append(run_span(run_id, 0, start_s=i * 10, end_s=i * 10 + 5, name=name, outcome="accepted"))
        records.append(llm(run_id, 1, start_s=i * 10 + 1, end_s=i * 10 + 2, input_tokens=1000,
                           output_tokens=100, cost=cost, model="gpt-4o", provider="openai"))
    with Store.open(path) as store:
        store.ingest(records)
    return path


def text_of(page: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_the_formatter_itself() -> None:
    assert [money(cost) for _id, _name, cost, _shown in RUNS] == [shown for *_rest, shown in RUNS]


def test_cli_and_web_show_each_runs_cost_the_same_way(tmp_path: Path) -> None:
    path = build(tmp_path / "m.db")
    runner = CliRunner(env={"COLUMNS": "200", "RUNTRACE_STORE": None})
    listed = runner.invoke(main, ["runs", "--store", str(path)])
    assert listed.exit_code == 0, listed.output
    report = runner.invoke(main, ["report", "--by", "project", "--store", str(path)])
    assert report.exit_code == 0, report.output
    with running_server(create_app(path)) as base:
        runs_page = text_of(httpx.get(f"{base}/", timeout=30).text)
        run_pages = {run_id: text_of(httpx.get(f"{base}/runs/{run_id}", timeout=30).text)
                     for run_id, *_rest in RUNS}
    for run_id, name, _cost, shown in RUNS:
        cli_row = next(line for line in listed.stdout.splitlines() if name in line)
        assert re.search(re.escape(shown) + r"(?!\d)", cli_row), (cli_row, shown)
        web_row = runs_page[runs_page.index(name):][:200]
        assert re.search(re.escape(shown) + r"(?!\d)", web_row), (web_row, shown)
        assert re.search(re.escape(shown) + r"(?!\d)", run_pages[run_id]), shown
        shown_cli = runner.invoke(main, ["show", run_id[:8], "--store", str(path)])
        assert shown_cli.exit_code == 0, shown_cli.output
        assert re.search(re.escape(shown) + r"(?!\d)", shown_cli.stdout), (shown_cli.stdout, shown)
    # the report's total: 0.034 + 12.5 + 0.00021
    assert "$12.53" in report.stdout
