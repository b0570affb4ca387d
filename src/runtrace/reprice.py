"""``runtrace reprice``: what the recorded runs would have cost on another model or tier.

Every recorded LLM call is priced again with the same token counts (times
``token_ratio``, for a tokenizer that counts the same text differently) on the
target model, at the call's own date, with :class:`runtrace.pricing.Pricer`.
Three views come out of one scan of the ``spans`` table:

- per run and in total, the actual cost beside the repriced one. A call that had
  no actual price is still repriced (its tokens are known) and counted in
  ``actual_unpriced``; the difference is only given for runs whose actual cost
  is complete, so an unknown is never compared as $0;
- routing: runs of small work (few calls, few tokens) whose actual cost was at
  least ``frontier_ratio`` times the target's, with the saving;
- verbosity: output tokens per call by prompt-size bucket, per recorded model,
  because output is the expensive side and its length depends on the prompt.

Each call is also split by token class (:mod:`runtrace.price_parts`: input,
cached read, cache write, output, reasoning, per request, per second), so a
target on another provider shows what each class costs there; a call using a
class the target has no price for (output on an input-only model) is not
repriced and is counted per class, never priced as $0.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import semconv
from .price_parts import CLASS_LABELS, CLASSES, TOKEN_CLASSES, price_parts, split_tokens
from .pricing import Pricer, TokenUsage, default_pricer
from .store.db import Store
from .store.filters import RunFilter
from .store.timespec import from_ns, to_ns

__all__ = ["BUCKETS", "ClassTotal", "OutputStats", "RepriceResult", "RepricedRun", "RoutingCandidate", "bucket_of",
           "reprice"]

# (label, inclusive upper bound of input tokens)
BUCKETS: tuple[tuple[str, float], ...] = (("up to 1k", 1_000), ("1k-10k", 10_000), ("over 10k", math.inf))
_BATCH = 2000


def bucket_of(input_tokens: int) -> str:
    return next(label for label, top in BUCKETS if input_tokens <= top)


def _json_path(attribute: str) -> str:
    return '$."' + attribute.replace('"', '\\"') + '"'


@dataclass
class RepricedRun:
    run_id: str
    name: str | None
    project: str | None
    models: list[str]
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    actual_usd: float = 0.0
    actual_unpriced: int = 0  # calls with no actual price
    repriced_usd: float = 0.0
    repriced_unpriced: int = 0  # calls that cannot be repriced (no usage recorded)

    @property
    def comparable(self) -> bool:
        return self.actual_unpriced == 0 and self.repriced_unpriced == 0

    @property
    def difference_usd(self) -> float | None:
        """Repriced minus actual (negative: the target is cheaper); None when either side is incomplete."""
        return self.repriced_usd - self.actual_usd if self.comparable else None

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "name": self.name, "project": self.project, "models": self.models,
                "llm_calls": self.llm_calls, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "actual_usd": self.actual_usd,
                "actual_unpriced_calls": self.actual_unpriced, "repriced_usd": self.repriced_usd,
                "repriced_unpriced_calls": self.repriced_unpriced, "difference_usd": self.difference_usd}


@dataclass(frozen=True)
class RoutingCandidate:
    run_id: str
    name: str | None
    models: list[str]
    llm_calls: int
    tokens: int
    actual_usd: float
    repriced_usd: float

    @property
    def saving_usd(self) -> float:
        return self.actual_usd - self.repriced_usd

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "name": self.name, "models": self.models, "llm_calls": self.llm_calls,
                "tokens": self.tokens, "actual_usd": self.actual_usd, "repriced_usd": self.repriced_usd,
                "saving_usd": self.saving_usd}


@dataclass(frozen=True)
class OutputStats:
    model: str
    bucket: str
    calls: int
    mean: float
    p50: int
    p90: int
    max: int

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "bucket": self.bucket, "calls": self.calls, "mean_output_tokens": self.mean,
                "p50_output_tokens": self.p50, "p90_output_tokens": self.p90, "max_output_tokens": self.max}


@dataclass
class ClassTotal:
    """One token class over the repriced calls: how much was used and what it cost on the target.

    ``units`` is tokens for the token classes, calls for ``requests`` and seconds
    for ``seconds``. ``charged_as`` names the class whose price the target
    charged these tokens at: their dollars are in that class's, and so are their
    tokens (reasoning billed as output counts in the output row too), so every
    priced row's units times the target's rate is its dollars; ``missing_calls``
    counts calls that used the class on a target with no price for it, which
    are therefore not repriced at all.
    """

    name: str
    units: float = 0
    usd: float = 0.0
    charged_as: str | None = None
    missing_calls: int = 0

    @property
    def label(self) -> str:
        return CLASS_LABELS[self.name]

    def as_dict(self) -> dict[str, Any]:
        return {"class": self.name, "units": self.units, "usd": self.usd, "charged_as": self.charged_as,
                "missing_calls": self.missing_calls}


@dataclass
class RepriceResult:
    model: str
    provider: str | None
    tier: str | None
    token_ratio: float
    runs: list[RepricedRun] = field(default_factory=list)  # biggest actual cost first
    routing: list[RoutingCandidate] = field(default_factory=list)  # biggest saving first
    verbosity: list[OutputStats] = field(default_factory=list)
    calls: int = 0
    tier_note: str | None = None  # set when the tier had no price of its own for the target
    by_class: dict[str, ClassTotal] = field(default_factory=dict)  # CLASSES order; only classes that occur

    @property
    def missing_classes(self) -> list[ClassTotal]:
        """Classes the runs used that the target has no price for (their calls are not repriced)."""
        return [c for c in self.by_class.values() if c.missing_calls]

    @property
    def actual_usd(self) -> float:
        return sum(r.actual_usd for r in self.runs)

    @property
    def repriced_usd(self) -> float:
        return sum(r.repriced_usd for r in self.runs)

    @property
    def actual_unpriced(self) -> int:
        return sum(r.actual_unpriced for r in self.runs)

    @property
    def repriced_unpriced(self) -> int:
        return sum(r.repriced_unpriced for r in self.runs)

    @property
    def comparable_actual_usd(self) -> float:
        return sum(r.actual_usd for r in self.runs if r.comparable)

    @property
    def comparable_repriced_usd(self) -> float:
        return sum(r.repriced_usd for r in self.runs if r.comparable)

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": {"model": self.model, "provider": self.provider, "tier": self.tier,
                       "token_ratio": self.token_ratio},
            "tier_note": self.tier_note,
            "calls": self.calls,
            "total": {"runs": len(self.runs), "actual_usd": self.actual_usd,
                      "actual_unpriced_calls": self.actual_unpriced, "repriced_usd": self.repriced_usd,
                      "repriced_unpriced_calls": self.repriced_unpriced,
                      "comparable_runs": sum(1 for r in self.runs if r.comparable),
                      "comparable_actual_usd": self.comparable_actual_usd,
                      "comparable_repriced_usd": self.comparable_repriced_usd},
            "runs": [r.as_dict() for r in self.runs],
            "routing": [c.as_dict() for c in self.routing],
            "verbosity": [v.as_dict() for v in self.verbosity],
            "by_class": [c.as_dict() for c in self.by_class.values()],
        }


def _nearest_rank(sorted_values: list[int], q: float) -> int:
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def _scaled(value: int | None, ratio: float) -> int:
    return 0 if not value else int(round(value * ratio))


def _add_classes(classes: dict[str, ClassTotal], usd: dict[str, float], charged_as: dict[str, str],
                 tokens: dict[str, int], duration_s: float) -> None:
    for name in TOKEN_CLASSES:
        classes[name].units += tokens[name]
    if usd.get("requests"):
        classes["requests"].units += 1
    if usd.get("seconds"):
        classes["seconds"].units += duration_s
    for name, value in usd.items():
        if name in classes:
            classes[name].usd += value
    for name, parent in charged_as.items():
        classes[name].charged_as = parent
        classes[parent].units += tokens[name]  # billed in the parent's row: its tokens x rate = its dollars


def reprice(store: Store, *, model: str, provider: str | None = None, tier: str | None = None,
            token_ratio: float = 1.0, since: datetime | None = None, until: datetime | None = None,
            project: str | None = None, run_ids: Sequence[str] | None = None,
            pricer: Pricer | None = None, small_calls: int = 3,
            small_tokens: int = 20_000, frontier_ratio: float = 4.0,
            progress: Callable[[int, int], None] | None = None) -> RepriceResult:
    """Reprice the LLM calls of runs that started in [since, until) on ``model``.

    ``run_ids`` (exact ids) limits the scan to those runs, for "what would this
    run cost on another model?"; the time and project filters still apply.
    ``progress(done, total)`` is called as calls are scanned. Raises ValueError for
    a target model with no price or a token ratio that is not a positive number.
    """
    if not (isinstance(token_ratio, (int, float)) and math.isfinite(token_ratio) and token_ratio > 0):
        raise ValueError(f"token ratio must be a positive number, got {token_ratio!r}")
    pricer = pricer or default_pricer()
    # duration_s: a model priced per second (a local one) has a price too.
    probe = pricer.price(TokenUsage(1_000, 1_000), model=model, provider=provider, service_tier=tier,
                         duration_s=1.0)
    if probe.total_usd is None:
        raise ValueError(f"no price known for model {model!r}" + (f" of provider {provider!r}" if provider else "")
                         + " (list the models that have a price with `runtrace prices list PATTERN`, or add it to a prices file)")
    result = RepriceResult(model=model, provider=provider, tier=tier, token_ratio=float(token_ratio))
    if probe.tier_matched is False:
        result.tier_note = (f"{model} has no {tier!r} tier price of its own: priced at the standard price"
                            f" ({probe.price_table})")
    where = ["s.kind = 'llm'", "s.counted = 1", "s.run_id IS NOT NULL"]  # counted: store/innermost.py
    # The one run filter (store/filters.py), qualified: spans has columns of the same names.
    runs_where, params = RunFilter(project=project, since_ns=None if since is None else to_ns(since),
                                   until_ns=None if until is None else to_ns(until)).clauses("runs")
    where.extend(runs_where)
    if run_ids is not None:
        if isinstance(run_ids, str):
            raise TypeError("run_ids must be a sequence of run ids, not one string")
        # One JSON parameter rather than one placeholder per id: no limit on how many.
        where.append("s.run_id IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(list(run_ids)))
    clause = " AND ".join(where)
    total = int(store.execute(f"SELECT count(*) FROM spans s JOIN runs ON runs.id = s.run_id WHERE {clause}",
                              params)[0][0])
    cursor = store.reader().execute(
        "SELECT s.run_id, runs.name, runs.project, s.model, s.input_tokens, s.output_tokens, "
        "s.cached_input_tokens, s.reasoning_tokens, s.cost_usd, s.start_ns, s.end_ns, "
        "json_extract(s.attributes, ?) AS source, json_extract(s.attributes, ?) AS cw_creation, "
        "json_extract(s.attributes, ?) AS cw_write "
        f"FROM spans s JOIN runs ON runs.id = s.run_id WHERE {clause} ORDER BY s.run_id, s.start_ns",
        [_json_path(semconv.COST_SOURCE), _json_path(semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS),
         _json_path(semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS), *params])
    runs: dict[str, RepricedRun] = {}
    classes = {name: ClassTotal(name) for name in CLASSES}
    outputs: dict[tuple[str, str], list[int]] = {}
    done = 0
    if progress is not None:
        progress(0, total)
    while rows := cursor.fetchmany(_BATCH):
        for r in rows:
            run = runs.get(r["run_id"])
            if run is None:
                run = runs[r["run_id"]] = RepricedRun(r["run_id"], r["name"], r["project"], [])
            recorded_model = r["model"] or "(unknown)"
            if recorded_model not in run.models:
                run.models.append(recorded_model)
            run.llm_calls += 1
            inp, out = r["input_tokens"], r["output_tokens"]
            run.input_tokens += inp or 0
            run.output_tokens += out or 0
            if r["cost_usd"] is None or r["source"] == semconv.SOURCE_UNKNOWN:
                run.actual_unpriced += 1
            else:
                run.actual_usd += r["cost_usd"]
            if r["source"] == semconv.SOURCE_NOT_BILLED:
                pass  # refused by the provider (4xx/5xx): not billed on any model
            elif inp is None or out is None:
                run.repriced_unpriced += 1
            else:
                cached = min(_scaled(r["cached_input_tokens"], token_ratio), _scaled(inp, token_ratio))
                usage = TokenUsage(
                    input_tokens=_scaled(inp, token_ratio), output_tokens=_scaled(out, token_ratio),
                    cache_read_tokens=cached,
                    cache_write_tokens=_scaled(r["cw_creation"] if r["cw_creation"] is not None else r["cw_write"],
                                               token_ratio),
                    reasoning_tokens=min(_scaled(r["reasoning_tokens"], token_ratio), _scaled(out, token_ratio)))
                duration_s = max(0, r["end_ns"] - r["start_ns"]) / 1e9
                parts = price_parts(pricer, usage, model=model, provider=provider, service_tier=tier,
                                    when=from_ns(r["start_ns"]),
                                    duration_s=duration_s)
                for name in parts.missing:
                    classes[name].missing_calls += 1
                if parts.total_usd is None:
                    run.repriced_unpriced += 1
                else:
                    run.repriced_usd += parts.total_usd
                    _add_classes(classes, parts.usd, parts.charged_as, split_tokens(usage), duration_s)
                outputs.setdefault((recorded_model, bucket_of(inp)), []).append(out)
            done += 1
        if progress is not None:
            progress(done, total)
    result.calls = done
    result.by_class = {name: c for name, c in classes.items() if c.units or c.usd or c.missing_calls}
    result.runs = sorted(runs.values(), key=lambda r: (-r.actual_usd, r.run_id))
    for run in result.runs:
        tokens = run.input_tokens + run.output_tokens
        if (run.comparable and run.llm_calls <= small_calls and tokens <= small_tokens and run.actual_usd > 0
                and run.actual_usd >= frontier_ratio * run.repriced_usd):
            result.routing.append(RoutingCandidate(run.run_id, run.name, list(run.models), run.llm_calls, tokens,
                                                   run.actual_usd, run.repriced_usd))
    result.routing.sort(key=lambda c: (-c.saving_usd, c.run_id))
    order = {label: i for i, (label, _top) in enumerate(BUCKETS)}
    for (recorded_model, bucket), values in sorted(outputs.items(), key=lambda kv: (kv[0][0], order[kv[0][1]])):
        values.sort()
        result.verbosity.append(OutputStats(recorded_model, bucket, len(values), sum(values) / len(values),
                                            _nearest_rank(values, 0.5), _nearest_rank(values, 0.9), values[-1]))
    return result
