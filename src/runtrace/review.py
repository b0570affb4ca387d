"""The weekly review (``runtrace report --format markdown|html``): was this period's spend worth it?

What goes in, gathered here from the store with :func:`runtrace.report.build_report`
and :func:`runtrace.reprice.reprice` (so the figures are exactly those of
``runtrace report`` and the What-if page); :mod:`runtrace.review_render` turns
it into Markdown or a self-contained HTML page. The previous period is the one
of the same length that ends where this one starts, so "the change" compares
like with like.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import semconv
from .report import Report, ReportRow, build_report
from .reprice import reprice
from .store.aggregate import NANO
from .store.db import Store
from .store.timespec import to_ns

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_SMALL_WORK_MODEL", "DEAREST_LIMIT", "FlaggedRun", "Review", "SmallWork",
           "build_review"]

DEFAULT_BASE_URL = "http://127.0.0.1:4318"
DEFAULT_SMALL_WORK_MODEL = "gpt-5-mini"
DEAREST_LIMIT = 5


@dataclass(frozen=True)
class FlaggedRun:
    """A run the review names: a dear rejected one, or one that looped."""

    id: str
    name: str | None
    project: str | None
    owner: str | None
    cost_usd: float
    reason: str | None = None


@dataclass(frozen=True)
class SmallWork:
    """Small runs (few calls, few tokens) done on one set of models, and what the cheaper model saves."""

    models: str
    runs: int
    actual_usd: float
    repriced_usd: float

    @property
    def saving_usd(self) -> float:
        return self.actual_usd - self.repriced_usd


@dataclass
class Review:
    since: datetime
    until: datetime
    previous_since: datetime
    total: ReportRow
    previous_total: ReportRow
    projects: list[tuple[ReportRow, ReportRow | None]]  # (this period, the same group in the previous one)
    owners: list[tuple[ReportRow, ReportRow | None]]
    dearest_rejected: list[FlaggedRun]
    loops: list[FlaggedRun]
    loop_runs: int
    loop_cost_usd: float
    reread_runs: int
    repeated_reads: int
    repeated_read_tokens: int
    reread_cost_usd: float
    small_work_model: str
    small_work: list[SmallWork] = field(default_factory=list)
    small_work_note: str | None = None  # why there is no small-work figure (the target has no price)
    small_calls: int = 3
    small_tokens: int = 20_000
    frontier_ratio: float = 4.0
    base_url: str = DEFAULT_BASE_URL

    def run_url(self, run_id: str) -> str:
        from urllib.parse import quote

        return f"{self.base_url}/runs/{quote(run_id, safe='')}"


def _paired(current: Report, previous: Report) -> list[tuple[ReportRow, ReportRow | None]]:
    before = {g.group: g for g in previous.groups}
    return [(g, before.get(g.group)) for g in current.groups]


def _period(since: datetime, until: datetime) -> tuple[str, list[int]]:
    return "runs.started_ns >= ? AND runs.started_ns < ?", [to_ns(since), to_ns(until)]


def build_review(store: Store, *, since: datetime, until: datetime | None = None,
                 base_url: str = DEFAULT_BASE_URL, small_work_model: str = DEFAULT_SMALL_WORK_MODEL,
                 small_work_provider: str | None = None, small_calls: int = 3, small_tokens: int = 20_000,
                 frontier_ratio: float = 4.0) -> Review:
    """The review of runs that started in [since, until) (until: now), beside the period before."""
    until = until or datetime.now(timezone.utc)
    if until <= since:
        raise ValueError(f"the period is empty: it starts {since.isoformat()} and ends {until.isoformat()}")
    previous_since = since - (until - since)
    by_project = build_report(store, since=since, until=until, by="project")
    by_owner = build_report(store, since=since, until=until, by="owner")
    prev_project = build_report(store, since=previous_since, until=since, by="project")
    prev_owner = build_report(store, since=previous_since, until=since, by="owner")
    where, params = _period(since, until)
    dearest = [FlaggedRun(r["id"], r["name"], r["project"], r["owner"], r["cost_nusd"] / NANO, r["outcome_reason"])
               for r in store.execute(
                   f"SELECT id, name, project, owner, cost_nusd, outcome_reason FROM runs WHERE {where} "
                   "AND outcome = ? ORDER BY cost_nusd DESC, id LIMIT ?",
                   [*params, semconv.OUTCOME_REJECTED, DEAREST_LIMIT])]
    loops = [FlaggedRun(r["id"], r["name"], r["project"], r["owner"], r["cost_nusd"] / NANO, r["stop_reason"])
             for r in store.execute(
                 f"SELECT id, name, project, owner, cost_nusd, stop_reason FROM runs WHERE {where} "
                 "AND loop_detected = 1 ORDER BY cost_nusd DESC, id LIMIT ?", [*params, DEAREST_LIMIT])]
    loop_row = store.execute(f"SELECT count(*), total(cost_nusd) FROM runs WHERE {where} AND loop_detected = 1",
                             params)[0]
    reread = store.execute(
        f"SELECT count(*), coalesce(sum(repeated_reads), 0), coalesce(sum(repeated_read_tokens), 0), "
        f"total(cost_nusd) FROM runs WHERE {where} AND repeated_reads > 0", params)[0]
    review = Review(
        since=since, until=until, previous_since=previous_since, total=by_project.total,
        previous_total=prev_project.total, projects=_paired(by_project, prev_project),
        owners=_paired(by_owner, prev_owner), dearest_rejected=dearest, loops=loops, loop_runs=int(loop_row[0]),
        loop_cost_usd=loop_row[1] / NANO, reread_runs=int(reread[0]), repeated_reads=int(reread[1]),
        repeated_read_tokens=int(reread[2]), reread_cost_usd=reread[3] / NANO, small_work_model=small_work_model,
        small_calls=small_calls, small_tokens=small_tokens, frontier_ratio=frontier_ratio,
        base_url=base_url.rstrip("/"))
    try:
        result = reprice(store, model=small_work_model, provider=small_work_provider, since=since, until=until,
                         small_calls=small_calls, small_tokens=small_tokens, frontier_ratio=frontier_ratio)
    except ValueError as exc:
        review.small_work_note = str(exc)
        return review
    groups: dict[str, list[float]] = {}
    for c in result.routing:
        key = ", ".join(sorted(c.models))
        entry = groups.setdefault(key, [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += c.actual_usd
        entry[2] += c.repriced_usd
    review.small_work = sorted((SmallWork(k, int(v[0]), v[1], v[2]) for k, v in groups.items()),
                               key=lambda s: (-s.saving_usd, s.models))
    return review
