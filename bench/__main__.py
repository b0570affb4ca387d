"""Run every benchmark and print one table: ``python -m bench [--quick] [--readme] [--only NAME ...] [--tiny]``.

Each benchmark writes its figures to ``bench/results/<name>.json`` (``--quick``:
to ``/tmp/runtrace-bench/quick/``); this prints them together with issue 14's
targets table and how long each benchmark took, and with ``--readme`` rewrites
the generated part of ``bench/README.md`` (between its markers) from those
files. ``--only`` runs some benchmarks and still prints (and writes) the table
of all the latest results, so one can be re-measured alone. The cached
1M-span store of ``query.py`` is built before the clock starts when this
schema has none (once per schema version). ``--tiny`` only checks that the
harness works.
"""

from __future__ import annotations

import argparse
import importlib
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common, agent_logs, foreign, ingest, memory, overhead, providers, query, targets  # noqa: E402

BENCHMARKS = {"overhead": overhead, "providers": providers, "ingest": ingest, "foreign": foreign, "agent_logs": agent_logs, "query": query,
              "memory": memory}
QUICK_SKIPS = {"memory"}  # not in the targets table; a full run measures it
QUICK_BUDGET_S = 300  # issue 14: --quick finishes in under 5 minutes on 2 cores
BEGIN, END = "<!-- bench:begin (python -m bench --readme writes this part) -->", "<!-- bench:end -->"


def summary_rows(results: dict[str, dict[str, Any] | None]) -> list[list[str]]:
    out: list[list[str]] = []
    o = results.get("overhead")
    if o:
        r = o["results"]
        for s in overhead.SCENARIOS:
            ours, ref = r["runtrace"]["overhead_us"][s], r["openai-v2"]["overhead_us"][s]
            ratio = r["runtrace"]["ratio_to_openai_v2"][s]
            limit = overhead.TARGETS.get(s)  # issue 14's: chat and stream 0.7x, tool 1.5x (a hand span); responses none
            peers = (f"openai-v2 {ref:+.0f}" if r["openai-v2"]["spans_per_call"][s] else "openai-v2 n/a") + \
                f", OpenLLMetry {r['openllmetry']['overhead_us'][s]:+.0f}"
            out.append(["overhead", f"{s}: µs added per call (all threads)",
                        f"{ours:+.0f} (store on {r['runtrace+store']['overhead_us'][s]:+.0f})", peers,
                        f"{ratio:.2f}x" if ratio is not None else "-", "-" if limit is None else f"<= {limit:.2f}x",
                        "-" if ratio is None or limit is None else ("met" if ratio <= limit else "missed")])
    i = results.get("ingest")
    if i:
        q, rate = i["ratios"], i["rates"]
        out.append(["ingest", "in-process exporter, spans/s", f"{rate['exporter']:,.0f}",
                    f"minimal {rate['minimal_sdk']:,.0f}", f"{q['exporter']:.2f}", ">= 0.70",
                    "met" if q["exporter"] >= 0.7 else "missed"])
        out.append(["ingest", "runtrace serve over OTLP/HTTP, spans/s", f"{rate['serve']:,.0f}",
                    f"minimal {rate['minimal_http']:,.0f}", f"{q['serve']:.2f}", ">= 0.70",
                    "met" if q["serve"] >= 0.7 else "missed"])
        out.append(["ingest", "ceiling: bare executemany, rows/s", f"{rate['bare']:,.0f}", "", "", "", ""])
    qd = results.get("query")
    if qd:
        for name, r in qd["results"].items():
            limit = query.TARGET_MS.get(name, 100.0)
            out.append(["query", f"{name}, p50 / p95 ms", f"{query.ms(r['p50_ms'])} / {query.ms(r['p95_ms'])}", "", "",
                        f"p50 < {limit:.0f}", "met" if r["p50_ms"] < limit else "missed"])
    m = results.get("memory")
    if m:
        p, s = m["program"], m["serve"]
        out.append(["memory", f"one run of {p['calls']:,} calls, peak RSS MiB", f"{p['peak_rss_mib']:.0f}",
                    "", "", "bounded", f"{p['growth_after_1000_calls_mib']:+.1f} MiB after call 1,000"])
        out.append(["memory", f"serve ingesting {s['spans']:,} spans, peak RSS MiB", f"{s['peak_rss_mib']:.0f}",
                    "", "", "bounded", ""])
    return out


HEADERS = ["area", "measure", "runtrace", "peers / minimal path", "ratio", "target", "status"]


def readme_section(results: dict[str, dict[str, Any] | None], *, quick: bool = False) -> str:
    """The generated part of bench/README.md: how the figures were taken, the targets table, the details."""
    run = results.get("run")
    dated = [r for name, r in results.items() if r and name != "run"]
    lines = [BEGIN, ""]
    if not dated:
        return "\n".join([*lines, "(no results yet: run `python -m bench --readme`)", "", END])
    dates = sorted({r["date"] for r in dated})
    command = "python -m bench --quick --readme" if quick else "python -m bench --readme"
    lines += [f"Measured {' to '.join([dates[0], dates[-1]] if len(dates) > 1 else dates)} by `{command}` on "
              f"{dated[0]['machine']}.", ""]
    if run:
        lines += [timing_line(run, quick=quick).replace("this run: ", "The run took ", 1) + "."
                  + (f" {run['store'][0].upper()}{run['store'][1:]}." if run.get("store") else ""), ""]
        later = [name for name, r in results.items() if r and name != "run" and "time" in r and "time" in run
                 and (r["date"], r["time"]) > (run["date"], run["time"])]
        if later:
            lines += [f"Re-measured alone after that run (`--only`): {', '.join(later)}.", ""]
    o = results.get("overhead")
    if o:
        v = o["versions"]
        lines += [f"Versions: openai {v['openai']}, opentelemetry-sdk {v['opentelemetry-sdk']}, "
                  f"opentelemetry-instrumentation-openai-v2 {v['opentelemetry-instrumentation-openai-v2']} "
                  f"(with opentelemetry-util-genai {v['opentelemetry-util-genai']}), OpenLLMetry's "
                  f"opentelemetry-instrumentation-openai {v['opentelemetry-instrumentation-openai']}.", ""]
    lines += ["### Targets (issue 14)", "", _common.table(targets.HEADERS, targets.rows(results), markdown=True), "",
              "Ratios are within one run of one benchmark (medians of interleaved rounds); on this shared box "
              "absolute figures move 2-6x with the load.", "",
              "### Summary", "", _common.table(HEADERS, summary_rows(results), markdown=True), ""]
    if o:
        lines += ["### Overhead per call (µs of CPU, median of "
                  f"{o['rounds']} processes x {o['calls_per_process']:,} calls per scenario)", "",
                  _common.table(overhead.HEADERS, overhead.rows(o), markdown=True), ""]
    f = results.get("foreign")
    if f:
        lines += [f"### Foreign telemetry ({f['spans']:,} spans, {f['calls']:,} calls, median of {f['rounds']} rounds)",
                  "", _common.table(foreign.HEADERS, foreign.rows(f), markdown=True), ""]
    a = results.get("agent_logs")
    if a:
        lines += [f"### Coding-agent logs ({a['records']:,} records in {a['sessions']:,} sessions, median of "
                  f"{a['rounds']} rounds)", "", _common.table(agent_logs.HEADERS, agent_logs.rows(a), markdown=True), ""]
    i = results.get("ingest")
    if i:
        lines += [f"### Ingest ({i['spans']:,} spans, batches of {i['batch']}, median of {i['rounds']} rounds)", "",
                  _common.table(ingest.HEADERS, ingest.rows(i), markdown=True), ""]
    qd = results.get("query")
    if qd:
        lines += [f"### Queries ({qd['spans']:,} spans in {qd['runs']:,} runs, {qd['store_mib']} MiB, "
                  f"schema v{qd['schema_version']}, {qd['repeat']} timed calls each)", "",
                  _common.table(query.HEADERS, query.rows(qd), markdown=True), ""]
    m = results.get("memory")
    if m:
        p = m["program"]
        lines += ["### Memory", "", _common.table(memory.HEADERS, memory.rows(m), markdown=True), "",
                  "RSS every 1,000 calls (MiB): " + ", ".join(f"{r:.0f}" for _, r in p["samples"]) + "; "
                  "detector tables at the end: " + ", ".join(f"{k} {v}" for k, v in p["detector_sizes"].items())
                  + ".", ""]
    return "\n".join([*lines, END])


def write_readme(results: dict[str, dict[str, Any] | None], *, quick: bool = False) -> Path:
    path = _common.BENCH_DIR / "README.md"
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n## Latest results\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(head + readme_section(results, quick=quick) + tail)
    return path


def _prepare_query_store() -> str:
    """Build the cached 1M-span store if this schema has none yet, before the run's clock starts.

    A quick run must finish in 5 minutes; building the store takes most of that (78 s of CPU and
    3-6 min of wall time on the shared box), once per schema version, so it is timed and reported on its own.
    """
    cached = query.cached_path()
    if cached.exists():
        return f"query store: reusing {cached}"
    print(f"== building {cached} (once per schema version; not part of the run's time)", file=sys.stderr)
    t0 = time.perf_counter()
    query.store_path()
    return f"query store: built {cached} in {time.perf_counter() - t0:.0f} s, outside the run's time"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_benchmarks(names: list[str], extra_for: dict[str, list[str]]) -> tuple[list[str], list[list[str]], float]:
    """Run each benchmark in turn; (the failed ones, a timing row each, the wall seconds of all)."""
    failed: list[str] = []
    timings: list[list[str]] = []
    start = time.perf_counter()
    for name in names:
        print(f"== {name}", file=sys.stderr)
        t0, c0 = time.perf_counter(), time.process_time() + _children_cpu()
        try:
            BENCHMARKS[name].main(extra_for.get(name, []))
        except (Exception, SystemExit) as exc:  # one benchmark failing leaves the others' figures
            print(f"== {name} failed: {exc}", file=sys.stderr)
            failed.append(name)
        wall, cpu = time.perf_counter() - t0, time.process_time() + _children_cpu() - c0
        timings.append([name, f"{wall:.0f}", f"{cpu:.0f}", "failed" if name in failed else ""])
    return failed, timings, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer rounds (under 5 minutes)")
    parser.add_argument("--readme", action="store_true",
                        help="rewrite the results part of bench/README.md (with --quick: from the quick figures)")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these benchmarks")
    parser.add_argument("--venv", default=None, help="virtualenv with the peers, for overhead (see README)")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny sizes, to check the harness works (seconds; figures meaningless, kept apart)")
    parser.add_argument("--no-run", action="store_true",
                        help="run nothing: print (and with --readme write) the latest saved results")
    args = parser.parse_args(argv)
    if args.tiny:
        if args.readme:
            parser.error("--tiny figures mean nothing; they never go into the README")
        os.environ["RUNTRACE_BENCH_TINY"] = "1"
        args.quick = True  # quick's rounds, tiny's sizes
        importlib.reload(query)  # its store's size is read at import
    names = args.only or [n for n in BENCHMARKS if not (args.quick and n in QUICK_SKIPS)]
    extra = ["--quick"] if args.quick else []
    venv = ["--venv", args.venv] if args.venv else []
    extra_for = {n: extra + (venv if n in ("overhead", "providers") else []) for n in names}
    if args.no_run:
        run = _common.load("run", quick=args.quick) or {}
        failed, timings, store_note = list(run.get("failed", [])), list(run.get("timings", [])), run.get("store", "")
    else:
        load_before = _common.load_average()
        store_note = _prepare_query_store() if "query" in names else ""
        failed, timings, wall = _run_benchmarks(names, extra_for)
        cpu = sum(float(t[2]) for t in timings)
        run = {"benchmarks": names, "failed": failed, "wall_s": round(wall), "cpu_s": round(cpu),
               "load_before": load_before, "load_after": _common.load_average(), "store": store_note,
               "timings": timings}
        if not args.only:  # the run's timing describes a whole set; --only re-measures one figure
            _common.save("run", run, quick=args.quick)
    # a benchmark that failed in this run shows as not measured, never with an older run's figures
    results = {name: None if name in failed else _common.load(name, quick=args.quick) for name in BENCHMARKS}
    print()
    print(_common.table(HEADERS, summary_rows(results)))
    print("\nIssue 14's targets (today = the latest run of each benchmark above):\n")
    print(_common.table(targets.HEADERS, targets.rows(results)))
    print()
    if run:
        print(_common.table(["benchmark", "wall s", "CPU s", ""], timings))
        print(timing_line(run, quick=args.quick))
    if store_note:
        print(store_note)
    if args.readme:
        results["run"] = run or None
        print(f"\nwrote {write_readme(results, quick=args.quick)}", file=sys.stderr)
    return 1 if failed else 0


def timing_line(run: dict[str, Any], *, quick: bool) -> str:
    """How long the run took, and for ``--quick`` whether it kept to its 5 minutes (store build excluded)."""
    load = f"load average {run['load_before']} before, {run['load_after']} after"
    line = f"this run: {run['wall_s'] // 60:.0f} min {run['wall_s'] % 60:02.0f} s wall, {run['cpu_s']:.0f} s CPU ({load})"
    if quick and not _common.tiny() and set(run.get("benchmarks", ())) >= set(BENCHMARKS) - QUICK_SKIPS:  # all of it
        verdict = "within" if run["wall_s"] < QUICK_BUDGET_S else "over"
        line += (f"; {verdict} the quick run's {QUICK_BUDGET_S // 60} minutes (the benchmarks run one after "
                 "another, so on an idle box the wall time comes to about the CPU time)")
    return line


if __name__ == "__main__":
    raise SystemExit(main())
