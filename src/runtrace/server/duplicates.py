"""Which spans of a run are a second span of a call another span counts, and of which one, and why.

The store counts each model call once (store/innermost.py, store/siblings.py)
and keeps the other spans of the call in the trace with ``counted = 0``; an
in-process duplicate carries ``runtrace.duplicate_of`` instead. The run's
totals already leave them out, but a page that drew them like any call showed
a priced call that is not in the totals. This module reads that decision back
so the timeline can grey such a span, name the span that counts the call
(a ``#span=`` link), and the side panel can say which rule decided:

- ``nested``: a usage-carrying span inside it counts the call (the innermost
  count: a wrapper over the SDK's own span, an aggregate over its steps);
- ``sibling``: another instrumentation's span of the same request beside it
  (same parent, same model family, same time) was preferred;
- ``in-process``: runtrace's own span of the request won when both were made
  in one process (the value of ``runtrace.duplicate_of`` is its span id);
- ``agent``: a coding agent's own trace span of a call its log events count
  (the value of ``runtrace.duplicate_of`` is the event's name); the counting
  span is the tool call with the same ``gen_ai.tool.call.id`` (the span's own
  or its parent's: Claude Code's ``claude_code.tool.execution`` has none), or
  for a model call the counted LLM span it overlaps that ends nearest to it.

Read-only and computed per page: the rule itself stays in the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from .. import semconv
from ..store.db import Store
from ..store.model_family import model_family
from ..store.siblings import SLACK_NS, START_WINDOW_NS
from ..store.timespec import from_iso

__all__ = ["Calls", "Duplicate", "read_calls"]

RULE_NESTED = "nested"
RULE_SIBLING = "sibling"
RULE_IN_PROCESS = "in-process"
RULE_AGENT = "agent"
RULE_UNKNOWN = "uncounted"

# The agents' log events that count a model call (a span marked with another counts a tool call).
_MODEL_CALL_EVENTS = frozenset({semconv.CLAUDE_EV_API_REQUEST, semconv.CODEX_EV_SSE_EVENT,
                                semconv.GEMINI_EV_API_RESPONSE})
_LEFT_OUT = "Its tokens and cost are not in the run's totals."
_NAMED_BELOW = 3  # nested calls named in the sentence of an aggregate span; the rest are counted


class Duplicate(NamedTuple):
    """Why a span is not counted, and the span that counts its call (None when the store does not hold it)."""

    rule: str
    sentence: str
    of_span_id: str | None = None
    of_name: str | None = None

    def as_json(self) -> dict[str, str | None]:
        """The JSON the side panel and the paged rows carry: rule, sentence, of_span_id, of_name."""
        return dict(self._asdict())


@dataclass(frozen=True)
class _Mark:
    """A span marked ``runtrace.duplicate_of``: the mark, and what finds an agent's counting span."""

    value: str
    call_id: str | None
    start_ns: int
    end_ns: int


@dataclass(frozen=True)
class _Call:
    span_id: str
    parent_span_id: str | None
    trace_id: str | None
    name: str
    model: str | None
    counted: bool
    start_ns: int
    end_ns: int


class Calls:
    """A run's LLM spans with ``counted``, every span's parent and the ``runtrace.duplicate_of`` marks."""

    def __init__(self, parents: Mapping[str, str | None], calls: Iterable[_Call], marks: Mapping[str, _Mark],
                 tools: Mapping[str, tuple[str, str]]) -> None:
        """``tools``: the run's tool spans by ``gen_ai.tool.call.id``, as (span id, name)."""
        self._calls = {c.span_id: c for c in calls}
        self._marks = dict(marks)
        self._tools = dict(tools)
        self._parents = dict(parents)
        self._children: dict[str, list[str]] = {}
        for span_id, parent in parents.items():
            if parent is not None:
                self._children.setdefault(parent, []).append(span_id)
        self._siblings: dict[tuple[str | None, str | None], list[_Call]] = {}
        for call in self._calls.values():
            self._siblings.setdefault((call.trace_id, call.parent_span_id), []).append(call)

    @classmethod
    def from_spans(cls, spans: Iterable[Mapping[str, Any]]) -> Calls:
        """From whole span dicts (``get_run``'s ``spans``: they carry ``counted``, model, trace and times)."""
        parents: dict[str, str | None] = {}
        calls: list[_Call] = []
        marks: dict[str, _Mark] = {}
        tools: dict[str, tuple[str, str]] = {}
        for span in spans:
            parents[span["span_id"]] = span.get("parent_span_id")
            attrs = span.get("attributes") or {}
            mark = attrs.get(semconv.DUPLICATE_OF)
            call_id = attrs.get(semconv.GEN_AI_TOOL_CALL_ID)
            if mark is not None:
                marks[span["span_id"]] = _Mark(str(mark), None if call_id is None else str(call_id),
                                               _ns(span, "start"), _ns(span, "end"))
            elif span.get("kind") == "tool" and call_id is not None:
                tools[str(call_id)] = (span["span_id"], str(span.get("name") or ""))
            if span.get("kind") == "llm":
                calls.append(_Call(span["span_id"], span.get("parent_span_id"), span.get("trace_id"),
                                   str(span.get("name") or ""), span.get("model"), bool(span.get("counted", True)),
                                   _ns(span, "start"), _ns(span, "end")))
        return cls(parents, calls, marks, tools)

    def uncounted(self) -> set[str]:
        """The LLM spans whose figures are not in the run's totals."""
        return {c.span_id for c in self._calls.values() if not c.counted}

    def name_of(self, span_id: str) -> str | None:
        """The name of an LLM span of the run (a light span dict may lack it)."""
        call = self._calls.get(span_id)
        return None if call is None else call.name

    def duplicate(self, span_id: str) -> Duplicate | None:
        """Why the span ``span_id`` is not counted, or None for a span that counts (or is no call)."""
        mark = self._marks.get(span_id)
        if mark is not None:
            return self._marked(span_id, mark)
        call = self._calls.get(span_id)
        if call is None or call.counted:
            return None
        below = self._counted_below(span_id)
        if below:
            first = below[0]
            if len(below) == 1:
                sentence = (f"Not counted: the call is counted by {first.name}, the span nested inside it "
                            "(each model call counts once, by the innermost span that reports its usage). ")
            else:
                names = ", ".join(c.name for c in below[:_NAMED_BELOW])
                more = f" and {len(below) - _NAMED_BELOW} more" if len(below) > _NAMED_BELOW else ""
                sentence = (f"Not counted: it covers {len(below)} calls counted by the spans nested inside it "
                            f"({names}{more}): each model call counts once, by the innermost span. ")
            return Duplicate(RULE_NESTED, sentence + _LEFT_OUT, first.span_id, first.name)
        beside = self._sibling(call)
        if beside is not None:
            return Duplicate(RULE_SIBLING, f"Not counted: a duplicate of {beside.name}, another instrumentation's "
                             "span of the same request beside it (same parent, same model, same time), which "
                             "counts the call. " + _LEFT_OUT, beside.span_id, beside.name)
        return Duplicate(RULE_UNKNOWN, "Not counted: another span of this run counts this call. " + _LEFT_OUT)

    def _marked(self, span_id: str, marked: _Mark) -> Duplicate:
        mark = marked.value
        target = self._calls.get(mark)
        if target is not None:
            return Duplicate(RULE_IN_PROCESS, f"Not counted: runtrace's own span of the same request, {target.name}, "
                             "won in-process; this span, another instrumentation's, stays in the trace marked "
                             f"{semconv.DUPLICATE_OF}. " + _LEFT_OUT, target.span_id, target.name)
        if mark == semconv.DUPLICATE_OF_UNSTARTED:
            return Duplicate(RULE_IN_PROCESS, "Not counted: runtrace's own span of the same request counts it "
                             "(this span, another instrumentation's, ended before runtrace's span started). "
                             + _LEFT_OUT)
        if len(mark) == 16 and all(ch in "0123456789abcdef" for ch in mark):
            return Duplicate(RULE_IN_PROCESS, f"Not counted: runtrace's own span of the same request (span {mark}, "
                             "not in this store) won in-process. " + _LEFT_OUT)
        found = self._agent_counterpart(span_id, marked)
        if found is None:
            return Duplicate(RULE_AGENT, f"Not counted: the agent's own trace span of a call that its {mark} log "
                             "event counts. " + _LEFT_OUT)
        return Duplicate(RULE_AGENT, f"Not counted: the agent's own trace span of a call that its {mark} log "
                         f"event counts, as {found[1]}. " + _LEFT_OUT, found[0], found[1])

    def _agent_counterpart(self, span_id: str, marked: _Mark) -> tuple[str, str] | None:
        """The (span id, name) that counts an agent span's call: same tool call id, else the LLM call it overlaps."""
        call_id = marked.call_id
        if call_id is None:
            parent = self._parents.get(span_id)
            parent_mark = None if parent is None else self._marks.get(parent)
            call_id = None if parent_mark is None else parent_mark.call_id
        if call_id is not None:
            return self._tools.get(call_id)
        if marked.value not in _MODEL_CALL_EVENTS:
            return None
        overlapping = [c for c in self._calls.values() if c.counted
                       and c.start_ns <= marked.end_ns + SLACK_NS and marked.start_ns <= c.end_ns + SLACK_NS]
        if not overlapping:
            return None
        best = min(overlapping, key=lambda c: (abs(c.end_ns - marked.end_ns), c.span_id))
        return best.span_id, best.name

    def _counted_below(self, span_id: str) -> list[_Call]:
        found: list[_Call] = []
        todo = list(self._children.get(span_id, ()))
        seen = {span_id}
        while todo:
            child = todo.pop(0)
            if child in seen:
                continue
            seen.add(child)
            call = self._calls.get(child)
            if call is not None and call.counted:
                found.append(call)
            todo.extend(self._children.get(child, ()))
        return sorted(found, key=lambda c: (c.start_ns, c.span_id))

    def _sibling(self, call: _Call) -> _Call | None:
        """The span beside ``call`` of the same request (store/siblings.py's pairing), counted ones first."""
        if call.parent_span_id is None or not call.model:
            return None
        family = model_family(call.model.lower())
        found = [other for other in self._siblings.get((call.trace_id, call.parent_span_id), ())
                 if other.span_id != call.span_id and other.model and model_family(other.model.lower()) == family
                 and abs(other.start_ns - call.start_ns) <= START_WINDOW_NS
                 and other.start_ns <= call.end_ns + SLACK_NS and call.start_ns <= other.end_ns + SLACK_NS]
        if not found:
            return None
        return min(found, key=lambda o: (not o.counted, abs(o.start_ns - call.start_ns), o.span_id))


def _ns(span: Mapping[str, Any], key: str) -> int:
    exact = span.get(key + "_ns")
    if exact is not None:
        return int(exact)
    return from_iso(span.get(key)) or 0


def _path(key: str) -> str:
    return f"'$.\"{key}\"'"


def read_calls(store: Store, run_id: str) -> Calls:
    """:class:`Calls` of the run ``run_id`` (a full id) from the store.

    None of the reads parses every span's attributes. First the two that say
    whether there is anything to show: the marked spans (``kind = 'other'``: a
    span marked ``runtrace.duplicate_of`` is never a call, found by a substring
    test before the JSON is parsed) and one uncounted LLM span. Most runs have
    neither and stop there (about 6 ms of a 5,000-span run's page instead of 26).
    Else every span's parent (the covering index ``spans_run_start``), the LLM
    spans' rows and the tool spans' call ids.
    """
    reader = store.reader()
    call_id = f"json_extract(attributes, {_path(semconv.GEN_AI_TOOL_CALL_ID)})"
    cursor = reader.execute(
        f"SELECT span_id, json_extract(attributes, {_path(semconv.DUPLICATE_OF)}), {call_id}, start_ns, end_ns "
        f"FROM spans WHERE run_id = ? AND kind = 'other' AND instr(attributes, '\"{semconv.DUPLICATE_OF}\"') > 0",
        (run_id,))
    cursor.row_factory = None
    marks = {r[0]: _Mark(str(r[1]), None if r[2] is None else str(r[2]), r[3], r[4])
             for r in cursor.fetchall() if r[1] is not None}
    if not marks and reader.execute("SELECT 1 FROM spans WHERE run_id = ? AND kind = 'llm' AND counted = 0 LIMIT 1",
                                    (run_id,)).fetchone() is None:
        return Calls({}, (), {}, {})
    cursor = reader.execute("SELECT span_id, parent_span_id FROM spans WHERE run_id = ?", (run_id,))
    cursor.row_factory = None
    parents = dict(cursor.fetchall())
    cursor = reader.execute("SELECT span_id, parent_span_id, trace_id, name, model, counted, start_ns, end_ns "
                            "FROM spans WHERE run_id = ? AND kind = 'llm'", (run_id,))
    cursor.row_factory = None
    calls = [_Call(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7]) for r in cursor.fetchall()]
    tools: dict[str, tuple[str, str]] = {}
    if marks:
        cursor = reader.execute(f"SELECT span_id, name, {call_id} FROM spans WHERE run_id = ? AND kind = 'tool'",
                                (run_id,))
        cursor.row_factory = None
        tools = {str(r[2]): (r[0], r[1]) for r in cursor.fetchall() if r[2] is not None}
    return Calls(parents, calls, marks, tools)
