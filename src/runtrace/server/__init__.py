"""``runtrace serve``: OTLP/HTTP receiver, web UI, JSON API and /metrics, as one ASGI app.

Needs the ``serve`` extra (starlette, uvicorn, jinja2).
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
