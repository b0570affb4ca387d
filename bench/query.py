"""Query latency on a store of 1,000,000 spans in 20,000 runs: p50 and p95 per query.

    python bench/query.py [--quick] [--rebuild]

The store is generated once with direct ``Store.ingest`` of SpanRecords (so
runs are aggregated exactly as in production) and cached under
``/tmp/runtrace-bench/``; a later runtrace with new migrations upgrades the
cached file when it opens it. 19,999 runs of about 50 spans (a run span, LLM
calls on five models, tool calls on ten tools) over 30 days, 10 projects and
20 owners, plus one run of 5,000 spans. Queries, each timed on a warm reader
(the first call is not counted):

- the runs list (``list_runs``, newest 50) and the ``runtrace serve`` runs page
  (``GET /`` through the ASGI app: headline figures, one page, filter options),
  plain, filtered by model, and sorted by cost;
- run detail of the 5,000-span run (``get_run``, ``/api/runs/{id}``, a page of
  200 spans, one span) and its serve page;
- search: a run-id prefix, a frequent word (a tool name) and a rare word
  (a value found in one span's attributes);
- the report (``build_report``), in total and by model.

Target: p50 under 100 ms each; under 50 ms for run detail (get_run and
/api/runs/{id}), the rare-word search and the report by model (issue 14).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common  # noqa: E402
from runtrace import semconv as sc  # noqa: E402

CACHE = Path("/tmp/runtrace-bench")
GENERATOR_VERSION = 2  # 2: run ids are 32 hex characters, as runtrace makes them
# RUNTRACE_BENCH_TINY=1 (checking the harness): a 15,000-span store with the same 5,000-span run, seconds to build
SPANS, RUNS, BIG_RUN_SPANS = (15_000, 201, 5_000) if _common.tiny() else (1_000_000, 20_000, 5_000)
RARE_RUN = 12_345 if RUNS > 12_345 else RUNS // 2  # the run whose span 7 holds the rare word
T0 = 1_790_000_000_000_000_000
DAY = 86_400 * 1_000_000_000
MODELS = [("openai", "gpt-4o-mini", 0.15, 0.6), ("openai", "gpt-5.5", 1.25, 10.0),
          ("anthropic", "claude-sonnet-4-6", 3.0, 15.0), ("anthropic", "claude-haiku-4-5", 1.0, 5.0),
          ("openai", "o4-mini", 1.1, 4.4)]
TOOLS = ["read_file", "write_file", "run_tests", "grep", "list_dir", "git_diff", "search_docs", "http_get",
         "shell", "edit_file"]
OUTCOMES = [sc.OUTCOME_ACCEPTED] * 6 + [sc.OUTCOME_REJECTED, sc.OUTCOME_ABANDONED, sc.OUTCOME_BUDGET_STOPPED,
                                        sc.OUTCOME_ERROR, sc.OUTCOME_OPEN, None]


def run_id(index: int) -> str:
    """A uuid4-hex-shaped id, as ``runtrace.run`` makes, unique per index."""
    return f"{index:06x}" + hashlib.md5(str(index).encode()).hexdigest()[:26]


BIG_RUN_ID = run_id(0)
RARE = "needle-7f3a9c"

# the rows the targets table (bench/targets.py) reads, and each row's target
RUN_PAGE = "serve run page, 5,000 spans"
BIG_RUN_DETAIL = "run detail, 5,000 spans (get_run)"
API_RUN = "serve /api/runs/{id}, 5,000 spans"
RARE_SEARCH = "search: rare word (one span)"
SEARCH_PAGE = "serve search page (rare word)"
REPORT_BY_MODEL = "report by model"
TARGET_MS = {BIG_RUN_DETAIL: 50.0, API_RUN: 50.0, RARE_SEARCH: 50.0, REPORT_BY_MODEL: 50.0}  # others: 100


def _run_sizes() -> list[int]:
    rest = SPANS - BIG_RUN_SPANS
    others = RUNS - 1
    base, extra = divmod(rest, others)
    return [BIG_RUN_SPANS] + [base + (1 if i < extra else 0) for i in range(others)]


def _records_of_run(index: int, size: int) -> list[Any]:
    from runtrace.store.records import EventRecord, SpanRecord

    rid = run_id(index)
    trace = f"{index + 1:032x}"
    start = T0 + (index * 30 * DAY) // RUNS
    resource = {sc.SERVICE_NAME: f"agent-{index % 4}", "service.version": "1.4.2"}
    project, owner = f"project-{index % 10}", f"owner-{index % 20}"
    root = f"{index + 1:08x}{0:08x}"
    outcome = OUTCOMES[index % len(OUTCOMES)]
    run_attrs: dict[str, Any] = {sc.SPAN_ROLE: sc.ROLE_RUN, sc.RUN_ID: rid, sc.RUN_NAME: f"fix issue #{index}",
                                 sc.PROJECT: project, sc.OWNER: owner, sc.BUDGET_MAX_COST_USD: 5.0}
    if outcome is not None:
        run_attrs[sc.RUN_OUTCOME] = outcome
    end = start + size * 2_000_000_000
    out = [SpanRecord(trace_id=trace, span_id=root, parent_span_id=None, name=f"run fix issue #{index}",
                      kind="INTERNAL", start_ns=start, end_ns=end, status_code="UNSET", status_message=None,
                      attributes=run_attrs, resource=resource, scope_name="runtrace", scope_version="0.1.0")]
    for k in range(1, size):
        s = start + k * 2_000_000_000
        common = {sc.RUN_ID: rid}
        if k % 5 in (1, 3, 4):
            provider, model, p_in, p_out = MODELS[(index + k) % len(MODELS)]
            tokens_in, tokens_out, cached = 2_000 + 37 * k % 9_000, 150 + k % 400, (k * 128) % 1_024
            attrs = {**common, sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_PROVIDER_NAME: provider,
                     sc.GEN_AI_REQUEST_MODEL: model, sc.GEN_AI_RESPONSE_MODEL: model,
                     sc.GEN_AI_RESPONSE_ID: f"chatcmpl-{index}-{k}", sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
                     sc.GEN_AI_USAGE_INPUT_TOKENS: tokens_in, sc.GEN_AI_USAGE_OUTPUT_TOKENS: tokens_out,
                     sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: cached,
                     sc.COST_USD: round((tokens_in * p_in + tokens_out * p_out) / 1e6, 10),
                     sc.COST_SOURCE: sc.SOURCE_GENAI_PRICES, sc.CONTEXT_MESSAGES: 4 + k,
                     sc.CONTEXT_FINGERPRINT: f"{index:08x}{k:08x}"}
            name, kind, events = f"chat {model}", "CLIENT", ()
        else:
            tool = TOOLS[(index + k) % len(TOOLS)]
            path = RARE if (index == RARE_RUN and k == 7) else f"src/module_{(index + k) % 300}.py"
            repeated = k % 7 == 2
            attrs = {**common, sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: tool,
                     sc.GEN_AI_TOOL_CALL_ID: f"call_{index}_{k}", sc.TOOL_ARGS_HASH: f"{k:016x}",
                     sc.TOOL_RESULT_HASH: f"{index:016x}", sc.TOOL_REPEATED_READ: repeated,
                     sc.TOOL_REPEAT_COUNT: 2 if repeated else 1, "file.path": path}
            name, kind = f"execute_tool {tool}", "INTERNAL"
            events = (EventRecord(sc.EVENT_REPEATED_READ, s + 1, {sc.TOOL_REPEAT_COUNT: 2}),) if repeated else ()
        out.append(SpanRecord(trace_id=trace, span_id=f"{index + 1:08x}{k:08x}", parent_span_id=root, name=name,
                              kind=kind, start_ns=s, end_ns=s + 1_500_000_000, status_code="UNSET",
                              status_message=None, attributes=attrs, resource=resource, events=events,
                              scope_name="runtrace", scope_version="0.1.0"))
    return out


def build_store(path: Path) -> None:
    from runtrace.store.db import Store

    tmp = path.with_suffix(".partial")
    for suffix in ("", "-wal", "-shm"):
        Path(str(tmp) + suffix).unlink(missing_ok=True)
    t0 = time.perf_counter()
    with Store.open(tmp) as store:
        batch: list[Any] = []
        for index, size in enumerate(_run_sizes()):
            batch.extend(_records_of_run(index, size))
            if len(batch) >= 20_000:
                store.ingest(batch)
                batch = []
        if batch:
            store.ingest(batch)
        assert store.count_spans() == SPANS and store.count_runs() == RUNS
        store.execute("PRAGMA optimize")
    with Store.open(tmp) as store:  # checkpoint the WAL into the file before it is renamed
        store._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    tmp.rename(path)
    print(f"generated {path} ({SPANS:,} spans, {RUNS:,} runs) in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def cached_path() -> Path:
    """Where the store for this code's schema is cached (it may not exist yet).

    The schema version is in the name: a store cached by older code (or another branch) is
    never migrated under a benchmark, which failed with "table span_search already exists",
    and a run of this code finds the store the last run of the same schema built.
    """
    from runtrace.store.migrations import schema_version

    return CACHE / f"query-{SPANS // 1000}k-v{GENERATOR_VERSION}-schema{schema_version()}.db"


def store_path(rebuild: bool = False) -> Path:
    """The cached store, built first if missing (or ``rebuild``); one builder at a time.

    Two runs at once (the box is shared) would otherwise write the same ``.partial`` file: the
    second waits on the lock, then finds the store the first one built.
    """
    import fcntl

    CACHE.mkdir(parents=True, exist_ok=True)
    path = cached_path()
    if path.exists() and not rebuild:
        return path
    with open(CACHE / (path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if rebuild or not path.exists():
            build_store(path)
    return path


def _time(fn: Any, repeat: int) -> tuple[list[float], list[float]]:
    """(wall ms, CPU ms of the whole process) per call: the targets are wall time; CPU moves less with the load."""
    fn()  # warm: the reader is open and the pages the query needs are cached, as on a running server
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return wall, cpu


def run(*, repeat: int, rebuild: bool) -> dict[str, Any]:
    from starlette.testclient import TestClient

    from runtrace.report import build_report
    from runtrace.server import create_app
    from runtrace.server import reads as ui
    from runtrace.store.db import Store
    from runtrace.store.migrations import schema_version
    from runtrace.store.queries import get_run, get_span, list_runs

    path = store_path(rebuild)
    store = Store.open(path)
    app = create_app(store)
    client = TestClient(app)

    def page(url: str) -> Any:
        def get() -> None:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
        return get

    def check_runs() -> None:
        runs = list_runs(store, limit=50)
        assert len(runs) == 50

    def check_detail() -> None:
        run = get_run(store, BIG_RUN_ID)
        assert run is not None and len(run["spans"]) == BIG_RUN_SPANS

    def search(term: str, expect: int | None = None) -> Any:
        def go() -> None:
            hits = ui.search(store, term)
            assert hits and (expect is None or len(hits) == expect), (term, len(hits))
        return go

    queries = {
        "runs list (list_runs, 50 newest)": check_runs,
        "runs list filtered by model": lambda: list_runs(store, model="claude-haiku-4-5", limit=50),
        "serve runs page (GET /)": page("/"),
        "serve runs page, model filter": page("/?model=claude-haiku-4-5"),
        "serve runs page, sorted by cost": page("/?sort=cost"),
        BIG_RUN_DETAIL: check_detail,
        API_RUN: page(f"/api/runs/{BIG_RUN_ID}"),
        "run detail, a page of 200 of 5,000 spans (get_run offset/limit)":
            lambda: get_run(store, BIG_RUN_ID, offset=2_400, limit=200),
        "one span of a 5,000-span run (get_span)": lambda: get_span(store, BIG_RUN_ID, f"{1:08x}{2_500:08x}"),
        RUN_PAGE: page(f"/runs/{BIG_RUN_ID}"),
        "search: run id prefix": search(run_id(RARE_RUN)[:10]),
        "search: frequent word (tool name)": search("git_diff"),
        RARE_SEARCH: search(RARE, expect=1),
        SEARCH_PAGE: page(f"/search?q={RARE}"),
        "serve search page (frequent word, 20 runs)": page("/search?q=git_diff"),
        "report (total)": lambda: build_report(store),
        REPORT_BY_MODEL: lambda: build_report(store, by="model"),
    }
    results: dict[str, dict[str, float]] = {}
    for name, fn in queries.items():
        samples, cpu = _time(fn, repeat)
        results[name] = {"p50_ms": _common.percentile(samples, 50), "p95_ms": _common.percentile(samples, 95),
                         "p50_cpu_ms": _common.percentile(cpu, 50)}
        print(f"{name:40s} p50 {results[name]['p50_ms']:8.1f} ms  p95 {results[name]['p95_ms']:8.1f} ms",
              file=sys.stderr)
    client.close()
    store.close()
    return {"spans": SPANS, "runs": RUNS, "repeat": repeat, "schema_version": schema_version(),
            "store_mib": round(path.stat().st_size / 2**20), "results": results}


def ms(value: float) -> str:
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def rows(data: dict[str, Any]) -> list[list[str]]:
    return [[name, ms(r["p50_ms"]), ms(r["p95_ms"]), ms(r["p50_cpu_ms"]) if "p50_cpu_ms" in r else "-",
             f"< {TARGET_MS.get(name, 100.0):.0f}", "met" if r["p50_ms"] < TARGET_MS.get(name, 100.0) else "missed"]
            for name, r in data["results"].items()]


HEADERS = ["query (1M spans, 20k runs)", "p50 ms", "p95 ms", "p50 CPU ms", "target p50 ms", "met?"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="query latency on a 1M-span store")
    parser.add_argument("--quick", action="store_true", help="7 timed calls per query instead of 25")
    parser.add_argument("--rebuild", action="store_true", help="generate the cached store again")
    args = parser.parse_args(argv)
    data = run(repeat=7 if args.quick else 25, rebuild=args.rebuild)
    _common.save("query", data, quick=args.quick)
    print(f"{data['spans']:,} spans in {data['runs']:,} runs ({data['store_mib']} MiB), schema v"
          f"{data['schema_version']}, {data['repeat']} timed calls each")
    print(_common.table(HEADERS, rows(data)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
