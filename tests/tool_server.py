"""A tool server in its own process, for tests/test_cross_process.py.

``python tool_server.py STORE``: instruments runtrace into the SQLite store
STORE, serves ``POST /search`` on a free port of 127.0.0.1, prints the port on
one line and runs until its stdin is closed. Each request's W3C ``traceparent``
and ``baggage`` headers are extracted, so its spans join the caller's trace
and run; they are flushed to the store before the response is sent, so the
caller finds them there as soon as it has the answer.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind

import runtrace

INDEX = ("trace", "tracer", "track", "metric", "meter", "span")


@runtrace.tool
def search_index(query: str) -> list[str]:
    """Words of the index that contain the query."""
    return [word for word in INDEX if query in word]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the http.server spelling
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        token = context.attach(propagate.extract(self.headers))
        try:
            tracer = trace.get_tracer("tool-server")
            with tracer.start_as_current_span(f"POST {self.path}", kind=SpanKind.SERVER):
                hits = search_index(body["query"])
        finally:
            context.detach(token)
        runtrace.flush()
        payload = json.dumps({"hits": hits}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass


def main(store: str) -> None:
    runtrace.instrument(service_name="tool-server", store=store)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def stop_when_stdin_closes() -> None:
        sys.stdin.read()
        server.shutdown()

    threading.Thread(target=stop_when_stdin_closes, daemon=True).start()
    print(server.server_address[1], flush=True)
    server.serve_forever()
    server.server_close()
    runtrace.uninstrument()


if __name__ == "__main__":
    main(sys.argv[1])
