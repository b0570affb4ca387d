"""Search: an id-shaped query answers from the indexes; other text still scans span attributes."""

from __future__ import annotations

from pathlib import Path

from runtrace import semconv as sc
from runtrace.server.queries import search
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
