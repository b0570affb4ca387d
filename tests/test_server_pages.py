"""The web UI, /api and /metrics of `runtrace serve` over HTTP, on the hand-built fixture store.

Every expected figure comes from the table in ``test_server_support``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runtrace.server import reads
from runtrace.server.app import create_app
from runtrace.server.headers import CSP
from runtrace.store.db import Store
from runtrace.store.queries import get_run, list_runs
from test_server_support import XSS_NAME, XSS_RESULT, at, build_fixture_store, running_server, trace_id

ALL_NEWEST_FIRST = ["r7-xss", "r6-answer", "r5-explore", "r4-summarise", "r3-triage", "r2-refactor", "r1-fix-flaky"]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixture_store(tmp_path_factory.mktemp("pages") / "runtrace.db")


@pytest.fixture(scope="module")
def base(store_path: Path) -> Iterator[str]:
    with running_server(create_app(store_path)) as url:
        yield url


@pytest.fixture
def store(store_path: Path) -> Iterator[Store]:
    with Store.open(store_path, create=False) as opened:
        yield opened


def run_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-run-id="([^"]+)">', html)


def text_of(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert match, element_id
    return match.group(1)


def test_runs_page_lists_every_run_with_the_headline_figures(base: str) -> None:
    page = httpx.get(base + "/")
    assert page.status_code == 200
    assert run_ids(page.text) == ALL_NEWEST_FIRST
    assert text_of(page.text, "h-spend") == "$0.4182"  # 0.41819
    assert text_of(page.text, "h-cpar") == "$0.1394"  # 0.41819 / 3 accepted runs
    assert "7 runs · 1 unpriced call" in page.text
    assert "3 accepted · 42.9%" in page.text
    assert page.headers["content-security-policy"] == CSP
    assert page.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(("query", "expected"), [
    ("project=billing", ["r2-refactor", "r1-fix-flaky"]),
    ("owner=alice", ["r6-answer", "r3-triage", "r1-fix-flaky"]),
    ("outcome=budget_stopped", ["r4-summarise"]),
    ("model=gpt-4o", ["r5-explore", "r4-summarise", "r1-fix-flaky"]),
    ("flag=loop", ["r1-fix-flaky"]),
    ("flag=repeated_reads", ["r1-fix-flaky"]),
    ("flag=unpriced", ["r5-explore"]),
    ("flag=budget_stopped", ["r4-summarise"]),
    ("q=TRIAGE", ["r3-triage"]),
    ("q=r6-", ["r6-answer"]),
    ("since=2026-11-20T13:00:00Z", ["r7-xss", "r6-answer", "r5-explore", "r4-summarise"]),
    ("until=2026-11-20T12:00:00Z", ["r2-refactor", "r1-fix-flaky"]),
    ("since=2026-11-20&until=2026-11-20", ALL_NEWEST_FIRST),
    ("since=2026-11-21", []),
    ("project=support&owner=alice", ["r6-answer", "r3-triage"]),
    ("sort=cost", ["r2-refactor", "r4-summarise", "r1-fix-flaky", "r6-answer", "r5-explore", "r3-triage",
                   "r7-xss"]),
    ("sort=cost&order=asc", ["r7-xss", "r3-triage", "r5-explore", "r6-answer", "r1-fix-flaky", "r4-summarise",
                             "r2-refactor"]),
    ("sort=duration", ["r2-refactor", "r1-fix-flaky", "r4-summarise", "r5-explore", "r3-triage", "r6-answer",
                       "r7-xss"]),
    ("sort=tool_calls", ["r1-fix-flaky", "r2-refactor", "r7-xss", "r3-triage", "r4-summarise", "r5-explore",
                         "r6-answer"]),
])
def test_filters_and_sorting_narrow_and_order_the_runs(base: str, query: str, expected: list[str]) -> None:
    page = httpx.get(f"{base}/?{query}")
    assert page.status_code == 200
    assert run_ids(page.text) == expected


def test_headline_follows_the_filters(base: str) -> None:
    page = httpx.get(f"{base}/?project=support")
    assert text_of(page.text, "h-spend") == "$0.1485"  # 0.00048 + 0.133 + 0.015
    assert text_of(page.text, "h-cpar") == "$0.1485"  # one accepted run (r6)
    assert "33.3%" in page.text  # one abandoned run of three


@pytest.mark.parametrize(("query", "message"), [
    ("outcome=won", "outcome=&#39;won&#39; is not one of"),
    ("flag=slow", "flag=&#39;slow&#39; is not one of"),
    ("sort=name", "sort=&#39;name&#39; is not one of"),
    ("period=1y", "period=&#39;1y&#39; is not one of"),
    ("since=yesterday", "since=&#39;yesterday&#39; is not a date"),
    ("after=bm9wZQ", "bad page cursor"),
    # A cursor whose position does not fit SQLite's 64-bit integers (was a 500: OverflowError).
    ("after=" + reads.encode_cursor(10**30, "r1"),
     "bad page cursor &#39;WzEwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAsInIxIl0&#39;: its position is out of range"),
    ("after=" + "A" * 20_000, "bad page cursor &#39;" + "A" * 80 + "&#39;... (20,000 characters): longer than"),
    # Dates past what int64 nanoseconds hold (were a 500).
    ("until=9999-12-31", "until=&#39;9999-12-31&#39; is out of range: the store holds times from 1677-09-22 "
                         "to 2262-04-10 (UTC)"),
    ("until=2262-04-11", "until=&#39;2262-04-11&#39; is out of range"),
    ("since=1000-01-01", "since=&#39;1000-01-01&#39; is out of range"),
    ("since=0001-01-01T00:00:00-23:59", "since=&#39;0001-01-01T00:00:00-23:59&#39; is out of range"),
    # A parameter the page does not read was silently ignored.
    ("from=notadate", "unknown query parameter &#39;from&#39; (did you mean since?): this page takes after, "
                      "flag, model, order, outcome, owner, period, project, q, since, sort, until"),
])
def test_bad_parameters_are_a_400_naming_them(base: str, query: str, message: str) -> None:
    page = httpx.get(f"{base}/?{query}")
    assert page.status_code == 400
    assert message in page.text


@pytest.mark.parametrize(("path", "message"), [
    ("/spend?until=2262-04-11", "until=&#39;2262-04-11&#39; is out of range"),
    ("/spend?since=2026-01-01&until=99999", "until=&#39;99999&#39; is not a date"),
    ("/spend?from=2026-01-01", "unknown query parameter &#39;from&#39; (did you mean since?)"),
    ("/search?q=x&page=2", "unknown query parameter &#39;page&#39; (did you mean after?): this page takes after, "
                           "field, model, outcome, period, project, q, since, until"),
])
def test_bad_parameters_on_the_other_pages_are_a_400(base: str, path: str, message: str) -> None:
    page = httpx.get(base + path)
    assert page.status_code == 400
    assert message in page.text


@pytest.mark.parametrize(("query", "message"), [
    ("until=9999-12-31", "until='9999-12-31' is out of range"),
    ("from=x", "unknown query parameter 'from' (did you mean since?)"),
    ("limit=" + "9" * 5000, "is not an integer"),
])
def test_bad_api_parameters_are_a_json_400(base: str, query: str, message: str) -> None:
    answer = httpx.get(f"{base}/api/runs?{query}")
    assert answer.status_code == 400
    assert message in answer.json()["error"]


def test_the_widest_dates_still_work(base: str) -> None:
    """The edges of the range are valid bounds, not errors: all seven runs lie between them."""
    page = httpx.get(f"{base}/?since=1677-09-22&until=2262-04-10")
    assert page.status_code == 200
    assert len(run_ids(page.text)) == 7
    assert httpx.get(f"{base}/spend?since=1677-09-22&until=2262-04-10").status_code == 200


def test_keyset_paging_walks_every_run_once_in_order(store: Store) -> None:
    for sort, descending in [("started", True), ("started", False), ("cost", True), ("duration", False),
                             ("llm_calls", True), ("tool_calls", False), ("tokens", True)]:
        flt = reads.RunFilter()
        whole = reads.runs_page(store, flt, sort=sort, descending=descending, limit=100)
        seen: list[str] = []
        after = None
        while True:
            page = reads.runs_page(store, flt, sort=sort, descending=descending, after=after, limit=2)
            seen.extend(r["id"] for r in page.rows)
            if page.next_cursor is None:
                break
            after = page.next_cursor
        assert seen == [r["id"] for r in whole.rows], sort
        assert len(seen) == 7


def test_next_page_link_continues_where_the_first_page_ended(base: str, store: Store) -> None:
    page = reads.runs_page(store, reads.RunFilter(), limit=3)
    assert [r["id"] for r in page.rows] == ALL_NEWEST_FIRST[:3]
    rest = httpx.get(f"{base}/?after={page.next_cursor}")
    assert run_ids(rest.text) == ALL_NEWEST_FIRST[3:]
    assert "First page" in rest.text


def test_default_order_and_keyset_page_read_the_start_index(store: Store) -> None:
    page = reads.runs_page(store, reads.RunFilter(), limit=2)
    cursor_value, cursor_id = reads.decode_cursor(page.next_cursor or "")
    plan = store.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM runs WHERE (started_ns < ? OR (started_ns = ? AND id > ?)) "
        "ORDER BY started_ns DESC, id ASC LIMIT 51", (cursor_value, cursor_value, cursor_id))
    details = " ".join(r["detail"] for r in plan)
    assert "runs_started" in details
    assert "TEMP B-TREE" not in details


def test_run_page_shows_timeline_detections_budget_and_verdict(base: str) -> None:
    page = httpx.get(f"{base}/runs/r1-fix-flaky")
    assert page.status_code == 200
    html = page.text
    assert html.count('<details class="wf-span') == 7
    assert "read_file(path=&#39;src/app.py&#39;) returned the same result 3 times." in html
    assert "returned the same result as an earlier read (2 times so far)." in html
    assert "Verdict: Accepted by alice at 2026-11-20 10:00:40 UTC" in html
    assert "$0.0775 of $0.50" in html  # the cost gauge
    assert "4 of 10" in html  # the tool-call gauge
    assert '<svg class="chart"' in html
    assert html.count('<circle class="dot s0"') == 2  # one point per priced call


def test_run_page_explains_a_budget_stop_and_a_late_verdict(base: str) -> None:
    stopped = httpx.get(f"{base}/runs/r4-summarise").text
    assert ("The budget max_cost_usd was exceeded: $0.133 against a limit of $0.10; the run was stopped."
            in stopped)
    late = httpx.get(f"{base}/runs/r6-answer").text
    assert ("Verdict: Accepted by ci at 2026-11-20 18:00:08 UTC (3.0 h after the run ended): tests passed"
            in late)


def test_run_page_accepts_a_unique_prefix_and_refuses_unknown_or_ambiguous_ids(base: str) -> None:
    assert "summarise logs" in httpx.get(f"{base}/runs/r4").text
    missing = httpx.get(f"{base}/runs/nope")
    assert missing.status_code == 404
    assert "no run &#39;nope&#39; in this store" in missing.text
    ambiguous = httpx.get(f"{base}/runs/r")
    assert ambiguous.status_code == 400
    assert "is ambiguous" in ambiguous.text


def test_user_supplied_markup_is_escaped_everywhere(base: str) -> None:
    pages = [httpx.get(f"{base}{url}").text for url in
             ("/", "/runs/r7-xss", "/search?q=__xss", "/search?q=script&field=text", "/spend?by=owner&period=all",
              "/?q=%3Cscript%3E")]
    for html in pages:
        assert "<script>window" not in html
        assert "<img src=x" not in html
        assert "<b>bold</b>" not in html
    run = pages[1]
    assert "&lt;script&gt;window.__xss_name=1&lt;/script&gt;" in run
    assert "&lt;script&gt;window.__xss=1;alert(1)&lt;/script&gt;&lt;img src=x onerror=" in run
    assert "&lt;b&gt;bold&lt;/b&gt;" in run
    assert XSS_NAME not in run and XSS_RESULT not in run


@pytest.mark.parametrize(("query", "matched", "run"), [
    ("read_file", "tool", "r1-fix-flaky"),
    ("search_docs&field=tool", "tool", "r7-xss"),
    ("claude-sonnet&field=model", "model", "r2-refactor"),
    (trace_id(4), "trace id", "r4-summarise"),
    ("r6-ans", "run id", "r6-answer"),
    ("window.__xss_out&field=text", "captured text gen_ai.output.messages", "r7-xss"),
    ("bold&field=attribute", "attribute app.note", "r7-xss"),
    ("tests passed", "attribute runtrace.run.outcome.reason", "r6-answer"),
])
def test_search_finds_runs_and_links_to_them(base: str, query: str, matched: str, run: str) -> None:
    page = httpx.get(f"{base}/search?q={query}")
    assert page.status_code == 200
    assert f'<td>{matched}</td>' in page.text
    assert f'href="/runs/{run}' in page.text


def test_search_hits_name_the_span_they_matched(store: Store) -> None:
    hits = reads.search(store, "read_file", field="tool")
    assert [(h.run_id, h.matched, h.span_name) for h in hits] == [("r1-fix-flaky", "tool", "execute_tool read_file")] * 3
    assert hits[0].snippet == 'read_file({"path": "src/app.py"})'  # the captured arguments
    grouped = reads.group_hits(hits)
    assert [(run_id, len(run_hits)) for run_id, _name, run_hits in grouped] == [("r1-fix-flaky", 3)]
    assert reads.search(store, "no such thing anywhere") == []


def test_spend_buckets_cost_per_hour_and_group(store: Store) -> None:
    chart = reads.spend(store, "project", since_ns=None, until_ns=None, now_ns=at(48))
    assert chart.bucket == "hour"
    assert chart.labels == [f"11-20 {h}h" for h in range(10, 17)]
    series = dict(chart.series)
    assert series["billing"] == pytest.approx([0.0775, 0.18, 0, 0, 0, 0, 0], abs=1e-12)
    assert series["support"] == pytest.approx([0, 0, 0.00048, 0.133, 0, 0.015, 0], abs=1e-12)
    assert series["web"] == pytest.approx([0, 0, 0, 0, 0.012, 0, 0.00021], abs=1e-12)
    assert [(g, round(usd, 9), runs, unpriced) for g, usd, runs, unpriced in chart.totals] == [
        ("billing", 0.2575, 2, 0), ("support", 0.14848, 3, 0), ("web", 0.01221, 2, 1)]
    by_model = reads.spend(store, "model", since_ns=None, until_ns=None, now_ns=at(48))
    assert [(g, round(usd, 9), runs) for g, usd, runs, _u in by_model.totals] == [
        ("gpt-4o", 0.2225, 3), ("claude-sonnet-4-20250514", 0.195, 2), ("gpt-4o-mini", 0.00069, 2),
        ("my-local-llm", 0.0, 1)]
    days = reads.spend(store, "owner", since_ns=at(-24 * 6), until_ns=None, now_ns=at(24))
    assert days.bucket == "day"
    assert len(days.labels) == 8


def test_spend_page_plots_and_totals(base: str) -> None:
    page = httpx.get(f"{base}/spend?by=provider&period=all")
    assert page.status_code == 200
    assert page.text.count('<rect class="bar') == 7  # openai in 5 hours, anthropic in 2; ollama cost nothing
    assert "<td>openai</td><td class=\"num\">$0.2232</td>" in page.text  # 0.2225 + 0.00069
    assert "<td>anthropic</td><td class=\"num\">$0.195</td>" in page.text


def test_metrics_are_prometheus_text_with_exact_totals(base: str) -> None:
    response = httpx.get(f"{base}/metrics")
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    lines = set(response.text.splitlines())
    for line in (
        'runtrace_cost_usd_total{project="billing"} 0.2575',
        'runtrace_cost_usd_total{project="support"} 0.14848',
        'runtrace_model_cost_usd_total{provider="openai",model="gpt-4o"} 0.2225',
        'runtrace_runs{project="support",outcome="budget_stopped"} 1',
        'runtrace_runs{project="web",outcome="open"} 1',
        'runtrace_llm_calls_total{project="billing"} 3',
        'runtrace_tool_calls_total{project="billing"} 5',
        'runtrace_budget_stops_total{project="support"} 1',
        'runtrace_loops_total{project="billing"} 1',
        'runtrace_repeated_reads_total{project="billing"} 2',
        'runtrace_unpriced_calls_total{project="web"} 1',
        'runtrace_tokens_total{project="billing",type="input"} 80000',
        "# TYPE runtrace_runs gauge",
    ):
        assert line in lines


def test_api_matches_the_section_8_queries_exactly(base: str, store: Store) -> None:
    assert httpx.get(f"{base}/api/runs").json() == list_runs(store, limit=50)
    assert httpx.get(f"{base}/api/runs?project=web").json() == list_runs(store, project="web")
    assert [r["id"] for r in httpx.get(f"{base}/api/runs?limit=2&offset=1").json()] == ALL_NEWEST_FIRST[1:3]
    one = httpx.get(f"{base}/api/runs/r1-fix-flaky").json()
    assert one == get_run(store, "r1-fix-flaky")
    assert one["cost_usd"] == pytest.approx(0.0775, abs=1e-12)
    assert [s["kind"] for s in one["spans"]].count("tool") == 4
    assert httpx.get(f"{base}/api/runs/nope").status_code == 404
    bad = httpx.get(f"{base}/api/runs?limit=0")
    assert bad.status_code == 400
    assert bad.json() == {"error": "limit=0 is outside 1..1000"}
