"""``/metrics``: the store's totals in the Prometheus text exposition format (0.0.4).

Read from the ``runs`` and ``run_models`` tables at scrape time, so the figures
are those of the store, whichever process wrote the spans. Runs by outcome is a
gauge (a late verdict moves a run from ``open`` to ``accepted``); the sums only
grow and are counters.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..store.aggregate import NANO
from ..store.db import Store

__all__ = ["CONTENT_TYPE", "render_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{_label(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


def _number(value: float | int) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def render_metrics(store: Store) -> str:
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str,
               samples: Iterable[tuple[Iterable[tuple[str, str]], float | int]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{_labels(labels)} {_number(value)}")

    by_project = store.execute(
        "SELECT coalesce(project, '') AS p, total(cost_nusd), sum(llm_calls), sum(tool_calls), "
        "sum(unpriced_calls), sum(outcome = 'budget_stopped'), sum(loop_detected), sum(repeated_reads), "
        "total(input_tokens), total(output_tokens) FROM runs GROUP BY p ORDER BY p")

    def per_project(column: int, scale: float = 1.0) -> list[tuple[Iterable[tuple[str, str]], float | int]]:
        return [((("project", r[0]),), r[column] / scale if scale != 1.0 else r[column]) for r in by_project]

    family("runtrace_cost_usd_total", "counter", "Spend on priced LLM calls, in US dollars.",
           per_project(1, NANO))
    by_model = store.execute(
        "SELECT provider, model, total(cost_nusd), sum(llm_calls) FROM run_models GROUP BY provider, model "
        "ORDER BY provider, model")
    family("runtrace_model_cost_usd_total", "counter", "Spend per provider and model, in US dollars.",
           [((("provider", r[0]), ("model", r[1])), r[2] / NANO) for r in by_model])
    family("runtrace_llm_calls_total", "counter", "LLM calls.", per_project(2))
    family("runtrace_tool_calls_total", "counter", "Tool calls.", per_project(3))
    family("runtrace_unpriced_calls_total", "counter", "LLM calls whose price is unknown.", per_project(4))
    family("runtrace_budget_stops_total", "counter", "Runs stopped by a budget.", per_project(5))
    family("runtrace_loops_total", "counter", "Runs in which a loop was detected.", per_project(6))
    family("runtrace_repeated_reads_total", "counter", "Tool reads identical to an earlier read in the run.",
           per_project(7))
    family("runtrace_tokens_total", "counter", "Tokens, by direction.",
           [((("project", r[0]), ("type", "input")), int(r[8])) for r in by_project]
           + [((("project", r[0]), ("type", "output")), int(r[9])) for r in by_project])
    by_outcome = store.execute(
        "SELECT coalesce(project, '') AS p, outcome, count(*) FROM runs GROUP BY p, outcome ORDER BY p, outcome")
    family("runtrace_runs", "gauge", "Runs by outcome.",
           [((("project", r[0]), ("outcome", r[1])), r[2]) for r in by_outcome])
    return "\n".join(lines) + "\n"
