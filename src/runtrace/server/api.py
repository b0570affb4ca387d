"""JSON twins of the pages (DESIGN section 8 dicts, exactly as ``runtrace runs/show --format json``) and /metrics."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..store.queries import list_runs
from .metrics import CONTENT_TYPE, render_metrics
from .pages import FILTER_PARAMS, bad_request, check_params, load_run, parse_filter

__all__ = ["metrics", "run", "runs"]

MAX_LIMIT = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _finite(value: Any) -> Any:
    """JSON has no NaN or Infinity; a span attribute holding one is shown as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _json(data: Any) -> JSONResponse:
    try:
        return JSONResponse(data)
    except ValueError:
        return JSONResponse(_finite(data))


def _int(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise bad_request(f"{name}={value} is outside {low}..{high}")
    return value


async def runs(request: Request) -> Response:
    """``GET /api/runs``: newest first; project, owner, outcome, model, period/since/until, q, limit, offset."""
    check_params(request, (*FILTER_PARAMS, "limit", "offset"))
    flt = parse_filter(request)
    if flt.flag is not None:
        raise bad_request("flag is a filter of the web page only; /api/runs takes project, owner, outcome, "
                          "model, period, since, until, q, limit and offset")
    limit = _int(request, "limit", 50, low=1, high=MAX_LIMIT)
    offset = _int(request, "offset", 0, low=0, high=10**9)
    def moment(ns: int | None) -> datetime | None:
        return None if ns is None else _EPOCH + timedelta(microseconds=ns // 1000)

    store = request.app.state.store
    rows = await run_in_threadpool(
        lambda: list_runs(store, project=flt.project, owner=flt.owner, outcome=flt.outcome, model=flt.model,
                          since=moment(flt.since_ns), until=moment(flt.until_ns), text=flt.text, limit=limit,
                          offset=offset))
    return _json(rows)


async def run(request: Request) -> Response:
    """``GET /api/runs/{id}``: one run with its spans; the id may be a unique prefix."""
    return _json(await load_run(request))


async def metrics(request: Request) -> Response:
    text = await run_in_threadpool(render_metrics, request.app.state.store)
    return Response(text, media_type=CONTENT_TYPE)
