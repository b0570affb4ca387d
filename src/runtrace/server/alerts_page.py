"""The Alerts page: every firing of ``serve --alerts`` rules, newest first, with its delivery status.

Reads the store's ``alerts`` table (migration m004), so it also shows firings
recorded by an earlier run of the server or by another server on the same file.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..display import ns_to_iso
from .pages import bad_request, check_params, render

__all__ = ["STATUSES", "alerts_page", "list_alerts"]

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
