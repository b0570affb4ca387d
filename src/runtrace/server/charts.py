"""Plots as inline SVG, drawn on the server: no JavaScript library, nothing fetched.

Every label that came from a user (a project, a model name) passes through
``Markup.format``, which escapes it, so a chart cannot carry markup into the
page. Colours are CSS classes (``s0`` .. ``s7``), so the light and dark themes
restyle the charts with the rest of the page; hovering a bar or point shows its
exact figure through the SVG ``<title>`` element.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from .format import money

__all__ = ["PALETTE_SIZE", "Series", "cost_curve", "nice_ticks", "stacked_bars", "time_axis"]

PALETTE_SIZE = 8
_H = 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 16, 14, 30
CURVEwIDTH = 760  # about the width the run page gives the curve, so 11px text stays 11px
BARSwIDTH = 1240
_MAX_DOTS = 300  # a point per priced call, up to this many calls
_BUDGET_SHOWN_UP_TO = 2.5  # a budget further above the spend than this would flatten the curve


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: tuple[float, ...]


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Round gridline values from 0 to at least ``top`` (1-2-5 steps)."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [0.0]
    while ticks[-1] < top - 1e-12:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


_UNITS = ((2.0, "ms", 1000.0), (120.0, "s", 1.0), (7200.0, "min", 1 / 60), (math.inf, "h", 1 / 3600))


def time_axis(total_s: float, count: int = 4) -> list[tuple[float, str]]:
    """Ticks for a time axis from 0 to ``total_s`` seconds: (percent along the axis, label).

    The unit follows the length (ms below 2 s, s below 2 min, min below 2 h,
    then h) and the steps are round numbers in it, so a 12 ms run reads
    "0 ms, 5 ms, 10 ms" rather than "0 s, 0 s, 0.01 s".
    """
    total_s = max(total_s, 0.0) if math.isfinite(total_s) else 0.0
    _limit, unit, factor = next(u for u in _UNITS if total_s < u[0])
    top = total_s * factor
    if top <= 0:
        return [(0.0, f"0 {unit}")]
    ticks = [t for t in nice_ticks(top, count) if t <= top * (1 + 1e-9)]
    return [(round(100.0 * t / top, 3), f"{_fmt_num(t)} {unit}") for t in ticks]


def _fmt_num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"


def _y_axis(ticks: Sequence[float], scale: Callable[[float], float], fmt: Callable[[float], str],
            width: int) -> Markup:
    parts = [Markup("")]
    for tick in ticks:
        y = scale(tick)
        parts.append(Markup('<line class="grid" x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}"/>'
                            '<text class="ylabel" x="{}" y="{:.1f}">{}</text>').format(
            _LEFT, width - _RIGHT, y, y, _LEFT - 8, y + 4, fmt(tick)))
    return Markup("").join(parts)


def _svg(body: Markup, label: str, width: int, kind: str) -> Markup:
    """The chart's ``svg``; ``kind`` (curve, bars) lets the stylesheet enlarge a wide chart's text on a narrow window."""
    return Markup('<svg class="chart" data-kind="{}" viewBox="0 0 {} {}" role="img" aria-label="{}" '
                  'preserveAspectRatio="xMidYMid meet">{}</svg>').format(kind, width, _H, label, body)


def cost_curve(points: Sequence[tuple[float, float]], *, duration_s: float,
               budget_usd: float | None = None, width: int = CURVEwIDTH) -> Markup:
    """The run's cumulative cost against seconds since it started, as a step line.

    ``points`` are (seconds since start, cumulative USD) at the end of each
    priced call, in time order. A budget limit, when the run had one, is a
    dashed line so the reader sees how close the run came (unless it is so far
    above the spend that it would flatten the curve; the gauges show it then).
    """
    if not points:
        return Markup('<p class="empty">No priced calls in this run.</p>')
    w = width
    x_max = max(duration_s, points[-1][0], 1e-9)
    spent = points[-1][1]
    if budget_usd is not None and spent > 0 and budget_usd > spent * _BUDGET_SHOWN_UP_TO:
        budget_usd = None
    y_top = max(spent, budget_usd or 0.0)
    ticks = nice_ticks(y_top)
    y_max = ticks[-1] or 1.0

    def sx(x: float) -> float:
        return _LEFT + (w - _LEFT - _RIGHT) * (x / x_max)

    def sy(y: float) -> float:
        return _TOP + (_H - _TOP - _BOTTOM) * (1 - y / y_max)

    level = f"{sy(0):.1f}"  # the step's height so far, as text: each point's x and y are formatted once
    path = [f"M{sx(0):.1f},{level}"]
    for x, y in points:
        across, up = f"{sx(x):.1f}", f"{sy(y):.1f}"
        path.append(f"L{across},{level}L{across},{up}")
        level = up
    path.append(f"L{sx(x_max):.1f},{level}")
    body = [_y_axis(ticks, sy, money, w)]
    if budget_usd is not None:
        body.append(Markup('<line class="budget" x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}"/>'
                           '<text class="budget-label" x="{}" y="{:.1f}">budget {}</text>').format(
            _LEFT, w - _RIGHT, sy(budget_usd), sy(budget_usd), w - _RIGHT - 4, sy(budget_usd) - 5,
            money(budget_usd)))
    body.append(Markup('<path class="line s0" d="{}"/>').format("".join(path)))
    for x, y in points if len(points) <= _MAX_DOTS else ():  # beyond that the dots hide the line and bloat the page
        body.append(Markup('<circle class="dot s0" cx="{:.1f}" cy="{:.1f}" r="3">'
                           '<title>{} at {} s</title></circle>').format(sx(x), sy(y), money(y), _fmt_num(x)))
    for pct, text in time_axis(x_max):
        body.append(Markup('<text class="xlabel" x="{:.1f}" y="{}">{}</text>').format(
            sx(x_max * pct / 100), _H - 8, text))
    return _svg(Markup("").join(body), "cumulative cost of the run over time", w, "curve")


def stacked_bars(labels: Sequence[str], series: Sequence[Series], *,
                 value_format: Callable[[float], str] = money, label: str = "cost over time",
                 width: int = BARSwIDTH) -> Markup:
    """Bars per time bucket, one stacked segment per series (a project, a model ...)."""
    if not labels or not series:
        return Markup('<p class="empty">Nothing to plot for this period.</p>')
    w = width
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    ticks = nice_ticks(max(totals))
    y_max = ticks[-1] or 1.0
    plot_w = w - _LEFT - _RIGHT
    slot = plot_w / len(labels)
    bar_w = max(1.0, slot * 0.72)

    def sy(y: float) -> float:
        return _TOP + (_H - _TOP - _BOTTOM) * (1 - y / y_max)

    body = [_y_axis(ticks, sy, value_format, w)]
    for i, bucket in enumerate(labels):
        x = _LEFT + slot * i + (slot - bar_w) / 2
        base = 0.0
        for k, s in enumerate(series):
            value = s.values[i]
            if value <= 0:
                continue
            top = base + value
            body.append(Markup('<rect class="bar s{}" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}">'
                               '<title>{}: {} on {}</title></rect>').format(
                k % PALETTE_SIZE, x, sy(top), bar_w, max(0.5, sy(base) - sy(top)), s.name,
                value_format(value), bucket))
            base = top
    every = max(1, math.ceil(len(labels) / 8))
    for i in range(0, len(labels), every):
        body.append(Markup('<text class="xlabel" x="{:.1f}" y="{}">{}</text>').format(
            _LEFT + slot * (i + 0.5), _H - 8, labels[i]))
    return _svg(Markup("").join(body), label, w, "bars")
