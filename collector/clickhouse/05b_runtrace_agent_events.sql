-- Coding agents' events -> the same runs as SDK spans.
--
-- Claude Code, Codex and Gemini CLI report model calls and tool calls as log events
-- (otel_logs), not as GenAI spans. This view turns each event that is one model call
-- or one tool call into a GenAI span in otel_traces (ScopeName 'runtrace.otel_logs'),
-- so runtrace_spans_mv (03) types, prices and counts it with exactly the rules it
-- applies to SDK spans, and runtrace_runs_v / the Grafana boards show the session
-- beside SDK runs. The run id is the agent's session (DESIGN 6b): Claude Code and
-- Gemini CLI `session.id`, Codex `conversation.id`; project and owner come from the
-- resource (OTEL_RESOURCE_ATTRIBUTES=runtrace.project=P,runtrace.owner=O, as
-- `runtrace agents setup` writes it).
--
-- Events used (measured: /work/shared/agent-telemetry/INVENTORY.md):
--   model call  Claude `claude_code.api_request` (one per successful call; the agent's
--               own cost_usd), Codex `codex.sse_event` of kind response.completed that
--               carries token counts, Gemini `gemini_cli.api_response`;
--   tool call   Claude `claude_code.tool_result`, Codex `codex.tool_result`,
--               Gemini `gemini_cli.tool_call`.
-- Tokens are converted once, here, to runtrace's semantics: input is all input
-- (Anthropic's excludes cache reads and writes: they are added), output includes
-- reasoning (Gemini reports thoughts beside the candidates: they are added).
--
-- Each event counts once: its span id is a hash of the whole record, so a re-sent
-- record collapses in runtrace_spans (ReplacingMergeTree, read FINAL) like a re-sent
-- span. Claude Code's beta trace spans (claude_code.llm_request, claude_code.tool)
-- carry no gen_ai.operation.name and are not counted by 03, so a call is not counted
-- twice when both signals are exported.

CREATE MATERIALIZED VIEW IF NOT EXISTS otel.runtrace_agent_events_mv
TO otel.otel_traces
AS
WITH
    _la['event.name'] AS _ev,
    multiIf(_body = 'claude_code.api_request', 'claude',
            _ev = 'codex.sse_event' AND _la['event.kind'] = 'response.completed'
                AND mapContains(_la, 'input_token_count'), 'codex',
            _ev = 'gemini_cli.api_response', 'gemini',
            '') AS _llm,
    multiIf(_body = 'claude_code.tool_result', 'claude',
            _ev = 'codex.tool_result', 'codex',
            _ev = 'gemini_cli.tool_call', 'gemini',
            '') AS _tool,
    if(_la['session.id'] != '', _la['session.id'], _la['conversation.id']) AS _run,
    toUInt64OrZero(_la['input_tokens']) AS _c_in,
    toUInt64OrZero(_la['cache_read_tokens']) AS _c_cr,
    toUInt64OrZero(_la['cache_creation_tokens']) AS _c_cw,
    multiIf(_llm = 'claude', _c_in + _c_cr + _c_cw,
            toUInt64OrZero(_la['input_token_count'])) AS _in,
    multiIf(_llm = 'claude', _c_cr,
            _llm = 'codex', toUInt64OrZero(_la['cached_token_count']),
            toUInt64OrZero(_la['cached_content_token_count'])) AS _cr,
    multiIf(_llm = 'claude', _c_cw,
            _llm = 'codex', toUInt64OrZero(_la['cache_write_token_count']),
            0) AS _cw,
    multiIf(_llm = 'claude', toUInt64OrZero(_la['output_tokens']),
            _llm = 'codex', toUInt64OrZero(_la['output_token_count']),
            toUInt64OrZero(_la['output_token_count'])
                + toUInt64OrZero(_la['thoughts_token_count'])) AS _out,
    multiIf(_llm = 'codex', toUInt64OrZero(_la['reasoning_token_count']),
            _llm = 'gemini', toUInt64OrZero(_la['thoughts_token_count']),
            0) AS _reasoning,
    multiIf(_llm = 'claude' OR _tool = 'claude', 'anthropic',
            _llm = 'codex' OR _tool = 'codex', 'openai',
            'gcp.gemini') AS _provider,
    if(_tool = 'gemini', _la['function_name'], _la['tool_name']) AS _tool_name,
    if(_tool = 'claude', _la['tool_use_id'], _la['call_id']) AS _call_id,
    toUInt64OrZero(_la['duration_ms']) * 1000000 AS _duration
SELECT
    fromUnixTimestamp64Nano(greatest(toUnixTimestamp64Nano(_ts) - toInt64(_duration), 0)) AS Timestamp,
    _trace AS TraceId,
    leftPad(lower(hex(cityHash64(toUnixTimestamp64Nano(_ts), _body, toString(_la),
                                  toString(_res)))), 16, '0') AS SpanId,
    _span AS ParentSpanId,
    '' AS TraceState,
    if(_llm != '', concat('chat ', _la['model']), concat('execute_tool ', _tool_name)) AS SpanName,
    if(_llm != '', 'Client', 'Internal') AS SpanKind,
    _service AS ServiceName,
    _res AS ResourceAttributes,
    'runtrace.otel_logs' AS ScopeName,
    '' AS ScopeVersion,
    mapFilter((k, v) -> v != '', map(
        'runtrace.run.id', _run,
        'runtrace.project', _res['runtrace.project'],
        'runtrace.owner', _res['runtrace.owner'],
        'runtrace.agent.event', if(_ev != '', _ev, _body),
        'gen_ai.operation.name', if(_llm != '', 'chat', 'execute_tool'),
        'gen_ai.provider.name', _provider,
        'gen_ai.request.model', if(_llm != '', _la['model'], ''),
        'gen_ai.response.model', if(_llm != '', _la['model'], ''),
        'gen_ai.usage.input_tokens', if(_llm != '', toString(_in), ''),
        'gen_ai.usage.output_tokens', if(_llm != '', toString(_out), ''),
        'gen_ai.usage.cache_read.input_tokens', if(_llm != '', toString(_cr), ''),
        'gen_ai.usage.cache_creation.input_tokens', if(_llm != '', toString(_cw), ''),
        'gen_ai.usage.reasoning.output_tokens', if(_llm != '', toString(_reasoning), ''),
        -- Claude Code prices its calls itself (list prices); Codex and Gemini do not: 03 prices them
        'runtrace.cost.usd', if(_llm = 'claude', _la['cost_usd'], ''),
        'runtrace.cost.source', if(_llm = 'claude', 'agent', ''),
        'gen_ai.tool.name', if(_tool != '', _tool_name, ''),
        'gen_ai.tool.call.id', if(_tool != '', _call_id, ''))) AS SpanAttributes,
    _duration AS Duration,
    if(_tool != '' AND lower(_la['success']) = 'false', 'Error', 'Unset') AS StatusCode,
    if(_tool != '' AND lower(_la['success']) = 'false', _la['error'], '') AS StatusMessage
FROM (
    -- renamed, so the output columns (otel_traces' names) never shadow the input ones
    SELECT Timestamp AS _ts, TraceId AS _trace, SpanId AS _span, Body AS _body, ServiceName AS _service,
           ResourceAttributes AS _res, LogAttributes AS _la
    FROM otel.otel_logs
)
WHERE _run != '' AND (_llm != '' OR _tool != '');
