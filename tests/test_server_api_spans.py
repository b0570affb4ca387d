"""``/api/runs/{id}`` paged by ``offset``/``limit``, over real HTTP."""

from __future__ import annotations

import math
from pathlib import Path

import httpx

from runtrace.server import create_app
from runtrace.store.db import Store
from runtrace.store.queries import get_run
from store_helpers import run_span, tool
from test_server_support import running_server


def test_run_spans_by_page(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    records = [run_span("r1", 1, start_s=0, end_s=100)]
    records += [tool("r1", k, start_s=k, end_s=k + 0.5, parent=1, tool_name=f"t{k}") for k in range(2, 32)]
    with Store.open(path) as store:
        store.ingest(records)
        expected = get_run(store, "r1")
    assert expected is not None
    with running_server(create_app(path)) as base:
        whole = httpx.get(f"{base}/api/runs/r1").json()
        assert whole == expected  # the section-8 dict, all 31 spans with every attribute
        page = httpx.get(f"{base}/api/runs/r1", params={"offset": 5, "limit": 3}).json()
        assert [s["span_id"] for s in page["spans"]] == [s["span_id"] for s in expected["spans"][5:8]]
        assert page["span_count"] == 31 and page["cost_usd"] == expected["cost_usd"]
        missing = httpx.get(f"{base}/api/runs/r1/spans/{99:016x}")  # the side panel's route (test_server_spans.py)
        assert missing.status_code == 404 and missing.json() == {"error": f"no span '{99:016x}' in run 'r1'"}
        bad = httpx.get(f"{base}/api/runs/r1", params={"limit": "x"})
        assert bad.status_code == 400 and bad.json() == {"error": "limit='x' is not an integer"}
        unknown = httpx.get(f"{base}/api/runs/r1", params={"page": 2})
        assert unknown.status_code == 400 and "unknown query parameter 'page'" in unknown.json()["error"]


def test_a_nan_attribute_is_null_in_the_run_json(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store.open(path) as store:
        store.ingest([run_span("r1", 1, start_s=0, end_s=1, budget={"app.score": math.nan})])
    with running_server(create_app(path)) as base:
        response = httpx.get(f"{base}/api/runs/r1")
    assert response.status_code == 200
    assert response.json()["spans"][0]["attributes"]["app.score"] is None
