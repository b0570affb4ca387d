"""``runtrace prices export``/``list`` and ``runtrace forward``: the CLI side of the scale path.

Attached to the main ``runtrace`` group by ``runtrace.cli``; kept apart so that
the core CLI does not import the price export or the OTLP protobuf classes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import semconv
from .options import STORE_OPTION

__all__ = ["forward", "prices"]


@click.group("prices", context_settings={"help_option_names": ["-h", "--help"]})
def prices() -> None:
    """Price data the SDK uses, for other tools (ClickHouse at scale)."""


@prices.command("export")
@click.option("--format", "fmt", type=click.Choice(["clickhouse", "tsv"]), default="clickhouse", show_default=True,
              help="clickhouse: TRUNCATE + INSERT statements for clickhouse-client --multiquery; "
                   "tsv: rows for INSERT INTO otel.runtrace_prices FORMAT TabSeparated.")
@click.option("--table", default="otel.runtrace_prices", show_default=True,
              help="Table the SQL statements fill (clickhouse format only).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write to this file instead of stdout.")
def export(fmt: str, table: str, output: Path | None) -> None:
    """Export genai-prices' bundled table as rows of ClickHouse's runtrace_prices.

    \b
    runtrace prices export | clickhouse-client --multiquery
    """
    from ..pricing import GENAI_PRICES_TABLE
    from ..scale import prices as price_data

    rows = price_data.price_rows()
    text = price_data.to_clickhouse_sql(rows, table=table) if fmt == "clickhouse" else price_data.to_tsv(rows)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
    click.echo(f"{len(rows)} price rows ({GENAI_PRICES_TABLE})", err=True)


_PROBE_TOKENS = 100_000  # under every long-prompt price threshold; scaled to a price per million


def model_prices(pattern: str | None) -> list[tuple[str, str, float | None, float | None]]:
    """(provider, model, input $/MTok, output $/MTok) of every model genai-prices knows that matches.

    ``pattern`` is a glob when it has ``*``, ``?`` or ``[`` (matched against the
    model id and against ``provider:model``), else a case-insensitive substring of
    either. Prices come from the same Pricer the SDK uses, so a model listed with
    a price is one ``runtrace reprice --model`` accepts.
    """
    import fnmatch

    from genai_prices import data_snapshot

    from ..pricing import TokenUsage, default_pricer

    pricer = default_pricer()
    needle = (pattern or "").strip().lower()
    is_glob = any(c in needle for c in "*?[")
    found: list[tuple[str, str, float | None, float | None]] = []
    for provider in data_snapshot.get_snapshot().providers:
        for info in provider.models:
            names = (info.id.lower(), f"{provider.id}:{info.id}".lower())
            if needle and not (any(fnmatch.fnmatchcase(n, needle) for n in names) if is_glob
                               else any(needle in n for n in names)):
                continue
            price = pricer.price(TokenUsage(_PROBE_TOKENS, _PROBE_TOKENS), model=info.id, provider=provider.id)
            scale = 1_000_000 / _PROBE_TOKENS
            found.append((provider.id, info.id, None if price.input_usd is None else price.input_usd * scale,
                          None if price.output_usd is None else price.output_usd * scale))
    return sorted(found)


@prices.command("list")
@click.argument("pattern", required=False)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True,
              help="Output format.")
def list_prices(pattern: str | None, fmt: str) -> None:
    """Models genai-prices knows, with input/output $ per million tokens.

    PATTERN is a substring (``sonnet``) or a glob (``openai:gpt-4o*``) of the
    model id or provider:model. These are the names ``runtrace reprice --model``
    and the What-if page accept.
    """
    import json

    from .output import console, safe, write_csv

    rows = model_prices(pattern)
    if fmt == "json":
        click.echo(json.dumps([{"provider": p, "model": m, "input_usd_per_mtok": i, "output_usd_per_mtok": o}
                               for p, m, i, o in rows], indent=2))
        return
    if fmt == "csv":
        write_csv(["provider", "model", "input_usd_per_mtok", "output_usd_per_mtok"],
                  ([p, m, "" if i is None else i, "" if o is None else o] for p, m, i, o in rows))
        return
    if not rows:
        raise click.ClickException(f"no model matches {pattern!r}; try a shorter pattern, or none to list all")
    from rich.table import Table

    table = Table(header_style="bold", title=f"{len(rows)} models" + (f" matching {safe(pattern)}" if pattern else ""),
                  title_justify="left")
    table.add_column("provider", no_wrap=True)
    table.add_column("model", overflow="fold")
    table.add_column("input $/MTok", justify="right", no_wrap=True)
    table.add_column("output $/MTok", justify="right", no_wrap=True)
    for p, m, i, o in rows:
        table.add_row(safe(p), safe(m), "-" if i is None else f"{i:,.4g}", "-" if o is None else f"{o:,.4g}")
    console().print(table)


@click.command("forward", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--to", "url", required=True, metavar="URL",
              help="OTLP/HTTP endpoint, e.g. http://localhost:4318 (/v1/traces is added when missing).")
@STORE_OPTION
@click.option("--batch", "batch_size", type=click.IntRange(1, 100_000), default=500, show_default=True,
              help="Spans per request.")
@click.option("--restart", is_flag=True, help="Forget where the last forward to this URL stopped; send all.")
@click.option("--token", envvar=semconv.ENV_SERVE_TOKEN, default=None,
              help=f"Bearer token for the target (default ${semconv.ENV_SERVE_TOKEN}).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds per request.")
def forward(url: str, store_path: str | None, batch_size: int, restart: bool, token: str | None,
            timeout_s: float) -> None:
    """Replay the store's spans as OTLP to a collector, resumably.

    Spans go in the order they were stored; after each acknowledged batch the
    position is saved in the store, so an interrupted forward picks up where it
    stopped, and a later forward to the same URL sends only what is new.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..scale.forward import Forwarder, ForwardError
    from ..store.db import Store
    from ..store.errors import StoreError
    from .output import console as cli_console

    try:
        store = Store.open(store_path, create=False)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    headers = {"Authorization": f"Bearer {token}"} if token else None
    with store:
        try:
            forwarder = Forwarder(store, url, batch_size=batch_size, timeout_s=timeout_s, headers=headers)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        with forwarder:
            if restart:
                forwarder.reset()
            last, sent_before = forwarder.checkpoint()
            total = forwarder.pending()
            if last:
                click.echo(f"resuming: {sent_before} spans already sent to {forwarder.url}", err=True)
            console = cli_console(stderr=True)
            progress = Progress(TextColumn("forwarding"), BarColumn(), MofNCompleteColumn(), TextColumn("spans"),
                                TimeRemainingColumn(), console=console, transient=False)
            task = progress.add_task("forward", total=total)
            try:
                with progress:
                    result = forwarder.run(on_batch=lambda n: progress.advance(task, n))
            except KeyboardInterrupt:
                _, sent_now = forwarder.checkpoint()
                click.echo(f"interrupted: {sent_now} spans sent to {forwarder.url} so far; "
                           "run the same command to resume", err=True)
                sys.exit(130)
            except ForwardError as exc:
                raise click.ClickException(str(exc)) from exc
    click.echo(f"forwarded {result.sent} spans in {result.batches} batches to {result.target}")
    if result.rejected:
        click.echo(f"warning: the target rejected {result.rejected} spans (OTLP partial success)", err=True)
