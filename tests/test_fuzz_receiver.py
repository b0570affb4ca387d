"""Fuzzing the OTLP/HTTP receiver: mutated protobuf and JSON bodies never get a 500.

Bodies start as a valid export of one small run (a run span, an LLM call, a
tool call), then hypothesis flips, cuts, inserts and duplicates bytes of the
protobuf, and deletes, nulls, retypes and adds fields of the JSON (or cuts its
text). Every answer must be 200 or a 4xx naming the problem; a rejected body
must leave the store exactly as it was (spans, runs and their totals); an
accepted one must leave it readable by the queries the UI and CLI run; and
the app must still answer afterwards.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.testclient import TestClient

from runtrace import semconv as sc
from runtrace.server import create_app
from runtrace.store.db import Store
from runtrace.store.otlp import encode_otlp_protobuf
from runtrace.store.queries import get_run, list_runs
from runtrace.store.records import EventRecord, SpanRecord

FUZZ = settings(max_examples=250, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
OK_STATUSES = {200, 400, 413, 415}
T0 = 1_790_000_000_000_000_000
RESOURCE = {sc.SERVICE_NAME: "fuzzed-agent", "host.name": "h"}


def _records() -> list[SpanRecord]:
    trace = "ab" * 16

    def rec(span_id: str, name: str, attrs: dict[str, Any], parent: str | None = "11" * 8) -> SpanRecord:
        return SpanRecord(trace_id=trace, span_id=span_id, parent_span_id=parent, name=name, kind="INTERNAL",
                          start_ns=T0, end_ns=T0 + 5_000_000, status_code="UNSET", status_message=None,
                          attributes={sc.RUN_ID: "fuzz-run", **attrs}, resource=RESOURCE,
                          events=(EventRecord("e", T0 + 1, {"k": "v"}),), scope_name="fuzz", scope_version="1")

    return [
        rec("11" * 8, "run triage", {sc.SPAN_ROLE: sc.ROLE_RUN, sc.RUN_NAME: "triage", sc.PROJECT: "p",
                                     sc.RUN_OUTCOME: sc.OUTCOME_ACCEPTED}, parent=None),
        rec("22" * 8, "chat gpt-4o-mini", {sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_PROVIDER_NAME: "openai",
                                           sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                                           sc.GEN_AI_USAGE_INPUT_TOKENS: 1000, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 200,
                                           sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",)}),
        rec("33" * 8, "execute_tool grep", {sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL,
                                            sc.GEN_AI_TOOL_NAME: "grep", sc.TOOL_REPEATED_READ: True}),
    ]


PROTOBUF = encode_otlp_protobuf(_records())


def _json_body() -> dict[str, Any]:
    document = json_format.MessageToDict(ExportTraceServiceRequest.FromString(PROTOBUF))
    for rs in document["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return document


JSON_BODY = _json_body()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, Store]]:
    store = Store.open(tmp_path / "runtrace.db")
    app = create_app(store)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client, store
    store.close()


def _state(store: Store) -> tuple[Any, ...]:
    spans = store.execute("SELECT count(*), coalesce(sum(length(attributes)), 0) FROM spans")[0]
    runs = store.execute("SELECT count(*), coalesce(sum(span_count), 0), coalesce(sum(cost_nusd), 0), "
                         "coalesce(sum(input_tokens + output_tokens + llm_calls + tool_calls), 0), "
                         "group_concat(outcome) FROM runs")[0]
    return tuple(spans) + tuple(runs)


def post_and_check(client: tuple[TestClient, Store], body: bytes, content_type: str) -> int:
    test_client, store = client
    before = _state(store)
    response = test_client.post("/v1/traces", content=body, headers={"content-type": content_type})
    assert response.status_code in OK_STATUSES, (response.status_code, response.text[:500])
    if response.status_code != 200:
        assert _state(store) == before  # nothing stored from a rejected body
        assert response.content  # a google.rpc.Status naming the problem
    else:
        for run in list_runs(store, limit=0):  # what was accepted stays readable
            detail = get_run(store, run["id"])
            assert detail is not None and detail["span_count"] == len(detail["spans"])
    assert test_client.get("/healthz").status_code == 200
    return response.status_code


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "duplicate", "delete"]))
        at = draw(st.integers(0, len(out)))
        if op == "flip" and at < len(out):
            out[at] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del out[at:]
        elif op == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=12))
        elif op == "duplicate":
            end = draw(st.integers(at, len(out)))
            out[at:at] = out[at:end]
        elif op == "delete":
            del out[at:at + draw(st.integers(1, 16))]
    return bytes(out)


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                      st.text(max_size=12), st.sampled_from(["abab", "zz" * 8, "", "1e400", "-1", "NaN"]))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=6)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield (*prefix, key)
        yield from _paths(item, (*prefix, key))


@st.composite
def mutated_json(draw: st.DrawFn, document: dict[str, Any]) -> bytes:
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(document))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = document
        for step in path[:-1]:
            parent = parent[step]
        op = draw(st.sampled_from(["delete", "null", "replace", "add"]))
        if op == "delete":
            del parent[path[-1]]
        elif op == "null":
            parent[path[-1]] = None
        elif op == "replace":
            parent[path[-1]] = draw(json_value)
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(json_value)
    text = json.dumps(document).encode()
    if draw(st.integers(0, 9)) == 0:
        text = text[:draw(st.integers(0, len(text)))]
    return text


def test_the_unmutated_bodies_are_accepted_and_stored_once(client: tuple[TestClient, Store]) -> None:
    _, store = client
    assert post_and_check(client, PROTOBUF, "application/x-protobuf") == 200
    assert post_and_check(client, json.dumps(JSON_BODY).encode(), "application/json") == 200
    assert store.count_spans() == 3
    (run,) = list_runs(store, limit=0)
    assert (run["id"], run["outcome"], run["llm_calls"], run["tool_calls"], run["input_tokens"],
            run["output_tokens"], run["repeated_reads"]) == ("fuzz-run", "accepted", 1, 1, 1000, 200, 1)
    assert run["cost_usd"] == pytest.approx(1000 * 0.15e-6 + 200 * 0.6e-6, abs=1e-12)  # priced at ingest


@FUZZ
@given(body=mutated_bytes(PROTOBUF))
def test_mutated_protobuf_bodies_get_200_or_a_4xx_and_rejects_change_nothing(
        client: tuple[TestClient, Store], body: bytes) -> None:
    post_and_check(client, body, "application/x-protobuf")


@FUZZ
@given(body=mutated_json(JSON_BODY))
def test_mutated_json_bodies_get_200_or_a_4xx_and_rejects_change_nothing(
        client: tuple[TestClient, Store], body: bytes) -> None:
    post_and_check(client, body, "application/json")


@FUZZ
@given(body=st.binary(max_size=300), content_type=st.sampled_from(
    ["application/x-protobuf", "application/json", "text/plain", "application/json; charset=utf-8", ""]),
    gzip_header=st.booleans())
def test_arbitrary_bytes_under_any_content_type_never_get_a_500(
        client: tuple[TestClient, Store], body: bytes, content_type: str, gzip_header: bool) -> None:
    test_client, store = client
    before = _state(store)
    headers = {"content-type": content_type}
    if gzip_header:
        headers["content-encoding"] = "gzip"
    response = test_client.post("/v1/traces", content=body, headers=headers)
    assert response.status_code in OK_STATUSES, (response.status_code, response.text[:300])
    if response.status_code != 200:
        assert _state(store) == before


def test_a_time_past_int64_is_a_400_naming_it(client) -> None:
    # Found by the mutation fuzzer: fixed64 start times above 2^63-1 reached SQLite and made a 500.
    request = ExportTraceServiceRequest.FromString(PROTOBUF)
    request.resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano = 2**63
    test_client, store = client
    before = _state(store)
    response = test_client.post("/v1/traces", content=request.SerializeToString(),
                                headers={"content-type": "application/x-protobuf"})
    assert response.status_code == 400
    assert b"startTimeUnixNano 9223372036854775808 is past the year 2262" in response.content
    assert _state(store) == before
