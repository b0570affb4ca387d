-- Runs, aggregated from their spans as the spans arrive, in any order, from any
-- process: every column is a commutative aggregate (sum, min, max, argMax), the
-- same rules as the embedded store (src/runtrace/store/aggregate.py), so both
-- give the same totals for the same spans:
--   descriptive fields (name, project, owner, service, stop reason, budget) come
--   from the span with the greatest (is run span, end, span id);
--   the outcome is the latest verdict by (end, outcome, by, reason) among the run
--   span's (its outcome, 'open' without one) and run.outcome spans' (their verdict);
--   no run span and no verdict = 'unfinished';
--   cost adds up in integer nano-dollars, so sums are exact in any order. Totals come from the CHILD spans, never from the
-- run span's own totals: a crashed run has no run span and still shows up.
-- A verdict (run.outcome span) for a run with no other span yet is not a run: it
-- stays pending, left out of runtrace_runs_v, until the run's spans arrive (then
-- it counts as if it had arrived last), as in the embedded store; so a typo'd
-- run id never shows up as an accepted run at $0.
-- A materialized view aggregates per insert block, so one run has several rows
-- until parts merge: read runtrace_runs_v (or GROUP BY run_id yourself).

CREATE TABLE IF NOT EXISTS otel.runtrace_runs
(
    `run_id` String,
    -- (name, project, owner, service, stop_reason, budget_max_cost_usd, budget_max_seconds)
    `descriptor` AggregateFunction(argMax,
        Tuple(String, String, String, String, String, Nullable(Float64), Nullable(Float64)),
        Tuple(UInt8, DateTime64(9), String)),
    -- (outcome, by, reason) of the latest verdict
    `verdict` AggregateFunction(argMax, Tuple(String, String, String),
        Tuple(DateTime64(9), String, String, String)),
    `has_run_span` SimpleAggregateFunction(max, UInt8),
    `run_trace_id` SimpleAggregateFunction(max, String),
    `any_trace_id` SimpleAggregateFunction(max, String),
    `span_count` SimpleAggregateFunction(sum, UInt64),
    `llm_calls` SimpleAggregateFunction(sum, UInt64),
    `unpriced_calls` SimpleAggregateFunction(sum, UInt64),
    `cost_nusd` SimpleAggregateFunction(sum, Int64),
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
    `last_seen_at` SimpleAggregateFunction(max, DateTime64(9))       -- end of the latest span
)
ENGINE = AggregatingMergeTree
ORDER BY run_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS otel.runtrace_runs_mv
TO otel.runtrace_runs
AS SELECT
    run_id,
    argMaxState(
        (run_name, project, owner, service,
         if(kind = 'run', stop_reason, ''), budget_max_cost_usd, budget_max_seconds),
        (toUInt8(kind = 'run'), end, span_id)) AS descriptor,
    argMaxStateIf((outcome, outcome_by, outcome_reason), (end, outcome, outcome_by, outcome_reason),
                  kind = 'run' OR (kind = 'outcome' AND outcome != '')) AS verdict,
    max(toUInt8(kind = 'run')) AS has_run_span,
    max(if(kind = 'run', trace_id, '')) AS run_trace_id,
    max(if(kind != 'outcome', trace_id, '')) AS any_trace_id,
    count() AS span_count,
    sum(toUInt64(kind = 'llm')) AS llm_calls,
    sum(toUInt64(kind = 'llm' AND priced = 0)) AS unpriced_calls,
    sum(cost_nusd) AS cost_nusd,
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
    max(end) AS last_seen_at
FROM otel.runtrace_spans
WHERE run_id != ''
GROUP BY run_id;

-- One finished row per run, with the field names of `runtrace runs --format json`
-- (DESIGN section 8) plus a few more: what the dashboards and alerts read.
CREATE VIEW IF NOT EXISTS otel.runtrace_runs_v
AS SELECT
    run_id,
    argMaxMerge(descriptor) AS _d,
    argMaxMerge(verdict) AS _v,
    nullIf(_d.1, '') AS name,
    nullIf(_d.2, '') AS project,
    nullIf(_d.3, '') AS owner,
    nullIf(_d.4, '') AS service,
    if(_v.1 = '', 'unfinished', _v.1) AS outcome,
    nullIf(_v.2, '') AS outcome_by,
    nullIf(_v.3, '') AS outcome_reason,
    nullIf(_d.5, '') AS stop_reason,
    _d.6 AS budget_max_cost_usd,
    _d.7 AS budget_max_seconds,
    if(max(run_trace_id) != '', max(run_trace_id), max(any_trace_id)) AS trace_id,
    sum(span_count) AS span_count,
    sum(llm_calls) AS llm_calls,
    sum(unpriced_calls) AS unpriced_calls,
    sum(cost_nusd) / 1e9 AS cost_usd,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(reinjected_tokens) AS reinjected_tokens,
    sum(tool_calls) AS tool_calls,
    sum(repeated_reads) AS repeated_reads,
    sum(repeated_read_tokens) AS repeated_read_tokens,
    sum(error_spans) AS error_spans,
    toBool(max(loop_detected)) AS loop_detected,
    min(started_at) AS started_at,
    if(max(run_ended_at) = toDateTime64(0, 9), NULL, max(run_ended_at)) AS ended_at,
    max(last_seen_at) AS last_seen_at,
    if(ended_at IS NULL, NULL,
       (toUnixTimestamp64Nano(assumeNotNull(ended_at)) - toUnixTimestamp64Nano(started_at)) / 1e9) AS duration_s
FROM otel.runtrace_runs
GROUP BY run_id
HAVING max(any_trace_id) != '';
