"""Codex CLI (``@openai/codex``) log events -> runtrace span records.

Measured on Codex 0.171.0 (see shared/agent-telemetry/INVENTORY.md). Log
events are complete without any beta flag, so they are the one source:

- run id = ``conversation.id`` (== the thread id ``codex exec`` prints; it
  survives ``codex exec resume``, so a resumed session continues the run);
  name = the ``codex.user_prompt`` (``Codex session`` when the prompt is
  redacted; see ``_build.prompt_record``); service = resource ``service.name``
  (the originator); project/owner = resource ``runtrace.project``/``runtrace.owner``.
- one LLM call per ``codex.sse_event`` of kind ``response.completed`` that
  carries token counts (Codex sends a second, count-less one per call).
  Retried HTTP attempts are ``codex.api_request`` events and add nothing.
  OpenAI's convention is runtrace's: ``input_token_count`` includes the cached
  part, ``output_token_count`` includes reasoning. Codex sends no cost; the
  store prices the call from the tokens and ``model`` (genai-prices).
- one tool call per ``codex.tool_result`` (``call_id``); a shell command that
  only reads (``cat``, ``sed -n``, ``git diff``...) repeated with the same
  output is a repeated read; the same command with the same output 3 times
  is a loop. The output's per-call header (``Chunk ID``, ``Wall time``) is
  not part of the result compared. A non-zero ``Process exited with code``
  is a failed call (an error), whatever Codex's ``success`` says.
- ``codex.sandbox_outcome`` with ``outcome=denied``: a refused tool call
  (``runtrace.tool.refused``); the failed attempt itself arrives as a tool_result.
- the command (and MCP server) of a call is recorded as ``gen_ai.tool.call.arguments``
  (``_build.tool_arguments``) for the run page; Codex sends its arguments whatever
  ``log_user_prompt`` says, the output is never kept. A refusal is named by its
  attempt's command (same ``call_id``, same request).

Codex's own spans (traces exporter): ``session_task.turn`` carries turn totals
under ``codex.turn.token_usage.*`` (never read), and ``handle_responses`` one
call's ``gen_ai.usage.*`` without an operation name or model. The log events
count every call already, so :func:`mark_trace_span` (the traces path calls it
for every span) marks each Codex span that carries usage with
``runtrace.duplicate_of``: kept, never counted, priced or made an LLM call,
so "logs only" and "logs + traces" give the same run.

Most Codex spans lack ``conversation.id``: some carry the same id as
``thread_id``, many carry neither (``handle_responses``, ``codex.exec``,
``initialize``...), and one process's spans spread over several traces. Its
resource has no per-process attribute either. So :func:`join_sessions` (the
traces path calls it per OTLP request) stamps ``runtrace.run.id`` on every
Codex span: its own ``conversation.id`` / ``thread_id``, else the one session
of its trace in the request, else the one session of the request's Codex spans
(one export request comes from one process). Without that each recording gave
4-8 unnamed per-trace runs beside the session's.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from .. import semconv as sc
from .._jsontext import parse_json_text
from ..detect import stable_hash, text_hash
from ..store.records import SpanRecord
from ._build import Session, ToolCall, llm_record, prompt_record, tool_arguments, tool_records
from ._values import clean_resource, text, to_bool, to_int
from .events import LogEvent, records_by_session

SERVICE_NAMES: frozenset[str] = sc.CODEX_SERVICE_NAMES
AGENT = "codex"
FALLBACK_NAME = "Codex session"
_REDACTED = "[REDACTED]"
_USAGE_PREFIX = sc.GEN_AI_USAGE_INPUT_TOKENS.rsplit(".", 1)[0] + "."  # "gen_ai.usage."

# The per-call header lines of an exec_command output that differ between identical runs.
_VOLATILE_LINE = re.compile(r"^(Chunk ID|Wall time):.*$", re.MULTILINE)
_EXIT_CODE = re.compile(r"^Process exited with code (-?\d+)$", re.MULTILINE)
_SHELL_OPERATORS = re.compile(r"[;&|<>`]|\$\(")
_READ_COMMANDS = frozenset({"cat", "head", "tail", "nl", "wc", "ls", "rg", "grep", "find", "stat", "file",
                            "tree", "pwd", "less", "more"})
_READ_GIT = frozenset({"diff", "status", "log", "show", "blame", "ls-files"})


def to_records(events: Sequence[LogEvent]) -> list[SpanRecord]:
    """The run records of every Codex session among ``events`` (others are dropped)."""
    return records_by_session(events, lambda e: text(e.attributes.get(sc.CODEX_CONVERSATION_ID)),
                              lambda e: e.time_ns, _session_records)


def mark_trace_span(record: SpanRecord) -> SpanRecord:
    """A Codex span with per-call usage: marked as counted by the ``codex.sse_event`` logs."""
    if record.resource.get(sc.SERVICE_NAME) not in SERVICE_NAMES:
        return record
    a = record.attributes
    if not any(key.startswith(_USAGE_PREFIX) for key in a):
        return record
    attrs = dict(a)
    attrs[sc.DUPLICATE_OF] = sc.CODEX_EV_SSE_EVENT
    session = text(a.get(sc.CODEX_CONVERSATION_ID))
    if session is not None:
        attrs.setdefault(sc.RUN_ID, session)
    return dataclasses.replace(record, attributes=attrs)


def _session_of(record: SpanRecord) -> str | None:
    a = record.attributes
    return text(a.get(sc.CODEX_CONVERSATION_ID)) or text(a.get(sc.CODEX_THREAD_ID))


def join_sessions(records: Sequence[SpanRecord]) -> list[SpanRecord]:
    """One OTLP request's spans, each Codex span stamped with its session's run id (module docstring)."""
    codex = [r for r in records if r.resource.get(sc.SERVICE_NAME) in SERVICE_NAMES]
    if not codex:
        return list(records)
    by_trace: dict[str, set[str]] = defaultdict(set)
    for record in codex:
        session = _session_of(record)
        if session is not None:
            by_trace[record.trace_id].add(session)
    in_request = set().union(*by_trace.values())
    out: list[SpanRecord] = []
    for record in records:
        if record.resource.get(sc.SERVICE_NAME) not in SERVICE_NAMES or sc.RUN_ID in record.attributes:
            out.append(record)
            continue
        session = _session_of(record)
        if session is None:
            candidates = by_trace.get(record.trace_id) or in_request
            session = next(iter(candidates)) if len(candidates) == 1 else None
        if session is None:
            out.append(record)  # ambiguous or no id in sight: a run of its trace, as any span
            continue
        out.append(dataclasses.replace(record, attributes={**record.attributes, sc.RUN_ID: session}))
    return out


def _session_records(session_id: str, events: list[LogEvent]) -> list[SpanRecord]:
    session = Session(AGENT, session_id, clean_resource(events[0].resource))
    records: list[SpanRecord] = []
    calls: list[ToolCall] = []
    for event in events:
        if event.name == sc.CODEX_EV_USER_PROMPT:
            prompt = text(event.attributes.get(sc.CODEX_PROMPT))
            records.append(prompt_record(
                session, identity=("user_prompt", event.time_ns), event_name=event.name, time_ns=event.time_ns,
                name=prompt if prompt is not None and prompt != _REDACTED else FALLBACK_NAME,
                scope_name=event.scope_name))
        elif event.name == sc.CODEX_EV_SSE_EVENT:
            record = _llm_call(session, event)
            if record is not None:
                records.append(record)
        elif event.name == sc.CODEX_EV_TOOL_RESULT:
            calls.append(_tool_call(event))
        elif event.name == sc.CODEX_EV_SANDBOX_OUTCOME:
            refused = _refusal(event)
            if refused is not None:
                calls.append(refused)
    records.extend(tool_records(session, _name_refusals(calls)))
    return records


def _name_refusals(calls: list[ToolCall]) -> list[ToolCall]:
    """A sandbox refusal carries only the call id: it names what was refused from its attempt's tool_result."""
    attempts = {c.call_id: c.arguments for c in calls if not c.refused and c.call_id and c.arguments}
    return [dataclasses.replace(c, arguments=attempts.get(c.call_id)) if c.refused and c.call_id in attempts else c
            for c in calls]


def _llm_call(session: Session, event: LogEvent) -> SpanRecord | None:
    a = event.attributes
    if a.get(sc.CODEX_EVENT_KIND) != sc.CODEX_KIND_COMPLETED:
        return None
    input_tokens = to_int(a.get(sc.CODEX_INPUT_TOKENS))
    output_tokens = to_int(a.get(sc.CODEX_OUTPUT_TOKENS))
    if input_tokens is None and output_tokens is None:
        return None  # the count-less completion event Codex sends beside the real one
    return llm_record(
        session, identity=("response.completed", event.time_ns, input_tokens, output_tokens),
        event_name=event.name, end_ns=event.time_ns, duration_ms=to_int(a.get(sc.CODEX_DURATION_MS)),
        provider=sc.PROVIDER_OPENAI, request_model=text(a.get(sc.CODEX_MODEL)), response_model=None,
        input_tokens=input_tokens or 0, cached_tokens=to_int(a.get(sc.CODEX_CACHED_TOKENS)) or 0,
        cache_write_tokens=to_int(a.get(sc.CODEX_CACHE_WRITE_TOKENS)) or 0,
        output_tokens=output_tokens or 0, reasoning_tokens=to_int(a.get(sc.CODEX_REASONING_TOKENS)) or 0,
        scope_name=event.scope_name)


def _tool_call(event: LogEvent) -> ToolCall:
    a = event.attributes
    name = text(a.get(sc.CODEX_TOOL_NAME)) or "unknown"
    call_id = text(a.get(sc.CODEX_CALL_ID))
    args = parse_json_text(a.get(sc.CODEX_ARGUMENTS))
    command = _command(args)
    output = text(a.get(sc.CODEX_OUTPUT)) or ""
    result = _VOLATILE_LINE.sub("", output)
    success = to_bool(a.get(sc.CODEX_SUCCESS)) is not False
    exit_code = _EXIT_CODE.search(output)
    if exit_code is not None and exit_code.group(1) != "0":
        success = False  # Codex says success for a command that ran and failed
    return ToolCall(
        identity=("tool_result", call_id or event.time_ns), event_name=event.name, end_ns=event.time_ns,
        duration_ms=to_int(a.get(sc.CODEX_DURATION_MS)), tool_name=name, call_id=call_id,
        args_hash=stable_hash(args), result_hash=text_hash(result), success=success,
        error=None if success else (f"exit code {exit_code.group(1)}" if exit_code else "tool call failed"),
        read=command is not None and is_read_only(command), result_text=result,
        args_preview=command or "", arguments=_subject(args, command, text(a.get(sc.CODEX_MCP_SERVER))))


def _subject(args: Any, command: str | None, mcp_server: str | None) -> str | None:
    """The command, file or MCP server a call acted on (Codex sends its arguments whatever its prompt flag)."""
    values: dict[str, object] = {"command": command, "mcp_server": mcp_server}
    if isinstance(args, dict):
        values.update((k, args.get(k)) for k in ("path", "file_path", "pattern", "query"))
    return tool_arguments(values)


def _refusal(event: LogEvent) -> ToolCall | None:
    a = event.attributes
    if text(a.get(sc.CODEX_OUTCOME)) != sc.CODEX_OUTCOME_DENIED:
        return None
    call_id = text(a.get(sc.CODEX_CALL_ID))
    return ToolCall(
        identity=("sandbox_outcome", call_id or event.time_ns), event_name=event.name, end_ns=event.time_ns,
        duration_ms=None, tool_name=text(a.get(sc.CODEX_TOOL_NAME)) or "unknown", call_id=call_id,
        args_hash="", result_hash="", success=False, refused=True)


def _command(args: Any) -> str | None:
    """The shell command of an exec_command / shell call (a string or an argv list)."""
    if not isinstance(args, dict):
        return None
    cmd = args.get("cmd", args.get("command"))
    if isinstance(cmd, list) and all(isinstance(p, str) for p in cmd):
        if len(cmd) >= 3 and cmd[0].rsplit("/", 1)[-1] in ("bash", "sh", "zsh") and cmd[1] in ("-lc", "-c"):
            return str(cmd[2])
        return shlex.join(cmd)
    return cmd if isinstance(cmd, str) else None


def is_read_only(command: str) -> bool:
    """A command that only reads: one known read command, no redirection, chaining or substitution."""
    if _SHELL_OPERATORS.search(command):
        return False
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    if not words:
        return False
    head = words[0].rsplit("/", 1)[-1]
    if head == "git":
        return len(words) > 1 and words[1] in _READ_GIT
    if head == "sed":
        return "-n" in words and not any(w.startswith("-i") or w == "--in-place" for w in words)
    if head == "find":
        return not any(w in ("-delete", "-exec", "-execdir", "-ok") for w in words)
    return head in _READ_COMMANDS
