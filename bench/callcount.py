"""Python function calls an instrumented call adds over the bare one: the overhead, counted instead of timed.

    python -m bench.callcount [--venv /work/venv-bench] [--calls 200]

With the store on (``runtrace+store``) only the calling thread is counted
(cProfile profiles the thread that enabled it): what the store adds to the
agent's own thread, its exporter thread's work left out.

On a shared machine the µs of ``overhead.py`` move with the load (openai-v2's
streamed call measured +225 and -102 µs in two rounds of one run); cProfile's
count of function calls (builtins included) does not. Each implementation runs
in a process of its own, set up exactly as ``overhead.py`` sets it up (same
mock transport, ``SimpleSpanProcessor`` + ``InMemorySpanExporter``, runtrace's
calls inside ``runtrace.run()``, the peers' tool span written by hand), and
counts ``calls`` instrumented calls against as many through the methods as
they were before anything was installed. A count is a proxy for time, not a
measure of it: it weighs a ``sha256`` and an ``isinstance`` alike.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common  # noqa: E402

# runtrace+store: the store on; cProfile counts the calling thread only, so it shows what the store adds
# to the agent's own thread (its exporter thread's work is not counted: the store row is the caller's)
IMPLEMENTATIONS = ("runtrace", "runtrace+store", "openai-v2")
SCENARIOS = ("chat", "stream", "tool")


def child(impl: str, calls: int) -> dict[str, Any]:
    """{scenario: function calls added per call} for ``impl``, in this process."""
    from openai.resources.chat.completions import Completions

    from bench.overhead import Implementation, _read_file, _tool

    plain_chat = Completions.create  # before anything patches it
    tmp = tempfile.TemporaryDirectory()
    subject = Implementation(impl, str(Path(tmp.name) / "unused.db"))
    import runtrace
    from bench._openai_fake import MODEL, FakeOpenAI, http_module, messages

    client = FakeOpenAI(http_module()).client()
    tool = _tool(impl, subject.tracer)

    def call(scenario: str, i: int, on: bool) -> Any:
        create = client.chat.completions.create if on else (lambda **kw: plain_chat(client.chat.completions, **kw))
        if scenario == "chat":
            return create(model=MODEL, messages=messages(i))
        if scenario == "stream":
            return list(create(model=MODEL, messages=messages(i), stream=True, stream_options={"include_usage": True}))
        return (tool if on else _read_file)(path=f"src/module_{i}.py")

    def batch(scenario: str, on: bool, start: int) -> int:
        profile = cProfile.Profile()
        gc.collect()
        subject.exporter.clear()
        with runtrace.run(f"count {scenario}", project="bench") if impl.startswith("runtrace") else _Nothing():
            profile.enable()
            for i in range(start, start + calls):
                call(scenario, i, on)
            profile.disable()
        return int(pstats.Stats(profile).total_calls)  # type: ignore[attr-defined]

    out: dict[str, float] = {}
    for n, scenario in enumerate(SCENARIOS):
        base = n * 10 * calls
        batch(scenario, True, base)  # warm: imports, caches, first-call costs
        batch(scenario, False, base)
        on, off = batch(scenario, True, base + 2 * calls), batch(scenario, False, base + 4 * calls)
        out[scenario] = (on - off) / calls
    return {"impl": impl, "calls_added": out}


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="function calls an instrumented call adds (cProfile counts)")
    parser.add_argument("--venv", default=_common.default_venv())
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.calls)))
        return 0
    python = _common.python_for(args.venv)
    found = {impl: _common.run_json([python, __file__, "--child", impl, "--calls", str(args.calls)],
                                    _common.child_env())["calls_added"] for impl in IMPLEMENTATIONS}
    rows = [[s, f"{found['runtrace'][s]:.0f}", f"{found['openai-v2'][s]:.0f}",
             f"{found['runtrace'][s] / found['openai-v2'][s]:.2f}x"] for s in SCENARIOS]
    print(_common.table(["call", "runtrace", "openai-v2 (tool: hand-written span)", "ratio"], rows))
    print()
    rows = [[s, f"{found['runtrace+store'][s]:.0f}", f"{found['runtrace'][s]:.0f}",
             f"{found['runtrace+store'][s] - found['runtrace'][s]:+.0f}"] for s in SCENARIOS]
    print(_common.table(["call", "store on (calling thread)", "store off", "difference"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
