"""µs per priced call: this tree's runtrace.pricing against an earlier revision's, in one process.

    PYTHONPATH=src:. python -m bench.pricing                 # base: the commit before pricing/ became a package
    PYTHONPATH=src:. python -m bench.pricing --base main --rounds 15

The base revision's pricing (``src/runtrace/pricing.py`` or the ``pricing/``
package) is read with ``git show`` and loaded beside this tree's as
``runtrace._pricing_base``, so both run on the same genai-prices, the same
interpreter and the same caches' warm-up. Each round times every case with
both implementations, in alternating order (the shared machine drifts); the
figure is the median over rounds of the µs per call. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import runtrace.pricing as current
from bench._common import REPO, machine, median, save, table

WHEN = datetime(2026, 11, 1, tzinfo=timezone.utc)


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True).stdout


def default_base() -> str:
    """The parent of the commit that removed the single-module ``pricing.py`` (else HEAD)."""
    deleted = _git("log", "--diff-filter=D", "--format=%H", "-1", "--", "src/runtrace/pricing.py").strip()
    return f"{deleted}^" if deleted else "HEAD"


def load_base(rev: str) -> ModuleType:
    """``rev``'s runtrace.pricing as the module ``runtrace._pricing_base`` (its relative imports are runtrace's)."""
    folder = Path(tempfile.mkdtemp(prefix="runtrace-pricing-base-"))
    files = _git("ls-tree", "--name-only", rev, "src/runtrace/pricing.py", "src/runtrace/pricing/").split()
    if "src/runtrace/pricing.py" in files:
        (folder / "pricing.py").write_text(_git("show", f"{rev}:src/runtrace/pricing.py"))
        spec = importlib.util.spec_from_file_location("runtrace._pricing_base", folder / "pricing.py")
    else:
        for name in _git("ls-tree", "--name-only", f"{rev}:src/runtrace/pricing/").split():
            (folder / name).write_text(_git("show", f"{rev}:src/runtrace/pricing/{name}"))
        spec = importlib.util.spec_from_file_location("runtrace._pricing_base", folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def cases(pricing: Any) -> dict[str, Callable[[], object]]:
    """The calls timed: the instrumentations' hot path, a served tier, a tiered price, a span at ingest."""
    pricer = pricing.Pricer()
    usage = pricing.TokenUsage
    chat = usage(input_tokens=1_200, output_tokens=80, cache_read_tokens=256)
    claude = usage(input_tokens=5_000, output_tokens=300, cache_read_tokens=2_000, cache_write_tokens=1_000)
    long = usage(input_tokens=250_000, output_tokens=9_000, cache_read_tokens=100_000, reasoning_tokens=4_000)
    span = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 1_200, "gen_ai.usage.output_tokens": 80,
            "gen_ai.usage.cache_read.input_tokens": 256}
    return {
        "openai gpt-4o-mini, cached input": lambda: pricer.price(chat, model="gpt-4o-mini", provider="openai",
                                                                 when=WHEN),
        "anthropic claude-sonnet-4-5, cache write": lambda: pricer.price(claude, model="claude-sonnet-4-5",
                                                                         provider="anthropic", when=WHEN),
        "openai gpt-5.5, priority tier": lambda: pricer.price(chat, model="gpt-5.5", provider="openai",
                                                              service_tier="priority", when=WHEN),
        "google gemini-2.5-pro, tiered, 250k input": lambda: pricer.price(long, model="gemini-2.5-pro",
                                                                          provider="google", when=WHEN),
        "a foreign span priced at ingest": lambda: pricer.price_attributes(span, when=WHEN),
    }


def measure(base_rev: str, rounds: int, number: int) -> dict[str, Any]:
    base = load_base(base_rev)
    impls = {"base": cases(base), "this tree": cases(current)}
    for calls in impls.values():  # same answers, and every cache warm
        for call in calls.values():
            for _ in range(50):
                call()
    for name in impls["base"]:
        got = [impls[impl][name]() for impl in impls]
        assert len({repr(getattr(g, "attributes", lambda g=g: g)()) for g in got}) == 1, (name, got)
    times: dict[str, dict[str, list[float]]] = {impl: {name: [] for name in calls} for impl, calls in impls.items()}
    for r in range(rounds):
        order = list(impls) if r % 2 == 0 else list(reversed(impls))
        for name in impls["base"]:
            for impl in order:
                seconds = timeit.timeit(impls[impl][name], number=number)
                times[impl][name].append(seconds / number * 1e6)
    return {"machine": machine(), "base": base_rev, "base_commit": _git("rev-parse", "--short", base_rev).strip(),
            "rounds": rounds, "number": number,
            "us_per_call": {impl: {name: median(v) for name, v in per.items()} for impl, per in times.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=None, help="the revision to compare with (default: before pricing/)")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--number", type=int, default=2_000, help="calls per timed batch")
    args = parser.parse_args(argv)
    data = measure(args.base or default_base(), args.rounds, args.number)
    save("pricing", data)
    us = data["us_per_call"]
    rows = [[name, f"{us['base'][name]:.1f}", f"{us['this tree'][name]:.1f}",
             f"{us['this tree'][name] / us['base'][name]:.2f}"] for name in us["base"]]
    print(f"{data['machine']}; base {data['base_commit']}, median of {data['rounds']} rounds x {data['number']} calls")
    print(table(["call", "base µs", "this tree µs", "ratio"], rows))


if __name__ == "__main__":
    main()
