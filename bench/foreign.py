"""Ingest of foreign telemetry: nested duplicate usage spans from OpenLLMetry and openai-v2, resolved at ingest.

    python bench/foreign.py [--quick]

A program instrumented by both OpenLLMetry and the official openai-v2
instrumentation sends two spans per call, both with usage and neither with a
cost: OpenLLMetry's ``openai.chat`` (deprecated ``gen_ai.usage.prompt_tokens``
names, ``gen_ai.system``) and, nested below it, openai-v2's ``chat {model}``.
The store must price each call at ingest and count it once
(``store/innermost.py``: only the innermost usage span counts), whatever the
arrival order: half the calls arrive child first, in separate batches.

Measured, in the same process and interleaved rounds: spans/s through
``Store.ingest`` for these spans against the same number of runtrace's own
spans (``ingest_store.make_records``). Every round checks the run totals: one
LLM call and the child's tokens per call, priced, nothing unpriced.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common  # noqa: E402
from bench.ingest_store import batches, make_records  # noqa: E402
from runtrace import semconv as sc  # noqa: E402

BATCH = 512
T0 = 1_795_000_000_000_000_000
CALLS_PER_RUN = 50
INPUT, OUTPUT = 1_200, 80


def foreign_records(calls: int) -> list[Any]:
    """Two spans per call (wrapper + nested SDK span), a trace per run; half the pairs child first."""
    from runtrace.store.records import SpanRecord

    resource = {sc.SERVICE_NAME: "python-agent", "telemetry.sdk.language": "python"}
    parents: list[Any] = []
    children: list[Any] = []
    for i in range(calls):
        run, k = divmod(i, CALLS_PER_RUN)
        trace = f"{run + 1:032x}"
        start = T0 + i * 3_000_000_000
        outer_id, inner_id = f"{2 * i + 1:016x}", f"{2 * i + 2:016x}"
        outer = SpanRecord(
            trace_id=trace, span_id=outer_id, parent_span_id=None, name="openai.chat", kind="CLIENT",
            start_ns=start, end_ns=start + 2_000_000_000, status_code="UNSET", status_message=None,
            attributes={sc.GEN_AI_SYSTEM: "openai", sc.OPENLLMETRY_REQUEST_TYPE: "chat",
                        sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
                        sc.GEN_AI_USAGE_PROMPT_TOKENS: INPUT, sc.GEN_AI_USAGE_COMPLETION_TOKENS: OUTPUT,
                        "llm.usage.total_tokens": INPUT + OUTPUT, "gen_ai.openai.api_base": "https://api.openai.com/v1/",
                        sc.SESSION_ID: f"session-{run}"},
            resource=resource, scope_name="opentelemetry.instrumentation.openai.v1", scope_version="0.62.4")
        inner = SpanRecord(
            trace_id=trace, span_id=inner_id, parent_span_id=outer_id, name="chat gpt-4o-mini", kind="CLIENT",
            start_ns=start + 1_000_000, end_ns=start + 1_990_000_000, status_code="UNSET", status_message=None,
            attributes={sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_SYSTEM: "openai",
                        sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
                        sc.GEN_AI_RESPONSE_ID: f"chatcmpl-{i}", sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
                        sc.GEN_AI_USAGE_INPUT_TOKENS: INPUT, sc.GEN_AI_USAGE_OUTPUT_TOKENS: OUTPUT,
                        "server.address": "api.openai.com", sc.SESSION_ID: f"session-{run}"},
            resource=resource, scope_name="opentelemetry.instrumentation.openai_v2", scope_version="2.4b0")
        if k % 2:
            children.append(inner)  # arrives in a later batch than its parent
            parents.append(outer)
        else:
            parents.extend((inner, outer))  # child first, same batch
    return parents + children


def _ingest(records: list[Any], folder: Path, name: str) -> tuple[float, float, Any]:
    from runtrace.store.db import Store

    store = Store.open(folder / f"{name}.db")
    parts = batches(records, BATCH)
    t0, c0 = time.perf_counter(), time.process_time()
    for part in parts:
        store.ingest(part)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    totals = store.execute("SELECT count(*), sum(llm_calls), sum(input_tokens), sum(output_tokens), "
                           "sum(unpriced_calls), total(cost_nusd) FROM runs")[0]
    store.close()
    return len(records) / wall, len(records) / cpu, tuple(totals)


def run(*, calls: int, rounds: int) -> dict[str, Any]:
    foreign = foreign_records(calls)
    own = make_records(len(foreign))
    rates: dict[str, list[float]] = {"foreign": [], "own": []}
    for r in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            for what in (["own", "foreign"] if r % 2 else ["foreign", "own"]):
                _, cpu, totals = _ingest(foreign if what == "foreign" else own, Path(tmp), f"{what}{r}")
                rates[what].append(cpu)
                if what == "foreign":
                    runs, llm_calls, tokens_in, tokens_out, unpriced, cost = totals
                    expected = (calls // CALLS_PER_RUN, calls, calls * INPUT, calls * OUTPUT, 0)
                    if (runs, llm_calls, tokens_in, tokens_out, unpriced) != expected or not cost > 0:
                        raise AssertionError(f"foreign spans counted wrong: {totals}, expected {expected} and a cost")
        print(f"round {r + 1}/{rounds}: foreign {rates['foreign'][-1]:,.0f} spans/s, "
              f"own {rates['own'][-1]:,.0f} spans/s (CPU)", file=sys.stderr)
    med = {k: _common.median(v) for k, v in rates.items()}
    return {"calls": calls, "spans": len(foreign), "rounds": rounds, "batch": BATCH, "rates": med,
            "ratio": med["foreign"] / med["own"]}


def rows(data: dict[str, Any]) -> list[list[str]]:
    r = data["rates"]
    return [["foreign: OpenLLMetry wrapper + openai-v2 span per call, priced, counted once",
             f"{r['foreign']:,.0f}", f"{data['ratio']:.2f}"],
            ["runtrace's own spans (ingest_store.make_records)", f"{r['own']:,.0f}", "1.00"]]


HEADERS = ["Store.ingest of", "spans per CPU second", "vs own spans"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ingest of nested duplicate foreign spans")
    parser.add_argument("--quick", action="store_true", help="5,000 calls, 1 round")
    args = parser.parse_args(argv)
    data = run(calls=200 if _common.tiny() else 5_000 if args.quick else 20_000, rounds=1 if args.quick else 3)
    _common.save("foreign", data, quick=args.quick)
    print(f"{data['spans']:,} spans ({data['calls']:,} calls), batches of {BATCH}, median of {data['rounds']} rounds")
    print(_common.table(HEADERS, rows(data)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
