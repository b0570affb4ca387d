"""``runtrace outcome``: give a verdict to a run from outside Python (a CI job, a shell script).

Works on the local store: an unknown run id is an error (exit code 2) and
writes nothing, so a typo never becomes a phantom accepted run. ``--pending``
lists the verdicts that arrived (through OTLP or ``record_outcome``) for runs
this store does not hold yet; they are not runs and are counted nowhere else.
"""

from __future__ import annotations

import json

import click

from .. import semconv
from .options import STORE_OPTION

__all__ = ["outcome"]


class UnknownRunExit(click.ClickException):
    """An unknown run id: a one-line message and exit code 2 (as for any bad argument)."""

    exit_code = 2


@click.command("outcome")
@click.argument("run_id", required=False)
@click.argument("verdict", required=False, type=click.Choice(sorted(semconv.VERDICTS)))
@click.option("--by", "by", metavar="WHO", help="Who gave the verdict (a person, 'ci', a bot).")
@click.option("--reason", metavar="TEXT", help="Why (shown with the run).")
@click.option("--pending", is_flag=True, help="List verdicts waiting for a run this store does not hold yet.")
@STORE_OPTION
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Output format of --pending.")
def outcome(run_id: str | None, verdict: str | None, by: str | None, reason: str | None, pending: bool,
            store_path: str | None, fmt: str) -> None:
    """Record VERDICT (accepted, rejected, abandoned) for the run RUN_ID (its full id)."""
    from ..store.errors import UnknownRunError
    from ..store.verdicts import list_pending, record_verdict
    from .app import open_store

    if pending:
        if run_id is not None:
            raise click.UsageError("--pending lists verdicts; it takes no RUN_ID or VERDICT")
        store = open_store(store_path)
        try:
            rows = list_pending(store, limit=0)
        finally:
            store.close()
        if fmt == "json":
            click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        elif not rows:
            click.echo("no pending verdicts", err=True)
        else:
            for r in rows:
                click.echo("  ".join([r["at"] or "-", r["run_id"], r["outcome"] or "-", r["by"] or "-",
                                      json.dumps(r["reason"]) if r["reason"] else "-"]))
        return
    if run_id is None or verdict is None:
        raise click.UsageError("give RUN_ID and VERDICT (accepted, rejected or abandoned), or --pending")
    store = open_store(store_path)
    try:
        record_verdict(store, run_id, verdict, by=by, reason=reason, service="runtrace-cli")
    except UnknownRunError as exc:
        raise UnknownRunExit(str(exc)) from None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    finally:
        store.close()
    click.echo(f"run {run_id}: {verdict}" + (f" by {by}" if by else ""), err=True)
