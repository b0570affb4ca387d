"""Writes grafana/dashboards/*.json: runtrace's three boards, kept as code so that
ids, datasources and layout stay consistent. Run ``python grafana/build_dashboards.py``
after editing; tests/test_scale_grafana.py fails when the JSON is stale, and runs
every panel's SQL on chDB.

Panels read the finished views of collector/clickhouse/ (runtrace_runs_v,
runtrace_run_models_v, runtrace_tool_calls, runtrace_counted_spans for per-call
figures (each model call once, the store's innermost and sibling rules), and runtrace_spans
FINAL, so that a span delivered twice counts once), never raw attribute maps, except the span tree, which
is the plugin's trace view over otel_traces.
Runs are placed in time by their start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CLICKHOUSE = {"type": "grafana-clickhouse-datasource", "uid": "runtrace-clickhouse"}
PROMETHEUS = {"type": "prometheus", "uid": "runtrace-prometheus"}
FORMAT = {"timeseries": 0, "table": 1, "traces": 3}
OUT = Path(__file__).parent / "dashboards"
UIDS = {"economics": "runtrace-economics", "waste": "runtrace-waste", "explorer": "runtrace-explorer"}
RUNS = "otel.runtrace_runs_v"
IN_RANGE = "$__timeFilter(started_at)"
RUNS_IN_RANGE = f"run_id IN (SELECT run_id FROM {RUNS} WHERE {IN_RANGE})"


class Board:
    """Panels laid out left to right, top to bottom, with unique ids."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.x = self.y = self.row_h = 0

    def add(self, kind: str, title: str, sql: str, *, w: int, h: int = 8, fmt: str = "table",
            unit: str | None = None, description: str = "", options: dict[str, Any] | None = None,
            overrides: list[dict[str, Any]] | None = None, datasource: dict[str, str] = CLICKHOUSE) -> None:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        defaults: dict[str, Any] = {}
        if unit:
            defaults["unit"] = unit
        panel: dict[str, Any] = {
            "id": len(self.panels) + 1,
            "type": kind,
            "title": title,
            "description": description,
            "gridPos": {"x": self.x, "y": self.y, "w": w, "h": h},
            "datasource": datasource,
            "targets": [{
                "refId": "A",
                "datasource": datasource,
                "editorType": "sql",
                "queryType": fmt,
                "format": FORMAT[fmt],
                "rawSql": sql.strip(),
            }],
            "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
            "options": options or {},
        }
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)


def dashboard(key: str, title: str, board: Board, *, description: str,
              variables: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    others = [{"title": t, "type": "link", "url": f"/d/{UIDS[k]}", "keepTime": True, "includeVars": False}
              for k, t in (("economics", "Run economics"), ("waste", "Waste"), ("explorer", "Run explorer"))
              if k != key]
    return {
        "id": None,
        "uid": UIDS[key],
        "title": title,
        "description": description,
        "tags": ["runtrace"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-7d", "to": "now"},
        "refresh": "5m",
        "schemaVersion": 39,
        "version": 1,
        "links": others,
        "annotations": {"list": []},
        "templating": {"list": variables or []},
        "panels": board.panels,
    }


def stat_options() -> dict[str, Any]:
    return {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value", "graphMode": "none", "textMode": "auto"}


def economics() -> dict[str, Any]:
    b = Board()
    b.add("stat", "Cost per accepted run", f"""
SELECT sum(cost_usd) / nullIf(countIf(outcome = 'accepted'), 0) AS cost_per_accepted_run
FROM {RUNS}
WHERE {IN_RANGE}""", w=6, h=6, unit="currencyUSD", options=stat_options(),
          description="All spend in the range (every run, whatever its outcome) divided by the runs "
                      "accepted in it: what one useful result costs.")
    b.add("stat", "Spend", f"""
SELECT sum(cost_usd) AS spend, sum(unpriced_calls) AS unpriced_calls
FROM {RUNS}
WHERE {IN_RANGE}""", w=6, h=6, unit="currencyUSD", options=stat_options(),
          description="Priced spend; calls with no known price are counted as unpriced, never as $0.")
    b.add("stat", "Abandoned and rejected rate", f"""
SELECT countIf(outcome = 'abandoned') / count() AS abandoned_rate,
       countIf(outcome = 'rejected') / count() AS rejected_rate
FROM {RUNS}
WHERE {IN_RANGE}""", w=6, h=6, unit="percentunit", options=stat_options())
    b.add("piechart", "Runs by outcome", f"""
SELECT outcome, count() AS runs
FROM {RUNS}
WHERE {IN_RANGE}
GROUP BY outcome
ORDER BY runs DESC, outcome""", w=6, h=6,
          options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": True},
                   "pieType": "donut", "legend": {"displayMode": "table", "placement": "right"}})
    b.add("timeseries", "Spend over time", f"""
SELECT $__timeInterval(started_at) AS time, sum(cost_usd) AS spend
FROM {RUNS}
WHERE {IN_RANGE}
GROUP BY time
ORDER BY time""", w=24, h=7, fmt="timeseries", unit="currencyUSD")
    for dim, label in (("project", "project"), ("owner", "owner")):
        b.add("barchart", f"Spend by {label}", f"""
SELECT ifNull({dim}, '(none)') AS {dim}, sum(cost_usd) AS spend, count() AS runs
FROM {RUNS}
WHERE {IN_RANGE}
GROUP BY {dim}
ORDER BY spend DESC, {dim}""", w=12, unit="currencyUSD", options={"orientation": "horizontal", "xField": dim})
    for dim in ("model", "provider"):
        b.add("barchart", f"Spend by {dim}", f"""
SELECT if({dim} = '', '(none)', {dim}) AS {dim}, sum(cost_usd) AS spend, sum(llm_calls) AS calls,
       sum(unpriced_calls) AS unpriced_calls
FROM otel.runtrace_run_models_v
WHERE {RUNS_IN_RANGE}
GROUP BY {dim}
ORDER BY spend DESC, {dim}""", w=12, unit="currencyUSD", options={"orientation": "horizontal", "xField": dim})
    b.add("barchart", "Cost per run", f"""
SELECT multiIf(cost_usd < 0.01, '1: under $0.01', cost_usd < 0.1, '2: $0.01 to $0.10',
               cost_usd < 1, '3: $0.10 to $1', cost_usd < 10, '4: $1 to $10', '5: $10 and over') AS cost_bucket,
       count() AS runs
FROM {RUNS}
WHERE {IN_RANGE}
GROUP BY cost_bucket
ORDER BY cost_bucket""", w=12, options={"xField": "cost_bucket"},
          description="How many runs fell into each cost bracket.")
    b.add("table", "Output tokens per call by prompt size", """
SELECT multiIf(input_tokens <= 1000, '1: up to 1k', input_tokens <= 10000, '2: 1k to 10k', '3: over 10k')
           AS prompt_size,
       model, count() AS calls, avg(output_tokens) AS output_tokens_per_call
FROM otel.runtrace_counted_spans
WHERE counted = 1 AND $__timeFilter(start)
GROUP BY prompt_size, model
ORDER BY prompt_size, model""", w=12,
          description="Prompt size = the call's total input tokens (cached included). Each model call once, "
                      "as in the run totals: a wrapper's or an aggregate's span over the call's own is left out, "
                      "and of two instrumentations' spans of one call side by side only one counts.")
    b.add("table", "Spend by service: runtrace's price and the agent's own", f"""
SELECT ifNull(service, '(none)') AS service, count() AS runs, sum(cost_usd) AS spend,
       countIf(agent_cost_usd IS NOT NULL) AS runs_with_agent_cost,
       ifNull(sum(agent_cost_usd), 0) AS agent_reported_cost_usd
FROM {RUNS}
WHERE {IN_RANGE}
GROUP BY service
ORDER BY spend DESC, service""", w=12,
          description="A coding agent that prices its own calls (Claude Code's cost_usd) is shown beside "
                      "runtrace's price, which comes from the tokens as for every run; never summed into it.")
    return dashboard("economics", "runtrace: Run economics", b,
                     description="What agent runs cost, what the accepted ones cost, where the money goes.")


def waste() -> dict[str, Any]:
    b = Board()
    b.add("stat", "Repeated context reads", f"""
SELECT sum(repeated_reads) AS repeated_reads, sum(repeated_read_tokens) AS repeated_read_tokens,
       sum(reinjected_tokens) AS reinjected_tokens
FROM {RUNS}
WHERE {IN_RANGE}""", w=8, h=6, options=stat_options(),
          description="Tool reads whose result was identical to an earlier read in the run, the tokens "
                      "they fed back, and content re-injected into prompts.")
    b.add("stat", "Uncached input share", f"""
SELECT 1 - sum(cached_input_tokens) / nullIf(sum(input_tokens), 0) AS uncached_input_share
FROM {RUNS}
WHERE {IN_RANGE}""", w=8, h=6, unit="percentunit", options=stat_options(),
          description="Share of input tokens not served from the provider's prompt cache.")
    b.add("stat", "Runaway loops and budget stops", f"""
SELECT countIf(loop_detected) AS runs_with_loops, countIf(outcome = 'budget_stopped') AS budget_stops
FROM {RUNS}
WHERE {IN_RANGE}""", w=8, h=6, options=stat_options())
    b.add("stat", "Errors and refused tool calls", f"""
SELECT sum(api_errors) AS api_errors, sum(tool_errors) AS tool_errors, sum(refused_tool_calls) AS refused_tool_calls
FROM {RUNS}
WHERE {IN_RANGE}""", w=8, h=6, options=stat_options(),
          description="Model calls that finally failed (a retried attempt that then succeeded is none), failed "
                      "tool calls, and tool calls a coding agent's sandbox or user refused (they never ran).")
    b.add("table", "Runs with a runaway loop", f"""
SELECT run_id, name, project, owner, outcome, stop_reason, tool_calls, cost_usd, trace_id
FROM {RUNS}
WHERE {IN_RANGE} AND loop_detected
ORDER BY started_at DESC""", w=12, unit=None)
    b.add("table", "Runs stopped by budget", f"""
SELECT ifNull(stop_reason, '(none)') AS stop_reason, count() AS runs, sum(cost_usd) AS cost_usd
FROM {RUNS}
WHERE {IN_RANGE} AND outcome = 'budget_stopped'
GROUP BY stop_reason
ORDER BY runs DESC, stop_reason""", w=12)
    b.add("table", "Top tools by repeats", """
SELECT tool_name, count() AS calls, countIf(repeat_count > 1) AS repeated_calls,
       sum(repeated_read) AS repeated_reads, sum(repeated_read_tokens) AS repeated_read_tokens,
       sum(loop_detected) AS loop_trips
FROM otel.runtrace_tool_calls
WHERE $__timeFilter(start)
GROUP BY tool_name
ORDER BY repeated_calls DESC, repeated_reads DESC, tool_name
LIMIT 20""", w=12, description="repeated_calls: calls identical (tool, arguments, result) to an earlier one "
                               "in the same run.")
    b.add("table", "Longest runs", f"""
SELECT run_id, name, outcome,
       (toUnixTimestamp64Nano(ifNull(ended_at, last_seen_at)) - toUnixTimestamp64Nano(started_at)) / 1e9
           AS wall_seconds,
       ended_at IS NULL AS still_open, cost_usd, trace_id
FROM {RUNS}
WHERE {IN_RANGE}
ORDER BY wall_seconds DESC, run_id
LIMIT 20""", w=12, description="Wall-clock time; a run without a run span counts until its latest span.")
    return dashboard("waste", "runtrace: Waste", b,
                     description="Repeated reads, uncached input, runaway loops, budget stops, long runs.")


# Grafana inserts a custom "All" value verbatim: never quoted or escaped, whatever the
# format (${var:singlequote} included). So the sentinel carries its own quotes, and
# with All picked the filter reads ('__all__' IN ('__all__') OR ...).
ALL_VALUE = "'__all__'"


def _all_or(column: str, var: str) -> str:
    return f"({ALL_VALUE} IN (${{{var}:singlequote}}) OR {column} IN (${{{var}:singlequote}}))"


def _query_variable(name: str, label: str, sql: str) -> dict[str, Any]:
    return {"type": "query", "name": name, "label": label, "datasource": CLICKHOUSE,
            "query": {"editorType": "sql", "rawSql": sql.strip(), "format": 1}, "definition": sql.strip(),
            "refresh": 2, "includeAll": True, "allValue": ALL_VALUE, "multi": True, "sort": 1,
            "current": {"text": ["All"], "value": ["$__all"]}}


def explorer() -> dict[str, Any]:
    variables = [
        _query_variable("project", "Project", f"SELECT DISTINCT project FROM {RUNS} WHERE {IN_RANGE} "
                                              "AND project IS NOT NULL ORDER BY project"),
        _query_variable("owner", "Owner", f"SELECT DISTINCT owner FROM {RUNS} WHERE {IN_RANGE} "
                                          "AND owner IS NOT NULL ORDER BY owner"),
        {"type": "custom", "name": "outcome", "label": "Outcome",
         "query": "accepted,rejected,abandoned,error,budget_stopped,unfinished,open",
         "includeAll": True, "allValue": ALL_VALUE, "multi": True,
         "current": {"text": ["All"], "value": ["$__all"]}},
        _query_variable("model", "Model", f"SELECT DISTINCT model FROM otel.runtrace_run_models_v "
                                          f"WHERE {RUNS_IN_RANGE} AND model != '' ORDER BY model"),
        {"type": "textbox", "name": "search", "label": "Search (id, name, project, owner)", "query": "",
         "current": {"text": "", "value": ""}},
        {"type": "textbox", "name": "run_id", "label": "Run id", "query": "",
         "current": {"text": "", "value": ""}},
    ]
    b = Board()
    run_link = [{"matcher": {"id": "byName", "options": "run_id"},
                 "properties": [{"id": "links", "value": [{
                     "title": "Show this run's spans",
                     "url": "/d/runtrace-explorer?var-run_id=${__value.raw}&${__url_time_range}"}]}]}]
    b.add("table", "Runs", f"""
SELECT run_id, name, project, owner, service, outcome, stop_reason, cost_usd, agent_cost_usd, unpriced_calls,
       llm_calls, tool_calls, refused_tool_calls, errors, input_tokens, cached_input_tokens, output_tokens,
       repeated_reads, loop_detected, started_at, duration_s, trace_id
FROM {RUNS}
WHERE {IN_RANGE}
  AND {_all_or("project", "project")}
  AND {_all_or("owner", "owner")}
  AND {_all_or("outcome", "outcome")}
  AND ({ALL_VALUE} IN (${{model:singlequote}})
       OR run_id IN (SELECT run_id FROM otel.runtrace_run_models_v WHERE model IN (${{model:singlequote}})))
  AND (${{search:sqlstring}} = ''
       OR positionCaseInsensitive(concat(run_id, ' ', ifNull(name, ''), ' ', ifNull(project, ''), ' ',
                                         ifNull(owner, '')), ${{search:sqlstring}}) > 0)
  AND (${{run_id:sqlstring}} = '' OR run_id = ${{run_id:sqlstring}})
ORDER BY started_at DESC, run_id
LIMIT 500""", w=24, h=10, overrides=run_link,
          description="Click a run id for its spans below; the trace_id column opens the trace view "
                      "(the ClickHouse plugin links any trace_id column to it).")
    # With no run picked ($run_id empty) both run panels stay empty: `run_id = ''` alone would
    # match every span that belongs to no run.
    picked = "${run_id:sqlstring} != ''"
    trace_ids = f"SELECT DISTINCT trace_id FROM otel.runtrace_spans WHERE {picked} AND run_id = ${{run_id:sqlstring}}"
    b.add("traces", "Span tree of the run", f"""
SELECT TraceId AS traceID, SpanId AS spanID, ParentSpanId AS parentSpanID, ServiceName AS serviceName,
       SpanName AS operationName, Timestamp AS startTime, multiply(Duration, 0.000001) AS duration,
       arrayMap(key -> map('key', key, 'value', SpanAttributes[key]), mapKeys(SpanAttributes)) AS tags,
       arrayMap(key -> map('key', key, 'value', ResourceAttributes[key]), mapKeys(ResourceAttributes))
           AS serviceTags,
       if(StatusCode IN ('Error', 'STATUS_CODE_ERROR'), 2, 0) AS statusCode, StatusMessage AS statusMessage
FROM otel.otel_traces
WHERE {picked}
  AND TraceId IN ({trace_ids})
  AND Timestamp >= (SELECT min(Start) FROM otel.otel_traces_trace_id_ts WHERE TraceId IN ({trace_ids}))
  AND Timestamp <= (SELECT max(End) + 1 FROM otel.otel_traces_trace_id_ts WHERE TraceId IN ({trace_ids}))
ORDER BY startTime""", w=24, h=14, fmt="traces",
          description="Every span of the run's traces (a late verdict is a trace of its own). "
                      "Pick a run id in the Runs table or the Run id box.")
    b.add("table", "Spans of the run", f"""
SELECT start, kind, counted, name, model, input_tokens, cached_input_tokens, output_tokens, cost_usd, cost_source,
       tool_name, repeated_read, loop_detected, status, duration_ns / 1e6 AS duration_ms, trace_id, span_id
FROM otel.runtrace_counted_spans
WHERE {picked} AND run_id = ${{run_id:sqlstring}}
ORDER BY start, span_id""", w=24, h=10,
          description="Each span once, however often it was delivered. counted = 0 on an LLM span: another span "
                      "of the same model call counts (one nested below it, or another instrumentation's beside it).")
    return dashboard("explorer", "runtrace: Run explorer", b, variables=variables,
                     description="Find runs by project, owner, outcome, model or text; open their spans.")


def build() -> dict[str, dict[str, Any]]:
    return {"run-economics.json": economics(), "waste.json": waste(), "run-explorer.json": explorer()}


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, board in build().items():
        (OUT / name).write_text(render(board))


if __name__ == "__main__":
    main()
