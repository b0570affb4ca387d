"""One span as the run page's side panel shows it, and the timeline a page of rows at a time.

Kept apart from the HTTP handlers so both are tested as data. The panel's JSON
carries text only (never markup): the browser puts every value in with
``textContent``, so a span's attributes cannot become HTML. Captured messages
(GenAI semantic-convention ``parts``, or the older ``content`` strings) become
a conversation: one entry per message with its role and its text, tool calls
with their arguments, and tool results.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .. import semconv
from .._jsontext import parse_json_text
from ..display import duration, money, tokens, when
from ..explain import tree_order, why_unpriced
from ..store.timespec import from_iso
from .duplicates import Calls, Duplicate

__all__ = ["PAGE_SPANS", "chat", "is_tool_call", "outline_page", "row_flags", "span_detail", "tool_subject"]

PAGE_SPANS = 200  # timeline rows per page: the first page is in the HTML, the rest come from the API
_MIN_BAR_PCT = 0.4
_CONTENT_KEYS = (semconv.GEN_AI_SYSTEM_INSTRUCTIONS, semconv.GEN_AI_INPUT_MESSAGES, semconv.GEN_AI_OUTPUT_MESSAGES,
                 semconv.GEN_AI_TOOL_CALL_ARGUMENTS, semconv.GEN_AI_TOOL_CALL_RESULT)


def _text(value: Any) -> str:
    """A value as a person reads it: strings as they are, anything else as indented JSON."""
    value = parse_json_text(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def _part(part: Any) -> dict[str, str]:
    if not isinstance(part, Mapping):
        return {"type": "text", "text": _text(part)}
    kind = str(part.get("type") or "text")
    if kind == "tool_call":
        return {"type": "tool_call", "name": str(part.get("name") or "?"), "id": str(part.get("id") or ""),
                "arguments": _text(part.get("arguments", ""))}
    if kind == "tool_call_response":
        return {"type": "tool_result", "id": str(part.get("id") or ""),
                "text": _text(part.get("result", part.get("response", "")))}
    if kind == "text":
        return {"type": "text", "text": _text(part.get("content", part.get("text", "")))}
    return {"type": kind, "text": _text(dict(part))}


def _messages(value: Any, *, output: bool) -> list[dict[str, Any]]:
    value = parse_json_text(value)
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        value = [value]
    out = []
    for message in value:
        if not isinstance(message, Mapping):
            out.append({"role": "assistant" if output else "user", "output": output, "parts": [_part(message)]})
            continue
        parts = message.get("parts")
        if parts is None:  # the older shape: {"role": ..., "content": "..."}
            parts = [{"type": "text", "content": message.get("content", "")}]
        elif not isinstance(parts, list):
            parts = [parts]
        entry: dict[str, Any] = {"role": str(message.get("role") or ("assistant" if output else "user")),
                                 "output": output, "parts": [_part(p) for p in parts]}
        if message.get("finish_reason"):
            entry["finish_reason"] = str(message["finish_reason"])
        out.append(entry)
    return out


def chat(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The captured conversation of an LLM span, in order: system, the input messages, then the output."""
    messages: list[dict[str, Any]] = []
    system = attributes.get(semconv.GEN_AI_SYSTEM_INSTRUCTIONS)
    if system is not None:
        parsed = parse_json_text(system)
        parts = parsed if isinstance(parsed, list) else [parsed]
        messages.append({"role": "system", "output": False,
                         "parts": [_part(p if isinstance(p, Mapping) else {"type": "text", "content": p})
                                   for p in parts]})
    messages.extend(_messages(attributes.get(semconv.GEN_AI_INPUT_MESSAGES), output=False))
    messages.extend(_messages(attributes.get(semconv.GEN_AI_OUTPUT_MESSAGES), output=True))
    return messages


_SUBJECT_KEYS = ("file_path", "path", "filename", "file", "command", "cmd", "pattern", "query", "url", "notebook_path")
_SUBJECT_CHARS = 80


def tool_subject(arguments: Any) -> str | None:
    """What a tool call acted on, from its captured arguments: the file, the command, the pattern, the URL.

    A coding agent's ``Read``/``Edit``/``Bash`` call says little by its name;
    the timeline shows this beside it. None when the arguments were not
    captured or name none of these.
    """
    parsed = parse_json_text(arguments)
    if not isinstance(parsed, Mapping):
        return None
    for key in _SUBJECT_KEYS:
        value = parsed.get(key)
        if isinstance(value, list):
            value = " ".join(str(v) for v in value)
        if isinstance(value, (str, int, float)) and str(value).strip():
            text = " ".join(str(value).split())
            return text if len(text) <= _SUBJECT_CHARS else text[:_SUBJECT_CHARS - 1] + "…"
    return None


def is_tool_call(span: Mapping[str, Any]) -> bool:
    """A tool call, executed or refused (a coding agent's refused call is no execute_tool span): it has a subject."""
    return span.get("kind") == "tool" or bool((span.get("attributes") or {}).get(semconv.TOOL_REFUSED))


def row_flags(span: Mapping[str, Any], duplicate: Duplicate | None = None) -> list[str]:
    """The flags a timeline row shows beside the span's name.

    A ``duplicate`` (a span of a call another span counts: :mod:`.duplicates`)
    is flagged so, never as unpriced: the run's unpriced calls leave it out too.
    """
    attrs = span.get("attributes") or {}
    flags = []
    if duplicate is not None:
        flags.append("duplicate")
    if attrs.get(semconv.LOOP_DETECTED):
        flags.append("loop")
    if attrs.get(semconv.TOOL_REPEATED_READ):
        flags.append("repeated read")
    if attrs.get(semconv.TOOL_REFUSED):
        flags.append("refused")
    if span.get("status") == "ERROR":
        flags.append("error")
    if span.get("kind") == "llm" and span.get("cost_usd") is None and duplicate is None:
        flags.append("unpriced")
    return flags


def _start_ns(span: Mapping[str, Any]) -> int:
    if "start_ns" in span:
        return int(span["start_ns"])
    return from_iso(span.get("start")) or 0


def _end_ns(span: Mapping[str, Any]) -> int:
    if "end_ns" in span:
        return int(span["end_ns"])
    return from_iso(span.get("end")) or 0


def _cost_text(span: Mapping[str, Any]) -> str:
    if span.get("kind") != "llm":
        return ""
    return "unpriced" if span.get("cost_usd") is None else money(span.get("cost_usd"))


def outline_page(spans: Sequence[dict[str, Any]], *, offset: int, limit: int,
                 calls: Calls | None = None) -> dict[str, Any]:
    """Rows ``offset`` .. ``offset + limit`` of the timeline, in the run page's tree order.

    Each row has what the browser needs to draw it (depth, bar offset and
    width in percent of the run, label, flags); ``total`` is the row count, so
    the page knows whether there is more. With ``calls`` (:func:`.duplicates.read_calls`),
    a span of a call another span counts has ``duplicate`` (rule, sentence, the
    counting span's id and name), else ``duplicate`` is None.
    """
    starts = [_start_ns(s) for s in spans]
    ends = [_end_ns(s) for s in spans]
    t0 = min(starts) if starts else 0
    total_ns = max((max(ends) if ends else 0) - t0, 1)
    ordered = tree_order(list(spans))
    rows = []
    for span, depth in ordered[offset:offset + limit]:
        st, en = _start_ns(span), _end_ns(span)
        duplicate = None if calls is None else calls.duplicate(span["span_id"])
        rows.append({
            "span_id": span["span_id"], "name": span["name"], "kind": span["kind"], "depth": depth,
            "offset_pct": round(100.0 * (st - t0) / total_ns, 3),
            "width_pct": round(max(_MIN_BAR_PCT, 100.0 * max(en - st, 0) / total_ns), 3),
            "offset_s": (st - t0) / 1e9, "duration_s": span.get("duration_s"),
            "cost_usd": span.get("cost_usd"), "model": span.get("model"), "tool_name": span.get("tool_name"),
            "duration_text": duration(span.get("duration_s")), "offset_text": duration((st - t0) / 1e9),
            "cost_text": _cost_text(span),
            "flags": row_flags(span, duplicate),
            "subject": tool_subject(span.get("arguments")) if is_tool_call(span) else None,
            "duplicate": None if duplicate is None else duplicate.as_json(),
        })
    return {"total": len(ordered), "offset": offset, "limit": limit, "rows": rows}


def span_detail(span: Mapping[str, Any], *, run_start_ns: int | None,
                duplicate: Duplicate | None = None) -> dict[str, Any]:
    """The side panel's content for one span: the section-8 span fields plus what a person reads.

    ``chat`` is the captured conversation (empty when content capture was off),
    ``tool`` the captured arguments and result of a tool call, ``unpriced`` the
    sentence saying why an LLM call has no price and how to fix it,
    ``duplicate`` why a span of a call another span counts is not counted (and
    which span counts it), and ``attributes`` every other attribute as (name,
    text) pairs, sorted.
    """
    attrs: Mapping[str, Any] = span.get("attributes") or {}
    detail = dict(span)
    detail["offset_s"] = None if run_start_ns is None else (_start_ns(span) - run_start_ns) / 1e9
    detail["flags"] = row_flags(span, duplicate)
    detail["duplicate"] = None if duplicate is None else duplicate.as_json()
    detail["text"] = {  # the figures as the page prints them (runtrace.display), so the panel and the rows agree
        "duration": duration(span.get("duration_s")), "cost": _cost_text(span) or None,
        "offset": None if detail["offset_s"] is None else "+" + duration(detail["offset_s"]),
        "start": when(span.get("start")) + " UTC" if span.get("start") else None,
        "input_tokens": tokens(span.get("input_tokens")), "output_tokens": tokens(span.get("output_tokens")),
        "cached_input_tokens": tokens(span.get("cached_input_tokens") or 0),
        "reasoning_tokens": tokens(span.get("reasoning_tokens") or 0),
    }
    detail["cost_source"] = attrs.get(semconv.COST_SOURCE)
    detail["unpriced"] = (why_unpriced(span) if span.get("kind") == "llm" and span.get("cost_usd") is None
                          and duplicate is None else None)
    detail["chat"] = chat(attrs)
    tool: dict[str, str] = {}
    if semconv.GEN_AI_TOOL_CALL_ARGUMENTS in attrs:
        tool["arguments"] = _text(attrs[semconv.GEN_AI_TOOL_CALL_ARGUMENTS])
    if semconv.GEN_AI_TOOL_CALL_RESULT in attrs:
        tool["result"] = _text(attrs[semconv.GEN_AI_TOOL_CALL_RESULT])
    detail["tool"] = tool
    detail["attribute_rows"] = [[k, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)]
                                for k, v in sorted(attrs.items()) if k not in _CONTENT_KEYS]
    return detail
