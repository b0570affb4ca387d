"""Search: an id-shaped query answers from the indexes; other text still scans span attributes."""

from __future__ import annotations

from pathlib import Path

from runtrace import semconv as sc
from runtrace.server.reads import search
from runtrace.store.db import Store
from test_server_support import at, run_span, tool_span, trace_id

RUN_A = "abcdef1234567890abcdef1234567890"
RUN_B = "0123456789abcdef0123456789abcdef"


def build(path: Path) -> Store:
    store = Store.open(path)
    store.ingest([
        run_span(RUN_A, "alpha", trace=trace_id(1), start=at(1), end=at(1, 9), project="p", owner="o"),
        tool_span(RUN_B, "fetch", trace=trace_id(2), parent=None, start=at(2), end=at(2, 1),
                  extra={sc.GEN_AI_TOOL_CALL_ARGUMENTS: '{"ref": "abcdef12 and deadbeef99"}'}),
        run_span(RUN_B, "beta", trace=trace_id(2), start=at(2), end=at(2, 9), project="p", owner="o"),
    ])
    return store


def test_a_run_id_prefix_is_a_lookup(tmp_path: Path) -> None:
    with build(tmp_path / "s.db") as store:
        hits = search(store, "abcdef12")
    assert [(h.run_id, h.matched) for h in hits] == [(RUN_A, "run id")]


def test_hex_text_that_names_no_run_still_finds_the_span(tmp_path: Path) -> None:
    with build(tmp_path / "s.db") as store:
        hits = search(store, "deadbeef99")
    assert [h.run_id for h in hits] == [RUN_B]


def test_search_page_groups_by_run_highlights_escaped_and_filters(tmp_path: Path) -> None:
    import httpx

    from runtrace.server import create_app
    from test_server_support import running_server

    evil = '<script>window.__x=1</script><b onmouseover="x">needle</b>'
    path = tmp_path / "s.db"
    with Store.open(path) as store:
        store.ingest([
            run_span(RUN_A, "alpha <i>run</i>", trace=trace_id(1), start=at(1), end=at(1, 9), project="p", owner="o"),
            tool_span(RUN_A, "fetch", trace=trace_id(1), parent=None, start=at(1, 1), end=at(1, 2),
                      extra={sc.GEN_AI_TOOL_CALL_RESULT: evil}),
            tool_span(RUN_B, "fetch", trace=trace_id(2), parent=None, start=at(2), end=at(2, 1),
                      extra={"app.note": "a needle in the haystack"}),
            run_span(RUN_B, "beta", trace=trace_id(2), start=at(2), end=at(2, 9), project="q", owner="o"),
        ])
    with running_server(create_app(path)) as base:
        page = httpx.get(f"{base}/search", params={"q": "needle"})
        assert page.status_code == 200
        html = page.text
        assert html.count('<tbody class="hit-group">') == 2  # one group per run
        assert "alpha &lt;i&gt;run&lt;/i&gt;" in html and 'href="/runs/' + RUN_A in html
        assert "&lt;script&gt;window.__x=1&lt;/script&gt;&lt;b onmouseover=&#34;x&#34;&gt;<mark>needle</mark>" in html
        assert "<script>window" not in html and "<b onmouseover" not in html
        assert "a <mark>needle</mark> in the haystack" in html
        assert 'class="badge o-open"' in html  # the run's outcome beside its name
        only_q = httpx.get(f"{base}/search", params={"q": "needle", "project": "q"}).text
        assert only_q.count('<tbody class="hit-group">') == 1 and "beta" in only_q and "alpha" not in only_q
        none = httpx.get(f"{base}/search", params={"q": "needle", "outcome": "accepted"}).text
        assert "Nothing matches “needle” with these filters." in none
        bad = httpx.get(f"{base}/search", params={"q": "needle", "after": "xyz"})
        assert bad.status_code == 400 and "bad page cursor" in bad.text
        assert httpx.get(f"{base}/search", params={"q": '"needle OR *'}).status_code == 200
