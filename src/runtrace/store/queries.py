"""Read runs out of the store as the plain dicts of `--format json` (README; docs/architecture.md).

These dicts are a contract (``runtrace runs --format json``, ``runtrace show
RUN --format json``, the web UI's JSON twins): the section-8 keys keep their
names and types; extra keys may be added, never renamed. Times are ISO-8601
UTC strings ending in ``Z``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from .. import semconv
from ..totals import CONTRACT_TOTALS, EXTRA_TOTALS, NANO, STORED_TOTALS, json_totals
from .db import Store
from .errors import AmbiguousRunIdError
from .filters import RunFilter
from .timespec import iso as iso  # re-exported: callers on other branches import it from here
from .timespec import to_ns as to_ns
from .values import dumps, loads

try:  # optional (the ``serve`` extra has it): splices stored JSON into a response without decoding it
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

_BUDGET_KEYS = ("max_cost_usd", "max_llm_calls", "max_tool_calls", "max_seconds", "max_input_tokens",
                "on_exceed")
_RUN_COLUMNS = ", ".join((
    "id", "name", "project", "owner", "service", "outcome", "outcome_at_ns", "outcome_by", "outcome_reason",
    "stop_reason", *(str(f.column) for f in STORED_TOTALS), "has_run_span", "started_ns", "ended_ns",
    *(f"budget_{k}" for k in _BUDGET_KEYS)))
_PREFIX_CANDIDATES = 11


def _run_dict(row: Any, models: list[dict[str, Any]], trace_ids: list[str]) -> dict[str, Any]:
    started, ended = row["started_ns"], row["ended_ns"]
    budget_values = [row[f"budget_{k}"] for k in _BUDGET_KEYS]
    return {
        "id": row["id"],
        "name": row["name"],
        "project": row["project"],
        "owner": row["owner"],
        "service": row["service"],
        "outcome": row["outcome"],
        "stop_reason": row["stop_reason"],
        **json_totals(row, CONTRACT_TOTALS),
        "started_at": iso(started),
        "ended_at": iso(ended),
        "duration_s": (ended - started) / 1e9 if ended is not None else None,
        # extras (section 8 allows more fields, never renamed ones)
        "outcome_by": row["outcome_by"],
        "outcome_reason": row["outcome_reason"],
        "outcome_at": iso(row["outcome_at_ns"]),
        **json_totals(row, EXTRA_TOTALS),  # repeated-read and re-injected tokens, errors, span count...
        "has_run_span": bool(row["has_run_span"]),
        "budget": (dict(zip(_BUDGET_KEYS, budget_values, strict=True))
                   if any(v is not None for v in budget_values) else None),
        "models": models,
        "trace_ids": trace_ids,
    }


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


def _models_and_traces(store: Store, run_ids: Sequence[str]
                       ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[str]]]:
    models: dict[str, list[dict[str, Any]]] = {r: [] for r in run_ids}
    traces: dict[str, list[str]] = {r: [] for r in run_ids}
    if not run_ids:
        return models, traces
    marks = _placeholders(len(run_ids))
    for m in store.execute(
            "SELECT run_id, provider, model, llm_calls, cost_nusd, input_tokens, output_tokens, "
            f"cached_input_tokens, unpriced_calls FROM run_models WHERE run_id IN ({marks}) "
            "ORDER BY run_id, cost_nusd DESC, llm_calls DESC, provider, model", run_ids):
        models[m["run_id"]].append({
            "provider": m["provider"] or None, "model": m["model"] or None, "llm_calls": m["llm_calls"],
            "cost_usd": m["cost_nusd"] / NANO, "input_tokens": m["input_tokens"],
            "output_tokens": m["output_tokens"], "cached_input_tokens": m["cached_input_tokens"],
            "unpriced_calls": m["unpriced_calls"],
        })
    for t in store.execute(f"SELECT run_id, trace_id FROM run_traces WHERE run_id IN ({marks}) "
                           "ORDER BY run_id, trace_id", run_ids):
        traces[t["run_id"]].append(t["trace_id"])
    return models, traces


def list_runs(store: Store, *, project: str | None = None, owner: str | None = None,
              outcome: str | None = None, model: str | None = None, since: datetime | None = None,
              until: datetime | None = None, text: str | None = None, limit: int = 50,
              offset: int = 0) -> list[dict[str, Any]]:
    """Runs newest first (by start), filtered; ``limit=0`` means all.

    ``since``/``until`` bound the run's start (``since`` inclusive, ``until``
    exclusive); ``model`` matches any model the run used; ``text`` is a
    case-insensitive substring of the id, name, project or owner.
    """
    if limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must be >= 0, got limit={limit}, offset={offset}")
    where, params = RunFilter(project=project, owner=owner, outcome=outcome, model=model,
                              since_ns=None if since is None else to_ns(since),
                              until_ns=None if until is None else to_ns(until), text=text).where()
    sql = f"SELECT {_RUN_COLUMNS} FROM runs{where} ORDER BY started_ns DESC, id DESC LIMIT ? OFFSET ?"
    params.extend([limit if limit else -1, offset])
    rows = store.execute(sql, params)
    models, traces = _models_and_traces(store, [r["id"] for r in rows])
    return [_run_dict(r, models[r["id"]], traces[r["id"]]) for r in rows]


def resolve_run_id(store: Store, run_id: str) -> str | None:
    """The full id of the run ``run_id`` names, exactly or as a unique prefix (like git)."""
    if not run_id:
        raise ValueError("run id must not be empty")
    if store.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)):
        return run_id
    # A prefix range on the primary key: id >= prefix AND id < prefix followed by the highest character.
    found = [r[0] for r in store.execute(
        "SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
        (run_id, run_id + "\U0010ffff", _PREFIX_CANDIDATES))]
    if not found:
        return None
    if len(found) > 1:
        raise AmbiguousRunIdError(run_id, found)
    return str(found[0])


# What the run detail reads of a span (not ``SELECT *``: the resource is the run's, not the span's).
_SPAN_COLUMNS = ("span_id, parent_span_id, name, kind, model, input_tokens, output_tokens, cached_input_tokens, "
                 "cost_usd, tool_name, start_ns, end_ns, status_code, attributes, trace_id, status_message, "
                 "provider, reasoning_tokens, service, span_kind, counted, events")
_SPAN_ORDER = "ORDER BY start_ns, end_ns DESC, span_id"
  # the order of the index spans_run_start (m007)


def _events(text: str) -> list[dict[str, Any]]:
    if text == "[]":
        return []
    return [{"name": e["name"], "time": iso(e["time_ns"]), "attributes": e["attributes"]} for e in loads(text)]


def _span_dict(row: Any, attributes_from: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """One span of ``get_run``; ``attributes_from`` (default: decode) turns the stored attribute JSON into its value."""
    (span_id, parent, name, kind, model, in_tok, out_tok, cached, cost, tool, start, end, status, attributes,
     trace_id, status_message, provider, reasoning, service, span_kind, counted, events) = row
    return {
        "span_id": span_id,
        "parent_span_id": parent,
        "name": name,
        "kind": kind,
        "model": model,
        "input_tokens": in_tok,
        "output_tokens": out_tok,
        "cached_input_tokens": cached,
        "cost_usd": cost,
        "tool_name": tool,
        "start": iso(start),
        "end": iso(end),
        "status": status,
        "attributes": loads(attributes) if attributes_from is None else attributes_from(attributes),
        # extras
        "trace_id": trace_id,
        "status_message": status_message,
        "provider": provider,
        "reasoning_tokens": reasoning,
        "service": service,
        "span_kind": span_kind,
        "duration_s": (end - start) / 1e9,
        # False for an LLM span whose call another span counts (store/innermost.py): a wrapper
        # over a nested usage span, or a span marked runtrace.duplicate_of
        "counted": bool(counted),
        "events": _events(events),
    }


def _run_only(store: Store, run_id: str) -> dict[str, Any] | None:
    full = resolve_run_id(store, run_id)
    if full is None:
        return None
    rows = store.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (full,))
    if not rows:
        return None
    models, traces = _models_and_traces(store, [full])
    return _run_dict(rows[0], models[full], traces[full])


def get_run(store: Store, run_id: str, *, offset: int = 0, limit: int | None = None,
            attributes_from: Callable[[str], Any] | None = None) -> dict[str, Any] | None:
    """One run with its ``spans`` (by start time); ``run_id`` may be a unique prefix.

    ``offset``/``limit`` return one page of the spans (in the same order) for a
    page that shows a long run a part at a time; ``span_count`` says how many
    there are in all. Returns None when no run matches; raises
    AmbiguousRunIdError when a prefix matches several. ``attributes_from``
    replaces the decoding of each span's stored attribute JSON (see :func:`get_run_json`).
    """
    if offset < 0 or (limit is not None and limit < 0):
        raise ValueError(f"offset and limit must be >= 0, got offset={offset}, limit={limit}")
    run = _run_only(store, run_id)
    if run is None:
        return None
    if limit is None and offset == 0:
        # In the order of the index spans_run_start (m007): no sorter copying every row's JSON.
        cursor = store.reader().execute(f"SELECT {_SPAN_COLUMNS} FROM spans WHERE run_id = ? {_SPAN_ORDER}",
                                        (run["id"],))
        cursor.row_factory = None  # plain tuples: the Row wrapper costs more than the rest of a span's columns
        rows = cursor.fetchall()
    else:  # sort the keys only, then read the page's rows (not every span's JSON for the sort)
        cursor = store.reader().execute(
            f"SELECT {_SPAN_COLUMNS} FROM spans WHERE rowid IN (SELECT rowid FROM spans WHERE run_id = ? "
            f"{_SPAN_ORDER} LIMIT ? OFFSET ?) {_SPAN_ORDER}", (run["id"], -1 if limit is None else limit, offset))
        cursor.row_factory = None
        rows = cursor.fetchall()
    run["spans"] = [_span_dict(s, attributes_from) for s in rows]
    return run


def get_run_json(store: Store, run_id: str, *, offset: int = 0, limit: int | None = None) -> bytes | None:
    """:func:`get_run` as UTF-8 JSON (``/api/runs/{id}``), each span's attributes spliced in as stored.

    The stored attribute JSON is already the span's attributes in JSON: decoding
    it into dicts only to encode them again was a quarter of the response's
    time on a 5,000-span run. The document parses to exactly ``get_run``'s dict
    (numbers may be spelled differently: ``1e-07`` for ``1e-7`` in text the
    stdlib encoder stored). None when no run matches.
    """
    if orjson is None:  # pragma: no cover - without orjson there is nothing to splice with
        data = get_run(store, run_id, offset=offset, limit=limit)
        return None if data is None else dumps(data).encode()
    data = get_run(store, run_id, offset=offset, limit=limit, attributes_from=orjson.Fragment)
    if data is None:
        return None
    try:
        return orjson.dumps(data)
    except TypeError:  # an integer beyond 64 bits in an event's attributes: the stdlib encoder writes it
        data = get_run(store, run_id, offset=offset, limit=limit)
        return None if data is None else dumps(data).encode()


# --- one span at a time (the run page's side panel and its paged timeline) -----

_OUTLINE_FLAGS = (semconv.LOOP_DETECTED, semconv.TOOL_REPEATED_READ, semconv.TOOL_REFUSED)


def span_outline(store: Store, run_id: str) -> list[dict[str, Any]]:
    """Every span of the run ``run_id`` (a full id) without its attributes and events, by start time.

    What the timeline needs to place and label a row, and nothing it does not:
    a 5,000-span run's attributes and events are megabytes of JSON that the
    paged timeline would parse only to throw away. ``attributes`` holds just
    the flags a row shows (loop, repeated read, refused); ``arguments`` the
    first 2,000 characters of a tool call's captured arguments, if any.
    """
    flags = ", ".join(f"json_extract(attributes, '$.\"{key}\"')" for key in _OUTLINE_FLAGS)
    arguments = f"substr(json_extract(attributes, '$.\"{semconv.GEN_AI_TOOL_CALL_ARGUMENTS}\"'), 1, 2000)"
    rows = store.execute(
        "SELECT span_id, parent_span_id, name, kind, start_ns, end_ns, cost_usd, model, tool_name, status_code, "
        f"{arguments}, {flags} FROM spans WHERE run_id = ? ORDER BY start_ns, end_ns DESC, span_id", (run_id,))
    out = []
    for r in rows:
        values = tuple(r)[11:]
        out.append({"span_id": r["span_id"], "parent_span_id": r["parent_span_id"], "name": r["name"],
                    "kind": r["kind"], "start_ns": r["start_ns"], "end_ns": r["end_ns"], "cost_usd": r["cost_usd"],
                    "model": r["model"], "tool_name": r["tool_name"], "status": r["status_code"],
                    "duration_s": (r["end_ns"] - r["start_ns"]) / 1e9, "arguments": r[10],
                    "attributes": {k: bool(v) for k, v in zip(_OUTLINE_FLAGS, values, strict=True) if v}})
    return out


def get_span(store: Store, run_id: str, span_id: str) -> dict[str, Any] | None:
    """One span of a run (the dict of ``get_run``'s ``spans``), by its run's full id and its span id.

    For a page that loads a span's details when it is opened; None when the run has no such span.
    """
    cursor = store.reader().execute(
        f"SELECT {_SPAN_COLUMNS} FROM spans WHERE run_id = ? AND span_id = ? ORDER BY start_ns LIMIT 1",
        (run_id, span_id))
    cursor.row_factory = None
    row = cursor.fetchone()
    return _span_dict(row) if row is not None else None


def first_span_start_ns(store: Store, run_id: str) -> int | None:
    """When the run's earliest span started (the run page's time zero), in ns; None for a run without spans."""
    rows = store.execute("SELECT min(start_ns) FROM spans WHERE run_id = ?", (run_id,))
    return None if rows[0][0] is None else int(rows[0][0])
