"""One normalisation of attribute values, shared by both adapters.

OpenTelemetry values may be scalars, bytes, sequences, mappings or nested mixes
of them (the SDK accepts all of these, and OTLP's AnyValue can carry them). A
SpanRecord holds only scalars and flat tuples of scalars, so the rest is folded
the way the Collector's ``pcommon.Value.AsString`` folds it for ClickHouse:
bytes become base64 text, mappings and arrays that hold anything but scalars
become compact JSON text. Both adapters call :func:`normalise_value`, which is
what makes their records identical.

Also here: the JSON text the store keeps for attributes, resources and events,
and the way back to records.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .records import Attributes, AttrValue, EventRecord

try:  # optional: about 8x faster than the stdlib encoder, and JSON runs twice per stored span
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

_SCALARS = (str, bool, int, float)
_EXACT = frozenset(_SCALARS)
# Strict (allow_nan=False): the store's JSON must stay valid for SQLite's json functions.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False,
                            allow_nan=False)
_SORTED_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False,
                                   sort_keys=True, allow_nan=False)


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a nested value (bytes as base64, tuples as lists, NaN/inf as null)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [_plain(v) for v in value]
    return str(value)


def _exact_scalar(value: str | bool | int | float) -> str | bool | int | float:
    """A str/int/float subclass (an enum member, say) as the plain value protobuf would carry."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    return float(value)


def normalise_value(value: Any) -> AttrValue | None:
    """Fold any OpenTelemetry value into what a SpanRecord holds; None means "drop the key"."""
    if type(value) in _EXACT:
        return value  # type: ignore[no-any-return]
    if value is None:
        return None
    if isinstance(value, _SCALARS):
        return _exact_scalar(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return _SORTED_ENCODER.encode(_plain(value))
    if isinstance(value, Sequence):
        if all(isinstance(v, _SCALARS) for v in value):
            return tuple(v if type(v) in _EXACT else _exact_scalar(v) for v in value)
        return _SORTED_ENCODER.encode(_plain(value))
    return str(value)


def normalise_attributes(attributes: Mapping[str, Any] | None) -> Attributes:
    """Normalise a whole attribute mapping; the common all-scalar case is a plain copy."""
    if not attributes:
        return {}
    out: Attributes = {}
    for key, value in attributes.items():
        if type(value) in _EXACT:
            out[key] = value
        elif type(value) is tuple and all(type(v) in _EXACT for v in value):
            out[key] = value  # the SDK's own form of a list of scalars (finish reasons): kept as is
        else:
            folded = normalise_value(value)
            if folded is not None:
                out[key] = folded
    return out


def _std_dumps(obj: Any) -> str:
    try:
        return _ENCODER.encode(obj)
    except ValueError:  # a NaN or infinity somewhere: stored as null, like orjson does
        return _ENCODER.encode(_plain(obj))


def _orjson_dumps(obj: Any) -> str:
    try:
        return orjson.dumps(obj).decode()
    except TypeError:  # orjson.JSONEncodeError: an int beyond 64 bits
        return _std_dumps(obj)


#: Compact JSON text for stored attributes, resources and events: tuples become
#: arrays, NaN and infinities null. Any valid JSON will do here (it is parsed, never
#: compared as text), so orjson is used when installed.
dumps: Callable[[Any], str] = _orjson_dumps if orjson is not None else _std_dumps


def _orjson_loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # an int beyond 64 bits, which the stdlib encoder wrote
        return json.loads(text)


#: Stored JSON text back to Python values (orjson when installed: about 4x faster;
#: the run detail decodes two of these per span).
loads: Callable[[str], Any] = _orjson_loads if orjson is not None else json.loads


def events_json(events: Sequence[EventRecord]) -> str:
    if not events:
        return "[]"
    return dumps([{"name": e.name, "time_ns": e.time_ns, "attributes": e.attributes} for e in events])


def attributes_from_json(text: str | None) -> Attributes:
    """Stored attribute JSON back to record attributes (arrays back to tuples)."""
    if not text:
        return {}
    raw = loads(text)  # orjson when installed: the re-read recount decodes every read record of a run
    return {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}


def events_from_json(text: str | None) -> tuple[EventRecord, ...]:
    if not text:
        return ()
    return tuple(EventRecord(name=e["name"], time_ns=e["time_ns"],
                             attributes={k: tuple(v) if isinstance(v, list) else v
                                         for k, v in e["attributes"].items()})
                 for e in loads(text))
