"""Replay the embedded store's spans as OTLP/HTTP protobuf to a collector (``runtrace forward``).

A team that started on one machine moves its history to the scale path without
losing any: spans go out in store insertion order (``spans.rowid``), in batches,
and after each batch the receiver acknowledged, the last rowid sent is saved in
the store (table ``forward_checkpoints``, one row per target URL). An
interrupted forward (Ctrl-C, the collector down for longer than the retries)
resumes after the last acknowledged batch; spans stored later, even with older
timestamps (a late verdict, another process's spans), are picked up by the next
forward. The batch in flight when the connection broke may be re-sent: the
embedded store's receiver (``runtrace serve``) drops such duplicates by
(trace id, span id); ClickHouse keeps what it is given (see docs/scale.md).

Retries follow the OTLP/HTTP spec: 429, 502, 503, 504 and connection errors are
retried with exponential backoff, honouring ``Retry-After``; any other status
stops the forward with a message naming it.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from ..store.db import RECORD_COLUMNS, Store, connect, record_from_row
from ..store.otlp import encode_otlp_protobuf
from ..store.records import SpanRecord

__all__ = ["ForwardError", "ForwardResult", "Forwarder", "traces_url"]

RETRYABLE = frozenset({429, 502, 503, 504})
PROTOBUF = "application/x-protobuf"
_CHECKPOINT_DDL = """
CREATE TABLE IF NOT EXISTS forward_checkpoints (
    target TEXT PRIMARY KEY NOT NULL,   -- the OTLP/HTTP traces URL
    last_rowid INTEGER NOT NULL,        -- spans.rowid of the last span the target acknowledged
    spans_sent INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL
)"""
_SPAN_COLUMNS = f"rowid, {RECORD_COLUMNS}"


class ForwardError(RuntimeError):
    """The target refused a batch, or stayed unreachable; the checkpoint keeps what was sent."""


@dataclass(frozen=True, slots=True)
class ForwardResult:
    target: str
    sent: int  # spans acknowledged in this call
    batches: int
    resumed_after: int  # spans.rowid the call started after (0: from the beginning)
    last_rowid: int
    rejected: int  # spans the target reported as rejected (partial success); not retried


def traces_url(url: str) -> str:
    """``http://host:4318`` -> ``http://host:4318/v1/traces``; a URL ending in /v1/traces is kept."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"--to must be an http(s) URL such as http://localhost:4318, got {url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/v1/traces"):
        path += "/v1/traces"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _rejected(reply: bytes) -> int:
    """Spans a 200 reply reports as rejected (OTLP partial success); must not be retried."""
    if not reply:
        return 0
    try:
        response = ExportTraceServiceResponse.FromString(reply)
    except DecodeError:
        return 0  # not an OTLP protobuf reply (a proxy's page): the 200 is all we know
    return int(response.partial_success.rejected_spans) if response.HasField("partial_success") else 0


class Forwarder:
    """Sends one store's spans to one OTLP/HTTP traces URL, resumably."""

    def __init__(self, store: Store, url: str, *, batch_size: int = 500, timeout_s: float = 30.0,
                 max_attempts: int = 6, backoff_s: float = 1.0, max_backoff_s: float = 30.0,
                 headers: dict[str, str] | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"--batch must be at least 1, got {batch_size}")
        self.store = store
        self.url = traces_url(url)
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.headers = {"Content-Type": PROTOBUF, "Accept": PROTOBUF, **(headers or {})}
        self._conn = connect(store.path)
        self._conn.execute(_CHECKPOINT_DDL)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Forwarder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- checkpoint ------------------------------------------------------------------

    def checkpoint(self) -> tuple[int, int]:
        """(last rowid acknowledged, spans sent so far) for this target."""
        row = self._conn.execute("SELECT last_rowid, spans_sent FROM forward_checkpoints WHERE target = ?",
                                 (self.url,)).fetchone()
        return (row["last_rowid"], row["spans_sent"]) if row is not None else (0, 0)

    def reset(self) -> None:
        """Forget this target's checkpoint: the next forward sends everything again."""
        self._conn.execute("DELETE FROM forward_checkpoints WHERE target = ?", (self.url,))

    def _save(self, last_rowid: int, spans_sent: int) -> None:
        self._conn.execute(
            "INSERT INTO forward_checkpoints (target, last_rowid, spans_sent, updated_ns) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(target) DO UPDATE SET last_rowid = excluded.last_rowid,"
            " spans_sent = excluded.spans_sent, updated_ns = excluded.updated_ns",
            (self.url, last_rowid, spans_sent, time.time_ns()))

    def pending(self) -> int:
        """Spans stored after the checkpoint: what the next forward will send."""
        last, _ = self.checkpoint()
        return int(self.store.execute("SELECT count(*) FROM spans WHERE rowid > ?", (last,))[0][0])

    # --- sending ---------------------------------------------------------------------

    def _batches(self, after: int) -> Iterator[tuple[int, list[SpanRecord]]]:
        resources: dict[str, Any] = {}
        while True:
            rows = self.store.execute(f"SELECT {_SPAN_COLUMNS} FROM spans WHERE rowid > ? ORDER BY rowid LIMIT ?",
                                      (after, self.batch_size))
            if not rows:
                return
            after = rows[-1]["rowid"]
            yield after, [record_from_row(r, resources) for r in rows]

    def _post(self, body: bytes) -> bytes:
        delay = self.backoff_s
        for attempt in range(1, self.max_attempts + 1):
            request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
            wait: float | None = None
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    reply: bytes = response.read()
                    return reply
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:300].decode("utf-8", "replace")
                if exc.code not in RETRYABLE:
                    raise ForwardError(f"{self.url} refused a batch with HTTP {exc.code}: {detail}") from exc
                problem = f"HTTP {exc.code}"
                wait = _retry_after(exc.headers.get("Retry-After"))
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                problem = str(getattr(exc, "reason", exc))
            if attempt == self.max_attempts:
                raise ForwardError(f"{self.url} unreachable after {attempt} attempts ({problem}); "
                                   "run the same command again to resume")
            time.sleep(min(wait if wait is not None else delay, self.max_backoff_s))
            delay = min(delay * 2, self.max_backoff_s)
        raise AssertionError("unreachable")  # pragma: no cover

    def run(self, *, on_batch: Callable[[int], None] | None = None) -> ForwardResult:
        """Send everything after the checkpoint; ``on_batch(n)`` after each acknowledged batch of n spans."""
        start, sent_before = self.checkpoint()
        last, sent, batches, rejected = start, 0, 0, 0
        for last_rowid, records in self._batches(start):
            reply = self._post(encode_otlp_protobuf(records))
            rejected += _rejected(reply)
            last = last_rowid
            sent += len(records)
            batches += 1
            self._save(last, sent_before + sent)
            if on_batch is not None:
                on_batch(len(records))
        return ForwardResult(self.url, sent, batches, start, last, rejected)
