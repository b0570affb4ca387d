"""Gemini CLI (``@google/gemini-cli``) log events -> runtrace span records.

Measured on Gemini CLI 0.61.0 (see shared/agent-telemetry/INVENTORY.md). Log
events are complete by default; they are the one counted source:

- run id = ``session.id`` (record attribute, also on the resource); name = the
  ``gemini_cli.user_prompt`` (``Gemini session`` without a prompt text; see
  ``_build.prompt_record``); service = resource ``service.name``;
  project/owner = resource ``runtrace.project``/``runtrace.owner``.
- one LLM call per ``gemini_cli.api_response``. Gemini's prompt count includes
  the cached part and its thoughts are reported beside the candidates, so
  runtrace's ``output_tokens`` = ``output_token_count + thoughts_token_count``
  and ``reasoning_tokens`` = the thoughts. The response's ``model`` is the
  response model (priced first); the request model comes from the request
  event just before it in the same prompt. Gemini sends no cost.
  ``gemini_cli.api_error`` is an error in the run, not an LLM call.
- one tool call per ``gemini_cli.tool_call``, except ``decision=reject``: a
  refused call (``runtrace.tool.refused``). Gemini does not send the tool's
  output, so a read's result is its path's state: a ``read_file`` of the same
  path with no write to that path in between is a repeated read; the same call
  with the same outcome 3 times is a loop. A successful ``read_file`` and a
  successful write carry ``runtrace.tool.path_hash``, so the store's run-wide
  recount (store/rereads.py) sees a write in one request make a read in a later
  request new, as for Claude Code.
- the file, command or pattern of a call (and the MCP server) is recorded as
  ``gen_ai.tool.call.arguments`` for the run page; Gemini sends ``function_args``
  only with ``telemetry.logPrompts``, so without it nothing is named.

Gemini's own spans (``llm_call``, ``tool_call``, beta traces) describe the same
calls. The log events do not carry their ids for the responses, so the log
records have ids of their own, and :func:`mark_trace_span` (the traces path
calls it for every span) stamps the run id and ``runtrace.duplicate_of`` on
Gemini's spans: kept in the run, never counted, so "logs only" and
"logs + traces" give the same figures.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from .. import semconv as sc
from .._jsontext import parse_json_text
from ..detect import stable_hash, text_hash
from ..store.records import Attributes, SpanRecord
from ._build import Session, ToolCall, error_record, llm_record, prompt_record, tool_arguments, tool_records
from ._values import clean_resource, text, to_bool, to_int, without_run_descriptors
from .events import LogEvent, records_by_session

SERVICE_NAMES: frozenset[str] = sc.GEMINI_SERVICE_NAMES
AGENT = "gemini"
FALLBACK_NAME = "Gemini session"

_READ_TOOLS = frozenset({"read_file", "read_many_files", "list_directory", "glob", "grep_search",
                         "search_file_content"})
_WRITE_TOOLS = frozenset({"replace", "write_file", "edit"})
_READ_FILE = "read_file"  # one file's content: a repeat of it is a repeated read run-wide (path hash)
_PATH_KEYS = ("absolute_path", "file_path", "path", "dir_path")


def to_records(events: Sequence[LogEvent]) -> list[SpanRecord]:
    """The run records of every Gemini CLI session among ``events`` (others are dropped)."""
    return records_by_session(events, _session_of, lambda e: e.time_ns, _session_records)


def _session_of(event: LogEvent) -> str | None:
    return text(event.attributes.get(sc.SESSION_ID)) or text(event.resource.get(sc.SESSION_ID))


def mark_trace_span(record: SpanRecord) -> SpanRecord:
    """Gemini's own ``llm_call`` / ``tool_call`` span: in the run, marked as counted by the logs."""
    if record.scope_name != sc.GEMINI_SCOPE:
        return record
    operation = record.attributes.get(sc.GEN_AI_OPERATION_NAME)
    counted_by = {sc.GEMINI_SPAN_LLM_CALL: sc.GEMINI_EV_API_RESPONSE,
                  sc.GEMINI_SPAN_TOOL_CALL: sc.GEMINI_EV_TOOL_CALL}.get(str(operation or record.name))
    session = text(record.attributes.get(sc.GEN_AI_CONVERSATION_ID)) or text(record.resource.get(sc.SESSION_ID))
    if counted_by is None and session is None:
        return record
    attrs = without_run_descriptors(record.attributes)  # only the user_prompt names the run
    if session is not None:
        attrs.setdefault(sc.RUN_ID, session)
    if counted_by is not None:
        attrs[sc.DUPLICATE_OF] = counted_by
    return dataclasses.replace(record, attributes=attrs)


def _session_records(session_id: str, events: list[LogEvent]) -> list[SpanRecord]:
    session = Session(AGENT, session_id, clean_resource(events[0].resource))
    records: list[SpanRecord] = []
    calls: list[ToolCall] = []
    request_models: dict[str, str] = {}  # prompt id -> model of the latest request
    versions: dict[str, int] = defaultdict(int)  # path -> writes seen so far
    for event in events:
        a = event.attributes
        prompt_id = text(a.get(sc.GEMINI_PROMPT_ID)) or ""
        if event.name == sc.GEMINI_EV_USER_PROMPT:
            records.append(prompt_record(
                session, identity=("user_prompt", event.time_ns, prompt_id), event_name=event.name,
                time_ns=event.time_ns, name=text(a.get(sc.GEMINI_PROMPT)) or FALLBACK_NAME,
                scope_name=event.scope_name))
        elif event.name == sc.GEMINI_EV_API_REQUEST:
            model = text(a.get(sc.GEMINI_MODEL))
            if model is not None:
                request_models[prompt_id] = model
        elif event.name == sc.GEMINI_EV_API_RESPONSE:
            records.append(_llm_call(session, event, request_models.get(prompt_id)))
        elif event.name == sc.GEMINI_EV_API_ERROR:
            records.append(_api_error(session, event, request_models.get(prompt_id)))
        elif event.name == sc.GEMINI_EV_TOOL_CALL:
            calls.append(_tool_call(event, versions))
    records.extend(tool_records(session, calls))
    return records


def _llm_call(session: Session, event: LogEvent, request_model: str | None) -> SpanRecord:
    a = event.attributes
    candidates = to_int(a.get(sc.GEMINI_OUTPUT_TOKENS)) or 0
    thoughts = to_int(a.get(sc.GEMINI_THOUGHTS_TOKENS)) or 0
    input_tokens = to_int(a.get(sc.GEMINI_INPUT_TOKENS)) or 0
    extra: Attributes = {}
    reasons = a.get(sc.GEMINI_FINISH_REASONS)
    if isinstance(reasons, (list, tuple)) and all(isinstance(r, str) for r in reasons):
        extra[sc.GEN_AI_RESPONSE_FINISH_REASONS] = tuple(reasons)
    return llm_record(
        session, identity=("api_response", event.time_ns, a.get(sc.GEMINI_PROMPT_ID), input_tokens, candidates),
        event_name=event.name, end_ns=event.time_ns, duration_ms=to_int(a.get(sc.GEMINI_DURATION_MS)),
        provider=sc.PROVIDER_GCP_GEMINI, request_model=request_model, response_model=text(a.get(sc.GEMINI_MODEL)),
        input_tokens=input_tokens, cached_tokens=to_int(a.get(sc.GEMINI_CACHED_TOKENS)) or 0,
        cache_write_tokens=0, output_tokens=candidates + thoughts, reasoning_tokens=thoughts, extra=extra,
        scope_name=event.scope_name)


def _api_error(session: Session, event: LogEvent, request_model: str | None) -> SpanRecord:
    a = event.attributes
    model = text(a.get(sc.GEMINI_MODEL)) or request_model
    attrs: Attributes = {sc.GEN_AI_PROVIDER_NAME: sc.PROVIDER_GCP_GEMINI}
    if model is not None:
        attrs[sc.GEN_AI_REQUEST_MODEL] = model
    status = to_int(a.get(sc.GEMINI_STATUS_CODE))
    if status is not None:
        attrs[sc.HTTP_RESPONSE_STATUS_CODE] = status
    message = text(a.get(sc.GEMINI_ERROR))
    attrs[sc.ERROR_TYPE] = text(a.get(sc.GEMINI_ERROR_TYPE)) or (str(status) if status is not None else "error")
    return error_record(
        session, identity=("api_error", event.time_ns, a.get(sc.GEMINI_PROMPT_ID)), event_name=event.name,
        end_ns=event.time_ns, duration_ms=to_int(a.get(sc.GEMINI_DURATION_MS)),
        name=f"{sc.OP_CHAT} {model or 'unknown'}", message=message, attributes=attrs, scope_name=event.scope_name)


def _tool_call(event: LogEvent, versions: dict[str, int]) -> ToolCall:
    a = event.attributes
    name = text(a.get(sc.GEMINI_FUNCTION_NAME)) or "unknown"
    args = parse_json_text(a.get(sc.GEMINI_FUNCTION_ARGS))
    path = _path(args)
    success = to_bool(a.get(sc.GEMINI_SUCCESS)) is True
    error = text(a.get(sc.GEMINI_ERROR))
    refused = text(a.get(sc.GEMINI_DECISION)) == sc.GEMINI_DECISION_REJECT
    read = name in _READ_TOOLS and path is not None
    if read and path is not None:
        # No output is sent: the result of a read is the path's state (writes seen so far).
        result = f"{path}\x1f{versions[path]}\x1f{success}\x1f{a.get(sc.GEMINI_CONTENT_LENGTH)}\x1f{error}"
        args_key: Any = {k: v for k, v in args.items() if k not in _PATH_KEYS} if isinstance(args, dict) else {}
        args_key["path"] = path
    else:
        result = f"{success}\x1f{error}\x1f{a.get(sc.GEMINI_CONTENT_LENGTH)}"
        args_key = args
        if name in _WRITE_TOOLS and path is not None and success:
            versions[path] += 1
    extra: Attributes = {}
    if path is not None and success and (name == _READ_FILE or name in _WRITE_TOOLS):
        # The store's run-wide recount (store/rereads.py) compares a read_file by its path's
        # version across requests: an edit sent in one request makes a later read in another new.
        extra[sc.TOOL_PATH_HASH] = text_hash(path)
    call_id = text(a.get(sc.GEN_AI_TOOL_CALL_ID))
    return ToolCall(
        identity=("tool_call", event.time_ns, name, call_id or a.get(sc.GEMINI_FUNCTION_ARGS)),
        event_name=event.name, end_ns=event.time_ns, duration_ms=to_int(a.get(sc.GEMINI_DURATION_MS)),
        tool_name=name, call_id=call_id, args_hash=stable_hash(args_key), result_hash=text_hash(result),
        success=success, error=error, read=read, result_chars=to_int(a.get(sc.GEMINI_CONTENT_LENGTH)) or 0,
        args_preview=path or "", refused=refused, arguments=_subject(args, path, a), extra=extra)


def _subject(args: Any, path: str | None, a: Mapping[str, Any]) -> str | None:
    """The file, command, pattern or MCP server a call acted on (function_args only with logPrompts)."""
    if not isinstance(args, dict):
        return None
    values: dict[str, object] = {"file_path": path}
    values.update((k, args.get(k)) for k in ("pattern", "command", "url", "query"))
    if text(a.get(sc.GEMINI_TOOL_TYPE)) == sc.GEMINI_TOOL_TYPE_MCP:
        values["mcp_server"] = text(a.get(sc.GEMINI_MCP_SERVER_NAME))
    return tool_arguments(values)


def _path(args: Any) -> str | None:
    if not isinstance(args, dict):
        return None
    for key in _PATH_KEYS:
        value = args.get(key)
        if isinstance(value, str) and value:
            return value
    return None
