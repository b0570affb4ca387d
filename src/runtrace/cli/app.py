"""The ``runtrace`` command: runs, show, demo (and serve/report/reprice/prices/forward when their parts are installed).

Data goes to stdout, messages to stderr; every user error is a one-line
``ClickException`` (a missing store, an unknown run id), never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from types import ModuleType
from typing import Any

import click

from .. import semconv
from ..display import money
from . import output as cli_output
from . import tables as cli_tables
from .options import STORE_OPTION
from .tables import tokens

FORMAT_OPTION = click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
                             show_default=True, help="Output format.")
RUNS_FORMAT_OPTION = click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
                                  show_default=True, help="Output format (csv: one row per run, full ids).")

def parse_when(value: str | None) -> datetime | None:
    """'24h', '7d', '30m' (ago), or an ISO date/time (UTC when no zone is given); see store/timespec.py."""
    from ..store.timespec import TimeSpecError
    from ..store.timespec import parse_when as parse

    if value is None:
        return None
    try:
        return parse(value)
    except TimeSpecError as exc:
        raise click.BadParameter(str(exc)) from None


def open_store(store_path: str | None) -> Any:
    """The store for a command that only reads: read-only when the file cannot be written."""
    from ..store.db import Store
    from ..store.errors import StoreError, StoreNotFoundError

    try:
        return Store.open(store_path, create=False, readonly=None)
    except StoreNotFoundError as exc:
        raise click.ClickException(f"{exc}. Run `runtrace demo` or instrument a program first.") from None
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


class _Group(click.Group):
    """The ``runtrace`` group: a store that breaks mid-command is a one-line error, not a traceback.

    A truncated or corrupted file can open fine and fail on the first query
    (``database disk image is malformed``); every command gets the same message.
    """

    def invoke(self, ctx: click.Context) -> Any:
        import sqlite3

        from ..store.errors import StoreError

        try:
            return super().invoke(ctx)
        except (StoreError, sqlite3.DatabaseError) as exc:
            store = ctx.params.get("store_path") or "the store"
            raise click.ClickException(f"cannot read {store}: {cli_output.plain(exc)}") from None


def console() -> Any:
    """The CLI's one console (see :func:`runtrace.cli.output.console`)."""
    return cli_output.console()


def runs_table(rows: list[dict[str, Any]], title: str | None = None, *, width: int | None = None) -> Any:
    """The runs table for the console's width (see :mod:`runtrace.cli.tables`)."""
    return cli_tables.runs_table(rows, width=width or console().width, title=title)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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
@RUNS_FORMAT_OPTION
def runs_command(store_path: str | None, project: str | None, owner: str | None, outcome: str | None,
                 since: str | None, limit: int, fmt: str) -> None:
    """List runs, newest first."""
    from ..store.queries import list_runs

    store = open_store(store_path)
    try:
        rows = list_runs(store, project=project, owner=owner, outcome=outcome, since=parse_when(since),
                         limit=limit)
    finally:
        store.close()
    if fmt == "json":
        _print_json(rows)
        return
    if fmt == "csv":
        cli_output.write_csv(list(cli_tables.CSV_FIELDS), cli_tables.csv_rows(rows))
        return
    if not rows:
        click.echo("no runs match", err=True)
        return
    console().print(runs_table(rows))


def _span_label(span: dict[str, Any]) -> str:
    escape = cli_output.safe
    parts = [f"[bold]{escape(span['name'])}[/]"]
    if span["kind"] == "llm":
        usage = f"in {tokens(span['input_tokens'])}"
        if span["cached_input_tokens"]:
            usage += f" (cached {tokens(span['cached_input_tokens'])})"
        usage += f" / out {tokens(span['output_tokens'])}"
        cost = "[yellow]unpriced[/]" if span["cost_usd"] is None else money(span["cost_usd"])
        if not span["counted"]:  # another span of the same call counts it (store/innermost.py, siblings.py)
            cost = f"[dim strike]{cost}[/]  [dim]duplicate: another span counts this call[/]"
        parts.append(f"[dim]{escape(str(span['model'] or '?'))}[/]  {usage}  {cost}")
    attrs = span["attributes"]
    if attrs.get(semconv.TOOL_REPEATED_READ):
        parts.append(f"[yellow]repeated read x{escape(attrs.get(semconv.TOOL_REPEAT_COUNT, '?'))}[/]")
    if attrs.get(semconv.LOOP_DETECTED):
        parts.append("[red]loop[/]")
    if span["status"] == "ERROR":
        parts.append(f"[red]error {escape(str(attrs.get(semconv.ERROR_TYPE, '')))}[/]")
    start, end = span["start"], span["end"]
    if start and end:
        seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
        parts.append(f"[dim]{seconds * 1000:.0f} ms[/]")
    return "  ".join(parts)


def explanation_lines(run: dict[str, Any]) -> list[str]:
    """The run page's sentences as rich markup lines: what ended the run, verdict, budget, detections, unpriced.

    Every value from the spans goes through :func:`cli_output.safe`; the sentences
    are the ones :mod:`runtrace.explain` writes for the web page, capture rules included.
    """
    from .. import explain

    safe = cli_output.safe
    lines = [f"[bold red]{safe(line)}[/]" for line in explain.headline(run)]
    said = explain.verdict(run)
    if said is not None:
        lines.append(f"{'verdict' if run['outcome'] in semconv.VERDICTS else 'outcome'}: {safe(said)}")
    elif run["outcome"] == semconv.OUTCOME_OPEN:
        lines.append("verdict: none yet (the run ended without being accepted, rejected or abandoned)")
    elif run["outcome"] == semconv.OUTCOME_UNFINISHED:
        lines.append("outcome: unfinished (spans arrived but the run's own span never did)")
    total_s = run["duration_s"] if run["duration_s"] is not None else 0.0
    for gauge in explain.gauges(run, total_s):
        style = {"over": "red", "near": "yellow"}.get(gauge.level)
        text = f"budget: {safe(gauge.line)}"
        lines.append(f"[{style}]{text}[/]" if style else text)
    for found in explain.detections([span for span, _ in explain.tree_order(run["spans"])]):
        kind = "budget breach" if found.kind == "budget" else found.kind.replace("_", " ")
        lines.append(f"{safe(kind)}: {safe(found.sentence)} [dim]({safe(found.span_name)})[/]")
    for why in explain.unpriced(run):
        lines.append(f"[yellow]unpriced:[/] {safe(why.sentence)}")
    return lines


@main.command("show")
@click.argument("run_id")
@STORE_OPTION
@FORMAT_OPTION
def show_command(run_id: str, store_path: str | None, fmt: str) -> None:
    """Show one run (an id or a unique prefix of one): totals, what went wrong, budget, and span tree."""
    from rich.tree import Tree

    from ..store.errors import AmbiguousRunIdError
    from ..store.queries import get_run

    if not run_id.strip():
        raise click.BadParameter("give a run id or a unique prefix of one (see `runtrace runs`)",
                                 param_hint="RUN_ID")
    store = open_store(store_path)
    try:
        try:
            data = get_run(store, run_id.strip())
        except AmbiguousRunIdError as exc:
            raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    if data is None:
        raise click.ClickException(f"no run {cli_output.plain(repr(run_id))} in {store.path}")
    if fmt == "json":
        _print_json(data)
        return
    out = console()
    out.print(runs_table([data], title=f"run {data['id']}"))
    for line in explanation_lines(data):
        out.print(line, soft_wrap=True)
    by_parent: dict[str | None, list[dict[str, Any]]] = {}
    ids = {s["span_id"] for s in data["spans"]}
    for span in data["spans"]:
        parent = span["parent_span_id"] if span["parent_span_id"] in ids else None
        by_parent.setdefault(parent, []).append(span)
    tree = Tree(f"[bold]{cli_output.safe(data['name'] or data['id'])}[/]")

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
    from .. import demo
    from ..store.queries import list_runs

    earlier = _demo_runs_in(store_path)
    started = datetime.now(timezone.utc)
    path = demo.run_demo(store_path, echo=None if quiet else lambda m: click.echo(m, err=True), pace=pace)
    store = open_store(path)
    try:
        rows = list_runs(store, since=started, limit=0)
    finally:
        store.close()
    console().print(runs_table(rows, title=f"runs of this demo in {path}"))
    if earlier:
        click.echo(f"\nNote: {path} already held {earlier} demo runs from an earlier `runtrace demo`; "
                   f"this one added {len(rows)} more beside them (the table shows the new ones). "
                   "Use `--store` with a new file for a clean store.", err=True)
    if not quiet:
        click.echo("\nNext: `runtrace show <run>` for one run's span tree, `runtrace serve` for the web UI.",
                   err=True)


def _demo_runs_in(store_path: str | None) -> int:
    """How many runs of an earlier demo the store holds (0 when there is no store yet).

    Told by the scripts' run names: the service name is the host program's when
    the demo runs inside an already instrumented process.
    """
    from .. import _demo_providers, demo
    from ..store.db import Store
    from ..store.errors import StoreError

    names = sorted({script.name for script in demo.SCRIPTS} | {_demo_providers.NAME})
    try:
        with Store.open(store_path, create=False, readonly=None) as store:
            return int(store.execute(f"SELECT count(*) FROM runs WHERE name IN ({', '.join('?' * len(names))})",
                                     names)[0][0])
    except StoreError:
        return 0  # missing (created by the demo) or broken (the demo's own open says why)


def _serve_module() -> ModuleType:
    from . import serve

    return serve


def _scale_module() -> ModuleType:
    from . import scale

    return scale


def _outcome_module() -> ModuleType:
    from . import outcome

    return outcome


def _agents_module() -> ModuleType:
    from . import agents

    return agents


_OPTIONAL_COMMANDS: tuple[tuple[Callable[[], ModuleType], tuple[str, ...]], ...] = (
    (_serve_module, ("serve", "report", "reprice")), (_scale_module, ("prices", "forward")),
    (_outcome_module, ("outcome",)), (_agents_module, ("agents",)))


def _attach_optional_commands() -> None:
    """Commands in modules of their own; one whose dependencies fail to import still lists and says why."""
    for load, names in _OPTIONAL_COMMANDS:
        try:
            mod = load()
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
