"""The What-if page of `runtrace serve` over HTTP, on the hand-built fixture store.

Target gpt-4o-mini (openai): $0.15 per million input tokens, $0.075 cached, $0.60 output.
Each run's calls are in ``test_server_support``; worked out call by call:

| run | actual | on gpt-4o-mini |
|---|---|---|
| r2 refactor invoices | 0.18 | 50,000 x 0.15 + 2,000 x 0.6 = 0.0087 |
| r4 summarise logs | 0.133 | 42,000 x 0.15 + 2,800 x 0.6 = 0.00798 |
| r1 fix flaky test | 0.0775 | 10,000 x 0.15 + 1,000 x 0.6 + 10,000 x 0.15 + 10,000 x 0.075 + 500 x 0.6 = 0.00465 |
| r6 answer ticket | 0.015 | 3,000 x 0.15 + 400 x 0.6 = 0.00069 |
| r5 explore api | 0.012 + 1 unpriced call | 5,000 x 0.15 + 300 x 0.6 = 0.00093 |
| r3 triage bug 88 | 0.00048 | 2,000 x 0.15 + 300 x 0.6 = 0.00048 |
| r7 <script> name | 0.00021 | 1,000 x 0.15 + 100 x 0.6 = 0.00021 |

r5 has no complete actual price, so the totals compare the other six:
0.40619 actual against 0.02271, a difference of -0.38348 (-94.41%).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runtrace import semconv as sc
from runtrace.reprice import OutputStats, reprice
from runtrace.server import whatif
from runtrace.server.app import create_app
from runtrace.server.headers import CSP
from runtrace.store.db import Store
from runtrace.store.records import SpanRecord
from test_server_support import (
    XSS_NAME,
    at,
    build_fixture_store,
    fixture_records,
    run_span,
    running_server,
    span,
    trace_id,
)

MINI = "pick=openai:gpt-4o-mini&period=all"
ALL_BY_COST = ["r2-refactor", "r4-summarise", "r1-fix-flaky", "r6-answer", "r5-explore", "r3-triage", "r7-xss"]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixture_store(tmp_path_factory.mktemp("whatif") / "runtrace.db")


@pytest.fixture(scope="module")
def base(store_path: Path) -> Iterator[str]:
    with running_server(create_app(store_path)) as url:
        yield url


def get(base: str, query: str) -> httpx.Response:
    return httpx.get(f"{base}/whatif?{query}", timeout=30)


def text_of(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert match, element_id
    return match.group(1)


def flat(html: str) -> str:
    """The page with each run of whitespace as one space, so a sentence can be matched whole."""
    return re.sub(r"\s+", " ", html)


def run_ids(html: str) -> list[str]:
    table = html.split('id="wi-runs"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<tr data-run-id="([^"]+)">', table)


def diff_cell(html: str, run_id: str) -> str:
    row = html.split(f'<tr data-run-id="{run_id}">', 1)[1].split("</tr>", 1)[0]
    cell = row.split('<td class="num diff">', 1)[1].split("</td>", 1)[0]
    return re.sub(r"<[^>]+>", "", cell).strip()


def test_totals_per_run_routing_and_verbosity_on_gpt_4o_mini(base: str) -> None:
    page = get(base, MINI)
    assert page.status_code == 200
    html = page.text
    assert "10 LLM calls in 7 runs, repriced on <strong>gpt-4o-mini</strong> (openai)." in flat(html)
    assert text_of(html, "wi-actual") == "$0.4062"  # 0.40619
    assert text_of(html, "wi-whatif") == "$0.0227"  # 0.02271
    assert text_of(html, "wi-diff") == "-$0.3835"  # -0.38348
    assert text_of(html, "wi-diff-pct") == "-94.4% · cheaper"
    assert "6 runs priced on both sides" in html
    assert run_ids(html) == ALL_BY_COST
    assert diff_cell(html, "r2-refactor") == "-$0.1713 -95.2%"  # 0.0087 - 0.18
    assert diff_cell(html, "r4-summarise") == "-$0.125 -94.0%"  # 0.00798 - 0.133
    assert diff_cell(html, "r3-triage") == "$0.00 0.0%"
    assert diff_cell(html, "r5-explore") == "not compared"
    # r5's unknown actual price is said, with what it would cost on the target.
    assert ('<strong>1 run had no actual price</strong> for 1 call (a model nobody prices), so it is left out of '
            'the comparison; on gpt-4o-mini <a href="/runs/r5-explore">explore api</a> would cost $0.00093.'
            in flat(html))
    assert 'id="wi-not-repriced"' not in html  # every call has token counts
    routing = html.split('id="wi-routing"', 1)[1].split("</section>", 1)[0]
    assert re.findall(r'<tr data-run-id="([^"]+)">', routing) == ["r6-answer"]
    assert '<td class="num">$0.015</td> <td class="num">$0.00069</td><td class="num cheaper">$0.0143</td>' \
        in flat(routing)
    verbosity = html.split('id="wi-verbosity"', 1)[1].split("</section>", 1)[0]
    assert verbosity.count('<rect class="bar') == 7  # one per (model, prompt-size bucket)
    assert ("<title>gpt-4o, prompts over 10k: 3 calls, mean 1,100 output tokens (median 800, p90 2,000, "
            "max 2,000)</title>") in verbosity
    assert verbosity.count('<i class="swatch') == 3


def test_project_and_time_filters_narrow_the_runs(base: str) -> None:
    support = get(base, "pick=openai:gpt-4o-mini&project=support&period=all").text
    assert run_ids(support) == ["r4-summarise", "r6-answer", "r3-triage"]
    assert text_of(support, "wi-actual") == "$0.1485"  # 0.133 + 0.015 + 0.00048
    assert text_of(support, "wi-whatif") == "$0.00915"  # 0.00798 + 0.00069 + 0.00048
    assert text_of(support, "wi-diff") == "-$0.1393"  # -0.13933
    assert text_of(support, "wi-diff-pct") == "-93.8% · cheaper"
    assert '<option value="support" selected>support</option>' in support
    window = get(base, "pick=openai:gpt-4o-mini&since=2026-11-20T12:00:00Z&until=2026-11-20T13:00:00Z").text
    assert run_ids(window) == ["r3-triage"]
    assert '<option value="custom" selected>custom dates</option>' in window
    empty = get(base, "pick=openai:gpt-4o-mini&since=2026-11-21").text
    assert text_of(empty, "wi-no-runs") == "No LLM calls in these runs: widen the period or pick another project."
    # The form starts on the last 30 days, like the Spend page.
    first = get(base, "").text
    assert '<option value="30d" selected>last 30d</option>' in first
    assert "Choose a target model above" in first


def test_tier_and_token_ratio(base: str) -> None:
    r3 = "pick=openai:gpt-4o-mini&since=2026-11-20T12:00:00Z&until=2026-11-20T13:00:00Z"
    batch = get(base, r3 + "&tier=batch").text
    assert text_of(batch, "wi-whatif") == "$0.00024"  # half of 0.00048
    assert text_of(batch, "wi-diff-pct") == "-50.0% · cheaper"
    assert ", batch tier." in batch
    ratio = get(base, r3 + "&ratio=1.35").text
    assert text_of(ratio, "wi-whatif") == "$0.000648"  # 2,700 x 0.15 + 405 x 0.6
    assert text_of(ratio, "wi-diff") == "+$0.000168"
    assert text_of(ratio, "wi-diff-pct") == "+35.0% · dearer"
    assert ", token ratio 1.35." in ratio
    flex = get(base, r3 + "&tier=flex").text
    assert "gpt-4o-mini has no &#39;flex&#39; tier price of its own: priced at the standard price" in flex
    assert text_of(flex, "wi-whatif") == "$0.00048"


def test_a_typed_name_wins_over_the_list(base: str) -> None:
    page = get(base, "pick=anthropic:claude-haiku-4-5&model=gpt-4o-mini&provider=openai&period=all").text
    assert "<strong>gpt-4o-mini</strong> (openai)" in page
    assert text_of(page, "wi-whatif") == "$0.0227"
    assert 'name="model" id="wi-model" value="gpt-4o-mini"' in page


def test_one_run_from_the_run_page(base: str) -> None:
    run_page = httpx.get(f"{base}/runs/r6-answer").text
    assert '<a href="/whatif?run=r6-answer" id="whatif-link">What would this run cost on another model?</a>' \
        in run_page
    start = get(base, "run=r6-answer")
    assert start.status_code == 200
    assert "What if this run had used another model?" in start.text
    assert '<input type="hidden" name="run" value="r6-answer">' in start.text
    assert 'name="project"' not in start.text  # one run: no project or period to choose
    # A unique prefix names the run; the period is ignored (the run is from 2026-11-20).
    page = get(base, "run=r6&pick=openai:gpt-4o-mini&period=24h").text
    assert run_ids(page) == ["r6-answer"]
    assert text_of(page, "wi-actual") == "$0.015"
    assert text_of(page, "wi-whatif") == "$0.00069"
    assert text_of(page, "wi-diff-pct") == "-95.4% · cheaper"  # (0.00069 - 0.015) / 0.015
    assert "1 LLM call in 1 run, repriced on <strong>gpt-4o-mini</strong> (openai)." in flat(page)


@pytest.mark.parametrize(("query", "status", "message"), [
    ("model=no-such-model", 400, "no price known for model &#39;no-such-model&#39;"),
    ("model=gpt-4o-mini&provider=nobody", 400, "no price known for model &#39;gpt-4o-mini&#39; of provider "
                                                "&#39;nobody&#39;"),
    (MINI + "&ratio=-1", 400, "token ratio &#39;-1&#39; is not a positive number"),
    (MINI + "&ratio=0", 400, "token ratio &#39;0&#39; is not a positive number"),
    (MINI + "&ratio=abc", 400, "token ratio &#39;abc&#39; is not a positive number"),
    (MINI + "&ratio=nan", 400, "token ratio &#39;nan&#39; is not a positive number"),
    (MINI + "&ratio=inf", 400, "token ratio &#39;inf&#39; is not a positive number"),
    (MINI + "&tier=turbo", 400, "tier &#39;turbo&#39; is not one of default, flex, priority, batch"),
    ("pick=gpt-4o-mini", 400, "pick=&#39;gpt-4o-mini&#39; is not a provider:model pair from the list"),
    ("pick=openai:gpt-4o-mini&since=yesterday", 400, "since=&#39;yesterday&#39; is not a date"),
    ("pick=openai:gpt-4o-mini&period=1y", 400, "period=&#39;1y&#39; is not one of"),
    ("run=nope&pick=openai:gpt-4o-mini", 404, "no run &#39;nope&#39; in this store"),
    ("run=r&pick=openai:gpt-4o-mini", 400, "run id prefix &#39;r&#39; is ambiguous"),
    (MINI + "&from=2026-01-01", 400, "unknown query parameter &#39;from&#39; (did you mean since?)"),
    (MINI + "&until=9999-12-31", 400, "until=&#39;9999-12-31&#39; is out of range"),
])
def test_bad_input_is_said_in_the_page_with_the_form(base: str, query: str, status: int, message: str) -> None:
    page = get(base, query)
    assert page.status_code == status
    errors = page.text.split('id="wi-errors">', 1)[1].split("</div>", 1)[0]
    assert message in errors
    assert 'id="whatif-form"' in page.text  # the form is there to fix it
    assert 'id="wi-actual"' not in page.text  # and no figures from a half-read form


def test_the_form_keeps_what_was_typed_when_it_is_refused(base: str) -> None:
    page = get(base, "model=no-such-model&provider=acme&ratio=-1&tier=batch&period=7d").text
    assert 'name="model" id="wi-model" value="no-such-model"' in page
    assert 'name="provider" value="acme"' in page
    assert 'name="ratio" value="-1"' in page
    assert '<option value="batch" selected>batch</option>' in page
    assert '<option value="7d" selected>last 7d</option>' in page


def test_user_supplied_markup_is_escaped(base: str) -> None:
    page = get(base, MINI)
    html = page.text
    assert page.headers["content-security-policy"] == CSP
    assert XSS_NAME not in html and "<script>window" not in html
    assert '<a href="/runs/r7-xss">&lt;script&gt;window.__xss_name=1&lt;/script&gt;</a>' in html
    # No inline script anywhere: every <script> element loads a file of this server.
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/app.js" defer>',
                                                   '<script src="/static/whatif.js" defer>']
    typed = get(base, "model=%3Cscript%3Ealert(1)%3C/script%3E&run=%3Cimg%20src=x%3E").text
    assert "<script>alert" not in typed and "<img src=x>" not in typed
    assert "no run &#39;&lt;img src=x&gt;&#39; in this store" in typed


def test_verbosity_chart_escapes_model_names() -> None:
    svg = str(whatif.verbosity_chart([OutputStats("<b>m</b>", "up to 1k", 2, 150.0, 100, 200, 200)]))
    assert "<b>" not in svg
    assert "<title>&lt;b&gt;m&lt;/b&gt;, prompts up to 1k: 2 calls, mean 150 output tokens" in svg
    assert str(whatif.verbosity_chart([])) == '<p class="empty">No calls with token counts to plot.</p>'


def test_the_per_run_table_shows_the_first_rows_and_links_to_all(base: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(whatif, "ROWS_SHOWN", 3)
    page = get(base, MINI).text
    assert run_ids(page) == ALL_BY_COST[:3]
    assert "3 of 7 runs shown" in page
    assert text_of(page, "wi-actual") == "$0.4062"  # the totals still count every run
    assert run_ids(get(base, MINI + "&rows=all").text) == ALL_BY_COST


def test_navigation_and_token_auth(store_path: Path, base: str) -> None:
    assert '<a href="/whatif" >What if</a>' in httpx.get(base + "/").text
    assert '<a href="/whatif" aria-current="page">What if</a>' in get(base, "").text
    with running_server(create_app(store_path, token="s3cret")) as guarded:
        assert httpx.get(guarded + "/whatif").status_code == 401
        ok = httpx.get(guarded + "/whatif?" + MINI, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert text_of(ok.text, "wi-whatif") == "$0.0227"


def test_runs_whose_calls_have_no_token_counts_are_counted_and_said(tmp_path: Path) -> None:
    path = tmp_path / "runtrace.db"
    t, s = trace_id(9), at(7)
    failed = [run_span("r9-failed", "failed call", trace=t, start=s, end=s + 5_000_000_000, project="web",
                       owner="dave", outcome=sc.OUTCOME_ERROR, span_id="a9" * 8),
              span("chat gpt-4o", trace=t, run_id="r9-failed", start=s + 1, end=s + 2, parent="a9" * 8,
                   attrs={sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_PROVIDER_NAME: sc.PROVIDER_OPENAI,
                          sc.GEN_AI_REQUEST_MODEL: "gpt-4o", sc.COST_SOURCE: sc.SOURCE_UNKNOWN}, status="ERROR")]
    with Store.open(path) as store:
        store.ingest([*fixture_records(), *failed])
    with running_server(create_app(path)) as url:
        html = get(url, MINI).text
    assert ('<strong>1 run could not be repriced</strong>: 1 call recorded no token counts (a failed call, '
            'or a client that reports no usage), so it is left out of the totals: '
            '<a href="/runs/r9-failed">failed call</a>.') in flat(html)
    assert "11 LLM calls in 8 runs" in html
    assert text_of(html, "wi-whatif") == "$0.0227"  # the same six comparable runs as without it
    assert diff_cell(html, "r9-failed") == "not compared"


def copies_of_the_fixture(n: int) -> list[SpanRecord]:
    """The seven fixture runs ``n`` times over, as runs r1-fix-flaky-0, r1-fix-flaky-1 ..."""
    out = []
    for i in range(n):
        for r in fixture_records():
            attrs = dict(r.attributes)
            if sc.RUN_ID in attrs:
                attrs[sc.RUN_ID] = f"{attrs[sc.RUN_ID]}-{i}"
            out.append(dataclasses.replace(
                r, trace_id=f"{i:04x}{r.trace_id[4:]}", span_id=f"{i:04x}{r.span_id[4:]}",
                parent_span_id=f"{i:04x}{r.parent_span_id[4:]}" if r.parent_span_id else None, attributes=attrs))
    return out


def test_long_lists_are_cut_and_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(whatif, "NAMES_LISTED", 2)
    monkeypatch.setattr(whatif, "ROUTING_SHOWN", 2)
    path = tmp_path / "runtrace.db"
    with Store.open(path) as store:
        store.ingest(copies_of_the_fixture(3))
    with running_server(create_app(path)) as url:
        html = flat(get(url, MINI).text)
    assert "30 LLM calls in 21 runs" in html
    assert ("<strong>3 runs had no actual price</strong> for 3 calls (a model nobody prices), so they are left out "
            "of the comparison; on gpt-4o-mini they would cost $0.00279 in all (<a href=\"/runs/r5-explore-0\">"
            "explore api</a>, <a href=\"/runs/r5-explore-1\">explore api</a>, and 1 more).") in html
    routing = html.split('id="wi-routing"', 1)[1].split("</section>", 1)[0]
    assert len(re.findall(r'<tr data-run-id="r6-answer-\d">', routing)) == 2
    assert text_of(routing, "wi-routing-total") == "The 2 biggest savings of 3. Together: $0.0429 saved on 3 runs."
    assert text_of(html, "wi-actual") == "$1.22"  # 3 x 0.40619 = 1.21857
    assert text_of(html, "wi-whatif") == "$0.0681"  # 3 x 0.02271 = 0.06813


def test_reprice_run_ids_limits_the_scan(store_path: Path) -> None:
    with Store.open(store_path, create=False) as store:
        two = reprice(store, model="gpt-4o-mini", provider="openai", run_ids=["r6-answer", "r1-fix-flaky"])
        assert [r.run_id for r in two.runs] == ["r1-fix-flaky", "r6-answer"]
        assert two.calls == 3
        assert two.repriced_usd == pytest.approx(0.00465 + 0.00069, abs=1e-12)
        assert reprice(store, model="gpt-4o-mini", run_ids=[]).runs == []
        billing = reprice(store, model="gpt-4o-mini", run_ids=["r6-answer", "r1-fix-flaky"], project="billing")
        assert [r.run_id for r in billing.runs] == ["r1-fix-flaky"]  # the other filters still apply
        with pytest.raises(TypeError, match="run_ids must be a sequence"):
            reprice(store, model="gpt-4o-mini", run_ids="r6-answer")


def test_the_model_list_is_genai_prices_chat_models_with_their_prices() -> None:
    catalog = whatif.model_catalog()
    assert list(catalog) == ["openai", "anthropic", "google"]
    by_value = {c.value: c for choices in catalog.values() for c in choices}
    mini = by_value["openai:gpt-4o-mini"]
    assert (mini.input_per_mtok, mini.output_per_mtok) == pytest.approx((0.15, 0.6), abs=1e-12)
    assert mini.label == "gpt-4o-mini  \u00b7  $0.15 in / $0.60 out per Mtok"
    assert "anthropic:claude-haiku-4-5" in by_value and "google:gemini-2.5-flash" in by_value
    for excluded in ("openai:text-embedding-3-small", "openai:tts-1", "openai:whisper-1", "openai:ft:gpt-4o",
                     "google:claude-3-5-haiku"):
        assert excluded not in by_value
    assert all(not c.model.startswith("claude") for c in catalog["google"])
    assert [c.value for c in whatif.suggestions(catalog)] == [
        "openai:gpt-5-mini", "anthropic:claude-haiku-4-5", "google:gemini-2.5-flash", "openai:gpt-4o-mini"]
    assert whatif.model_catalog() is catalog  # built once per price table
