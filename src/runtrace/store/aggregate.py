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
that sums are exact in every order. Which totals a run has, and how each
combines (sum or max), is declared once in :mod:`runtrace.totals`; the sums
and the upsert below are derived from it, the per-span rules are here.

Field rules, per span (``semconv`` names):
- LLM span (``gen_ai.operation.name`` in ``LLM_OPERATIONS``): +1 llm call; tokens
  (input is the total input, cached = cache read); cost, or +1 unpriced call when
  ``runtrace.cost.source`` is ``unknown`` or the cost is missing; re-injected tokens.
  Not for a span marked ``runtrace.duplicate_of`` (another SDK's span of runtrace's
  own call), and taken back again (:func:`uncount_delta`) when the innermost rule
  (:mod:`.innermost`) finds a usage span nested below it.
- Tool span (``execute_tool``): +1 tool call; +1 repeated read when flagged; its tokens.
- LLM span with ``runtrace.agent.cost_usd`` (the agent's own figure): added to
  ``agent_cost_nusd``, never to the cost runtrace prices.
- Refused tool record (``runtrace.tool.refused``, an agent's sandbox/user said no): +1 refused tool call.
- Errors (status ``ERROR``, not a ``runtrace.duplicate_of`` span): a tool span is +1 tool error; an
  LLM span, or a client span naming a ``gen_ai.provider.name`` (a coding agent's model call that
  finally failed, which is no LLM call), is +1 API error. A retried attempt that then succeeded is
  neither: the agents report only the final outcome of a call.
- A span marked ``runtrace.duplicate_of`` (an agent's own span for a call its log
  events count) counts as no LLM or tool call, whatever it carries.
- Run span (role ``run``): name/project/owner/service, budget, its end as ``ended``,
  and an outcome (``open`` when it carries none) at its end.
- Descriptive fields (name, project, owner, service, ...) come from the span with
  the greatest (rank, end, span id): rank 1 the run span, 0 a span carrying
  ``runtrace.run.name``/``runtrace.project``/``runtrace.owner``, -1 any other; so
  a crashed run (no run span) keeps the name its first spans carried.
- Outcome span (role ``outcome``): an outcome at its end.
- Stop reason (``runtrace.run.stop_reason``): from the run span and from outcome spans
  (the Claude Code hook records a budget or cap stop as an outcome span, since the
  session has no run span), whichever arrives first. It is not a descriptive field: a
  later span without one never clears it, and a verdict given after a stop keeps it.
  Two records naming different reasons (two hooks racing) keep the greater name, so
  the row is the same in every arrival order.
- Every span: its start (``started`` = min), +1 span, loop flag, its trace id.

Which run a span belongs to (docs/architecture.md, :func:`run_id_of`): its ``runtrace.run.id``;
else its session (``semconv.SESSION_KEYS``, span attributes before resource
attributes; run id = that string); else its trace (run id = the 32-hex trace id).
So every span belongs to a run: spans from other SDKs, and runtrace's own spans
made outside any ``runtrace.run()``, form runs too. In such a run (no
``runtrace.run.id``) a root span (no parent) plays the run span's part for the
descriptive fields and the outcome:

- Root span of a run without ``runtrace.run.id``: the earliest root, by min
  (start, span id), gives name (its ``runtrace.run.name``, else the span's name),
  project/owner (``runtrace.project``/``runtrace.owner``, span attribute before
  resource attribute) and service; it is ranked like a run span, with the key
  (rank, -start, flipped span id) so that "greatest key" picks the earliest root.
  Each root's end is an ``ended`` and an outcome ``open`` at its end: ``open``
  once a root has arrived, ``unfinished`` before; verdicts work as for any run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .. import semconv as sc
from ..totals import NANO as NANO  # re-exported: report, review, alerts and the server read it here
from ..totals import STORED_TOTALS
from .bounds import INT64_MAX, clamp_int64
from .records import SpanRecord

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


def to_text(value: Any) -> str | None:
    """Any non-empty attribute value as text (numbers stringified); not ``_llm.as_str``, which keeps only strings."""
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


# --- what runtrace reads off one span -------------------------------------------

KIND_LLM = "llm"
KIND_TOOL = "tool"
KIND_RUN = "run"
KIND_OUTCOME = "outcome"
KIND_OTHER = "other"


class SpanFacts(NamedTuple):
    """The figures of one span that both the ``spans`` row and its run contribution need."""

    run_id: str  # never empty: every span belongs to a run (run_id_of)
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


def _int(value: Any) -> int | None:
    return value if type(value) is int else (None if value is None else as_int(value))


def _session_id(attributes: Mapping[str, Any]) -> str | None:
    for key in sc.SESSION_KEYS:
        value = attributes.get(key)
        if value is not None:
            text = to_text(value)
            if text is not None:  # as the agent or SDK wrote it (the ClickHouse views: != '')
                return text
    return None


def run_id_of(record: SpanRecord) -> str:
    """The run a span belongs to: run id, else session (span before resource), else trace (docs/architecture.md, "How spans become runs")."""
    run_id = to_text(record.attributes.get(sc.RUN_ID))
    if run_id is not None:
        return run_id
    return _session_id(record.attributes) or _session_id(record.resource) or record.trace_id


def _is_foreign_root(record: SpanRecord) -> bool:
    """A root span (no parent) without ``runtrace.run.id``: it stands for its run's run span."""
    return record.parent_span_id is None and to_text(record.attributes.get(sc.RUN_ID)) is None


_FLIP_HEX = str.maketrans("0123456789abcdef", "fedcba9876543210")


def _desc_key(record: SpanRecord, kind: str) -> tuple[int, int, str]:
    """The descriptor key of a span: the greatest key's span names the run (module docstring)."""
    if record.parent_span_id is None and _is_foreign_root(record):
        # max over (-start, flipped id) = min over (start, id): the earliest root, in any order
        return (RANK_ROOT, -record.start_ns, record.span_id.translate(_FLIP_HEX))
    if record.name == sc.AGENT_PROMPT_SPAN and sc.AGENT_EVENT in record.attributes:
        # A coding agent's prompts: the first names the session, also after a resume.
        return (_rank(kind, record.attributes), -record.start_ns, record.span_id.translate(_FLIP_HEX))
    return (_rank(kind, record.attributes), record.end_ns, record.span_id)


def span_facts(record: SpanRecord) -> SpanFacts:
    """Read the figures off one span (hot path: the common types are checked inline)."""
    get = record.attributes.get
    role = get(sc.SPAN_ROLE)
    operation = get(sc.GEN_AI_OPERATION_NAME)
    if get(sc.DUPLICATE_OF) is not None:
        # Another span already counts this call (runtrace's span of the same request,
        # an agent's log event): kept, never counted or priced.
        kind = KIND_OTHER
    elif role == sc.ROLE_RUN:
        kind = KIND_RUN
    elif role == sc.ROLE_OUTCOME:
        kind = KIND_OUTCOME
    elif operation in sc.LLM_OPERATIONS:
        kind = KIND_LLM
    elif operation == sc.OP_EXECUTE_TOOL and record.kind != "SERVER":
        # A server-side execute_tool span (an MCP server tracing itself) is the same
        # call the client's span already counts.
        kind = KIND_TOOL
    else:
        kind = KIND_OTHER
    run_id = get(sc.RUN_ID)
    if type(run_id) is not str or not run_id:
        run_id = run_id_of(record)
    service = record.resource.get(sc.SERVICE_NAME)
    model = get(sc.GEN_AI_RESPONSE_MODEL) or get(sc.GEN_AI_REQUEST_MODEL)
    provider = get(sc.GEN_AI_PROVIDER_NAME) or get(sc.GEN_AI_SYSTEM)
    tool = get(sc.GEN_AI_TOOL_NAME)
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
        run_id,
        kind,
        service if type(service) is str and service else to_text(service),
        model if type(model) is str and model else to_text(model),
        provider if type(provider) is str and provider else to_text(provider),
        input_tokens if type(input_tokens) is int or input_tokens is None else as_int(input_tokens),
        output_tokens if type(output_tokens) is int or output_tokens is None else as_int(output_tokens),
        cached if type(cached) is int or cached is None else as_int(cached),
        reasoning if type(reasoning) is int or reasoning is None else as_int(reasoning),
        cost if type(cost) is float and math.isfinite(cost) else (None if cost is None else as_float(cost)),
        tool if type(tool) is str and tool else to_text(tool),
    )


# --- the contribution and its merge ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Descriptor:
    """Descriptive run fields and the key that decides which span's copy wins."""

    rank: int  # RANK_RUN / RANK_ROOT, RANK_NAMED or RANK_OTHER
    end_ns: int  # the key's second part: the span's end, or minus its start for a root (_desc_key)
    span_id: str  # the key's third part: the span id, flipped for a root (_desc_key)
    name: str | None = None
    project: str | None = None
    owner: str | None = None
    service: str | None = None
    # The stop reason is no descriptive field (RunDelta.stop_reason): a later span without one never clears it.
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
    refused_tool_calls: int = 0
    agent_cost_nusd: int = 0
    api_errors: int = 0
    tool_errors: int = 0
    loop_detected: bool = False
    stop_reason: str | None = None  # join_stop_reason of the run span's and the outcome spans'
    models: Mapping[tuple[str, str], ModelDelta] = field(default_factory=dict)
    trace_ids: frozenset[str] = frozenset()

    @property
    def cost_usd(self) -> float:
        return self.cost_nusd / NANO


# The summed run totals' columns (runtrace/totals.py declares them); the one "max" total is the loop flag.
_SUMS = tuple(str(f.column) for f in STORED_TOTALS if f.combine == "sum")
_MAXES = tuple(str(f.column) for f in STORED_TOTALS if f.combine == "max")
_MODEL_SUMS = ("llm_calls", "cost_nusd", "input_tokens", "output_tokens", "cached_input_tokens",
               "unpriced_calls")


def to_nusd(cost_usd: float) -> int:
    return round(cost_usd * NANO)


RANK_RUN, RANK_NAMED, RANK_OTHER = 1, 0, -1
# A foreign run's root ranks as its run span: a run has either (a run span carries the run
# id), and were both there the run span (positive end) would beat the root (minus its start).
RANK_ROOT = RANK_RUN


def _rank(kind: str, attributes: Mapping[str, Any]) -> int:
    """Which span's descriptive fields win: the run span's, else a span that carries them.

    In-process, the first spans of a run carry its name/project/owner too (the
    run span is lost when the process crashes), later ones do not; so a span
    without them must never override one with them, whatever the arrival order.
    """
    if kind == KIND_RUN:
        return RANK_RUN
    if sc.RUN_NAME in attributes or sc.PROJECT in attributes or sc.OWNER in attributes:
        return RANK_NAMED
    return RANK_OTHER


def _descriptor(record: SpanRecord, facts: SpanFacts) -> Descriptor:
    get = record.attributes.get
    if _is_foreign_root(record):
        rank, end_key, id_key = _desc_key(record, facts.kind)
        res = record.resource.get
        return Descriptor(rank, end_key, id_key,
                          name=to_text(get(sc.RUN_NAME)) or to_text(record.name),
                          project=to_text(get(sc.PROJECT)) or to_text(res(sc.PROJECT)),
                          owner=to_text(get(sc.OWNER)) or to_text(res(sc.OWNER)),
                          service=facts.service)
    if facts.kind != KIND_RUN:
        return Descriptor(*_desc_key(record, facts.kind),
                          name=to_text(get(sc.RUN_NAME)),
                          project=to_text(get(sc.PROJECT)), owner=to_text(get(sc.OWNER)),
                          service=facts.service)
    return Descriptor(
        RANK_RUN, record.end_ns, record.span_id,
        name=to_text(get(sc.RUN_NAME)), project=to_text(get(sc.PROJECT)), owner=to_text(get(sc.OWNER)),
        service=facts.service,
        budget_max_cost_usd=as_float(get(sc.BUDGET_MAX_COST_USD)),
        budget_max_llm_calls=as_int(get(sc.BUDGET_MAX_LLM_CALLS)),
        budget_max_tool_calls=as_int(get(sc.BUDGET_MAX_TOOL_CALLS)),
        budget_max_seconds=as_float(get(sc.BUDGET_MAX_SECONDS)),
        budget_max_input_tokens=as_int(get(sc.BUDGET_MAX_INPUT_TOKENS)),
        budget_on_exceed=to_text(get(sc.BUDGET_ON_EXCEED)),
    )


class RunAccumulator:
    """The running sum of contributions to one run (the mutable form of RunDelta).

    Ingest adds a batch's spans here one by one (cheap: no object per span) and
    freezes one RunDelta per run; :func:`run_contribution` and :func:`merge` are
    built on the same two methods, so there is one set of rules.
    """

    __slots__ = ("run_id", "_desc_key", "_desc", "started_ns", "ended_ns", "has_run_span", "outcome",
                 "loop_detected", "stop_reason", "models", "trace_ids", *_SUMS)

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._desc_key: tuple[int, int, str] | None = None
        self._desc: Descriptor | tuple[SpanRecord, SpanFacts] | None = None
        self.started_ns: int | None = None
        self.ended_ns: int | None = None
        self.has_run_span = False
        self.outcome: OutcomeMark | None = None
        self.loop_detected = False
        self.stop_reason: str | None = None
        self.models: dict[tuple[str, str], list[int]] = {}
        self.trace_ids: set[str] = set()
        # the _SUMS, spelled out for the type checker
        self.span_count = 0
        self.llm_calls = 0
        self.tool_calls = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cached_input_tokens = 0
        self.reasoning_tokens = 0
        self.cost_nusd = 0
        self.unpriced_calls = 0
        self.repeated_reads = 0
        self.repeated_read_tokens = 0
        self.reinjected_tokens = 0
        self.refused_tool_calls = 0
        self.agent_cost_nusd = 0
        self.api_errors = 0
        self.tool_errors = 0

    def _outcome(self, mark: OutcomeMark) -> None:
        if self.outcome is None or mark.key > self.outcome.key:
            self.outcome = mark

    def add_span(self, record: SpanRecord, facts: SpanFacts) -> None:
        """Add what one span contributes (the field rules in the module docstring)."""
        get = record.attributes.get
        kind = facts.kind
        self.span_count += 1
        self.trace_ids.add(record.trace_id)
        if self.started_ns is None or record.start_ns < self.started_ns:
            self.started_ns = record.start_ns
        key = _desc_key(record, kind)
        if self._desc_key is None or key > self._desc_key:
            self._desc_key, self._desc = key, (record, facts)
        if record.parent_span_id is None and kind != KIND_RUN and _is_foreign_root(record):
            self.ended_ns = record.end_ns if self.ended_ns is None else max(self.ended_ns, record.end_ns)
            self._outcome(OutcomeMark(record.end_ns, sc.OUTCOME_OPEN))
        loop = get(sc.LOOP_DETECTED)
        if loop is not None and as_bool(loop):
            self.loop_detected = True
        refused = get(sc.TOOL_REFUSED)
        if refused is not None and as_bool(refused):
            self.refused_tool_calls += 1
        if record.status_code == "ERROR" and sc.DUPLICATE_OF not in record.attributes:
            if kind == KIND_TOOL:
                self.tool_errors += 1
            elif kind == KIND_LLM or (kind == KIND_OTHER and record.kind == "CLIENT"
                                      and facts.provider is not None):
                self.api_errors += 1
        if kind == KIND_LLM:
            if sc.DUPLICATE_OF not in record.attributes:  # the same call as runtrace's own span
                self.add_llm(record.attributes, facts, 1)
                agent_cost = get(sc.AGENT_COST_USD)
                if agent_cost is not None:
                    agent_usd = as_float(agent_cost)
                    if agent_usd is not None and 0 <= agent_usd < 1e9:
                        self.agent_cost_nusd += to_nusd(agent_usd)
        elif kind == KIND_TOOL:
            self.tool_calls += 1
            if as_bool(get(sc.TOOL_REPEATED_READ)):
                self.repeated_reads += 1
            tokens = get(sc.TOOL_REPEATED_READ_TOKENS)
            if tokens is not None:
                self.repeated_read_tokens += _int(tokens) or 0
        elif kind == KIND_RUN:
            self.ended_ns = record.end_ns if self.ended_ns is None else max(self.ended_ns, record.end_ns)
            self.has_run_span = True
            if as_bool(get(sc.RUN_LOOP_DETECTED)):
                self.loop_detected = True
            self._outcome(OutcomeMark(record.end_ns, to_text(get(sc.RUN_OUTCOME)) or sc.OUTCOME_OPEN,
                                      to_text(get(sc.RUN_OUTCOME_BY)), to_text(get(sc.RUN_OUTCOME_REASON))))
            self.stop_reason = join_stop_reason(self.stop_reason, to_text(get(sc.RUN_STOP_REASON)))
        elif kind == KIND_OUTCOME:
            self.stop_reason = join_stop_reason(self.stop_reason, to_text(get(sc.RUN_STOP_REASON)))
            verdict = to_text(get(sc.RUN_OUTCOME))
            if verdict is not None:
                self._outcome(OutcomeMark(record.end_ns, verdict, to_text(get(sc.RUN_OUTCOME_BY)),
                                          to_text(get(sc.RUN_OUTCOME_REASON))))

    def add_llm(self, attributes: Mapping[str, Any], facts: SpanFacts, sign: int) -> None:
        """Add (sign 1) or take back (sign -1) what one LLM call contributes.

        Taking back is how the innermost rule (:mod:`.innermost`) uncounts a
        span that turned out to wrap another span's count of the same call.
        """
        get = attributes.get
        cost = facts.cost_usd
        unpriced = cost is None or get(sc.COST_SOURCE) == sc.SOURCE_UNKNOWN
        cost_nusd = sign * (0 if unpriced or cost is None else to_nusd(cost))
        input_tokens = sign * (facts.input_tokens or 0)
        output_tokens = sign * (facts.output_tokens or 0)
        cached = sign * (facts.cached_input_tokens or 0)
        self.llm_calls += sign
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cached_input_tokens += cached
        self.reasoning_tokens += sign * (facts.reasoning_tokens or 0)
        self.cost_nusd += cost_nusd
        self.unpriced_calls += sign * unpriced
        reinjected = get(sc.CONTEXT_REINJECTED_TOKENS)
        if reinjected is not None:
            self.reinjected_tokens += sign * (_int(reinjected) or 0)
        model_key = (facts.provider or "", facts.model or "")
        m = self.models.get(model_key)
        if m is None:
            self.models[model_key] = [sign, cost_nusd, input_tokens, output_tokens, cached, sign * unpriced]
        else:
            m[0] += sign
            m[1] += cost_nusd
            m[2] += input_tokens
            m[3] += output_tokens
            m[4] += cached
            m[5] += sign * unpriced

    def add(self, delta: RunDelta) -> None:
        """Add a frozen contribution."""
        if delta.run_id != self.run_id:
            raise ValueError(f"cannot merge contributions to different runs: {self.run_id!r} and "
                             f"{delta.run_id!r}")
        for name in _SUMS:
            setattr(self, name, getattr(self, name) + getattr(delta, name))
        if self.started_ns is None or delta.started_ns < self.started_ns:
            self.started_ns = delta.started_ns
        if delta.ended_ns is not None:
            self.ended_ns = delta.ended_ns if self.ended_ns is None else max(self.ended_ns, delta.ended_ns)
        self.has_run_span = self.has_run_span or delta.has_run_span
        self.loop_detected = self.loop_detected or delta.loop_detected
        self.stop_reason = join_stop_reason(self.stop_reason, delta.stop_reason)
        key = delta.descriptor.key
        if self._desc_key is None or key > self._desc_key:
            self._desc_key, self._desc = key, delta.descriptor
        if delta.outcome is not None:
            self._outcome(delta.outcome)
        for model_key, m in delta.models.items():
            mine = self.models.setdefault(model_key, [0] * len(_MODEL_SUMS))
            for i, name in enumerate(_MODEL_SUMS):
                mine[i] += getattr(m, name)
        self.trace_ids.update(delta.trace_ids)

    def freeze(self) -> RunDelta:
        desc = self._desc
        if desc is None or self.started_ns is None:
            raise ValueError(f"run {self.run_id!r} has no contributions yet")
        if not isinstance(desc, Descriptor):
            desc = _descriptor(*desc)
        return RunDelta(
            run_id=self.run_id, descriptor=desc, started_ns=self.started_ns, ended_ns=self.ended_ns,
            has_run_span=self.has_run_span, outcome=self.outcome, loop_detected=self.loop_detected,
            stop_reason=self.stop_reason,
            models={k: ModelDelta(*v) for k, v in self.models.items()},
            trace_ids=frozenset(self.trace_ids),
            **{name: getattr(self, name) for name in _SUMS},
        )


def join_stop_reason(a: str | None, b: str | None) -> str | None:
    """The run's stop reason from two contributions: the one there is, else the greater name.

    Commutative, associative and idempotent (the module docstring's rule); the
    SQL upsert and the ClickHouse view apply the same.
    """
    if a is None:
        return b
    return a if b is None or a >= b else b


def run_contribution(record: SpanRecord, facts: SpanFacts | None = None) -> RunDelta:
    """What one span adds to its run (every span has one: :func:`run_id_of`)."""
    if facts is None:
        facts = span_facts(record)
    totals = RunAccumulator(facts.run_id)
    totals.add_span(record, facts)
    return totals.freeze()


RANK_CORRECTION = -2  # below every span's rank: a correction never sets descriptive fields


def uncount_delta(run_id: str, start_ns: int, attributes: Mapping[str, Any], facts: SpanFacts) -> RunDelta:
    """The correction that takes one stored LLM call's contribution back out of its run.

    It adds no span and no trace, starts no earlier than the span itself did
    (already part of the run) and ranks below every span, so only the LLM sums move.
    """
    totals = RunAccumulator(run_id)
    totals.started_ns = start_ns
    totals._desc_key = (RANK_CORRECTION, 0, "")
    totals._desc = Descriptor(RANK_CORRECTION, 0, "")
    totals.add_llm(attributes, facts, -1)
    return totals.freeze()


def merge(a: RunDelta, b: RunDelta) -> RunDelta:
    """Combine two contributions to the same run (associative and commutative)."""
    if a.run_id != b.run_id:
        raise ValueError(f"cannot merge contributions to different runs: {a.run_id!r} and {b.run_id!r}")
    totals = RunAccumulator(a.run_id)
    totals.add(a)
    totals.add(b)
    return totals.freeze()


def aggregate(spans: Iterable[tuple[SpanRecord, SpanFacts]]) -> list[RunDelta]:
    """One merged contribution per run for a batch of spans."""
    totals: dict[str, RunAccumulator] = {}
    for record, facts in spans:
        run_id = facts.run_id
        t = totals.get(run_id)
        if t is None:
            t = totals[run_id] = RunAccumulator(run_id)
        t.add_span(record, facts)
    return [t.freeze() for t in totals.values()]


# --- the SQL side: add a delta into the runs / run_models / run_traces tables -------

_DESC_FIELDS = ("name", "project", "owner", "service", "budget_max_cost_usd",
                "budget_max_llm_calls", "budget_max_tool_calls", "budget_max_seconds",
                "budget_max_input_tokens", "budget_on_exceed")
_OUTCOME_COLS = ("outcome", "outcome_at_ns", "outcome_by", "outcome_reason")
_RUN_COLUMNS = ("id", "desc_rank", "desc_end_ns", "desc_span_id", *_DESC_FIELDS, "stop_reason", *_OUTCOME_COLS,
                *_SUMS, *_MAXES, "has_run_span", "started_ns", "ended_ns")

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
    # join_stop_reason: SQLite's max() of two texts is NULL when either is, hence the coalesce
    sets.append("stop_reason = coalesce(max(runs.stop_reason, excluded.stop_reason), runs.stop_reason, "
                "excluded.stop_reason)")
    # Saturating: SQLite turns an overflowing integer + into a REAL; min() brings it back to the
    # int64 ceiling, reached only far past the per-span bounds' margin (see store.bounds).
    sets += [f"{c} = min(runs.{c} + excluded.{c}, {INT64_MAX})" for c in _SUMS]
    sets += [
        *(f"{c} = max(runs.{c}, excluded.{c})" for c in _MAXES),
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
    + ", ".join(f"{c} = min(run_models.{c} + excluded.{c}, {INT64_MAX})" for c in _MODEL_SUMS)
)
INSERT_TRACE_SQL = "INSERT OR IGNORE INTO run_traces (run_id, trace_id) VALUES (?, ?)"


def _run_row(d: RunDelta) -> tuple[Any, ...]:
    desc = d.descriptor
    o = d.outcome
    return (
        d.run_id, desc.rank, desc.end_ns, desc.span_id, *(getattr(desc, f) for f in _DESC_FIELDS), d.stop_reason,
        *((o.outcome, o.at_ns, o.by, o.reason) if o is not None else (sc.OUTCOME_UNFINISHED, None, None, None)),
        *(clamp_int64(getattr(d, f)) for f in _SUMS),
        *(int(getattr(d, f)) for f in _MAXES), int(d.has_run_span), d.started_ns, d.ended_ns,
    )


def apply_deltas(conn: Any, deltas: Iterable[RunDelta]) -> None:
    """Add merged contributions into the tables; call inside the write transaction."""
    runs: list[tuple[Any, ...]] = []
    models: list[tuple[Any, ...]] = []
    traces: list[tuple[str, str]] = []
    for d in deltas:
        runs.append(_run_row(d))
        for (provider, model), m in d.models.items():
            models.append((d.run_id, provider, model, *(clamp_int64(getattr(m, f)) for f in _MODEL_SUMS)))
        traces.extend((d.run_id, t) for t in d.trace_ids)
    conn.executemany(UPSERT_RUN_SQL, runs)
    if models:
        conn.executemany(UPSERT_MODEL_SQL, models)
    conn.executemany(INSERT_TRACE_SQL, traces)
