-- Per (run, provider, model) sums: spend by model and provider, and the models
-- column of a run. Same per-block rule as runtrace_runs: read runtrace_run_models_v.

CREATE TABLE IF NOT EXISTS otel.runtrace_run_models
(
    `run_id` String,
    `provider` LowCardinality(String),
    `model` LowCardinality(String),
    `started_at` SimpleAggregateFunction(min, DateTime64(9)),
    `llm_calls` SimpleAggregateFunction(sum, UInt64),
    `unpriced_calls` SimpleAggregateFunction(sum, UInt64),
    `cost_nusd` SimpleAggregateFunction(sum, Int64),
    `input_tokens` SimpleAggregateFunction(sum, UInt64),
    `output_tokens` SimpleAggregateFunction(sum, UInt64),
    `cached_input_tokens` SimpleAggregateFunction(sum, UInt64),
    `reasoning_tokens` SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (run_id, provider, model);

CREATE MATERIALIZED VIEW IF NOT EXISTS otel.runtrace_run_models_mv
TO otel.runtrace_run_models
AS SELECT
    run_id,
    provider,
    model,
    min(start) AS started_at,
    count() AS llm_calls,
    sum(toUInt64(priced = 0)) AS unpriced_calls,
    sum(cost_nusd) AS cost_nusd,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(reasoning_tokens) AS reasoning_tokens
FROM otel.runtrace_spans
WHERE run_id != '' AND kind = 'llm'
GROUP BY run_id, provider, model;

CREATE VIEW IF NOT EXISTS otel.runtrace_run_models_v
AS SELECT
    run_id,
    provider,
    model,
    min(started_at) AS started_at,
    sum(llm_calls) AS llm_calls,
    sum(unpriced_calls) AS unpriced_calls,
    sum(cost_nusd) / 1e9 AS cost_usd,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(reasoning_tokens) AS reasoning_tokens
FROM otel.runtrace_run_models
GROUP BY run_id, provider, model;

-- Tool calls, one row each, ordered for "which tool repeats itself" questions:
-- repeated context reads, identical calls (same tool, args and result), loops.
CREATE TABLE IF NOT EXISTS otel.runtrace_tool_calls
(
    `run_id` String,
    `tool_name` LowCardinality(String),
    `trace_id` String,
    `span_id` String,
    `start` DateTime64(9),
    `duration_ns` UInt64,
    `status` LowCardinality(String),
    `args_hash` String,
    `result_hash` String,
    `repeat_count` UInt32,
    `repeated_read` UInt8,
    `repeated_read_tokens` UInt64,
    `loop_detected` UInt8
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(start)
ORDER BY (tool_name, run_id, start);

CREATE MATERIALIZED VIEW IF NOT EXISTS otel.runtrace_tool_calls_mv
TO otel.runtrace_tool_calls
AS SELECT
    run_id,
    tool_name,
    trace_id,
    span_id,
    start,
    duration_ns,
    status,
    tool_args_hash AS args_hash,
    tool_result_hash AS result_hash,
    tool_repeat_count AS repeat_count,
    repeated_read,
    repeated_read_tokens,
    loop_detected
FROM otel.runtrace_spans
WHERE kind = 'tool';
