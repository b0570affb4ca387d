"""What the agent adapters share: ids, record shapes, waste flags.

Ids are deterministic from an event's identity, so an OTLP request sent twice
(an exporter retry) yields the same (trace_id, span_id) pairs and the store
counts them once. The trace id is one per session: a session is a run.

Repeated reads and loops are flagged over the events of one call to
``to_records`` (one OTLP request, in the order the agent recorded them). The
store redoes the repeated reads over the whole run at ingest
(:mod:`runtrace.store.rereads`, from ``runtrace.tool.read``, the args/result
hashes and ``runtrace.tool.read_tokens`` on every read record), so reads split
across requests are compared too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from .. import semconv as sc
from ..detect import LoopDetector, RepeatedReads, estimate_tokens
from ..store.records import Attributes, EventRecord, SpanRecord


def hex_id(nbytes: int, *parts: object) -> str:
    """A stable id of ``nbytes`` bytes (lowercase hex) from the parts' text."""
    text = "\x1f".join(["" if p is None else str(p) for p in parts])  # a list: join builds one anyway
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[: nbytes * 2]
    return digest if digest.strip("0") else "1".rjust(nbytes * 2, "0")  # all-zero ids are invalid


def session_trace_id(agent: str, session: str) -> str:
    return hex_id(16, agent, "session", session)


@dataclass
class Session:
    """What every record of one session shares: its run and its resource."""

    agent: str
    session_id: str
    resource: Attributes

    @cached_property
    def trace_id(self) -> str:
        """One hash per session, not one per record (every record of the session carries it)."""
        return session_trace_id(self.agent, self.session_id)

    def run_attributes(self) -> Attributes:
        return {sc.RUN_ID: self.session_id}

    def span_id(self, *identity: object) -> str:
        return hex_id(8, self.agent, self.session_id, *identity)


def prompt_record(session: Session, *, identity: Iterable[object], event_name: str, time_ns: int,
                  name: str, scope_name: str | None = None) -> SpanRecord:
    """A user prompt: the one record that carries the run's name, project and owner.

    Only prompt records carry name/project/owner, so the rest of a turn, in
    whatever request it arrives, never overrides the name; among prompts the
    store takes the earliest, so a session is named by its first prompt, also
    after ``claude --resume`` / ``codex exec resume`` and whatever order the
    records arrive in.
    """
    attrs: Attributes = {**session.run_attributes(), sc.RUN_NAME: name, sc.AGENT_EVENT: event_name}
    for key in (sc.PROJECT, sc.OWNER):
        value = session.resource.get(key)
        if isinstance(value, str) and value:
            attrs[key] = value
    return SpanRecord(
        trace_id=session.trace_id, span_id=session.span_id(*identity), parent_span_id=None,
        name=sc.AGENT_PROMPT_SPAN, kind="INTERNAL", start_ns=time_ns, end_ns=time_ns, status_code="UNSET",
        status_message=None, attributes=attrs, resource=session.resource, scope_name=scope_name)


def llm_record(session: Session, *, identity: Iterable[object], event_name: str, end_ns: int,
               duration_ms: int | None, provider: str, request_model: str | None,
               response_model: str | None, input_tokens: int, cached_tokens: int, cache_write_tokens: int,
               output_tokens: int, reasoning_tokens: int, extra: Attributes | None = None,
               scope_name: str | None = None) -> SpanRecord:
    """One completed model call, usage already in runtrace's semantics (input = all input,
    output includes reasoning)."""
    model = response_model or request_model or "unknown"
    attrs: Attributes = {
        **session.run_attributes(),
        sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT,
        sc.GEN_AI_PROVIDER_NAME: provider,
        sc.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: cached_tokens,
        sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: cache_write_tokens,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
        sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: reasoning_tokens,
        sc.AGENT_EVENT: event_name,
    }
    if request_model:
        attrs[sc.GEN_AI_REQUEST_MODEL] = request_model
    if response_model:
        attrs[sc.GEN_AI_RESPONSE_MODEL] = response_model
    if extra:
        attrs.update(extra)
    start_ns = end_ns - max(duration_ms or 0, 0) * 1_000_000
    return SpanRecord(
        trace_id=session.trace_id, span_id=session.span_id(*identity),
        parent_span_id=None, name=f"{sc.OP_CHAT} {model}", kind="CLIENT", start_ns=start_ns, end_ns=end_ns,
        status_code="UNSET", status_message=None, attributes=attrs, resource=session.resource,
        scope_name=scope_name)


def error_record(session: Session, *, identity: Iterable[object], event_name: str, end_ns: int,
                 duration_ms: int | None, name: str, message: str | None, attributes: Attributes,
                 scope_name: str | None = None) -> SpanRecord:
    """A model call that finally failed: an error in the run, not an LLM call (no usage)."""
    attrs: Attributes = {**session.run_attributes(), **attributes, sc.AGENT_EVENT: event_name}
    start_ns = end_ns - max(duration_ms or 0, 0) * 1_000_000
    return SpanRecord(
        trace_id=session.trace_id, span_id=session.span_id(*identity),
        parent_span_id=None, name=name, kind="CLIENT", start_ns=start_ns, end_ns=end_ns, status_code="ERROR",
        status_message=message, attributes=attrs, resource=session.resource, scope_name=scope_name)


# A recorded tool argument (a command line, a path, a pattern) longer than this is cut, ending in "…".
ARGUMENT_CHARS = 500


def tool_arguments(values: Mapping[str, object]) -> str | None:
    """What a tool call acted on, as runtrace records it: ``gen_ai.tool.call.arguments`` JSON, or None.

    Only the values an adapter picked (the file, the command, the pattern, the
    MCP server: never an edit's old/new text), only when the agent sent them
    (its detail flag: Claude's ``OTEL_LOG_TOOL_DETAILS``, Gemini's
    ``logPrompts``), each cut at :data:`ARGUMENT_CHARS`. The attribute is
    runtrace's mark that content was captured (as ``capture_content`` writes it
    in-process), so the run page names the file or command only then; the waste
    detectors compare the hashes of the agent's whole input, never this text.
    """
    kept: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, str) and value.strip():
            kept[key] = value if len(value) <= ARGUMENT_CHARS else value[:ARGUMENT_CHARS - 1] + "…"
    return json.dumps(kept, ensure_ascii=False) if kept else None


@dataclass
class ToolCall:
    """One executed (or refused) tool call, before the waste flags are set."""

    identity: tuple[object, ...]
    event_name: str
    end_ns: int
    duration_ms: int | None
    tool_name: str
    call_id: str | None
    args_hash: str
    result_hash: str
    success: bool
    error: str | None = None
    read: bool = False  # only reads: a repeat with the same result is a repeated read
    result_chars: int = 0
    result_text: str | None = None  # for the token estimate of a repeated read
    args_preview: str = ""
    refused: bool = False
    arguments: str | None = None  # gen_ai.tool.call.arguments (tool_arguments): the file, command, pattern
    extra: Attributes = field(default_factory=dict)


def tool_records(session: Session, calls: Iterable[ToolCall], scope_name: str | None = None) -> list[SpanRecord]:
    """Tool records in call order, with repeated reads and loops flagged across ``calls``.

    A refused call is a record of its own (``runtrace.tool.refused``), not an
    execute_tool span: it was not executed, so it is not a tool call; the
    agent usually reports the failed attempt separately.
    """
    reads = RepeatedReads()
    loops = LoopDetector()
    records: list[SpanRecord] = []
    for call in sorted(calls, key=lambda c: (c.end_ns, str(c.identity))):
        attrs: Attributes = {
            **session.run_attributes(),
            sc.GEN_AI_TOOL_NAME: call.tool_name,
            sc.AGENT_EVENT: call.event_name,
        }
        if call.call_id:
            attrs[sc.GEN_AI_TOOL_CALL_ID] = call.call_id
        if call.duration_ms is not None:
            attrs[sc.TOOL_DURATION_MS] = call.duration_ms
        if call.arguments is not None:
            attrs[sc.GEN_AI_TOOL_CALL_ARGUMENTS] = call.arguments
        attrs.update(call.extra)
        events: list[EventRecord] = []
        status, message = ("OK", None) if call.success else ("ERROR", call.error or "tool call failed")
        name = f"{sc.OP_EXECUTE_TOOL} {call.tool_name}"
        if call.refused:
            attrs[sc.TOOL_REFUSED] = True
            status, message, name = "UNSET", None, f"refused {call.tool_name}"
        else:
            attrs[sc.GEN_AI_OPERATION_NAME] = sc.OP_EXECUTE_TOOL
            attrs[sc.TOOL_ARGS_HASH] = call.args_hash
            attrs[sc.TOOL_RESULT_HASH] = call.result_hash
            attrs[sc.TOOL_READ] = call.read
            if not call.success and call.error:
                attrs[sc.ERROR_TYPE] = call.error[:200]
            if call.read:
                tokens = estimate_tokens(call.result_text) if call.result_text else call.result_chars // 4
                attrs[sc.TOOL_READ_TOKENS] = tokens
                seen = reads.observe(call.tool_name, call.args_hash, call.result_hash, tokens)
                attrs[sc.TOOL_REPEAT_COUNT] = seen.repeat_count
                if seen.repeat:
                    attrs[sc.TOOL_REPEATED_READ] = True
                    attrs[sc.TOOL_REPEATED_READ_TOKENS] = seen.repeated_tokens
                    events.append(EventRecord(sc.EVENT_REPEATED_READ, call.end_ns,
                                              {sc.TOOL_REPEAT_COUNT: seen.repeat_count}))
            for found in loops.observe_tool_call(call.tool_name, call.args_hash, call.result_hash,
                                                 args_preview=call.args_preview):
                attrs[sc.LOOP_DETECTED] = True
                events.append(EventRecord(sc.EVENT_LOOP, call.end_ns, {
                    sc.LOOP_KIND: found.kind, sc.LOOP_COUNT: found.count,
                    sc.LOOP_DESCRIPTION: found.description}))
        start_ns = call.end_ns - max(call.duration_ms or 0, 0) * 1_000_000
        records.append(SpanRecord(
            trace_id=session.trace_id, span_id=session.span_id(*call.identity),
            parent_span_id=None, name=name, kind="INTERNAL", start_ns=start_ns, end_ns=call.end_ns,
            status_code=status, status_message=message, attributes=attrs, resource=session.resource,
            events=tuple(events), scope_name=scope_name))
    return records
