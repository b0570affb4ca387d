"""Search matches marked in a snippet: the text escaped, each searched word's occurrences in ``<mark>``.

Words match as the full-text index (store/search.py) matches them: at the start
of a word, case-insensitively; ``diff`` is marked in ``git_diff`` and in
``different``, never inside ``modiff``.
Everything that is not a mark is escaped by markupsafe first, so a snippet of
an attacker's prompt stays text.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

__all__ = ["highlight"]


def highlight(text: str | None, words: list[str]) -> Markup:
    """``text`` escaped, with every occurrence of a word of ``words`` (at a word's start) in ``<mark>``."""
    if not text:
        return Markup("")
    if not words:
        return escape(text)
    pattern = re.compile("|".join(r"(?<![^\W_])" + re.escape(w) for w in sorted(set(words), key=len, reverse=True)),
                         re.IGNORECASE)
    out = Markup("")
    last = 0
    for found in pattern.finditer(text):
        out += escape(text[last:found.start()]) + Markup("<mark>{}</mark>").format(found.group())
        last = found.end()
    return out + escape(text[last:])
