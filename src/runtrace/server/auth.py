"""Bearer-token guard for the whole app: the OTLP receiver, the API, /metrics and the UI.

Programs send ``Authorization: Bearer <token>``. A person opens
``http://host:port/?token=<token>`` once; the guard answers with a cookie that
holds a keyed digest of the token (never the token itself) and redirects to the
same page without the token in its address, so it does not linger in the
history. Comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, quote, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["COOKIE_NAME", "TokenAuth"]

COOKIE_NAME = "runtrace_session"
_MACHINE_PREFIXES = ("/v1/", "/api/", "/metrics")
_PUBLIC_PREFIX = "/static/"  # the stylesheet and script are the same in every copy of runtrace

_LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>runtrace: token required</title><link rel="stylesheet" href="/static/style.css"></head>
<body><main class="narrow"><h1>runtrace</h1><p>This server needs its access token.
Open this page again with <code>?token=YOUR_TOKEN</code> added to the address, or send
<code>Authorization: Bearer YOUR_TOKEN</code>.</p></main></body></html>"""


_URL_SAFE = "/%:@!$&'()*+,;=-._~"  # what may stay unescaped in a path; a backslash or a control char may not


def same_site_path(scope: Scope) -> str:
    """The request's path as a redirect target that can only stay on this site.

    Built from the raw (still percent-encoded) path, with anything unusual
    escaped, so no CR/LF reaches the header; leading slashes collapse to one,
    because ``//evil.example/`` (or ``/\\evil.example``, which browsers read
    the same) in a Location header is another site.
    """
    raw = scope.get("raw_path")  # uvicorn's already starts with the root path, like scope["path"]
    text = raw.decode("latin-1") if isinstance(raw, bytes) else str(scope["path"])
    path = quote(text, safe=_URL_SAFE)
    return "/" + path.lstrip("/")


class TokenAuth:
    """ASGI middleware: let a request through only with the right token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token:
            raise ValueError("TokenAuth needs a non-empty token")
        self.app = app
        self._token = token.encode()
        self._session = hmac.new(self._token, b"runtrace ui session", hashlib.sha256).hexdigest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_PUBLIC_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self._bearer_ok(headers.get("authorization", "")) or self._cookie_ok(headers.get("cookie", "")):
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        offered = next((v for k, v in query if k == "token"), None)
        if offered is not None and scope["method"] in ("GET", "HEAD") and \
                hmac.compare_digest(offered.encode(), self._token):
            await self._login(scope, query, send)
            return
        await self._refuse(scope, send)

    def _bearer_ok(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self._token)

    def _cookie_ok(self, header: str) -> bool:
        if not header:
            return False
        jar = SimpleCookie()
        try:
            jar.load(header)
        except Exception:  # noqa: BLE001 - a mangled cookie header is just "not logged in"
            return False
        morsel = jar.get(COOKIE_NAME)
        return morsel is not None and hmac.compare_digest(morsel.value.encode(), self._session.encode())

    async def _login(self, scope: Scope, query: list[tuple[str, str]], send: Send) -> None:
        rest = urlencode([(k, v) for k, v in query if k != "token"])
        location = same_site_path(scope) + (f"?{rest}" if rest else "")
        cookie = f"{COOKIE_NAME}={self._session}; HttpOnly; SameSite=Strict; Path=/"
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", location.encode("latin-1", "replace")),
                                (b"set-cookie", cookie.encode()), (b"content-length", b"0"),
                                (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": b""})

    async def _refuse(self, scope: Scope, send: Send) -> None:
        path: str = scope["path"]
        if path.startswith(_MACHINE_PREFIXES):
            body = json.dumps({"code": 16, "message": "missing or wrong bearer token"}).encode()
            content_type = b"application/json"
        else:
            body = _LOGIN_PAGE.encode()
            content_type = b"text/html; charset=utf-8"
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", content_type), (b"www-authenticate", b'Bearer realm="runtrace"'),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
