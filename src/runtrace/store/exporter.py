"""StoreSpanExporter: the SDK's finished spans straight into the embedded store.

Put it behind a BatchSpanProcessor. ``export`` answers SUCCESS or FAILURE and
never raises: a full disk or a locked file must not break the traced program.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .._internal import log_internal_error
from .db import Store
from .errors import StoreError
from .sdk_adapter import records_from_sdk

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

logger = logging.getLogger("runtrace")


class StoreSpanExporter(SpanExporter):
    """Export to a :class:`Store`, given one or a path (``None``: ``RUNTRACE_STORE`` or the default).

    A store the exporter opened itself is closed by :meth:`shutdown`; one passed in is left to
    its owner unless ``close_store=True``.
    """

    def __init__(self, store: Store | str | os.PathLike[str] | None = None, *,
                 close_store: bool | None = None) -> None:
        opened_here = not isinstance(store, Store)
        self.store: Store = store if isinstance(store, Store) else Store.open(store)
        self._close_store = opened_here if close_store is None else close_store
        self._shut_down = False
        self._warned = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shut_down:
            return SpanExportResult.FAILURE
        try:
            self.store.ingest(records_from_sdk(spans))
        except (StoreError, sqlite3.Error, OSError) as exc:
            # The environment, not a bug: a closed store, a locked or full disk. Say so once.
            if not self._warned:
                self._warned = True
                logger.warning("runtrace: could not store %d spans in %s: %s", len(spans),
                               self.store.path, exc)
            else:
                logger.debug("runtrace: could not store %d spans: %s", len(spans), exc)
            return SpanExportResult.FAILURE
        except Exception as exc:  # noqa: BLE001 - a bug of ours must not reach the traced program
            log_internal_error("store.exporter.export", exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        if self._shut_down:
            return
        self._shut_down = True
        if self._close_store:
            self.store.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        # Every export is written and committed before it returns; nothing is buffered here.
        return True
