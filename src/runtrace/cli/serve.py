"""The ``serve``, ``report`` and ``reprice`` commands (attached to ``runtrace`` by ``cli.py``).

Data goes to stdout (a rich table, JSON or CSV), progress and messages to
stderr; every user error is a one-line ``ClickException``.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import socket
from collections.abc import Iterable
from typing import Any

import click

from .. import semconv
from ..display import money
from .options import STORE_OPTION
from .output import plain, safe

__all__ = ["reprice", "report", "serve"]

_FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
                       show_default=True, help="Output format.")
_SINCE = click.option("--since", help="Runs started since: 24h, 7d, or an ISO date (UTC).")
_UNTIL = click.option("--until", help="Runs started before: 24h, 7d (ago), or an ISO date (UTC).")
_PROGRESS_FROM = 5_000  # calls; a shorter scan is over before a bar would help


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _console() -> Any:
    """The CLI's one console: the terminal's width, or wide enough when piped that no figure is cut."""
    from .output import console

    return console()


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _write_csv(header: list[str], rows: Iterable[list[Any]]) -> None:
    """CSV to stdout; text cells that a spreadsheet would run as a formula are neutralised."""
    from .output import write_csv

    write_csv(header, rows)


def _check_token(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A token of only whitespace would be "no token" in one place and a secret in another: refuse it."""
    if value is not None and (not value.strip() or value != value.strip()):
        raise click.BadParameter("the token must be non-empty and have no leading or trailing whitespace",
                                 ctx=ctx, param=param)
    return value


# --- serve ---------------------------------------------------------------------


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but loopback exposes your runs to the network and needs --token.")
@click.option("-p", "--port", type=click.IntRange(0, 65535), default=4318, show_default=True,
              help="Port (4318 is OTLP/HTTP's; 0 picks a free one).")
@STORE_OPTION
@click.option("--token", envvar=semconv.ENV_SERVE_TOKEN, show_envvar=True, callback=_check_token,
              help="Bearer token required for ingest, API and UI (open the UI once with ?token=...).")
@click.option("--max-body-mb", type=click.IntRange(1, 1024), default=64, show_default=True,
              help="Largest OTLP request body accepted, before and after gzip decompression.")
@click.option("--max-connections", type=click.IntRange(16, 100_000), default=1000, show_default=True,
              help="Open connections at most; beyond it a new one evicts the oldest that has sent no request.")
@click.option("--header-timeout", type=click.FloatRange(0.1, 3600), default=10.0, show_default=True,
              help="Seconds a client has to send its request headers.")
@click.option("--alerts", "alerts_path", type=click.Path(dir_okay=False),
              help="Alert rules (TOML, docs/alerts.md): evaluated as runs arrive, posted to a webhook.")
def serve(host: str, port: int, store_path: str | None, token: str | None, max_body_mb: int,
          max_connections: int, header_timeout: float, alerts_path: str | None) -> None:
    """Web UI and OTLP/HTTP receiver (POST /v1/traces) on one port."""
    import uvicorn

    from ..server import create_app
    from ..server.app import LOOPBACK_HOSTS
    from ..server.limits import accept_backlog_for, limited_protocol, max_connections_for, raise_fd_limit
    from ..store.db import Store

    loopback = is_loopback(host)
    if not loopback and not token:
        raise click.ClickException(
            f"binding {host} exposes your runs to the network: pass --token (or set {semconv.ENV_SERVE_TOKEN}), "
            "or bind 127.0.0.1")
    alerts = None
    if alerts_path is not None:
        from ..alerts import AlertsConfigError, load_alerts

        try:
            alerts = load_alerts(alerts_path)
        except AlertsConfigError as exc:
            raise click.ClickException(str(exc)) from None
    # Open once here so a bad path or a too-new file is a one-line error before anything binds;
    # the app's lifespan opens it again and closes it on shutdown, after the last request.
    with Store.open(store_path, create=True) as store:
        path = store.path
    # Bind before saying anything: a busy port is a one-line error, and --port 0 shows the port it got.
    fd_limit = raise_fd_limit()
    cap = max_connections_for(max_connections, fd_limit)
    backlog = accept_backlog_for(cap, fd_limit)
    sock = _bind(host, port, backlog)
    port = int(sock.getsockname()[1])
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    app = create_app(path, token=token, max_body_bytes=max_body_mb * 1024 * 1024,
                     allowed_hosts=(*LOOPBACK_HOSTS, host) if loopback else None, alerts=alerts, base_url=base)
    click.echo(f"runtrace serve: store {path}", err=True)
    click.echo(f"  web UI       {base}/" + ("?token=..." if token else ""), err=True)
    click.echo(f"  OTLP/HTTP    {base}/v1/traces  (protobuf or JSON, gzip ok)", err=True)
    click.echo(f"  metrics      {base}/metrics", err=True)
    if alerts is not None:
        click.echo(f"  alerts       {len(alerts.rules)} rule(s) from {alerts.path} -> {alerts.webhook.url} "
                   f"(firings at {base}/alerts)", err=True)
    protocol = limited_protocol(header_timeout=header_timeout, max_connections=cap)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30,
                            server_header=False, http=protocol, timeout_keep_alive=5,
                            backlog=backlog,
                            h11_max_incomplete_event_size=_MAX_HEAD_BYTES)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    if not server.started:
        raise SystemExit(3)  # uvicorn's own start-up failure status; it has logged why


_MAX_HEAD_BYTES = 64 * 1024  # request line + headers; h11's 16 KiB default cut a long ?q= search


def _bind(host: str, port: int, backlog: int) -> socket.socket:
    """A socket listening on ``host:port`` (uvicorn serves it), or a one-line error saying why not.

    It listens at once, so a client that connects as soon as the banner is out
    waits in the backlog for the start-up to finish instead of being refused.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart past TIME_WAIT
        sock.bind((host.strip("[]"), port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        hint = " (is another runtrace serve running? pick another --port, or 0 for a free one)" \
            if exc.errno == errno.EADDRINUSE else ""
        raise click.ClickException(f"cannot listen on {host}:{port}: {reason.lower()}{hint}") from None
    sock.set_inheritable(True)
    return sock


# --- report --------------------------------------------------------------------


@click.command("report")
@STORE_OPTION
@_SINCE
@_UNTIL
@click.option("--by", type=click.Choice(["project", "owner", "model", "provider"]),
              help="One row per project, owner, model or provider (plus the total).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "markdown", "html"]), default="table",
              show_default=True,
              help="Output format; markdown and html are the review (by project and owner, beside the "
                   "previous period of the same length), e.g. --since 7d --format markdown.")
@click.option("--base-url", default="http://127.0.0.1:4318", show_default=True,
              help="The review's run links point at this runtrace serve.")
@click.option("--small-work-model", default="gpt-5-mini", show_default=True,
              help="The review prices small runs on this model to show what routing would save.")
def report(store_path: str | None, since: str | None, until: str | None, by: str | None, fmt: str,
           base_url: str, small_work_model: str) -> None:
    """Cost per accepted run, runs by outcome, abandoned rate, tool calls, repeated reads, unpriced calls."""
    from ..report import OUTCOME_ORDER, build_report
    from .app import open_store, parse_when

    since_at, until_at = parse_when(since), parse_when(until)
    if fmt in ("markdown", "html"):
        _review(store_path, since_at, until_at, by, fmt, base_url, small_work_model)
        return
    store = open_store(store_path)
    try:
        result = build_report(store, since=since_at, until=until_at, by=by)
    finally:
        store.close()
    rows = [*result.groups, result.total]
    if fmt == "json":
        _echo_json(result.as_dict())
        return
    if fmt == "csv":
        _write_csv(
            [by or "group", "runs", *OUTCOME_ORDER, "cost_usd", "cost_per_accepted_run", "abandoned_rate",
             "llm_calls", "tool_calls", "repeated_reads", "unpriced_calls"],
            ([r.group if r.group is not None else "(total)", r.runs, *(r.outcomes[o] for o in OUTCOME_ORDER),
              r.cost_usd, "" if r.cost_per_accepted_run is None else r.cost_per_accepted_run,
              "" if r.abandoned_rate is None else r.abandoned_rate, r.llm_calls, r.tool_calls, r.repeated_reads,
              r.unpriced_calls] for r in rows))
        return
    from rich.table import Table

    period = f"{since or 'the beginning'} to {until or 'now'}"
    table = Table(title=f"runs from {period}" + (f", by {by}" if by else ""), title_justify="left",
                  header_style="bold")
    table.add_column(by or "")
    for label in ("runs", "accepted", "rejected", "abandoned", "budget stop", "other", "cost", "per accepted",
                  "abandoned %", "LLM calls", "tool calls", "re-reads", "unpriced"):
        table.add_column(label, justify="right")
    for i, r in enumerate(rows):
        other = sum(r.outcomes[o] for o in (semconv.OUTCOME_ERROR, semconv.OUTCOME_OPEN, semconv.OUTCOME_UNFINISHED))
        is_total = r.group is None
        table.add_row(
            "[bold]total[/]" if is_total else safe(r.group), f"{r.runs:,}", f"{r.accepted:,}",
            f"{r.outcomes[semconv.OUTCOME_REJECTED]:,}", f"{r.outcomes[semconv.OUTCOME_ABANDONED]:,}",
            f"{r.outcomes[semconv.OUTCOME_BUDGET_STOPPED]:,}", f"{other:,}",
            money(r.cost_usd) + ("+?" if r.unpriced_calls else ""), money(r.cost_per_accepted_run),
            _pct(r.abandoned_rate), f"{r.llm_calls:,}", f"{r.tool_calls:,}", f"{r.repeated_reads:,}",
            f"{r.unpriced_calls:,}", end_section=(i == len(rows) - 2), style="bold" if is_total else None)
    _console().print(table)
    if by in ("model", "provider") and result.groups:
        click.echo(f"A run that used several {by}s counts under each; the total counts every run once.", err=True)


def _review(store_path: str | None, since: Any, until: Any, by: str | None, fmt: str, base_url: str,
            small_work_model: str) -> None:
    """The review (runtrace.review): one period beside the one before it, as Markdown or HTML."""
    from ..review import build_review
    from ..review_render import render_html, render_markdown
    from .app import open_store

    if by is not None:
        raise click.UsageError(f"--by does not apply to --format {fmt}: the review shows projects and owners")
    if since is None:
        raise click.UsageError(f"--format {fmt} is a review of a period: give --since (e.g. --since 7d)")
    if not base_url.startswith(("http://", "https://")):
        raise click.BadParameter(f"must be an http:// or https:// URL, got {base_url!r}", param_hint="--base-url")
    store = open_store(store_path)
    try:
        review = build_review(store, since=since, until=until, base_url=base_url, small_work_model=small_work_model)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    click.echo(render_markdown(review) if fmt == "markdown" else render_html(review), nl=False)


# --- reprice -------------------------------------------------------------------


@click.command("reprice")
@click.option("--model", help="The model to price the recorded calls on (without it, --provider lists its models).")
@click.option("--provider", help="Its provider (openai, aws.bedrock, deepseek, ...): whose price list to use.")
@click.option("--tier", help="Service tier: flex, priority, batch ...")
@click.option("--token-ratio", type=float, default=1.0, show_default=True,
              help="Tokens the target's tokenizer counts per recorded token (1.35 = 35% more).")
@STORE_OPTION
@_SINCE
@_UNTIL
@click.option("--project", help="Only runs of this project.")
@click.option("--run", "runs", multiple=True, help="Only this run (an id or a unique prefix); repeatable.")
@click.option("-n", "--limit", type=click.IntRange(min=0), default=20, show_default=True,
              help="Runs listed in the table (0 = all); JSON and CSV list every run.")
@click.option("--small-calls", type=click.IntRange(min=1), default=3, show_default=True,
              help="Routing view: a run with at most this many LLM calls ...")
@click.option("--small-tokens", type=click.IntRange(min=1), default=20_000, show_default=True,
              help="... and at most this many tokens is small work.")
@click.option("--frontier-ratio", type=click.FloatRange(min=1.0), default=4.0, show_default=True,
              help="Routing view: list small runs that cost at least this many times the target's price.")
@_FORMAT
def reprice(model: str | None, provider: str | None, tier: str | None, token_ratio: float, store_path: str | None,
            since: str | None, until: str | None, project: str | None, runs: tuple[str, ...], limit: int,
            small_calls: int, small_tokens: int, frontier_ratio: float, fmt: str) -> None:
    """What the recorded runs would cost on another model or tier, beside what they cost."""
    if model is None:
        _list_models(provider, fmt)
        return
    from ..reprice import reprice as run_reprice
    from ..store.errors import AmbiguousRunIdError
    from ..store.queries import resolve_run_id
    from .app import open_store, parse_when

    if not token_ratio > 0:
        raise click.BadParameter(f"must be a positive number, got {token_ratio}", param_hint="--token-ratio")
    since_at, until_at = parse_when(since), parse_when(until)
    store = open_store(store_path)
    run_ids: list[str] | None = None
    try:
        if runs:
            run_ids = []
            for given in runs:
                try:
                    full = resolve_run_id(store, given)
                except AmbiguousRunIdError as exc:
                    raise click.ClickException(str(exc)) from None
                if full is None:
                    raise click.ClickException(f"no run {given!r} in {store.path}")
                run_ids.append(full)
        result = _with_progress(lambda progress: run_reprice(
            store, model=model, provider=provider, tier=tier, token_ratio=token_ratio, since=since_at,
            until=until_at, project=project, run_ids=run_ids, small_calls=small_calls, small_tokens=small_tokens,
            frontier_ratio=frontier_ratio, progress=progress))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    if result.tier_note:
        click.echo(f"note: {plain(result.tier_note)}", err=True)
    for missing in result.missing_classes:
        calls = missing.missing_calls
        click.echo(f"note: {plain(result.model)} has no price for {missing.label} tokens: {calls:,} "
                   f"call{'s' if calls != 1 else ''} not repriced", err=True)
    if fmt == "json":
        _echo_json(result.as_dict())
        return
    if fmt == "csv":
        _write_csv(["run_id", "name", "project", "models", "llm_calls", "input_tokens", "output_tokens",
                    "actual_usd", "actual_unpriced_calls", "repriced_usd", "repriced_unpriced_calls",
                    "difference_usd"],
                   ([r.run_id, r.name or "", r.project or "", " ".join(r.models), r.llm_calls, r.input_tokens,
                     r.output_tokens, r.actual_usd, r.actual_unpriced, r.repriced_usd, r.repriced_unpriced,
                     "" if r.difference_usd is None else r.difference_usd] for r in result.runs))
        return
    _print_reprice(result, limit, frontier_ratio)


def _list_models(provider: str | None, fmt: str) -> None:
    """``reprice --provider P`` without a model: P's chat models and their prices, to pick a target from."""
    from ..catalog import genai_provider_id, models_of, provider_choices

    if provider is None:
        names = ", ".join(p.id for p in provider_choices())
        raise click.UsageError(f"give --model, or --provider to list its models (one of: {names})")
    models = models_of(genai_provider_id(provider))
    if models is None:
        raise click.BadParameter(f"{provider!r} is not a provider in genai-prices' price table "
                                 "(run `runtrace reprice` without options to list them)", param_hint="--provider")
    header = ["model", "input_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok", "output_per_mtok",
              "per_request"]
    rows = [[m.model, m.input_per_mtok, m.cache_read_per_mtok, m.cache_write_per_mtok, m.output_per_mtok,
             m.per_request] for m in models]
    if fmt == "json":
        _echo_json([dict(zip(header, row, strict=True)) for row in rows])
        return
    if fmt == "csv":
        _write_csv(header, ([("" if v is None else v) for v in row] for row in rows))
        return
    from rich.table import Table

    table = Table(header_style="bold", title=f"{safe(provider)}: {len(models)} chat models, USD per million tokens "
                  "(- : charged as input)", title_justify="left")
    table.add_column("model")
    for label in ("input", "cached read", "cache write", "output", "per request"):
        table.add_column(label, justify="right")

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:g}"

    for m in models:
        table.add_row(safe(m.model), cell(m.input_per_mtok), cell(m.cache_read_per_mtok),
                      cell(m.cache_write_per_mtok), cell(m.output_per_mtok),
                      "" if m.per_request is None else f"{m.per_request:g}")
    _console().print(table)
    click.echo(f"reprice on one: runtrace reprice --provider {plain(provider)} --model MODEL", err=True)


def _with_progress(work: Any) -> Any:
    """Run ``work(progress)``; a bar on stderr appears only for a scan long enough to need one."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .output import console

    state: dict[str, Any] = {}

    def progress(done: int, total: int) -> None:
        if total < _PROGRESS_FROM:
            return
        if "bar" not in state:
            bar = Progress(TextColumn("repricing calls"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                           console=console(stderr=True), transient=True)
            bar.start()
            state["bar"], state["task"] = bar, bar.add_task("reprice", total=total)
        state["bar"].update(state["task"], completed=done)

    try:
        return work(progress)
    finally:
        if "bar" in state:
            state["bar"].stop()


def _print_reprice(result: Any, limit: int, frontier_ratio: float) -> None:
    from rich.table import Table

    console = _console()
    target = safe(result.model) + (f" ({safe(result.provider)})" if result.provider else "") + \
        (f", {safe(result.tier)} tier" if result.tier else "") + \
        (f", token ratio {result.token_ratio:g}" if result.token_ratio != 1 else "")
    console.print(f"[bold]{result.calls:,}[/] LLM calls in [bold]{len(result.runs):,}[/] runs, repriced on "
                  f"[bold]{target}[/]")
    totals = Table(header_style="bold", title="total", title_justify="left")
    for label in ("", "actual", "repriced", "difference"):
        totals.add_column(label, justify="right" if label else "left")
    comparable = sum(1 for r in result.runs if r.comparable)
    totals.add_row(f"{comparable:,} runs priced on both sides", money(result.comparable_actual_usd),
                   money(result.comparable_repriced_usd),
                   _signed(result.comparable_repriced_usd - result.comparable_actual_usd))
    if comparable != len(result.runs):
        totals.add_row(f"all {len(result.runs):,} runs", money(result.actual_usd) + f" + {result.actual_unpriced} "
                       "unpriced", money(result.repriced_usd) + (f" + {result.repriced_unpriced} unpriced"
                                                                   if result.repriced_unpriced else ""), "-")
    console.print(totals)
    if result.by_class:
        classes = Table(header_style="bold", title="repriced, by token class", title_justify="left")
        for label in ("class", "used", "repriced"):
            classes.add_column(label, justify="left" if label == "class" else "right")
        for c in result.by_class.values():
            used = f"{c.units:,.1f} s" if c.name == "seconds" else f"{int(c.units):,}" + (
                " calls" if c.name == "requests" else "")
            if c.missing_calls:
                cost = f"no price ({c.missing_calls:,} calls)"
            elif c.charged_as:
                cost = f"charged as {c.charged_as.replace('_', ' ')}"
            else:
                cost = money(c.usd)
            classes.add_row(c.label, used, cost)
        console.print(classes)
    runs = result.runs if limit == 0 else result.runs[:limit]
    table = Table(header_style="bold", title=f"runs, biggest actual cost first ({len(runs)} of {len(result.runs)})",
                  title_justify="left")
    table.add_column("run")
    table.add_column("name", max_width=30, overflow="ellipsis")
    table.add_column("models", max_width=28)
    for label in ("calls", "in", "out", "actual", "repriced", "difference"):
        table.add_column(label, justify="right")
    escape = safe
    for r in runs:
        table.add_row(escape(r.run_id[:12]), escape(r.name or "-"), escape(", ".join(r.models)), str(r.llm_calls),
                      f"{r.input_tokens:,}", f"{r.output_tokens:,}",
                      money(r.actual_usd) + (f" +{r.actual_unpriced}?" if r.actual_unpriced else ""),
                      money(r.repriced_usd) + (f" +{r.repriced_unpriced}?" if r.repriced_unpriced else ""),
                      "-" if r.difference_usd is None else _signed(r.difference_usd))
    console.print(table)
    routing = Table(header_style="bold", title_justify="left",
                    title=f"routing: small runs that cost at least {frontier_ratio:g}x what {safe(result.model)} would "
                          f"({len(result.routing)})")
    routing.add_column("run")
    routing.add_column("name", max_width=30, overflow="ellipsis")
    routing.add_column("models", max_width=28)
    for label in ("calls", "tokens", "actual", f"on {safe(result.model)}", "saving"):
        routing.add_column(label, justify="right")
    for c in result.routing:
        routing.add_row(escape(c.run_id[:12]), escape(c.name or "-"), escape(", ".join(c.models)), str(c.llm_calls),
                        f"{c.tokens:,}", money(c.actual_usd), money(c.repriced_usd), money(c.saving_usd))
    if result.routing:
        routing.add_row("", "[bold]total[/]", "", "", "", "", "",
                        money(sum(c.saving_usd for c in result.routing)))
        console.print(routing)
    else:
        console.print(f"routing: no small run cost {frontier_ratio:g}x or more what {safe(result.model)} would")
    verbosity = Table(header_style="bold", title="output tokens per call by prompt size", title_justify="left")
    verbosity.add_column("model")
    verbosity.add_column("prompt")
    for label in ("calls", "mean", "p50", "p90", "max"):
        verbosity.add_column(label, justify="right")
    for v in result.verbosity:
        verbosity.add_row(escape(v.model), v.bucket, f"{v.calls:,}", f"{v.mean:,.0f}", f"{v.p50:,}", f"{v.p90:,}",
                          f"{v.max:,}")
    console.print(verbosity)


def _signed(value: float) -> str:
    return ("+" if value > 0 else "-" if value < 0 else "") + money(abs(value))
