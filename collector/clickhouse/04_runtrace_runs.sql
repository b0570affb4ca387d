-- Runs, aggregated from their spans as the spans arrive, in any order, from any
-- process: every column is a commutative aggregate (sum, min, max, argMax), the
-- same rules as the embedded store (src/runtrace/store), so both give the same
-- totals for the same spans. Totals come from the CHILD spans, never from the
-- run span's own totals: a crashed run has no run span and still shows up.
-- A materialized view aggregates per insert block, so one run has several rows
-- until parts merge: read runtrace_runs_v (or GROUP BY run_id yourself).

CREATE TABLE IF NOT EXISTS otel.runtrace_runs
(
    `run_id` String,
    `name` SimpleAggregateFunction(max, String),
    `project` SimpleAggregateFunction(max, String),
    `owner` SimpleAggregateFunction(max, String),
    `service` SimpleAggregateFunction(max, String),
    `stop_reason` SimpleAggregateFunction(max, String),
    `has_run_span` SimpleAggregateFunction(max, UInt8),
    `run_trace_id` SimpleAggregateFunction(max, String),
    `any_trace_id` SimpleAggregateFunction(max, String),
    `budget_max_cost_usd` SimpleAggregateFunction(max, Nullable(Float64)),
    `budget_max_seconds` SimpleAggregateFunction(max, Nullable(Float64)),
    `llm_calls` SimpleAggregateFunction(sum, UInt64),
    `unpriced_calls` SimpleAggregateFunction(sum, UInt64),
    `cost_usd` SimpleAggregateFunction(sum, Float64),
    `input_tokens` SimpleAggregateFunction(sum, UInt64),
    `output_tokens` SimpleAggregateFunction(sum, UInt64),
    `cached_input_tokens` SimpleAggregateFunction(sum, UInt64),
    `reasoning_tokens` SimpleAggregateFunction(sum, UInt64),
    `reinjected_tokens` SimpleAggregateFunction(sum, UInt64),
    `tool_calls` SimpleAggregateFunction(sum, UInt64),
    `repeated_reads` SimpleAggregateFunction(sum, UInt64),
    `repeated_read_tokens` SimpleAggregateFunction(sum, UInt64),
    `error_spans` SimpleAggregateFunction(sum, UInt64),
    `loop_detected` SimpleAggregateFunction(max, UInt8),
    `started_at` SimpleAggregateFunction(min, DateTime64(9)),
    `run_ended_at` SimpleAggregateFunction(max, DateTime64(9)),      -- run span end; epoch 0 = none yet
    `last_seen_at` SimpleAggregateFunction(max, DateTime64(9)),      -- end of the latest span
    -- Latest verdict wins: the run span's outcome (at its end; 'open' when it has
    -- none) and every late run.outcome span (at its end), compared by time.
    `outcome` AggregateFunction(argMax, String, DateTime64(9)),
    `outcome_by` AggregateFunction(argMax, String, DateTime64(9)),
    `outcome_reason` AggregateFunction(argMax, String, DateTime64(9))
)
ENGINE = AggregatingMergeTree
ORDER BY run_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS otel.runtrace_runs_mv
TO otel.runtrace_runs
AS SELECT
    run_id,
    max(if(kind = 'run', name, '')) AS name,
    max(project) AS project,
    max(owner) AS owner,
    max(if(kind = 'run', service, '')) AS service,
    max(stop_reason) AS stop_reason,
    max(toUInt8(kind = 'run')) AS has_run_span,
    max(if(kind = 'run', trace_id, '')) AS run_trace_id,
    max(if(kind != 'outcome', trace_id, '')) AS any_trace_id,
    max(budget_max_cost_usd) AS budget_max_cost_usd,
    max(budget_max_seconds) AS budget_max_seconds,
    sum(toUInt64(kind = 'llm')) AS llm_calls,
    sum(toUInt64(kind = 'llm' AND priced = 0)) AS unpriced_calls,
    sum(cost_usd) AS cost_usd,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(reinjected_tokens) AS reinjected_tokens,
    sum(toUInt64(kind = 'tool')) AS tool_calls,
    sum(toUInt64(repeated_read)) AS repeated_reads,
    sum(repeated_read_tokens) AS repeated_read_tokens,
    sum(toUInt64(status = 'error')) AS error_spans,
    max(loop_detected) AS loop_detected,
    min(start) AS started_at,
    max(if(kind = 'run', end, toDateTime64(0, 9))) AS run_ended_at,
    max(end) AS last_seen_at,
    argMaxStateIf(outcome, end, kind IN ('run', 'outcome')) AS outcome,
    argMaxStateIf(outcome_by, end, kind IN ('run', 'outcome')) AS outcome_by,
    argMaxStateIf(outcome_reason, end, kind IN ('run', 'outcome')) AS outcome_reason
FROM otel.runtrace_spans
WHERE run_id != ''
GROUP BY run_id;

-- One finished row per run: what the dashboards and alerts read.
CREATE VIEW IF NOT EXISTS otel.runtrace_runs_v
AS SELECT
    run_id,
    nullIf(max(name), '') AS name,
    nullIf(max(project), '') AS project,
    nullIf(max(owner), '') AS owner,
    nullIf(max(service), '') AS service,
    if(max(has_run_span) = 0 AND argMaxMerge(outcome) = '', 'unfinished', argMaxMerge(outcome)) AS outcome,
    nullIf(argMaxMerge(outcome_by), '') AS outcome_by,
    nullIf(argMaxMerge(outcome_reason), '') AS outcome_reason,
    nullIf(max(stop_reason), '') AS stop_reason,
    if(max(run_trace_id) != '', max(run_trace_id), max(any_trace_id)) AS trace_id,
    max(budget_max_cost_usd) AS budget_max_cost_usd,
    max(budget_max_seconds) AS budget_max_seconds,
    sum(llm_calls) AS llm_calls,
    sum(unpriced_calls) AS unpriced_calls,
    sum(cost_usd) AS cost_usd,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(reinjected_tokens) AS reinjected_tokens,
    sum(tool_calls) AS tool_calls,
    sum(repeated_reads) AS repeated_reads,
    sum(repeated_read_tokens) AS repeated_read_tokens,
    sum(error_spans) AS error_spans,
    max(loop_detected) AS loop_detected,
    min(started_at) AS started_at,
    if(max(run_ended_at) = toDateTime64(0, 9), NULL, max(run_ended_at)) AS ended_at,
    max(last_seen_at) AS last_seen_at,
    if(ended_at IS NULL, NULL,
       (toUnixTimestamp64Nano(assumeNotNull(ended_at)) - toUnixTimestamp64Nano(started_at)) / 1e9) AS duration_s
FROM otel.runtrace_runs
GROUP BY run_id;
