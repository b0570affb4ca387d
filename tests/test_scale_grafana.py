"""Grafana: every panel's and alert rule's SQL runs on chDB over the fixture runs
(after the plugin's macros and the dashboard variables are expanded) and returns
the hand-computed figures; the JSON and provisioning files are checked for
consistency (ids, datasource uids, variables, trace links)."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from scale_helpers import (
    ALL_SELECTED,
    ROOT,
    T0,
    ClickHouse,
    TimeRange,
    expand_macros,
    expand_variables,
    fixture_clickhouse,
)

S = 1_000_000_000
GRAFANA = ROOT / "grafana"
RANGE = TimeRange(T0 - 3600 * S, T0 + 7200 * S, interval_s=600)  # the fixture day; r-old is outside
ALL = {"project": ALL_SELECTED, "owner": ALL_SELECTED, "outcome": ALL_SELECTED, "model": ALL_SELECTED,
       "search": "", "run_id": ""}
RUN_PANELS = {"Span tree of the run", "Spans of the run"}  # shown for the run picked in $run_id


def _load_builder() -> Any:
    spec = importlib.util.spec_from_file_location("build_dashboards", GRAFANA / "build_dashboards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BOARDS = {p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}
VARIABLES = BOARDS["run-explorer.json"]["templating"]["list"]  # the only board with variables
DATASOURCES = yaml.safe_load((GRAFANA / "provisioning/datasources/runtrace.yaml").read_text())["datasources"]
ALERTS = yaml.safe_load((GRAFANA / "provisioning/alerting/runtrace-alerts.yaml").read_text())


@pytest.fixture(scope="module")
def ch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouse]:
    db = fixture_clickhouse(tmp_path_factory.mktemp("chdb"))
    yield db
    db.close()


def panels() -> list[tuple[str, dict[str, Any]]]:
    return [(name, p) for name, board in BOARDS.items() for p in board["panels"]]


def run_panel(ch: ClickHouse, sql: str, variables: dict[str, str] = ALL, rng: TimeRange = RANGE) -> list[dict]:
    return ch.rows(expand_variables(expand_macros(sql, rng), variables, VARIABLES))


def panel_sql(title: str) -> str:
    found = [p for _, p in panels() if p["title"] == title]
    assert len(found) == 1, title
    return found[0]["targets"][0]["rawSql"]


def rounded(rows: list[dict], places: int = 9) -> list[dict]:
    return [{k: round(v, places) if isinstance(v, float) else v for k, v in r.items()} for r in rows]


# Hand-computed from the fixture (tests/scale_helpers.py::build_fixture) in RANGE.
EXPECTED: dict[str, list[dict[str, Any]]] = {
    "Cost per accepted run": [{"cost_per_accepted_run": 0.17664}],
    "Spend": [{"spend": 0.17664, "unpriced_calls": 1}],
    "Abandoned and rejected rate": [{"abandoned_rate": 0.2, "rejected_rate": 0.2}],
    "Runs by outcome": [{"outcome": o, "runs": 1}
                        for o in ("abandoned", "accepted", "budget_stopped", "rejected", "unfinished")],
    "Spend over time": [{"time": "2026-11-18 12:00:00", "spend": 0.05984},
                        {"time": "2026-11-18 12:10:00", "spend": 0.095},
                        {"time": "2026-11-18 12:30:00", "spend": 0.02},
                        {"time": "2026-11-18 13:00:00", "spend": 0.0018}],
    "Spend by project": [{"project": "support", "spend": 0.0968, "runs": 2},
                         {"project": "billing", "spend": 0.05984, "runs": 2},
                         {"project": "(none)", "spend": 0.02, "runs": 1}],
    "Spend by owner": [{"owner": "alice", "spend": 0.1546, "runs": 2},
                       {"owner": "(none)", "spend": 0.02, "runs": 1},
                       {"owner": "carol", "spend": 0.0018, "runs": 1},
                       {"owner": "bob", "spend": 0.00024, "runs": 1}],
    "Spend by model": [{"model": "gpt-4o", "spend": 0.1266, "calls": 5, "unpriced_calls": 0},
                       {"model": "claude-sonnet-4-5", "spend": 0.048, "calls": 1, "unpriced_calls": 0},
                       {"model": "gpt-4o-mini-2024-07-18", "spend": 0.0018, "calls": 1, "unpriced_calls": 0},
                       {"model": "gpt-4o-mini", "spend": 0.00024, "calls": 1, "unpriced_calls": 0},
                       {"model": "my-local-llm", "spend": 0.0, "calls": 1, "unpriced_calls": 1}],
    "Spend by provider": [{"provider": "openai", "spend": 0.12864, "calls": 8, "unpriced_calls": 1},
                          {"provider": "anthropic", "spend": 0.048, "calls": 1, "unpriced_calls": 0}],
    "Cost per run": [{"cost_bucket": "1: under $0.01", "runs": 2}, {"cost_bucket": "2: $0.01 to $0.10", "runs": 3}],
    "Output tokens per call by prompt size": [
        {"prompt_size": "1: up to 1k", "model": "gpt-4o-mini", "calls": 1, "output_tokens_per_call": 100.0},
        {"prompt_size": "1: up to 1k", "model": "my-local-llm", "calls": 1, "output_tokens_per_call": 50.0},
        {"prompt_size": "2: 1k to 10k", "model": "gpt-4o", "calls": 4, "output_tokens_per_call": 287.5},
        {"prompt_size": "2: 1k to 10k", "model": "gpt-4o-mini-2024-07-18", "calls": 1,
         "output_tokens_per_call": 1000.0},
        {"prompt_size": "3: over 10k", "model": "claude-sonnet-4-5", "calls": 1, "output_tokens_per_call": 800.0},
        {"prompt_size": "3: over 10k", "model": "gpt-4o", "calls": 1, "output_tokens_per_call": 2000.0},
    ],
    # r-other runs on billing-bot, the rest on support-agent; the fixture has no coding-agent
    # session, so no agent figure (test_scale_agent_recordings.py runs this panel on recordings)
    "Spend by service: runtrace's price and the agent's own": [
        {"service": "support-agent", "runs": 4, "spend": 0.17484, "runs_with_agent_cost": 0,
         "agent_reported_cost_usd": 0.0},
        {"service": "billing-bot", "runs": 1, "spend": 0.0018, "runs_with_agent_cost": 0,
         "agent_reported_cost_usd": 0.0}],
    # r-crash's run_tests timed out; r-budget's run span in error is no API or tool error
    "Errors and refused tool calls": [{"api_errors": 0, "tool_errors": 1, "refused_tool_calls": 0}],
    "Repeated context reads": [{"repeated_reads": 1, "repeated_read_tokens": 350, "reinjected_tokens": 400}],
    # 1 - 17200 cached / 68000 input
    "Uncached input share": [{"uncached_input_share": round(1 - 17200 / 68000, 9)}],
    "Runaway loops and budget stops": [{"runs_with_loops": 1, "budget_stops": 1}],
    "Runs stopped by budget": [{"stop_reason": "max_cost_usd", "runs": 1, "cost_usd": 0.095}],
    "Top tools by repeats": [
        {"tool_name": "search", "calls": 3, "repeated_calls": 2, "repeated_reads": 0, "repeated_read_tokens": 0,
         "loop_trips": 1},
        {"tool_name": "read_file", "calls": 2, "repeated_calls": 1, "repeated_reads": 1,
         "repeated_read_tokens": 350, "loop_trips": 0},
        {"tool_name": "run_tests", "calls": 1, "repeated_calls": 0, "repeated_reads": 0, "repeated_read_tokens": 0,
         "loop_trips": 0},
    ],
}
# panels whose rows are checked by selected columns (ids, trace ids and timestamps vary)
EXPECTED_COLUMNS: dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]] = {
    "Runs with a runaway loop": (("run_id", "name", "owner", "outcome", "stop_reason", "tool_calls", "cost_usd"),
                                 [("r-reject", "refactor billing", "bob", "rejected", "loop", 3, 0.00024)]),
    "Longest runs": (("run_id", "wall_seconds", "still_open"),
                     [("r-crash", 120.0, True), ("r-other", 100.0, False), ("r-reject", 100.0, False),
                      ("r-accept", 60.0, False), ("r-budget", 60.0, False)]),
    "Runs": (("run_id", "outcome", "cost_usd", "llm_calls", "tool_calls"),
             [("r-other", "abandoned", 0.0018, 1, 0), ("r-crash", "unfinished", 0.02, 2, 1),
              ("r-budget", "budget_stopped", 0.095, 1, 0), ("r-reject", "rejected", 0.00024, 2, 3),
              ("r-accept", "accepted", 0.0596, 3, 2)]),
    "Span tree of the run": (("operationName", "serviceName", "duration", "statusCode"),
                             [("run refactor billing", "support-agent", 100000.0, 0),
                              ("chat gpt-4o-mini", "support-agent", 2000.0, 0),
                              ("chat my-local-llm", "support-agent", 2000.0, 0),
                              ("execute_tool search", "tool-worker", 5000.0, 0),
                              ("execute_tool search", "tool-worker", 5000.0, 0),
                              ("execute_tool search", "tool-worker", 5000.0, 0),
                              ("run.outcome", "support-agent", 0.0, 0)]),
    "Spans of the run": (("kind", "name", "input_tokens", "cost_source", "loop_detected"),
                         [("run", "run refactor billing", 0, "", 1), ("llm", "chat gpt-4o-mini", 800, "genai-prices", 0),
                          ("llm", "chat my-local-llm", 500, "unknown", 0), ("tool", "execute_tool search", 0, "", 0),
                          ("tool", "execute_tool search", 0, "", 0), ("tool", "execute_tool search", 0, "", 1),
                          ("outcome", "run.outcome", 0, "", 0)]),
}


def test_dashboard_json_is_what_the_builder_writes() -> None:
    builder = _load_builder()
    built = builder.build()
    assert sorted(built) == sorted(BOARDS)
    for name, board in built.items():
        assert (GRAFANA / "dashboards" / name).read_text() == builder.render(board), \
            f"{name} is stale: run python grafana/build_dashboards.py"


def test_every_panel_is_checked_with_hand_computed_figures() -> None:
    titles = [p["title"] for _, p in panels()]
    assert sorted(titles) == sorted([*EXPECTED, *EXPECTED_COLUMNS])


@pytest.mark.parametrize("title", sorted(EXPECTED))
def test_panel_sql_returns_the_hand_computed_figures(ch: ClickHouse, title: str) -> None:
    rows = run_panel(ch, panel_sql(title))
    assert rows, f"panel {title!r} returned nothing"
    assert rounded(rows) == EXPECTED[title]


@pytest.mark.parametrize("title", sorted(EXPECTED_COLUMNS))
def test_panel_sql_returns_the_expected_rows(ch: ClickHouse, title: str) -> None:
    columns, expected = EXPECTED_COLUMNS[title]
    rows = run_panel(ch, panel_sql(title), {**ALL, "run_id": "r-reject"} if title in RUN_PANELS else ALL)
    assert rows, f"panel {title!r} returned nothing"
    assert [tuple(round(r[c], 9) if isinstance(r[c], float) else r[c] for c in columns) for r in rows] == expected


def test_runs_table_rows_carry_the_trace_id_that_the_plugin_links(ch: ClickHouse) -> None:
    rows = run_panel(ch, panel_sql("Runs"))
    trace_of = {r["trace_id"]: r["run_id"] for r in rows}
    assert len(trace_of) == 5 and all(re.fullmatch(r"[0-9a-f]{32}", t) for t in trace_of)
    # the run span's trace, not the late verdict's
    run_trace = ch.scalar("SELECT TraceId FROM otel.otel_traces WHERE SpanName = 'run refactor billing'")
    assert trace_of[run_trace] == "r-reject"


@pytest.mark.parametrize(("variables", "expected"), [
    ({"project": "billing"}, ["r-reject", "r-accept"]),
    ({"project": "billing", "outcome": "accepted"}, ["r-accept"]),
    ({"owner": ["bob", "carol"]}, ["r-other", "r-reject"]),
    ({"outcome": ["unfinished", "budget_stopped"]}, ["r-crash", "r-budget"]),
    ({"model": "claude-sonnet-4-5"}, ["r-accept"]),
    ({"search": "TRIAGE"}, ["r-other"]),
    ({"search": "bob's"}, []),
    ({"run_id": "r-budget"}, ["r-budget"]),
])
def test_run_explorer_variables_filter_the_runs(ch: ClickHouse, variables: dict, expected: list[str]) -> None:
    values = {**ALL, **variables}
    assert [r["run_id"] for r in run_panel(ch, panel_sql("Runs"), values)] == expected


def test_variable_expansion_is_grafanas() -> None:
    """The helper itself: a custom All value goes in verbatim whatever the format; values are formatted."""
    defs = [{"name": "v", "type": "custom", "query": "a,b", "includeAll": True, "allValue": "'__all__'",
             "multi": True},
            {"name": "w", "type": "custom", "query": "a, b's", "includeAll": True, "multi": True},
            {"name": "t", "type": "textbox", "query": ""}]
    sql = "${v:singlequote}|${v:sqlstring}|${v}|$v|${w:singlequote}|${w}|${t:sqlstring}|$t"
    got = expand_variables(sql, {"v": ALL_SELECTED, "w": ALL_SELECTED, "t": "it's"}, defs)
    assert got == "'__all__'|'__all__'|'__all__'|'__all__'|'a','b\\'s'|'a','b's'|'it''s'|it's"
    got = expand_variables(sql, {"v": "x", "w": ["a", "b"], "t": ""}, defs)
    assert got == "'x'|'x'|'x'|'x'|'a','b'|'a','b'|''|"


def test_run_explorer_default_state(ch: ClickHouse) -> None:
    """The board as it opens (each variable's saved current value): all runs, and no run's spans yet."""
    defaults = {v["name"]: v["current"]["value"] for v in VARIABLES}
    assert defaults == {"project": [ALL_SELECTED], "owner": [ALL_SELECTED], "outcome": [ALL_SELECTED],
                        "model": [ALL_SELECTED], "search": "", "run_id": ""}
    assert [r["run_id"] for r in run_panel(ch, panel_sql("Runs"), defaults)] == \
        ["r-other", "r-crash", "r-budget", "r-reject", "r-accept"]
    # every span belongs to a run (DESIGN 6b: a call outside any run is a run of its trace)
    assert ch.scalar("SELECT count() FROM otel.runtrace_spans WHERE run_id = ''") == 0
    for title in sorted(RUN_PANELS):
        assert run_panel(ch, panel_sql(title), defaults) == [], title


def test_run_explorer_quotes_in_values(ch: ClickHouse) -> None:
    """singlequote escapes ' with a backslash, which ClickHouse reads back: no error, no match."""
    assert run_panel(ch, panel_sql("Runs"), {**ALL, "owner": ["bob's"]}) == []


def test_variable_queries_list_the_fixture_values(ch: ClickHouse) -> None:
    variables = {v["name"]: v for v in BOARDS["run-explorer.json"]["templating"]["list"]}
    got = {name: [next(iter(r.values())) for r in run_panel(ch, v["query"]["rawSql"])]
           for name, v in variables.items() if v["type"] == "query"}
    assert got == {"project": ["billing", "support"], "owner": ["alice", "bob", "carol"],
                   "model": ["claude-sonnet-4-5", "gpt-4o", "gpt-4o-mini", "gpt-4o-mini-2024-07-18",
                             "my-local-llm"]}
    assert variables["outcome"]["query"].split(",") == ["accepted", "rejected", "abandoned", "error",
                                                       "budget_stopped", "unfinished", "open"]


# --- JSON and provisioning consistency ------------------------------------------------

_USED_VAR = re.compile(r"\$\{([A-Za-z_]\w*)(?::\w+)?\}|\$([A-Za-z_]\w*)")


def test_dashboard_json_is_consistent() -> None:
    uids = {d["uid"] for d in DATASOURCES}
    assert uids == {"runtrace-clickhouse", "runtrace-prometheus"}
    board_uids = [b["uid"] for b in BOARDS.values()]
    assert len(set(board_uids)) == len(board_uids) == 3
    for name, board in BOARDS.items():
        assert board["id"] is None and 8 <= len(board["uid"]) <= 40
        ids = [p["id"] for p in board["panels"]]
        assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"
        defined = {v["name"] for v in board["templating"]["list"]}
        for panel in board["panels"]:
            g = panel["gridPos"]
            assert g["x"] + g["w"] <= 24 and g["w"] > 0 and g["h"] > 0, (name, panel["title"])
            assert panel["datasource"]["uid"] in uids, (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] in uids
                assert target["format"] == {"table": 1, "timeseries": 0, "traces": 3}[target["queryType"]]
                used = {m.group(1) or m.group(2) for m in _USED_VAR.finditer(target["rawSql"])}
                used = {u for u in used if not u.startswith("__")}
                assert used <= defined, f"{name} / {panel['title']}: undefined variables {used - defined}"
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["datasource"]["uid"] in uids
        for link in board["links"]:
            assert link["url"].removeprefix("/d/") in board_uids


def test_trace_links_are_wired() -> None:
    clickhouse = next(d for d in DATASOURCES if d["uid"] == "runtrace-clickhouse")
    traces = clickhouse["jsonData"]["traces"]
    # the plugin adds "View trace" to any trace_id column when the datasource has a trace table
    assert traces["defaultTable"] == "otel_traces" and traces["traceIdColumn"] == "TraceId"
    assert traces["showTraceLinks"] is True and traces["traceTimestampTableSuffix"] == "_trace_id_ts"
    explorer = BOARDS["run-explorer.json"]
    runs = next(p for p in explorer["panels"] if p["title"] == "Runs")
    assert re.search(r"\btrace_id\b", runs["targets"][0]["rawSql"].split("FROM")[0])
    (override,) = runs["fieldConfig"]["overrides"]
    assert override["matcher"]["options"] == "run_id"
    url = override["properties"][0]["value"][0]["url"]
    assert url.startswith(f"/d/{explorer['uid']}?var-run_id=${{__value.raw}}")
    tree = next(p for p in explorer["panels"] if p["type"] == "traces")
    assert tree["targets"][0]["format"] == 3
    for alias in ("traceID", "spanID", "parentSpanID", "serviceName", "operationName", "startTime", "duration",
                  "tags", "serviceTags"):
        assert f" AS {alias}" in tree["targets"][0]["rawSql"]


def test_dashboard_provider_points_at_the_boards() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/runtrace.yaml").read_text())["providers"][0]
    assert provider["type"] == "file"
    compose = yaml.safe_load((ROOT / "collector/compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert any(m.startswith("../grafana/dashboards:") and m.split(":")[1] == provider["options"]["path"]
               for m in mounts)


# --- alert rules ----------------------------------------------------------------------

NOW = T0 + 3700 * S  # just after the fixture's last run ended
ALERT_EXPECTED = {  # rule uid -> (value of A, fires)
    "runtrace-repeated-tool-calls": (1, True),
    "runtrace-runs-over-wall-clock": (1, True),  # r-budget: 60 s > its max_seconds 30
    "runtrace-cost-per-accepted-run-rising": (0.17664 / 0.05, True),  # last day vs r-old's week
    "runtrace-abandoned-rate-rising": (0.2, True),  # 1 of 5 runs vs 0 of 1
}


def _evaluate(ch: ClickHouse, rule: dict[str, Any], now_ns: int) -> tuple[float | None, bool]:
    steps = {d["refId"]: d for d in rule["data"]}
    query = steps["A"]
    rel = query["relativeTimeRange"]
    rng = TimeRange(now_ns - rel["from"] * S, now_ns - rel["to"] * S)
    rows = run_panel(ch, query["model"]["rawSql"], {}, rng)
    assert len(rows) == 1 and len(rows[0]) == 1, rows
    value = next(iter(rows[0].values()))
    reduce_, threshold = steps["B"]["model"], steps["C"]["model"]
    assert reduce_["type"] == "reduce" and reduce_["expression"] == "A"
    assert threshold["type"] == "threshold" and threshold["expression"] == "B"
    (condition,) = threshold["conditions"]
    evaluator = condition["evaluator"]
    assert evaluator["type"] == "gt"
    return value, value is not None and value > evaluator["params"][0]


def test_alert_rules_are_provisioned_consistently() -> None:
    (group,) = ALERTS["groups"]
    uids = {d["uid"] for d in DATASOURCES} | {"__expr__"}
    rules = {r["uid"]: r for r in group["rules"]}
    assert sorted(rules) == sorted(ALERT_EXPECTED)
    for rule in rules.values():
        refs = {d["refId"] for d in rule["data"]}
        assert rule["condition"] in refs
        assert all(d["datasourceUid"] in uids for d in rule["data"])
        assert all(d["model"]["refId"] == d["refId"] for d in rule["data"])


@pytest.mark.parametrize("uid", sorted(ALERT_EXPECTED))
def test_alert_rule_sql_gives_the_hand_computed_value(ch: ClickHouse, uid: str) -> None:
    rule = next(r for r in ALERTS["groups"][0]["rules"] if r["uid"] == uid)
    value, fires = _evaluate(ch, rule, NOW)
    expected_value, expected_fires = ALERT_EXPECTED[uid]
    assert value == pytest.approx(expected_value, rel=1e-9)
    assert fires is expected_fires


def test_alert_rules_stay_quiet_on_a_quiet_day(ch: ClickHouse) -> None:
    """A week later nothing happened: no rule fires (the rising ones have no data to compare)."""
    for rule in ALERTS["groups"][0]["rules"]:
        value, fires = _evaluate(ch, rule, NOW + 10 * 86400 * S)
        assert fires is False, rule["uid"]
        assert value in (0, None), rule["uid"]
