"""The minimal hand-written OTLP/HTTP receiver ``bench/ingest.py`` measures ``runtrace serve`` against.

A bare ASGI app under the same uvicorn: POST /v1/traces reads the body,
parses the protobuf, turns every span into a row of the store's ``spans``
table (ids as hex, attributes as JSON, the denormalised columns read straight
off the attributes) and writes the batch with one ``executemany`` in one
transaction. No gzip, no validation beyond protobuf's, no duplicate check, no
run aggregation, no pricing: the least a receiver into this schema can do.

    python bench/_minimal_receiver.py --store PATH --port PORT
"""

from __future__ import annotations

import argparse
import asyncio
import threading
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from runtrace import semconv as sc
from runtrace.store.db import connect
from runtrace.store.ingest import INSERT_SPAN_SQL
from runtrace.store.migrations import migrate
from runtrace.store.values import dumps

_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}
_OK = ExportTraceServiceResponse().SerializeToString()


def _value(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, which) if which else None


def rows_from_body(body: bytes) -> list[tuple[Any, ...]]:
    request = ExportTraceServiceRequest.FromString(body)
    rows = []
    for rs in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
        resource_json = dumps(resource)
        service = resource.get(sc.SERVICE_NAME)
        for ss in rs.scope_spans:
            for s in ss.spans:
                a = {kv.key: _value(kv.value) for kv in s.attributes}
                rows.append((
                    s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex() or None, a.get(sc.RUN_ID), s.name,
                    "other", _KINDS[s.kind], s.start_time_unix_nano, s.end_time_unix_nano, _STATUS[s.status.code],
                    s.status.message or None, service, a.get(sc.GEN_AI_REQUEST_MODEL),
                    a.get(sc.GEN_AI_PROVIDER_NAME), a.get(sc.GEN_AI_USAGE_INPUT_TOKENS),
                    a.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS), a.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
                    a.get(sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS), a.get(sc.COST_USD), a.get(sc.GEN_AI_TOOL_NAME),
                    dumps(a), resource_json, "[]", ss.scope.name or None, ss.scope.version or None,
                    0, 0,  # usage_below, counted (m002): the minimal path keeps no innermost state
                ))
    return rows


def make_app(store: str) -> Any:
    conn = connect(store)
    migrate(conn)
    lock = threading.Lock()

    def write(body: bytes) -> None:
        rows = rows_from_body(body)
        with lock:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(INSERT_SPAN_SQL, rows)
            conn.execute("COMMIT")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    conn.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"] == "/healthz":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        await asyncio.to_thread(write, b"".join(chunks))  # like serve: SQLite off the event loop
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/x-protobuf")]})
        await send({"type": "http.response.body", "body": _OK})

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(make_app(args.store), host="127.0.0.1", port=args.port, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
