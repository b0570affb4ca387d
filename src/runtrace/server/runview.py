"""Everything the run page shows, computed from one section-8 run dict (``get_run``).

Kept apart from the HTML so it can be tested as data: the waterfall rows in
tree order with their offsets, the cumulative cost curve, the budget gauges,
one sentence per detection, and the verdict.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .. import semconv
from .format import duration, money, tokens, when

__all__ = ["CONTENT_KEYS", "Detection", "Gauge", "RunView", "SpanRow", "build_run_view", "explain_event"]

CONTENT_KEYS = (semconv.GEN_AI_SYSTEM_INSTRUCTIONS, semconv.GEN_AI_INPUT_MESSAGES, semconv.GEN_AI_OUTPUT_MESSAGES,
                semconv.GEN_AI_TOOL_CALL_ARGUMENTS, semconv.GEN_AI_TOOL_CALL_RESULT)
_MIN_BAR_PCT = 0.4


def _ns(iso_text: str | None) -> int | None:
    if iso_text is None:
        return None
    moment = datetime.fromisoformat(iso_text.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


@dataclass(frozen=True)
class SpanRow:
    span: dict[str, Any]
    depth: int
    offset_pct: float
    width_pct: float
    offset_s: float
    content: list[tuple[str, str]]  # (attribute, pretty text) of captured prompt/completion/tool content
    attributes: list[tuple[str, str]]  # everything else, as text
    flags: list[str]


@dataclass(frozen=True)
class Detection:
    kind: str  # loop | repeated_read | budget
    sentence: str
    span_id: str
    span_name: str


@dataclass(frozen=True)
class Gauge:
    label: str
    used: float
    limit: float
    used_text: str
    limit_text: str

    @property
    def pct(self) -> float:
        return 100.0 if self.limit <= 0 else min(100.0, 100.0 * self.used / self.limit)

    @property
    def level(self) -> str:
        ratio = self.used / self.limit if self.limit > 0 else 1.0
        return "over" if ratio >= 1 else "near" if ratio >= 0.8 else "ok"


@dataclass(frozen=True)
class RunView:
    run: dict[str, Any]
    rows: list[SpanRow]
    total_s: float
    curve: list[tuple[float, float]]  # (seconds since start, cumulative USD) at each priced call's end
    gauges: list[Gauge]
    detections: list[Detection]
    verdict: str | None
    notes: tuple[str, ...] = ()  # what the page cannot show, and agent figures beside runtrace's


_AGENT_NAMES = {name: "Claude Code" for name in semconv.CLAUDE_SERVICE_NAMES}


def _notes(run: Mapping[str, Any], spans: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """Sentences about a coding-agent session: missing tool details, refusals, the agent's own cost."""
    notes: list[str] = []
    agent = _AGENT_NAMES.get(str(run.get("service") or ""), "The agent")
    blind = sum(1 for s in spans if s["attributes"].get(semconv.TOOL_DETAILS_MISSING))
    if blind:
        notes.append(f"{agent} did not send tool details for {blind} tool call(s) (set OTEL_LOG_TOOL_DETAILS=1 "
                     "to send them), so repeated reads and loops cannot be detected for them.")
    refused = run.get("refused_tool_calls") or 0
    if refused:
        notes.append(f"{refused} tool call(s) were refused by the agent's sandbox or user and never ran.")
    agent_cost = run.get("agent_cost_usd")
    if agent_cost is not None:
        notes.append(f"{agent} reported its own cost as ${agent_cost:,.6f}; the cost above is runtrace's, "
                     "priced from the tokens and the model.")
    return tuple(notes)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _pretty(value: Any) -> str:
    """Captured content is usually JSON text; indent it so a person can read it."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if isinstance(parsed, (dict, list)):
            return json.dumps(parsed, indent=2, ensure_ascii=False)
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def _sentence(text: str) -> str:
    text = text.strip()
    if text.startswith("the "):
        text = "T" + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _captured(span: Mapping[str, Any]) -> bool:
    """Content capture was on for this tool span: its arguments were recorded.

    Only then may a sentence name argument values; a description written by an
    older runtrace or another SDK with capture off is not trusted to be free of them.
    """
    return semconv.GEN_AI_TOOL_CALL_ARGUMENTS in (span.get("attributes") or {})


def _repeated_read_sentence(tool: str, count: Any) -> str:
    return f"{tool} returned content identical to an earlier read ({count} times so far)."


def explain_event(event: Mapping[str, Any], span: Mapping[str, Any]) -> Detection | None:
    """One detection event on a span, as a sentence a person reads (None if not a detection).

    Same-call and repeated-read sentences name argument values only when content
    capture was on for the span; otherwise they are rebuilt from the tool name and counts.
    """
    name = event.get("name")
    attrs: Mapping[str, Any] = event.get("attributes") or {}
    tool = span.get("tool_name") or span.get("name") or "a call"
    if name == semconv.EVENT_LOOP:
        description = attrs.get(semconv.LOOP_DESCRIPTION)
        count = attrs.get(semconv.LOOP_COUNT)
        kind = attrs.get(semconv.LOOP_KIND)
        if kind not in ("cycle", "same_completion") and not _captured(span):
            description = None  # same_call: may quote the arguments
        if description:
            sentence = _sentence(str(description))
        elif kind == "cycle":
            sentence = f"A cycle of calls ending in {tool} repeated {count} times."
        elif kind == "same_completion":
            sentence = f"The model returned the same completion {count} times."
        else:
            sentence = f"{tool} was called {count} times with the same arguments and returned the same result."
        return Detection("loop", sentence, span["span_id"], span["name"])
    if name == semconv.EVENT_REPEATED_READ:
        description = attrs.get(semconv.LOOP_DESCRIPTION) if _captured(span) else None
        count = attrs.get(semconv.TOOL_REPEAT_COUNT)
        sentence = _sentence(str(description)) if description else _repeated_read_sentence(tool, count)
        return Detection("repeated_read", sentence, span["span_id"], span["name"])
    if name == semconv.EVENT_BUDGET:
        limit = attrs.get(semconv.BUDGET_LIMIT, "a limit")
        value, observed = attrs.get(semconv.BUDGET_LIMIT_VALUE), attrs.get(semconv.BUDGET_OBSERVED)
        action = attrs.get(semconv.BUDGET_ACTION)
        if limit == "max_cost_usd" and isinstance(value, (int, float)) and isinstance(observed, (int, float)):
            figures = f"{money(float(observed))} against a limit of {money(float(value))}"
        else:
            figures = f"{observed} against a limit of {value}"
        then = {"stop": "the run was stopped", "continue": "the run went on"}.get(str(action), f"action {action}")
        return Detection("budget", f"The budget {limit} was exceeded: {figures}; {then}.",
                         span["span_id"], span["name"])
    return None


def _tree_order(spans: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """Spans depth-first, children after their parent by start time; orphans at the top level."""
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for s in spans:
        parent = s["parent_span_id"] if s["parent_span_id"] in ids and s["parent_span_id"] != s["span_id"] else None
        children.setdefault(parent, []).append(s)
    out: list[tuple[dict[str, Any], int]] = []
    placed: set[str] = set()
    stack: list[tuple[dict[str, Any], int]] = [(s, 0) for s in reversed(children.get(None, []))]
    while stack:
        span, depth = stack.pop()
        if span["span_id"] in placed:
            continue
        placed.add(span["span_id"])
        out.append((span, depth))
        stack.extend((c, depth + 1) for c in reversed(children.get(span["span_id"], [])))
    out.extend((s, 0) for s in spans if s["span_id"] not in placed)  # parent cycles in bad data
    return out


def _flags(span: Mapping[str, Any]) -> list[str]:
    attrs = span["attributes"]
    flags = []
    if attrs.get(semconv.LOOP_DETECTED):
        flags.append("loop")
    if attrs.get(semconv.TOOL_REPEATED_READ):
        flags.append("repeated read")
    if span["status"] == "ERROR":
        flags.append("error")
    if span["kind"] == "llm" and span["cost_usd"] is None:
        flags.append("unpriced")
    return flags


def _gauges(run: Mapping[str, Any], total_s: float) -> list[Gauge]:
    budget = run.get("budget") or {}
    out = []
    specs = (
        ("max_cost_usd", "cost", run["cost_usd"], money),
        ("max_llm_calls", "LLM calls", run["llm_calls"], tokens),
        ("max_tool_calls", "tool calls", run["tool_calls"], tokens),
        ("max_seconds", "time", run["duration_s"] if run["duration_s"] is not None else total_s, duration),
        ("max_input_tokens", "input tokens", run["input_tokens"], tokens),
    )
    for key, label, used, fmt in specs:
        limit = budget.get(key)
        if limit is None:
            continue
        out.append(Gauge(label, float(used), float(limit), fmt(used), fmt(limit)))
    return out


def _verdict(run: Mapping[str, Any]) -> str | None:
    outcome = run["outcome"]
    if outcome in (semconv.OUTCOME_OPEN, semconv.OUTCOME_UNFINISHED):
        return None
    parts = [outcome.replace("_", " ").capitalize()]
    if run.get("outcome_by"):
        parts.append(f"by {run['outcome_by']}")
    at, ended = run.get("outcome_at"), run.get("ended_at")
    if at:
        parts.append(f"at {when(at)} UTC")
        at_ns, ended_ns = _ns(at), _ns(ended)
        if at_ns is not None and ended_ns is not None and at_ns - ended_ns > 1_000_000_000:
            parts.append(f"({duration((at_ns - ended_ns) / 1e9)} after the run ended)")
    text = " ".join(parts)
    if run.get("outcome_reason"):
        text += f": {run['outcome_reason']}"
    return text


def build_run_view(run: dict[str, Any]) -> RunView:
    spans = run["spans"]
    starts = [_ns(s["start"]) or 0 for s in spans]
    ends = [_ns(s["end"]) or 0 for s in spans]
    t0 = min(starts) if starts else 0
    t1 = max(ends) if ends else 0
    total_ns = max(t1 - t0, 1)
    rows = []
    detections: list[Detection] = []
    by_id = {s["span_id"]: (st, en) for s, st, en in zip(spans, starts, ends, strict=True)}
    for span, depth in _tree_order(spans):
        st, en = by_id[span["span_id"]]
        attrs = span["attributes"]
        rows.append(SpanRow(
            span=span, depth=depth,
            offset_pct=100.0 * (st - t0) / total_ns,
            width_pct=max(_MIN_BAR_PCT, 100.0 * max(en - st, 0) / total_ns),
            offset_s=(st - t0) / 1e9,
            content=[(k, _pretty(attrs[k])) for k in CONTENT_KEYS if k in attrs],
            attributes=[(k, _text(v)) for k, v in sorted(attrs.items()) if k not in CONTENT_KEYS],
            flags=_flags(span),
        ))
        found = [d for d in (explain_event(e, span) for e in span.get("events", [])) if d is not None]
        if not any(d.kind == "repeated_read" for d in found) and attrs.get(semconv.TOOL_REPEATED_READ):
            count = attrs.get(semconv.TOOL_REPEAT_COUNT, "several")
            found.append(Detection("repeated_read", _repeated_read_sentence(span["tool_name"] or span["name"], count),
                                   span["span_id"], span["name"]))
        detections.extend(found)
    curve: list[tuple[float, float]] = []
    total = 0.0
    for span, en in sorted(((s, e) for s, e in zip(spans, ends, strict=True) if s["kind"] == "llm" and s["cost_usd"] is not None),
                           key=lambda pair: pair[1]):
        total += span["cost_usd"]
        curve.append(((en - t0) / 1e9, total))
    total_s = (t1 - t0) / 1e9
    return RunView(run=run, rows=rows, total_s=total_s, curve=curve, gauges=_gauges(run, total_s),
                   detections=detections, verdict=_verdict(run), notes=_notes(run, spans))
