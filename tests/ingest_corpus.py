"""A varied, deterministic span corpus, ingested both ways, and a dump of every table it leaves.

``tests/test_ingest_same_rows.py`` runs :func:`main` once with the package as it
is and once with the package of an earlier commit (``git archive``), each in a
process of its own, and compares the two dumps: whatever the ingest code does
faster, it must store exactly the same rows in every table (spans, runs,
run_models, run_traces, the report rollup, the FTS index's own shadow tables).

The corpus is made with the real SDK (a TracerProvider with a deterministic id
generator and explicit times, so two processes make the very same spans):
runtrace's own run, LLM and tool spans; foreign OpenLLMetry, openai-v2 (GenAI
semconv) and OpenInference spans, some nested over a runtrace span of the same
call; spans priced at ingest; events; errors; unicode; captured content;
out-of-range numbers; a verdict; and the same spans sent again (duplicates, in
a batch of their own and mixed with new ones). It is ingested through
``StoreSpanExporter`` (in-process) into one store and through the OTLP/protobuf
decode and the receiver's own record path into another.

    python tests/ingest_corpus.py OUT.json   # with PYTHONPATH choosing the package
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

BASE_NS = 1_790_000_000_000_000_000


def _provider() -> tuple[Any, Any]:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    class Sequential(IdGenerator):
        def __init__(self) -> None:
            self.n = 0

        def generate_span_id(self) -> int:
            self.n += 1
            return 0x1000 + self.n

        def generate_trace_id(self) -> int:
            self.n += 1
            return 0xABC000 + self.n

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "corpus-agent", "service.version": "1.0",
                                                 "host.cores": 2, "process.command_args": ("python", "a.py")}),
                              id_generator=Sequential())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def make_spans() -> list[Any]:
    """The corpus, as finished SDK spans in the order they ended."""
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    from runtrace import semconv as sc

    provider, exporter = _provider()
    own = provider.get_tracer("runtrace", "0.1.0")
    openllmetry = provider.get_tracer("opentelemetry.instrumentation.openai.v1", "0.62.4")
    openai_v2 = provider.get_tracer("opentelemetry.instrumentation.openai_v2", "2.4b0")
    openinference = provider.get_tracer("openinference.instrumentation.openai", "0.1.30")
    t = BASE_NS

    def tick(ms: int = 7) -> int:
        nonlocal t
        t += ms * 1_000_000
        return t

    for r in range(3):
        run = {sc.RUN_ID: f"run-ü-{r}", sc.PROJECT: "billing", sc.OWNER: "ålice"}
        root = own.start_span(f"run fix bug #{r} — ünïcode ✓", start_time=tick(), attributes={
            **run, sc.SPAN_ROLE: sc.ROLE_RUN, sc.RUN_NAME: f"fix bug #{r} — ünïcode", sc.BUDGET_MAX_COST_USD: 2.0,
            sc.BUDGET_MAX_TOOL_CALLS: 40})
        ctx = trace.set_span_in_context(root)
        for i in range(6):
            attrs: dict[str, Any] = {
                sc.RUN_ID: run[sc.RUN_ID], sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_PROVIDER_NAME: "openai",
                sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
                sc.GEN_AI_RESPONSE_ID: f"chatcmpl-{r}-{i}", sc.GEN_AI_RESPONSE_FINISH_REASONS: ("tool_calls", "stop"),
                sc.GEN_AI_USAGE_INPUT_TOKENS: 1200 + 31 * i, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 90 + i,
                sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 512, sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 10,
                sc.CONTEXT_FINGERPRINT: f"{r:08x}{i:08x}", sc.CONTEXT_REINJECTED_TOKENS: i,
            }
            if i % 2 == 0:  # priced in-process; the others are priced at ingest
                attrs.update({sc.COST_USD: 0.000321 * (i + 1), sc.COST_SOURCE: sc.SOURCE_GENAI_PRICES})
            if i == 3:
                attrs[sc.GEN_AI_INPUT_MESSAGES] = '[{"role":"user","content":"naïve café — 東京 ✓"}]'
                attrs[sc.GEN_AI_OUTPUT_MESSAGES] = '[{"role":"assistant","content":"réponse"}]'
            if i == 5:
                attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = 10**13  # past the bound: dropped and marked
            chat = own.start_span("chat gpt-4o-mini", context=ctx, kind=SpanKind.CLIENT, start_time=tick(),
                                  attributes=attrs)
            if i == 1:  # a foreign wrapper of the same call inside runtrace's span, and an outer one
                inner_ctx = trace.set_span_in_context(chat)
                dup = openllmetry.start_span("openai.chat", context=inner_ctx, kind=SpanKind.CLIENT,
                                             start_time=tick(1), attributes={
                    "llm.request.type": "chat", "gen_ai.system": "openai",
                    sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", "gen_ai.usage.prompt_tokens": 1231,
                    "gen_ai.usage.completion_tokens": 91, "gen_ai.usage.cache_read_input_tokens": 512,
                    sc.DUPLICATE_OF: "0000000000001001"})
                dup.end(end_time=tick(1))
            chat.add_event("gen_ai.choice", {"index": 0, "finish_reason": "stop", "note": "ça va"},
                           timestamp=tick(1))
            if i == 4:
                chat.set_status(Status(StatusCode.ERROR, "RateLimitError: slow down — 429"))
            chat.end(end_time=tick())
            tool_attrs: dict[str, Any] = {
                sc.RUN_ID: run[sc.RUN_ID], sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL,
                sc.GEN_AI_TOOL_NAME: "read_file", sc.GEN_AI_TOOL_CALL_ID: f"call_{r}_{i}",
                sc.TOOL_ARGS_HASH: f"{i % 3:016x}", sc.TOOL_RESULT_HASH: f"{i % 3:016x}",
                sc.TOOL_REPEAT_COUNT: 1 + i // 3, sc.TOOL_REPEATED_READ: i >= 3,
                sc.TOOL_REPEATED_READ_TOKENS: 300 if i >= 3 else 0, "file.path": f"/src/módulo_{i % 3}.py",
                "tags": ("α", "β"), "flags": (True, False), "ints": (1, 2), "nested": {"b": [1, {"c": None}]},
                "raw": b"\x01\x02",
            }
            if i == 2:
                tool_attrs[sc.GEN_AI_TOOL_CALL_ARGUMENTS] = '{"path": "/src/módulo_2.py"}'
                tool_attrs[sc.GEN_AI_TOOL_CALL_RESULT] = "def f():\n    return 'ü'\n"
            tool = own.start_span("execute_tool read_file", context=ctx, start_time=tick(), attributes=tool_attrs)
            if i == 4:
                tool.record_exception(ValueError("no such file: /src/módulo_1.py"), timestamp=tick(1))
                tool.set_status(Status(StatusCode.ERROR, "ValueError: no such file"))
            tool.end(end_time=tick())
        root.set_attribute(sc.RUN_OUTCOME, sc.OUTCOME_ACCEPTED if r != 1 else sc.OUTCOME_REJECTED)
        root.end(end_time=tick())

    # Foreign traces without runtrace.run.id: each trace (or session) is its own run.
    for r in range(2):
        agent = openinference.start_span("agent step", start_time=tick(), attributes={
            "openinference.span.kind": "AGENT", "session.id": f"sess-{r}" if r else ""})
        actx = trace.set_span_in_context(agent)
        outer = openinference.start_span("ChatCompletion", context=actx, kind=SpanKind.CLIENT, start_time=tick(),
                                         attributes={
            "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "llm.provider": "OpenAI",
            "llm.token_count.prompt": 2000, "llm.token_count.completion": 150,
            "llm.token_count.prompt_details.cache_read": 1024, "input.value": "Bonjour, ça va ? 東京"})
        octx = trace.set_span_in_context(outer)
        inner = openai_v2.start_span("chat gpt-4o-mini", context=octx, kind=SpanKind.CLIENT, start_time=tick(),
                                     attributes={
            sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, "gen_ai.system": "openai", sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18", sc.GEN_AI_USAGE_INPUT_TOKENS: 2000,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 150, sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
            "server.address": "api.openai.com"})
        inner.add_event("gen_ai.user.message", {"content": "héllo"}, timestamp=tick(1))
        inner.end(end_time=tick())
        side = openllmetry.start_span("openai.chat", context=actx, kind=SpanKind.CLIENT, start_time=tick(),
                                      attributes={
            "llm.request.type": "chat", "gen_ai.system": "openai", sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
            "gen_ai.usage.prompt_tokens": "321", "gen_ai.usage.completion_tokens": 12,
            "llm.usage.total_tokens": 333})
        side.end(end_time=tick())
        outer.end(end_time=tick())
        http = provider.get_tracer("opentelemetry.instrumentation.httpx").start_span(
            "POST", context=actx, kind=SpanKind.CLIENT, start_time=tick(), attributes={"http.status_code": 200})
        http.end(end_time=tick())
        agent.end(end_time=tick())

    # A verdict for a run that is stored, and one for a run that is not (pending).
    for run_id in ("run-ü-2", "run-not-here"):
        verdict = own.start_span("run.outcome", start_time=tick(), attributes={
            sc.RUN_ID: run_id, sc.SPAN_ROLE: sc.ROLE_OUTCOME, sc.RUN_OUTCOME: sc.OUTCOME_ACCEPTED,
            sc.RUN_OUTCOME_BY: "ci", sc.RUN_OUTCOME_REASON: "tests pass ✓"})
        verdict.end(end_time=tick())
    provider.shutdown()
    return list(exporter.get_finished_spans())


def batches(spans: list[Any]) -> list[list[Any]]:
    """Uneven batches, then duplicates: a batch sent again, and old spans mixed with the last new ones."""
    parts = [spans[:5], spans[5:23], spans[23:24], spans[24:60], spans[60:]]
    return [*parts, parts[1], [*spans[2:9], *spans[-3:]]]


def _dump(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name")]
    out: dict[str, Any] = {}
    for table in tables:
        has_rowid = "WITHOUT ROWID" not in conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0].upper()
        columns = ("rowid, *" if has_rowid else "*")
        rows = conn.execute(f"SELECT {columns} FROM \"{table}\"").fetchall()
        out[table] = sorted([[v.hex() if isinstance(v, bytes) else v for v in row] for row in rows], key=repr)
    conn.close()
    return out


def ingest_both(folder: Path) -> dict[str, Any]:
    """Ingest the corpus in-process and through the receiver's decode path; both stores' dumps."""
    from runtrace.server.receiver import _traces
    from runtrace.store.bounds import out_of_range
    from runtrace.store.db import Store
    from runtrace.store.exporter import StoreSpanExporter
    from runtrace.store.otlp import encode_otlp_protobuf
    from runtrace.store.sdk_adapter import records_from_sdk

    spans = make_spans()
    store = Store.open(folder / "in_process.db")
    exporter = StoreSpanExporter(store)
    for part in batches(spans):
        assert exporter.export(part).name == "SUCCESS"
    store.close()
    store = Store.open(folder / "otlp.db")
    for part in batches(spans):
        records = _traces(encode_otlp_protobuf(records_from_sdk(part)), "application/x-protobuf")
        store.ingest([r for r in records if not out_of_range(r)])
    store.close()
    return {"in_process": _dump(folder / "in_process.db"), "otlp": _dump(folder / "otlp.db")}


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        Path(argv[0]).write_text(json.dumps(ingest_both(Path(tmp)), sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
