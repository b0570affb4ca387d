-- Runs, aggregated from their spans, which arrive in any order, from any process,
-- and possibly more than once: the same rules as the embedded store
-- (src/runtrace/store/aggregate.py), so both give the same totals for the same spans:
--   every span counts once: the view reads runtrace_spans FINAL (one row per
--   (run_id, trace_id, span_id), however often the span was delivered);
--   descriptive fields (name, project, owner, service, budget) come
--   from the span with the greatest (is run span, end, span id); in a run without
--   runtrace.run.id (DESIGN 6b) from its earliest root span, min (start, span id),
--   written as the greatest (2, -start, flipped span id) as the store does;
--   the outcome is the latest verdict by (end, outcome, by, reason) among the run
--   span's (its outcome, 'open' without one), a foreign root's ('open') and run.outcome
--   spans' (their verdict);
--   no run span and no verdict = 'unfinished';
--   the stop reason is the greatest of those the run span and the run.outcome spans carry
--   (one, but for two hooks racing), never cleared by a later span or verdict;
--   cost adds up in integer nano-dollars, so sums are exact in any order. Totals come
--   from the CHILD spans, never from the run span's own totals: a crashed run has no
--   run span and still shows up.
--
-- Why a view and not a materialized view into an AggregatingMergeTree: a
-- materialized view sees each insert block alone, so it cannot tell a re-sent span
-- from a new one, and sums would count it twice. Aggregating at read time over the
-- deduplicated spans is exact; its cost is one scan of runtrace_spans' numeric
-- columns (every span is there: each belongs to a run, DESIGN 6b), ordered by run_id.
--
-- A verdict (run.outcome span) for a run with no other span yet is not a run: it
-- stays pending, left out of runtrace_runs_v, until the run's spans arrive, as in
-- the embedded store; so a typo'd run id never shows up as an accepted run at $0.

-- Each model call counted once (the embedded store's innermost rule, store/innermost.py):
-- an LLM span counts only if no span below it carries usage, and a span marked
-- runtrace.duplicate_of never counts. ClickHouse checks a BOUNDED depth: a span is
-- "outer" when it is the parent or the grandparent of a usage span among the spans
-- runtrace_spans holds (those with a run id, LLM and tool spans). That covers a wrapper
-- directly over the SDK's span, an aggregate over its steps, and one span in between
-- (A -> B -> C); usage nested three or more levels below, or linked through a span
-- runtrace_spans does not hold (no run id, neither LLM nor tool), is counted twice
-- here while the embedded store, which walks the whole chain, counts it once.
CREATE VIEW IF NOT EXISTS otel.runtrace_outer_spans
AS SELECT trace_id, span_id FROM
(
    SELECT trace_id, parent_span_id AS span_id
    FROM otel.runtrace_spans FINAL
    WHERE has_usage = 1 AND parent_span_id != ''
    UNION ALL
    SELECT p.trace_id AS trace_id, p.parent_span_id AS span_id
    FROM (SELECT trace_id, span_id, parent_span_id FROM otel.runtrace_spans FINAL) AS p
    INNER JOIN (SELECT DISTINCT trace_id, parent_span_id FROM otel.runtrace_spans FINAL
                WHERE has_usage = 1 AND parent_span_id != '') AS c
        ON p.trace_id = c.trace_id AND p.span_id = c.parent_span_id
    WHERE p.parent_span_id != ''
)
GROUP BY trace_id, span_id;

-- Each model call counted once when two instrumentations' spans of it are siblings (the
-- embedded store's sibling rule, store/siblings.py): two usage spans with the same parent,
-- from different instrumentation scopes (runtrace's scopes are one), of the same model family
-- (lower-cased, snapshot suffixes stripped: store/model_family.py SUFFIXES_RE2), in the same
-- run, starting within 1 s of each other and overlapping in time with 0.1 s of slack, are
-- one call. The span listed here is one that such a sibling is preferred to, by the smaller
-- (no tokens, not runtrace's, not the SDK's own, span id):
-- the span with tokens, runtrace's, the client SDK's own span (com.anthropic.sdk.*), the
-- lowest span id. Unlike the nested rule this one is exact: both spans are in runtrace_spans.
-- runtrace_usage_calls: what the rule reads of each usage span.
CREATE VIEW IF NOT EXISTS otel.runtrace_usage_calls
AS SELECT run_id, trace_id, span_id, parent_span_id,
    if(scope = 'runtrace' OR startsWith(scope, 'runtrace.'), 'runtrace', scope) AS scope_family,
    replaceRegexpOne(lower(model), '(-v\\d+(:\\d+)?|[-@]\\d{8}|-\\d{4}-\\d{2}-\\d{2}|-(preview|exp)(-\\d{2,4}){0,3}|-\\d{2}-\\d{2}|-\\d{3,4}|-latest)+$', '') AS _stripped,
    if(_stripped = '', lower(model), _stripped) AS family,
    toUnixTimestamp64Nano(start) AS start_ns,
    toUnixTimestamp64Nano(end) AS end_ns,
    (toUInt8(input_tokens + output_tokens = 0), toUInt8(scope_family != 'runtrace'),
     toUInt8(NOT startsWith(scope, 'com.anthropic.sdk.')), span_id) AS preference
FROM otel.runtrace_spans FINAL
WHERE has_usage = 1 AND parent_span_id != '' AND model != '';

CREATE VIEW IF NOT EXISTS otel.runtrace_sibling_spans
AS SELECT a.trace_id AS trace_id, a.span_id AS span_id
FROM otel.runtrace_usage_calls AS a
INNER JOIN otel.runtrace_usage_calls AS b
    ON a.run_id = b.run_id AND a.trace_id = b.trace_id AND a.parent_span_id = b.parent_span_id
WHERE a.span_id != b.span_id AND a.scope_family != b.scope_family AND a.family = b.family
  AND abs(a.start_ns - b.start_ns) <= 1000000000
  AND a.start_ns <= b.end_ns + 100000000 AND b.start_ns <= a.end_ns + 100000000
  AND b.preference < a.preference
GROUP BY a.trace_id, a.span_id;

-- A Codex process's spans without conversation.id (src/runtrace/agents/codex.py join_sessions)
-- spread over several traces: each Codex trace whose spans name exactly one session (03 reads
-- conversation.id and thread_id) is that session's; a trace naming none (the process's
-- codex.exec root, initialize, ...) is the one session whose spans in some trace start
-- first within the trace's time span, for the same service. Zero or several candidates
-- (concurrent sessions): the trace stays a run of its own. The embedded store joins by
-- OTLP request (one export request = one process); both give one run per recording.
CREATE VIEW IF NOT EXISTS otel.runtrace_codex_sessions
AS SELECT trace_id, session FROM
(
    SELECT trace_id, any(run_id) AS session
    FROM otel.runtrace_spans FINAL
    WHERE service IN ('codex_exec', 'codex_cli_rs', 'codex_vscode') AND run_id != trace_id
    GROUP BY trace_id
    HAVING uniqExact(run_id) = 1
    UNION ALL
    SELECT o.trace_id AS trace_id, any(p.session) AS session
    FROM (SELECT trace_id, service, min(start) AS first, max(end) AS last FROM otel.runtrace_spans FINAL
          WHERE service IN ('codex_exec', 'codex_cli_rs', 'codex_vscode')
          GROUP BY trace_id, service HAVING countIf(run_id != trace_id) = 0) AS o
    INNER JOIN (SELECT run_id AS session, trace_id, service, min(start) AS first FROM otel.runtrace_spans FINAL
                WHERE service IN ('codex_exec', 'codex_cli_rs', 'codex_vscode') AND run_id != trace_id
                GROUP BY run_id, trace_id, service) AS p
        ON o.service = p.service
    WHERE p.first >= o.first AND p.first <= o.last
    GROUP BY o.trace_id
    HAVING uniqExact(p.session) = 1
);

-- The spans with `counted`: 1 for an LLM call the run totals include (neither rule drops it); a Codex
-- span in its session's run.
CREATE VIEW IF NOT EXISTS otel.runtrace_counted_spans
AS SELECT s.* REPLACE (if(c.session != '' AND s.service IN ('codex_exec', 'codex_cli_rs', 'codex_vscode'),
                          c.session, s.run_id) AS run_id),
    toUInt8(s.kind = 'llm' AND s.duplicate = 0
            AND (s.trace_id, s.span_id) NOT IN (SELECT trace_id, span_id FROM otel.runtrace_outer_spans)
            AND (s.trace_id, s.span_id) NOT IN (SELECT trace_id, span_id FROM otel.runtrace_sibling_spans)) AS counted
FROM otel.runtrace_spans AS s FINAL
LEFT JOIN otel.runtrace_codex_sessions AS c ON s.trace_id = c.trace_id;

-- One finished row per run, with the field names of `runtrace runs --format json`
-- (DESIGN section 8) plus a few more: what the dashboards and alerts read. Its totals
-- are the ones src/runtrace/totals.py declares, written into the block below by
-- `python -m runtrace.scale.views collector/clickhouse/04_runtrace_runs.sql`.
CREATE VIEW IF NOT EXISTS otel.runtrace_runs_v
AS SELECT
    s.run_id AS run_id,
    argMax((s.run_name, s.project, s.owner, s.service,
            s.budget_max_cost_usd, s.budget_max_seconds),
           -- the run span wins; else a span stamped with the run's name/project/owner (a crashed
           -- run's first spans carry them), never an unnamed span: as in the embedded store
           (multiIf(s.kind = 'run' OR s.foreign_root = 1, 2,
                    s.run_name != '' OR s.project != '' OR s.owner != '', 1, 0),
            -- a foreign root and a coding agent's prompt: the earliest wins (its first prompt names a session)
            if(s.foreign_root = 1 OR (s.name = 'user_prompt' AND s.run_name != ''),
               -toUnixTimestamp64Nano(s.start), toUnixTimestamp64Nano(s.end)),
            if(s.foreign_root = 1 OR (s.name = 'user_prompt' AND s.run_name != ''),
               translate(s.span_id, '0123456789abcdef', 'fedcba9876543210'), s.span_id)))
        AS _d,
    argMaxIf((s.outcome, s.outcome_by, s.outcome_reason), (s.end, s.outcome, s.outcome_by, s.outcome_reason),
             s.kind = 'run' OR s.foreign_root = 1 OR (s.kind = 'outcome' AND s.outcome != '')) AS _v,
    nullIf(_d.1, '') AS name,
    nullIf(_d.2, '') AS project,
    nullIf(_d.3, '') AS owner,
    nullIf(_d.4, '') AS service,
    if(_v.1 = '', 'unfinished', _v.1) AS outcome,
    nullIf(_v.2, '') AS outcome_by,
    nullIf(_v.3, '') AS outcome_reason,
    nullIf(max(s.stop_reason), '') AS stop_reason,
    _d.5 AS budget_max_cost_usd,
    _d.6 AS budget_max_seconds,
    if(max(if(s.kind = 'run', s.trace_id, '')) != '', max(if(s.kind = 'run', s.trace_id, '')),
       max(if(s.kind != 'outcome', s.trace_id, ''))) AS trace_id,
    -- run totals: written by runtrace.scale.views from runtrace/totals.py (do not edit by hand)
    sumIf(s.cost_nusd, s.counted = 1) / 1e9 AS cost_usd,
    countIf(s.counted = 1 AND s.priced = 0) AS unpriced_calls,
    sumIf(s.input_tokens, s.counted = 1) AS input_tokens,
    sumIf(s.output_tokens, s.counted = 1) AS output_tokens,
    sumIf(s.cached_input_tokens, s.counted = 1) AS cached_input_tokens,
    sumIf(s.reasoning_tokens, s.counted = 1) AS reasoning_tokens,
    countIf(s.counted = 1) AS llm_calls,
    countIf(s.kind = 'tool') AS tool_calls,
    sum(toUInt64(s.repeated_read)) AS repeated_reads,
    toBool(max(s.loop_detected)) AS loop_detected,
    sum(s.repeated_read_tokens) AS repeated_read_tokens,
    sumIf(s.reinjected_tokens, s.counted = 1) AS reinjected_tokens,
    sum(toUInt64(s.refused)) AS refused_tool_calls,
    nullIf(sum(s.agent_cost_nusd), 0) / 1e9 AS agent_cost_usd,
    api_errors + tool_errors AS errors,
    sum(toUInt64(s.api_error)) AS api_errors,
    sum(toUInt64(s.tool_error)) AS tool_errors,
    count() AS span_count,
    -- end of the run totals
    countIf(s.status = 'error') AS error_spans,
    min(s.start) AS started_at,
    if(countIf(s.kind = 'run' OR s.foreign_root = 1) = 0, NULL,
       maxIf(s.end, s.kind = 'run' OR s.foreign_root = 1)) AS ended_at,
    max(s.end) AS last_seen_at,
    if(ended_at IS NULL, NULL,
       (toUnixTimestamp64Nano(assumeNotNull(ended_at)) - toUnixTimestamp64Nano(started_at)) / 1e9) AS duration_s
FROM otel.runtrace_counted_spans AS s
WHERE s.run_id != ''
GROUP BY s.run_id
HAVING countIf(s.kind != 'outcome') > 0;
