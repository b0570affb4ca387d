"""A model's family: its name without the snapshot date or version suffix.

One model is named several ways: the request says ``gpt-4o``, the response
``gpt-4o-2024-08-06``; one instrumentation records the request model, another
the response model. Two spans of one call must be recognised as the same model
(:mod:`.siblings`), and the Spend page groups a family's snapshots. The same
suffixes, as one RE2 pattern, are stripped in ClickHouse's sibling view
(collector/clickhouse/04_runtrace_runs.sql, :data:`SUFFIXES_RE2`); a test keeps
both equal.
"""

from __future__ import annotations

import re

# Stripped one after another: gpt-4o-2024-08-06 -> gpt-4o, claude-sonnet-4-20250514 -> claude-sonnet-4,
# gpt-3.5-turbo-0125 -> gpt-3.5-turbo, anthropic.claude-3-5-sonnet-20240620-v1:0 -> anthropic.claude-3-5-sonnet,
# gemini-1.5-flash-001 -> gemini-1.5-flash.
SUFFIXES = (r"-v\d+(:\d+)?$", r"[-@]\d{8}$", r"-\d{4}-\d{2}-\d{2}$", r"-(preview|exp)(-\d{2,4}){0,3}$",
            r"-\d{2}-\d{2}$", r"-\d{3,4}$", r"-latest$")
_SUFFIXES = tuple(re.compile(p) for p in SUFFIXES)
# Any run of those suffixes at the end, in one pattern (what SQL strips in one replaceRegexpOne).
SUFFIXES_RE2 = "(" + "|".join(p.removesuffix("$") for p in SUFFIXES) + ")+$"


def model_family(model: str) -> str:
    """The model without its snapshot date or version suffix: the dated snapshots of one model are one family."""
    family = model
    changed = True
    while changed:
        changed = False
        for pattern in _SUFFIXES:
            stripped = pattern.sub("", family)
            if stripped != family and stripped:
                family, changed = stripped, True
    return family
