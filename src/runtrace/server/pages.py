"""The HTML pages: Runs, Run, Search, Spend; rendered on the server with Jinja2 (autoescape on).

Every value that came from a span (names, attributes, captured prompts) reaches
the page through Jinja's escaping or ``Markup.format``; nothing is marked safe
without having been escaped first. Query parameters are validated here, and a
bad one is a 400 page that names it.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from .. import semconv
from ..store.db import Store
from ..store.errors import AmbiguousRunIdError, StoreError
from ..store.queries import get_run
from ..store.runpage import run_spans, span_name, spans_by_rowid
from ..store.timespec import TimeSpecError, date_ns
from . import charts, format, reads
from .duplicates import read_calls
from .highlight import highlight
from .runview import RunView, build_view
from .spanview import PAGE_SPANS

__all__ = ["EXCEPTION_HANDLERS", "env", "find_run", "parse_filter", "run_page", "runs_page", "search_page",
           "spend_page"]

logger = logging.getLogger("runtrace.server")
T = TypeVar("T")
TEMPLATES = Path(__file__).parent / "templates"
PERIODS = {"24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400, "90d": 90 * 86_400, "all": None}
KIND_LABELS = {"llm": "LLM call", "tool": "tool call", "run": "run", "outcome": "verdict", "other": "other"}

env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                  trim_blocks=True, lstrip_blocks=True)
env.filters.update(money=format.money, tokens=format.tokens, duration=format.duration, when=format.when,
                   when_short=format.when_short, highlight=highlight,
                   short_id=format.short_id)
env.globals.update(percent=format.percent, FLAGS=reads.FLAGS, SORTS=reads.SORTS, PERIODS=list(PERIODS),
                   OUTCOMES=sorted(semconv.OUTCOMES),
                   OUTCOME_LABELS={o: o.replace("_", " ") for o in semconv.OUTCOMES},
                   FLAG_LABELS={key: label for key, (label, _sql) in reads.FLAGS.items()}, VERDICTS=semconv.VERDICTS, KIND_LABELS=KIND_LABELS,
                   SEARCH_FIELDS=reads.SEARCH_FIELDS, SPEND_DIMENSIONS=reads.SPEND_DIMENSIONS,
                   SPEND_BUCKETS=reads.SPEND_BUCKETS,
                   PALETTE_SIZE=charts.PALETTE_SIZE)


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(render_text(template, request_path=request.url.path, **context), status_code=status_code)


_PIECES = 1000  # pieces of a page joined at a time


def render_text(template: str, **context: Any) -> str:
    """``template`` rendered with ``context``: Jinja's ``render``, joined a thousand pieces at a time.

    Each escaped value is a ``Markup``, an object Python's collector tracks;
    ``render`` joins the whole page at once, so a 5,000-span run's page held
    its 10,000 escaped values alive together, made 10 collector passes and
    pushed them into the old generation (its full collections, ~45 ms each,
    came about twice as often). The pieces are the same and in the same order,
    so the text is the same.
    """
    pieces = env.get_template(template).generate(**context)
    parts = []
    while chunk := list(itertools.islice(pieces, _PIECES)):
        parts.append("".join(chunk))
    return "".join(parts)


def bad_request(message: str) -> HTTPException:
    return HTTPException(400, message)


def _param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _shown(value: str, limit: int = 80) -> str:
    """A parameter's value as an error message quotes it: repr, cut short so a huge value stays a short page."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"... ({len(value):,} characters)"


def check_params(request: Request, allowed: Iterable[str]) -> None:
    """400 for a query parameter this page does not read (``?from=`` would otherwise be silently ignored)."""
    known = set(allowed) | {"token"}  # ``token`` is the login parameter, consumed by the auth guard
    unknown = sorted({k for k in request.query_params if k not in known})
    if unknown:
        hint = {"from": "since", "to": "until", "start": "since", "end": "until", "page": "after",
                "cursor": "after", "search": "q", "query": "q"}.get(unknown[0])
        raise bad_request(f"unknown query parameter {_shown(unknown[0], 40)}"
                          + (f" (did you mean {hint}?)" if hint and hint in known else "")
                          + f": this page takes {', '.join(sorted(known - {'token'}))}")


def _date_ns(name: str, value: str | None, *, end_of_day: bool = False) -> int | None:
    """The ``since``/``until`` parameter ``name`` as epoch ns (store/timespec.py); a 400 naming it when bad."""
    if value is None:
        return None
    try:
        return date_ns(value, end_of_day=end_of_day)
    except TimeSpecError as exc:
        raise bad_request(f"{name}={_shown(value)} {exc.reason}") from None


def time_range(request: Request, default_period: str = "all") -> tuple[str, int | None, int | None]:
    """(period, since_ns, until_ns) from ``period`` or explicit ``since``/``until`` dates."""
    since, until = _param(request, "since"), _param(request, "until")
    period = _param(request, "period") or default_period
    if period not in PERIODS and period != "custom":
        raise bad_request(f"period={period!r} is not one of {', '.join(PERIODS)}")
    if since or until:
        return "custom", _date_ns("since", since), _date_ns("until", until, end_of_day=True)
    seconds = PERIODS.get(period)
    if seconds is None:
        return period, None, None
    return period, time.time_ns() - seconds * 1_000_000_000, None


FILTER_PARAMS = ("project", "owner", "outcome", "model", "flag", "q", "period", "since", "until")
RUNS_PARAMS = (*FILTER_PARAMS, "sort", "order", "after")
SEARCH_PARAMS = ("q", "field", "project", "model", "outcome", "period", "since", "until", "after")
SPEND_PARAMS = ("by", "bucket", "period", "since", "until")


def parse_filter(request: Request) -> reads.RunFilter:
    outcome, flag = _param(request, "outcome"), _param(request, "flag")
    if outcome is not None and outcome not in semconv.OUTCOMES:
        raise bad_request(f"outcome={outcome!r} is not one of {', '.join(sorted(semconv.OUTCOMES))}")
    if flag is not None and flag not in reads.FLAGS:
        raise bad_request(f"flag={flag!r} is not one of {', '.join(reads.FLAGS)}")
    _period, since_ns, until_ns = time_range(request)
    return reads.RunFilter(project=_param(request, "project"), owner=_param(request, "owner"),
                             outcome=outcome, model=_param(request, "model"), flag=flag,
                             since_ns=since_ns, until_ns=until_ns, text=_param(request, "q"))


def url_with(request: Request, path: str | None = None, drop: tuple[str, ...] = (), **changes: Any) -> str:
    """The current page's address with some query parameters changed (None removes one)."""
    params = {k: v for k, v in request.query_params.items() if v and k not in drop}
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    query = urlencode(params)
    return (path or request.url.path) + (f"?{query}" if query else "")


# --- pages ---------------------------------------------------------------------


async def runs_page(request: Request) -> Response:
    check_params(request, RUNS_PARAMS)
    flt = parse_filter(request)
    sort = _param(request, "sort") or "started"
    if sort not in reads.SORTS:
        raise bad_request(f"sort={sort!r} is not one of {', '.join(reads.SORTS)}")
    order = _param(request, "order") or "desc"
    if order not in ("asc", "desc"):
        raise bad_request(f"order={order!r} is not asc or desc")
    after = _param(request, "after")
    store = request.app.state.store

    def load() -> tuple[reads.Headline, reads.RunsPage, dict[str, list[str]]]:
        try:
            page = reads.runs_page(store, flt, sort=sort, descending=order == "desc", after=after)
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        return reads.headline(store, flt), page, reads.filter_options(store)

    head, page, options = await run_in_threadpool(load)
    period, _since, _until = time_range(request)
    return render(request, "runs.html", head=head, page=page, options=options, flt=flt, sort=sort, order=order,
                  after=after, period=period, since=_param(request, "since") or "",
                  until=_param(request, "until") or "",
                  url=lambda **kw: url_with(request, drop=("after",), **kw),
                  next_url=url_with(request, after=page.next_cursor) if page.next_cursor else None,
                  first_url=url_with(request, after=None) if after else None)


async def find_run(request: Request, fetch: Callable[[Store, str], T | None]) -> T:
    """``fetch(store, id)`` for the run ``{run_id}`` names (an id or a unique prefix), in a worker thread.

    The one answer every page and API route gives: 400 when the prefix names
    several runs, 404 when it names none (``fetch`` returned None).
    """
    run_id = request.path_params["run_id"]
    store = request.app.state.store

    def load() -> T | None:
        try:
            return fetch(store, run_id)
        except AmbiguousRunIdError as exc:
            raise bad_request(str(exc)) from None

    found = await run_in_threadpool(load)
    if found is None:
        raise HTTPException(404, f"no run {run_id!r} in this store")
    return found


def load_run_view(store: Store, run_id: str) -> tuple[dict[str, Any], RunView] | None:
    """The run page's run (totals, no spans) and view, reading whole spans only for the rows it renders.

    A 5,000-span run's page used to decode every span's attributes (``get_run``);
    now the sentences and the tree come from :func:`run_spans` (columns) and only the
    first :data:`PAGE_SPANS` rows are read whole. None when no run matches.
    """
    try:
        run = get_run(store, run_id, limit=0)
    except AmbiguousRunIdError as exc:
        raise bad_request(str(exc)) from None
    if run is None:
        return None
    spans = run_spans(store, run["id"])
    view = build_view(run, spans, lambda chosen: spans_by_rowid(store, [spans.rowid[i] for i in chosen]),
                      row_limit=PAGE_SPANS, calls=read_calls(store, run["id"]),
                      name_of=lambda i: span_name(store, spans.rowid[i]))
    return run, view


async def run_page(request: Request) -> Response:
    run, view = await find_run(request, load_run_view)
    curve = charts.cost_curve(view.curve, duration_s=view.total_s,
                              budget_usd=(run.get("budget") or {}).get("max_cost_usd"))
    return render(request, "run.html", run=run, view=view, curve=curve, axis=charts.time_axis(view.total_s))


async def search_page(request: Request) -> Response:
    """Matches grouped by run, newest first, filtered by project, model, outcome and time; paged by ``after``."""
    check_params(request, SEARCH_PARAMS)
    q = _param(request, "q") or ""
    field = _param(request, "field") or "any"
    if field not in reads.SEARCH_FIELDS:
        raise bad_request(f"field={field!r} is not one of {', '.join(reads.SEARCH_FIELDS)}")
    outcome = _param(request, "outcome")
    if outcome is not None and outcome not in semconv.OUTCOMES:
        raise bad_request(f"outcome={outcome!r} is not one of {', '.join(sorted(semconv.OUTCOMES))}")
    period, since_ns, until_ns = time_range(request)
    flt = reads.SearchFilter(project=_param(request, "project"), model=_param(request, "model"),
                               outcome=outcome, since_ns=since_ns, until_ns=until_ns)
    after = _param(request, "after")
    store = request.app.state.store

    def load() -> tuple[reads.SearchResults, dict[str, list[str]]]:
        try:
            results = reads.search_runs(store, q, field=field, flt=flt, after=after)
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        return results, reads.filter_options(store)

    results, options = await run_in_threadpool(load)
    return render(request, "search.html", q=q, field=field, results=results, options=options, flt=flt,
                  period=period, since=_param(request, "since") or "", until=_param(request, "until") or "",
                  next_url=url_with(request, after=results.next_cursor) if results.next_cursor else None,
                  first_url=url_with(request, after=None) if after else None)


async def spend_page(request: Request) -> Response:
    check_params(request, SPEND_PARAMS)
    dimension = _param(request, "by") or "project"
    if dimension not in reads.SPEND_DIMENSIONS:
        raise bad_request(f"by={dimension!r} is not one of {', '.join(reads.SPEND_DIMENSIONS)}")
    bucket = _param(request, "bucket") or "auto"
    if bucket not in reads.SPEND_BUCKETS:
        raise bad_request(f"bucket={bucket!r} is not one of {', '.join(reads.SPEND_BUCKETS)}")
    period, since_ns, until_ns = time_range(request, default_period="30d")
    store = request.app.state.store
    chart = await run_in_threadpool(lambda: reads.spend(store, dimension, since_ns=since_ns, until_ns=until_ns,
                                                          now_ns=time.time_ns(), bucket=bucket))
    svg = charts.stacked_bars(chart.labels, [charts.Series(name, tuple(values)) for name, values in chart.series],
                              label=f"spend per {chart.bucket} by {dimension}")
    return render(request, "spend.html", chart=chart, svg=svg, dimension=dimension, period=period, bucket=bucket,
                  since=_param(request, "since") or "", until=_param(request, "until") or "",
                  url=lambda **kw: url_with(request, **kw))


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


# --- errors --------------------------------------------------------------------


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith(("/api/", "/v1/", "/metrics")):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
    return render(request, "error.html", status_code=exc.status_code, status=exc.status_code,
                  message=exc.detail)


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    """The store broke under the running server (a corrupted or replaced file): 503, never a 500 page.

    The reason goes to the log; the answer only says the store is unavailable,
    so a file path or SQLite detail is not shown to whoever asked.
    """
    logger.error("runtrace serve: the store cannot be read: %s", exc)
    message = "the store cannot be read right now (see the server log)"
    if request.url.path.startswith(("/api/", "/v1/", "/metrics")):
        return JSONResponse({"error": message}, status_code=503, headers={"Retry-After": "5"})
    response = render(request, "error.html", status_code=503, status=503, message=message)
    response.headers["Retry-After"] = "5"
    return response


EXCEPTION_HANDLERS = {HTTPException: _http_error, sqlite3.DatabaseError: _store_unavailable,
                      StoreError: _store_unavailable}
