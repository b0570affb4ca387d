"""``report_rollup``: the report by model / provider, summed per (group, day, outcome) as runs change.

Why: ``runtrace report --by model`` grouped every ``run_models`` row by run and
joined each to its run (100,000 rows on 1,000,000 spans: 180 ms). The rollup
holds the same sums per (dimension, group, UTC day of the run's start, outcome),
a few hundred rows, so the report reads it instead.

It is kept by triggers on ``runs`` and ``run_models``, so it changes in the same
transaction as the tables it sums, whoever writes them (ingest, verdicts, the
re-read recount). The invariant, for every run R and every group G among R's
``run_models`` rows (G = the model, or the provider; ``(none)`` when empty)::

    rollup[dim, G, day(R.started_ns), R.outcome] += (1 run, R's cost/calls/unpriced in G,
                                                     R.tool_calls, R.repeated_reads)

A change to a run row takes its old contribution back and adds the new one (a
verdict moves it to another outcome, an earlier span to another day); a new or
grown ``run_models`` row adds its own sums (and the run itself when it is the
first row of its group for that run). So the rollup always equals that sum over
the current rows, in any order of arrival; ``tests/test_store_rollup.py`` checks
it against the join on random stores.
"""

from __future__ import annotations

import sqlite3

__all__ = ["DAY_NS", "DIMENSIONS", "NONE_LABEL", "create", "day_of"]

DAY_NS = 86_400 * 1_000_000_000
DIMENSIONS = ("model", "provider")
NONE_LABEL = "(none)"
_SUMS = ("runs", "cost_nusd", "llm_calls", "tool_calls", "repeated_reads", "unpriced_calls")


def day_of(ns: int) -> int:
    """The UTC day number of a time (floor division, as ``_DAY_SQL`` computes it)."""
    return ns // DAY_NS


def _day_sql(x: str) -> str:
    # SQLite's integer division truncates toward zero; floor it for times before 1970.
    return f"(CASE WHEN {x} >= 0 THEN {x} / {DAY_NS} ELSE ({x} - {DAY_NS - 1}) / {DAY_NS} END)"


def _group_sql(column: str) -> str:
    return f"coalesce(nullif({column}, ''), '{NONE_LABEL}')"


_UPSERT = (" ON CONFLICT (dim, grp, day, outcome) DO UPDATE SET "
           + ", ".join(f"{c} = {c} + excluded.{c}" for c in _SUMS))
_INSERT = f"INSERT INTO report_rollup (dim, grp, day, outcome, {', '.join(_SUMS)}) "


def _run_contribution(dim: str, row: str, sign: str) -> str:
    """Add (sign '') or take back (sign '-') the contribution of run ``row`` (NEW or OLD) to ``dim``."""
    g = _group_sql(f"m.{dim}")
    return (_INSERT + f"SELECT '{dim}', {g} AS g, {_day_sql(f'{row}.started_ns')}, {row}.outcome, {sign}1, "
            f"{sign}sum(m.cost_nusd), {sign}sum(m.llm_calls), {sign}{row}.tool_calls, {sign}{row}.repeated_reads, "
            f"{sign}sum(m.unpriced_calls) FROM run_models m WHERE m.run_id = {row}.id GROUP BY g" + _UPSERT + ";")


def _model_row(dim: str, row: str, sign: str, first: str) -> str:
    """Add/take back one ``run_models`` row; ``first`` is a SQL condition: the run joins/leaves the group."""
    return (_INSERT + f"SELECT '{dim}', {_group_sql(f'{row}.{dim}')}, {_day_sql('r.started_ns')}, r.outcome, "
            f"{sign}({first}), {sign}{row}.cost_nusd, {sign}{row}.llm_calls, {sign}({first}) * r.tool_calls, "
            f"{sign}({first}) * r.repeated_reads, {sign}{row}.unpriced_calls FROM runs r WHERE r.id = {row}.run_id"
            + _UPSERT + ";")


def _others_in_group(dim: str, row: str) -> str:
    """How many other ``run_models`` rows of the same run fall in the same group as ``row``."""
    return (f"(SELECT count(*) FROM run_models x WHERE x.run_id = {row}.run_id AND "
            f"{_group_sql(f'x.{dim}')} = {_group_sql(f'{row}.{dim}')} AND "
            f"(x.provider, x.model) != ({row}.provider, {row}.model))")


def create(conn: sqlite3.Connection) -> None:
    """Create the table and its triggers, and fill it from the stored runs (inside a migration)."""
    conn.execute(f"""CREATE TABLE report_rollup (
        dim TEXT NOT NULL, grp TEXT NOT NULL, day INTEGER NOT NULL, outcome TEXT NOT NULL,
        {', '.join(f'{c} INTEGER NOT NULL DEFAULT 0' for c in _SUMS)},
        PRIMARY KEY (dim, grp, day, outcome)) WITHOUT ROWID""")
    for dim in DIMENSIONS:
        g = _group_sql(dim)
        conn.execute(
            _INSERT + f"SELECT '{dim}', rm.g, {_day_sql('r.started_ns')} AS d, r.outcome, count(*), sum(rm.c), "
            "sum(rm.l), sum(r.tool_calls), sum(r.repeated_reads), sum(rm.u) "
            f"FROM (SELECT run_id, {g} AS g, sum(cost_nusd) AS c, sum(llm_calls) AS l, sum(unpriced_calls) AS u "
            "FROM run_models GROUP BY run_id, g) rm JOIN runs r ON r.id = rm.run_id "
            "WHERE true GROUP BY rm.g, d, r.outcome")
    every = " ".join
    conn.execute("CREATE TRIGGER report_rollup_run_insert AFTER INSERT ON runs BEGIN "
                 + every(_run_contribution(d, "NEW", "") for d in DIMENSIONS) + " END")
    conn.execute("CREATE TRIGGER report_rollup_run_update AFTER UPDATE ON runs WHEN "
                 "OLD.outcome IS NOT NEW.outcome OR OLD.started_ns IS NOT NEW.started_ns OR "
                 "OLD.tool_calls IS NOT NEW.tool_calls OR OLD.repeated_reads IS NOT NEW.repeated_reads "
                 "OR OLD.id IS NOT NEW.id BEGIN "
                 + every(_run_contribution(d, "OLD", "-") for d in DIMENSIONS) + " "
                 + every(_run_contribution(d, "NEW", "") for d in DIMENSIONS) + " END")
    conn.execute("CREATE TRIGGER report_rollup_run_delete AFTER DELETE ON runs BEGIN "
                 + every(_run_contribution(d, "OLD", "-") for d in DIMENSIONS) + " END")
    conn.execute("CREATE TRIGGER report_rollup_model_insert AFTER INSERT ON run_models BEGIN "
                 + every(_model_row(d, "NEW", "", f"{_others_in_group(d, 'NEW')} = 0") for d in DIMENSIONS)
                 + " END")
    # An update is the old row taken back and the new one added, with the group
    # membership of each judged against the run's other rows (which do not change).
    # Nothing renames a run_models row; one that tried would break that, so it is refused.
    conn.execute("CREATE TRIGGER report_rollup_model_rekey BEFORE UPDATE OF run_id, provider, model ON run_models "
                 "WHEN OLD.run_id IS NOT NEW.run_id OR OLD.provider IS NOT NEW.provider OR OLD.model IS NOT NEW.model "
                 "BEGIN SELECT RAISE(ABORT, 'run_models rows are never re-keyed (store/rollup.py)'); END")
    conn.execute("CREATE TRIGGER report_rollup_model_update AFTER UPDATE ON run_models BEGIN "
                 + every(_model_row(d, "OLD", "-", f"{_others_in_group(d, 'OLD')} = 0") for d in DIMENSIONS)
                 + " "
                 + every(_model_row(d, "NEW", "", f"{_others_in_group(d, 'NEW')} = 0") for d in DIMENSIONS)
                 + " END")
    conn.execute("CREATE TRIGGER report_rollup_model_delete AFTER DELETE ON run_models BEGIN "
                 + every(_model_row(d, "OLD", "-", f"{_others_in_group(d, 'OLD')} = 0") for d in DIMENSIONS)
                 + " END")
