"""Errors raised by the embedded store, so callers can catch narrowly or broadly.

    StoreError
     ├── StoreClosedError        a Store used after close()
     ├── StoreNotFoundError      Store.open(path, create=False) on a missing file
     ├── StoreVersionError       the file was written by a newer runtrace
     ├── ForeignStoreError       the file is another program's SQLite database
     ├── StoreReadOnlyError      a write to a store opened read-only
     ├── AmbiguousRunIdError     a run id prefix matches several runs (also a LookupError)
     └── UnknownRunError         a verdict names a run this store does not hold (also a LookupError)
    OTLPDecodeError (ValueError) a malformed OTLP body; the message names the field

``OTLPDecodeError`` is a ``ValueError`` rather than a ``StoreError`` because it
is about the caller's bytes, not the store: the HTTP receiver maps it to a 400.
"""

from __future__ import annotations

from collections.abc import Sequence


class StoreError(Exception):
    """Base class for errors of the embedded store."""


class StoreClosedError(StoreError):
    """The Store was closed; open a new one."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """No store file exists at the given path and creating one was not asked for."""


class StoreVersionError(StoreError):
    """The store file's schema is newer than this runtrace understands."""


class ForeignStoreError(StoreError):
    """The file is an SQLite database of another program; runtrace adds nothing to it."""


class StoreReadOnlyError(StoreError):
    """The store was opened read-only (a read-only file or mount) and cannot take writes."""


class AmbiguousRunIdError(StoreError, LookupError):
    """A run id prefix matched more than one run."""

    def __init__(self, prefix: str, candidates: Sequence[str]) -> None:
        self.prefix = prefix
        self.candidates = tuple(candidates)
        shown = ", ".join(self.candidates[:10])
        more = "" if len(self.candidates) <= 10 else ", ..."
        super().__init__(f"run id prefix {prefix!r} is ambiguous: it matches {shown}{more}")


class UnknownRunError(StoreError, LookupError):
    """A verdict was given for a run id this store does not hold; nothing was recorded."""


class OTLPDecodeError(ValueError):
    """An OTLP/protobuf or OTLP/JSON body that cannot be read; the message names the problem."""
