-- runtrace_spans: one typed row per span, each with the run it belongs to (DESIGN 6b,
-- as src/runtrace/store/aggregate.py run_id_of): runtrace.run.id; else a session
-- (session.id, conversation.id, gen_ai.conversation.id: span attributes, then resource
-- attributes); else the trace (run id = the 32-hex TraceId). So spans from other SDKs
-- form runs too; in a run without runtrace.run.id a root span (foreign_root) stands
-- for the run span: its name names the run, and it makes the run 'open'.
-- Every cast from the exporter's string attributes happens here, once; the run,
-- model and tool-call views below read this table, never the raw maps.
--
-- Each span counts once. Delivery is at-least-once (the collector's queue retries,
-- `runtrace forward` may re-send its last batch after a crash), and ClickHouse's
-- insert deduplication cannot catch a re-send: the collector re-batches spans, and
-- the exporter inserts asynchronously. So this table is a ReplacingMergeTree keyed by
-- (run_id, trace_id, span_id) (a re-sent span has the same start, hence the same
-- partition), and every reader takes it FINAL: copies of a span collapse at read
-- time until a merge removes them for good, as the embedded store ignores a span it
-- already holds.
--
-- Each model call once (store/innermost.py, store/siblings.py): has_usage, duplicate
-- and scope feed the innermost and sibling rules that runtrace_runs_v applies
-- (04_runtrace_runs.sql).
--
-- Cost: runtrace.cost.usd when the SDK priced the call. A span from another SDK
-- (gen_ai.usage.* but neither runtrace.cost.usd nor runtrace.cost.source) is
-- priced here from runtrace_prices, the same price data the SDK uses
-- (cost_source = 'clickhouse'). A call with no price is unpriced (priced = 0),
-- never $0.

CREATE TABLE IF NOT EXISTS otel.runtrace_spans
(
    `run_id` String,
    `kind` LowCardinality(String),                 -- llm | tool | run | outcome | other
    `trace_id` String,
    `span_id` String,
    `parent_span_id` String,
    `name` String,
    `service` LowCardinality(String),
    `start` DateTime64(9),
    `end` DateTime64(9),
    `duration_ns` UInt64,
    `status` LowCardinality(String),               -- ok | error | unset (both exporter spellings)
    `operation` LowCardinality(String),
    `provider` LowCardinality(String),
    `request_model` LowCardinality(String),
    `response_model` LowCardinality(String),
    `model` LowCardinality(String),                -- response model, else request model
    `input_tokens` UInt64,                         -- total input, cached included
    `output_tokens` UInt64,
    `cached_input_tokens` UInt64,
    `cache_write_tokens` UInt64,
    `reasoning_tokens` UInt64,
    `reinjected_tokens` UInt64,
    `cost_usd` Float64,
    `cost_nusd` Int64,                             -- cost in nano-dollars: exact sums in any order
    `priced` UInt8,
    `cost_source` LowCardinality(String),          -- genai-prices | override | clickhouse | unknown | ''
    `tool_name` LowCardinality(String),
    `tool_args_hash` String,
    `tool_result_hash` String,
    `tool_repeat_count` UInt32,
    `repeated_read` UInt8,
    `repeated_read_tokens` UInt64,
    `loop_detected` UInt8,                         -- runtrace.loop.detected, or the run span's runtrace.run.loop_detected
    `foreign_root` UInt8,                          -- a root span without runtrace.run.id (DESIGN 6b)
    `run_name` String,                             -- any span may carry these; the run span's win
    `project` String,
    `owner` String,
    `outcome` String,                              -- run span: its outcome or 'open'; outcome span: the verdict
    `outcome_by` String,
    `outcome_reason` String,
    `stop_reason` String,
    `budget_max_cost_usd` Nullable(Float64),
    `budget_max_seconds` Nullable(Float64),
    `has_usage` UInt8,                             -- an LLM span reporting tokens (not a duplicate)
    `duplicate` UInt8,                             -- runtrace.duplicate_of: another SDK's copy of runtrace's call
    `refused` UInt8,                               -- a tool call the agent's sandbox or user refused (never ran)
    `agent_cost_nusd` Int64,                       -- the agent's own cost figure (Claude Code's cost_usd), kept apart
    `api_error` UInt8,                             -- a model call that finally failed
    `tool_error` UInt8,                            -- a tool call that failed
    `scope` LowCardinality(String)                 -- the instrumentation scope (04's sibling rule)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(start)
ORDER BY (run_id, trace_id, span_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS otel.runtrace_spans_mv
TO otel.runtrace_spans
AS
WITH
    -- All price rows, best first: the MV evaluates this once per insert block.
    (
        SELECT groupArray((provider_names, match_any, valid_from,
                           input_mtok, input_tiers, cache_read_mtok, cache_read_tiers,
                           cache_write_mtok, cache_write_tiers, output_mtok, output_tiers))
        FROM (SELECT * FROM otel.runtrace_prices ORDER BY rank ASC, valid_from DESC)
    ) AS _prices,
    -- Attribute dialects, read as the embedded store's normaliser reads them
    -- (src/runtrace/store/normalise.py): GenAI semconv current and deprecated names,
    -- OpenLLMetry, OpenInference, OpenLIT, Logfire, the Vercel AI SDK. The first name
    -- present wins, the canonical one first (a span forwarded from a store carries both).
    (arrayExists(k -> mapContains(SpanAttributes, k), ['ai.model.id', 'ai.operationId'])) AS _vercel,
    if(SpanAttributes['ai.operationId'] != '', SpanAttributes['ai.operationId'], SpanName) AS _vop,
    upper(SpanAttributes['openinference.span.kind']) AS _oi_kind,
    multiIf(SpanAttributes['gen_ai.operation.name'] != '', SpanAttributes['gen_ai.operation.name'],
            _oi_kind = 'LLM', 'chat',
            _oi_kind = 'EMBEDDING', 'embeddings',
            _oi_kind != '', '',
            _vercel AND (endsWith(_vop, '.doGenerate') OR endsWith(_vop, '.doStream')), 'chat',
            _vercel AND endsWith(_vop, '.doEmbed'), 'embeddings',
            _vercel AND _vop IN ('ai.generateText', 'ai.streamText', 'ai.generateObject', 'ai.streamObject'),
                'chat',
            _vercel AND _vop IN ('ai.embed', 'ai.embedMany'), 'embeddings',
            _vercel, '',
            SpanAttributes['llm.request.type'] = 'chat', 'chat',
            SpanAttributes['llm.request.type'] = 'completion', 'text_completion',
            SpanAttributes['llm.request.type'] = 'embedding', 'embeddings',
            '') AS _op,
    SpanAttributes['runtrace.span.role'] AS _role,
    -- Coding agents' own spans, as the adapters' mark_trace_span treats them (src/runtrace/agents):
    -- Claude Code's beta spans of a model or tool call are counted by its log events (05b), so
    -- they are duplicates; its blocked_on_user span with decision=reject is a refused tool call;
    -- and Claude Code and Gemini CLI copy OTEL_RESOURCE_ATTRIBUTES onto every span, so their
    -- spans' runtrace.run.name/project/owner are not read (they would out-rank the prompt).
    (ScopeName = 'com.anthropic.claude_code.tracing') AS _claude_span,
    (ScopeName IN ('com.anthropic.claude_code.tracing', 'gemini-cli')) AS _agent_span,
    -- Codex's spans (src/runtrace/agents/codex.py join_sessions): many carry its session id as
    -- thread_id only, many no id at all; runtrace_counted_spans (04) joins those to the session.
    -- None is a foreign root: the first prompt names a Codex session, never a span.
    (ServiceName IN ('codex_exec', 'codex_cli_rs', 'codex_vscode')) AS _codex_span,
    (SpanAttributes['runtrace.duplicate_of'] != ''
     OR (_claude_span AND SpanName IN ('claude_code.llm_request', 'claude_code.tool',
                                       'claude_code.tool.execution'))) AS _dup,
    (StatusCode IN ('Error', 'STATUS_CODE_ERROR') AND NOT _dup) AS _failed,
    toFloat64OrZero(SpanAttributes['runtrace.agent.cost_usd']) AS _agent_cost,
    -- (an agent's own root span is in its session's run, as mark_trace_span stamps it: no foreign root)
    toUInt8(ParentSpanId = '' AND SpanAttributes['runtrace.run.id'] = '' AND NOT _agent_span AND NOT _codex_span)
        AS _froot,
    multiIf(_role = 'run', 'run',
            _role = 'outcome', 'outcome',
            _op IN ('chat', 'text_completion', 'generate_content', 'embeddings'), 'llm',
            -- a server-side execute_tool span (an MCP server tracing itself) is the same call
            -- the client's span already counts
            _op = 'execute_tool' AND SpanKind NOT IN ('Server', 'SPAN_KIND_SERVER'), 'tool',
            'other') AS _kind,
    multiIf(SpanAttributes['gen_ai.provider.name'] != '', SpanAttributes['gen_ai.provider.name'],
            SpanAttributes['gen_ai.system'] != '', SpanAttributes['gen_ai.system'],
            SpanAttributes['llm.provider'] != '', lower(SpanAttributes['llm.provider']),
            SpanAttributes['llm.system'] != '', lower(SpanAttributes['llm.system']),
            splitByChar('.', SpanAttributes['ai.model.provider'])[1]) AS _provider,
    multiIf(SpanAttributes['gen_ai.request.model'] != '', SpanAttributes['gen_ai.request.model'],
            SpanAttributes['llm.model_name'] != '', SpanAttributes['llm.model_name'],
            SpanAttributes['ai.model.id']) AS _request_model,
    if(SpanAttributes['gen_ai.response.model'] != '', SpanAttributes['gen_ai.response.model'],
       SpanAttributes['ai.response.model']) AS _response_model,
    if(_response_model != '', _response_model, _request_model) AS _model,
    ['gen_ai.usage.input_tokens', 'gen_ai.usage.prompt_tokens', 'llm.token_count.prompt',
     'ai.usage.inputTokens', 'ai.usage.promptTokens', 'ai.usage.tokens'] AS _in_keys,
    ['gen_ai.usage.output_tokens', 'gen_ai.usage.completion_tokens', 'llm.token_count.completion',
     'ai.usage.outputTokens', 'ai.usage.completionTokens'] AS _out_keys,
    arrayExists(k -> mapContains(SpanAttributes, k), arrayConcat(_in_keys, _out_keys)) AS _usage_sent,
    toUInt64OrZero(SpanAttributes[arrayFirst(k -> mapContains(SpanAttributes, k), _in_keys)]) AS _in_sent,
    toUInt64OrZero(SpanAttributes[arrayFirst(k -> mapContains(SpanAttributes, k), _out_keys)]) AS _out,
    toUInt64OrZero(SpanAttributes[arrayFirst(k -> mapContains(SpanAttributes, k),
        ['gen_ai.usage.cache_read.input_tokens', 'gen_ai.usage.cache_read_input_tokens',
         'llm.token_count.prompt_details.cache_read', 'ai.usage.cachedInputTokens'])]) AS _cr,
    toUInt64OrZero(SpanAttributes[arrayFirst(k -> mapContains(SpanAttributes, k),
        ['gen_ai.usage.cache_creation.input_tokens', 'gen_ai.usage.cache_write.input_tokens',
         'gen_ai.usage.cache_creation_input_tokens', 'llm.token_count.prompt_details.cache_write'])]) AS _cw,
    toUInt64OrZero(SpanAttributes[arrayFirst(k -> mapContains(SpanAttributes, k),
        ['gen_ai.usage.reasoning.output_tokens', 'llm.usage.reasoning_tokens', 'gen_ai.usage.reasoning_tokens',
         'llm.token_count.completion_details.reasoning', 'ai.usage.reasoningTokens'])]) AS _reasoning,
    -- OpenLIT's Anthropic spans send Anthropic's uncached input count: made the total, once
    -- (a span a store already normalised says so in runtrace.source.dialect)
    if(startsWith(ScopeName, 'openlit') AND lower(_provider) = 'anthropic'
       AND NOT mapContains(SpanAttributes, 'runtrace.source.dialect'),
       _in_sent + _cr + _cw, _in_sent) AS _in,
    mapContains(SpanAttributes, 'runtrace.cost.usd') AS _has_cost,
    SpanAttributes['runtrace.cost.source'] AS _source,
    -- price in SQL only what no runtrace SDK looked at (neither a cost nor a verdict
    -- on it) and only with usage present: the embedded store's rule at ingest
    (_kind = 'llm' AND NOT _has_cost AND NOT mapContains(SpanAttributes, 'runtrace.cost.source')
     AND _usage_sent) AS _sql_priceable,
    if(_sql_priceable,
       arrayFirstIndex(p -> has(p.1, lower(_provider)) AND p.3 <= toDate(Timestamp)
                            AND arrayExists(alt -> arrayAll(rx -> if(startsWith(rx, '!'),
                                                                     NOT match(lower(_model), substring(rx, 2)),
                                                                     match(lower(_model), rx)), alt),
                                            p.2),
                       _prices),
       0) AS _pi,
    _prices[_pi] AS _p,
    if(arrayExists(t -> _in > t.1, _p.5), arrayLast(t -> _in > t.1, _p.5).2, _p.4) AS _p_in,
    if(arrayExists(t -> _in > t.1, _p.7), arrayLast(t -> _in > t.1, _p.7).2, _p.6) AS _p_cr,
    if(arrayExists(t -> _in > t.1, _p.9), arrayLast(t -> _in > t.1, _p.9).2, _p.8) AS _p_cw,
    if(arrayExists(t -> _in > t.1, _p.11), arrayLast(t -> _in > t.1, _p.11).2, _p.10) AS _p_out,
    -- cache reads / writes without a price of their own are charged as plain input
    toInt64(_in) - if(isNull(_p_cr), 0, toInt64(_cr)) - if(isNull(_p_cw), 0, toInt64(_cw)) AS _plain_in,
    (greatest(_plain_in, 0) * _p_in + _cr * ifNull(_p_cr, 0) + _cw * ifNull(_p_cw, 0) + _out * _p_out) / 1e6
        AS _sql_cost
SELECT
    coalesce(nullIf(SpanAttributes['runtrace.run.id'], ''),
             nullIf(SpanAttributes['session.id'], ''), nullIf(SpanAttributes['conversation.id'], ''),
             nullIf(SpanAttributes['gen_ai.conversation.id'], ''),
             if(_codex_span, nullIf(SpanAttributes['thread_id'], ''), NULL),
             nullIf(ResourceAttributes['session.id'], ''), nullIf(ResourceAttributes['conversation.id'], ''),
             nullIf(ResourceAttributes['gen_ai.conversation.id'], ''),
             TraceId) AS run_id,
    _kind AS kind,
    TraceId AS trace_id,
    SpanId AS span_id,
    ParentSpanId AS parent_span_id,
    SpanName AS name,
    ServiceName AS service,
    Timestamp AS start,
    fromUnixTimestamp64Nano(toUnixTimestamp64Nano(Timestamp) + toInt64(Duration)) AS end,
    Duration AS duration_ns,
    multiIf(StatusCode IN ('Error', 'STATUS_CODE_ERROR'), 'error',
            StatusCode IN ('Ok', 'STATUS_CODE_OK'), 'ok', 'unset') AS status,
    _op AS operation,
    _provider AS provider,
    _request_model AS request_model,
    _response_model AS response_model,
    _model AS model,
    if(_kind = 'llm', _in, 0) AS input_tokens,
    if(_kind = 'llm', _out, 0) AS output_tokens,
    if(_kind = 'llm', _cr, 0) AS cached_input_tokens,
    if(_kind = 'llm', _cw, 0) AS cache_write_tokens,
    if(_kind = 'llm', _reasoning, 0) AS reasoning_tokens,
    if(_kind = 'llm', toUInt64OrZero(SpanAttributes['runtrace.context.reinjected_tokens']), 0)
        AS reinjected_tokens,
    multiIf(_kind != 'llm', 0,
            _has_cost AND _source != 'unknown', toFloat64OrZero(SpanAttributes['runtrace.cost.usd']),
            _pi > 0, _sql_cost,
            0) AS cost_usd,
    toInt64(round(cost_usd * 1e9)) AS cost_nusd,
    toUInt8(_kind = 'llm' AND ((_has_cost AND _source != 'unknown') OR _pi > 0)) AS priced,
    multiIf(_kind != 'llm', '',
            _has_cost AND _source != 'unknown', if(_source = '', 'genai-prices', _source),
            _pi > 0, 'clickhouse',
            'unknown') AS cost_source,
    SpanAttributes['gen_ai.tool.name'] AS tool_name,
    SpanAttributes['runtrace.tool.args_hash'] AS tool_args_hash,
    SpanAttributes['runtrace.tool.result_hash'] AS tool_result_hash,
    toUInt32OrZero(SpanAttributes['runtrace.tool.repeat_count']) AS tool_repeat_count,
    toUInt8(_kind = 'tool' AND SpanAttributes['runtrace.tool.repeated_read'] = 'true') AS repeated_read,
    if(_kind = 'tool', toUInt64OrZero(SpanAttributes['runtrace.tool.repeated_read_tokens']), 0)
        AS repeated_read_tokens,
    toUInt8(SpanAttributes['runtrace.loop.detected'] = 'true'
            OR (_kind = 'run' AND SpanAttributes['runtrace.run.loop_detected'] = 'true')) AS loop_detected,
    _froot AS foreign_root,
    -- a foreign root: its runtrace.* attributes, else the span's name / the resource's
    multiIf(_agent_span, '',
            _froot AND SpanAttributes['runtrace.run.name'] = '', SpanName, SpanAttributes['runtrace.run.name'])
        AS run_name,
    multiIf(_agent_span, '',
            _froot AND SpanAttributes['runtrace.project'] = '', ResourceAttributes['runtrace.project'],
            SpanAttributes['runtrace.project']) AS project,
    multiIf(_agent_span, '',
            _froot AND SpanAttributes['runtrace.owner'] = '', ResourceAttributes['runtrace.owner'],
            SpanAttributes['runtrace.owner']) AS owner,
    multiIf(_froot, 'open',
            _kind = 'run' AND SpanAttributes['runtrace.run.outcome'] = '', 'open',
            _kind IN ('run', 'outcome'), SpanAttributes['runtrace.run.outcome'],
            '') AS outcome,
    SpanAttributes['runtrace.run.outcome.by'] AS outcome_by,
    SpanAttributes['runtrace.run.outcome.reason'] AS outcome_reason,
    -- the run span's, or an outcome span's (the Claude Code hook records a stop as one)
    if(_kind IN ('run', 'outcome'), SpanAttributes['runtrace.run.stop_reason'], '') AS stop_reason,
    if(_kind = 'run', toFloat64OrNull(SpanAttributes['runtrace.budget.max_cost_usd']), NULL)
        AS budget_max_cost_usd,
    if(_kind = 'run', toFloat64OrNull(SpanAttributes['runtrace.budget.max_seconds']), NULL)
        AS budget_max_seconds,
    toUInt8(_dup) AS duplicate,
    toUInt8(_kind = 'llm' AND NOT duplicate AND _usage_sent) AS has_usage,
    toUInt8(SpanAttributes['runtrace.tool.refused'] = 'true'
            OR (_claude_span AND SpanName = 'claude_code.tool.blocked_on_user'
                AND SpanAttributes['decision'] = 'reject')) AS refused,
    -- the agent's figure, beside runtrace's price (never summed into cost), as store/aggregate.py
    if(_kind = 'llm' AND NOT _dup AND _agent_cost >= 0 AND _agent_cost < 1e9,
       toInt64(round(_agent_cost * 1e9)), 0) AS agent_cost_nusd,
    -- errors (store/aggregate.py): a failed LLM span, or a failed client span naming a provider
    -- (an agent's model call that finally failed: no LLM call); a failed tool span
    toUInt8(_failed AND (_kind = 'llm' OR (_kind = 'other' AND SpanKind IN ('Client', 'SPAN_KIND_CLIENT')
                                           AND _provider != ''))) AS api_error,
    toUInt8(_failed AND _kind = 'tool') AS tool_error,
    ScopeName AS scope
FROM otel.otel_traces;
