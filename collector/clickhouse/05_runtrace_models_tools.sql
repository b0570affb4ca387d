-- Per (run, provider, model) sums: spend by model and provider, and the models
-- column of a run. Like runtrace_runs_v, a view over runtrace_spans FINAL, so a
-- span delivered twice counts once, and over runtrace_counted_spans, so a call
-- reported by nested spans counts once.

CREATE VIEW IF NOT EXISTS otel.runtrace_run_models_v
AS SELECT
    s.run_id AS run_id,
    s.provider AS provider,
    s.model AS model,
    min(s.start) AS started_at,
    count() AS llm_calls,
    countIf(s.priced = 0) AS unpriced_calls,
    sum(s.cost_nusd) / 1e9 AS cost_usd,
    sum(s.input_tokens) AS input_tokens,
    sum(s.output_tokens) AS output_tokens,
    sum(s.cached_input_tokens) AS cached_input_tokens,
    sum(s.reasoning_tokens) AS reasoning_tokens
FROM otel.runtrace_counted_spans AS s
WHERE s.run_id != '' AND s.counted = 1  -- each model call once, as in runtrace_runs_v
GROUP BY s.run_id, s.provider, s.model;

-- Tool calls, one row each (each span once), for "which tool repeats itself"
-- questions: repeated context reads, identical calls (same tool, args and result), loops.
CREATE VIEW IF NOT EXISTS otel.runtrace_tool_calls
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
FROM otel.runtrace_spans FINAL
WHERE kind = 'tool';
