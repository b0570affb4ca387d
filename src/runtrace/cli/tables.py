"""The runs table of ``runtrace runs``, ``show`` and ``demo``, and its CSV twin.

At 80 columns thirteen columns cannot all fit, and rich's answer (shrink every
one until each cell reads ``$0…``) leaves nothing readable. So the table keeps
the four columns a reader needs whole (run id, name, outcome, cost), never
cuts them, and adds the others in order of usefulness while they still fit.
The id shown is the shortest prefix (8 characters at least) that tells the
listed runs apart, so it can be pasted into ``runtrace show``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..display import money
from ..totals import CONTRACT_TOTALS
from .output import safe

__all__ = ["CSV_FIELDS", "csv_rows", "id_prefix_length", "runs_table"]

_OUTCOME_STYLE = {"accepted": "green", "rejected": "red", "error": "red", "budget_stopped": "magenta",
                  "abandoned": "yellow", "unfinished": "yellow", "open": "cyan"}
NAME_MAX = 32  # a longer name wraps inside its column instead of widening the table
MIN_ID = 8
# rich's default box: "│ " before each cell, " " after, and one closing "│".
_CELL_OVERHEAD = 3

# the contract fields of `--format json` (README, "The command line"), in its order (the totals from runtrace/totals.py)
CSV_FIELDS = ("id", "name", "project", "owner", "service", "outcome", "stop_reason",
              *(f.name for f in CONTRACT_TOTALS), "started_at", "ended_at", "duration_s")


def tokens(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def duration(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}s" if value < 120 else f"{value / 60:.1f}m"


def id_prefix_length(ids: Sequence[str]) -> int:
    """The shortest prefix length >= 8 at which the given ids are all distinct."""
    longest = max((len(i) for i in ids), default=MIN_ID)
    for n in range(MIN_ID, longest + 1):
        if len({i[:n] for i in ids}) == len(set(ids)):
            return n
    return longest


def _flags(r: dict[str, Any]) -> tuple[str, str]:
    """(markup, plain text) of a run's flags."""
    parts: list[tuple[str, str]] = []
    if r["loop_detected"]:
        parts.append(("red", "loop"))
    if r["repeated_reads"]:
        parts.append(("yellow", f"{r['repeated_reads']} re-read{'s' if r['repeated_reads'] != 1 else ''}"))
    if r.get("stop_reason"):
        parts.append(("magenta", f"stop:{r['stop_reason']}"))
    if r["unpriced_calls"]:
        parts.append(("", f"{r['unpriced_calls']} unpriced"))
    markup = " ".join(f"[{style}]{safe(text)}[/]" if style else safe(text) for style, text in parts)
    return markup, " ".join(text for _, text in parts)


@dataclass(frozen=True)
class _Column:
    header: str
    cell: Callable[[dict[str, Any]], str]  # markup
    text: Callable[[dict[str, Any]], str]  # what it shows, to measure
    justify: str = "left"


def _columns(id_len: int) -> tuple[list[_Column], list[_Column]]:
    """(always shown, optional in the order they are added)."""

    def outcome(r: dict[str, Any]) -> str:
        style = _OUTCOME_STYLE.get(r["outcome"], "")
        return f"[{style}]{safe(r['outcome'])}[/]" if style else safe(r["outcome"])

    def cost(r: dict[str, Any]) -> str:
        return money(r["cost_usd"]) + ("+?" if r["unpriced_calls"] else "")

    def text(key: str) -> Callable[[dict[str, Any]], str]:
        return lambda r: str(r[key] or "-")

    def count(key: str) -> Callable[[dict[str, Any]], str]:
        return lambda r: tokens(r[key])

    essential = [
        _Column("run", lambda r: safe(r["id"][:id_len]), lambda r: r["id"][:id_len]),
        _Column("name", lambda r: safe(r["name"] or "-"), lambda r: (r["name"] or "-")[:NAME_MAX]),
        _Column("outcome", outcome, lambda r: str(r["outcome"])),
        _Column("cost", cost, cost, "right"),
    ]
    optional = [
        _Column("flags", lambda r: _flags(r)[0], lambda r: _flags(r)[1]),
        _Column("time", lambda r: duration(r["duration_s"]), lambda r: duration(r["duration_s"]), "right"),
        _Column("llm", count("llm_calls"), count("llm_calls"), "right"),
        _Column("tools", count("tool_calls"), count("tool_calls"), "right"),
        _Column("project", lambda r: safe(r["project"] or "-"), text("project")),
        _Column("owner", lambda r: safe(r["owner"] or "-"), text("owner")),
        _Column("in", count("input_tokens"), count("input_tokens"), "right"),
        _Column("out", count("output_tokens"), count("output_tokens"), "right"),
        _Column("cached", count("cached_input_tokens"), count("cached_input_tokens"), "right"),
    ]
    return essential, optional


def _width(column: _Column, rows: list[dict[str, Any]]) -> int:
    from rich.cells import cell_len

    return max([cell_len(column.header), *(cell_len(column.text(r)) for r in rows)])


def runs_table(rows: list[dict[str, Any]], *, width: int, title: str | None = None) -> Any:
    """A rich Table of runs for a console ``width`` columns wide."""
    from rich.table import Table

    id_len = id_prefix_length([r["id"] for r in rows])
    essential, optional = _columns(id_len)
    used = 1 + sum(_width(c, rows) + _CELL_OVERHEAD for c in essential)
    shown = set()
    for column in optional:
        need = _width(column, rows) + _CELL_OVERHEAD
        if used + need <= width:
            shown.add(column.header)
            used += need
    order = [essential[0], essential[1], *(c for c in optional if c.header in ("project", "owner")),
             essential[2], essential[3], *(c for c in optional if c.header not in ("project", "owner"))]
    columns = [c for c in order if c in essential or c.header in shown]

    table = Table(title=title and safe(title), title_justify="left", header_style="bold")
    for c in columns:
        if c.header == "name":
            table.add_column(c.header, max_width=NAME_MAX, overflow="fold")
        elif c in essential:
            table.add_column(c.header, justify=c.justify, no_wrap=True, min_width=_width(c, rows))  # type: ignore[arg-type]
        else:
            table.add_column(c.header, justify=c.justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(*(c.cell(r) for c in columns))
    return table


def csv_rows(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """The CSV rows of ``runtrace runs --format csv``: every run field of `--format json`, full ids."""
    out: list[list[Any]] = []
    for r in rows:
        out.append(["" if r.get(f) is None else (int(r[f]) if isinstance(r[f], bool) else r[f])
                    for f in CSV_FIELDS])
    return out
