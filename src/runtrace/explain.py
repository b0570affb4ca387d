"""What a run means, in sentences: its failure or budget stop, detections, verdict, budget use, unpriced calls.

Pure functions of one `--format json` run dict (``get_run``; README, "The command line"), shared by the run page
(``server/runview.py``) and ``runtrace show``, so the web and the terminal say
the same thing in the same words. Sentences name tool argument values only
when content capture was on for the span (see :func:`explain_event`); an
error's text is the span's status description, which runtrace itself writes
without the exception's message when capture is off.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import semconv
from .display import duration, money, tokens, when
from .store.timespec import from_iso

__all__ = ["Finding", "Gauge", "Unpriced", "detections", "explain_event", "gauges", "headline", "tree_order",
           "tree_order_indices", "unpriced", "verdict", "why_unpriced"]


# --- detections ------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    kind: str  # loop | repeated_read | budget
    sentence: str
    span_id: str
    span_name: str


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


_LIMIT_FORMAT: dict[str, Callable[[Any], str]] = {"max_cost_usd": money, "max_seconds": duration}


def _figure(limit: Any, value: Any) -> str:
    """A budget figure in the limit's unit: dollars for cost, seconds for time, a count otherwise."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return str(value)
    fmt = _LIMIT_FORMAT.get(str(limit)) or (money if str(limit).endswith("_usd") else None)  # policy caps
    if fmt is not None:
        return fmt(float(value))
    return tokens(value) if float(value).is_integer() else str(value)


def explain_event(event: Mapping[str, Any], span: Mapping[str, Any]) -> Finding | None:
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
        return Finding("loop", sentence, span["span_id"], span["name"])
    if name == semconv.EVENT_REPEATED_READ:
        description = attrs.get(semconv.LOOP_DESCRIPTION) if _captured(span) else None
        count = attrs.get(semconv.TOOL_REPEAT_COUNT)
        sentence = _sentence(str(description)) if description else _repeated_read_sentence(tool, count)
        return Finding("repeated_read", sentence, span["span_id"], span["name"])
    if name == semconv.EVENT_BUDGET:
        limit = attrs.get(semconv.BUDGET_LIMIT, "a limit")
        value, observed = attrs.get(semconv.BUDGET_LIMIT_VALUE), attrs.get(semconv.BUDGET_OBSERVED)
        action = attrs.get(semconv.BUDGET_ACTION)
        projected = attrs.get(semconv.BUDGET_PROJECTED)
        then = {"stop": "the run was stopped", "continue": "the run went on"}.get(str(action), f"action {action}")
        if limit == "max_cost_usd" and isinstance(value, (int, float)) and isinstance(observed, (int, float)):
            if (isinstance(projected, (int, float)) and not isinstance(projected, bool) and projected > 0
                    and observed < value):
                # Stopped before the money was spent: what was spent is under the limit, the next call was not.
                sentence = (f"The budget {limit} was exceeded by the next call's projected cost: "
                            f"{money(float(observed))} spent + {money(float(projected))} projected, against a "
                            f"limit of {money(float(value))}; {then} before that call.")
                return Finding("budget", sentence, span["span_id"], span["name"])
            figures = f"{money(float(observed))} against a limit of {money(float(value))}"
        else:
            figures = f"{observed} against a limit of {value}"
        return Finding("budget", f"The budget {limit} was exceeded: {figures}; {then}.",
                         span["span_id"], span["name"])
    return None


def tree_order(spans: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """Spans depth-first, children after their parent by start time; orphans at the top level."""
    order, depth = tree_order_indices([s["span_id"] for s in spans], [s["parent_span_id"] for s in spans])
    return [(spans[i], depth[i]) for i in order]


def tree_order_indices(span_ids: Sequence[str], parents: Sequence[str | None]) -> tuple[list[int], list[int]]:
    """:func:`tree_order` on columns: the spans' indices in tree order, and each index's depth.

    The run page of a 5,000-span run orders its spans from two columns without
    a dict or a tuple per span (they were most of its time, and kept Python's
    collector busy). A span is placed once per span id (a second span with a
    placed id is left out), its children after it in the order given; spans no
    root reaches (a parent cycle in bad data) follow at depth 0.
    """
    ids = set(span_ids)
    roots: list[int] = []
    children: dict[str, list[int]] = {}
    for i, (span_id, parent) in enumerate(zip(span_ids, parents, strict=True)):
        if parent is None or parent == span_id or parent not in ids:
            roots.append(i)
            continue
        siblings = children.get(parent)
        if siblings is None:
            children[parent] = [i]
        else:
            siblings.append(i)
    depth = [0] * len(span_ids)
    order: list[int] = []
    placed: set[str] = set()
    stack = roots[::-1]
    while stack:
        i = stack.pop()
        span_id = span_ids[i]
        if span_id in placed:
            continue
        placed.add(span_id)
        order.append(i)
        below = children.get(span_id)
        if below:  # each list is pushed once (its parent id is placed once), so each index is given one depth
            level = depth[i] + 1
            for child in below:
                depth[child] = level
            stack.extend(reversed(below))
    if len(order) < len(span_ids):  # parent cycles in bad data
        for i, span_id in enumerate(span_ids):
            if span_id not in placed:
                depth[i] = 0
                order.append(i)
    return order, depth


def _read_subject(span: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """What a repeated read read again: the detector's key (tool, arguments, result); None when not recorded.

    A file read re-derived at ingest has the file's path hash instead of a result hash.
    """
    attrs = span.get("attributes") or {}
    args_hash = attrs.get(semconv.TOOL_ARGS_HASH)
    result = attrs.get(semconv.TOOL_RESULT_HASH) or attrs.get(semconv.TOOL_PATH_HASH)
    if args_hash is None or result is None:
        return None
    return str(span.get("tool_name") or span.get("name")), str(args_hash), str(result)


def detections(spans: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """Every detection on the spans, in the order given (the run page and ``show`` pass tree order).

    A read repeated N times is one finding, not N-1 ("2 times so far", then "3 times so far"): the
    last one in the order given, which links the latest read and says the latest count.
    """
    out: list[Finding | None] = []
    latest: dict[tuple[str, str, str], int] = {}  # read subject -> index of its finding in out
    for span in spans:
        attrs = span.get("attributes") or {}
        found = [d for d in (explain_event(e, span) for e in span.get("events") or []) if d is not None]
        if not any(d.kind == "repeated_read" for d in found) and attrs.get(semconv.TOOL_REPEATED_READ):
            count = attrs.get(semconv.TOOL_REPEAT_COUNT, "several")
            found.append(Finding("repeated_read",
                                   _repeated_read_sentence(span.get("tool_name") or span["name"], count),
                                   span["span_id"], span["name"]))
        subject = _read_subject(span) if any(d.kind == "repeated_read" for d in found) else None
        for d in found:
            if d.kind == "repeated_read" and subject is not None:
                if subject in latest:
                    out[latest[subject]] = None  # an earlier count of the same read
                latest[subject] = len(out)
            out.append(d)
    return [d for d in out if d is not None]


# --- budget ----------------------------------------------------------------------

@dataclass(frozen=True)
class Gauge:
    label: str
    used: float
    limit: float
    used_text: str
    limit_text: str

    @property
    def pct(self) -> float:
        """How full the bar is drawn (at most 100)."""
        return 100.0 if self.limit <= 0 else min(100.0, 100.0 * self.used / self.limit)

    @property
    def used_pct_text(self) -> str:
        """The share of the limit used, past 100% when it was overrun ("95%", "120%")."""
        return "-" if self.limit <= 0 else f"{100.0 * self.used / self.limit:.0f}%"

    @property
    def level(self) -> str:
        ratio = self.used / self.limit if self.limit > 0 else 1.0
        return "over" if ratio >= 1 else "near" if ratio >= 0.8 else "ok"

    @property
    def line(self) -> str:
        """``cost $0.0285 of $0.03 (95%)``: one limit and how much of it the run used."""
        return f"{self.label} {self.used_text} of {self.limit_text} ({self.used_pct_text})"


def gauges(run: Mapping[str, Any], total_s: float) -> list[Gauge]:
    """One gauge per limit the run's budget set, in a fixed order."""
    budget = run.get("budget") or {}
    out = []
    specs: tuple[tuple[str, str, Any, Callable[[Any], str]], ...] = (
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


# --- verdict and what ended the run ------------------------------------------------

def verdict(run: Mapping[str, Any]) -> str | None:
    """The outcome with who gave it, when, and why; None while the run has none."""
    outcome = run["outcome"]
    if outcome in (semconv.OUTCOME_OPEN, semconv.OUTCOME_UNFINISHED):
        return None
    parts = [outcome.replace("_", " ").capitalize()]
    if run.get("outcome_by"):
        parts.append(f"by {run['outcome_by']}")
    at, ended = run.get("outcome_at"), run.get("ended_at")
    if at:
        parts.append(f"at {when(at)} UTC")
        at_ns, ended_ns = from_iso(at), from_iso(ended)
        if at_ns is not None and ended_ns is not None and at_ns - ended_ns > 1_000_000_000:
            parts.append(f"({duration((at_ns - ended_ns) / 1e9)} after the run ended)")
    text = " ".join(parts)
    if run.get("outcome_reason"):
        text += f": {run['outcome_reason']}"
    return text


def _error_sentence(run: Mapping[str, Any]) -> str | None:
    """The run's own failure: its span's status description (the type, the message only with capture on)."""
    failed = [s for s in run["spans"] if s.get("status") == "ERROR"]
    if not failed:
        return None
    span = next((s for s in failed if s.get("kind") == "run"), failed[-1])
    attrs = span.get("attributes") or {}
    what = span.get("status_message") or attrs.get(semconv.ERROR_TYPE) or "an error"
    where = "" if span.get("kind") == "run" else f" in {span['name']}"
    return f"The run failed with {what}{where}."


def _stopped_by(limit: Any) -> str:
    """A policy's spend or runs cap (project_daily_usd ...) is not the run's own budget."""
    return "Stopped by a policy cap" if str(limit).startswith(("project_", "owner_")) else "Stopped by its budget"


def _stop_figures(limit: Any, attrs: Mapping[str, Any]) -> str:
    text = (f"{_stopped_by(limit)}: {limit} at {_figure(limit, attrs.get(semconv.BUDGET_OBSERVED))} "
            f"against a limit of {_figure(limit, attrs.get(semconv.BUDGET_LIMIT_VALUE))}")
    projected = attrs.get(semconv.BUDGET_PROJECTED)
    if isinstance(projected, (int, float)) and not isinstance(projected, bool) and projected > 0:
        text += f"; the next call would have added {_figure(limit, projected)}"
    return text + "."


def _stop_sentence(run: Mapping[str, Any]) -> str:
    """Why a budget-stopped run stopped: the limit, the figure it reached, and the limit's value.

    The figures are on the run span's budget event; a stop the Claude Code hook
    recorded (no run span) has only its stop reason here, and its figures in the
    verdict's reason (``project_daily_usd: 0.224 >= 0.2``).
    """
    reason = run.get("stop_reason")
    for span in run["spans"]:
        for event in span.get("events") or []:
            attrs = event.get("attributes") or {}
            if event.get("name") != semconv.EVENT_BUDGET or attrs.get(semconv.BUDGET_ACTION) != "stop":
                continue
            limit = attrs.get(semconv.BUDGET_LIMIT, reason)
            if limit == "loop":
                break
            return _stop_figures(limit, attrs)
    if reason == "loop":
        return "Stopped by loop detection: the run repeated itself (see below)."
    limit_value = (run.get("budget") or {}).get(str(reason)) if reason else None
    if reason and limit_value is not None:
        return f"{_stopped_by(reason)}: {reason} (a limit of {_figure(reason, limit_value)})."
    return f"{_stopped_by(reason)}: {reason}." if reason else "Stopped by its budget."


def headline(run: Mapping[str, Any]) -> list[str]:
    """What ended the run, when it did not simply finish: its error, or its budget stop."""
    if run["outcome"] == semconv.OUTCOME_ERROR:
        sentence = _error_sentence(run)
        return [sentence or "The run ended with an error (no span says which)."]
    if run["outcome"] == semconv.OUTCOME_BUDGET_STOPPED or run.get("stop_reason"):
        return [_stop_sentence(run)]
    return []


# --- unpriced calls ----------------------------------------------------------------

@dataclass(frozen=True)
class Unpriced:
    """One kind of unpriced call in a run: why it is unpriced and how to price it."""

    sentence: str
    count: int
    span_id: str  # the first such call
    span_name: str


_UNKNOWN_MODEL_FIX = ("add a price override (RUNTRACE_PRICES / instrument(prices=...)); "
                      "list known models with `runtrace prices list`")


def _why(span: Mapping[str, Any]) -> str:
    attrs = span.get("attributes") or {}
    reason = attrs.get(semconv.COST_UNPRICED_REASON)
    model = span.get("model") or attrs.get(semconv.GEN_AI_REQUEST_MODEL) or "an unnamed model"
    if reason == semconv.UNPRICED_MISSING_USAGE:
        stream = attrs.get(semconv.GEN_AI_REQUEST_STREAM) is True
        openai = str(span.get("provider") or attrs.get(semconv.GEN_AI_PROVIDER_NAME) or "").startswith("openai")
        if stream and openai:
            return (f"A streamed call to {model} is unpriced: the stream carried no usage; pass "
                    "stream_options={'include_usage': True} or instrument(stream_usage=True).")
        return (f"A call to {model} is unpriced: the response carried no token usage; "
                "price it with a per_second override.")
    if reason == semconv.UNPRICED_UNKNOWN_MODEL:
        return f"A call to {model} is unpriced: runtrace has no price for {model}; {_UNKNOWN_MODEL_FIX}."
    if reason == semconv.UNPRICED_LOCAL_MODEL:
        return (f"A call to {model} is unpriced: it is a local model; "
                "price it with a per-token or per_second override.")
    if reason == semconv.UNPRICED_OUT_OF_RANGE:
        return (f"A call to {model} is unpriced: its cost or a token count was out of range at ingest "
                "and was dropped.")
    if reason == semconv.UNPRICED_INVALID_USAGE:
        return (f"A call to {model} is unpriced: its token counts contradict themselves "
                "(e.g. cache reads above the total input).")
    if reason:
        return f"A call to {model} is unpriced ({reason})."
    return f"A call to {model} is unpriced: it carried no cost and no reason; {_UNKNOWN_MODEL_FIX}."


def why_unpriced(span: Mapping[str, Any]) -> str:
    """Why one LLM call is unpriced and how to fix it: the run page's side panel says it for the selected span."""
    return _why(span)


def unpriced(run: Mapping[str, Any]) -> list[Unpriced]:
    """One sentence per kind of unpriced LLM call (same reason, same model), with how many there were."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for span in run["spans"]:
        if span.get("kind") == "llm" and span.get("cost_usd") is None:
            groups.setdefault(_why(span), []).append(span)
    out = []
    for sentence, spans in groups.items():
        if len(spans) > 1:
            sentence = f"{len(spans)} calls: {sentence}"
        out.append(Unpriced(sentence, len(spans), spans[0]["span_id"], spans[0]["name"]))
    return out
