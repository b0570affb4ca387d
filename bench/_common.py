"""What every benchmark shares: the machine line, medians and percentiles, result files, tables.

Benchmarks print their figures and write them as JSON under ``bench/results/``
(one file per benchmark) so ``python -m bench`` can put them into one table
and into ``bench/README.md``. Nothing here asserts on time: a benchmark that
finds a target missed says so in its output, it never fails a test.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"


def machine() -> str:
    """One line naming what the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))
        mem = f"{mem_kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration):
        mem = "?"
    return (f"{cpu}, {os.cpu_count()} cores, {mem}; Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}, {platform.system()} {platform.release()}")


def today() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation, as numpy's default does."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def tiny() -> bool:
    """``RUNTRACE_BENCH_TINY=1``: sizes that only check the harness works (seconds, figures meaningless).

    Tiny results go to a folder of their own, so they never show as a quick or full run's figures.
    """
    return os.environ.get("RUNTRACE_BENCH_TINY", "") not in ("", "0")


def load_average() -> float | None:
    """The machine's 1-minute load average (None where the OS has none): the figures move with it."""
    try:
        return round(os.getloadavg()[0], 1)
    except OSError:
        return None


def _results_dir(quick: bool) -> Path:
    """bench/results/ for full runs; for quick (and tiny) runs a temporary folder of this checkout's own.

    Quick runs are for trying things out: their figures stay out of the repository. The folder is
    per checkout because several worktrees share the machine: with one folder for all, another
    engineer's ``--only agent_logs`` replaced a figure of this checkout's run before its README was written.
    """
    if not (quick or tiny()):
        return RESULTS
    checkout = f"{REPO.name}-{hashlib.sha1(str(REPO).encode()).hexdigest()[:8]}"
    return Path(tempfile.gettempdir()) / "runtrace-bench" / ("tiny" if tiny() else "quick") / checkout


def save(name: str, data: dict[str, Any], *, quick: bool = False) -> Path:
    """Write one benchmark's results (with date and machine) to bench/results/<name>.json.

    ``--quick`` results go to a temporary folder instead: they never replace the full figures
    the README shows.
    """
    folder = _results_dir(quick)
    folder.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": name, "date": today(), "time": datetime.now(timezone.utc).strftime("%H:%M:%S"),
            "machine": machine(), "quick": quick,
            "load_average": load_average(), **data}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def load(name: str, *, quick: bool = False) -> dict[str, Any] | None:
    path = _results_dir(quick) / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def table(headers: list[str], rows: list[list[Any]], *, markdown: bool = False) -> str:
    """A plain-text (or Markdown) table; numbers right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def numeric(text: str) -> bool:
        stripped = text.replace(",", "").replace(".", "").replace("%", "").replace("x", "").replace(" ", "")
        return stripped.lstrip("+-").isdigit()

    def line(row: list[str]) -> str:
        parts = [c.rjust(w) if numeric(c) else c.ljust(w) for c, w in zip(row, widths, strict=True)]
        return ("| " + " | ".join(parts) + " |") if markdown else "  ".join(parts).rstrip()

    out = [line(headers)]
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|" if markdown
               else "  ".join("-" * w for w in widths))
    out.extend(line(r) for r in cells)
    return "\n".join(out)


DEFAULT_VENV = "/work/venv-bench"


def default_venv() -> str | None:
    """``$RUNTRACE_BENCH_VENV``, else ``/work/venv-bench`` if it exists, else None (this interpreter).

    The peers (openai-v2, OpenLLMetry) may be installed next to runtrace in the running
    environment instead of a virtualenv of their own; a child that lacks them fails naming the import.
    """
    chosen = os.environ.get("RUNTRACE_BENCH_VENV")
    if chosen:
        return chosen
    return DEFAULT_VENV if (Path(DEFAULT_VENV) / "bin" / "python").exists() else None


def python_for(venv: str | None) -> str:
    """The interpreter of ``venv`` (a virtualenv folder) or, without one, this interpreter."""
    if venv:
        candidate = Path(venv) / "bin" / "python"
        if candidate.exists():
            return str(candidate)
        raise SystemExit(f"no virtualenv at {venv} (see bench/README.md for how to make it)")
    return sys.executable


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a benchmark subprocess: runtrace's src on the path, no stray OTel config."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "TRACELOOP_", "RUNTRACE_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)] +
                                        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(extra)
    return env


def run_json(cmd: list[str], env: dict[str, str], timeout: float = 1800) -> dict[str, Any]:
    """Run a benchmark child that prints one JSON object as its last stdout line."""
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    last = proc.stdout.strip().splitlines()[-1]
    return dict(json.loads(last))
