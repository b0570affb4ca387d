"""The ``runtrace`` command: runs, show, demo (and serve/report/reprice/prices/forward when their parts are installed).

Data goes to stdout, messages to stderr; every user error is a one-line
``ClickException`` (a missing store, an unknown run id), never a traceback.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import click

from . import semconv

STORE_OPTION = click.option(
    "--store", "store_path", type=click.Path(dir_okay=False), envvar=semconv.ENV_STORE, show_envvar=True,
    help="SQLite store file [default: ~/.runtrace/runtrace.db].")
FORMAT_OPTION = click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
                             show_default=True, help="Output format.")

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(value: str | None) -> datetime | None:
    """'24h', '7d', '30m' (ago), or an ISO date/time (UTC when no zone is given)."""
    if value is None:
        return None
    match = _RELATIVE.match(value.strip())
    if match:
        return datetime.now(timezone.utc) - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a duration like 24h / 7d nor an ISO date") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def open_store(store_path: str | None) -> Any:
    from .store.db import Store
    from .store.errors import StoreNotFoundError

    try:
        return Store.open(store_path, create=False)
    except StoreNotFoundError as exc:
        raise click.ClickException(f"{exc}. Run `runtrace demo` or instrument a program first.") from None


def _money(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:,.4f}" if value < 100 else f"${value:,.2f}"


def _tokens(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _duration(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}s" if value < 120 else f"{value / 60:.1f}m"


_OUTCOME_STYLE = {"accepted": "green", "rejected": "red", "error": "red", "budget_stopped": "magenta",
                  "abandoned": "yellow", "unfinished": "yellow", "open": "cyan"}


def runs_table(rows: list[dict[str, Any]], title: str | None = None) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("run")
    table.add_column("name", max_width=32, overflow="ellipsis")
    table.add_column("project")
    table.add_column("owner")
    table.add_column("outcome")
    table.add_column("cost", justify="right")
    table.add_column("in", justify="right")
    table.add_column("cached", justify="right")
    table.add_column("out", justify="right")
    table.add_column("llm", justify="right")
    table.add_column("tools", justify="right")
    table.add_column("flags")
    table.add_column("time", justify="right")
    for r in rows:
        flags = []
        if r["loop_detected"]:
            flags.append("[red]loop[/]")
        if r["repeated_reads"]:
            flags.append(f"[yellow]{r['repeated_reads']} re-read{'s' if r['repeated_reads'] != 1 else ''}[/]")
        if r.get("stop_reason"):
            flags.append(f"[magenta]stop:{r['stop_reason']}[/]")
        if r["unpriced_calls"]:
            flags.append(f"{r['unpriced_calls']} unpriced")
        style = _OUTCOME_STYLE.get(r["outcome"], "")
        cost = _money(r["cost_usd"]) + ("+?" if r["unpriced_calls"] else "")
        table.add_row(r["id"][:8], r["name"] or "-", r["project"] or "-", r["owner"] or "-",
                      f"[{style}]{r['outcome']}[/]" if style else r["outcome"], cost,
                      _tokens(r["input_tokens"]), _tokens(r["cached_input_tokens"]),
                      _tokens(r["output_tokens"]), str(r["llm_calls"]), str(r["tool_calls"]),
                      " ".join(flags), _duration(r["duration_s"]))
    return table


def console() -> Any:
    """A rich console; piped output gets a wide page instead of rich's 80-column default."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=180)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="runtrace")
def main() -> None:
    """What each agent run cost, whether it was worth it, and where it wasted money."""


@main.command("runs")
@STORE_OPTION
@click.option("--project", help="Only runs of this project.")
@click.option("--owner", help="Only runs of this owner.")
@click.option("--outcome", type=click.Choice(sorted(semconv.OUTCOMES)), help="Only runs with this outcome.")
@click.option("--since", help="Runs started since: 24h, 7d, or an ISO date.")
@click.option("-n", "--limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="How many runs (0 = all).")
@FORMAT_OPTION
def runs_command(store_path: str | None, project: str | None, owner: str | None, outcome: str | None,
                 since: str | None, limit: int, fmt: str) -> None:
    """List runs, newest first."""
    from .store.queries import list_runs

    store = open_store(store_path)
    try:
        rows = list_runs(store, project=project, owner=owner, outcome=outcome, since=parse_when(since),
                         limit=limit)
    finally:
        store.close()
    if fmt == "json":
        _print_json(rows)
        return
    if not rows:
        click.echo("no runs match", err=True)
        return
    console().print(runs_table(rows))


def _span_label(span: dict[str, Any]) -> str:
    from rich.markup import escape

    parts = [f"[bold]{escape(span['name'])}[/]"]
    if span["kind"] == "llm":
        usage = f"in {_tokens(span['input_tokens'])}"
        if span["cached_input_tokens"]:
            usage += f" (cached {_tokens(span['cached_input_tokens'])})"
        usage += f" / out {_tokens(span['output_tokens'])}"
        parts.append(f"[dim]{escape(str(span['model'] or '?'))}[/]  {usage}  "
                     + ("[yellow]unpriced[/]" if span["cost_usd"] is None else _money(span["cost_usd"])))
    attrs = span["attributes"]
    if attrs.get(semconv.TOOL_REPEATED_READ):
        parts.append(f"[yellow]repeated read x{attrs.get(semconv.TOOL_REPEAT_COUNT, '?')}[/]")
    if attrs.get(semconv.LOOP_DETECTED):
        parts.append("[red]loop[/]")
    if span["status"] == "ERROR":
        parts.append(f"[red]error {escape(str(attrs.get(semconv.ERROR_TYPE, '')))}[/]")
    start, end = span["start"], span["end"]
    if start and end:
        seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
        parts.append(f"[dim]{seconds * 1000:.0f} ms[/]")
    return "  ".join(parts)


@main.command("show")
@click.argument("run_id")
@STORE_OPTION
@FORMAT_OPTION
def show_command(run_id: str, store_path: str | None, fmt: str) -> None:
    """Show one run (an id or a unique prefix of one): its totals and span tree."""
    from rich.tree import Tree

    from .store.errors import AmbiguousRunIdError
    from .store.queries import get_run

    store = open_store(store_path)
    try:
        try:
            data = get_run(store, run_id)
        except AmbiguousRunIdError as exc:
            raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    if data is None:
        raise click.ClickException(f"no run {run_id!r} in {store.path}")
    if fmt == "json":
        _print_json(data)
        return
    out = console()
    out.print(runs_table([data], title=f"run {data['id']}"))
    by_parent: dict[str | None, list[dict[str, Any]]] = {}
    ids = {s["span_id"] for s in data["spans"]}
    for span in data["spans"]:
        parent = span["parent_span_id"] if span["parent_span_id"] in ids else None
        by_parent.setdefault(parent, []).append(span)
    tree = Tree(f"[bold]{data['name'] or data['id']}[/]")

    def add(node: Any, parent: str | None) -> None:
        for span in by_parent.get(parent, []):
            add(node.add(_span_label(span)), span["span_id"])

    add(tree, None)
    out.print(tree)


@main.command("demo")
@STORE_OPTION
@click.option("--quiet", is_flag=True, help="Only print the runs table.")
@click.option("--pace", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Simulated latency (seconds per 1,000 output tokens); 0 runs instantly.")
def demo_command(store_path: str | None, quiet: bool, pace: float) -> None:
    """Run a scripted coding agent against a built-in fake LLM and show its runs."""
    from . import demo
    from .store.queries import list_runs

    path = demo.run_demo(store_path, echo=None if quiet else lambda m: click.echo(m, err=True), pace=pace)
    store = open_store(path)
    try:
        rows = list_runs(store, limit=len(demo.SCRIPTS) + 20)
    finally:
        store.close()
    console().print(runs_table(rows, title=f"runs in {path}"))
    if not quiet:
        click.echo("\nNext: `runtrace show <run>` for one run's span tree, `runtrace serve` for the web UI.",
                   err=True)


def _attach_optional_commands() -> None:
    """Commands in modules of their own; one that cannot load still lists and says why."""
    for module, names in (("runtrace.cli_serve", ("serve", "report", "reprice")),
                          ("runtrace.cli_scale", ("prices", "forward")),
                          ("runtrace.cli_outcome", ("outcome",)), ("runtrace.cli_agents", ("agents",))):
        try:
            mod = __import__(module, fromlist=list(names))
        except ImportError as exc:
            missing = str(exc)
            for name in names:
                if name in main.commands:
                    continue

                @main.command(name, context_settings={"ignore_unknown_options": True,
                                                      "allow_extra_args": True})
                def _unavailable(missing: str = missing, name: str = name) -> None:
                    raise click.ClickException(
                        f"`runtrace {name}` could not be loaded ({missing}); reinstall runtrace")
            continue
        for name in names:
            command = getattr(mod, name, None)
            if isinstance(command, click.Command):
                main.add_command(command, name)


_attach_optional_commands()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

__all__ = ["main"]
