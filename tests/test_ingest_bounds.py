"""Numbers past the store's bounds (issue 9, items 4 and 5): no value overflows a sum or loses a batch.

Over OTLP the bad span is rejected (partial success) and the rest stored; the
request whose only spans are bad is a 400 naming the field. In-process (and in
``Store.ingest`` itself) the bad value is dropped and the span kept, marked
unpriced. Stores that already hold huge sums still answer every page.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import runtrace
from llm_fakes import ChatUsage, FakeLLM, chat_completion, json_reply
from runtrace import semconv as sc
from runtrace.report import build_report
from runtrace.server import create_app
from runtrace.server.reads import RunFilter, headline
from runtrace.store import bounds
from runtrace.store.db import Store
from runtrace.store.queries import get_run
from store_helpers import llm, run_span, tool
from test_server_support import build_fixture_store, running_server

INT64_MAX = 2**63 - 1
TOKENS_RANGE = "is out of range (0 to 1,000,000,000,000)"
COST_RANGE = "is out of range (0 to 1,000,000)"


# --- the bounds themselves -------------------------------------------------------


def test_the_bounds_leave_a_run_thousands_of_max_cost_spans_before_the_int64_ceiling() -> None:
    assert bounds.MAX_COST_USD * 1_000_000_000 * 9_223 <= INT64_MAX
    assert bounds.MAX_TOKENS * 9_000_000 <= INT64_MAX


def test_out_of_range_names_field_and_value_as_sent() -> None:
    record = llm("r", 1, start_s=0, end_s=1, cost=1e12,
                 attrs={sc.GEN_AI_USAGE_INPUT_TOKENS: "1e30", sc.GEN_AI_USAGE_OUTPUT_TOKENS: -3})
    assert bounds.out_of_range(record) == [
        f"{sc.GEN_AI_USAGE_INPUT_TOKENS}=1e30 {TOKENS_RANGE}",
        f"{sc.GEN_AI_USAGE_OUTPUT_TOKENS}=-3 {TOKENS_RANGE}",
        f"{sc.COST_USD}=1000000000000.0 {COST_RANGE}",
    ]
    fine = llm("r", 2, start_s=0, end_s=1, input_tokens=10**12, cost=1e6, attrs={sc.COST_OUTPUT_USD: "nan"})
    assert bounds.out_of_range(fine) == []
    assert bounds.drop_out_of_range(fine) is fine


# --- Store.ingest: the bad value goes, the span and its batch stay ------------------


def test_store_ingest_keeps_every_span_of_a_batch_with_bad_values(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(bounds, "_warned", False)
    run = "bounds-run"
    records = [
        run_span(run, 100, start_s=0, end_s=10, outcome=sc.OUTCOME_ACCEPTED),
        llm(run, 1, start_s=1, end_s=2, input_tokens=1000, output_tokens=100, cost=0.25),
        llm(run, 2, start_s=2, end_s=3, output_tokens=100, cost=0.5,
            attrs={sc.GEN_AI_USAGE_INPUT_TOKENS: "1e30"}),  # cost kept, tokens dropped
        llm(run, 3, start_s=3, end_s=4, input_tokens=10, cost=1e12),  # cost dropped: unpriced
        llm(run, 4, start_s=4, end_s=5, input_tokens=10, attrs={sc.COST_USD: "1e300"}),
        llm(run, 5, start_s=5, end_s=6, input_tokens=2**62, source=None),  # would be priced at ingest
        llm(run, 6, start_s=6, end_s=7, input_tokens=INT64_MAX, cost=0.1),
        llm(run, 7, start_s=7, end_s=8, input_tokens=INT64_MAX, cost=0.1),
        tool(run, 8, start_s=8, end_s=9, repeated=True, repeated_tokens=10**20),
    ]
    with Store.open(tmp_path / "s.db") as store, caplog.at_level("WARNING", logger="runtrace"):
        assert store.ingest(records) == 9
        got = get_run(store, run)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["runtrace: stored chat gpt-5.5 without its out-of-range values (said once): "
                        f"{sc.GEN_AI_USAGE_INPUT_TOKENS}=1e30 {TOKENS_RANGE}"]  # six bad spans, one line
    assert got is not None
    assert got["outcome"] == sc.OUTCOME_ACCEPTED
    assert (got["llm_calls"], got["tool_calls"], got["unpriced_calls"], got["repeated_reads"]) == (7, 1, 3, 1)
    assert got["input_tokens"] == 1000 + 10 + 10  # spans 3 and 4 keep their tokens
    assert got["output_tokens"] == 200
    assert got["cost_usd"] == pytest.approx(0.95, abs=1e-12)
    spans = {s["span_id"]: s for s in got["spans"]}
    assert len(spans) == 9
    s2 = spans[f"{2:016x}"]
    assert s2["input_tokens"] is None and s2["cost_usd"] == pytest.approx(0.5, abs=1e-12)
    assert s2["attributes"][sc.INGEST_DROPPED] == [sc.GEN_AI_USAGE_INPUT_TOKENS]
    s3 = spans[f"{3:016x}"]
    assert s3["cost_usd"] is None
    assert s3["attributes"][sc.COST_SOURCE] == sc.SOURCE_UNKNOWN
    assert s3["attributes"][sc.COST_UNPRICED_REASON] == sc.UNPRICED_OUT_OF_RANGE
    assert s3["attributes"][sc.INGEST_DROPPED] == [sc.COST_USD]
    s5 = spans[f"{5:016x}"]
    assert sc.COST_PRICED_AT_INGEST not in s5["attributes"]  # not priced from what was left
    assert s5["attributes"][sc.COST_SOURCE] == sc.SOURCE_UNKNOWN


def test_a_usage_that_prices_past_the_cost_bound_is_stored_unpriced(tmp_path: Path) -> None:
    # 10^12 tokens is in range, but at gpt-4o's $10/M output it prices to $10^7.
    record = llm("priced-run", 1, start_s=0, end_s=1, model="gpt-4o", output_tokens=10**12, source=None)
    with Store.open(tmp_path / "s.db") as store:
        assert store.ingest([record]) == 1
        got = get_run(store, "priced-run")
    assert got is not None
    assert (got["llm_calls"], got["unpriced_calls"], got["output_tokens"]) == (1, 1, 10**12)
    assert got["cost_usd"] == 0.0
    attributes = got["spans"][0]["attributes"]
    assert attributes[sc.COST_UNPRICED_REASON] == sc.UNPRICED_OUT_OF_RANGE
    assert attributes[sc.INGEST_DROPPED] == [sc.COST_OUTPUT_USD, sc.COST_USD]  # input: $0, in range


def test_a_run_past_the_int64_ceiling_saturates_instead_of_failing(tmp_path: Path) -> None:
    """9,224 spans at the $10^6 bound: one nano-dollar sum past 2^63-1, in one batch and across two."""
    spans = [llm("huge", n, start_s=0, end_s=1, cost=1e6) for n in range(1, 9_225)]
    with Store.open(tmp_path / "s.db") as store:
        assert store.ingest(spans[:4_612]) == 4_612
        assert store.ingest(spans[4_612:]) == 4_612  # the SQL upsert passes the ceiling
        assert store.ingest([llm("one-batch", n, start_s=0, end_s=1, cost=1e6)
                             for n in range(1, 9_225)]) == 9_224  # the Python sum passes it
        rows = store.execute("SELECT id, cost_nusd, typeof(cost_nusd), llm_calls FROM runs ORDER BY id")
        assert [tuple(r) for r in rows] == [("huge", INT64_MAX, "integer", 9_224),
                                            ("one-batch", INT64_MAX, "integer", 9_224)]
        assert headline(store, RunFilter()).spend_usd == pytest.approx(2 * INT64_MAX / 1e9, rel=1e-12)


# --- the read side: a store that already holds huge sums ------------------------------


def test_pages_metrics_and_report_survive_sums_past_int64(tmp_path: Path) -> None:
    path = build_fixture_store(tmp_path / "runtrace.db")
    with Store.open(path) as store:
        # As an older runtrace left them: two billing runs of $5e9 and int64-max tokens each.
        store._writer.execute("UPDATE runs SET cost_nusd = ?, input_tokens = ? WHERE project = 'billing'",
                              (5 * 10**18, INT64_MAX))
        store._writer.execute("UPDATE run_models SET cost_nusd = ? WHERE run_id IN "
                              "(SELECT id FROM runs WHERE project = 'billing')", (5 * 10**18,))
        report = build_report(store, by="project")
        # the five other fixture runs: 0.00048 + 0.133 + 0.012 + 0.015 + 0.00021
        assert report.total.cost_usd == pytest.approx(1e10 + 0.16069, abs=1e-5)
        billing = next(g for g in report.groups if g.group == "billing")
        assert billing.cost_usd == 1e10
        assert build_report(store, by="model").total.runs == 7
    with running_server(create_app(path)) as base:
        for page in ("/", "/spend", "/metrics", "/api/runs"):
            assert httpx.get(base + page, timeout=30).status_code == 200, page
        metrics = httpx.get(base + "/metrics", timeout=30).text
    assert 'runtrace_cost_usd_total{project="billing"} 10000000000.0' in metrics
    assert f'runtrace_tokens_total{{project="billing",type="input"}} {2**64}' in metrics


# --- over OTLP/HTTP: partial success -------------------------------------------------


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"key": key, "value": {"stringValue": value}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"intValue": str(value)}}


def _otlp_span(n: int, run_id: str, extra: dict[str, Any]) -> dict[str, Any]:
    attrs = {sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
             sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_USAGE_INPUT_TOKENS: 2000,
             sc.GEN_AI_USAGE_OUTPUT_TOKENS: 100, sc.RUN_ID: run_id, **extra}
    return {"traceId": "5" * 32, "spanId": f"{n:016x}", "name": "chat gpt-4o", "kind": 3,
            "startTimeUnixNano": str(1790000000000000000 + n), "endTimeUnixNano": "1790000001000000000",
            "attributes": [_attr(k, v) for k, v in attrs.items()], "status": {"code": 1}}


def _body(spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceSpans": [{"resource": {"attributes": [_attr(sc.SERVICE_NAME, "ts-agent")]},
                               "scopeSpans": [{"scope": {"name": "ts"}, "spans": spans}]}]}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    path = build_fixture_store(tmp_path / "runtrace.db")
    with running_server(create_app(path)) as base:
        yield base, path


def _span_count(path: Path) -> int:
    with Store.open(path, create=False) as store:
        return store.count_spans()


BAD = [
    ({sc.GEN_AI_USAGE_INPUT_TOKENS: "1e30"}, f"{sc.GEN_AI_USAGE_INPUT_TOKENS}=1e30 {TOKENS_RANGE}"),
    ({sc.COST_USD: 1e12}, f"{sc.COST_USD}=1000000000000.0 {COST_RANGE}"),
    ({sc.COST_USD: "1e300"}, f"{sc.COST_USD}=1e300 {COST_RANGE}"),
    ({sc.GEN_AI_USAGE_INPUT_TOKENS: 2**62}, f"{sc.GEN_AI_USAGE_INPUT_TOKENS}={2**62} {TOKENS_RANGE}"),
    ({sc.GEN_AI_USAGE_INPUT_TOKENS: INT64_MAX}, f"{sc.GEN_AI_USAGE_INPUT_TOKENS}={INT64_MAX} {TOKENS_RANGE}"),
    ({sc.GEN_AI_USAGE_INPUT_TOKENS: INT64_MAX}, f"{sc.GEN_AI_USAGE_INPUT_TOKENS}={INT64_MAX} {TOKENS_RANGE}"),
]


def test_bad_spans_are_rejected_and_the_rest_of_the_batch_stored(served: tuple[str, Path]) -> None:
    base, path = served
    before = _span_count(path)
    spans = [_otlp_span(1, "partial-run", {})] + [_otlp_span(n, "partial-run", extra)
                                                   for n, (extra, _) in enumerate(BAD, start=2)]
    response = httpx.post(f"{base}/v1/traces", content=json.dumps(_body(spans)),
                          headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 200, response.text
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "6"  # int64 in OTLP/JSON is a string
    named = "; ".join(f"span {n:016x} ('chat gpt-4o'): {message}"
                      for n, (_, message) in enumerate(BAD[:5], start=2))
    assert partial["errorMessage"] == f"6 span(s) rejected: {named}; and 1 more"
    assert _span_count(path) == before + 1
    with Store.open(path, create=False) as store:
        run = get_run(store, "partial-run")
    assert run is not None
    assert (run["llm_calls"], run["input_tokens"], run["output_tokens"]) == (1, 2000, 100)
    assert run["cost_usd"] == pytest.approx(0.006, abs=1e-12)  # 2,000 x $2.50/M + 100 x $10/M
    # and every page still answers
    for page in ("/", "/spend", "/metrics"):
        assert httpx.get(base + page, timeout=30).status_code == 200, page


def test_a_request_whose_only_span_is_bad_is_a_400_naming_the_field(served: tuple[str, Path]) -> None:
    base, path = served
    before = _span_count(path)
    body = _body([_otlp_span(9, "bad-run", {sc.GEN_AI_USAGE_INPUT_TOKENS: "1e30"})])
    response = httpx.post(f"{base}/v1/traces", json=body, timeout=30)
    assert response.status_code == 400
    assert response.json() == {"code": 3, "message": f"1 span(s) rejected: span {9:016x} ('chat gpt-4o'): "
                                                     f"{sc.GEN_AI_USAGE_INPUT_TOKENS}=1e30 {TOKENS_RANGE}"}
    assert _span_count(path) == before


def test_json_nested_past_the_parser_stack_is_a_400(served: tuple[str, Path]) -> None:
    base, path = served
    before = _span_count(path)
    deep = '{"resourceSpans": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = httpx.post(f"{base}/v1/traces", content=deep, headers={"Content-Type": "application/json"},
                          timeout=30)
    assert response.status_code == 400
    assert response.json()["message"].startswith("body is not valid OTLP/JSON: it is nested too deeply")
    # deep but parseable JSON, nested inside an attribute value (kvlist in kvlist ...)
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(150):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    span = _otlp_span(10, "deep-run", {})
    span["attributes"].append({"key": "deep", "value": value})
    response = httpx.post(f"{base}/v1/traces", json=_body([span]), timeout=30)
    assert response.status_code == 400
    assert _span_count(path) == before
    assert httpx.get(base + "/", timeout=30).status_code == 200


# --- in-process: the real openai client --------------------------------------------------


USER = [{"role": "user", "content": "What is 2+2?"}]


def test_in_process_a_response_claiming_1e20_prompt_tokens_loses_nothing(instrumented: Any) -> None:
    fake = FakeLLM([json_reply(chat_completion(usage=ChatUsage(20, 5))),
                    json_reply(chat_completion(usage=ChatUsage(10**20, 5))),
                    json_reply(chat_completion(usage=ChatUsage(20, 5)))])
    client = fake.openai()
    with runtrace.run("huge usage", project="billing") as run:
        for _ in range(3):
            client.chat.completions.create(model="gpt-5.5", messages=USER)
        run.accept()
    runtrace.flush()
    store = instrumented.open_store()
    try:
        assert store.count_spans(run.id) == 4  # 3 calls and the run span
        got = get_run(store, run.id)
    finally:
        store.close()
    assert got is not None
    assert got["outcome"] == sc.OUTCOME_ACCEPTED
    assert (got["llm_calls"], got["unpriced_calls"]) == (3, 1)
    assert (got["input_tokens"], got["output_tokens"]) == (40, 15)
    # gpt-5.5: $5/M input, $30/M output, for the two sane calls
    assert got["cost_usd"] == pytest.approx(2 * 0.00025, abs=1e-12)
    bad = [s for s in got["spans"] if s["kind"] == "llm" and s["input_tokens"] is None]
    assert len(bad) == 1
    assert bad[0]["attributes"][sc.COST_SOURCE] == sc.SOURCE_UNKNOWN
    assert sc.GEN_AI_USAGE_INPUT_TOKENS in bad[0]["attributes"][sc.INGEST_DROPPED]
