"""Bounds on every number the store sums, so that no sum can overflow.

SQLite integers are signed 64-bit (ceiling 2**63-1, about 9.22e18) and its
``sum()`` raises "integer overflow" past that; one span claiming 1e30 tokens,
or two claiming int64-max, used to make every page answer 500 for good. So
each figure a span contributes to a run is bounded at ingest:

==========================  =====================  ===============================
figure (per span)           bound                  why it is generous
==========================  =====================  ===============================
token counts                0 .. MAX_TOKENS        10**12: 100,000x the largest
                                                   context window (1e7) of 2026
cost (``runtrace.cost.*``)  0 .. MAX_COST_USD      $10**6 = 10**15 nano-dollars:
                                                   1,000x a very costly call
budget limits (counts)      0 .. MAX_COUNT         10**12
==========================  =====================  ===============================

The arithmetic: a run's cost is kept in integer nano-dollars. At the bound a
span adds at most 10**15, so a run's sum stays exact for
floor(9.22e18 / 10**15) = 9,223 spans *each* costing a million dollars, i.e.
$9.2 billion in one run; tokens at 10**12 per span allow 9.2 million spans per
field at the bound. Past those (impossible in practice, and still possible in
principle) the run upsert saturates at 2**63-1 instead of failing
(:data:`INT64_MAX`, see ``aggregate``), and every sum across runs on the read
side uses SQLite's ``total()`` (a float, range 1e308), which never overflows.

What happens to a span past a bound is the caller's choice:
:func:`out_of_range` names the problems (the OTLP receiver rejects the span,
partial success), :func:`drop_out_of_range` removes the bad values and marks
the span (the in-process exporter and ``ingest`` itself, so a batch is never
lost for one value).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Final

from .. import semconv as sc
from .records import AttrValue, SpanRecord, with_attributes

INT64_MAX: Final = 2**63 - 1  # SQLite INTEGER ceiling
MAX_TOKENS: Final = 10**12
MAX_COST_USD: Final = 10**6
MAX_COUNT: Final = 10**12

#: Attribute -> its bound. Every key whose number reaches a stored column or a sum.
BOUNDED: Final[dict[str, int]] = {
    **{key: MAX_TOKENS for key in (
        sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_OUTPUT_TOKENS, sc.GEN_AI_USAGE_PROMPT_TOKENS,
        sc.GEN_AI_USAGE_COMPLETION_TOKENS, sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
        sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, sc.USAGE_CACHE_WRITE_5M_TOKENS,
        sc.USAGE_CACHE_WRITE_1H_TOKENS, sc.CONTEXT_REINJECTED_TOKENS, sc.TOOL_REPEATED_READ_TOKENS,
        sc.BUDGET_MAX_INPUT_TOKENS)},
    **{key: MAX_COST_USD for key in (sc.COST_USD, sc.COST_INPUT_USD, sc.COST_OUTPUT_USD,
                                     sc.BUDGET_MAX_COST_USD)},
    sc.BUDGET_MAX_LLM_CALLS: MAX_COUNT,
    sc.BUDGET_MAX_TOOL_CALLS: MAX_COUNT,
}
_COST_KEYS: Final = frozenset({sc.COST_USD, sc.COST_INPUT_USD, sc.COST_OUTPUT_USD})
logger = logging.getLogger("runtrace")
_warned = False  # drop_out_of_range says so once per process, then at debug level

_USAGE_KEYS: Final = frozenset(k for k in BOUNDED if k.startswith(("gen_ai.usage.", "runtrace.usage.")))


def _number(value: AttrValue) -> float | int | None:
    """The number a reader would take from ``value`` (aggregate.as_int/as_float rules); None: not one."""
    if isinstance(value, bool) or isinstance(value, tuple):
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return None


def _problem(key: str, value: AttrValue, bound: int) -> str | None:
    if (type(value) is int or type(value) is float) and 0 <= value <= bound:
        return None  # the common case, on the in-process hot path
    number = _number(value)
    if number is None:
        return None  # not a number: readers ignore it, nothing to bound
    if isinstance(number, float) and math.isnan(number):
        return None  # read as missing, like any non-number
    if 0 <= number <= bound:
        return None
    shown = value if isinstance(value, str) else repr(value)
    return f"{key}={shown} is out of range (0 to {bound:,})"


def in_range(attributes: Mapping[str, AttrValue]) -> bool:
    """Whether no bounded value of ``attributes`` has a problem: one pass, no sort, no message.

    Every span with usage or a cost passes here on both ingest paths (the receiver
    asks :func:`out_of_range`, ingest :func:`drop_out_of_range`), and nearly all are
    in range; only a span with a problem takes the sorted, message-building path.
    Ingest also asks it of the values pricing at ingest added to a checked record.
    """
    for key in BOUNDED.keys() & attributes.keys():
        value = attributes[key]
        bound = BOUNDED[key]
        if (type(value) is int or type(value) is float) and 0 <= value <= bound:
            continue
        if _problem(key, value, bound) is not None:
            return False
    return True


def out_of_range(record: SpanRecord) -> list[str]:
    """One message per bounded attribute of ``record`` past its bound, naming the field and value."""
    attributes = record.attributes
    if BOUNDED.keys().isdisjoint(attributes) or in_range(attributes):
        return []
    problems = []
    for key in sorted(BOUNDED.keys() & attributes.keys()):
        problem = _problem(key, attributes[key], BOUNDED[key])
        if problem is not None:
            problems.append(problem)
    return problems


def describe(record: SpanRecord, problems: list[str]) -> str:
    """One line for a sender: which span, and what is wrong with it."""
    return f"span {record.span_id} ({record.name!r}): {'; '.join(problems)}"


def drop_out_of_range(record: SpanRecord) -> SpanRecord:
    """The record without its out-of-range values, marked; ``record`` itself when all are in range.

    The dropped keys are listed in ``runtrace.ingest.dropped``. A span that lost a
    cost or a usage count is marked unpriced (``runtrace.cost.source=unknown``,
    reason ``out_of_range``) unless it keeps a valid cost: its cost is unknown,
    never $0, and it is not priced at ingest from what is left of its usage.
    """
    attributes = record.attributes
    if BOUNDED.keys().isdisjoint(attributes) or in_range(attributes):
        return record
    dropped = sorted(key for key in BOUNDED.keys() & attributes.keys()
                     if _problem(key, attributes[key], BOUNDED[key]) is not None)
    if not dropped:
        return record
    global _warned
    log = logger.debug if _warned else logger.warning
    _warned = True
    log("runtrace: stored %s without its out-of-range values (said once): %s", record.name,
        "; ".join(p for k in dropped if (p := _problem(k, attributes[k], BOUNDED[k])) is not None))
    kept: dict[str, Any] = {k: v for k, v in attributes.items() if k not in dropped}
    kept[sc.INGEST_DROPPED] = tuple(dropped)
    lost_cost = any(k in _COST_KEYS for k in dropped)
    lost_usage = any(k in _USAGE_KEYS for k in dropped)
    if lost_cost or (lost_usage and sc.COST_USD not in kept):
        for key in _COST_KEYS:
            kept.pop(key, None)
        kept[sc.COST_SOURCE] = sc.SOURCE_UNKNOWN
        kept[sc.COST_UNPRICED_REASON] = sc.UNPRICED_OUT_OF_RANGE
    return with_attributes(record, kept)


def clamp_int64(value: int) -> int:
    """A run sum saturated at SQLite's integer ceiling (reached only past the bounds' margin)."""
    return INT64_MAX if value > INT64_MAX else value
