"""Connection limits for ``runtrace serve``: slow or idle clients cannot starve the others.

uvicorn's h11 protocol has no deadline for a request's headers (its keep-alive
timer stops at the first byte) and accepts connections until the process runs
out of file descriptors; then ``accept()`` fails and every new client waits.
1,200 clients that never finish their headers were enough to time out normal
GETs, also with ``--token``, which is checked only once the headers are in.

:func:`limited_protocol` returns an ``H11Protocol`` subclass that

- closes a connection whose request head is not complete ``header_timeout``
  seconds after it connected or after its previous response;
- closes a connection whose request body stops arriving for ``body_timeout``
  seconds (unless the app is the one not reading);
- keeps at most ``max_connections`` open: a new one beyond that evicts the
  oldest connection still waiting for its headers, so a real client always
  gets in; only when every connection is busy with a request is the new one
  refused (closed at once).

``max_connections_for`` keeps the cap below the process's file-descriptor
limit, so ``accept()`` itself never fails.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import resource

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["DEFAULT_BODY_TIMEOUT", "DEFAULT_HEADER_TIMEOUT", "DEFAULT_MAX_CONNECTIONS", "accept_backlog_for",
           "limited_protocol",
           "max_connections_for", "raise_fd_limit"]

logger = logging.getLogger("runtrace.server")

DEFAULT_HEADER_TIMEOUT = 10.0  # seconds for a request line and headers (they fit in one packet)
DEFAULT_BODY_TIMEOUT = 30.0  # seconds without a byte of a request body
DEFAULT_MAX_CONNECTIONS = 1000
_FD_RESERVE = 256  # descriptors kept for the store (a connection per worker thread), logs and the listener


def raise_fd_limit(want: int = 65_536) -> int:
    """Raise the soft open-file limit towards the hard one (many systems start at 1,024); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # not allowed here: keep the limit we have
            pass
    return int(soft) if soft != resource.RLIM_INFINITY else want


def max_connections_for(wanted: int, fd_limit: int) -> int:
    """``wanted``, lowered so that open connections leave ``_FD_RESERVE`` descriptors free."""
    return max(16, min(wanted, fd_limit - _FD_RESERVE))


def accept_backlog_for(max_connections: int, fd_limit: int) -> int:
    """The listen backlog, which is also how many sockets asyncio accepts in one go before any
    ``connection_made`` can evict: small enough that a full batch on top of a full table fits the fd limit."""
    return max(16, min(2048, (fd_limit - _FD_RESERVE // 2 - max_connections) // 2))


def limited_protocol(*, header_timeout: float = DEFAULT_HEADER_TIMEOUT, body_timeout: float = DEFAULT_BODY_TIMEOUT,
                     max_connections: int = DEFAULT_MAX_CONNECTIONS) -> type[H11Protocol]:
    """An ``H11Protocol`` subclass with these limits (pass it as ``uvicorn.Config(http=...)``).

    Each call makes a fresh class with its own table of waiting connections, so
    two servers in one process do not evict each other's clients.
    """
    if header_timeout <= 0 or body_timeout <= 0 or max_connections < 1:
        raise ValueError("header_timeout and body_timeout must be positive, max_connections at least 1")
    # Connections waiting for a request head, oldest first (dict order); the eviction candidates.
    waiting: collections.OrderedDict[LimitedH11Protocol, None] = collections.OrderedDict()

    class LimitedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _deadline_kind = ""  # "head" or "body"

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._await_head()
            if len(self.connections) > max_connections:
                self._make_room()

        def data_received(self, data: bytes) -> None:
            if self.conn.their_state is h11.SEND_BODY:
                self._arm("body")  # a byte of body came: the idle clock starts again
            super().data_received(data)
            self._after_events()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._after_events()

        def connection_lost(self, exc: Exception | None) -> None:
            waiting.pop(self, None)
            self._disarm()
            super().connection_lost(exc)

        # --- the limits ---------------------------------------------------------

        def _after_events(self) -> None:
            """Follow h11's state: waiting for a head, receiving a body, or neither."""
            state = self.conn.their_state
            if state is h11.IDLE and (self.cycle is None or self.cycle.response_complete):
                if self not in waiting:
                    self._await_head()
            elif state is h11.SEND_BODY:
                waiting.pop(self, None)
                if self._deadline is None or self._deadline_kind != "body":
                    self._arm("body")
            else:
                waiting.pop(self, None)
                self._disarm()

        def _await_head(self) -> None:
            waiting[self] = None
            self._arm("head")

        def _arm(self, kind: str) -> None:
            self._disarm()
            self._deadline_kind = kind
            if kind == "body":
                self._deadline = self.loop.call_later(body_timeout, self._body_stalled)
            else:
                self._deadline = self.loop.call_later(header_timeout, self._head_late)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _head_late(self) -> None:
            self._deadline = None
            if self in waiting:
                self._drop("its request headers took longer than %.0f s", header_timeout)

        def _body_stalled(self) -> None:
            self._deadline = None
            if self.conn.their_state is not h11.SEND_BODY:
                return
            if self.flow.read_paused:  # the app is not reading: not the client's fault
                self._arm("body")
                return
            self._drop("no byte of its request body came for %.0f s", body_timeout)

        def _make_room(self) -> None:
            oldest = next((p for p in waiting if p is not self and not p.transport.is_closing()), None)
            if oldest is not None:
                oldest._drop("the server is at its %d-connection limit and it sent no request yet",
                             max_connections)
            else:
                self._drop("the server is at its %d-connection limit, all of them busy", max_connections)

        def _drop(self, why: str, *args: object) -> None:
            waiting.pop(self, None)
            self._disarm()
            if self.transport.is_closing():
                return
            logger.debug("runtrace serve: closing a connection from %s: " + why, self.client, *args)
            if self.cycle is not None and not self.cycle.response_complete:
                self.cycle.disconnected = True
            try:
                self.conn.send(h11.ConnectionClosed())
            except h11.LocalProtocolError:
                pass
            self.transport.close()

    return LimitedH11Protocol
