"""The performance issue's targets table (issue 14): measure | today | target | met?, from the latest results.

Every row reads the figures one benchmark wrote (``bench/results/*.json``, or the
``--quick`` ones); a row whose benchmark has not run says so instead of a figure.
Ratios are the ones measured within one run of one benchmark (medians of
interleaved rounds), never figures from two runs set against each other.
"""

from __future__ import annotations

from typing import Any

HEADERS = ["measure", "today", "target", "met?"]


def _met(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "missed")


def _overhead_rows(o: dict[str, Any] | None) -> list[list[str]]:
    rows = []
    specs = [("chat", "chat call, µs added vs openai-v2", 0.7, "<= 0.70x"),
             ("stream", "streamed call vs openai-v2", 0.7, "<= 0.70x"),
             ("tool", "@runtrace.tool call vs a hand-written OTel span", 1.5, "<= 1.50x")]
    results = (o or {}).get("results", {})
    ours = results.get("runtrace", {})
    for scenario, label, limit, target in specs:
        ratio = (ours.get("ratio_to_openai_v2") or {}).get(scenario)
        added = (ours.get("overhead_us") or {}).get(scenario)
        if ratio is None:
            rows.append([label, "not measured" if o is None else "-", target, "-"])
            continue
        rows.append([label, f"{ratio:.2f}x (+{added:.0f} µs)" if added is not None else f"{ratio:.2f}x", target,
                     _met(ratio <= limit)])
    rows.append(_store_row(ours, results.get("runtrace+store") or {}))
    return rows


def _store_row(off: dict[str, Any], on: dict[str, Any]) -> list[str]:
    """Store on over store off, µs added per chat call in the calling thread's CPU (the issue's measure).

    The store's work runs on its exporter thread, which the agent does not wait for, so the
    target compares the caller's thread (``caller_overhead_us``); the process-wide figure
    (every thread, ``overhead_us``) is shown next to it, and does not decide the row.
    """
    label, target = "chat call with the store on, over store off (calling thread)", "<= +15%"
    caller_off = (off.get("caller_overhead_us") or {}).get("chat")
    caller_on = (on.get("caller_overhead_us") or {}).get("chat")
    if caller_off is None or caller_on is None:
        return [label, "not measured", target, "-"]
    if caller_off <= 0:  # the noise floor: no ratio to speak of
        return [label, f"+{caller_on:.0f} vs {caller_off:+.0f} µs", target, "-"]
    extra = caller_on / caller_off - 1
    shown = f"{extra:+.0%} (+{caller_on:.0f} vs +{caller_off:.0f} µs)"
    all_off = (off.get("overhead_us") or {}).get("chat")
    all_on = (on.get("overhead_us") or {}).get("chat")
    if all_off and all_off > 0 and all_on is not None:
        shown += f"; all threads {all_on / all_off - 1:+.0%} (+{all_on:.0f} vs +{all_off:.0f} µs)"
    return [label, shown, target, _met(extra <= 0.15)]


def _query(q: dict[str, Any] | None, name: str) -> dict[str, float] | None:
    return None if q is None else q.get("results", {}).get(name)


def _ms(r: dict[str, float] | None) -> str:
    if r is None:
        return "not measured"
    p50 = r["p50_ms"]
    return f"{p50:.1f} ms" if p50 >= 1 else f"{p50:.2f} ms"


def _query_rows(q: dict[str, Any] | None) -> list[list[str]]:
    from bench.query import API_RUN, BIG_RUN_DETAIL, RARE_SEARCH, REPORT_BY_MODEL, RUN_PAGE, SEARCH_PAGE

    page, detail, api = _query(q, RUN_PAGE), _query(q, BIG_RUN_DETAIL), _query(q, API_RUN)
    rare, search_page, report = _query(q, RARE_SEARCH), _query(q, SEARCH_PAGE), _query(q, REPORT_BY_MODEL)

    def under(r: dict[str, float] | None, limit: float) -> bool | None:
        return None if r is None else r["p50_ms"] < limit

    both = [r for r in (detail, api) if r is not None]
    return [
        ["run page of a 5,000-span run (GET /runs/{id})", _ms(page), "p50 < 100 ms", _met(under(page, 100))],
        ["get_run / /api/runs/{id} of 5,000 spans", f"{_ms(detail)} / {_ms(api)}", "p50 < 50 ms",
         _met(all(r["p50_ms"] < 50 for r in both) if both else None)],
        ["search, rare word, 1M spans (function / serve page)", f"{_ms(rare)} / {_ms(search_page)}", "p50 < 50 ms",
         _met(under(rare, 50))],
        ["report by model, 1M spans", _ms(report), "p50 < 50 ms", _met(under(report, 50))],
    ]


def _ingest_rows(i: dict[str, Any] | None, logs: dict[str, Any] | None,
                 foreign: dict[str, Any] | None) -> list[list[str]]:
    rows = []
    if i is None:
        rows.append(["ingest, in-process / through serve, vs the minimal path (FTS on)", "not measured",
                     ">= 0.70 both", "-"])
    else:
        q = i["ratios"]
        rows.append(["ingest, in-process / through serve, vs the minimal path (FTS on)",
                     f"{q['exporter']:.2f} / {q['serve']:.2f}", ">= 0.70 both",
                     _met(q["exporter"] >= 0.7 and q["serve"] >= 0.7)])
    if logs is None:
        rows.append(["coding-agent log records through serve, per second", "not measured", ">= 20,000", "-"])
    else:
        rows.append(["coding-agent log records through serve, per second", f"{logs['rate']:,.0f}", ">= 20,000",
                     _met(logs["rate"] >= 20_000)])
    if foreign is None:
        rows.append(["foreign nested duplicates (OpenLLMetry + openai-v2), vs own spans", "not measured", "-", "-"])
    else:
        rows.append(["foreign nested duplicates (OpenLLMetry + openai-v2), vs own spans",
                     f"{foreign['ratio']:.2f} ({foreign['rates']['foreign']:,.0f} spans/s)", "(tracked)", "-"])
    return rows


def _provider_rows(p: dict[str, Any] | None) -> list[list[str]]:
    """The newer providers' µs added per call against their bare clients: tracked, no target (issue 14's "Also")."""
    label = "µs added per call: gemini / mistral / bedrock / litellm, vs the bare client"
    if p is None:
        return [[label, "not measured", "(tracked)", "-"]]
    found = p.get("results", {})
    shown = " / ".join(f"{found[name]['overhead_us']:+.0f}" if name in found else "-"
                       for name in ("gemini", "mistral", "bedrock", "litellm"))
    return [[label, shown, "(tracked)", "-"]]


def rows(results: dict[str, dict[str, Any] | None]) -> list[list[str]]:
    """The issue's table, in its order."""
    return (_overhead_rows(results.get("overhead")) + _provider_rows(results.get("providers"))
            + _query_rows(results.get("query"))
            + _ingest_rows(results.get("ingest"), results.get("agent_logs"), results.get("foreign")))
