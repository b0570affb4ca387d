"""JSON twins of the pages (run dicts of `--format json` (README, docs/architecture.md), exactly as ``runtrace runs/show --format json``) and /metrics."""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..store.errors import UnknownRunError
from ..store.queries import (
    first_span_start_ns,
    get_run_json,
    get_span,
    list_runs,
    resolve_run_id,
    span_outline,
)
from ..store.timespec import from_ns
from ..store.verdicts import list_pending, record_verdict
from .duplicates import Calls, read_calls
from .guard import require_same_site_json
from .pages import FILTER_PARAMS, bad_request, check_params, find_run, parse_filter
from .prometheus import CONTENT_TYPE, render_metrics
from .spanview import PAGE_SPANS, outline_page, span_detail

__all__ = ["metrics", "outcome", "pending_outcomes", "run", "run_span", "run_spans", "runs"]

MAX_LIMIT = 1000
MAX_VERDICT_BYTES = 64 * 1024
_VERDICT_KEYS = ("outcome", "by", "reason")


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
    store = request.app.state.store
    rows = await run_in_threadpool(
        lambda: list_runs(store, project=flt.project, owner=flt.owner, outcome=flt.outcome, model=flt.model,
                          since=from_ns(flt.since_ns), until=from_ns(flt.until_ns), text=flt.text, limit=limit,
                          offset=offset))
    return _json(rows)


async def run(request: Request) -> Response:
    """``GET /api/runs/{id}``: one run with its spans; the id may be a unique prefix.

    ``offset`` and ``limit`` return a page of the spans (``span_count`` has them all).
    Encoded with orjson by ``get_run_json``, the spans' stored attribute JSON spliced in
    undecoded: the stdlib encoder took longer than reading a 5,000-span run out of the store.
    """
    check_params(request, ("offset", "limit"))
    offset = _int(request, "offset", 0, low=0, high=10**9)
    limit = _int(request, "limit", -1, low=0, high=10**9) if request.query_params.get("limit") else None
    body = await find_run(request, lambda store, run_id: get_run_json(store, run_id, offset=offset, limit=limit))
    return Response(body, media_type="application/json")


async def _run_id(request: Request) -> str:
    """The full id of the run ``{run_id}`` names (an id or a unique prefix): 400 when ambiguous, 404 when absent."""
    return await find_run(request, resolve_run_id)


async def run_spans(request: Request) -> Response:
    """``GET /api/runs/{id}/spans?offset=&limit=``: timeline rows in the run page's tree order, a page at a time.

    Rows carry no attributes (``/api/runs/{id}/spans/{span_id}`` has them), so
    a page of a 5,000-span run is a few kilobytes.
    """
    check_params(request, ("offset", "limit"))
    offset = _int(request, "offset", 0, low=0, high=10**9)
    limit = _int(request, "limit", PAGE_SPANS, low=1, high=MAX_LIMIT)
    run_id = await _run_id(request)
    store = request.app.state.store
    spans, calls = await run_in_threadpool(lambda: (span_outline(store, run_id), read_calls(store, run_id)))
    return _json({"run_id": run_id, **outline_page(spans, offset=offset, limit=limit, calls=calls)})


async def run_span(request: Request) -> Response:
    """``GET /api/runs/{id}/spans/{span_id}``: one span with everything the side panel shows."""
    check_params(request, ())
    run_id = await _run_id(request)
    span_id = request.path_params["span_id"]
    store = request.app.state.store

    def load() -> tuple[dict[str, Any] | None, int | None, Calls]:
        return get_span(store, run_id, span_id), first_span_start_ns(store, run_id), read_calls(store, run_id)

    span, start, calls = await run_in_threadpool(load)
    if span is None:
        raise HTTPException(404, f"no span {span_id!r} in run {run_id!r}")
    return _json(span_detail(span, run_start_ns=start, duplicate=calls.duplicate(span_id)))


async def metrics(request: Request) -> Response:
    text = await run_in_threadpool(render_metrics, request.app.state.store)
    return Response(text, media_type=CONTENT_TYPE)


async def outcome(request: Request) -> Response:
    """``POST /api/runs/{id}/outcome`` with ``{"outcome": "accepted", "by": ..., "reason": ...}``.

    The id must be a run's full id; an unknown one is a 404 and writes nothing.
    Only ``application/json`` is accepted: a cross-site HTML form can send
    form-encoded or plain text bodies without a CORS preflight, never JSON, so
    a page elsewhere cannot set a verdict through a logged-in browser. A
    request whose ``Origin`` names another host is refused for the same reason.
    """
    require_same_site_json(request, "the verdict")
    body = await request.body()
    if len(body) > MAX_VERDICT_BYTES:
        raise HTTPException(413, f"a verdict body is at most {MAX_VERDICT_BYTES} bytes")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise bad_request(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request('the body must be a JSON object like {"outcome": "accepted", "by": "ci"}')
    unknown = sorted(set(data) - set(_VERDICT_KEYS))
    if unknown:
        raise bad_request(f"unknown field(s) {', '.join(unknown)}; a verdict has outcome, by and reason")
    verdict = data.get("outcome")
    if not isinstance(verdict, str):
        raise bad_request("outcome is required: accepted, rejected or abandoned")
    run_id = request.path_params["run_id"]
    store = request.app.state.store
    try:
        await run_in_threadpool(lambda: record_verdict(store, run_id, verdict, by=data.get("by"),
                                                       reason=data.get("reason"), service="runtrace-api"))
    except UnknownRunError as exc:
        raise HTTPException(404, str(exc)) from None
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    return _json({"id": run_id, "outcome": verdict, "outcome_by": data.get("by"),
                  "outcome_reason": data.get("reason")})


async def pending_outcomes(request: Request) -> Response:
    """``GET /api/outcomes/pending``: verdicts waiting for a run this store does not hold (not runs)."""
    limit = _int(request, "limit", 100, low=1, high=MAX_LIMIT)
    store = request.app.state.store
    return _json(await run_in_threadpool(lambda: list_pending(store, limit=limit)))
