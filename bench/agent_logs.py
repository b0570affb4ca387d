"""Ingest of coding-agent logs: Claude Code's OTLP log records through ``runtrace serve``'s /v1/logs.

    python bench/agent_logs.py [--quick]

The recorded Claude Code session (``/work/shared/agent-telemetry/samples/claude``,
or ``RUNTRACE_AGENT_SAMPLES``: 25 log records of a real session: prompt, API
requests with usage and cost, tool decisions and results) is replayed as many
sessions (each copy with its own ``session.id``, ``prompt.id`` and times), in
OTLP/protobuf bodies of about 500 records, as the agent's exporter sends them.
``runtrace serve`` runs in its own process; a sender process posts the bodies
(encoded before the clock starts) from 2 threads. Reported: log records per
second, from the first request to the last answer, with the stored sessions
checked afterwards (one run per session, its API requests counted as LLM calls).

Target: at least 20,000 log records per second.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common  # noqa: E402
from bench.ingest import Server  # noqa: E402

SAMPLES = Path(os.environ.get("RUNTRACE_AGENT_SAMPLES", "/work/shared/agent-telemetry/samples"))
RECORDS_PER_BODY = 500
TARGET = 20_000


def _sample_bodies() -> list[dict[str, Any]]:
    path = SAMPLES / "claude" / "logs.jsonl"
    return [json.loads(line)["body"] for line in path.read_text().splitlines() if line.strip()]


def _copy_session(bodies: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The sample's log records, as session number ``n`` (its own ids, an hour later per copy)."""
    records: list[dict[str, Any]] = []
    shift = n * 3_600 * 1_000_000_000
    for body in bodies:
        for rl in body["resourceLogs"]:
            for sl in rl["scopeLogs"]:
                for lr in sl["logRecords"]:
                    lr = copy.deepcopy(lr)
                    for a in lr.get("attributes", []):
                        if a["key"] in ("session.id", "prompt.id"):
                            a["value"] = {"stringValue": f"{a['value'].get('stringValue', '')}-{n}"}
                    for key in ("timeUnixNano", "observedTimeUnixNano"):
                        if key in lr:
                            lr[key] = str(int(lr[key]) + shift)
                    records.append({"resource": rl["resource"], "scope": sl["scope"], "record": lr})
    return records


def bodies(total: int) -> tuple[list[bytes], int, int]:
    """(protobuf bodies, log records, sessions) of at least ``total`` records."""
    from google.protobuf import json_format
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    sample = _sample_bodies()
    records: list[dict[str, Any]] = []
    sessions = 0
    while len(records) < total:
        records.extend(_copy_session(sample, sessions))
        sessions += 1
    out = []
    for i in range(0, len(records), RECORDS_PER_BODY):
        chunk = records[i:i + RECORDS_PER_BODY]
        doc = {"resourceLogs": [{"resource": chunk[0]["resource"],
                                 "scopeLogs": [{"scope": chunk[0]["scope"], "logRecords": []}]}]}
        for r in chunk:
            lr = r["record"]
            for key in ("traceId", "spanId"):
                if lr.get(key):
                    lr[key] = base64.b64encode(bytes.fromhex(lr[key])).decode()
                else:
                    lr.pop(key, None)
            doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"].append(lr)
        message = json_format.ParseDict(doc, ExportLogsServiceRequest(), ignore_unknown_fields=True)
        out.append(message.SerializeToString())
    return out, len(records), sessions


def send(url: str, total: int, threads: int) -> dict[str, Any]:
    """The sender process: encode first, then post every body, ``threads`` at a time."""
    import httpx

    encoded, records, sessions = bodies(total)
    queue = list(encoded)
    lock = threading.Lock()
    failures: list[int] = []

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                response = client.post("/v1/logs", content=body, headers={"content-type": "application/x-protobuf"})
                if response.status_code != 200:
                    failures.append(response.status_code)

    t0 = time.perf_counter()
    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return {"records": records, "sessions": sessions, "seconds": time.perf_counter() - t0, "failures": failures}


def bench(total: int, folder: Path, threads: int = 2) -> dict[str, Any]:
    store = folder / "agent_logs.db"
    server = Server("serve", store)
    try:
        out = _common.run_json([sys.executable, __file__, "--send", server.url, "--records", str(total),
                                "--threads", str(threads)], _common.child_env(), timeout=3600)
    finally:
        peak = server.stop()
    if out["failures"]:
        raise RuntimeError(f"{len(out['failures'])} requests failed: {sorted(set(out['failures']))}")
    conn = sqlite3.connect(store)
    runs, llm_calls = conn.execute("SELECT count(*), coalesce(sum(llm_calls), 0) FROM runs").fetchone()
    conn.close()
    per_session = 7  # api_request records in the sample
    if runs != out["sessions"] or llm_calls != out["sessions"] * per_session:
        raise RuntimeError(f"stored {runs} runs / {llm_calls} LLM calls for {out['sessions']} sessions")
    return {"rate": out["records"] / out["seconds"], "records": out["records"], "sessions": out["sessions"],
            "peak_rss_mib": peak}


def run(*, records: int, rounds: int) -> dict[str, Any]:
    rates = []
    last: dict[str, Any] = {}
    for r in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            last = bench(records, Path(tmp))
        rates.append(last["rate"])
        print(f"round {r + 1}/{rounds}: {last['rate']:,.0f} log records/s", file=sys.stderr)
    return {"records": last["records"], "sessions": last["sessions"], "rounds": rounds,
            "rate": _common.median(rates), "peak_rss_mib": last["peak_rss_mib"], "target": TARGET}


def rows(data: dict[str, Any]) -> list[list[str]]:
    return [["Claude Code log records through runtrace serve /v1/logs", f"{data['rate']:,.0f}", f">= {TARGET:,}",
             "met" if data["rate"] >= TARGET else "missed"]]


HEADERS = ["path", "records/s", "target", "met?"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="coding-agent log ingest through runtrace serve")
    parser.add_argument("--quick", action="store_true", help="20,000 records, 1 round")
    parser.add_argument("--records", type=int, default=None)
    parser.add_argument("--send", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.send:
        print(json.dumps(send(args.send, args.records, args.threads)))
        return 0
    data = run(records=args.records or (1_000 if _common.tiny() else 20_000 if args.quick else 100_000), rounds=1 if args.quick else 3)
    _common.save("agent_logs", data, quick=args.quick)
    print(f"{data['records']:,} log records in {data['sessions']:,} sessions, median of {data['rounds']} rounds")
    print(_common.table(HEADERS, rows(data)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
