"""Ingest throughput: runtrace's two ingest paths against minimal hand-written ones, in the same run.

    python bench/ingest.py [--quick]

1. In-process: finished OpenTelemetry SDK spans (20 attributes; two thirds LLM
   calls, of which a third arrive without a cost and are priced at ingest; one
   third tool calls; 100 spans per run) go through ``StoreSpanExporter.export``
   in batches of 512 (what the BatchSpanProcessor hands it: records, JSON,
   duplicate check, pricing, run aggregation). The minimal path turns the same
   finished spans into rows by hand and writes each batch with one
   ``executemany`` into the same schema: no aggregation, no pricing, no dedup.
2. Over OTLP/HTTP protobuf: ``runtrace serve`` in its own process, fed by a
   sender in another process (2 threads, batches of 512 spans, bodies encoded
   before the clock starts), against ``bench/_minimal_receiver.py`` under the
   same uvicorn (parse, rows, one executemany per batch).
3. The ceiling: ``executemany`` of the same rows built beforehand
   (``bench/ingest_store.py``'s ``bench_bare``, the store engineer's benchmark,
   whose ``Store.ingest`` figure on prebuilt records is reported too).

Rounds alternate the paths on fresh files; medians are reported. Target: each
runtrace path at least half its minimal path's rate.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common  # noqa: E402
from bench.ingest_store import bench_bare, bench_ingest, make_records  # noqa: E402
from runtrace import semconv as sc  # noqa: E402

BATCH = 512


def _records(n: int) -> list[Any]:
    """ingest_store's spans, with every third LLM span stripped of its cost: priced at ingest."""
    import dataclasses

    out = []
    for i, record in enumerate(make_records(n)):
        if i % 3 == 1 and sc.COST_USD in record.attributes:
            attrs = {k: v for k, v in record.attributes.items()
                     if k not in (sc.COST_USD, sc.COST_INPUT_USD, sc.COST_OUTPUT_USD, sc.COST_SOURCE,
                                  sc.COST_PRICE_TABLE)}
            attrs[sc.GEN_AI_REQUEST_MODEL] = "gpt-4o-mini"
            record = dataclasses.replace(record, attributes=attrs)
        out.append(record)
    return out


def _record_batches(n: int, chunk: int = 51_200) -> Any:
    """Batches of ``n`` distinct records, made ``chunk`` at a time (a million never sit in memory at once)."""
    import dataclasses

    base = _records(min(n, chunk))
    for offset in range(0, n, chunk):
        part = base[:min(chunk, n - offset)]
        if offset:
            prefix = f"{offset // chunk:04x}"
            part = [dataclasses.replace(r, trace_id=prefix + r.trace_id[4:], span_id=prefix + r.span_id[4:],
                                        attributes={**r.attributes, sc.RUN_ID: f"{r.attributes[sc.RUN_ID]}-{prefix}"})
                    for r in part]
        yield from _batches(part)


def sdk_spans(n: int) -> list[Any]:
    """Finished SDK spans made by a real tracer from the records (what the exporter receives)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from bench.ingest_store import RESOURCE

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(RESOURCE))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench", "1.0")
    for record in _records(n):
        tracer.start_span(record.name, kind=SpanKind[record.kind], attributes=record.attributes,
                          start_time=record.start_ns).end(end_time=record.end_ns)
    return list(exporter.get_finished_spans())


def minimal_rows(spans: list[Any]) -> list[tuple[Any, ...]]:
    """Finished spans to ``spans`` rows by hand: the least the in-process path could do."""
    from runtrace.store.values import dumps

    rows = []
    resources: dict[int, str] = {}
    for s in spans:
        ctx, parent, a = s.context, s.parent, s.attributes
        res = resources.get(id(s.resource))
        if res is None:
            res = resources[id(s.resource)] = dumps(dict(s.resource.attributes))
        rows.append((
            f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}", f"{parent.span_id:016x}" if parent else None,
            a.get(sc.RUN_ID), s.name, "other", s.kind.name, s.start_time, s.end_time, s.status.status_code.name,
            s.status.description, s.resource.attributes.get(sc.SERVICE_NAME), a.get(sc.GEN_AI_REQUEST_MODEL),
            a.get(sc.GEN_AI_PROVIDER_NAME), a.get(sc.GEN_AI_USAGE_INPUT_TOKENS), a.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS),
            a.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS), a.get(sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),
            a.get(sc.COST_USD), a.get(sc.GEN_AI_TOOL_NAME), dumps(dict(a)), res, "[]",
            s.instrumentation_scope.name, s.instrumentation_scope.version,
            0, 0,  # usage_below, counted (m002): the minimal path keeps no innermost state
        ))
    return rows


def _batches(items: list[Any], size: int = BATCH) -> list[list[Any]]:
    return [items[k:k + size] for k in range(0, len(items), size)]


def bench_exporter(spans: list[Any], folder: Path) -> float:
    from runtrace.store.db import Store
    from runtrace.store.exporter import StoreSpanExporter

    store = Store.open(folder / "exporter.db")
    exporter = StoreSpanExporter(store)
    parts = _batches(spans)
    t0 = time.perf_counter()
    for part in parts:
        assert exporter.export(part).name == "SUCCESS"
    seconds = time.perf_counter() - t0
    assert store.count_spans() == len(spans)
    assert store.execute("SELECT sum(llm_calls) + sum(tool_calls) FROM runs")[0][0] == len(spans)
    assert store.execute("SELECT count(*) FROM spans WHERE json_extract(attributes, '$.\"runtrace.cost.priced_at_ingest\"')"
                         )[0][0] > 0
    store.close()
    return len(spans) / seconds


def bench_minimal_sdk(spans: list[Any], folder: Path) -> float:
    from runtrace.store.db import connect
    from runtrace.store.ingest import INSERT_SPAN_SQL
    from runtrace.store.migrations import migrate

    conn = connect(folder / "minimal.db")
    migrate(conn)
    parts = _batches(spans)
    t0 = time.perf_counter()
    for part in parts:
        rows = minimal_rows(part)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT_SPAN_SQL, rows)
        conn.execute("COMMIT")
    seconds = time.perf_counter() - t0
    assert conn.execute("SELECT count(*) FROM spans").fetchone()[0] == len(spans)
    conn.close()
    return len(spans) / seconds


# --- over HTTP -----------------------------------------------------------------------

def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """``runtrace serve`` or the minimal receiver in a subprocess on a free loopback port."""

    def __init__(self, kind: str, store: Path) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        if kind == "serve":
            cmd = [sys.executable, "-m", "runtrace.cli", "serve", "--store", str(store), "--port", str(self.port)]
        else:
            cmd = [sys.executable, str(Path(__file__).parent / "_minimal_receiver.py"), "--store", str(store),
                   "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, env=_common.child_env(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{self.port}"
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{kind} did not start: {self.proc.stderr.read() if self.proc.stderr else ''}")
            time.sleep(0.1)

    def stop(self) -> float:
        """Stop gracefully; return its peak RSS in MiB."""
        peak = peak_rss_mib(self.proc.pid)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return peak


def send(url: str, n: int, threads: int) -> dict[str, Any]:
    """The sender process: encode first, then post every body, ``threads`` at a time."""
    import httpx

    from runtrace.store.otlp import encode_otlp_protobuf

    bodies = [encode_otlp_protobuf(part) for part in _record_batches(n)]
    queue = list(enumerate(bodies))
    lock = threading.Lock()
    failures: list[int] = []

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    _, body = queue.pop()
                response = client.post("/v1/traces", content=body, headers={"content-type": "application/x-protobuf"})
                if response.status_code != 200:
                    failures.append(response.status_code)

    t0 = time.perf_counter()
    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return {"spans": n, "seconds": time.perf_counter() - t0, "failures": failures}


def bench_http(kind: str, n: int, folder: Path, threads: int = 2) -> dict[str, Any]:
    store = folder / f"http_{kind}.db"
    server = Server(kind, store)
    try:
        out = _common.run_json([sys.executable, __file__, "--send", server.url, "--spans", str(n),
                                "--threads", str(threads)], _common.child_env(), timeout=3600)
    finally:
        peak = server.stop()
    if out["failures"]:
        raise RuntimeError(f"{kind}: {len(out['failures'])} requests failed: {sorted(set(out['failures']))}")
    import sqlite3

    conn = sqlite3.connect(store)
    stored = conn.execute("SELECT count(*) FROM spans").fetchone()[0]
    runs = conn.execute("SELECT count(*), coalesce(sum(llm_calls + tool_calls), 0) FROM runs").fetchone()
    conn.close()
    if stored != n:
        raise RuntimeError(f"{kind}: {stored} spans stored of {n} acknowledged")
    if kind == "serve" and runs[1] != n:
        raise RuntimeError(f"serve: runs count {runs[1]} calls for {n} spans")
    return {"rate": n / out["seconds"], "peak_rss_mib": peak, "stored": stored}


def run(*, spans: int, http_spans: int, rounds: int) -> dict[str, Any]:
    spans_sdk = sdk_spans(spans)
    records = make_records(spans)
    rates: dict[str, list[float]] = {k: [] for k in ("exporter", "minimal_sdk", "bare", "store_ingest",
                                                     "serve", "minimal_http")}
    peaks: dict[str, list[float]] = {"serve": [], "minimal_http": []}
    for r in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            order = ["minimal_sdk", "exporter"] if r % 2 else ["exporter", "minimal_sdk"]
            for what in order:
                rates[what].append((bench_exporter if what == "exporter" else bench_minimal_sdk)(spans_sdk, folder))
            rates["bare"].append(bench_bare(records, BATCH, folder)[0])
            rates["store_ingest"].append(bench_ingest(records, BATCH, folder)[0])
            for kind in (["minimal", "serve"] if r % 2 else ["serve", "minimal"]):
                out = bench_http(kind, http_spans, folder)
                key = "serve" if kind == "serve" else "minimal_http"
                rates[key].append(out["rate"])
                peaks[key].append(out["peak_rss_mib"])
        print(f"round {r + 1}/{rounds}: " + "  ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items()),
              file=sys.stderr)
    med = {k: _common.median(v) for k, v in rates.items()}
    return {
        "spans": spans, "http_spans": http_spans, "rounds": rounds, "batch": BATCH,
        "rates": med, "peak_rss_mib": {k: max(v) for k, v in peaks.items()},
        "ratios": {"exporter": med["exporter"] / med["minimal_sdk"], "serve": med["serve"] / med["minimal_http"]},
    }


def rows(data: dict[str, Any]) -> list[list[str]]:
    r, q = data["rates"], data["ratios"]
    return [
        ["in-process: StoreSpanExporter (rows, dedup, pricing, run aggregation)", f"{r['exporter']:,.0f}",
         f"{q['exporter']:.2f}", "met" if q["exporter"] >= 0.7 else "missed"],
        ["in-process: minimal (spans -> rows, one executemany per batch)", f"{r['minimal_sdk']:,.0f}", "1.00", ""],
        ["OTLP/HTTP: runtrace serve", f"{r['serve']:,.0f}", f"{q['serve']:.2f}",
         "met" if q["serve"] >= 0.7 else "missed"],
        ["OTLP/HTTP: minimal receiver (parse, rows, executemany)", f"{r['minimal_http']:,.0f}", "1.00", ""],
        ["Store.ingest on prebuilt records (ingest_store.py)", f"{r['store_ingest']:,.0f}", "", ""],
        ["ceiling: bare executemany of prebuilt rows", f"{r['bare']:,.0f}", "", ""],
    ]


HEADERS = ["path", "spans/s", "vs minimal", "target >= 0.70"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ingest throughput against minimal paths")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--spans", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--send", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.send:
        print(json.dumps(send(args.send, args.spans, args.threads)))
        return 0
    spans = args.spans or (1_024 if _common.tiny() else 10_240 if args.quick else 51_200)
    rounds = args.rounds or (1 if args.quick else 3)
    data = run(spans=spans, http_spans=spans, rounds=rounds)
    _common.save("ingest", data, quick=args.quick)
    print(f"{spans:,} spans of 20 attributes, batches of {BATCH}, median of {rounds} rounds")
    print(_common.table(HEADERS, rows(data)))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
