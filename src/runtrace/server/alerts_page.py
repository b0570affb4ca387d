"""The Alerts page: every firing of ``serve --alerts`` rules, newest first, with its delivery status.

Reads the store's ``alerts`` table (migration m004), so it also shows firings
recorded by an earlier run of the server or by another server on the same file.
A failed firing has a Retry button: ``POST /api/alerts/{id}/retry`` posts it
again through the server's alert engine (the same delivery code, one more
recorded attempt), guarded like every state-changing route (``guard.py``).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..display import ns_to_iso
from .guard import require_same_site_json
from .pages import bad_request, check_params, render

__all__ = ["STATUSES", "alerts_page", "list_alerts", "retry_alert"]

STATUSES = ("pending", "delivered", "failed")
PAGE_SIZE = 200


def list_alerts(store: Any, *, status: str | None = None, limit: int = PAGE_SIZE) -> dict[str, Any]:
    """The newest ``limit`` firings (optionally of one status) and the count of each status."""
    where, params = ("WHERE status = ?", [status]) if status else ("", [])
    rows = store.execute(
        "SELECT id, rule, subject, kind, run_id, project, window_start_ns, window_end_ns, fired_ns, payload, "
        f"status, attempts, next_attempt_ns, last_error, delivered_ns FROM alerts {where} "
        "ORDER BY fired_ns DESC, id DESC LIMIT ?", [*params, limit])
    counts = {s: 0 for s in STATUSES}
    for r in store.execute("SELECT status, count(*) FROM alerts GROUP BY status"):
        counts[r[0]] = int(r[1])
    items = []
    for r in rows:
        payload = json.loads(r["payload"])
        items.append({
            "id": r["id"], "rule": r["rule"], "kind": r["kind"], "run_id": r["run_id"], "project": r["project"],
            "window_start": ns_to_iso(r["window_start_ns"]), "window_end": ns_to_iso(r["window_end_ns"]),
            "fired_at": ns_to_iso(r["fired_ns"]), "text": payload.get("text", ""), "status": r["status"],
            "attempts": r["attempts"], "next_attempt": ns_to_iso(r["next_attempt_ns"]),
            "last_error": r["last_error"], "delivered_at": ns_to_iso(r["delivered_ns"]),
        })
    return {"items": items, "counts": counts}


async def alerts_page(request: Request) -> Response:
    check_params(request, ("status",))
    status = request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        raise bad_request(f"status={status!r} is not one of {', '.join(STATUSES)}")
    store = request.app.state.store
    data = await run_in_threadpool(list_alerts, store, status=status)
    engine = getattr(request.app.state, "alerts", None)
    config = engine.config if engine is not None else None
    return render(request, "alerts.html", status=status, statuses=STATUSES, **data,
                  alerts_file=str(config.path) if config else None,
                  webhook=config.webhook.url if config else None,
                  rules=[(r.name, r.when) for r in config.rules] if config else [])


def _alert_row(store: Any, alert_id: int) -> dict[str, Any] | None:
    rows = store.execute("SELECT id, status, attempts, last_error, delivered_ns FROM alerts WHERE id = ?",
                         [alert_id])
    if not rows:
        return None
    r = rows[0]
    return {"id": r["id"], "status": r["status"], "attempts": r["attempts"], "last_error": r["last_error"],
            "delivered_at": ns_to_iso(r["delivered_ns"])}


async def retry_alert(request: Request) -> Response:
    """``POST /api/alerts/{id}/retry`` (JSON body ``{}``): post one failed firing again, answer its new state.

    409 when this server evaluates no alerts (it has no webhook to post to) or the
    alert is not failed; 404 for an unknown id. A webhook that fails again is not
    an error of this request: the answer is 200 with ``status = "failed"`` and the
    new ``last_error``.
    """
    require_same_site_json(request, "the retry")
    alert_id = int(request.path_params["alert_id"])
    engine = getattr(request.app.state, "alerts", None)
    if engine is None:
        raise HTTPException(409, "this server has no alert webhook to post to: start it with "
                                 "`runtrace serve --alerts alerts.toml` to retry alerts")
    try:
        await run_in_threadpool(engine.retry, alert_id)
    except LookupError as exc:  # alerts.deliver.UnknownAlertError
        raise HTTPException(404, str(exc)) from None
    except ValueError as exc:  # alerts.deliver.NotRetryableError
        raise HTTPException(409, str(exc)) from None
    row = await run_in_threadpool(_alert_row, request.app.state.store, alert_id)
    return JSONResponse(row)
