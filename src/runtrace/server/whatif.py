"""The What-if page: what the recorded runs would have cost on another model, tier or tokenizer.

The figures are :func:`runtrace.reprice.reprice`'s, the same as ``runtrace
reprice`` prints; this module only reads the form, picks the runs (a project and
a period, or the one run the Run page links from) and lays the result out.

Bad input (a model nobody prices, a token ratio that is not a positive number,
a date that is not a date, a run id that names no run) is said in the page
above the form, which keeps what was typed, so the reader can fix it: never a
500, never a bare error page. Every name that came from a span reaches the page
through Jinja's escaping or ``Markup.format``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..catalog import (
    COMMON_PROVIDERS,
    ModelChoice,
    ProviderChoice,
    model_catalog,
    models_of,
    provider_choices,
)
from ..price_parts import CLASS_LABELS
from ..reprice import BUCKETS, OutputStats, RepricedRun, RepriceResult, reprice
from ..store.db import Store
from ..store.errors import AmbiguousRunIdError
from ..store.queries import resolve_run_id
from ..store.timespec import from_ns
from . import charts, format, pages, reads

__all__ = ["COMMON_PROVIDERS", "TIERS", "ModelChoice", "ProviderChoice", "WhatIfForm", "model_catalog",
           "models_of", "parse_form", "provider_choices", "direction", "signed_money", "signed_percent",
           "verbosity_chart", "whatif_page"]

TIERS = ("default", "flex", "priority", "batch")
DEFAULT_PERIOD = "30d"  # as on the Spend page
ROWS_SHOWN = 50  # per-run rows before "show all"
NAMES_LISTED = 5  # runs named in a note about what was left out; the rest are counted
ROUTING_SHOWN = 20  # routing candidates listed, biggest saving first; the total counts them all
# The routing view: a run of at most SMALL_CALLS LLM calls and SMALL_TOKENS tokens is small work;
# it is listed when it cost at least FRONTIER_RATIO times the target's price (reprice()'s defaults).
SMALL_CALLS, SMALL_TOKENS, FRONTIER_RATIO = 3, 20_000, 4.0
# One-click targets for a first look; each is shown only if the price table knows it.
SUGGESTED = (("openai", "gpt-5-mini"), ("anthropic", "claude-haiku-4-5"), ("google", "gemini-2.5-flash"),
             ("openai", "gpt-4o-mini"))
# One-click targets on another provider's price list ("these runs on Bedrock Claude, on DeepSeek").
SUGGESTED_ELSEWHERE = (("aws", "anthropic.claude-haiku-4-5-20251001-v1:0"),
                       ("aws", "anthropic.claude-sonnet-4-5-20250929-v1:0"),
                       ("deepseek", "deepseek-chat"), ("mistral", "mistral-small-latest"))
_NO_DIFFERENCE_USD = 5e-10  # below a billionth of a dollar a difference is float noise


def _suggested_elsewhere() -> list[ModelChoice]:
    """SUGGESTED_ELSEWHERE, each only if the price table lists it."""
    found: list[ModelChoice] = []
    for provider, model in SUGGESTED_ELSEWHERE:
        choice = next((c for c in models_of(provider) or () if c.model == model), None)
        if choice is not None:
            found.append(choice)
    return found


def suggestions(catalog: dict[str, list[ModelChoice]]) -> list[ModelChoice]:
    known = {c.value: c for choices in catalog.values() for c in choices}
    return [known[f"{p}:{m}"] for p, m in SUGGESTED if f"{p}:{m}" in known]


# --- the form --------------------------------------------------------------------


@dataclass
class WhatIfForm:
    """What the form sent, as typed (it is shown again), and the target it names."""

    pick: str = ""  # "provider:model" from the drop-down
    pick_provider: str = ""  # the provider whose models the drop-down lists ("" = the common three)
    model: str = ""  # a typed model name; wins over the drop-down
    provider: str = ""
    tier: str = "default"
    ratio: str = "1"
    project: str = ""
    period: str = DEFAULT_PERIOD
    since: str = ""
    until: str = ""
    run: str = ""
    all_rows: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def target(self) -> tuple[str, str | None] | None:
        """(model, provider) to reprice on, or None when no model was chosen."""
        if self.model:
            return self.model, self.provider or None
        if self.pick:
            provider, _, model = self.pick.partition(":")
            return model, self.provider or provider or None
        return None

    @property
    def token_ratio(self) -> float | None:
        try:
            value = float(self.ratio)
        except ValueError:
            return None
        return value if math.isfinite(value) and value > 0 else None


WHATIF_PARAMS = ("pick", "pick_provider", "model", "provider", "tier", "ratio", "project", "period", "since", "until", "run", "rows")


def _text(request: Request, name: str, limit: int = 200) -> str:
    return (request.query_params.get(name) or "").strip()[:limit]


def parse_form(request: Request) -> WhatIfForm:
    """Read the query string; every problem is recorded in ``errors``, none raises."""
    form = WhatIfForm(pick=_text(request, "pick"), pick_provider=_text(request, "pick_provider"),
                      model=_text(request, "model"),
                      provider=_text(request, "provider"), tier=_text(request, "tier") or "default",
                      ratio=_text(request, "ratio") or "1", project=_text(request, "project"),
                      period=_text(request, "period") or DEFAULT_PERIOD, since=_text(request, "since"),
                      until=_text(request, "until"), run=_text(request, "run"),
                      all_rows=_text(request, "rows") == "all")
    try:
        pages.check_params(request, WHATIF_PARAMS)
    except HTTPException as exc:
        form.errors.append(str(exc.detail))
    if form.pick and ":" not in form.pick:
        form.errors.append(f"pick={form.pick!r} is not a provider:model pair from the list")
        form.pick = ""
    if form.pick and not form.pick_provider:
        chosen = form.pick.partition(":")[0]
        if chosen not in COMMON_PROVIDERS:
            form.pick_provider = chosen  # a quick pick on another provider: list that provider's models
    if form.tier not in TIERS:
        form.errors.append(f"tier {form.tier!r} is not one of {', '.join(TIERS)}")
    if form.token_ratio is None:
        form.errors.append(f"token ratio {form.ratio!r} is not a positive number: 1 means the target's "
                           "tokenizer counts the same tokens, 1.2 means 20% more")
    return form


# --- the figures the page shows --------------------------------------------------


@dataclass
class Summary:
    """The headline: actual against what-if over the runs priced on both sides, and what was left out."""

    runs: int
    calls: int
    comparable_runs: int
    actual_usd: float
    whatif_usd: float
    not_repriced: list[RepricedRun]  # runs with calls whose tokens are unknown
    not_repriced_calls: int
    actual_unknown: list[RepricedRun]  # runs repriced in full whose actual price is partly unknown
    actual_unknown_calls: int

    @property
    def difference_usd(self) -> float:
        return self.whatif_usd - self.actual_usd

    @property
    def difference_pct(self) -> float | None:
        return 100 * self.difference_usd / self.actual_usd if self.actual_usd else None


def summarise(result: RepriceResult) -> Summary:
    not_repriced = [r for r in result.runs if r.repriced_unpriced]
    actual_unknown = [r for r in result.runs if r.actual_unpriced and not r.repriced_unpriced]
    return Summary(runs=len(result.runs), calls=result.calls,
                   comparable_runs=sum(1 for r in result.runs if r.comparable),
                   actual_usd=result.comparable_actual_usd, whatif_usd=result.comparable_repriced_usd,
                   not_repriced=not_repriced, not_repriced_calls=sum(r.repriced_unpriced for r in not_repriced),
                   actual_unknown=actual_unknown,
                   actual_unknown_calls=sum(r.actual_unpriced for r in actual_unknown))


def signed_money(value: float | None) -> str:
    """'+$0.0012' / '-$0.3835': a difference reads with its sign in front of the dollar."""
    if value is None:
        return format.DASH
    if abs(value) < _NO_DIFFERENCE_USD:
        return "$0.00"
    return ("-" if value < 0 else "+") + format.money(abs(value))


def signed_percent(part: float | None, whole: float | None) -> str:
    if part is None or not whole:
        return format.DASH
    pct = 100 * part / whole
    return "0.0%" if abs(pct) < 0.05 else f"{pct:+.1f}%"


def direction(value: float | None) -> str:
    """The CSS class of a difference: green when the target is cheaper, red when dearer."""
    if value is None or abs(value) < _NO_DIFFERENCE_USD:
        return ""
    return "cheaper" if value < 0 else "dearer"


_BAR, _BAR_GAP, _GROUP_GAP = 13, 3, 12
_V_LEFT, _V_RIGHT, _V_TOP, _V_BOTTOM = 200, 56, 8, 26
VERBOSITY_WIDTH = 760
_NAME_CHARS = 30


def verbosity_chart(stats: Sequence[OutputStats], *, width: int = VERBOSITY_WIDTH) -> Markup:
    """Mean output tokens per call, one bar per prompt-size bucket, grouped by recorded model.

    Horizontal, so a long model name has room at the left; each bucket keeps its
    colour across models (``s0`` .. ``s2``, the legend beside it), and hovering a
    bar gives its calls, median, p90 and maximum.
    """
    if not stats:
        return Markup('<p class="empty">No calls with token counts to plot.</p>')
    colour = {label: i for i, (label, _top) in enumerate(BUCKETS)}
    models: list[str] = []
    for s in stats:
        if s.model not in models:
            models.append(s.model)
    rows = {m: [s for s in stats if s.model == m] for m in models}
    height = _V_TOP + _V_BOTTOM + sum(len(r) * (_BAR + _BAR_GAP) - _BAR_GAP for r in rows.values()) \
        + _GROUP_GAP * (len(models) - 1)
    ticks = charts.nice_ticks(max(s.mean for s in stats))
    x_max = ticks[-1] or 1.0
    plot_w = width - _V_LEFT - _V_RIGHT

    def sx(value: float) -> float:
        return _V_LEFT + plot_w * value / x_max

    body = [Markup("")]
    for tick in ticks:
        body.append(Markup('<line class="grid" x1="{:.1f}" x2="{:.1f}" y1="{}" y2="{}"/>'
                           '<text class="xlabel" x="{:.1f}" y="{}">{}</text>').format(
            sx(tick), sx(tick), _V_TOP, height - _V_BOTTOM + 4, sx(tick), height - 8, format.tokens(tick)))
    y = float(_V_TOP)
    for model in models:
        group = rows[model]
        group_h = len(group) * (_BAR + _BAR_GAP) - _BAR_GAP
        shown = model if len(model) <= _NAME_CHARS else model[:_NAME_CHARS - 1] + "\u2026"
        body.append(Markup('<text class="ylabel" x="{}" y="{:.1f}"><title>{}</title>{}</text>').format(
            _V_LEFT - 8, y + group_h / 2 + 4, model, shown))
        for s in group:
            body.append(Markup(
                '<rect class="bar s{}" x="{}" y="{:.1f}" width="{:.1f}" height="{}">'
                '<title>{}, prompts {}: {} call{}, mean {} output tokens (median {}, p90 {}, max {})</title></rect>'
                '<text class="barlabel" x="{:.1f}" y="{:.1f}">{}</text>').format(
                colour[s.bucket], _V_LEFT, y, max(1.0, sx(s.mean) - _V_LEFT), _BAR, model, s.bucket,
                format.tokens(s.calls), "" if s.calls == 1 else "s", format.tokens(round(s.mean)),
                format.tokens(s.p50), format.tokens(s.p90), format.tokens(s.max),
                sx(s.mean) + 4, y + _BAR - 2.5, format.tokens(round(s.mean))))
            y += _BAR + _BAR_GAP
        y += _GROUP_GAP - _BAR_GAP
    return Markup('<svg class="chart verbosity" viewBox="0 0 {} {}" role="img" aria-label="{}" '
                  'preserveAspectRatio="xMidYMid meet">{}</svg>').format(
        width, height, "mean output tokens per call by prompt size, per model", Markup("").join(body))


# --- the page --------------------------------------------------------------------


@dataclass
class _Loaded:
    projects: list[str]
    run_id: str | None = None
    run_name: str | None = None
    result: RepriceResult | None = None
    status: int = 200


async def whatif_page(request: Request) -> Response:
    form = parse_form(request)
    store: Store = request.app.state.store
    since_ns = until_ns = None
    if not form.run:
        try:
            form.period, since_ns, until_ns = pages.time_range(request, default_period=DEFAULT_PERIOD)
        except HTTPException as exc:
            form.errors.append(str(exc.detail))
    catalog = await run_in_threadpool(model_catalog)
    listed = catalog
    if form.pick_provider:
        models = await run_in_threadpool(models_of, form.pick_provider)
        if models is None:
            form.errors.append(f"provider {form.pick_provider!r} is not in genai-prices' price table "
                               "(choose one from the list)")
        else:
            listed = {form.pick_provider: models}
    elsewhere = await run_in_threadpool(_suggested_elsewhere)

    def load() -> _Loaded:
        loaded = _Loaded(projects=reads.filter_options(store)["project"])
        if form.run:
            try:
                loaded.run_id = resolve_run_id(store, form.run)
            except AmbiguousRunIdError as exc:
                form.errors.append(str(exc))
                return loaded
            if loaded.run_id is None:
                form.errors.append(f"no run {form.run!r} in this store")
                loaded.status = 404
                return loaded
            loaded.run_name = store.execute("SELECT name FROM runs WHERE id = ?", (loaded.run_id,))[0][0]
        target, ratio = form.target, form.token_ratio
        if target is None or form.errors or ratio is None:
            return loaded
        model, provider = target
        try:
            loaded.result = reprice(
                store, model=model, provider=provider, tier=None if form.tier == "default" else form.tier,
                token_ratio=ratio, project=None if loaded.run_id else form.project or None,
                since=from_ns(since_ns), until=from_ns(until_ns),
                run_ids=[loaded.run_id] if loaded.run_id else None, small_calls=SMALL_CALLS,
                small_tokens=SMALL_TOKENS, frontier_ratio=FRONTIER_RATIO)
        except ValueError as exc:
            form.errors.append(str(exc))
        return loaded

    loaded = await run_in_threadpool(load)
    status = loaded.status if loaded.status != 200 else (400 if form.errors else 200)
    result = loaded.result
    summary = summarise(result) if result is not None else None
    runs = []
    if result is not None:
        runs = result.runs if form.all_rows else result.runs[:ROWS_SHOWN]
    return pages.render(
        request, "whatif.html", status_code=status, form=form, catalog=listed, suggested=suggestions(catalog),
        elsewhere=elsewhere, providers=provider_choices(), class_labels=CLASS_LABELS,
        tiers=TIERS, projects=loaded.projects, run_id=loaded.run_id, run_name=loaded.run_name, result=result,
        summary=summary, runs=runs, small_calls=SMALL_CALLS, small_tokens=SMALL_TOKENS,
        frontier_ratio=FRONTIER_RATIO, names_listed=NAMES_LISTED,
        routing_shown=ROUTING_SHOWN,
        verbosity_svg=verbosity_chart(result.verbosity) if result is not None else None,
        buckets_used=[(i, label) for i, (label, _top) in enumerate(BUCKETS)
                      if result is not None and any(v.bucket == label for v in result.verbosity)], signed=signed_money, signed_percent=signed_percent,
        direction=direction,
        url=lambda **kw: pages.url_with(request, **kw))
