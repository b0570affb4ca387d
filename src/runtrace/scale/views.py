"""The ClickHouse run view's total columns, written from the one declaration (runtrace/totals.py).

``collector/clickhouse/04_runtrace_runs.sql`` is plain SQL that the compose file
loads at ClickHouse's start, so the totals of ``otel.runtrace_runs_v`` are
committed text: the lines between :data:`BEGIN` and :data:`END` are
:func:`run_totals_sql`, one column per :data:`runtrace.totals.RUN_TOTALS`
entry, and a test fails when the file and the declaration part. After changing
a total: ``python -m runtrace.scale.views collector/clickhouse/04_runtrace_runs.sql``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..totals import RUN_TOTALS

__all__ = ["BEGIN", "END", "replace_block", "run_totals_sql"]

BEGIN = "    -- run totals: written by runtrace.scale.views from runtrace/totals.py (do not edit by hand)\n"
END = "    -- end of the run totals\n"
_INDENT = "    "


def run_totals_sql() -> str:
    """The view's total columns, in declaration order: ``<aggregate> AS <name>,`` a line each."""
    return "".join(f"{_INDENT}{f.clickhouse} AS {f.name},\n" for f in RUN_TOTALS)


def replace_block(text: str) -> str:
    """``text`` (the view's SQL) with the lines between BEGIN and END replaced by :func:`run_totals_sql`."""
    start = text.find(BEGIN)
    end = text.find(END, start + len(BEGIN)) if start >= 0 else -1
    if start < 0 or end < 0:
        raise ValueError("the run view has no generated totals block: expected the lines\n"
                         f"{BEGIN}...\n{END}")
    return text[:start + len(BEGIN)] + run_totals_sql() + text[end:]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m runtrace.scale.views collector/clickhouse/04_runtrace_runs.sql", file=sys.stderr)
        return 2
    path = Path(argv[0])
    text = path.read_text(encoding="utf-8")
    new = replace_block(text)
    if new != text:
        path.write_text(new, encoding="utf-8")
        print(f"{path}: run totals rewritten")
    return 0


if __name__ == "__main__":  # pragma: no cover - a maintainer's command
    raise SystemExit(main(sys.argv[1:]))
