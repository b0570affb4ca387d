"""Peak memory: one 10,000-call run in an instrumented program, and ``runtrace serve`` taking 1,000,000 spans.

    python bench/memory.py [--quick]

1. A program that calls ``runtrace.instrument()`` (store on) and makes one run
   of 10,000 calls: 5,000 openai chat calls over a mock transport with an
   agent-sized prompt whose last turns change every call, and 5,000
   ``@runtrace.tool`` reads over 300 files (so the repeated-read and loop
   detectors have work). Resident memory is sampled every 1,000 calls; the
   peak (VmHWM) and the growth from call 1,000 to the end are reported,
   with the detectors' own table sizes, which are capped.
2. ``runtrace serve`` in its own process receiving 1,000,000 spans over
   OTLP/HTTP protobuf (``bench/ingest.py``'s sender): its peak resident memory.

Bounded means: flat after warm-up, whatever the number of calls or spans.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common  # noqa: E402


def rss_mib() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MiB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":", 1)
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def one_run(calls: int) -> dict[str, Any]:
    """The child: one run of ``calls`` calls; RSS every 1,000 calls."""
    import runtrace
    from bench._openai_fake import MODEL, FakeOpenAI, http_module, messages

    tmp = tempfile.TemporaryDirectory()
    runtrace.instrument(service_name="memory-agent", store=str(Path(tmp.name) / "runtrace.db"))
    client = FakeOpenAI(http_module()).client()

    @runtrace.tool
    def read_file(path: str) -> str:
        return f"contents of {path}: " + "x = 1\n" * 40

    samples: list[tuple[int, float]] = []
    start_rss = rss_mib()[0]
    with runtrace.run("memory", project="bench") as run:
        for i in range(calls):
            if i % 2:
                read_file(path=f"src/module_{i % 300}.py")
            else:
                client.chat.completions.create(model=MODEL, messages=messages(i))
            if (i + 1) % 1000 == 0:
                samples.append((i + 1, rss_mib()[0]))
        sizes = run._live._detectors.sizes()  # the instrumentation side of the run (_run_state.RunState)
        figures = run.figures()
        run.accept()
    runtrace.flush()
    current, peak = rss_mib()
    runtrace.uninstrument()
    return {"calls": calls, "start_rss_mib": start_rss, "samples": samples, "peak_rss_mib": peak,
            "end_rss_mib": current, "detector_sizes": sizes, "llm_calls": figures["llm_calls"],
            "tool_calls": figures["tool_calls"], "repeated_reads": figures["repeated_reads"]}


def run(*, calls: int, serve_spans: int) -> dict[str, Any]:
    python = sys.executable
    program = _common.run_json([python, __file__, "--child", str(calls)], _common.child_env(), timeout=3600)
    samples = program["samples"]
    first = samples[0][1] if samples else program["start_rss_mib"]
    program["growth_after_1000_calls_mib"] = samples[-1][1] - first if samples else 0.0
    from bench.ingest import bench_http

    with tempfile.TemporaryDirectory() as tmp:
        served = bench_http("serve", serve_spans, Path(tmp))
    return {"program": program, "serve": {"spans": serve_spans, "peak_rss_mib": served["peak_rss_mib"],
                                          "rate": served["rate"]}}


def rows(data: dict[str, Any]) -> list[list[str]]:
    p, s = data["program"], data["serve"]
    return [
        [f"one run of {p['calls']:,} calls (instrumented program)", f"{p['peak_rss_mib']:.0f}",
         f"{p['growth_after_1000_calls_mib']:+.1f} MiB from call 1,000 to {p['calls']:,}"],
        [f"runtrace serve ingesting {s['spans']:,} spans", f"{s['peak_rss_mib']:.0f}",
         f"at {s['rate']:,.0f} spans/s"],
    ]


HEADERS = ["workload", "peak RSS MiB", "bounded?"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="peak memory of a long run and of serve")
    parser.add_argument("--quick", action="store_true", help="2,000 calls and 100,000 spans")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(one_run(args.child)))
        return 0
    if _common.tiny():
        data = run(calls=2_000, serve_spans=10_240)
    else:
        data = run(calls=2_000 if args.quick else 10_000, serve_spans=100_000 if args.quick else 1_000_000)
    _common.save("memory", data, quick=args.quick)
    print(_common.table(HEADERS, rows(data)))
    p = data["program"]
    print("RSS every 1,000 calls (MiB): " + ", ".join(f"{r:.0f}" for _, r in p["samples"]))
    print("detector tables at the end: " + json.dumps(p["detector_sizes"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
