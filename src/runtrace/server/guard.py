"""The cross-site guard of every state-changing route (verdicts, alert retries): JSON from this site only.

Why JSON: a cross-site HTML form can send form-encoded or plain text bodies
without a CORS preflight, never ``application/json``, so a page elsewhere cannot
make a logged-in browser change anything here. A request whose ``Origin`` names
another host is refused for the same reason. The bearer token / session cookie
(``auth.py``, SameSite=Strict) is checked before a route runs.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request

__all__ = ["require_same_site_json"]


def require_same_site_json(request: Request, what: str) -> None:
    """415 unless the body is declared JSON, 403 when ``Origin`` is another host; ``what`` names the body."""
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != "application/json":
        raise HTTPException(415, f"send {what} as JSON (Content-Type: application/json), not "
                                 f"{content_type or 'no content type'}")
    origin = request.headers.get("origin")
    if origin is not None and origin.partition("://")[2].rstrip("/") != request.headers.get("host", ""):
        raise HTTPException(403, f"cross-site request from {origin!r} refused")
