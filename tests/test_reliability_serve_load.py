"""``runtrace serve`` under 8 concurrent OTLP/HTTP clients on loopback.

A real uvicorn server on 127.0.0.1 and eight client threads, each sending a
bounded number of OTLP/protobuf requests (50 spans of its own runs per
request, gzip on every other one, and every fifth request sent twice, as an
exporter retry would). No answer may be a 5xx; every span of an acknowledged
request must be in the store once, and every run's totals must be exact.
"""

from __future__ import annotations

import gzip
import threading
from pathlib import Path
from typing import Any

import httpx

from runtrace import semconv as sc
from runtrace.server import create_app
from runtrace.store.db import Store
from runtrace.store.otlp import encode_otlp_protobuf
from runtrace.store.records import SpanRecord
from test_server_support import running_server

CLIENTS, REQUESTS, SPANS_PER_REQUEST = 8, 60, 50
RUNS_PER_CLIENT = 10
T0 = 1_790_000_000_000_000_000
RESOURCE = {sc.SERVICE_NAME: "load-agent"}


def _batch(client: int, request: int) -> list[SpanRecord]:
    """Spans of the client's runs: LLM calls with known usage and cost, and tool calls."""
    out = []
    for k in range(SPANS_PER_REQUEST):
        n = request * SPANS_PER_REQUEST + k
        run = f"c{client}-run{n % RUNS_PER_CLIENT}"
        if k % 2:
            attrs: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_PROVIDER_NAME: "openai",
                                     sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", sc.GEN_AI_USAGE_INPUT_TOKENS: 100 + k,
                                     sc.GEN_AI_USAGE_OUTPUT_TOKENS: 10, sc.COST_USD: 0.001 * (k % 7),
                                     sc.COST_SOURCE: sc.SOURCE_GENAI_PRICES}
            name = "chat gpt-4o-mini"
        else:
            attrs = {sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: "grep"}
            name = "execute_tool grep"
        out.append(SpanRecord(trace_id=f"{client + 1:08x}{n % RUNS_PER_CLIENT:024x}", span_id=f"{client + 1:04x}{n:012x}",
                              parent_span_id=None, name=name, kind="INTERNAL", start_ns=T0 + n * 1000,
                              end_ns=T0 + n * 1000 + 500, status_code="UNSET", status_message=None,
                              attributes={sc.RUN_ID: run, **attrs}, resource=RESOURCE))
    return out


def test_eight_concurrent_otlp_clients_get_no_5xx_and_lose_nothing_acknowledged(tmp_path: Path) -> None:
    store_path = tmp_path / "served.db"
    acknowledged: list[list[SpanRecord]] = [[] for _ in range(CLIENTS)]
    statuses: list[list[int]] = [[] for _ in range(CLIENTS)]
    errors: list[BaseException] = []

    with running_server(create_app(store_path)) as base:
        def client(c: int) -> None:
            try:
                with httpx.Client(base_url=base, timeout=60) as http:
                    for r in range(REQUESTS):
                        records = _batch(c, r)
                        body = encode_otlp_protobuf(records)
                        headers = {"content-type": "application/x-protobuf"}
                        if r % 2:
                            body = gzip.compress(body)
                            headers["content-encoding"] = "gzip"
                        for _ in range(2 if r % 5 == 0 else 1):  # a retry of the same batch
                            response = http.post("/v1/traces", content=body, headers=headers)
                            statuses[c].append(response.status_code)
                            if response.status_code == 200:
                                acknowledged[c].extend(records)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=client, args=(c,), name=f"otlp-client-{c}") for c in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)  # liveness guard only
        assert not any(t.is_alive() for t in threads)
        assert not errors, errors

    sent = sum(len(s) for s in statuses)
    assert sent == CLIENTS * (REQUESTS + (REQUESTS + 4) // 5)
    assert all(status == 200 for s in statuses for status in s), sorted({x for s in statuses for x in s})
    unique = {(r.trace_id, r.span_id): r for acks in acknowledged for r in acks}
    assert len(unique) == CLIENTS * REQUESTS * SPANS_PER_REQUEST

    expected: dict[str, dict[str, float]] = {}
    for record in unique.values():
        run = expected.setdefault(str(record.attributes[sc.RUN_ID]),
                                  {"spans": 0, "llm": 0, "tool": 0, "input": 0, "cost": 0.0})
        run["spans"] += 1
        if record.attributes[sc.GEN_AI_OPERATION_NAME] == sc.OP_CHAT:
            run["llm"] += 1
            run["input"] += int(record.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS])
            run["cost"] += float(record.attributes[sc.COST_USD])
        else:
            run["tool"] += 1

    with Store.open(store_path, create=False) as store:
        stored = {(r[0], r[1]) for r in store.execute("SELECT trace_id, span_id FROM spans")}
        assert store.count_spans() == len(unique)
        rows = {r["id"]: r for r in store.execute(
            "SELECT id, span_count, llm_calls, tool_calls, input_tokens, cost_nusd FROM runs")}
    assert stored == set(unique)
    assert set(rows) == set(expected) and len(rows) == CLIENTS * RUNS_PER_CLIENT
    for run_id, want in expected.items():
        row = rows[run_id]
        assert (row["span_count"], row["llm_calls"], row["tool_calls"], row["input_tokens"]) == (
            want["spans"], want["llm"], want["tool"], want["input"]), run_id
        assert row["cost_nusd"] == round(want["cost"] * 1e9), run_id
