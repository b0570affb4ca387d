"""What every CLI command prints through: one console, terminal-safe values, CSV-safe cells.

Span values come from any program that can reach the store or the OTLP
receiver, so the CLI treats them as hostile text: a run named ``[/]`` must not
crash rich's markup parser, ``[link=...]`` must not become a link, an ANSI or
OSC-8 escape must not reach the terminal, and a CSV cell must not be a
spreadsheet formula. Commands build their output from :func:`safe` (for rich
markup), :func:`plain` (for plain text) and :func:`write_csv`.
"""

from __future__ import annotations

import csv
import os
import re
import sys
from collections.abc import Iterable
from typing import IO, Any

__all__ = ["PIPE_WIDTH", "console", "csv_cell", "plain", "safe", "write_csv"]

PIPE_WIDTH = 220  # columns when stdout is not a terminal: wide enough that no figure is cut

# C0 controls (tab and newline included: a cell is one line), DEL, C1 controls (0x9b is a
# one-byte CSI), and the Unicode bidi overrides/isolates that reorder what a terminal shows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def plain(value: Any) -> str:
    """``value`` as text a terminal shows literally: control characters become ``?``."""
    text = value if isinstance(value, str) else str(value)
    return _CONTROL.sub("?", text)


def safe(value: Any) -> str:
    """``value`` as rich markup that renders exactly its text (control characters as ``?``)."""
    from rich.markup import escape

    return escape(plain(value))


def console(*, stderr: bool = False) -> Any:
    """A rich console: the terminal's width, or a wide page when output is piped.

    ``COLUMNS`` still wins when set (rich reads it), so tests and narrow
    terminals get the narrow layout they ask for.
    """
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty() or os.environ.get("COLUMNS"):
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=PIPE_WIDTH)


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text starting with = + - @ gets a leading ``'``.

    Numbers are left as numbers (a negative difference stays ``-1.5``); only
    strings are neutralised, the OWASP "CSV injection" rule.
    """
    if isinstance(value, str):
        text = plain(value)
        return "'" + text if text.startswith(_FORMULA_START) else text
    return value


def write_csv(header: list[str], rows: Iterable[Iterable[Any]], stream: IO[str] | None = None) -> None:
    """Write a header and rows as CSV to ``stream`` (stdout), every cell through :func:`csv_cell`."""
    writer = csv.writer(stream or sys.stdout, lineterminator="\n")
    writer.writerow([csv_cell(h) for h in header])
    for row in rows:
        writer.writerow([csv_cell(c) for c in row])
