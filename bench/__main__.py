"""Run every benchmark and print one table: ``python -m bench [--quick] [--readme] [--only NAME ...]``.

Each benchmark writes its figures to ``bench/results/<name>.json``; this
prints them together, and with ``--readme`` rewrites the generated part of
``bench/README.md`` (between its markers) from those files. ``--only`` runs
some benchmarks and still prints (and writes) the table of all the latest
results, so one can be re-measured alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common, agent_logs, foreign, ingest, memory, overhead, providers, query, targets  # noqa: E402

BENCHMARKS = {"overhead": overhead, "providers": providers, "ingest": ingest, "foreign": foreign, "agent_logs": agent_logs, "query": query,
              "memory": memory}
QUICK_SKIPS = {"memory"}  # not in the targets table; a full run measures it
BEGIN, END = "<!-- bench:begin (python -m bench --readme writes this part) -->", "<!-- bench:end -->"


def summary_rows(results: dict[str, dict[str, Any] | None]) -> list[list[str]]:
    out: list[list[str]] = []
    o = results.get("overhead")
    if o:
        r = o["results"]
        for s in overhead.SCENARIOS:
            ours, ref = r["runtrace"]["overhead_us"][s], r["openai-v2"]["overhead_us"][s]
            ratio = r["runtrace"]["ratio_to_openai_v2"][s]
            peers = (f"openai-v2 {ref:+.0f}" if r["openai-v2"]["spans_per_call"][s] else "openai-v2 n/a") + \
                f", OpenLLMetry {r['openllmetry']['overhead_us'][s]:+.0f}"
            out.append(["overhead", f"{s}: µs added per call",
                        f"{ours:+.0f} (store on {r['runtrace+store']['overhead_us'][s]:+.0f})", peers,
                        f"{ratio:.2f}x" if ratio is not None else "-", "<= 1.00x openai-v2",
                        "-" if ratio is None else ("met" if ratio <= 1.0 else "missed")])
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


def readme_section(results: dict[str, dict[str, Any] | None]) -> str:
    dated = [r for r in results.values() if r]
    lines = [BEGIN, ""]
    if not dated:
        return "\n".join([*lines, "(no results yet: run `python -m bench --readme`)", "", END])
    dates = sorted({r["date"] for r in dated})
    lines += [f"Measured {' to '.join([dates[0], dates[-1]] if len(dates) > 1 else dates)} on "
              f"{dated[0]['machine']}.", ""]
    o = results.get("overhead")
    if o:
        v = o["versions"]
        lines += [f"Versions: openai {v['openai']}, opentelemetry-sdk {v['opentelemetry-sdk']}, "
                  f"opentelemetry-instrumentation-openai-v2 {v['opentelemetry-instrumentation-openai-v2']} "
                  f"(with opentelemetry-util-genai {v['opentelemetry-util-genai']}), OpenLLMetry's "
                  f"opentelemetry-instrumentation-openai {v['opentelemetry-instrumentation-openai']}.", ""]
    lines += ["### Targets (issue 14)", "", _common.table(targets.HEADERS, targets.rows(results), markdown=True), "",
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


def write_readme(results: dict[str, dict[str, Any] | None]) -> Path:
    path = _common.BENCH_DIR / "README.md"
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n## Latest results\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(head + readme_section(results) + tail)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer rounds (a few minutes)")
    parser.add_argument("--readme", action="store_true", help="rewrite the results part of bench/README.md")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these benchmarks")
    parser.add_argument("--venv", default=None, help="virtualenv with the peers, for overhead (see README)")
    args = parser.parse_args(argv)
    if args.readme and args.quick:
        parser.error("--readme shows full runs only; run it without --quick")
    failed: list[str] = []
    for name in args.only or [n for n in BENCHMARKS if not (args.quick and n in QUICK_SKIPS)]:
        print(f"== {name}", file=sys.stderr)
        extra = ["--quick"] if args.quick else []
        if name in ("overhead", "providers") and args.venv:
            extra += ["--venv", args.venv]
        try:
            BENCHMARKS[name].main(extra)
        except (Exception, SystemExit) as exc:  # one benchmark failing leaves the others' figures
            print(f"== {name} failed: {exc}", file=sys.stderr)
            failed.append(name)
    # a benchmark that failed in this run shows as not measured, never with an older run's figures
    results = {name: None if name in failed else _common.load(name, quick=args.quick) for name in BENCHMARKS}
    print()
    print(_common.table(HEADERS, summary_rows(results)))
    print("\nIssue 14's targets (today = the latest run of each benchmark above):\n")
    print(_common.table(targets.HEADERS, targets.rows(results)))
    if args.readme:
        print(f"\nwrote {write_readme(results)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
