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
--               Gemini `gemini_cli.tool_call` (not a rejected one); a Codex command that
--               exited non-zero failed, whatever Codex's `success` says;
--   API error   Claude `claude_code.api_error`, Gemini `gemini_cli.api_error` (a model call
--               that finally failed: a failed client span, no LLM call);
--   refusal     Codex `codex.sandbox_outcome` with outcome=denied, Gemini `gemini_cli.tool_call`
--               with decision=reject (runtrace.tool.refused, no tool call). Claude Code's
--               refusals are in its beta traces only (03 reads blocked_on_user decision=reject).
-- Claude Code's own cost_usd is kept as runtrace.agent.cost_usd; 03 prices every call from
-- its tokens, as the embedded store does.
--   prompt      Claude `claude_code.user_prompt`, Codex `codex.user_prompt`, Gemini
--               `gemini_cli.user_prompt`: a span (scope 'runtrace.otel_logs.prompt', no call)
--               that alone carries the run's name (the prompt; "<agent> session" while it is
--               redacted), project and owner, as the adapters' prompt record does: the run is
--               named by its latest prompt.
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
            _ev = 'gemini_cli.tool_call' AND _la['decision'] != 'reject', 'gemini',
            '') AS _tool,
    multiIf(_body = 'claude_code.api_error', 'claude',
            _ev = 'gemini_cli.api_error', 'gemini',
            '') AS _err,
    multiIf(_ev = 'codex.sandbox_outcome' AND _la['outcome'] = 'denied', 'codex',
            _ev = 'gemini_cli.tool_call' AND _la['decision'] = 'reject', 'gemini',
            '') AS _refused,
    extract(_la['output'], '(?m)^Process exited with code (-?[0-9]+)$') AS _exit_code,
    (_tool != '' AND (lower(_la['success']) = 'false'
                      OR (_tool = 'codex' AND _exit_code NOT IN ('', '0')))) AS _tool_failed,
    multiIf(_body = 'claude_code.user_prompt', 'claude',
            _ev = 'codex.user_prompt', 'codex',
            _ev = 'gemini_cli.user_prompt', 'gemini',
            '') AS _prompt,
    multiIf(_prompt = 'claude', if(_la['prompt'] IN ('', '<REDACTED>'), 'Claude Code session', _la['prompt']),
            _prompt = 'codex', if(_la['prompt'] IN ('', '[REDACTED]'), 'Codex session', _la['prompt']),
            _prompt = 'gemini', if(_la['prompt'] = '', 'Gemini session', _la['prompt']),
            '') AS _run_name,
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
    multiIf(_llm = 'claude' OR _tool = 'claude' OR _err = 'claude', 'anthropic',
            _llm = 'codex' OR _tool = 'codex' OR _refused = 'codex', 'openai',
            'gcp.gemini') AS _provider,
    if(_tool = 'gemini' OR _refused = 'gemini', _la['function_name'], _la['tool_name']) AS _tool_name,
    if(_tool = 'claude', _la['tool_use_id'], _la['call_id']) AS _call_id,
    toUInt64OrZero(_la['duration_ms']) * 1000000 AS _duration
SELECT
    fromUnixTimestamp64Nano(greatest(toUnixTimestamp64Nano(_ts) - toInt64(_duration), 0)) AS Timestamp,
    _trace AS TraceId,
    leftPad(lower(hex(cityHash64(toUnixTimestamp64Nano(_ts), _body, toString(_la),
                                  toString(_res)))), 16, '0') AS SpanId,
    _span AS ParentSpanId,
    '' AS TraceState,
    multiIf(_llm != '' OR _err != '', concat('chat ', if(_la['model'] != '', _la['model'], 'unknown')),
            _refused != '', concat('refused ', _tool_name),
            _prompt != '', 'user_prompt',
            concat('execute_tool ', _tool_name)) AS SpanName,
    if(_llm != '' OR _err != '', 'Client', 'Internal') AS SpanKind,
    _service AS ServiceName,
    _res AS ResourceAttributes,
    if(_prompt != '', 'runtrace.otel_logs.prompt', 'runtrace.otel_logs') AS ScopeName,
    '' AS ScopeVersion,
    mapFilter((k, v) -> v != '', map(
        'runtrace.run.id', _run,
        -- only the prompt names the run: a call or tool span carrying project/owner would out-rank it
        'runtrace.run.name', _run_name,
        'runtrace.project', if(_prompt != '', _res['runtrace.project'], ''),
        'runtrace.owner', if(_prompt != '', _res['runtrace.owner'], ''),
        'runtrace.agent.event', if(_ev != '', _ev, _body),
        'gen_ai.operation.name', multiIf(_llm != '', 'chat', _tool != '', 'execute_tool', ''),
        'gen_ai.provider.name', if(_refused = '' AND _prompt = '', _provider, ''),
        'gen_ai.request.model', if(_llm != '' OR _err != '', _la['model'], ''),
        'gen_ai.response.model', if(_llm != '', _la['model'], ''),
        'gen_ai.usage.input_tokens', if(_llm != '', toString(_in), ''),
        'gen_ai.usage.output_tokens', if(_llm != '', toString(_out), ''),
        'gen_ai.usage.cache_read.input_tokens', if(_llm != '', toString(_cr), ''),
        'gen_ai.usage.cache_creation.input_tokens', if(_llm != '', toString(_cw), ''),
        'gen_ai.usage.reasoning.output_tokens', if(_llm != '', toString(_reasoning), ''),
        -- Claude Code's own figure, kept beside the price 03 computes from the tokens
        'runtrace.agent.cost_usd', if(_llm = 'claude', _la['cost_usd'], ''),
        'error.type', if(_err != '', if(_la['error_type'] != '', _la['error_type'], _la['status_code']), ''),
        'runtrace.tool.refused', if(_refused != '', 'true', ''),
        'gen_ai.tool.name', if(_tool != '' OR _refused != '', _tool_name, ''),
        'gen_ai.tool.call.id', if(_tool != '' OR _refused != '', _call_id, ''))) AS SpanAttributes,
    _duration AS Duration,
    if(_tool_failed OR _err != '', 'Error', 'Unset') AS StatusCode,
    multiIf(_err != '', if(_la['error'] != '', _la['error'], 'model call failed'),
            _tool_failed AND _la['error'] != '', _la['error'],
            _tool_failed, if(_exit_code != '', concat('exit code ', _exit_code), 'tool call failed'),
            '') AS StatusMessage
FROM (
    -- renamed, so the output columns (otel_traces' names) never shadow the input ones
    SELECT Timestamp AS _ts, TraceId AS _trace, SpanId AS _span, Body AS _body, ServiceName AS _service,
           ResourceAttributes AS _res, LogAttributes AS _la
    FROM otel.otel_logs
)
WHERE _run != '' AND (_llm != '' OR _tool != '' OR _err != '' OR _refused != '' OR _prompt != '');
