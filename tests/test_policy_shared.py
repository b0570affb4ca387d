"""Caps across processes count the other processes' calls in flight (issue 16; store migration m008).

Two real processes share one store file. The first one's call is held inside
its mock transport (it is in flight) while the second one checks; then it has
ended but its span is not exported yet (a one-minute batch delay); then it is
stored. At each of the three moments the second process is refused: a $0.05
cap with $0.03 calls lets exactly one call through between them. Every wait has
a hard timeout, so a regression fails instead of hanging.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import runtrace
from llm_fakes import FakeLLM
from runtrace.store.db import Store
from test_policy import PROMPT_3000, THREE_CENTS, Env, cap_policy, chars_per_4, env, finish  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parents[1]

WORKER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    sys.path[:0] = [sys.argv[4], sys.argv[5]]
    import runtrace
    from runtrace import detect
    from runtrace.policy import Policy, Rules
    from llm_fakes import ChatUsage, FakeLLM, chat_completion, json_reply

    role, store, sync = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    detect._estimator = detect.CHARS_PER_4

    def wait(name):
        deadline = time.monotonic() + 30
        while not (sync / name).exists():
            if time.monotonic() > deadline:
                raise SystemExit(f"{role}: timed out waiting for {name}")
            time.sleep(0.005)

    def mark(name):
        (sync / name).touch()

    reply = json_reply(chat_completion(model="gpt-5.5", usage=ChatUsage(3000, 500)))  # $0.03

    def held(_body):
        mark("a-in-flight")
        wait("b-checked-in-flight")  # the call stays in flight while the other process checks
        return reply

    runtrace.instrument(service_name=f"worker-{role}", store=store,
                        policies=Policy(projects={"checkout": Rules(daily_usd=0.05)}, cache_seconds=0))
    fake = FakeLLM(default=held if role == "a" else reply)
    client = fake.openai()
    prompt = [{"role": "user", "content": "x" * 12000}]
    stops, stored_before_export = [], None

    def call(name):
        try:
            with runtrace.run(name, project="checkout"):
                # An output cap makes the projection the call's real cost: $0.03.
                client.chat.completions.create(model="gpt-5.5", messages=prompt, max_tokens=500)
        except runtrace.BudgetExceeded as exc:
            stops.append(exc.limit)

    if role == "a":
        call("a")
        mark("a-ended")  # ended, but its span waits in the batch processor (OTEL_BSP_SCHEDULE_DELAY=60 s)
        wait("b-checked-ended")
        runtrace.uninstrument()  # exports it
        mark("a-exported")
    else:
        wait("a-in-flight")
        call("b while a's call is in flight")
        mark("b-checked-in-flight")
        wait("a-ended")
        import sqlite3
        conn = sqlite3.connect(store)
        stored_before_export = conn.execute("SELECT count(*) FROM spans WHERE kind = 'llm'").fetchone()[0]
        conn.close()
        call("b after a's call ended, before its export")
        mark("b-checked-ended")
        wait("a-exported")
        call("b after a's call was stored")
        runtrace.uninstrument()
    print(json.dumps({"sent": len(fake.requests), "stops": stops, "stored_before_export": stored_before_export}))
""")


def start(tmp_path: Path, role: str, store: Path, sync: Path) -> subprocess.Popen[str]:
    script = tmp_path / "shared_worker.py"
    script.write_text(WORKER)
    environ = {**os.environ, "OTEL_BSP_SCHEDULE_DELAY": "60000"}
    environ.pop("RUNTRACE_POLICY", None)
    return subprocess.Popen([sys.executable, str(script), role, str(store), str(sync), str(REPO / "src"),
                             str(REPO / "tests")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environ)


def test_two_processes_make_exactly_one_call_while_one_is_in_flight(tmp_path: Path) -> None:
    store = tmp_path / "shared.db"
    Store.open(store).close()
    sync = tmp_path / "sync"
    sync.mkdir()
    a, b = start(tmp_path, "a", store, sync), start(tmp_path, "b", store, sync)
    first, second = finish(a), finish(b)
    assert first == {"sent": 1, "stops": [], "stored_before_export": None}
    # Refused while a's call was in flight (its reservation row), after it ended but before its
    # span was exported (the row, now at the call's real cost), and once it was stored (the run's cost).
    assert second == {"sent": 0, "stops": ["project_daily_usd"] * 3, "stored_before_export": 0}
    with Store.open(store) as s:
        assert s.execute("SELECT count(*), SUM(cost_nusd) FROM runs WHERE project = 'checkout' "
                         "AND llm_calls > 0")[0][:] == (1, 30_000_000)
        left = s.execute("SELECT holder, cost_nusd, trace_id IS NOT NULL FROM cap_reservations")
    # a's row (settled at $0.03 with its span's key) is swept by the next check that reserves; none did.
    assert [(r[1], r[2]) for r in left] == [(30_000_000, 1)]


def reservation(path: Path, *, expires_in_s: float, cost_usd: float = 0.03, holder: str = "4242-dead") -> None:
    """A row another process wrote and never settled (it died with its call in flight)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("INSERT INTO cap_reservations (holder, project, owner, at_ns, cost_nusd, expires_ns) "
                     "VALUES (?, 'checkout', NULL, ?, ?, ?)",
                     (holder, time.time_ns(), round(cost_usd * 1e9), time.time_ns() + int(expires_in_s * 1e9)))
        conn.commit()
    finally:
        conn.close()


def test_a_dead_processes_call_counts_until_its_row_expires(env: Env) -> None:  # noqa: F811 - the fixture
    Store.open(env.store_path).close()
    reservation(env.store_path, expires_in_s=600)
    env.start(cap_policy(daily_usd=0.05))
    fake = FakeLLM(default=THREE_CENTS)
    client = fake.openai()
    with pytest.raises(runtrace.BudgetExceeded) as info, runtrace.run("while the row lives", project="checkout"):
        client.chat.completions.create(model="gpt-5.5", messages=PROMPT_3000, max_tokens=500)
    assert (len(fake.requests), info.value.limit) == (0, "project_daily_usd")
    assert "($0.03 spent today, UTC, + $0.03 projected)" in str(info.value)
    conn = sqlite3.connect(env.store_path)
    conn.execute("UPDATE cap_reservations SET expires_ns = ?", (time.time_ns() - 1,))  # its TTL ran out
    conn.commit()
    conn.close()
    with runtrace.run("after it expired", project="checkout"):
        client.chat.completions.create(model="gpt-5.5", messages=PROMPT_3000, max_tokens=500)
    assert len(fake.requests) == 1
    runtrace.flush()
    with Store.open(env.store_path) as s:
        rows = s.execute("SELECT holder, cost_nusd FROM cap_reservations")
    assert [r[1] for r in rows] == [30_000_000] and rows[0][0] != "4242-dead"  # the dead row was swept


def test_a_failed_call_deletes_its_row(env: Env) -> None:  # noqa: F811 - the fixture
    from llm_fakes import json_reply, openai_error

    Store.open(env.store_path).close()
    env.start(cap_policy(daily_usd=0.05))
    fake = FakeLLM([json_reply(openai_error(500, "overloaded"), status=500)], default=THREE_CENTS)
    client = fake.openai()
    import openai

    with pytest.raises(openai.InternalServerError), runtrace.run("fails", project="checkout"):
        client.chat.completions.create(model="gpt-5.5", messages=PROMPT_3000, max_tokens=500)
    with Store.open(env.store_path) as s:
        assert s.execute("SELECT count(*) FROM cap_reservations")[0][0] == 0
