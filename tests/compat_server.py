"""A real HTTP server on 127.0.0.1 that speaks OpenAI chat completions (JSON and SSE).

For clients that build their own HTTP clients (LiteLLM) and cannot be handed a
mock transport: point them at ``server.base_url``. Answers come from a queue of
``llm_fakes.Reply`` objects (or ``default``); every request is recorded as
``(path, json body)`` so a test can assert that a budget stop sent nothing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from llm_fakes import Reply


class CompatServer:
    def __init__(self, replies: Iterable[Reply] = (), *, default: Reply | None = None) -> None:
        self.replies = list(replies)
        self.default = default
        self.requests: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                with owner._lock:
                    owner.requests.append((self.path, body))
                    reply = owner.replies.pop(0) if owner.replies else owner.default
                if reply is None:
                    reply = Reply(status=500, json={"error": {"message": "no reply scripted"}})
                if reply.sse is not None:
                    payload, ctype = reply.sse, "text/event-stream"
                else:
                    payload, ctype = json.dumps(reply.json).encode(), "application/json"
                self.send_response(reply.status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(payload)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def start(self) -> CompatServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


@contextmanager
def compat_server(replies: Iterable[Reply] = (), *, default: Reply | None = None) -> Iterator[CompatServer]:
    server = CompatServer(replies, default=default).start()
    try:
        yield server
    finally:
        server.close()
