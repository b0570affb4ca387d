"""Claude Code (``@anthropic-ai/claude-code``) log events -> runtrace span records.

Measured on Claude Code 2.1.197 (shared/agent-telemetry/INVENTORY.md). Its log
events are complete without the beta traces, so they are the one source of figures:

- run id = ``session.id`` exactly as Claude Code prints it (``session_id`` of
  ``--output-format json``); it survives ``claude --resume``, so a resumed
  session continues the run. Name = the ``user_prompt`` text (``Claude Code
  session`` while it is ``<REDACTED>``, i.e. without ``OTEL_LOG_USER_PROMPTS=1``);
  project/owner = resource ``runtrace.project``/``runtrace.owner``.
- one LLM call per ``api_request`` (one per successful call; a retried 529
  sends none for the failed attempt). Anthropic's convention: ``input_tokens``
  is the uncached part, so runtrace's input = input + cache read + cache write,
  cached = cache read. Claude Code reports no reasoning count (0). runtrace
  prices the call from the tokens and ``model`` (genai-prices); Claude Code's
  own ``cost_usd`` is kept as ``runtrace.agent.cost_usd``.
- ``api_error`` (a call that finally failed): an error in the run, not an LLM call.
- one tool call per ``tool_result`` (``tool_use_id``). Args hash = the
  ``tool_input`` JSON (only with ``OTEL_LOG_TOOL_DETAILS=1``). Claude Code sends
  no result content, so a ``Read``'s result is "the file as of the last write
  the session made to it": a second successful ``Read`` of the same
  ``file_path`` with no Edit/Write to it in between is a repeated read (this is
  exactly Claude Code's own "file unchanged since your last Read").
  The read and write records carry ``runtrace.tool.path_hash``, so the store's
  run-wide recount (store/rereads.py) sees an Edit in one request invalidate a
  Read in another. Without tool details the record says so (``runtrace.tool.details_missing``)
  and nothing can be compared.
- what a tool call acted on (``file_path``, ``command``, ``pattern``..., the MCP
  server and tool of ``tool_parameters``) is recorded as ``gen_ai.tool.call.arguments``
  (``_build.tool_arguments``), so the run page names it: with tool details only,
  never an edit's old/new text. A refusal is named from its parent span
  (:func:`name_refusals`).

Ids are deterministic from (session, ``prompt.id``, ``event.sequence``, time)
or ``tool_use_id``, so a request sent twice counts once.

Claude Code's own spans (beta traces, scope ``com.anthropic.claude_code.tracing``)
describe the same calls: :func:`mark_trace_span` puts them in the run (run id =
their ``session.id``) and marks ``claude_code.llm_request`` / ``claude_code.tool``
/ ``claude_code.tool.execution`` with ``runtrace.duplicate_of`` so they are
never counted (none carries ``gen_ai.operation.name`` either). The one fact only
a span carries is a refusal: ``claude_code.tool.blocked_on_user`` with
``decision=reject`` (the ``-p`` auto-denial sends no log event) becomes a refused
tool call (``runtrace.tool.refused``). "Logs only" and "logs + traces" give the
same figures but that refusal.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from .. import semconv as sc
from .._jsontext import parse_json_text
from ..detect import stable_hash, text_hash
from ..store.records import Attributes, SpanRecord
from ._build import Session, ToolCall, error_record, llm_record, prompt_record, tool_arguments, tool_records
from ._values import clean_resource, text, to_bool, to_float, to_int, without_run_descriptors
from .events import LogEvent, records_by_session

SERVICE_NAMES: frozenset[str] = sc.CLAUDE_SERVICE_NAMES
AGENT = "claude"
FALLBACK_NAME = "Claude Code session"
_REDACTED = "<REDACTED>"
_READ_TOOLS = frozenset({"Read", "Glob", "Grep", "LS"})
_WRITE_TOOLS = frozenset({"Edit", "MultiEdit", "Write", "NotebookEdit"})
# What the run page names a tool call by (tool_input keys of Read/Edit/Write, Glob/Grep, Bash, WebFetch/WebSearch).
_SUBJECT_KEYS = ("file_path", "notebook_path", "path", "pattern", "glob", "command", "url", "query")
_MCP_KEYS = (sc.CLAUDE_MCP_SERVER_NAME, sc.CLAUDE_MCP_TOOL_NAME)
_COUNTED_BY = {sc.CLAUDE_SPAN_LLM_REQUEST: sc.CLAUDE_EV_API_REQUEST,
               sc.CLAUDE_SPAN_TOOL: sc.CLAUDE_EV_TOOL_RESULT,
               sc.CLAUDE_SPAN_TOOL_EXECUTION: sc.CLAUDE_EV_TOOL_RESULT}


# Every log-record attribute this adapter reads (the logs decoder reads no other of a Claude Code
# record: store/otlp_logs.py's ``keys_for``). A key read below and missing here reads as absent;
# tests/test_agents_attribute_keys.py compares the records made from all attributes and from these.
EVENT_KEYS: frozenset[str] = frozenset({
    sc.SESSION_ID, sc.CLAUDE_EVENT_SEQUENCE, sc.CLAUDE_PROMPT_ID, sc.CLAUDE_PROMPT, sc.CLAUDE_MODEL,
    sc.CLAUDE_STATUS_CODE, sc.CLAUDE_DURATION_MS, sc.CLAUDE_ERROR, sc.CLAUDE_INPUT_TOKENS,
    sc.CLAUDE_CACHE_READ_TOKENS, sc.CLAUDE_CACHE_CREATION_TOKENS, sc.CLAUDE_OUTPUT_TOKENS, sc.CLAUDE_COST_USD,
    sc.CLAUDE_TOOL_NAME, sc.CLAUDE_TOOL_USE_ID, sc.CLAUDE_SUCCESS, sc.CLAUDE_TOOL_INPUT,
    sc.CLAUDE_TOOL_RESULT_SIZE, sc.CLAUDE_TOOL_PARAMETERS,
})


def to_records(events: Sequence[LogEvent]) -> list[SpanRecord]:
    """The run records of every Claude Code session among ``events`` (others are dropped)."""
    return records_by_session(events, lambda e: text(e.attributes.get(sc.SESSION_ID)), _order, _session_records)


def _order(event: LogEvent) -> tuple[int, int]:
    return event.time_ns, to_int(event.attributes.get(sc.CLAUDE_EVENT_SEQUENCE)) or 0


def mark_trace_span(record: SpanRecord) -> SpanRecord:
    """A Claude Code span: in its session's run, never counted twice; a rejected tool is a refusal."""
    if record.scope_name != sc.CLAUDE_TRACING_SCOPE:
        return record
    session = text(record.attributes.get(sc.SESSION_ID))
    if session is None:
        return record
    attrs = without_run_descriptors(record.attributes)  # only the user_prompt names the run
    attrs.setdefault(sc.RUN_ID, session)
    counted_by = _COUNTED_BY.get(record.name)
    if counted_by is not None:
        attrs[sc.DUPLICATE_OF] = counted_by
    if (record.name == sc.CLAUDE_SPAN_BLOCKED_ON_USER
            and attrs.get(sc.CLAUDE_DECISION) == sc.CLAUDE_DECISION_REJECT):
        attrs[sc.TOOL_REFUSED] = True
    return dataclasses.replace(record, attributes=attrs)


def name_refusals(records: Sequence[SpanRecord]) -> list[SpanRecord]:
    """One OTLP request's spans, each refusal named by the file or command of its ``claude_code.tool`` parent.

    The refused call's own span (``blocked_on_user``) carries no input; its parent
    does, with ``OTEL_LOG_TOOL_DETAILS=1``, and ends with it, so both come in one
    request. Without tool details, or with the parent in another request, the
    refusal stays unnamed.
    """
    tools = {r.span_id: r for r in records
             if r.name == sc.CLAUDE_SPAN_TOOL and r.scope_name == sc.CLAUDE_TRACING_SCOPE}
    out: list[SpanRecord] = []
    for record in records:
        parent = tools.get(record.parent_span_id or "") if record.attributes.get(sc.TOOL_REFUSED) else None
        arguments = None if parent is None else tool_arguments({
            "file_path": parent.attributes.get(sc.CLAUDE_SPAN_FILE_PATH),
            "command": parent.attributes.get(sc.CLAUDE_SPAN_FULL_COMMAND)})
        out.append(record if arguments is None else dataclasses.replace(
            record, attributes={**record.attributes, sc.GEN_AI_TOOL_CALL_ARGUMENTS: arguments}))
    return out


def _identity(kind: str, event: LogEvent) -> tuple[object, ...]:
    a = event.attributes
    return (kind, text(a.get(sc.CLAUDE_PROMPT_ID)), text(a.get(sc.CLAUDE_EVENT_SEQUENCE)), event.time_ns)


def _session_records(session_id: str, events: list[LogEvent]) -> list[SpanRecord]:
    session = Session(AGENT, session_id, clean_resource(events[0].resource))
    records: list[SpanRecord] = []
    calls: list[ToolCall] = []
    writes: dict[str, int] = defaultdict(int)  # file path -> writes seen so far (a Read's "version")
    for event in events:
        a = event.attributes
        if event.name == sc.CLAUDE_EV_USER_PROMPT:
            prompt = text(a.get(sc.CLAUDE_PROMPT))
            records.append(prompt_record(
                session, identity=_identity("user_prompt", event), event_name=event.name,
                time_ns=event.time_ns, scope_name=event.scope_name,
                name=prompt if prompt is not None and prompt != _REDACTED else FALLBACK_NAME))
        elif event.name == sc.CLAUDE_EV_API_REQUEST:
            records.append(_llm_call(session, event))
        elif event.name == sc.CLAUDE_EV_API_ERROR:
            model = text(a.get(sc.CLAUDE_MODEL))
            extra: Attributes = {sc.GEN_AI_PROVIDER_NAME: sc.PROVIDER_ANTHROPIC}
            if model:
                extra[sc.GEN_AI_REQUEST_MODEL] = model
            status = text(a.get(sc.CLAUDE_STATUS_CODE))
            if status:
                extra[sc.ERROR_TYPE] = status
            records.append(error_record(
                session, identity=_identity("api_error", event), event_name=event.name, end_ns=event.time_ns,
                duration_ms=to_int(a.get(sc.CLAUDE_DURATION_MS)), name=f"{sc.OP_CHAT} {model or 'unknown'}",
                message=text(a.get(sc.CLAUDE_ERROR)) or "model call failed", attributes=extra,
                scope_name=event.scope_name))
        elif event.name == sc.CLAUDE_EV_TOOL_RESULT:
            calls.append(_tool_call(event, writes))
    records.extend(tool_records(session, calls, scope_name=events[0].scope_name))
    return records


def _llm_call(session: Session, event: LogEvent) -> SpanRecord:
    a = event.attributes
    uncached = to_int(a.get(sc.CLAUDE_INPUT_TOKENS)) or 0
    cache_read = to_int(a.get(sc.CLAUDE_CACHE_READ_TOKENS)) or 0
    cache_write = to_int(a.get(sc.CLAUDE_CACHE_CREATION_TOKENS)) or 0
    cost = to_float(a.get(sc.CLAUDE_COST_USD))
    extra: Attributes = {} if cost is None else {sc.AGENT_COST_USD: cost}
    return llm_record(
        session, identity=_identity("api_request", event), event_name=event.name, end_ns=event.time_ns,
        duration_ms=to_int(a.get(sc.CLAUDE_DURATION_MS)), provider=sc.PROVIDER_ANTHROPIC,
        request_model=text(a.get(sc.CLAUDE_MODEL)), response_model=None,
        input_tokens=uncached + cache_read + cache_write, cached_tokens=cache_read,
        cache_write_tokens=cache_write, output_tokens=to_int(a.get(sc.CLAUDE_OUTPUT_TOKENS)) or 0,
        reasoning_tokens=0, extra=extra, scope_name=event.scope_name)


def _tool_call(event: LogEvent, writes: dict[str, int]) -> ToolCall:
    a = event.attributes
    name = text(a.get(sc.CLAUDE_TOOL_NAME)) or "unknown"
    call_id = text(a.get(sc.CLAUDE_TOOL_USE_ID))
    success = to_bool(a.get(sc.CLAUDE_SUCCESS)) is not False
    raw_input = a.get(sc.CLAUDE_TOOL_INPUT)
    tool_input = parse_json_text(raw_input) if raw_input not in (None, "") else None
    path = tool_input.get("file_path") if isinstance(tool_input, dict) else None
    path = path if isinstance(path, str) and path else None
    identity = ("tool_result", call_id or event.time_ns)
    if tool_input is None:
        # No details: a hash of the call's own id matches nothing, so nothing is flagged.
        unique = stable_hash(["no tool_input", call_id, event.time_ns])
        return ToolCall(identity=identity, event_name=event.name, end_ns=event.time_ns,
                        duration_ms=to_int(a.get(sc.CLAUDE_DURATION_MS)), tool_name=name, call_id=call_id,
                        args_hash=unique, result_hash=unique, success=success,
                        error=None if success else text(a.get(sc.CLAUDE_ERROR)),
                        extra={sc.TOOL_DETAILS_MISSING: True})
    if name in _WRITE_TOOLS and path is not None and success:
        writes[path] += 1
    read = name in _READ_TOOLS and success
    # The result a Read saw: its path as of the session's writes to it (Claude sends no content);
    # any other tool's: its outcome and result size, all Claude Code tells of it.
    result = (f"{path}@{writes[path]}" if path is not None else json.dumps(tool_input, sort_keys=True)) \
        if read else f"{success}:{a.get(sc.CLAUDE_TOOL_RESULT_SIZE)}:{a.get(sc.CLAUDE_ERROR)}"
    command = tool_input.get("command") if isinstance(tool_input, dict) else None
    extra: Attributes = {}
    if path is not None and (read or (name in _WRITE_TOOLS and success)):
        extra[sc.TOOL_PATH_HASH] = text_hash(path)
    return ToolCall(
        identity=identity, event_name=event.name, end_ns=event.time_ns,
        duration_ms=to_int(a.get(sc.CLAUDE_DURATION_MS)), tool_name=name, call_id=call_id,
        args_hash=stable_hash(tool_input), result_hash=text_hash(result), success=success,
        error=None if success else (text(a.get(sc.CLAUDE_ERROR)) or "tool call failed"), read=read,
        result_chars=to_int(a.get(sc.CLAUDE_TOOL_RESULT_SIZE)) or 0,
        args_preview=command if isinstance(command, str) else (path or ""),
        arguments=_subject(tool_input, parse_json_text(a.get(sc.CLAUDE_TOOL_PARAMETERS))), extra=extra)


def _subject(tool_input: Any, parameters: Any) -> str | None:
    """The file, command, pattern or MCP tool a call acted on, from what Claude Code sent (tool details only)."""
    values: dict[str, object] = {}
    if isinstance(tool_input, dict):  # only the keys it has: tool_arguments keeps non-blank text only
        values = {k: tool_input[k] for k in _SUBJECT_KEYS if k in tool_input}
    if isinstance(parameters, dict):
        values.update((k, parameters[k]) for k in _MCP_KEYS if k in parameters)
    return tool_arguments(values)
