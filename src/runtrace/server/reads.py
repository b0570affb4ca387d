"""The web UI's reads: the runs page (filters, headline figures, keyset paging), search, spend.

Section-8 run dicts come from :mod:`runtrace.store.queries`; what only the UI
needs is here, as SQL over the ``runs``, ``run_models`` and ``spans`` tables.
Paging is by keyset, never OFFSET: a page is "the next N runs after this
(sort value, id)", which SQLite answers from the ``runs_started`` index in the
same time on page 1 as on page 5,000 of a 100,000-run store.
"""

from __future__ import annotations

import base64
import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .. import semconv
from ..store import search as fts
from ..store.aggregate import NANO
from ..store.db import Store
from ..store.filters import FLAGS as FLAGS  # re-exported: the pages list them
from ..store.filters import RunFilter as RunFilter
from ..store.filters import matching, model_used, started_between
from ..store.model_family import model_family as model_family  # re-exported: tests and pages name it here
from ..store.timespec import iso
from ..totals import CONTRACT_TOTALS, json_totals

__all__ = [
    "FLAGS", "SORTS", "Headline", "RunFilter", "RunsPage", "SearchHit", "SpendChart",
    "RunHits", "SearchFilter", "SearchResults", "filter_options", "headline", "runs_page", "search",
    "search_runs", "spend",
]

# sort name -> (label, SQL expression; never NULL so row-value keyset comparisons hold)
SORTS: dict[str, tuple[str, str]] = {
    "started": ("start", "started_ns"),
    "cost": ("cost", "cost_nusd"),
    "duration": ("duration", "coalesce(ended_ns - started_ns, -1)"),
    "tokens": ("tokens", "(input_tokens + output_tokens)"),
    "llm_calls": ("LLM calls", "llm_calls"),
    "tool_calls": ("tool calls", "tool_calls"),
}
PAGE_SIZE = 50
_MAX_CURSOR = 4096  # characters
_RUN_FIELDS = ", ".join(("id", "name", "project", "owner", "outcome", "stop_reason",
                         *(str(f.column) for f in CONTRACT_TOTALS), "started_ns", "ended_ns"))


# --- headline figures ---------------------------------------------------------------


@dataclass(frozen=True)
class Headline:
    runs: int
    spend_usd: float
    accepted: int
    rejected: int
    abandoned: int
    budget_stops: int
    loops: int
    repeated_reads: int
    unpriced_calls: int

    @property
    def cost_per_accepted_run(self) -> float | None:
        """All spend (wasted runs included) over the runs that were accepted: the unit cost."""
        return self.spend_usd / self.accepted if self.accepted else None

    def share(self, count: int) -> float | None:
        return count / self.runs if self.runs else None


def headline(store: Store, flt: RunFilter) -> Headline:
    where, params = flt.where()
    row = store.execute(
        "SELECT count(*), total(cost_nusd), "
        f"coalesce(sum(outcome = '{semconv.OUTCOME_ACCEPTED}'), 0), "
        f"coalesce(sum(outcome = '{semconv.OUTCOME_REJECTED}'), 0), "
        f"coalesce(sum(outcome = '{semconv.OUTCOME_ABANDONED}'), 0), "
        f"coalesce(sum(outcome = '{semconv.OUTCOME_BUDGET_STOPPED}'), 0), "
        "coalesce(sum(loop_detected), 0), coalesce(sum(repeated_reads), 0), coalesce(sum(unpriced_calls), 0) "
        f"FROM runs{where}", params)[0]
    return Headline(runs=row[0], spend_usd=row[1] / NANO, accepted=row[2], rejected=row[3], abandoned=row[4],
                    budget_stops=row[5], loops=row[6], repeated_reads=row[7], unpriced_calls=row[8])


# --- the runs table, by keyset ------------------------------------------------------


@dataclass(frozen=True)
class RunsPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None  # opaque; pass back as ``after`` for the next page
    models: dict[str, list[str]] = field(default_factory=dict)  # run id -> models it used


def encode_cursor(value: int, run_id: str) -> str:
    raw = json.dumps([value, run_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (sort value, id) a cursor names; ValueError for anything that is not one of ours."""
    shown = repr(cursor) if len(cursor) <= 80 else repr(cursor[:80]) + f"... ({len(cursor):,} characters)"
    if len(cursor) > _MAX_CURSOR:  # ours are a number and a run id: never this long
        raise ValueError(f"bad page cursor {shown}: longer than any page link")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, run_id = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"bad page cursor {shown}") from exc
    if not isinstance(value, int) or isinstance(value, bool) or not isinstance(run_id, str):
        raise ValueError(f"bad page cursor {shown}")
    if not -(2**63) <= value < 2**63:  # SQLite's integers; a bigger one would overflow the query
        raise ValueError(f"bad page cursor {shown}: its position is out of range")
    return value, run_id


def runs_page(store: Store, flt: RunFilter, *, sort: str = "started", descending: bool = True,
              after: str | None = None, limit: int = PAGE_SIZE) -> RunsPage:
    """One page of runs. Ties on the sort value break on id in the opposite direction,
    which is the order of the ``runs_started (started_ns DESC, id)`` index read either way."""
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}; choose one of {', '.join(SORTS)}")
    expr = SORTS[sort][1]
    where, params = flt.where()
    if after is not None:
        value, run_id = decode_cursor(after)
        op, id_op = ("<", ">") if descending else (">", "<")
        where += (" AND " if where else " WHERE ") + f"({expr} {op} ? OR ({expr} = ? AND id {id_op} ?))"
        params += [value, value, run_id]
    direction, id_direction = ("DESC", "ASC") if descending else ("ASC", "DESC")
    rows = store.execute(
        f"SELECT {_RUN_FIELDS}, {expr} AS sort_value FROM runs{where} "
        f"ORDER BY {expr} {direction}, id {id_direction} LIMIT ?", [*params, limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    out = []
    for r in rows:
        started, ended = r["started_ns"], r["ended_ns"]
        out.append({
            "id": r["id"], "name": r["name"], "project": r["project"], "owner": r["owner"],
            "outcome": r["outcome"], "stop_reason": r["stop_reason"], **json_totals(r, CONTRACT_TOTALS),
            "started_at": iso(started), "ended_at": iso(ended),
            "started_ns": started,
            "duration_s": (ended - started) / 1e9 if ended is not None else None,
        })
    models: dict[str, list[str]] = {r["id"]: [] for r in out}
    if out:
        marks = ",".join("?" * len(out))
        for m in store.execute(f"SELECT run_id, model FROM run_models WHERE run_id IN ({marks}) AND model != '' "
                               "ORDER BY run_id, cost_nusd DESC, model", [r["id"] for r in out]):
            models[m["run_id"]].append(m["model"])
    cursor = encode_cursor(rows[-1]["sort_value"], rows[-1]["id"]) if more else None
    return RunsPage(out, cursor, models)


def filter_options(store: Store, cap: int = 500) -> dict[str, list[str]]:
    """Values for the filter drop-downs (each read off an index)."""
    def distinct(sql: str) -> list[str]:
        return [r[0] for r in store.execute(sql, (cap,))]

    return {
        "project": distinct("SELECT DISTINCT project FROM runs WHERE project IS NOT NULL ORDER BY 1 LIMIT ?"),
        "owner": distinct("SELECT DISTINCT owner FROM runs WHERE owner IS NOT NULL ORDER BY 1 LIMIT ?"),
        # from the report rollup (store/rollup.py): a few rows per model and day, not one per run
        "model": distinct("SELECT grp FROM report_rollup WHERE dim = 'model' AND grp != '(none)' "
                          "GROUP BY grp HAVING sum(runs) > 0 ORDER BY 1 LIMIT ?"),
    }


# --- search ---------------------------------------------------------------------

SEARCH_FIELDS: dict[str, str] = {
    "any": "anything",
    "run": "run id",
    "trace": "trace id",
    "name": "span name",
    "tool": "tool",
    "model": "model",
    "attribute": "attribute value",
    "text": "captured text",
}
# which column of the search index (store/search.py) each field reads
_FIELD_COLUMN = {"any": None, "name": "name", "tool": "name", "model": "name", "attribute": "attrs", "text": "text"}
_CONTENT_KEYS = frozenset(fts.CONTENT_KEYS)
_HEX = re.compile(r"^[0-9a-fA-F]{1,32}$")
SEARCH_RUNS_PER_PAGE = 20
SEARCH_HITS_PER_RUN = 5
SEARCH_SCAN = 2_000  # index matches read per page at most (newest first)


@dataclass(frozen=True)
class SearchHit:
    run_id: str | None
    run_name: str | None
    trace_id: str
    span_id: str | None
    span_name: str | None
    matched: str  # what matched: "run id", "tool", "attribute gen_ai.tool.name", ...
    snippet: str


@dataclass(frozen=True)
class SearchFilter:
    """What search results narrow by: the run's project, a model the run used, its outcome, the span's time."""

    project: str | None = None
    model: str | None = None
    outcome: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None

    def where(self) -> tuple[list[str], list[Any]]:
        """The clauses over the search's spans ``s`` and their runs ``r`` (store/filters.py's pieces)."""
        clauses, params = matching((("r.project", self.project), ("r.outcome", self.outcome)))
        if self.model is not None:
            clauses.append(model_used("s.run_id"))
            params.append(self.model)
        window, bounds = started_between(self.since_ns, self.until_ns, column="s.start_ns")
        return clauses + window, params + bounds


@dataclass(frozen=True)
class RunHits:
    """One run of the results: what the run is, and its matching spans (newest first)."""

    run_id: str | None
    name: str | None
    outcome: str | None
    cost_usd: float | None
    started_at: str | None
    hits: list[SearchHit]
    more: bool  # more matching spans of this run than shown


@dataclass(frozen=True)
class SearchResults:
    groups: list[RunHits]
    next_cursor: str | None  # pass back as ``after`` for older matches
    scanned_all: bool  # False when the page stopped at SEARCH_SCAN matches without filling up
    words: list[str] = field(default_factory=list)  # what the index searched for (for highlighting)

    @property
    def hit_count(self) -> int:
        return sum(len(g.hits) for g in self.groups)


def _snippet(text: str, needle: str, width: int = 70) -> str:
    """``text`` cut to ``width`` characters either side of the first match of ``needle`` (or its first word)."""
    lowered = text.lower()
    at = lowered.find(needle.lower())
    length = len(needle)
    if at < 0:
        for word in fts.words(needle):
            at = _word_at(lowered, word)
            if at >= 0:
                length = len(word)
                break
    if at < 0:
        return text[:2 * width] + ("..." if len(text) > 2 * width else "")
    start, end = max(0, at - width), min(len(text), at + length + width)
    return ("..." if start else "") + text[start:end] + ("..." if end < len(text) else "")


def _word_at(lowered: str, word: str) -> int:
    """Where ``word`` starts a word of ``lowered`` (as the index matches it: by prefix), or -1."""
    found = re.search(r"(?<![^\W_])" + re.escape(word.lower()), lowered)
    return found.start() if found else -1


def _plain(text: str) -> str:
    """Lower case without accents, as the index's unicode61 tokenizer compares words."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _has_words(text: str, found: list[str]) -> bool:
    """Whether one value holds every word (so a query's words are not matched across two attributes)."""
    plain = _plain(text)
    return all(_word_at(plain, _plain(w)) >= 0 for w in found)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _attribute_match(attributes: dict[str, Any], needle: str, want: str) -> tuple[str, str] | None:
    """The first attribute value holding every word of ``needle``: (label, snippet)."""
    found = fts.words(needle)
    for key, value in attributes.items():
        is_content = key in _CONTENT_KEYS
        if (want == "text" and not is_content) or (want == "attribute" and is_content):
            continue
        if isinstance(value, (bool, int, float)):
            continue  # numbers are not indexed
        text = _text(value)
        if _has_words(text, found):
            label = "captured text" if is_content else "attribute"
            return f"{label} {key}", _snippet(text, needle)
    return None


def _what_matched(r: Any, needle: str, field: str) -> tuple[str, str] | None:
    """Why the index returned span row ``r``: (label, snippet); None when the field does not hold the words."""
    found = fts.words(needle)
    attributes: dict[str, Any] | None = None
    for label, column in (("tool", "tool_name"), ("model", "model"), ("span name", "name")):
        wanted = field == "any" or (field == "name" and column == "name") or field == column.split("_")[0]
        if wanted and r[column] and _has_words(r[column], found):
            if column == "tool_name":  # show what it was called with, when that was captured
                attributes = json.loads(r["attributes"])
                args = attributes.get(semconv.GEN_AI_TOOL_CALL_ARGUMENTS)
                if args is not None:
                    return label, _snippet(f"{r[column]}({_text(args)})", needle)
            return label, r[column]
    if field in ("tool", "model", "name"):
        return None  # the words were in another part of the name column
    if attributes is None:
        attributes = json.loads(r["attributes"])
    matched = _attribute_match(attributes, needle, field)
    if matched is not None:
        return matched
    if field in ("any", "attribute"):
        if r["status_message"] and _has_words(r["status_message"], found):
            return "status message", _snippet(r["status_message"], needle)
        if r["events"] != "[]" and _has_words(r["events"], found):
            return "event", _snippet(r["events"], needle)
    return None  # the words are in the span, but not together in one value


def _id_hits(store: Store, needle: str, field: str, limit: int) -> list[SearchHit]:
    hits: list[SearchHit] = []
    if field in ("any", "run"):
        for r in store.execute("SELECT id, name FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
                               (needle, needle + "\U0010ffff", limit)):
            hits.append(SearchHit(r["id"], r["name"], "", None, None, "run id", r["id"]))
    if field in ("any", "trace") and _HEX.match(needle):
        for r in store.execute(
                "SELECT s.trace_id, s.run_id, runs.name FROM spans s LEFT JOIN runs ON runs.id = s.run_id "
                "WHERE s.trace_id >= ? AND s.trace_id < ? GROUP BY s.trace_id, s.run_id LIMIT ?",
                (needle.lower(), needle.lower() + "g", limit)):
            hits.append(SearchHit(r["run_id"], r["name"], r["trace_id"], None, None, "trace id", r["trace_id"]))
    return hits


_SPAN_HIT_SQL = (
    f"SELECT {fts.TABLE}.rowid AS rid, s.trace_id, s.span_id, s.run_id, s.name, s.tool_name, s.model, "
    "s.attributes, s.status_message, s.events, r.name AS run_name "
    f"FROM {fts.TABLE} JOIN spans s ON s.rowid = {fts.TABLE}.rowid LEFT JOIN runs r ON r.id = s.run_id "
    f"WHERE {fts.TABLE} MATCH ?"
)


def _span_rows(store: Store, needle: str, field: str, flt: SearchFilter, before: int | None,
               limit: int) -> list[Any]:
    """Spans whose indexed text holds every word of ``needle``, newest stored first."""
    column = _FIELD_COLUMN.get(field)
    expression = fts.match_expression(needle, column)
    if expression is None:
        return []
    clauses, params = flt.where()
    if before is not None:
        clauses.append(f"{fts.TABLE}.rowid < ?")
        params.append(before)
    sql = _SPAN_HIT_SQL + "".join(f" AND {c}" for c in clauses) + f" ORDER BY {fts.TABLE}.rowid DESC LIMIT ?"
    return store.execute(sql, [expression, *params, limit])


def search(store: Store, query: str, *, field: str = "any", limit: int = 100) -> list[SearchHit]:
    """Spans and runs matching ``query``, newest first; every hit names the run it belongs to.

    Ids match exactly or by prefix (from the indexes); names, tools, models,
    attribute values and captured text by words, from the full-text index
    (store/search.py): every word of the query must appear, the last one may be
    the start of a word. FTS syntax in the query is plain text.
    """
    needle = query.strip()
    if not needle:
        return []
    if field not in SEARCH_FIELDS:
        raise ValueError(f"unknown search field {field!r}; choose one of {', '.join(SEARCH_FIELDS)}")
    hits = _id_hits(store, needle, field, limit)
    if (hits and field == "any" and _HEX.match(needle) and len(needle) >= 6) or field in ("run", "trace"):
        # An id-shaped query that names runs or traces is a lookup: answer from the indexes
        # instead of also searching every span's text for the same hex string.
        return hits[:limit]
    seen = {(h.run_id, h.span_id) for h in hits}
    for r in _span_rows(store, needle, field, SearchFilter(), None, limit * 2):
        if len(hits) >= limit:
            break
        matched = _what_matched(r, needle, field)
        if matched is not None and (r["run_id"], r["span_id"]) not in seen:
            seen.add((r["run_id"], r["span_id"]))
            hits.append(SearchHit(r["run_id"], r["run_name"], r["trace_id"], r["span_id"], r["name"], *matched))
    return hits


def search_runs(store: Store, query: str, *, field: str = "any", flt: SearchFilter | None = None,
                after: str | None = None, runs_per_page: int = SEARCH_RUNS_PER_PAGE,
                hits_per_run: int = SEARCH_HITS_PER_RUN) -> SearchResults:
    """The search page: matches grouped by run (name, outcome, cost), newest first, a page of runs at a time.

    ``after`` is the previous page's ``next_cursor``: the page holds matches stored
    before it. A run whose matches straddle two pages appears on both.
    """
    needle = query.strip()
    flt = flt or SearchFilter()
    if field not in SEARCH_FIELDS:
        raise ValueError(f"unknown search field {field!r}; choose one of {', '.join(SEARCH_FIELDS)}")
    before = _search_cursor(after) if after else None
    if not needle:
        return SearchResults([], None, True)
    order: list[str | None] = []
    per_run: dict[str | None, list[SearchHit]] = {}
    more: set[str | None] = set()
    if before is None:  # ids only on the first page; they are not in the index's order
        for hit in _id_hits(store, needle, field, runs_per_page):
            key = hit.run_id or f"trace:{hit.trace_id}"
            if key not in per_run:
                order.append(key)
                per_run[key] = []
            per_run[key].append(hit)
    lookup = bool(order) and field == "any" and _HEX.match(needle) is not None and len(needle) >= 6
    next_cursor: str | None = None
    scanned = 0
    done = lookup or field in ("run", "trace")
    while not done and scanned < SEARCH_SCAN:
        rows = _span_rows(store, needle, field, flt, before, min(500, SEARCH_SCAN - scanned))
        scanned += len(rows)
        for r in rows:
            key = r["run_id"] or f"trace:{r['trace_id']}"
            if key not in per_run:
                if len(order) >= runs_per_page:
                    next_cursor = _encode_search_cursor(r["rid"] + 1)
                    done = True
                    break
                order.append(key)
                per_run[key] = []
            before = r["rid"]
            if len(per_run[key]) >= hits_per_run:
                more.add(key)
                continue
            matched = _what_matched(r, needle, field)
            if matched is not None:
                per_run[key].append(SearchHit(r["run_id"], r["run_name"], r["trace_id"], r["span_id"], r["name"],
                                              *matched))
        if len(rows) < 500 or done:
            break
    scanned_all = done or scanned < SEARCH_SCAN
    if not done and scanned >= SEARCH_SCAN and before is not None:
        next_cursor = _encode_search_cursor(before)
    groups = [g for g in (_run_hits(store, key, per_run[key], key in more) for key in order) if g.hits]
    return SearchResults(groups, next_cursor, scanned_all, fts.words(needle))


def _run_hits(store: Store, key: str | None, hits: list[SearchHit], more: bool) -> RunHits:
    run_id = hits[0].run_id if hits else None
    if run_id is None:
        return RunHits(None, None, None, None, None, hits, more)
    rows = store.execute("SELECT name, outcome, cost_nusd, started_ns FROM runs WHERE id = ?", (run_id,))
    if not rows:
        return RunHits(run_id, hits[0].run_name, None, None, None, hits, more)
    r = rows[0]
    return RunHits(run_id, r["name"], r["outcome"], r["cost_nusd"] / NANO, iso(r["started_ns"]), hits, more)


def _encode_search_cursor(rowid: int) -> str:
    return base64.urlsafe_b64encode(json.dumps(["s", rowid]).encode()).decode().rstrip("=")


def _search_cursor(cursor: str) -> int:
    """The index position an ``after`` names; ValueError for anything that is not one of ours."""
    shown = repr(cursor) if len(cursor) <= 80 else repr(cursor[:80]) + "..."
    if len(cursor) > _MAX_CURSOR:
        raise ValueError(f"bad page cursor {shown}: longer than any page link")
    try:
        tag, rowid = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"bad page cursor {shown}") from exc
    if tag != "s" or not isinstance(rowid, int) or isinstance(rowid, bool) or not 0 < rowid < 2**63:
        raise ValueError(f"bad page cursor {shown}")
    return rowid


def group_hits(hits: list[SearchHit]) -> list[tuple[str | None, str | None, list[SearchHit]]]:
    """Hits per run, in the order the runs first appear: (run id, run name, its hits)."""
    groups: dict[str | None, tuple[str | None, str | None, list[SearchHit]]] = {}
    for hit in hits:
        key = hit.run_id if hit.run_id is not None else f"trace:{hit.trace_id}"
        if key not in groups:
            groups[key] = (hit.run_id, hit.run_name, [])
        groups[key][2].append(hit)
    return list(groups.values())


# --- spend over time ------------------------------------------------------------

SPEND_DIMENSIONS = ("project", "owner", "model", "family", "provider")
SPEND_BUCKETS = ("auto", "hour", "day", "week")
_DAY_NS = 86_400 * NANO
_HOUR_NS = 3_600 * NANO
_WEEK_NS = 7 * _DAY_NS
_WEEK_SHIFT_NS = 4 * _DAY_NS  # 1970-01-01 was a Thursday: weeks start on Mondays, 1970-01-05 the first
_MAX_BUCKETS = 400
TOP_SERIES = 7

@dataclass(frozen=True)
class SpendChart:
    dimension: str
    bucket: str  # "hour" | "day" | "week"
    labels: list[str]
    series: list[tuple[str, list[float]]]  # (group, USD per bucket), biggest first; "other" last
    totals: list[tuple[str, float, int, int]]  # (group, USD, runs, unpriced calls), biggest first
    total: tuple[float, int, int] = (0.0, 0, 0)  # (USD, runs, unpriced calls) of the whole period
    members: dict[str, list[tuple[str, float, int, int]]] = field(default_factory=dict)  # family -> its snapshots


def _bucket_size(bucket: str, start: int, end: int) -> int:
    if bucket == "hour":
        return _HOUR_NS
    if bucket == "day":
        return _DAY_NS
    if bucket == "week":
        return _WEEK_NS
    # auto: hours for up to two days, days up to 90, weeks beyond
    return _HOUR_NS if end - start <= 2 * _DAY_NS else _DAY_NS if end - start <= 90 * _DAY_NS else _WEEK_NS


def _bucket_label(index: int, size: int, shift: int) -> str:
    moment = datetime.fromtimestamp((index * size + shift) / NANO, tz=timezone.utc)
    return moment.strftime("%m-%d %Hh" if size == _HOUR_NS else "%Y-%m-%d")


def spend(store: Store, dimension: str, *, since_ns: int | None, until_ns: int | None,
          now_ns: int, bucket: str = "auto") -> SpendChart:
    """Cost per time bucket and group; a run's cost counts at its start.

    ``bucket`` is hour, day or week (weeks start on Monday), or auto: hourly
    for spans of up to two days, daily up to 90 days, weekly beyond. At most
    400 buckets are drawn (the newest). A run that used two models splits its
    cost between them (``run_models``); ``family`` groups a model's dated
    snapshots together and keeps them, per family, in ``members``.
    """
    if dimension not in SPEND_DIMENSIONS:
        raise ValueError(f"unknown dimension {dimension!r}; choose one of {', '.join(SPEND_DIMENSIONS)}")
    if bucket not in SPEND_BUCKETS:
        raise ValueError(f"unknown bucket {bucket!r}; choose one of {', '.join(SPEND_BUCKETS)}")
    where, params = RunFilter(since_ns=since_ns, until_ns=until_ns).where("runs")
    first_last = store.execute(f"SELECT min(started_ns), max(started_ns), total(cost_nusd), count(*), "
                               f"total(unpriced_calls) FROM runs{where}", params)[0]
    if first_last[0] is None:
        return SpendChart(dimension, "day" if bucket == "auto" else bucket, [], [], [])
    start = since_ns if since_ns is not None else first_last[0]
    # A period runs up to now (or its end); "all time" up to the last run, not a day of empty bars.
    end = until_ns if until_ns is not None else (now_ns if since_ns is not None else first_last[1] + 1)
    end = max(end, start + 1)
    size = _bucket_size(bucket, start, end)
    shift = _WEEK_SHIFT_NS if size == _WEEK_NS else 0
    first_bucket = (start - shift) // size
    count = int((end - 1 - shift) // size - first_bucket + 1)
    if count > _MAX_BUCKETS:  # a multi-year range: keep the newest buckets
        first_bucket = (end - 1 - shift) // size - (_MAX_BUCKETS - 1)
        count = _MAX_BUCKETS
    column = "model" if dimension == "family" else dimension
    if dimension in ("project", "owner"):
        group = f"coalesce(runs.{dimension}, '(none)')"
        source, cost, unpriced = "runs", "runs.cost_nusd", "runs.unpriced_calls"
    else:
        group = f"coalesce(nullif(m.{column}, ''), '(unknown)')"
        source, cost, unpriced = "run_models m JOIN runs ON runs.id = m.run_id", "m.cost_nusd", "m.unpriced_calls"
    # One row per (group, run): a family's runs are counted once even when they used two of its snapshots.
    rows = store.execute(
        f"SELECT {group} AS g, runs.id AS r, (runs.started_ns - {shift}) / {size} AS b, total({cost}) AS c, "
        f"total({unpriced}) AS u FROM {source}{where} GROUP BY g, r", params)
    per_group: dict[str, list[float]] = {}
    sums: dict[str, list[float]] = {}  # group -> [USD, unpriced calls]
    run_sets: dict[str, set[str]] = {}
    snapshots: dict[str, dict[str, list[Any]]] = {}  # family -> model -> [USD, runs, unpriced calls]
    for row in rows:
        name = model_family(row["g"]) if dimension == "family" else row["g"]
        index = int(row["b"] - first_bucket)
        values = per_group.setdefault(name, [0.0] * count)
        if 0 <= index < count:
            values[index] += row["c"] / NANO
        tally = sums.setdefault(name, [0.0, 0.0])
        tally[0] += row["c"] / NANO
        tally[1] += row["u"]
        run_sets.setdefault(name, set()).add(row["r"])
        if dimension == "family":
            member = snapshots.setdefault(name, {}).setdefault(row["g"], [0.0, 0, 0])
            member[0] += row["c"] / NANO
            member[1] += 1
            member[2] += int(row["u"])
    totals = {g: (sums[g][0], len(run_sets[g]), int(sums[g][1])) for g in sums}
    ranked = sorted(totals, key=lambda g: (-totals[g][0], g))
    series = [(g, per_group[g]) for g in ranked[:TOP_SERIES]]
    if len(ranked) > TOP_SERIES:
        other = [sum(per_group[g][i] for g in ranked[TOP_SERIES:]) for i in range(count)]
        series.append((f"{len(ranked) - TOP_SERIES} others", other))
    labels = [_bucket_label(first_bucket + i, size, shift) for i in range(count)]
    members = {family: sorted(((m, usd, n, u) for m, (usd, n, u) in models.items()), key=lambda t: (-t[1], t[0]))
               for family, models in snapshots.items()}
    return SpendChart(dimension, {_HOUR_NS: "hour", _DAY_NS: "day", _WEEK_NS: "week"}[size], labels, series,
                      [(g, *totals[g]) for g in ranked],
                      total=(first_last[2] / NANO, int(first_last[3]), int(first_last[4])), members=members)
