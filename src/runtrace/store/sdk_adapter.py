"""SDK finished spans -> SpanRecords, read straight from the SDK objects.

This is the in-process hot path: the standard OTLP encoder manages about
11k spans/s here, building records directly several times that, so nothing is
encoded to protobuf and back. ``tests/test_adapters.py`` proves the result is
identical to encoding with the standard OTLP encoder and decoding with
:mod:`runtrace.store.otlp`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind, StatusCode

from .records import Attributes, EventRecord, SpanRecord
from .values import normalise_attributes

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

_STATUS_NAMES = {0: "UNSET", 1: "OK", 2: "ERROR"}
# The enum members by identity: ``member.name`` / ``.value`` are Python-level properties
# (``enum.property.__get__``, two calls a span), a dict keyed by ``id`` is one C lookup.
# Members are singletons, so the id stands for the member; anything else takes the property.
_KIND_BY_ID: dict[int, str] = {id(kind): kind.name for kind in SpanKind}
_STATUS_BY_ID: dict[int, str] = {id(code): _STATUS_NAMES[code.value] for code in StatusCode}


def _attributes_of(span: ReadableSpan) -> Mapping[str, Any] | None:
    """The finished span's attributes as the plain dict the SDK keeps them in, when it does.

    ``ReadableSpan.attributes`` is a ``mappingproxy`` over the SDK's
    ``BoundedAttributes``, a ``MutableMapping`` written in Python: copying through
    both walks the Mapping ABC, one Python ``__iter__`` step and ``__getitem__``
    per key (about half of ``records_from_sdk``). A finished span's attributes no
    longer change, so reading the dict inside is the same mapping; any other shape
    (another SDK release, a span class of its own) takes the public property.
    """
    raw = getattr(getattr(span, "_attributes", None), "_dict", None)
    return raw if type(raw) is dict else span.attributes


def records_from_sdk(spans: Sequence[ReadableSpan]) -> list[SpanRecord]:
    """Normalise finished SDK spans; resources shared by the batch are normalised once."""
    resources: dict[int, Attributes] = {}
    out: list[SpanRecord] = []
    append = out.append
    for span in spans:
        ctx = span.context
        parent = span.parent
        parent_id = parent.span_id if parent is not None else 0
        resource = span.resource
        res = resources.get(id(resource))
        if res is None:
            res = resources[id(resource)] = normalise_attributes(resource.attributes)
        status = span.status
        kind, code = span.kind, status.status_code
        scope = span.instrumentation_scope
        events = span.events
        append(SpanRecord(  # positional: the keyword form costs a dict of 14 names a span
            f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}", f"{parent_id:016x}" if parent_id else None,
            span.name, _KIND_BY_ID.get(id(kind)) or kind.name, span.start_time or 0, span.end_time or 0,
            _STATUS_BY_ID.get(id(code)) or _STATUS_NAMES[code.value], status.description or None,
            normalise_attributes(_attributes_of(span)), res,
            tuple(EventRecord(e.name, e.timestamp, normalise_attributes(e.attributes)) for e in events)
            if events else (),
            (scope.name or None) if scope is not None else None,
            (scope.version or None) if scope is not None else None,
        ))
    return out
