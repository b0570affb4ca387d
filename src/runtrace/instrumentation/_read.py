"""Reading SDK objects and JSON bodies alike: what every provider module reads requests and responses with.

A provider's request arrives as keyword arguments holding SDK models, dicts or
the SDKs' ``NOT_GIVEN`` sentinels; its response is a model object, a raw JSON
body or a stream chunk. These readers walk all of them the same way and never
raise on a shape they did not expect (a missing step is ``None``), never
iterate a generator the SDK has yet to send, and cache what a client asks the
same every call (its server address).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .. import semconv

_SENTINELS = frozenset({"NotGiven", "Omit", "NoneType"})


# --- reading SDK objects and JSON bodies alike ------------------------------------

def given(value: Any) -> bool:
    """False for None and for the SDKs' ``NOT_GIVEN``/``omit`` sentinels."""
    return type(value).__name__ not in _SENTINELS


def get(obj: Any, *path: str) -> Any:
    """Walk ``path`` through mappings and attributes alike; None when any step is missing."""
    for name in path:
        if obj is None:
            return None
        cls = type(obj)
        mapping = _MAPPING_TYPES.get(cls)
        if mapping is None:  # the ABC check once per type, not per read (chunks are read field by field)
            mapping = isinstance(obj, Mapping)
            if len(_MAPPING_TYPES) < 4096:
                _MAPPING_TYPES[cls] = mapping
        obj = obj.get(name) if mapping else getattr(obj, name, None)
    return obj if type(obj).__name__ not in _SENTINELS else None  # given(), inlined: every read ends here


_MAPPING_TYPES: dict[type, bool] = {dict: True}


def as_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def as_list(value: Any) -> list[Any]:
    """A list of the items of ``value`` when it is a list or tuple; never iterates a generator."""
    return list(value) if isinstance(value, (list, tuple)) else []


def to_json(value: Any) -> str:
    """Compact JSON for span attributes; SDK models are dumped, unknown objects become strings."""
    def default(obj: Any) -> Any:
        dump = getattr(obj, "model_dump", None)
        if callable(dump):
            return dump(mode="json", exclude_none=True)
        return str(obj)

    return json.dumps(value, default=default, ensure_ascii=False, separators=(",", ":"))


_server_attributes: dict[str, dict[str, Any]] = {}  # base URL -> its attributes (a client has one)


def server_attributes(client: Any) -> dict[str, Any]:
    """server.address / server.port from an SDK client's ``base_url``."""
    return dict(shared_server_attributes(client))


_server_by_url_object: dict[int, tuple[Any, dict[str, Any]]] = {}  # id(base_url) -> (base_url, attrs)


def shared_server_attributes(client: Any) -> Mapping[str, Any]:
    """:func:`server_attributes` without the copy, for callers that only read it (every request).

    A client keeps one ``base_url`` object, so the attributes are found by that
    object's identity before ``str()`` of an httpx URL (a few us) is paid. The
    URL object is held in the cache, so its id cannot be reused by another object.
    """
    base_url = get(client, "base_url")
    if base_url is None:
        return {}
    if type(base_url) is str:  # a fresh string each time: found by value
        return _server_attributes_of(base_url)
    hit = _server_by_url_object.get(id(base_url))
    if hit is not None and hit[0] is base_url:
        return hit[1]
    attrs = _server_attributes_of(str(base_url))
    if len(_server_by_url_object) >= 256:
        _server_by_url_object.clear()
    _server_by_url_object[id(base_url)] = (base_url, attrs)
    return attrs


def _server_attributes_of(url: str) -> dict[str, Any]:
    cached = _server_attributes.get(url)
    if cached is not None:
        return cached
    parts = urlsplit(url)
    attrs: dict[str, Any] = {}
    if parts.hostname:
        attrs[semconv.SERVER_ADDRESS] = parts.hostname
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
        if port is not None:
            attrs[semconv.SERVER_PORT] = port
    if len(_server_attributes) >= 256:  # bounded: programs talk to a handful of endpoints
        _server_attributes.clear()
    _server_attributes[url] = attrs
    return attrs


def put(attrs: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` when ``value`` is a real value (not None, not an SDK sentinel)."""
    if value is not None and type(value).__name__ not in _SENTINELS:  # given(), inlined: ~15 puts a call
        attrs[key] = value


# --- the normalised response ----------------------------------------------------------


def flatten_text(content: Any) -> str:
    """The text of a message's content: a string, or the text of its parts, in order."""
    if isinstance(content, str):
        return content
    pieces: list[str] = []
    for part in as_list(content):
        if isinstance(part, str):
            pieces.append(part)
            continue
        text = get(part, "text")
        if isinstance(text, str):
            pieces.append(text)
            continue
        nested = get(part, "content")  # tool results carry their own content
        if nested is not None:
            pieces.append(flatten_text(nested))
            continue
        kind = get(part, "type")
        if isinstance(kind, str):
            pieces.append(f"[{kind}]")  # an image or file: counted, not read
    return "\n".join(pieces)


def strings(values: Iterable[Any]) -> list[str]:
    return [v for v in values if isinstance(v, str)]


def stop_sequences(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    items = strings(as_list(value))
    return items or None



def dump(value: Any) -> Any:
    """An SDK model as JSON by alias (the provider's wire names, Gemini's camelCase); other values as they are."""
    method = getattr(value, "model_dump", None)
    return method(mode="json", by_alias=True, exclude_none=True) if callable(method) else value


def listed(value: Any) -> list[Any] | None:
    """``value``'s items when it is a list or tuple, else None: a generator of messages is never consumed."""
    return list(value) if isinstance(value, (list, tuple)) else None
