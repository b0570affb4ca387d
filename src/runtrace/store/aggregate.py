"""The one run aggregation: what each span contributes to its run, and how contributions add up.

Spans of one run arrive in any order, in any batches, from any process, and a
crashed run never sends its run span. So a run row is never "written"; it is
the sum of its spans' contributions, and every field combines commutatively
and associatively: counts add, times take min/max, the loop flag takes max,
and the descriptive fields and the outcome each come from the span with the
greatest key (so "latest wins" does not depend on arrival order).

The same rules exist three times and must agree: :func:`merge` (Python, used
within a batch), :data:`UPSERT_RUN_SQL` (SQLite, across batches) and the
ClickHouse views of the scale path. Cost is added as integer nano-dollars so
that sums are exact in every order.

Field rules, per span (``semconv`` names):
- LLM span (``gen_ai.operation.name`` in ``LLM_OPERATIONS``): +1 llm call; tokens
  (input is the total input, cached = cache read); cost, or +1 unpriced call when
  ``runtrace.cost.source`` is ``unknown`` or the cost is missing; re-injected tokens.
- Tool span (``execute_tool``): +1 tool call; +1 repeated read when flagged; its tokens.
- Run span (role ``run``): name/project/owner/service, budget, stop reason, its end
  as ``ended``, and an outcome (``open`` when it carries none) at its end.
- Outcome span (role ``outcome``): an outcome at its end.
- Every span: its start (``started`` = min), +1 span, loop flag, its trace id.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import semconv as sc
from .records import Attributes, SpanRecord

NANO = 1_000_000_000  # nano-dollars per dollar

# --- reading attribute values leniently (other SDKs send strings, floats, ...) ---


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                return None
            return int(number) if math.isfinite(number) else None
    return None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() == "true"
    if isinstance(value, int):
        return value != 0
    return False


def as_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


# --- what runtrace reads off one span -------------------------------------------

KIND_LLM = "llm"
KIND_TOOL = "tool"
KIND_RUN = "run"
KIND_OUTCOME = "outcome"
KIND_OTHER = "other"


@dataclass(frozen=True, slots=True)
class SpanFacts:
    """The figures of one span that both the ``spans`` row and its run contribution need."""

    run_id: str | None
    kind: str
    service: str | None
    model: str | None
    provider: str | None
    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: int | None
    reasoning_tokens: int | None
    cost_usd: float | None
    tool_name: str | None


def span_facts(record: SpanRecord) -> SpanFacts:
    a = record.attributes
    get = a.get
    role = get(sc.SPAN_ROLE)
    operation = get(sc.GEN_AI_OPERATION_NAME)
    if role == sc.ROLE_RUN:
        kind = KIND_RUN
    elif role == sc.ROLE_OUTCOME:
        kind = KIND_OUTCOME
    elif operation in sc.LLM_OPERATIONS:
        kind = KIND_LLM
    elif operation == sc.OP_EXECUTE_TOOL:
        kind = KIND_TOOL
    else:
        kind = KIND_OTHER
    input_tokens = get(sc.GEN_AI_USAGE_INPUT_TOKENS)
    if input_tokens is None:
        input_tokens = get(sc.GEN_AI_USAGE_PROMPT_TOKENS)
    output_tokens = get(sc.GEN_AI_USAGE_OUTPUT_TOKENS)
    if output_tokens is None:
        output_tokens = get(sc.GEN_AI_USAGE_COMPLETION_TOKENS)
    cached = get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)
    reasoning = get(sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)
    cost = get(sc.COST_USD)
    return SpanFacts(
        run_id=as_str(get(sc.RUN_ID)),
        kind=kind,
        service=as_str(record.resource.get(sc.SERVICE_NAME)),
        model=as_str(get(sc.GEN_AI_RESPONSE_MODEL) or get(sc.GEN_AI_REQUEST_MODEL)),
        provider=as_str(get(sc.GEN_AI_PROVIDER_NAME) or get(sc.GEN_AI_SYSTEM)),
        input_tokens=None if input_tokens is None else as_int(input_tokens),
        output_tokens=None if output_tokens is None else as_int(output_tokens),
        cached_input_tokens=None if cached is None else as_int(cached),
        reasoning_tokens=None if reasoning is None else as_int(reasoning),
        cost_usd=None if cost is None else as_float(cost),
        tool_name=as_str(get(sc.GEN_AI_TOOL_NAME)),
    )


# --- the contribution and its merge ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Descriptor:
    """Descriptive run fields and the key that decides which span's copy wins."""

    rank: int  # 1 for a run span, 0 for any other span
    end_ns: int
    span_id: str
    name: str | None = None
    project: str | None = None
    owner: str | None = None
    service: str | None = None
    stop_reason: str | None = None
    budget_max_cost_usd: float | None = None
    budget_max_llm_calls: int | None = None
    budget_max_tool_calls: int | None = None
    budget_max_seconds: float | None = None
    budget_max_input_tokens: int | None = None
    budget_on_exceed: str | None = None

    @property
    def key(self) -> tuple[int, int, str]:
        return (self.rank, self.end_ns, self.span_id)


@dataclass(frozen=True, slots=True)
class OutcomeMark:
    at_ns: int
    outcome: str
    by: str | None = None
    reason: str | None = None

    @property
    def key(self) -> tuple[int, str, str, str]:
        return (self.at_ns, self.outcome, self.by or "", self.reason or "")


@dataclass(frozen=True, slots=True)
class ModelDelta:
    llm_calls: int = 0
    cost_nusd: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    unpriced_calls: int = 0


@dataclass(frozen=True, slots=True)
class RunDelta:
    """What a set of spans adds to one run; ``merge`` of two is again a RunDelta."""

    run_id: str
    descriptor: Descriptor
    started_ns: int
    ended_ns: int | None = None
    has_run_span: bool = False
    outcome: OutcomeMark | None = None
    span_count: int = 0
    llm_calls: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nusd: int = 0
    unpriced_calls: int = 0
    repeated_reads: int = 0
    repeated_read_tokens: int = 0
    reinjected_tokens: int = 0
    loop_detected: bool = False
    models: Mapping[tuple[str, str], ModelDelta] = field(default_factory=dict)
    trace_ids: frozenset[str] = frozenset()

    @property
    def cost_usd(self) -> float:
        return self.cost_nusd / NANO


_SUMS = ("span_count", "llm_calls", "tool_calls", "input_tokens", "output_tokens", "cached_input_tokens",
         "reasoning_tokens", "cost_nusd", "unpriced_calls", "repeated_reads", "repeated_read_tokens",
         "reinjected_tokens")
_MODEL_SUMS = ("llm_calls", "cost_nusd", "input_tokens", "output_tokens", "cached_input_tokens",
               "unpriced_calls")


def to_nusd(cost_usd: float) -> int:
    return round(cost_usd * NANO)


def run_contribution(record: SpanRecord, facts: SpanFacts | None = None) -> RunDelta | None:
    """What one span adds to its run; None when it carries no ``runtrace.run.id``."""
    if facts is None:
        facts = span_facts(record)
    run_id = facts.run_id
    if run_id is None:
        return None
    a: Attributes = record.attributes
    get = a.get
    kind = facts.kind
    values: dict[str, Any] = {"span_count": 1, "trace_ids": frozenset((record.trace_id,))}
    loop = as_bool(get(sc.LOOP_DETECTED))
    outcome: OutcomeMark | None = None
    if kind == KIND_RUN:
        descriptor = Descriptor(
            rank=1, end_ns=record.end_ns, span_id=record.span_id,
            name=as_str(get(sc.RUN_NAME)), project=as_str(get(sc.PROJECT)),
            owner=as_str(get(sc.OWNER)), service=facts.service,
            stop_reason=as_str(get(sc.RUN_STOP_REASON)),
            budget_max_cost_usd=as_float(get(sc.BUDGET_MAX_COST_USD)),
            budget_max_llm_calls=as_int(get(sc.BUDGET_MAX_LLM_CALLS)),
            budget_max_tool_calls=as_int(get(sc.BUDGET_MAX_TOOL_CALLS)),
            budget_max_seconds=as_float(get(sc.BUDGET_MAX_SECONDS)),
            budget_max_input_tokens=as_int(get(sc.BUDGET_MAX_INPUT_TOKENS)),
            budget_on_exceed=as_str(get(sc.BUDGET_ON_EXCEED)),
        )
        values["ended_ns"] = record.end_ns
        values["has_run_span"] = True
        loop = loop or as_bool(get(sc.RUN_LOOP_DETECTED))
        outcome = OutcomeMark(record.end_ns, as_str(get(sc.RUN_OUTCOME)) or sc.OUTCOME_OPEN,
                              as_str(get(sc.RUN_OUTCOME_BY)), as_str(get(sc.RUN_OUTCOME_REASON)))
    else:
        descriptor = Descriptor(
            rank=0, end_ns=record.end_ns, span_id=record.span_id,
            name=as_str(get(sc.RUN_NAME)), project=as_str(get(sc.PROJECT)),
            owner=as_str(get(sc.OWNER)), service=facts.service,
        )
        if kind == KIND_OUTCOME:
            verdict = as_str(get(sc.RUN_OUTCOME))
            if verdict is not None:
                outcome = OutcomeMark(record.end_ns, verdict, as_str(get(sc.RUN_OUTCOME_BY)),
                                      as_str(get(sc.RUN_OUTCOME_REASON)))
        elif kind == KIND_LLM:
            cost = facts.cost_usd
            unpriced = cost is None or get(sc.COST_SOURCE) == sc.SOURCE_UNKNOWN
            cost_nusd = 0 if unpriced or cost is None else to_nusd(cost)
            model = ModelDelta(
                llm_calls=1, cost_nusd=cost_nusd,
                input_tokens=facts.input_tokens or 0, output_tokens=facts.output_tokens or 0,
                cached_input_tokens=facts.cached_input_tokens or 0, unpriced_calls=int(unpriced),
            )
            values.update(
                llm_calls=1, input_tokens=model.input_tokens, output_tokens=model.output_tokens,
                cached_input_tokens=model.cached_input_tokens,
                reasoning_tokens=facts.reasoning_tokens or 0,
                cost_nusd=cost_nusd, unpriced_calls=model.unpriced_calls,
                reinjected_tokens=as_int(get(sc.CONTEXT_REINJECTED_TOKENS)) or 0,
                models={(facts.provider or "", facts.model or ""): model},
            )
        elif kind == KIND_TOOL:
            values.update(
                tool_calls=1,
                repeated_reads=int(as_bool(get(sc.TOOL_REPEATED_READ))),
                repeated_read_tokens=as_int(get(sc.TOOL_REPEATED_READ_TOKENS)) or 0,
            )
    return RunDelta(run_id=run_id, descriptor=descriptor, started_ns=record.start_ns,
                    outcome=outcome, loop_detected=loop, **values)


def _max_or(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def merge(a: RunDelta, b: RunDelta) -> RunDelta:
    """Combine two contributions to the same run (associative and commutative)."""
    if a.run_id != b.run_id:
        raise ValueError(f"cannot merge contributions to different runs: {a.run_id!r} and {b.run_id!r}")
    if a.outcome is None:
        outcome = b.outcome
    elif b.outcome is None:
        outcome = a.outcome
    else:
        outcome = b.outcome if b.outcome.key > a.outcome.key else a.outcome
    if not b.models:
        models = a.models
    elif not a.models:
        models = b.models
    else:
        merged = dict(a.models)
        for key, m in b.models.items():
            old = merged.get(key)
            merged[key] = m if old is None else ModelDelta(
                *(getattr(old, f) + getattr(m, f) for f in _MODEL_SUMS))
        models = merged
    return RunDelta(
        run_id=a.run_id,
        descriptor=b.descriptor if b.descriptor.key > a.descriptor.key else a.descriptor,
        started_ns=min(a.started_ns, b.started_ns),
        ended_ns=_max_or(a.ended_ns, b.ended_ns),
        has_run_span=a.has_run_span or b.has_run_span,
        outcome=outcome,
        loop_detected=a.loop_detected or b.loop_detected,
        models=models,
        trace_ids=a.trace_ids | b.trace_ids,
        **{f: getattr(a, f) + getattr(b, f) for f in _SUMS},
    )


def merge_by_run(deltas: Iterable[RunDelta]) -> dict[str, RunDelta]:
    """Fold a batch's contributions into one per run."""
    out: dict[str, RunDelta] = {}
    for d in deltas:
        old = out.get(d.run_id)
        out[d.run_id] = d if old is None else merge(old, d)
    return out


# --- the SQL side: add a delta into the runs / run_models / run_traces tables -------

_DESC_FIELDS = ("name", "project", "owner", "service", "stop_reason", "budget_max_cost_usd",
                "budget_max_llm_calls", "budget_max_tool_calls", "budget_max_seconds",
                "budget_max_input_tokens", "budget_on_exceed")
_OUTCOME_COLS = ("outcome", "outcome_at_ns", "outcome_by", "outcome_reason")
_RUN_COLUMNS = ("id", "desc_rank", "desc_end_ns", "desc_span_id", *_DESC_FIELDS, *_OUTCOME_COLS,
                *_SUMS, "loop_detected", "has_run_span", "started_ns", "ended_ns")

_DESC_NEWER = ("(excluded.desc_rank, excluded.desc_end_ns, excluded.desc_span_id)"
               " > (runs.desc_rank, runs.desc_end_ns, runs.desc_span_id)")
_OUTCOME_NEWER = (
    "excluded.outcome_at_ns IS NOT NULL AND (runs.outcome_at_ns IS NULL OR"
    " (excluded.outcome_at_ns, excluded.outcome, coalesce(excluded.outcome_by, ''),"
    " coalesce(excluded.outcome_reason, ''))"
    " > (runs.outcome_at_ns, runs.outcome, coalesce(runs.outcome_by, ''), coalesce(runs.outcome_reason, '')))"
)


def _build_upsert_run_sql() -> str:
    sets = [f"{c} = CASE WHEN {_DESC_NEWER} THEN excluded.{c} ELSE runs.{c} END"
            for c in (*_DESC_FIELDS, "desc_rank", "desc_end_ns", "desc_span_id")]
    sets += [f"{c} = CASE WHEN {_OUTCOME_NEWER} THEN excluded.{c} ELSE runs.{c} END" for c in _OUTCOME_COLS]
    sets += [f"{c} = runs.{c} + excluded.{c}" for c in _SUMS]
    sets += [
        "loop_detected = max(runs.loop_detected, excluded.loop_detected)",
        "has_run_span = max(runs.has_run_span, excluded.has_run_span)",
        "started_ns = min(runs.started_ns, excluded.started_ns)",
        "ended_ns = coalesce(max(runs.ended_ns, excluded.ended_ns), runs.ended_ns, excluded.ended_ns)",
    ]
    return (f"INSERT INTO runs ({', '.join(_RUN_COLUMNS)}) VALUES ({', '.join('?' * len(_RUN_COLUMNS))})"
            f" ON CONFLICT(id) DO UPDATE SET {', '.join(sets)}")


UPSERT_RUN_SQL = _build_upsert_run_sql()
UPSERT_MODEL_SQL = (
    f"INSERT INTO run_models (run_id, provider, model, {', '.join(_MODEL_SUMS)})"
    f" VALUES (?, ?, ?, {', '.join('?' * len(_MODEL_SUMS))})"
    " ON CONFLICT(run_id, provider, model) DO UPDATE SET "
    + ", ".join(f"{c} = run_models.{c} + excluded.{c}" for c in _MODEL_SUMS)
)
INSERT_TRACE_SQL = "INSERT OR IGNORE INTO run_traces (run_id, trace_id) VALUES (?, ?)"


def _run_row(d: RunDelta) -> tuple[Any, ...]:
    desc = d.descriptor
    o = d.outcome
    return (
        d.run_id, desc.rank, desc.end_ns, desc.span_id, *(getattr(desc, f) for f in _DESC_FIELDS),
        *((o.outcome, o.at_ns, o.by, o.reason) if o is not None else (sc.OUTCOME_UNFINISHED, None, None, None)),
        *(getattr(d, f) for f in _SUMS),
        int(d.loop_detected), int(d.has_run_span), d.started_ns, d.ended_ns,
    )


def apply_deltas(conn: Any, deltas: Iterable[RunDelta]) -> None:
    """Add merged contributions into the tables; call inside the write transaction."""
    runs, models, traces = [], [], []
    for d in deltas:
        runs.append(_run_row(d))
        for (provider, model), m in d.models.items():
            models.append((d.run_id, provider, model, *(getattr(m, f) for f in _MODEL_SUMS)))
        traces.extend((d.run_id, t) for t in d.trace_ids)
    conn.executemany(UPSERT_RUN_SQL, runs)
    if models:
        conn.executemany(UPSERT_MODEL_SQL, models)
    conn.executemany(INSERT_TRACE_SQL, traces)
