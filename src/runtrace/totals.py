"""The run-total fields, declared once (issue 10, item 3).

A run's totals (cost, calls, tokens, repeated reads, errors, the loop flag...)
appear in six places that must agree: the live totals a run keeps in the
process and stamps on its run span at the end (``runs.py``), the sums of the
run aggregation (``store/aggregate.py``) and its SQLite upsert, the SELECT
lists and the JSON dicts of ``--format json`` (``store/queries.py``,
``server/reads.py``), and the ClickHouse run view of the scale path
(``collector/clickhouse/04_runtrace_runs.sql``, its totals written by
``runtrace.scale.views``). Each of them is derived from :data:`RUN_TOTALS`;
adding a total is one line here (plus its migration and its sum in the
aggregation's field rules, docs/architecture.md "How spans become runs").

Pure: names from ``semconv`` and nothing else, so every room may import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from . import semconv as sc

__all__ = ["CONTRACT_TOTALS", "EXTRA_TOTALS", "NANO", "RUN_TOTALS", "SPAN_TOTALS", "STORED_TOTALS", "TotalField",
           "json_totals"]

NANO = 1_000_000_000  # nano-dollars per dollar: money is summed as integers, exact in every order

Kind = Literal["count", "usd", "flag"]
Combine = Literal["sum", "max", "parts"]


@dataclass(frozen=True, slots=True)
class TotalField:
    """One run total: what it is called everywhere, its type, and how two runs' worth combine.

    ``name`` is the JSON key (``runtrace runs --format json``, the contract in README "The command line"
    when ``contract``) and the column of the ClickHouse run view. ``kind``:
    ``count`` an integer, ``usd`` money (stored as integer nano-dollars in the
    column ``<name without _usd>_nusd``), ``flag`` a bool (stored 0/1).
    ``combine``: ``sum`` adds (saturating at the int64 ceiling in SQLite),
    ``max`` takes the larger (a flag: once set, set), ``parts`` is not stored but
    the sum of the fields named in ``parts``. ``span_attribute`` is the run
    span's attribute for it (set at the run's end), if it carries one.
    ``clickhouse`` is its aggregate over ``otel.runtrace_counted_spans AS s``.
    ``none_when_zero``: shown as null, not 0, when nothing reported it.
    """

    name: str
    kind: Kind
    combine: Combine
    contract: bool
    clickhouse: str
    span_attribute: str | None = None
    parts: tuple[str, ...] = ()
    none_when_zero: bool = False

    @property
    def column(self) -> str | None:
        """The column of the SQLite ``runs`` table (None for a total made of ``parts``)."""
        if self.combine == "parts":
            return None
        return self.name.removesuffix("_usd") + "_nusd" if self.kind == "usd" else self.name

    def from_row(self, row: Any) -> Any:
        """This total's JSON value from a ``runs`` row (a ``sqlite3.Row`` or a dict: indexed by column name)."""
        if self.combine == "parts":
            return sum(row[part] for part in self.parts)
        value = row[self.column]
        if self.none_when_zero and not value:
            return None
        if self.kind == "usd":
            return value / NANO
        if self.kind == "flag":
            return bool(value)
        return value


def _counted(column: str) -> str:
    """A sum over the run's counted LLM calls only (each model call once: store/innermost.py)."""
    return f"sumIf(s.{column}, s.counted = 1)"


# The order is the order of the JSON keys: the contract block first (after ``stop_reason``),
# the extras after ``outcome_at``. Changing it changes `--format json` byte for byte.
RUN_TOTALS: tuple[TotalField, ...] = (
    # --- the --format json contract (README, "The command line"): in every run dict and on the run span
    TotalField("cost_usd", "usd", "sum", True, "sumIf(s.cost_nusd, s.counted = 1) / 1e9", sc.RUN_COST_USD),
    TotalField("unpriced_calls", "count", "sum", True, "countIf(s.counted = 1 AND s.priced = 0)",
               sc.RUN_UNPRICED_CALLS),
    TotalField("input_tokens", "count", "sum", True, _counted("input_tokens"), sc.RUN_INPUT_TOKENS),
    TotalField("output_tokens", "count", "sum", True, _counted("output_tokens"), sc.RUN_OUTPUT_TOKENS),
    TotalField("cached_input_tokens", "count", "sum", True, _counted("cached_input_tokens"),
               sc.RUN_CACHED_INPUT_TOKENS),
    TotalField("reasoning_tokens", "count", "sum", True, _counted("reasoning_tokens"), sc.RUN_REASONING_TOKENS),
    TotalField("llm_calls", "count", "sum", True, "countIf(s.counted = 1)", sc.RUN_LLM_CALLS),
    TotalField("tool_calls", "count", "sum", True, "countIf(s.kind = 'tool')", sc.RUN_TOOL_CALLS),
    TotalField("repeated_reads", "count", "sum", True, "sum(toUInt64(s.repeated_read))", sc.RUN_REPEATED_READS),
    TotalField("loop_detected", "flag", "max", True, "toBool(max(s.loop_detected))", sc.RUN_LOOP_DETECTED),
    # --- extras (the contract allows more fields, never renamed ones) -------------------
    TotalField("repeated_read_tokens", "count", "sum", False, "sum(s.repeated_read_tokens)"),
    TotalField("reinjected_tokens", "count", "sum", False, _counted("reinjected_tokens")),
    TotalField("refused_tool_calls", "count", "sum", False, "sum(toUInt64(s.refused))"),
    # the agent's own figure (Claude Code's cost_usd); null when it reports none
    TotalField("agent_cost_usd", "usd", "sum", False, "nullIf(sum(s.agent_cost_nusd), 0) / 1e9",
               none_when_zero=True),
    # model calls that finally failed + tool calls that failed
    TotalField("errors", "count", "parts", False, "api_errors + tool_errors", parts=("api_errors", "tool_errors")),
    TotalField("api_errors", "count", "sum", False, "sum(toUInt64(s.api_error))"),
    TotalField("tool_errors", "count", "sum", False, "sum(toUInt64(s.tool_error))"),
    TotalField("span_count", "count", "sum", False, "count()"),
)

CONTRACT_TOTALS = tuple(f for f in RUN_TOTALS if f.contract)
EXTRA_TOTALS = tuple(f for f in RUN_TOTALS if not f.contract)
STORED_TOTALS = tuple(f for f in RUN_TOTALS if f.combine != "parts")  # a column of ``runs`` each
SPAN_TOTALS = tuple(f for f in RUN_TOTALS if f.span_attribute is not None)  # what the run span carries


def json_totals(row: Any, fields: tuple[TotalField, ...]) -> dict[str, Any]:
    """``fields``' JSON values from a ``runs`` row, in declaration order."""
    return {f.name: f.from_row(row) for f in fields}


def _check(fields: tuple[TotalField, ...]) -> None:
    """Fail at import on a declaration that cannot work (a name twice, a part that is no stored count)."""
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise ValueError(f"a run total is declared twice: {sorted(n for n in names if names.count(n) > 1)}")
    stored = {f.name for f in fields if f.combine == "sum" and f.kind == "count"}
    for f in fields:
        if f.combine == "parts" and (not f.parts or not set(f.parts) <= stored):
            raise ValueError(f"run total {f.name!r}: its parts {f.parts} must be summed counts")


_check(RUN_TOTALS)
