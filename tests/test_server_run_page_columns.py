"""The run page reads a long run's spans as columns: the same HTML, byte for byte, with Python's collector left quiet.

``store.runpage.run_spans`` gives the page one tuple per field instead of a
dict per span, and ``explain.tree_order_indices`` orders them by index. A
5,000-span run's page used to hold 5,000 span dicts, their event lists and
5,000 (span, depth) pairs at once; Python's collector ran a pass per 700 such
objects (57 for one page) and a full collection about every other page, which
cost as much as the page itself. Counted here, never timed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runpage_varied import RUN, varied_records
from runtrace.explain import tree_order, tree_order_indices
from runtrace.server import charts
from runtrace.server.app import create_app
from runtrace.server.pages import env, load_run_view, render_text
from runtrace.server.runview import build_run_view
from runtrace.server.spanview import PAGE_SPANS
from runtrace.store.db import Store
from runtrace.store.queries import get_run
from test_server_spans import BIG_RUN, build_big_store
from test_server_support import running_server


def _reference_tree_order(spans: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """The run page's tree order as it was written over span dicts (before the columns), kept as the reference."""
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for s in spans:
        parent = s["parent_span_id"] if s["parent_span_id"] in ids and s["parent_span_id"] != s["span_id"] else None
        children.setdefault(parent, []).append(s)
    out: list[tuple[dict[str, Any], int]] = []
    placed: set[str] = set()
    stack: list[tuple[dict[str, Any], int]] = [(s, 0) for s in reversed(children.get(None, []))]
    while stack:
        span, depth = stack.pop()
        if span["span_id"] in placed:
            continue
        placed.add(span["span_id"])
        out.append((span, depth))
        stack.extend((c, depth + 1) for c in reversed(children.get(span["span_id"], [])))
    out.extend((s, 0) for s in spans if s["span_id"] not in placed)
    return out


# Few ids, so that parents repeat, ids repeat (another trace's span), cycles and self-parents occur.
_IDS = st.sampled_from([f"{n:016x}" for n in range(12)])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_IDS, st.one_of(st.none(), _IDS, st.just("not-in-the-run"))), max_size=30))
def test_the_tree_order_by_index_is_the_tree_order_of_the_span_dicts(pairs: list[tuple[str, str | None]]) -> None:
    spans = [{"span_id": span_id, "parent_span_id": parent, "n": n} for n, (span_id, parent) in enumerate(pairs)]
    expected = [(s["n"], depth) for s, depth in _reference_tree_order(spans)]
    order, depths = tree_order_indices([s["span_id"] for s in spans], [s["parent_span_id"] for s in spans])
    assert [(i, depths[i]) for i in order] == expected
    assert [(s["n"], depth) for s, depth in tree_order(spans)] == expected


def test_a_cycle_and_a_repeated_id_are_ordered_as_before() -> None:
    ids = ["a", "b", "c", "d", "b", "e"]
    parents: list[str | None] = [None, "a", "d", "c", "a", "e"]  # c <-> d a cycle, e its own parent, b twice
    order, depths = tree_order_indices(ids, parents)
    assert [(i, depths[i]) for i in order] == [(0, 0), (1, 1), (5, 0), (2, 0), (3, 0)]


def _whole_page(store: Store, run_id: str) -> str:
    """The run page rendered from the whole-run view (``get_run`` with every span decoded), as the server renders it."""
    run = get_run(store, run_id, limit=0)
    whole = get_run(store, run_id)
    assert run is not None and whole is not None
    view = build_run_view(whole, row_limit=PAGE_SPANS)
    curve = charts.cost_curve(view.curve, duration_s=view.total_s,
                              budget_usd=(run.get("budget") or {}).get("max_cost_usd"))
    return env.get_template("run.html").render(request_path=f"/runs/{run_id}", run=run, view=view, curve=curve,
                                               axis=charts.time_axis(view.total_s))


def test_the_page_of_a_varied_run_is_the_whole_run_views_page_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "varied.db"
    records = varied_records()
    with Store.open(path) as store:
        assert store.ingest(records) == len(records) == 302
    with running_server(create_app(path)) as url:
        page = httpx.get(f"{url}/runs/{RUN}", timeout=60)
    assert page.status_code == 200
    with Store.open(path, create=False) as store:
        assert page.text == _whole_page(store, RUN)
        loaded = load_run_view(store, RUN)
    assert loaded is not None
    view = loaded[1]
    # what the run holds, so the comparison above is about something: 302 spans, one a second span of id 103
    assert (view.row_total, len(view.rows), len(view.curve)) == (301, PAGE_SPANS, 123)
    assert sorted({row.depth for row in view.rows}) == [0, 1, 2, 3]
    assert [d.kind for d in view.detections].count("loop") == 7  # steps 4, 13, ... 58
    assert [d.kind for d in view.detections].count("repeated_read") == 6  # one per file read again, not per read
    assert view.headline == ["Stopped by its budget: max_cost_usd at $0.51 against a limit of $0.50."]
    assert [u.count for u in view.unpriced] == [15, 12]
    assert view.notes[0].startswith("The agent did not send tool details for 8 tool call(s)")
    assert sum(row.duplicate is not None for row in view.rows) == 3
    assert view.dearest is not None
    assert (view.dearest["name"], view.dearest["cost_usd"]) == ("anthropic.messages.create", 0.0045)
    assert {f for row in view.rows for f in row.flags} == {"duplicate", "error", "loop", "refused", "repeated read",
                                                          "unpriced"}


_COLLECTOR_PASSES = """
import gc, sys
gc.set_threshold(700, 10, 10)  # Python's defaults, said outright
from starlette.testclient import TestClient
from runtrace.server.app import create_app
with TestClient(create_app(sys.argv[1])) as client:
    page = client.get("/runs/" + sys.argv[2])  # imports, templates, statements, caches
    gc.collect()
    passes = []
    gc.callbacks.append(lambda phase, info: passes.append(info["generation"]) if phase == "start" else None)
    page = client.get("/runs/" + sys.argv[2])
    gc.callbacks.clear()
print(len(passes), page.status_code, page.text.count('<details class="wf-span'))
"""


def test_the_page_of_a_5000_span_run_keeps_few_objects_alive_at_once(tmp_path: Path) -> None:
    """Counted by the collector's passes over one request (one per 700 container objects alive at once).

    67 before: 57 while building the view (a dict per span), 10 while rendering
    (Jinja's ``render`` held every escaped value, a tracked ``Markup``, until it
    joined the page). Now about 15.
    """
    path = build_big_store(tmp_path / "big.db")
    child_env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", _COLLECTOR_PASSES, str(path), BIG_RUN], capture_output=True,
                          text=True, timeout=120, env=child_env, check=True)
    passes, status, rows = (int(v) for v in done.stdout.split())
    assert (status, rows) == (200, PAGE_SPANS)
    assert passes <= 25, passes


def test_a_page_is_rendered_as_jinja_renders_it() -> None:
    context = {"request_path": "/x", "status": 404, "message": "<no run 'x'> & more"}
    assert render_text("error.html", **context) == env.get_template("error.html").render(**context)


def test_the_timeline_rows_read_span_dicts_by_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``{{ s.kind }}`` on a dict made Jinja try the attribute and catch AttributeError first: 20 times a row."""
    path = tmp_path / "varied.db"
    with Store.open(path) as store:
        store.ingest(varied_records())
        asked: list[str] = []
        real = env.getattr

        def counting(obj: Any, attribute: str) -> Any:
            if isinstance(obj, dict) and not hasattr(obj, attribute):  # a key asked for as an attribute
                asked.append(attribute)
            return real(obj, attribute)

        monkeypatch.setattr(env, "getattr", counting)
        html = _whole_page(store, RUN)
    assert html.count('<details class="wf-span') == PAGE_SPANS
    assert asked.count("kind") == asked.count("trace_id") == asked.count("tool_name") == 0  # the rows read keys
    assert len(asked) < 150, (len(asked), sorted(set(asked)))  # the run's own dict, the models, the dearest: 5,540 before
