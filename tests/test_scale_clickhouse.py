"""The ClickHouse side of the scale path, on a real ClickHouse engine (chDB).

The fixture runs (tests/scale_helpers.py::build_fixture) are written into
``otel_traces`` exactly as the collector's exporter writes them, out of order
and in several blocks; the run views must then hold the hand-computed totals
below, and the same figures as the embedded store for the same spans.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runtrace import pricing
from runtrace.scale import prices
from runtrace.store.db import Store
from runtrace.store.queries import list_runs
from scale_helpers import T0, ClickHouse, build_fixture, insert_spans, split_sql

S = 1_000_000_000

# Hand-computed from build_fixture's docstring and span list.
EXPECTED = {
    "r-accept": dict(name="fix flaky test", project="billing", owner="alice", service="support-agent",
                     outcome="accepted", stop_reason=None, cost_usd=0.0596, unpriced_calls=0,
                     input_tokens=15700, output_tokens=1250, cached_input_tokens=1200, reasoning_tokens=200,
                     llm_calls=3, tool_calls=2, repeated_reads=1, loop_detected=False, duration_s=60.0),
    "r-reject": dict(name="refactor billing", project="billing", owner="bob", service="support-agent",
                     outcome="rejected", stop_reason="loop", cost_usd=0.00024, unpriced_calls=1,
                     input_tokens=1300, output_tokens=150, cached_input_tokens=0, reasoning_tokens=0,
                     llm_calls=2, tool_calls=3, repeated_reads=0, loop_detected=True, duration_s=100.0),
    "r-budget": dict(name="answer ticket", project="support", owner="alice", service="support-agent",
                     outcome="budget_stopped", stop_reason="max_cost_usd", cost_usd=0.095, unpriced_calls=0,
                     input_tokens=30000, output_tokens=2000, cached_input_tokens=6000, reasoning_tokens=0,
                     llm_calls=1, tool_calls=0, repeated_reads=0, loop_detected=False, duration_s=60.0),
    "r-old": dict(name="old task", project="billing", owner="alice", service="support-agent",
                  outcome="accepted", stop_reason=None, cost_usd=0.05, unpriced_calls=0,
                  input_tokens=4000, output_tokens=400, cached_input_tokens=0, reasoning_tokens=0,
                  llm_calls=1, tool_calls=0, repeated_reads=0, loop_detected=False, duration_s=30.0),
    "r-crash": dict(name=None, project=None, owner=None, service="support-agent",
                    outcome="unfinished", stop_reason=None, cost_usd=0.02, unpriced_calls=0,
                    input_tokens=11000, output_tokens=700, cached_input_tokens=6000, reasoning_tokens=0,
                    llm_calls=2, tool_calls=1, repeated_reads=0, loop_detected=False, duration_s=None),
    # gpt-4o-mini list price: $0.15 input, $0.075 cached input, $0.60 output per million tokens:
    # 6000 * 0.15 + 4000 * 0.075 + 1000 * 0.6 = 1800 micro-dollars
    "r-other": dict(name="triage", project="support", owner="carol", service="billing-bot",
                    outcome="abandoned", stop_reason=None, cost_usd=0.0018, unpriced_calls=0,
                    input_tokens=10000, output_tokens=1000, cached_input_tokens=4000, reasoning_tokens=0,
                    llm_calls=1, tool_calls=0, repeated_reads=0, loop_detected=False, duration_s=100.0),
}
STARTED = {"r-accept": 0, "r-reject": 300, "r-budget": 900, "r-crash": 1800, "r-other": 3600,
           "r-old": -3 * 86400}
FIELDS = list(EXPECTED["r-accept"])


@pytest.fixture(scope="module")
def ch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouse]:
    db = ClickHouse(tmp_path_factory.mktemp("chdb"))
    # keep each insert block's part apart until test_views_survive_merges merges them
    db.execute("SYSTEM STOP MERGES otel.runtrace_spans")
    for statement in split_sql(prices.to_clickhouse_sql(prices.price_rows())):
        db.execute(statement)
    for records, old in build_fixture().batches:
        insert_spans(db, records, old_spelling=old)
    yield db
    db.close()


@pytest.fixture(scope="module")
def store_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    path = tmp_path_factory.mktemp("store") / "runtrace.db"
    with Store.open(path) as store:
        for records, _ in build_fixture().batches:
            store.ingest(records)
        return {r["id"]: r for r in list_runs(store, limit=0)}


def ch_runs(ch: ClickHouse) -> dict[str, dict]:
    rows = ch.rows("SELECT *, toUnixTimestamp64Nano(started_at) AS started_ns FROM otel.runtrace_runs_v")
    return {r["run_id"]: r for r in rows}


def test_otel_traces_holds_what_the_exporter_wrote(ch: ClickHouse) -> None:
    assert ch.scalar("SELECT count() FROM otel.otel_traces") == 23
    # both spellings of status and kind arrived and are read alike
    assert ch.rows("SELECT StatusCode, count() AS n FROM otel.otel_traces GROUP BY StatusCode ORDER BY StatusCode") \
        == [{"StatusCode": "Error", "n": 1}, {"StatusCode": "STATUS_CODE_ERROR", "n": 1},
            {"StatusCode": "STATUS_CODE_UNSET", "n": 6}, {"StatusCode": "Unset", "n": 15}]
    assert ch.scalar("SELECT count() FROM otel.otel_traces WHERE SpanKind IN ('Client', 'SPAN_KIND_CLIENT')") == 10
    assert ch.scalar("SELECT count() FROM otel.runtrace_spans WHERE status = 'error'") == 2
    # values are strings, as the exporter writes them
    assert ch.rows("SELECT SpanAttributes['runtrace.cost.usd'] AS c, SpanAttributes['gen_ai.usage.input_tokens'] AS i,"
                   " SpanAttributes['runtrace.tool.repeated_read'] AS rr FROM otel.otel_traces"
                   " WHERE SpanAttributes['runtrace.tool.repeat_count'] = '2' AND SpanName = 'execute_tool read_file'") \
        == [{"c": "", "i": "", "rr": "true"}]
    assert ch.scalar("SELECT Duration FROM otel.otel_traces WHERE SpanName = 'chat claude-sonnet-4-5'") == 25 * S


def test_run_view_totals_are_the_hand_computed_ones(ch: ClickHouse) -> None:
    runs = ch_runs(ch)
    assert sorted(runs) == sorted(EXPECTED)
    for run_id, expected in EXPECTED.items():
        got = {f: runs[run_id][f] for f in FIELDS}
        got["cost_usd"] = round(got["cost_usd"], 9)
        assert got == expected, run_id
        assert runs[run_id]["started_ns"] == T0 + STARTED[run_id] * S
    assert runs["r-accept"]["repeated_read_tokens"] == 350
    assert runs["r-accept"]["reinjected_tokens"] == 400
    assert runs["r-reject"]["outcome_by"] == "ci" and runs["r-reject"]["outcome_reason"] == "tests fail"
    assert runs["r-budget"]["budget_max_cost_usd"] == 0.05
    assert runs["r-crash"]["ended_at"] is None


def test_run_views_equal_the_embedded_store(ch: ClickHouse, store_runs: dict[str, dict]) -> None:
    runs = ch_runs(ch)
    assert sorted(store_runs) == sorted(runs)
    for run_id, mine in runs.items():
        theirs = store_runs[run_id]
        for f in FIELDS:
            if f == "cost_usd":
                assert mine[f] == pytest.approx(theirs[f], abs=1e-12), (run_id, f)
            else:
                assert mine[f] == theirs[f], (run_id, f)
        assert mine["repeated_read_tokens"] == theirs["repeated_read_tokens"]
        assert mine["reinjected_tokens"] == theirs["reinjected_tokens"]
        assert mine["span_count"] == theirs["span_count"]
        assert mine["outcome_by"] == theirs["outcome_by"]
        assert mine["outcome_reason"] == theirs["outcome_reason"]


def test_run_models_equal_the_embedded_store(ch: ClickHouse, store_runs: dict[str, dict]) -> None:
    mine = {(r["run_id"], r["provider"], r["model"]): r for r in ch.rows("SELECT * FROM otel.runtrace_run_models_v")}
    theirs = {(run_id, m["provider"], m["model"]): m for run_id, run in store_runs.items() for m in run["models"]}
    assert sorted(mine) == sorted(theirs)
    assert mine[("r-accept", "openai", "gpt-4o")]["llm_calls"] == 2
    assert mine[("r-accept", "openai", "gpt-4o")]["input_tokens"] == 3700
    assert round(mine[("r-accept", "anthropic", "claude-sonnet-4-5")]["cost_usd"], 9) == 0.048
    assert mine[("r-reject", "openai", "my-local-llm")]["unpriced_calls"] == 1
    for key, m in mine.items():
        for f in ("llm_calls", "input_tokens", "output_tokens", "cached_input_tokens", "unpriced_calls"):
            assert m[f] == theirs[key][f], (key, f)
        assert m["cost_usd"] == pytest.approx(theirs[key]["cost_usd"], abs=1e-12)


def test_tool_calls_view(ch: ClickHouse) -> None:
    rows = ch.rows("SELECT tool_name, count() AS calls, sum(repeated_read) AS reads, sum(repeated_read_tokens) AS tok,"
                   " max(repeat_count) AS most, sum(loop_detected) AS loops, countIf(status = 'error') AS errors"
                   " FROM otel.runtrace_tool_calls GROUP BY tool_name ORDER BY tool_name")
    assert rows == [
        {"tool_name": "read_file", "calls": 2, "reads": 1, "tok": 350, "most": 2, "loops": 0, "errors": 0},
        {"tool_name": "run_tests", "calls": 1, "reads": 0, "tok": 0, "most": 1, "loops": 0, "errors": 1},
        {"tool_name": "search", "calls": 3, "reads": 0, "tok": 0, "most": 3, "loops": 1, "errors": 0},
    ]


def test_views_survive_merges(ch: ClickHouse) -> None:
    """Spans of one run come from several insert blocks (parts); merging the parts keeps the totals."""
    before = ch_runs(ch)
    assert ch.scalar("SELECT uniqExact(_part) FROM otel.runtrace_spans WHERE run_id = 'r-accept'") == 2
    ch.execute("SYSTEM START MERGES otel.runtrace_spans")
    ch.execute("OPTIMIZE TABLE otel.runtrace_spans FINAL")
    assert ch.scalar("SELECT uniqExact(_part) FROM otel.runtrace_spans WHERE run_id = 'r-accept'") == 1
    assert ch_runs(ch) == before


def test_sql_prices_equal_runtrace_pricing(ch: ClickHouse) -> None:
    """Spans from other SDKs: the SQL price of every case equals runtrace.pricing's."""
    pricer = pricing.default_pricer()
    cases = [  # provider, model, input, cached, output
        ("openai", "gpt-4o-mini-2024-07-18", 10000, 4000, 1000),
        ("openai", "gpt-4o", 1200, 200, 300),
        ("anthropic", "claude-sonnet-4-5", 250_000, 50_000, 1000),  # over the 200k tier: all tokens at tier rates
        ("anthropic", "claude-3-5-haiku-latest", 900, 0, 90),
        ("azure.ai.openai", "gpt-4.1", 3000, 0, 100),
        ("gcp.vertex_ai", "gemini-2.5-flash-lite", 5000, 0, 500),
        ("x_ai", "grok-3", 1000, 0, 100),
    ]
    rows = []
    for i, (provider, model, inp, cached, out) in enumerate(cases):
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider, "gen_ai.request.model": model,
                 "gen_ai.usage.input_tokens": str(inp), "gen_ai.usage.cache_read.input_tokens": str(cached),
                 "gen_ai.usage.output_tokens": str(out)}
        items = ", ".join(f"'{k}', '{v}'" for k, v in attrs.items())
        rows.append(f"('2026-11-19 00:00:00', 'price-case-{i}', map({items}))")
    ch.execute("INSERT INTO otel.otel_traces (Timestamp, TraceId, SpanAttributes) VALUES " + ", ".join(rows))
    got = {r["trace_id"]: r for r in ch.rows(
        "SELECT trace_id, cost_usd, cost_source FROM otel.runtrace_spans WHERE trace_id LIKE 'price-case-%'")}
    from datetime import datetime, timezone
    when = datetime(2026, 11, 19, tzinfo=timezone.utc)
    for i, (provider, model, inp, cached, out) in enumerate(cases):
        expected = pricer.price(pricing.TokenUsage(input_tokens=inp, output_tokens=out, cache_read_tokens=cached),
                                model=model, provider=provider, when=when)
        assert expected.total_usd is not None, (provider, model)
        assert got[f"price-case-{i}"]["cost_source"] == "clickhouse"
        assert got[f"price-case-{i}"]["cost_usd"] == pytest.approx(expected.total_usd, rel=1e-12), (provider, model)
    # the 200k cliff, by hand: 200k uncached at $6, 50k cache reads at $0.60, 1000 out at $22.50 per M
    assert got["price-case-2"]["cost_usd"] == pytest.approx(1.2 + 0.03 + 0.0225, rel=1e-12)


def test_unknown_model_from_another_sdk_is_unpriced_not_free(ch: ClickHouse) -> None:
    ch.execute("INSERT INTO otel.otel_traces (Timestamp, TraceId, SpanAttributes) VALUES "
               "('2026-11-19 00:00:00', 'price-unknown', map('gen_ai.operation.name', 'chat', "
               "'gen_ai.provider.name', 'openai', 'gen_ai.request.model', 'not-a-model', "
               "'gen_ai.usage.input_tokens', '10', 'runtrace.run.id', 'r-unknown'))")
    row = ch.rows("SELECT unpriced_calls, cost_usd, llm_calls FROM otel.runtrace_runs_v WHERE run_id = 'r-unknown'")
    assert row == [{"unpriced_calls": 1, "cost_usd": 0, "llm_calls": 1}]


def test_prices_sql_and_tsv_load_the_same_rows(ch: ClickHouse, tmp_path: Path) -> None:
    rows = prices.price_rows()
    ch.execute("CREATE TABLE otel.prices_from_tsv AS otel.runtrace_prices")
    ch.execute("INSERT INTO otel.prices_from_tsv FORMAT TabSeparated\n" + prices.to_tsv(rows))
    assert ch.scalar("SELECT count() FROM otel.prices_from_tsv") == len(rows)
    assert ch.scalar("SELECT count() FROM (SELECT * FROM otel.prices_from_tsv"
                     " EXCEPT SELECT * FROM otel.runtrace_prices)") == 0
    # every pattern compiles in RE2 (a bad one would break every insert into otel_traces)
    assert ch.scalar("SELECT sum(if(startsWith(rx, '!'), match('x', substring(rx, 2)), match('x', rx)))"
                     " FROM (SELECT arrayJoin(arrayFlatten(match_any)) AS rx FROM otel.runtrace_prices)") == 0


def test_sql_reads_only_attribute_names_declared_in_semconv() -> None:
    """SQL cannot import semconv; this keeps its attribute names from drifting away from it."""
    import re

    from runtrace import semconv
    from scale_helpers import ROOT, SQL_DIR

    known = {v for k, v in vars(semconv).items() if k.isupper() and isinstance(v, str)}
    texts = [f.read_text() for f in SQL_DIR.glob("*.sql")]
    texts += [f.read_text() for f in (ROOT / "grafana").rglob("*.json")]
    texts += [f.read_text() for f in (ROOT / "grafana" / "provisioning").rglob("*.yaml")]
    used = {m for text in texts for m in re.findall(r"Attributes\[\\?'([^'\\]+)\\?'\]", text)}
    used |= {m for text in texts for m in re.findall(r"mapContains\(SpanAttributes, '([^']+)'\)", text)}
    assert len(used) >= 25
    assert used <= known, sorted(used - known)


def test_a_verdict_before_its_run_is_pending_in_both_paths(ch: ClickHouse, tmp_path: Path) -> None:
    """A run.outcome span for a run with no other span is not a run, in ClickHouse as in the store.

    Last in this module: it adds a run to the shared ``ch`` database.
    """
    from opentelemetry.trace import SpanKind

    from runtrace import semconv as sc
    from scale_helpers import SpanMaker, llm, outcome_attrs

    m = SpanMaker()
    m.span("remote-agent", "run.outcome", 5000, 5000, outcome_attrs("r-late", sc.OUTCOME_ACCEPTED, "ci"))
    verdict = m.records()
    m.exporter.clear()
    m.span("remote-agent", "chat gpt-4o", 4000, 4010, llm("r-late", "gpt-4o", "openai", 1000, 100, cost=0.0035),
           kind=SpanKind.CLIENT)
    call = m.records()
    before = ch_runs(ch)
    insert_spans(ch, verdict)
    assert ch_runs(ch) == before  # pending: not a run, not an accepted one at $0
    with Store.open(tmp_path / "runtrace.db") as store:
        store.ingest(verdict)
        assert store.count_runs() == 0
        insert_spans(ch, call)
        store.ingest(call)
        mine = list_runs(store, limit=0)
    theirs = ch_runs(ch)["r-late"]
    assert sorted(ch_runs(ch)) == sorted([*before, "r-late"])
    assert [(r["id"], r["outcome"], r["outcome_by"], r["llm_calls"], r["span_count"]) for r in mine] == [
        ("r-late", "accepted", "ci", 1, 2)]
    assert (theirs["outcome"], theirs["outcome_by"], theirs["llm_calls"], theirs["span_count"]) == (
        "accepted", "ci", 1, 2)
    assert theirs["started_ns"] == T0 + 4000 * S


def test_runs_without_run_id_agree_in_both_paths(ch: ClickHouse, tmp_path: Path) -> None:
    """DESIGN 6b on chDB: per-trace and per-session runs, same ids, names, totals as the store.

    Last in this module with the verdict test: it adds runs to the shared ``ch`` database.
    """
    from scale_helpers import foreign_fixture

    records = foreign_fixture()
    before = set(ch_runs(ch))
    insert_spans(ch, records[3:])  # two batches, roots after some children
    insert_spans(ch, records[:3])
    mine = {k: v for k, v in ch_runs(ch).items() if k not in before}
    with Store.open(tmp_path / "runtrace.db") as store:
        store.ingest(records)
        theirs = {r["id"]: r for r in list_runs(store, limit=0)}
    triage = next(r.trace_id for r in records if r.name == "triage ticket")
    embed = next(r.trace_id for r in records if r.name.startswith("embeddings"))
    assert sorted(mine) == sorted(theirs) == sorted([triage, embed, "sess-42"])
    got = {k: (v["name"], v["owner"], v["service"], v["outcome"], v["llm_calls"], v["tool_calls"],
               v["input_tokens"], round(v["cost_usd"], 9), v["span_count"], v["duration_s"]) for k, v in mine.items()}
    assert got == {
        triage: ("triage ticket", "dana", "go-agent", "open", 1, 1, 1000, 0.00045, 3, 10.0),  # priced in SQL
        "sess-42": ("turn 1", None, "claude-code", "open", 2, 0, 6000, 0.018, 4, 110.0),
        embed: ("embeddings text-embedding-3-small", None, "billing-bot", "open", 1, 0, 2000, 0.00004, 1, 1.0),
    }
    for run_id, run in mine.items():
        for f in FIELDS:
            assert run[f] == pytest.approx(theirs[run_id][f], abs=1e-12), (run_id, f)
        assert run["span_count"] == theirs[run_id]["span_count"]
