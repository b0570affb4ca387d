"""One run filter (issue 10): the project/owner/outcome/model/flag/since/until/text narrowing of ``runs``.

``runtrace runs`` (via :func:`runtrace.store.queries.list_runs`), the web UI's
runs page, its headline figures and /api/runs all build the same WHERE clause
from a :class:`RunFilter`, so "since 2026-11-01" or ``--outcome accepted``
select the same runs everywhere. Times are epoch nanoseconds (store/timespec.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .. import semconv

__all__ = ["FLAGS", "RunFilter", "matching", "model_used", "started_between"]

# flag name -> (label, SQL condition on runs; ``{t}`` is where the table qualifier goes)
FLAGS: dict[str, tuple[str, str]] = {
    "loop": ("loop detected", "{t}loop_detected = 1"),
    "repeated_reads": ("repeated reads", "{t}repeated_reads > 0"),
    "budget_stopped": ("stopped by budget", "{t}outcome = '" + semconv.OUTCOME_BUDGET_STOPPED + "'"),
    "unpriced": ("unpriced calls", "{t}unpriced_calls > 0"),
    "error": ("error", "{t}outcome = '" + semconv.OUTCOME_ERROR + "'"),
}


def started_between(since_ns: int | None, until_ns: int | None, *,
                    column: str = "started_ns") -> tuple[list[str], list[Any]]:
    """The clauses and parameters for ``since <= column < until`` (either bound may be None).

    The one time window: RunFilter, ``runtrace report`` (runs, its exact by-model groups, its rollup days)
    and the store's span replay (``Store.iter_span_records``) use it.
    """
    clauses: list[str] = []
    params: list[Any] = []
    if since_ns is not None:
        clauses.append(f"{column} >= ?")
        params.append(since_ns)
    if until_ns is not None:
        clauses.append(f"{column} < ?")
        params.append(until_ns)
    return clauses, params


def matching(pairs: Iterable[tuple[str, Any]]) -> tuple[list[str], list[Any]]:
    """``column = ?`` and its parameter for each (column, value) whose value is not None."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in pairs:
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    return clauses, params


def model_used(run_id_column: str) -> str:
    """The condition "the run ``run_id_column`` names used the model ``?``" (run_models' index)."""
    return f"EXISTS (SELECT 1 FROM run_models m WHERE m.run_id = {run_id_column} AND m.model = ?)"


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass(frozen=True)
class RunFilter:
    """What a list of runs is narrowed by (None = any).

    Used by `runtrace runs`, the runs page, its headline, /api/runs, the Spend page,
    ``runtrace report`` and ``runtrace reprice`` (and the What-if page through it).
    """

    project: str | None = None
    owner: str | None = None
    outcome: str | None = None
    model: str | None = None
    flag: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    text: str | None = None

    def clauses(self, table: str | None = None) -> tuple[list[str], list[Any]]:
        """The conditions (joined with AND by the caller) and their parameters.

        ``table`` qualifies every column (``runs.project``) for a query that joins
        ``runs`` to another table holding columns of the same names (reprice's spans).
        """
        t = f"{table}." if table else ""
        clauses, params = matching(((f"{t}project", self.project), (f"{t}owner", self.owner),
                                    (f"{t}outcome", self.outcome)))
        if self.model is not None:
            clauses.append(model_used(f"{table or 'runs'}.id"))
            params.append(self.model)
        if self.flag is not None:
            clauses.append(FLAGS[self.flag][1].format(t=t))
        window, bounds = started_between(self.since_ns, self.until_ns, column=f"{t}started_ns")
        clauses.extend(window)
        params.extend(bounds)
        if self.text:
            clauses.append("(" + " OR ".join(f"{t}{c} LIKE ? ESCAPE '\\'" for c in ("id", "name", "project", "owner"))
                           + ")")
            params.extend([_like(self.text)] * 4)
        return clauses, params

    def where(self, table: str | None = None) -> tuple[str, list[Any]]:
        """The SQL ``" WHERE ..."`` (or ``""``) over ``runs`` and its parameters; ``since`` inclusive, ``until`` not."""
        clauses, params = self.clauses(table)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
