"""Reading the agents' loosely typed attribute values: counts, flags, text, JSON, resources.

The three agents send the same fact as an int, a digit string or a float, a
flag as a bool or "true", tool arguments as JSON text or as a value. Every
adapter reads them through these few functions, so a value one agent sends
oddly is read the same way in all three (and never raises: a value that is not
what it should be reads as None).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import semconv as sc
from ..store.records import Attributes, AttrValue


def to_int(value: Any) -> int | None:
    """A count the agents send as int, digit string or float (never bool)."""
    if type(value) is int:  # the common case first: several reads a log record
        return value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number == number and abs(number) != float("inf") else None


def to_float(value: Any) -> float | None:
    """An amount the agents send as a number or as its text (never bool)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def to_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def text(value: Any) -> str | None:
    if type(value) is str:  # the common case first: several reads a log record
        return value or None
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def clean_resource(resource: Mapping[str, Any]) -> Attributes:
    """The resource as record attributes: scalars and flat sequences, None dropped."""
    out: Attributes = {}
    for key, value in resource.items():
        v = attr_value(value)
        if v is not None:
            out[key] = v
    return out


def attr_value(value: Any) -> AttrValue | None:
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        items = tuple(v for v in value if isinstance(v, (str, bool, int, float)))
        return items if len(items) == len(value) else str(list(value))
    if value is None:
        return None
    return str(value)


# What names a run: only an agent's prompt record may carry it (prompt_record).
RUN_DESCRIPTORS: tuple[str, ...] = (sc.RUN_NAME, sc.PROJECT, sc.OWNER)


def without_run_descriptors(attributes: Attributes) -> Attributes:
    """An agent span's attributes without ``runtrace.run.name`` / ``runtrace.project`` / ``runtrace.owner``.

    Claude Code copies ``OTEL_RESOURCE_ATTRIBUTES`` onto every span's attributes,
    so with ``runtrace.project`` set (as ``runtrace agents setup --project``
    does) each of its spans would rank as one that names the run, and the
    session's last span, which carries no name, would win over the prompt:
    the run lost its name. They stay in the span's resource.
    """
    return {k: v for k, v in attributes.items() if k not in RUN_DESCRIPTORS}




