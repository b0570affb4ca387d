"""The weekly review as Markdown (to paste into a chat or a mail) or one self-contained HTML page.

Both come from one neutral outline (headings, paragraphs, tables, lists of text
and links) built by :func:`outline`, so the two formats always say the same.
Every value that came from a span (names, projects, owners, reasons) is
escaped for the format: Markdown's table and link characters, HTML's markup.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime

from .display import money, tokens
from .report import ReportRow
from .review import FlaggedRun, Review
from .semconv import OUTCOME_ABANDONED, OUTCOME_REJECTED

__all__ = ["Link", "outline", "render_html", "render_markdown"]

DASH = "\u2014"
NONE_LABEL = "(none)"


@dataclass(frozen=True)
class Link:
    text: str
    url: str


Inline = str | Link
Cell = tuple[Inline, ...]


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    parts: Cell


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    numeric: tuple[bool, ...]  # right-aligned columns


@dataclass(frozen=True)
class Items:
    items: tuple[Cell, ...]


Block = Heading | Paragraph | Table | Items


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def _share(part: int, whole: int) -> str:
    return DASH if not whole else f"{100 * part / whole:.1f}%"


def _change(now: float | None, before: float | None) -> str:
    if now is None or before is None:
        return DASH
    if before == 0:
        return DASH if now == 0 else "new"
    return f"{100 * (now - before) / before:+.1f}%"


def _per_accepted(row: ReportRow | None) -> str:
    return DASH if row is None or row.cost_per_accepted_run is None else money(row.cost_per_accepted_run)


def _length(review: Review) -> str:
    # to the second: `--since 7d` is read a few microseconds before the review takes "now" as its end
    seconds = round((review.until - review.since).total_seconds())
    if seconds % 86_400 == 0:
        days = int(seconds // 86_400)
        return f"{days} day{'s' if days != 1 else ''}"
    hours = seconds / 3600
    return f"{hours:g} hours"


def _group_table(label: str, pairs: list[tuple[ReportRow, ReportRow | None]]) -> Table:
    rows = []
    for now, before in pairs:
        rows.append(((now.group or NONE_LABEL,), (f"{now.runs:,}",), (f"{now.accepted:,}",),
                     (_share(now.outcomes[OUTCOME_REJECTED], now.runs),),
                     (_share(now.outcomes[OUTCOME_ABANDONED], now.runs),),
                     (money(now.cost_usd) + (" +?" if now.unpriced_calls else ""),), (_per_accepted(now),),
                     (_per_accepted(before),),
                     (_change(now.cost_per_accepted_run, before.cost_per_accepted_run if before else None),)))
    return Table((label, "runs", "accepted", "rejected", "abandoned", "cost", "per accepted run", "previous",
                  "change"), tuple(rows), (False, *([True] * 8)))


def _run_name(review: Review, run: FlaggedRun) -> Link:
    return Link(run.name or run.id[:12], review.run_url(run.id))


def outline(review: Review) -> list[Block]:
    """What the review says, in order, independent of the format."""
    t, p = review.total, review.previous_total
    blocks: list[Block] = [Heading(1, f"runtrace review: {_when(review.since)} to {_when(review.until)} UTC")]
    summary = (f"{t.runs:,} runs, {t.accepted:,} accepted, cost {money(t.cost_usd)}"
               + (f" (+ {t.unpriced_calls:,} unpriced calls)" if t.unpriced_calls else "")
               + f", {_per_accepted(t)} per accepted run"
               + f" (the previous {_length(review)}: {_per_accepted(p)}, {_change(t.cost_per_accepted_run, p.cost_per_accepted_run)})."
               + f" Rejected {_share(t.outcomes[OUTCOME_REJECTED], t.runs)},"
               + f" abandoned {_share(t.outcomes[OUTCOME_ABANDONED], t.runs)} of runs.")
    blocks.append(Paragraph((summary,)))
    blocks.append(Paragraph((f"Cost per accepted run is all of a group's spend, wasted runs included, divided by "
                             f"its accepted runs. The previous period is {_when(review.previous_since)} to "
                             f"{_when(review.since)} UTC.",)))
    blocks.append(Heading(2, "Cost per accepted run by project"))
    blocks.append(_group_table("project", review.projects) if review.projects else Paragraph(("No runs.",)))
    blocks.append(Heading(2, "Cost per accepted run by owner"))
    blocks.append(_group_table("owner", review.owners) if review.owners else Paragraph(("No runs.",)))
    blocks.append(Heading(2, "The dearest rejected runs"))
    if review.dearest_rejected:
        blocks.append(Table(("run", "project", "owner", "cost", "reason"), tuple(
            ((_run_name(review, r),), (r.project or DASH,), (r.owner or DASH,), (money(r.cost_usd),),
             (r.reason or DASH,)) for r in review.dearest_rejected), (False, False, False, True, False)))
    else:
        blocks.append(Paragraph(("No run was rejected.",)))
    blocks.append(Heading(2, "Loops and repeated reads"))
    waste: list[Cell] = []
    if review.loop_runs:
        named: list[Inline] = [f"{review.loop_runs:,} run{'s' if review.loop_runs != 1 else ''} looped, "
                               f"costing {money(review.loop_cost_usd)}: "]
        for i, run in enumerate(review.loops):
            named += [", " if i else "", _run_name(review, run), f" ({money(run.cost_usd)})"]
        if review.loop_runs > len(review.loops):
            named.append(f" and {review.loop_runs - len(review.loops):,} more")
        waste.append(tuple(named))
    else:
        waste.append(("No run looped.",))
    if review.reread_runs:
        waste.append((f"{review.repeated_reads:,} repeated reads ({tokens(review.repeated_read_tokens)} tokens read "
                      f"again) in {review.reread_runs:,} run{'s' if review.reread_runs != 1 else ''} that cost "
                      f"{money(review.reread_cost_usd)}.",))
    else:
        waste.append(("No tool read repeated an earlier one.",))
    blocks.append(Items(tuple(waste)))
    blocks.append(Heading(2, "Small work on expensive models"))
    target = review.small_work_model
    if review.small_work_note:
        blocks.append(Paragraph((f"Not computed: {review.small_work_note}.",)))
    else:
        blocks.append(Paragraph((
            f"Runs of at most {review.small_calls} LLM calls and {review.small_tokens:,} tokens that cost at least "
            f"{review.frontier_ratio:g}x what {target} would (the What-if page's routing view, ",
            Link("open it", f"{review.base_url}/whatif"), ")."),))
        if review.small_work:
            rows = [((s.models,), (f"{s.runs:,}",), (money(s.actual_usd),), (money(s.repriced_usd),),
                     (money(s.saving_usd),)) for s in review.small_work]
            rows.append((("total",), (f"{sum(s.runs for s in review.small_work):,}",),
                         (money(sum(s.actual_usd for s in review.small_work)),),
                         (money(sum(s.repriced_usd for s in review.small_work)),),
                         (money(sum(s.saving_usd for s in review.small_work)),)))
            blocks.append(Table(("models", "runs", "cost", f"on {target}", "saving"), tuple(rows),
                                (False, True, True, True, True)))
        else:
            blocks.append(Paragraph(("None in this period.",)))
    return blocks


# --- Markdown ----------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|<>~])")  # what could start markup inside a line or a table cell


def _md_text(text: str) -> str:
    """Plain text in Markdown: one line, every character that could start markup backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", re.sub(r"\s+", " ", text))


def _md_inline(parts: Cell) -> str:
    out = []
    for part in parts:
        if isinstance(part, Link):
            url = part.url.replace("(", "%28").replace(")", "%29").replace(" ", "%20")
            out.append(f"[{_md_text(part.text)}]({url})")
        else:
            out.append(_md_text(part))
    return "".join(out)


def render_markdown(review: Review) -> str:
    lines: list[str] = []
    for block in outline(review):
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + _md_text(block.text), ""]
        elif isinstance(block, Paragraph):
            lines += [_md_inline(block.parts), ""]
        elif isinstance(block, Items):
            lines += [f"- {_md_inline(item)}" for item in block.items] + [""]
        else:
            lines.append("| " + " | ".join(_md_text(h) for h in block.header) + " |")
            lines.append("|" + "|".join("---:" if n else "---" for n in block.numeric) + "|")
            lines += ["| " + " | ".join(_md_inline(c) for c in row) + " |" for row in block.rows]
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


# --- HTML ----------------------------------------------------------------------------

_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d232a; max-width: 60rem;
       margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 1.8rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
th, td { padding: .3rem .5rem; border-bottom: 1px solid #e1e4e8; text-align: left; vertical-align: top; }
th { font-weight: 600; background: #f6f8fa; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
a { color: #0b5cad; }
"""


def _html_inline(parts: Cell) -> str:
    out = []
    for part in parts:
        if isinstance(part, Link):
            out.append(f'<a href="{html.escape(part.url, quote=True)}">{html.escape(part.text)}</a>')
        else:
            out.append(html.escape(part))
    return "".join(out)


def render_html(review: Review) -> str:
    """One page with its style inline: no script, no external asset, safe to mail."""
    body: list[str] = []
    title = ""
    for block in outline(review):
        if isinstance(block, Heading):
            title = title or block.text
            body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_html_inline(block.parts)}</p>")
        elif isinstance(block, Items):
            body.append("<ul>" + "".join(f"<li>{_html_inline(i)}</li>" for i in block.items) + "</ul>")
        else:
            head = "".join(f'<th{" class=num" if n else ""}>{html.escape(h)}</th>'
                           for h, n in zip(block.header, block.numeric, strict=True))
            rows = "".join("<tr>" + "".join(f'<td{" class=num" if n else ""}>{_html_inline(c)}</td>'
                                            for c, n in zip(row, block.numeric, strict=True)) + "</tr>"
                           for row in block.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    return ("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
