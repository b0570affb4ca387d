"""The scale-path test bench: a chDB database holding the exporter's exact schema,
fixture runs made by a real OpenTelemetry SDK, rows written the way the
ClickHouse exporter writes them, and the Grafana ClickHouse plugin's macros.

Facts this file reproduces (see /work/shared/reference/otel-clickhouse-grafana.md):
- exporter INSERT column order and value encoding (every attribute value via
  pcommon ``AsString``: ints in decimal, doubles in ES6 shortest form, bools
  ``true``/``false``, arrays as compact JSON), hex ids, ``''`` for no parent,
  ``Duration`` in nanoseconds, both SpanKind/StatusCode spellings;
- grafana/clickhouse-datasource ``pkg/macros/macros.go`` expansions.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode

from runtrace import semconv as sc
from runtrace.store.records import SpanRecord
from runtrace.store.sdk_adapter import records_from_sdk

ROOT = Path(__file__).resolve().parents[1]
SQL_DIR = ROOT / "collector" / "clickhouse"
S = 1_000_000_000
T0 = 1_795_003_200 * S  # 2026-11-18T12:00:00Z

# --- SQL files -------------------------------------------------------------------


def split_sql(text: str) -> list[str]:
    """Statements of a ClickHouse script: ``;`` outside quotes ends one, ``--`` comments dropped."""
    out: list[str] = []
    cur: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            cur.append(c)
            if c == "\\":
                cur.append(text[i + 1])
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "'`\"":
            quote = c
            cur.append(c)
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif c == ";":
            statement = "".join(cur).strip()
            cur = []
            if statement:
                out.append(statement)
        else:
            cur.append(c)
        i += 1
    statement = "".join(cur).strip()
    if statement:
        out.append(statement)
    return out


def schema_statements() -> list[str]:
    return [st for f in sorted(SQL_DIR.glob("*.sql")) for st in split_sql(f.read_text())]


class ClickHouse:
    """One chDB session (an in-process ClickHouse) with runtrace's schema loaded."""

    def __init__(self, path: Path) -> None:
        # chDB is an optional extra (runtrace[clickhouse]): without it, every test that needs
        # a ClickHouse (through this class, in a test or a fixture) is skipped, saying why.
        pytest.importorskip("chdb", exc_type=ImportError,
                            reason="chdb is not installed (pip install 'runtrace[clickhouse]'): "
                                   "the ClickHouse tests need an in-process ClickHouse")
        from chdb import session

        self.session = session.Session(str(path))
        self.execute("SET session_timezone = 'UTC'")
        for statement in schema_statements():
            self.execute(statement)

    def execute(self, sql: str) -> None:
        self.session.query(sql)

    def rows(self, sql: str) -> list[dict[str, Any]]:
        result = self.session.query(sql, "JSON")
        data = result.bytes()
        return json.loads(data)["data"] if data else []

    def scalar(self, sql: str) -> Any:
        rows = self.rows(sql)
        assert len(rows) == 1 and len(rows[0]) == 1, rows
        return next(iter(rows[0].values()))

    def close(self) -> None:
        self.session.close()


# --- what the ClickHouse exporter writes ---------------------------------------------


def go_float(value: float) -> str:
    """pcommon's double AsString: ES6 number-to-string (shortest digits; exponent below 1e-6 / from 1e21)."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"the exporter cannot write {value!r}")
    if value == 0:
        return "0"
    exact = Decimal(repr(value)).normalize()  # repr is the shortest round-trip form
    if 1e-6 <= abs(value) < 1e21:
        return format(exact, "f")
    sign, digits, exp = exact.as_tuple()
    text = "".join(map(str, digits))
    mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
    e = int(exp) + len(text) - 1
    return f"{'-' if sign else ''}{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


def as_string(value: Any) -> str:
    """pcommon.Value.AsString for the values a SpanRecord can hold."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return "[" + ",".join(json.dumps(v, ensure_ascii=False) if isinstance(v, str) else as_string(v)
                              for v in value) + "]"
    raise TypeError(f"unexpected attribute value {value!r}")


KIND_NEW = {"INTERNAL": "Internal", "SERVER": "Server", "CLIENT": "Client", "PRODUCER": "Producer",
            "CONSUMER": "Consumer"}
STATUS_NEW = {"UNSET": "Unset", "OK": "Ok", "ERROR": "Error"}
COLUMNS = ("Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind",
           "ServiceName", "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes", "Duration",
           "StatusCode", "StatusMessage", "Events.Timestamp", "Events.Name", "Events.Attributes",
           "Links.TraceId", "Links.SpanId", "Links.TraceState", "Links.Attributes")


def ts(ns: int) -> str:
    seconds, rest = divmod(ns, S)
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S") + f".{rest:09d}"


def exporter_row(record: SpanRecord, *, old_spelling: bool = False) -> dict[str, Any]:
    """One otel_traces row, in the exporter's INSERT column order."""
    kind = f"SPAN_KIND_{record.kind}" if old_spelling else KIND_NEW[record.kind]
    status = f"STATUS_CODE_{record.status_code}" if old_spelling else STATUS_NEW[record.status_code]
    return {
        "Timestamp": ts(record.start_ns),
        "TraceId": record.trace_id,
        "SpanId": record.span_id,
        "ParentSpanId": record.parent_span_id or "",
        "TraceState": "",
        "SpanName": record.name,
        "SpanKind": kind,
        "ServiceName": str(record.resource.get(sc.SERVICE_NAME, "")),
        "ResourceAttributes": {k: as_string(v) for k, v in record.resource.items()},
        "ScopeName": record.scope_name or "",
        "ScopeVersion": record.scope_version or "",
        "SpanAttributes": {k: as_string(v) for k, v in record.attributes.items()},
        "Duration": record.end_ns - record.start_ns,
        "StatusCode": status,
        "StatusMessage": record.status_message or "",
        "Events.Timestamp": [ts(e.time_ns) for e in record.events],
        "Events.Name": [e.name for e in record.events],
        "Events.Attributes": [{k: as_string(v) for k, v in e.attributes.items()} for e in record.events],
        "Links.TraceId": [],
        "Links.SpanId": [],
        "Links.TraceState": [],
        "Links.Attributes": [],
    }


def insert_spans(ch: ClickHouse, records: Iterable[SpanRecord], *, old_spelling: bool = False) -> None:
    """One INSERT block into otel_traces, as one exporter batch."""
    rows = [exporter_row(r, old_spelling=old_spelling) for r in records]
    body = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows)
    ch.execute(f"INSERT INTO otel.otel_traces ({', '.join(f'`{c}`' for c in COLUMNS)}) "
               f"FORMAT JSONEachRow\n{body}")


# --- fixture runs from a real SDK ----------------------------------------------------


def fixture_clickhouse(path: Path) -> ClickHouse:
    """A chDB session at ``path`` with the price table and every batch of :func:`build_fixture` in it."""
    from runtrace.scale import prices

    db = ClickHouse(path)
    for statement in split_sql(prices.to_clickhouse_sql(prices.price_rows())):
        db.execute(statement)
    for records, old in build_fixture().batches:
        insert_spans(db, records, old_spelling=old)
    return db


class CountingIds(IdGenerator):
    """Deterministic ids: a span outside any run forms a run named by its trace id (DESIGN 6b),
    so two builds of one fixture (store and ClickHouse) must give the same ids."""

    def __init__(self) -> None:
        self._n = 0

    def generate_span_id(self) -> int:
        self._n += 1
        return self._n

    def generate_trace_id(self) -> int:
        self._n += 1
        return 0xC0FFEE << 96 | self._n


def foreign_fixture() -> list[SpanRecord]:
    """Spans without runtrace.run.id (DESIGN 6b): a trace of another SDK, a session over two traces
    (session.id on the span, then on the resource), and a lone embeddings call."""
    m = SpanMaker()
    root = m.span("go-agent", "triage ticket", 5000, 5010, {sc.OWNER: "dana"})
    m.span("go-agent", "chat gpt-4o-mini", 5001, 5003, llm(None, "gpt-4o-mini", "openai", 1000, 500, sdk=False),
           parent=root, kind=SpanKind.CLIENT)
    m.span("go-agent", "execute_tool grep", 5004, 5005,
           {sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: "grep"}, parent=root)
    turn = m.span("claude-code", "turn 2", 6100, 6110, {sc.SESSION_ID: "sess-42"})
    m.span("claude-code", "chat gpt-4o", 6101, 6109,
           {**llm(None, "gpt-4o", "openai", 4000, 200, cost=0.012), sc.SESSION_ID: "sess-42"}, parent=turn)
    turn = m.span("claude-code", "turn 1", 6000, 6010, {sc.GEN_AI_CONVERSATION_ID: "sess-42"})
    m.span("claude-code", "chat gpt-4o", 6001, 6009,
           {**llm(None, "gpt-4o", "openai", 2000, 100, cost=0.006), sc.SESSION_ID: "sess-42"}, parent=turn)
    m.span("billing-bot", "embeddings text-embedding-3-small", 3650, 3651,
           llm(None, "text-embedding-3-small", "openai", 2000, 0, cost=0.00004, op=sc.OP_EMBEDDINGS),
           kind=SpanKind.CLIENT)
    return m.records()


class SpanMaker:
    """Spans with explicit times through a real SDK TracerProvider (one per service)."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self._providers: dict[str, TracerProvider] = {}
        self._ids = CountingIds()

    def tracer(self, service: str) -> trace.Tracer:
        provider = self._providers.get(service)
        if provider is None:
            provider = TracerProvider(resource=Resource.create({sc.SERVICE_NAME: service}), id_generator=self._ids)
            provider.add_span_processor(SimpleSpanProcessor(self.exporter))
            self._providers[service] = provider
        return provider.get_tracer("runtrace", "0.1.0")

    def span(self, service: str, name: str, start_s: float, end_s: float, attrs: Mapping[str, Any], *,
             parent: trace.Span | None = None, kind: SpanKind = SpanKind.INTERNAL,
             error: str | None = None) -> trace.Span:
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer(service).start_span(name, context=ctx, kind=kind, attributes=dict(attrs),
                                               start_time=T0 + round(start_s * S))
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=T0 + round(end_s * S))
        return span

    def records(self) -> list[SpanRecord]:
        return records_from_sdk(self.exporter.get_finished_spans())


def llm(run_id: str | None, model: str, provider: str, inp: int, out: int, *, cached: int = 0,
        reasoning: int = 0, cost: float | None = None, reinjected: int = 0, response_model: str | None = None,
        sdk: bool = True, op: str = sc.OP_CHAT) -> dict[str, Any]:
    """An LLM span's attributes; ``sdk=False`` is a span from another SDK (no runtrace.cost.*)."""
    a: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: op, sc.GEN_AI_PROVIDER_NAME: provider,
                         sc.GEN_AI_REQUEST_MODEL: model, sc.GEN_AI_RESPONSE_MODEL: response_model or model,
                         sc.GEN_AI_USAGE_INPUT_TOKENS: inp, sc.GEN_AI_USAGE_OUTPUT_TOKENS: out,
                         sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",)}
    if run_id is not None:
        a[sc.RUN_ID] = run_id
    if cached:
        a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cached
    if reasoning:
        a[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = reasoning
    if reinjected:
        a[sc.CONTEXT_REINJECTED_TOKENS] = reinjected
    if sdk:
        if cost is None:
            a[sc.COST_SOURCE] = sc.SOURCE_UNKNOWN
            a[sc.COST_UNPRICED_REASON] = sc.UNPRICED_UNKNOWN_MODEL
        else:
            a[sc.COST_USD] = cost
            a[sc.COST_SOURCE] = sc.SOURCE_GENAI_PRICES
            a[sc.COST_PRICE_TABLE] = "genai-prices 0.2.3"
    return a


def tool(run_id: str, name: str, args: str, result: str, *, repeat: int = 1, repeated_read_tokens: int = 0,
         loop: bool = False) -> dict[str, Any]:
    a: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: name,
                         sc.RUN_ID: run_id, sc.TOOL_ARGS_HASH: args, sc.TOOL_RESULT_HASH: result,
                         sc.TOOL_REPEAT_COUNT: repeat, sc.TOOL_SOURCE: "decorator"}
    if repeated_read_tokens:
        a[sc.TOOL_REPEATED_READ] = True
        a[sc.TOOL_REPEATED_READ_TOKENS] = repeated_read_tokens
    if loop:
        a[sc.LOOP_DETECTED] = True
    return a


def run_attrs(run_id: str, name: str, project: str, owner: str, *, outcome: str | None = None,
              stop_reason: str | None = None, loop: bool = False, max_cost: float | None = None,
              max_seconds: float | None = None) -> dict[str, Any]:
    a: dict[str, Any] = {sc.SPAN_ROLE: sc.ROLE_RUN, sc.RUN_ID: run_id, sc.RUN_NAME: name, sc.PROJECT: project,
                         sc.OWNER: owner, sc.RUN_LOOP_DETECTED: loop}
    if outcome is not None:
        a[sc.RUN_OUTCOME] = outcome
    if stop_reason is not None:
        a[sc.RUN_STOP_REASON] = stop_reason
    if max_cost is not None:
        a[sc.BUDGET_MAX_COST_USD] = max_cost
    if max_seconds is not None:
        a[sc.BUDGET_MAX_SECONDS] = max_seconds
    return a


def outcome_attrs(run_id: str, outcome: str, by: str, reason: str | None = None) -> dict[str, Any]:
    a: dict[str, Any] = {sc.SPAN_ROLE: sc.ROLE_OUTCOME, sc.RUN_ID: run_id, sc.RUN_OUTCOME: outcome,
                         sc.RUN_OUTCOME_BY: by}
    if reason:
        a[sc.RUN_OUTCOME_REASON] = reason
    return a


@dataclass
class Fixture:
    """The fixture spans, in the exporter batches they arrive in."""

    batches: list[tuple[list[SpanRecord], bool]]  # (records, old exporter spelling)

    @property
    def records(self) -> list[SpanRecord]:
        return [r for batch, _ in self.batches for r in batch]


def build_fixture() -> Fixture:
    """Five runs with known totals (hand-computed in tests/test_scale_clickhouse.py::EXPECTED).

    r-accept   billing/alice, accepted; a mid-run 'rejected' verdict that the later run end overrides;
               a repeated read; 3 LLM calls on two models
    r-reject   billing/bob, run ends 'open', verdict 'rejected' arrives 5 minutes later in its own
               batch; a runaway loop (3 identical searches); one unpriced call; a span of another process
    r-budget   support/alice, stopped by budget (max_cost_usd), run span in error
    r-crash    no run span (the process died): 2 LLM calls and a tool call, outcome 'unfinished'
    r-other    support/carol on another service, abandoned; its LLM span comes from another SDK
               (usage, no runtrace.cost.*) and is priced at ingest / in SQL
    r-old      billing/alice, accepted, three days before the others (for the alerts' baselines)
    (A call outside any run is a run of its own trace since DESIGN 6b: see foreign_fixture, kept
    apart so the dashboards' hand-computed figures stay those of these six runs.)
    """
    m = SpanMaker()
    svc = "support-agent"
    # r-accept: 0 s .. 60 s
    run = m.span(svc, "run fix flaky test", 0, 60,
                 run_attrs("r-accept", "fix flaky test", "billing", "alice", outcome=sc.OUTCOME_ACCEPTED,
                           max_cost=2.0, max_seconds=600))
    m.span(svc, "chat gpt-4o", 1, 4, llm("r-accept", "gpt-4o", "openai", 1200, 300, cached=200, cost=0.0051),
           parent=run, kind=SpanKind.CLIENT)
    m.span(svc, "execute_tool read_file", 5, 6, tool("r-accept", "read_file", "a1", "f1"), parent=run)
    m.span(svc, "chat gpt-4o", 7, 12, llm("r-accept", "gpt-4o", "openai", 2500, 150, cached=1000,
                                          cost=0.0065, reinjected=400), parent=run, kind=SpanKind.CLIENT)
    m.span(svc, "execute_tool read_file", 13, 14,
           tool("r-accept", "read_file", "a1", "f1", repeat=2, repeated_read_tokens=350), parent=run)
    m.span(svc, "chat claude-sonnet-4-5", 15, 40,
           llm("r-accept", "claude-sonnet-4-5", "anthropic", 12000, 800, reasoning=200, cost=0.048),
           parent=run, kind=SpanKind.CLIENT)
    m.span(svc, "run.outcome", 50, 50, outcome_attrs("r-accept", sc.OUTCOME_REJECTED, "reviewer", "too slow"))
    accept = m.records()
    m.exporter.clear()

    # r-reject: 300 s .. 400 s; verdict at 700 s
    run = m.span(svc, "run refactor billing", 300, 400,
                 run_attrs("r-reject", "refactor billing", "billing", "bob", stop_reason="loop", loop=True))
    m.span(svc, "chat gpt-4o-mini", 301, 303, llm("r-reject", "gpt-4o-mini", "openai", 800, 100, cost=0.00024),
           parent=run, kind=SpanKind.CLIENT)
    m.span(svc, "chat my-local-llm", 304, 306, llm("r-reject", "my-local-llm", "openai", 500, 50),
           parent=run, kind=SpanKind.CLIENT)
    for i in range(3):
        m.span("tool-worker", "execute_tool search", 310 + 10 * i, 315 + 10 * i,
               tool("r-reject", "search", "q9", "res9", repeat=i + 1, loop=i == 2), parent=run)
    reject = m.records()
    m.exporter.clear()
    m.span(svc, "run.outcome", 700, 700, outcome_attrs("r-reject", sc.OUTCOME_REJECTED, "ci", "tests fail"))
    verdict = m.records()
    m.exporter.clear()

    # r-budget: 900 s .. 960 s
    run = m.span(svc, "run answer ticket", 900, 960,
                 run_attrs("r-budget", "answer ticket", "support", "alice", outcome=sc.OUTCOME_BUDGET_STOPPED,
                           stop_reason="max_cost_usd", max_cost=0.05, max_seconds=30),
                 error="BudgetExceeded: max_cost_usd")
    m.span(svc, "chat gpt-4o", 901, 950, llm("r-budget", "gpt-4o", "openai", 30000, 2000, cached=6000,
                                             cost=0.095), parent=run, kind=SpanKind.CLIENT)
    budget = m.records()
    m.exporter.clear()

    # r-crash: 1800 s .. 1900 s, no run span
    m.span(svc, "chat gpt-4o", 1800, 1830, llm("r-crash", "gpt-4o", "openai", 5000, 500, cached=1000,
                                               cost=0.0155), kind=SpanKind.CLIENT)
    m.span(svc, "execute_tool run_tests", 1831, 1890, tool("r-crash", "run_tests", "t1", "x1"),
           error="timeout")
    m.span(svc, "chat gpt-4o", 1891, 1920, llm("r-crash", "gpt-4o", "openai", 6000, 200, cached=5000,
                                               cost=0.0045), kind=SpanKind.CLIENT)
    crash = m.records()
    m.exporter.clear()

    # r-other: 3600 s .. 3700 s on billing-bot; the LLM span from another SDK
    run = m.span("billing-bot", "run triage", 3600, 3700,
                 run_attrs("r-other", "triage", "support", "carol", outcome=sc.OUTCOME_ABANDONED))
    m.span("billing-bot", "chat gpt-4o-mini", 3610, 3620,
           llm("r-other", "gpt-4o-mini", "openai", 10000, 1000, cached=4000,
               response_model="gpt-4o-mini-2024-07-18", sdk=False), parent=run, kind=SpanKind.CLIENT)
    other = m.records()
    m.exporter.clear()

    # r-old: three days earlier, accepted, for the "rising" alerts' comparison window
    run = m.span(svc, "run old task", -3 * 86400, -3 * 86400 + 30,
                 run_attrs("r-old", "old task", "billing", "alice", outcome=sc.OUTCOME_ACCEPTED))
    m.span(svc, "chat gpt-4o", -3 * 86400 + 1, -3 * 86400 + 20,
           llm("r-old", "gpt-4o", "openai", 4000, 400, cost=0.05), parent=run, kind=SpanKind.CLIENT)
    old = m.records()

    # arrival: out of order, in several blocks, both exporter spellings
    return Fixture([
        (reject, False), (crash[:2], False), (accept[3:], False), (budget, True), (accept[:3], True),
        (other, False), (crash[2:], True), (verdict, True), (old, False),
    ])


# --- Grafana ClickHouse plugin macros and dashboard variables --------------------------

_MACRO = re.compile(r"\$__(timeFilter_ms|timeFilter|dateFilter|timeInterval_ms|timeInterval|fromTime_ms|"
                    r"toTime_ms|fromTime|toTime|interval_s)\b(\(([^()]*)\))?")


@dataclass(frozen=True)
class TimeRange:
    start_ns: int
    end_ns: int
    interval_s: int = 60

    @property
    def from_s(self) -> int:
        return self.start_ns // S

    @property
    def to_s(self) -> int:
        return self.end_ns // S


def expand_macros(sql: str, rng: TimeRange) -> str:
    """The plugin's expansion (pkg/macros/macros.go); an unknown ``$__`` macro is an error."""

    def sub(match: re.Match[str]) -> str:
        name, args = match.group(1), match.group(3)
        frm, to = f"toDateTime({rng.from_s})", f"toDateTime({rng.to_s})"
        frm_ms, to_ms = (f"fromUnixTimestamp64Milli({rng.start_ns // 1_000_000})",
                         f"fromUnixTimestamp64Milli({rng.end_ns // 1_000_000})")
        if name in ("timeFilter", "timeFilter_ms", "dateFilter", "timeInterval", "timeInterval_ms"):
            if args is None or not args.strip() or "," in args:
                raise ValueError(f"$__{name} takes exactly one column, got {match.group(0)!r}")
            col = args.strip()
            if name == "timeFilter":
                return f"{col} >= {frm} AND {col} <= {to}"
            if name == "timeFilter_ms":
                return f"{col} >= {frm_ms} AND {col} <= {to_ms}"
            if name == "dateFilter":
                d0 = datetime.fromtimestamp(rng.from_s, tz=timezone.utc).date().isoformat()
                d1 = datetime.fromtimestamp(rng.to_s, tz=timezone.utc).date().isoformat()
                return f"{col} >= toDate('{d0}') AND {col} <= toDate('{d1}')"
            if name == "timeInterval":
                return f"toStartOfInterval(toDateTime({col}), INTERVAL {max(rng.interval_s, 1)} second)"
            return f"toStartOfInterval(toDateTime64({col}, 3), INTERVAL {max(rng.interval_s, 1) * 1000} millisecond)"
        suffix = match.group(2) or ""
        value = {"fromTime": frm, "toTime": to, "fromTime_ms": frm_ms, "toTime_ms": to_ms,
                 "interval_s": str(max(rng.interval_s, 1))}[name]
        return value + ("" if suffix in ("", "()") else suffix)

    out = _MACRO.sub(sub, sql)
    leftover = re.search(r"\$__\w+", out)
    if leftover:
        raise ValueError(f"macro {leftover.group(0)} is not one the ClickHouse plugin expands")
    return out


# Grafana leaves `$` + digits alone (no variable can be named so): "$0.01" in a label stays.
_VAR = re.compile(r"\$\{([A-Za-z_]\w*)(?::(\w+))?\}|\$([A-Za-z_]\w*)")
ALL_SELECTED = "$__all"  # the value Grafana stores when a variable's "All" option is picked


def _format(items: str | list[str], fmt: str | None) -> str:
    """One value or a multi-value through a Grafana format (grafana/scenes formatRegistry), or, with no
    format, through the ClickHouse plugin's own (CHDatasource.format: a list becomes ``'a','b'``, joined
    without escaping; a single value goes in verbatim)."""
    values = [items] if isinstance(items, str) else items
    if fmt is None:
        return items if isinstance(items, str) else "'" + "','".join(items) + "'"
    if fmt == "sqlstring":
        return ",".join("'" + v.replace("'", "''") + "'" for v in values)
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    if fmt in ("raw", "csv"):
        return ",".join(values)
    raise ValueError(f"variable format {fmt!r} is not handled by this helper")


def expand_variables(sql: str, values: Mapping[str, Sequence[str] | str],
                     variables: Sequence[Mapping[str, Any]] = ()) -> str:
    """Grafana's interpolation of dashboard variables into a ClickHouse query.

    ``variables`` are the board's ``templating.list`` entries; ``values`` the current value of each
    (a string, a list for a multi-value variable, or ``ALL_SELECTED``). As Grafana does it
    (grafana/scenes ``MultiValueVariable.getValue`` / ``CustomAllValue``): "All" with a custom
    ``allValue`` inserts that text verbatim, never quoted or escaped, whatever the format (except
    ``text``, which gives "All"); "All" without one formats every option's value; a multi-value
    variable's value is a list, even with one item.
    """
    defs = {v["name"]: v for v in variables}

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        fmt = match.group(2)
        if name.startswith("__"):
            return match.group(0)
        if name not in values:
            raise KeyError(f"variable ${name} has no value in this test")
        value = values[name]
        spec = defs.get(name, {})
        selected_all = value == ALL_SELECTED or (not isinstance(value, str) and list(value) == [ALL_SELECTED])
        if selected_all:
            if not spec.get("includeAll"):
                raise ValueError(f"variable ${name} has no All option")
            if fmt == "text":
                return "All"
            if spec.get("allValue"):
                return str(spec["allValue"])
            if spec.get("type") != "custom":
                raise ValueError(f"this helper cannot list the options of query variable ${name}")
            return _format([o.strip() for o in spec["query"].split(",")], fmt)
        if fmt == "text":
            return value if isinstance(value, str) else " + ".join(value)
        items: str | list[str] = value if isinstance(value, str) else list(value)
        if spec.get("multi") and isinstance(items, str):
            items = [items]
        return _format(items, fmt)

    return _VAR.sub(sub, sql)
