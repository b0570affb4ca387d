"""``runtrace report``: what the runs of a period cost, per accepted run, by project/owner/model/provider.

Pure reads over the store's ``runs`` and ``run_models`` tables; the command in
``cli.serve`` only renders the result. The unit is the accepted run: cost per
accepted run is *all* the group's spend (wasted runs included) divided by its
accepted runs, which is what a team pays for each piece of work it keeps.

Grouping by model or provider counts a run under every model it used, with the
cost, calls and unpriced calls of that model only; so those groups do not add up
to the total (the total row is computed over the runs themselves). Runs with no
LLM call appear in no model group.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import semconv
from .store.aggregate import NANO
from .store.db import Store
from .store.filters import RunFilter, started_between
from .store.rollup import DAY_NS, day_of
from .store.timespec import iso, to_ns

__all__ = ["GROUPINGS", "OUTCOME_ORDER", "Report", "ReportRow", "build_report"]

GROUPINGS = ("project", "owner", "model", "provider")
OUTCOME_ORDER = (semconv.OUTCOME_ACCEPTED, semconv.OUTCOME_REJECTED, semconv.OUTCOME_ABANDONED,
                 semconv.OUTCOME_BUDGET_STOPPED, semconv.OUTCOME_ERROR, semconv.OUTCOME_OPEN,
                 semconv.OUTCOME_UNFINISHED)
NONE_LABEL = "(none)"


@dataclass(frozen=True)
class ReportRow:
    group: str | None  # None on the total row
    runs: int
    outcomes: Mapping[str, int]  # every outcome in OUTCOME_ORDER, zeros included
    cost_usd: float
    llm_calls: int
    tool_calls: int
    repeated_reads: int
    unpriced_calls: int

    @property
    def accepted(self) -> int:
        return self.outcomes[semconv.OUTCOME_ACCEPTED]

    @property
    def cost_per_accepted_run(self) -> float | None:
        return self.cost_usd / self.accepted if self.accepted else None

    @property
    def abandoned_rate(self) -> float | None:
        return self.outcomes[semconv.OUTCOME_ABANDONED] / self.runs if self.runs else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group, "runs": self.runs, "outcomes": dict(self.outcomes),
            "cost_usd": self.cost_usd, "cost_per_accepted_run": self.cost_per_accepted_run,
            "abandoned_rate": self.abandoned_rate, "llm_calls": self.llm_calls, "tool_calls": self.tool_calls,
            "repeated_reads": self.repeated_reads, "unpriced_calls": self.unpriced_calls,
        }


@dataclass(frozen=True)
class Report:
    by: str | None
    since: datetime | None
    until: datetime | None
    groups: list[ReportRow]  # biggest spend first; empty without ``by``
    total: ReportRow

    def as_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "since": iso(to_ns(self.since)) if self.since else None,
            "until": iso(to_ns(self.until)) if self.until else None,
            "groups": [g.as_dict() for g in self.groups],
            "total": self.total.as_dict(),
        }


_OUTCOME_SUMS = ", ".join(f"coalesce(sum(runs.outcome = '{o}'), 0)" for o in OUTCOME_ORDER)


def _row(group: str | None, r: Any) -> ReportRow:
    n = len(OUTCOME_ORDER)
    return ReportRow(group=group, runs=r[0], outcomes=dict(zip(OUTCOME_ORDER, r[1:1 + n], strict=True)),
                     cost_usd=r[1 + n] / NANO, llm_calls=r[2 + n], tool_calls=r[3 + n],
                     repeated_reads=r[4 + n], unpriced_calls=r[5 + n])


def _period(since_ns: int | None, until_ns: int | None) -> tuple[str, list[Any]]:
    """The runs of [since, until): the one RunFilter (store/filters.py), qualified for the run_models join."""
    return RunFilter(since_ns=since_ns, until_ns=until_ns).where("runs")


def build_report(store: Store, *, since: datetime | None = None, until: datetime | None = None,
                 by: str | None = None) -> Report:
    """The report for runs that started in [since, until)."""
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(GROUPINGS)}")
    clause, params = _period(None if since is None else to_ns(since), None if until is None else to_ns(until))
    sums = ("coalesce(sum(runs.tool_calls), 0), coalesce(sum(runs.repeated_reads), 0)")
    total_row = store.execute(
        f"SELECT count(*), {_OUTCOME_SUMS}, total(runs.cost_nusd), coalesce(sum(runs.llm_calls), 0), "
        f"{sums}, coalesce(sum(runs.unpriced_calls), 0) FROM runs{clause}", params)[0]
    total = _row(None, total_row)
    groups: list[ReportRow] = []
    if by in ("project", "owner"):
        rows = store.execute(
            f"SELECT coalesce(runs.{by}, '{NONE_LABEL}') AS g, count(*), {_OUTCOME_SUMS}, total(runs.cost_nusd), "
            f"sum(runs.llm_calls), {sums}, sum(runs.unpriced_calls) FROM runs{clause} GROUP BY g", params)
        groups = [_row(r[0], tuple(r)[1:]) for r in rows]
    elif by in ("model", "provider"):
        groups = _by_model_or_provider(store, by, to_ns(since) if since is not None else None,
                                       to_ns(until) if until is not None else None)
    groups.sort(key=lambda g: (-g.cost_usd, g.group or ""))
    return Report(by=by, since=since, until=until, groups=groups, total=total)


def _exact_groups(store: Store, by: str, since_ns: int | None, until_ns: int | None) -> list[ReportRow]:
    """By model/provider from ``run_models`` joined to ``runs`` (for a part of a day the rollup cannot split)."""
    clause, params = _period(since_ns, until_ns)
    sums = "coalesce(sum(runs.tool_calls), 0), coalesce(sum(runs.repeated_reads), 0)"
    # One row per (run, group) first: a run with two models of one provider counts once for it.
    rows = store.execute(
        f"WITH rm AS (SELECT run_id, coalesce(nullif({by}, ''), '{NONE_LABEL}') AS g, total(cost_nusd) AS c, "
        "sum(llm_calls) AS l, sum(unpriced_calls) AS u FROM run_models GROUP BY run_id, g) "
        f"SELECT rm.g, count(*), {_OUTCOME_SUMS}, total(rm.c), sum(rm.l), {sums}, sum(rm.u) "
        f"FROM rm JOIN runs ON runs.id = rm.run_id{clause} GROUP BY rm.g", params)
    return [_row(r[0], tuple(r)[1:]) for r in rows]


_ROLLUP_OUTCOMES = ", ".join(f"coalesce(sum(CASE WHEN outcome = '{o}' THEN runs END), 0)" for o in OUTCOME_ORDER)


def _rollup_groups(store: Store, by: str, first_day: int | None, end_day: int | None) -> list[ReportRow]:
    """By model/provider for runs that started on whole UTC days [first_day, end_day), from ``report_rollup``."""
    window, bounds = started_between(first_day, end_day, column="day")
    where, params = ["dim = ?", *window], [by, *bounds]
    rows = store.execute(
        f"SELECT grp, sum(runs), {_ROLLUP_OUTCOMES}, total(cost_nusd), sum(llm_calls), sum(tool_calls), "
        f"sum(repeated_reads), sum(unpriced_calls) FROM report_rollup WHERE {' AND '.join(where)} "
        "GROUP BY grp HAVING sum(runs) > 0", params)
    return [_row(r[0], tuple(r)[1:]) for r in rows]


def _add(a: ReportRow, b: ReportRow) -> ReportRow:
    return ReportRow(group=a.group, runs=a.runs + b.runs,
                     outcomes={o: a.outcomes[o] + b.outcomes[o] for o in OUTCOME_ORDER},
                     cost_usd=a.cost_usd + b.cost_usd, llm_calls=a.llm_calls + b.llm_calls,
                     tool_calls=a.tool_calls + b.tool_calls, repeated_reads=a.repeated_reads + b.repeated_reads,
                     unpriced_calls=a.unpriced_calls + b.unpriced_calls)


def _by_model_or_provider(store: Store, by: str, since_ns: int | None, until_ns: int | None) -> list[ReportRow]:
    """Whole days from the rollup, the partial days at either end of the period from the join."""
    first_day = None if since_ns is None else -(-since_ns // DAY_NS)  # the first whole day in the period
    end_day = None if until_ns is None else day_of(until_ns)
    if first_day is not None and end_day is not None and first_day >= end_day:
        return _exact_groups(store, by, since_ns, until_ns)  # less than a whole day
    parts = [_rollup_groups(store, by, first_day, end_day)]
    if since_ns is not None and first_day is not None and since_ns < first_day * DAY_NS:
        parts.append(_exact_groups(store, by, since_ns, first_day * DAY_NS))
    if until_ns is not None and end_day is not None and end_day * DAY_NS < until_ns:
        parts.append(_exact_groups(store, by, end_day * DAY_NS, until_ns))
    merged: dict[str | None, ReportRow] = {}
    for part in parts:
        for row in part:
            merged[row.group] = _add(merged[row.group], row) if row.group in merged else row
    return list(merged.values())
