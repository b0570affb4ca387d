"""The one ASGI app of ``runtrace serve``: OTLP/HTTP receiver, web UI, JSON API and /metrics.

``create_app`` is the factory; ``uvicorn.run(create_app(path), ...)`` serves it.
The store is opened by the app's lifespan (or passed in already open, and then
left open), every read and write runs in a worker thread so the event loop
never waits on SQLite, and uvicorn's graceful shutdown finishes the requests in
flight before the lifespan closes the store: a batch that was answered 200 is
committed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..store.db import Store
from . import alerts_page, api, pages, whatif
from .admission import ByteBudget
from .auth import TokenAuth
from .headers import SecurityHeaders
from .receiver import DEFAULT_MAX_BODY_BYTES, receive_logs, receive_metrics, receive_traces

if TYPE_CHECKING:
    from ..alerts.config import AlertsConfig

__all__ = ["LOOPBACK_HOSTS", "create_app"]

STATIC_DIR = Path(__file__).parent / "static"
# Host headers a loopback-bound server answers to: a web page elsewhere cannot
# reach it through a DNS name that resolves to 127.0.0.1 (DNS rebinding).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def create_app(store_path: str | os.PathLike[str] | Store | None = None, *, token: str | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               allowed_hosts: Sequence[str] | None = None, max_decode_bytes: int | None = None,
               alerts: AlertsConfig | None = None, base_url: str = "http://127.0.0.1:4318",
               alerts_poll_seconds: float = 1.0) -> Starlette:
    """Build the app.

    ``store_path``: the SQLite file (created if missing; None means
    ``RUNTRACE_STORE`` or ``~/.runtrace/runtrace.db``), or an open :class:`Store`
    that the caller keeps and closes. ``token``: when set, every route but the
    static assets needs ``Authorization: Bearer <token>`` (or the session cookie
    that ``/?token=<token>`` sets for a browser). ``max_body_bytes``: the OTLP
    body limit, before and after gzip decompression. ``allowed_hosts``: Host
    header names to accept (None: any). ``max_decode_bytes``: OTLP body bytes
    read and decoded at once across requests (default ``max_body_bytes``; each
    costs about 10x in memory while decoded); beyond it a request is a 503.
    ``alerts``: rules evaluated as spans arrive, on background threads started and
    stopped by the lifespan (:mod:`runtrace.alerts.engine`); ``base_url`` is the
    address run links in alert messages point at, unless the alerts file names one.
    """
    if max_body_bytes <= 0:
        raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
    if token is not None and not token.strip():
        raise ValueError("token must not be empty")

    @contextlib.asynccontextmanager
    async def alerting(store: Store) -> AsyncIterator[None]:
        if alerts is None:
            yield
            return
        from ..alerts.engine import AlertEngine

        engine = AlertEngine(store.path, alerts, base_url=base_url, poll_seconds=alerts_poll_seconds)
        app.state.alerts = engine
        engine.start()
        try:
            yield
        finally:
            engine.stop()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if isinstance(store_path, Store):
            app.state.store = store_path
            async with alerting(store_path):
                yield
            return
        store = Store.open(store_path, create=True)
        app.state.store = store
        try:
            async with alerting(store):
                yield
        finally:
            store.close()

    routes = [
        Route("/", pages.runs_page, name="runs"),
        Route("/runs/{run_id}", pages.run_page, name="run"),
        Route("/search", pages.search_page, name="search"),
        Route("/spend", pages.spend_page, name="spend"),
        Route("/whatif", whatif.whatif_page, name="whatif"),
        Route("/alerts", alerts_page.alerts_page, name="alerts"),
        Route("/healthz", pages.healthz, name="healthz"),
        Route("/metrics", api.metrics, name="metrics"),
        Route("/api/runs", api.runs, name="api_runs"),
        Route("/api/runs/{run_id}", api.run, name="api_run"),
        Route("/api/runs/{run_id}/spans", api.run_spans, name="api_run_spans"),
        Route("/api/runs/{run_id}/spans/{span_id}", api.run_span, name="api_run_span"),
        Route("/api/runs/{run_id}/outcome", api.outcome, methods=["POST"], name="api_run_outcome"),
        Route("/api/alerts/{alert_id:int}/retry", alerts_page.retry_alert, methods=["POST"],
              name="api_alert_retry"),
        Route("/api/outcomes/pending", api.pending_outcomes, name="api_pending_outcomes"),
        Route("/v1/traces", receive_traces, methods=["POST"], name="otlp_traces"),
        Route("/v1/logs", receive_logs, methods=["POST"], name="otlp_logs"),
        Route("/v1/metrics", receive_metrics, methods=["POST"], name="otlp_metrics"),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    middleware = [Middleware(SecurityHeaders)]
    if allowed_hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    if token is not None:
        middleware.append(Middleware(TokenAuth, token=token))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers=pages.EXCEPTION_HANDLERS)
    app.state.max_body_bytes = max_body_bytes
    app.state.decode_budget = ByteBudget(max_decode_bytes or max_body_bytes)
    app.state.alerts = None
    if isinstance(store_path, Store):
        app.state.store = store_path
    return app
