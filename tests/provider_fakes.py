"""A fake Gemini / Mistral / Bedrock endpoint on 127.0.0.1 speaking each provider's wire format.

The real client libraries talk to it over HTTP (``http_options={"base_url": ...}``,
``server_url=...``, ``endpoint_url=...``), so the tests exercise what the SDKs
really send and parse. Bedrock streams use the AWS event-stream binary encoding
(prelude, headers, CRC32s), written here because botocore only decodes it.

Replies are queued per test (``server.replies.append(...)``); every request is
kept in ``server.requests`` so a budget test can prove nothing was sent.
"""

from __future__ import annotations

import binascii
import json
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    body: bytes
    content_type: str = "application/json"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(body: Any, status: int = 200, **headers: str) -> Reply:
    return Reply(json.dumps(body).encode(), status=status, headers=dict(headers))


def sse_reply(payloads: Iterable[Any], *, done: bool = False) -> Reply:
    out = b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads)
    if done:
        out += b"data: [DONE]\n\n"
    return Reply(out, content_type="text/event-stream")


# --- AWS event-stream encoding ------------------------------------------------------

def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return struct.pack("!B", len(raw_name)) + raw_name + struct.pack("!BH", 7, len(raw_value)) + raw_value


def event_message(event_type: str, payload: Any) -> bytes:
    """One event-stream message: prelude (lengths + CRC), headers, JSON payload, message CRC."""
    headers = (_header(":event-type", event_type) + _header(":content-type", "application/json")
               + _header(":message-type", "event"))
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack("!II", total, len(headers))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + headers + body
    return message + struct.pack("!I", binascii.crc32(message) & 0xFFFFFFFF)


def event_stream_reply(events: Iterable[tuple[str, Any]]) -> Reply:
    return Reply(b"".join(event_message(kind, payload) for kind, payload in events),
                 content_type="application/vnd.amazon.eventstream")


# --- the server ---------------------------------------------------------------------------

@dataclass
class Seen:
    method: str
    path: str
    body: Any


class FakeProviders:
    """A ThreadingHTTPServer; use as a context manager, ``url`` is its base URL."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[Seen] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                owner.requests.append(Seen("POST", self.path, body))
                reply = owner.replies.pop(0) if owner.replies else json_reply({"error": "no reply queued"}, 500)
                self.send_response(reply.status)
                self.send_header("content-type", reply.content_type)
                self.send_header("content-length", str(len(reply.body)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST  # noqa: N815 - Bedrock's control plane lists with GET

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeProviders:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve() -> Iterator[FakeProviders]:
    with FakeProviders() as fake:
        yield fake
