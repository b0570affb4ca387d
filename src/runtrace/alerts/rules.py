"""Evaluate the alert rules against the store: which runs changed, which rules now hold.

Why a cursor over ``spans`` rowids rather than a list handed over by the
receiver: every committed write (the HTTP receiver, an instrumented program
writing the same file, a verdict) adds spans rows with rowids above every
earlier commit's, so "the runs of spans past the cursor" is every run that
changed since the last look, from any process, and the cursor is kept in the
store beside the firings, in the same transaction: a restart neither loses a
change nor re-fires a rule. Firing is ``INSERT OR IGNORE`` on (rule, subject):
once per run and rule, or per project window and rule, whatever the order
spans arrive in. The conditions read the run's aggregated row, which the
store keeps commutative, so the verdict does not depend on arrival order.

This relies on ``spans`` rowids never being reused: nothing deletes spans
today; a future prune or VACUUM of that table must move the cursor with it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode

from .. import semconv as sc
from ..display import duration, money
from ..store.aggregate import NANO
from .config import AlertsConfig, Rule

__all__ = ["CURSOR_NAME", "Firing", "evaluate", "run_firing", "start_cursor", "window_start"]

CURSOR_NAME = "serve"
_SPAN_STEP = 20_000  # spans read per evaluation step, so a long backlog is worked through in bounded pieces
_FINISHED = (sc.OUTCOME_ACCEPTED, sc.OUTCOME_REJECTED, sc.OUTCOME_ABANDONED, sc.OUTCOME_ERROR,
             sc.OUTCOME_BUDGET_STOPPED)
_SECOND = 1_000_000_000
_SHARE_OUTCOME = {"rejected_share_over": sc.OUTCOME_REJECTED, "abandoned_share_over": sc.OUTCOME_ABANDONED}


@dataclass(frozen=True)
class Firing:
    """One rule holding for one subject (a run id, or ``project|window start``): one ``alerts`` row."""

    rule: str
    subject: str
    kind: str
    run_id: str | None
    project: str | None
    window_start_ns: int | None
    window_end_ns: int | None
    payload: dict[str, Any]


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns // _SECOND, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def window_start(started_ns: int, window_seconds: int) -> int:
    """The start of the window holding ``started_ns``: windows are aligned on the Unix epoch, so a
    1d window is a UTC day and a 1h window a clock hour."""
    size = window_seconds * _SECOND
    return started_ns // size * size


def _run_label(run: sqlite3.Row) -> str:
    name = run["name"]
    label = f"{name} ({run['id'][:12]})" if name else str(run["id"][:12])
    return label + (f" of {run['project']}" if run["project"] else "")


def _run_duration(run: sqlite3.Row) -> float | None:
    return None if run["ended_ns"] is None else max(0, run["ended_ns"] - run["started_ns"]) / _SECOND


def run_firing(rule: Rule, run: sqlite3.Row, base_url: str, now_ns: int) -> Firing | None:
    """The firing of a per-run ``rule`` for the aggregated ``run`` row, or None when it does not hold."""
    if rule.project is not None and run["project"] != rule.project:
        return None
    if rule.owner is not None and run["owner"] != rule.owner:
        return None
    cost = run["cost_nusd"] / NANO
    seconds = _run_duration(run)
    figures: dict[str, Any] = {"cost_usd": cost, "duration_s": seconds, "llm_calls": run["llm_calls"],
                               "tool_calls": run["tool_calls"], "outcome": run["outcome"],
                               "stop_reason": run["stop_reason"]}
    label = _run_label(run)
    if rule.when == "loop_detected":
        if not run["loop_detected"]:
            return None
        calls = run["tool_calls"]
        what = f"run {label} is in a loop ({calls} tool call{'s' if calls != 1 else ''}, {money(cost)} so far)"
    elif rule.when == "budget_stopped":
        if run["outcome"] != sc.OUTCOME_BUDGET_STOPPED and not run["stop_reason"]:
            return None
        what = f"run {label} was stopped by its budget or a cap ({run['stop_reason'] or 'budget'}) at {money(cost)}"
    elif rule.when == "run_longer_than":
        assert rule.threshold is not None
        if seconds is None or seconds <= rule.threshold:
            return None
        figures["threshold_s"] = rule.threshold
        what = f"run {label} took {duration(seconds)}, over {duration(rule.threshold)}"
    elif rule.when == "run_cost_over":
        assert rule.threshold is not None
        if cost <= rule.threshold:
            return None
        figures["threshold_usd"] = rule.threshold
        what = f"run {label} cost {money(cost)}, over {money(rule.threshold)}"
    else:  # pragma: no cover - config.py admits only the kinds above
        raise ValueError(f"not a per-run rule: {rule.when!r}")
    url = f"{base_url}/runs/{quote(run['id'], safe='')}"
    payload = {
        "text": f"runtrace alert \u201c{rule.name}\u201d: {what}. {url}",
        "key": f"{rule.name}|{run['id']}", "rule": rule.name, "when": rule.when, "run_id": run["id"],
        "run_name": run["name"], "project": run["project"], "owner": run["owner"], "figures": figures,
        "url": url, "fired_at": _iso(now_ns),
    }
    return Firing(rule.name, run["id"], rule.when, run["id"], run["project"], None, None, payload)


def _window_firing(conn: sqlite3.Connection, rule: Rule, project: str, start_ns: int, base_url: str,
                   now_ns: int) -> Firing | None:
    assert rule.window_seconds is not None and rule.threshold is not None
    end_ns = start_ns + rule.window_seconds * _SECOND
    finished_list = ", ".join(f"'{o}'" for o in _FINISHED)
    share_outcome = _SHARE_OUTCOME.get(rule.when, "")
    row = conn.execute(
        f"SELECT count(*), coalesce(sum(outcome IN ({finished_list})), 0), coalesce(sum(outcome = ?), 0), "
        "total(cost_nusd) FROM runs WHERE project = ? AND started_ns >= ? AND started_ns < ?",
        (share_outcome, project, start_ns, end_ns)).fetchone()
    runs, finished, matching, spend = int(row[0]), int(row[1]), int(row[2]), row[3] / NANO
    window = f"the {rule.window} window from {_iso(start_ns)}"
    figures: dict[str, Any] = {"runs": runs, "finished_runs": finished, "cost_usd": spend}
    query: dict[str, str] = {"project": project, "since": _iso(start_ns), "until": _iso(end_ns)}
    if rule.when in _SHARE_OUTCOME:
        if finished < rule.min_runs or 100 * matching <= rule.threshold * finished:
            return None
        share = 100 * matching / finished
        figures.update({share_outcome + "_runs": matching, "share_percent": share,
                        "threshold_percent": rule.threshold, "min_runs": rule.min_runs})
        query["outcome"] = share_outcome
        what = (f"{matching} of {finished} finished runs of {project} were {share_outcome} in {window}: "
                f"{share:.1f}%, over {rule.threshold:g}%")
    elif rule.when == "project_spend_over":
        if spend <= rule.threshold:
            return None
        figures["threshold_usd"] = rule.threshold
        what = f"{project} spent {money(spend)} in {window} ({runs} runs), over {money(rule.threshold)}"
    else:  # pragma: no cover
        raise ValueError(f"not a window rule: {rule.when!r}")
    url = f"{base_url}/?{urlencode(query)}"
    subject = f"{project}|{_iso(start_ns)}"
    payload = {
        "text": f"runtrace alert \u201c{rule.name}\u201d: {what}. {url}",
        "key": f"{rule.name}|{subject}", "rule": rule.name, "when": rule.when, "run_id": None,
        "project": project, "window": {"start": _iso(start_ns), "end": _iso(end_ns), "length": rule.window},
        "figures": figures, "url": url, "fired_at": _iso(now_ns),
    }
    return Firing(rule.name, subject, rule.when, None, project, start_ns, end_ns, payload)


def _firings(conn: sqlite3.Connection, config: AlertsConfig, run_ids: Iterable[str], base_url: str,
             now_ns: int) -> list[Firing]:
    ids = json.dumps(sorted(set(run_ids)))
    runs = conn.execute("SELECT * FROM runs WHERE id IN (SELECT value FROM json_each(?)) ORDER BY started_ns, id",
                        (ids,)).fetchall()
    out: list[Firing] = []
    for rule in config.rules:
        if rule.per_run:
            out.extend(f for f in (run_firing(rule, run, base_url, now_ns) for run in runs) if f is not None)
            continue
        assert rule.window_seconds is not None
        windows = sorted({(run["project"], window_start(run["started_ns"], rule.window_seconds)) for run in runs
                          if run["project"] is not None and rule.project in (None, run["project"])})
        for project, start in windows:
            firing = _window_firing(conn, rule, project, start, base_url, now_ns)
            if firing is not None:
                out.append(firing)
    return out


def _record(conn: sqlite3.Connection, firings: list[Firing], cursor: int, now_ns: int) -> int:
    """Insert the firings not recorded yet and move the cursor, in one transaction; return how many were new."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        before = conn.total_changes
        conn.executemany(
            "INSERT OR IGNORE INTO alerts (rule, subject, kind, run_id, project, window_start_ns, window_end_ns, "
            "fired_ns, payload, next_attempt_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(f.rule, f.subject, f.kind, f.run_id, f.project, f.window_start_ns, f.window_end_ns, now_ns,
              json.dumps(f.payload, ensure_ascii=False), now_ns) for f in firings])
        new = conn.total_changes - before
        conn.execute("INSERT INTO alert_cursor (name, span_rowid) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
                     "SET span_rowid = max(span_rowid, excluded.span_rowid)", (CURSOR_NAME, cursor))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return new


def start_cursor(conn: sqlite3.Connection, now_ns: int) -> None:
    """Give a store its cursor, at the newest span, if it has none: runs recorded before alerts
    were switched on do not fire. ``serve`` calls it before it takes a request, so a span that
    arrives at start-up is after the cursor, never folded into it unseen."""
    if conn.execute("SELECT 1 FROM alert_cursor WHERE name = ?", (CURSOR_NAME,)).fetchone() is None:
        top = int(conn.execute("SELECT coalesce(max(rowid), 0) FROM spans").fetchone()[0])
        _record(conn, [], top, now_ns)  # max(): another process that got there first keeps its cursor


def evaluate(conn: sqlite3.Connection, config: AlertsConfig, base_url: str, now_ns: int) -> int:
    """Evaluate every rule for the runs changed since the cursor; return the number of new firings.

    ``conn`` is a writable connection in autocommit mode. A store with no cursor
    yet gets one first (:func:`start_cursor`), and nothing fires that round.
    """
    row = conn.execute("SELECT span_rowid FROM alert_cursor WHERE name = ?", (CURSOR_NAME,)).fetchone()
    if row is None:
        start_cursor(conn, now_ns)
        return 0
    top = int(conn.execute("SELECT coalesce(max(rowid), 0) FROM spans").fetchone()[0])
    cursor = int(row[0])
    new = 0
    while cursor < top:
        upto = min(top, cursor + _SPAN_STEP)
        run_ids = [r[0] for r in conn.execute(
            "SELECT DISTINCT run_id FROM spans WHERE rowid > ? AND rowid <= ? AND run_id IS NOT NULL",
            (cursor, upto))]
        new += _record(conn, _firings(conn, config, run_ids, base_url, now_ns), upto, now_ns)
        cursor = upto
    return new
