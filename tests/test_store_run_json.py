"""get_run_json (``/api/runs/{id}``): the spans' stored attribute JSON spliced in, parsing to get_run's dict."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from runtrace import semconv as sc
from runtrace.server.app import create_app
from runtrace.store.db import Store
from runtrace.store.queries import get_run, get_run_json
from runtrace.store.records import EventRecord
from store_helpers import llm, run_span, span, tool
from test_server_support import running_server

RUN = "run-json"


def _records() -> list:
    return [
        run_span(RUN, 1, start_s=0, end_s=9),
        llm(RUN, 2, start_s=1, end_s=2, input_tokens=1_000, output_tokens=20, cost=0.000123456789),
        tool(RUN, 3, start_s=3, end_s=4, repeated=True,
             events=(EventRecord(sc.EVENT_REPEATED_READ, 5, {sc.TOOL_REPEAT_COUNT: 2, "big": 2**70}),)),
        span(RUN, 4, start_s=5, end_s=6, attrs={"text": "caf\u00e9 \u2603 \"quoted\" \\ \n", "tiny": 1e-07,
                                                 "huge": 1e16, "list": ("a", "b"), "flag": False, "n": -3}),
        span(RUN, 5, start_s=6, end_s=7, attrs={"beyond.int64": 2**70}),
    ]


def test_the_json_parses_to_exactly_get_runs_dict_whole_and_paged(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        store.ingest(_records())
        for offset, limit in ((0, None), (1, 2), (3, 2), (4, 10), (0, 0)):  # (3, 2): no fallback
            body = get_run_json(store, RUN, offset=offset, limit=limit)
            assert body is not None
            assert json.loads(body) == get_run(store, RUN, offset=offset, limit=limit)
        assert get_run_json(store, "no-such-run") is None
        whole = json.loads(get_run_json(store, RUN) or b"")
        assert [s["span_id"] for s in whole["spans"]] == [f"{n:016x}" for n in range(1, 6)]
        assert whole["spans"][4]["attributes"]["beyond.int64"] == 2**70
        assert whole["spans"][2]["events"][0]["attributes"]["big"] == 2**70  # the stdlib fallback


def test_the_api_serves_it(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store.open(path) as store:
        store.ingest(_records()[:4])
        expected = get_run(store, RUN)
    with running_server(create_app(path)) as url:
        response = httpx.get(f"{url}/api/runs/{RUN[:5]}", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == expected
