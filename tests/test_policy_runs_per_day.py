"""runs_per_day in-process (issue 16): the first N runs of the UTC day go on, later runs are stopped.

As the Claude Code hook does for sessions: a run takes its place among the day's
runs of its project (owner) at its first LLM call, and keeps it, so the runs that
started before the cap was reached are never stopped by the ones after. Real
openai calls against FakeLLM's mock transport (the requests that reached it are
counted), a real SQLite store shared with another real process, the policy clock
injected (frozen at the test's start, moved to the next UTC midnight by hand).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import runtrace
from llm_fakes import FakeLLM
from runtrace import semconv as sc
from runtrace.policy import Policy, Rules
from test_policy import SHORT, THREE_CENTS, Env, seed

REPO = Path(__file__).resolve().parents[1]
DAY = 86_400


class Frozen:
    """The policy clock: the real time at the test's start, moved only by the test."""

    def __init__(self) -> None:
        now = time.time()
        if now % DAY > DAY - 60 or now % DAY < 60:
            pytest.skip("too close to UTC midnight: the spans' real times could fall in another day")
        self.now = now

    def __call__(self) -> float:
        return self.now

    def iso(self, offset_s: float) -> str:
        return datetime.fromtimestamp(self.now + offset_s, tz=timezone.utc).replace(tzinfo=None).isoformat()

    def next_midnight(self) -> None:
        self.now = (self.now // DAY + 1) * DAY + 5


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.delenv(sc.ENV_POLICY, raising=False)
    yield Env(tmp_path)
    runtrace.uninstrument()


def start(env: Env, clock: Frozen, n: int, on_exceed: str = "raise") -> tuple[FakeLLM, Any]:
    """Instrument with project checkout's runs_per_day = n; the fake LLM and its openai client."""
    env.start(Policy(projects={"checkout": Rules(runs_per_day=n)}, on_exceed=on_exceed, cache_seconds=0,
                     clock=clock))
    fake = FakeLLM(default=THREE_CENTS)
    return fake, fake.openai()


def another_run(client: Any, name: str, calls: int, ids: list[str]) -> Callable[[], None]:
    """A run of the project that makes ``calls`` calls; its id goes to ``ids``."""
    def body() -> None:
        with runtrace.run(name, project="checkout") as run:
            ids.append(run.id)
            for _ in range(calls):
                client.chat.completions.create(model="gpt-5.5", messages=SHORT)
    return body


def refused(client: Any, name: str, ids: list[str]) -> runtrace.BudgetExceeded:
    """Another run, started while the caller's is open: stopped at its first call."""
    with pytest.raises(runtrace.BudgetExceeded) as info:
        in_thread(another_run(client, name, 1, ids))
    return info.value


def in_thread(target: Callable[[], None]) -> None:
    """Another run, started while the first is open (a thread starts with no current run)."""
    errors: list[BaseException] = []

    def body() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the second run hung"
    if errors:
        raise errors[0]


def test_the_first_runs_of_the_day_go_on_after_later_ones_were_stopped(env: Env) -> None:
    clock = Frozen()
    seed(env.store_path, "other-process-today", at=clock.iso(-30), cost=0.01)  # counts: run 1 of the day
    seed(env.store_path, "yesterday", at=clock.iso(-(clock.now % DAY) - 3600), cost=0.01)  # another day: not counted
    fake, client = start(env, clock, 2)
    late: list[str] = []
    with runtrace.run("second of the day", project="checkout") as early:
        client.chat.completions.create(model="gpt-5.5", messages=SHORT)
        exc = refused(client, "third of the day", late)
        assert len(fake.requests) == 1  # the later run was stopped before its first call
        client.chat.completions.create(model="gpt-5.5", messages=SHORT)  # the earlier run goes on
        client.chat.completions.create(model="gpt-5.5", messages=SHORT)
    assert len(fake.requests) == 3
    assert env.run_row(late[0])["llm_calls"] == 0
    assert (exc.limit, exc.breach.limit_value, exc.breach.observed) == ("project_daily_runs", 2.0, 3.0)
    assert str(exc).endswith("this run is run 3 of the day: project 'checkout' started 3 runs today (UTC), over its "
                             "runs_per_day = 2")
    row = env.run_row(early.id)
    assert (row["outcome"], row["stop_reason"], row["llm_calls"]) == ("open", None, 3)
    # The next UTC day: the count starts again, and this run is its first.
    clock.next_midnight()
    with runtrace.run("first of tomorrow", project="checkout") as tomorrow:
        client.chat.completions.create(model="gpt-5.5", messages=SHORT)
    assert len(fake.requests) == 4
    assert env.run_row(tomorrow.id)["stop_reason"] is None


def test_warn_mode_warns_the_later_runs_only_and_lets_every_call_through(env: Env) -> None:
    clock = Frozen()
    fake, client = start(env, clock, 1, on_exceed="warn")
    late_ids: list[str] = []
    with runtrace.run("first of the day", project="checkout") as first:
        client.chat.completions.create(model="gpt-5.5", messages=SHORT)
        in_thread(another_run(client, "second of the day", 2, late_ids))
        client.chat.completions.create(model="gpt-5.5", messages=SHORT)
    assert len(fake.requests) == 4
    assert env.budget_events(first.id) == []
    events = env.budget_events(late_ids[0])
    assert [(e[sc.BUDGET_LIMIT], e[sc.BUDGET_ACTION], e[sc.BUDGET_OBSERVED]) for e in events] == [
        ("project_daily_runs", "continue", 2.0), ("project_daily_runs", "continue", 2.0)]
    assert env.run_row(late_ids[0])["outcome"] == "open"


CHILD = textwrap.dedent("""
    import json, sys
    import runtrace
    from llm_fakes import FakeLLM
    from runtrace.policy import Policy, Rules
    from test_policy import SHORT, THREE_CENTS

    store, now = sys.argv[1], float(sys.argv[2])
    runtrace.instrument(service_name="other-process", store=store, policies=Policy(
        projects={"checkout": Rules(runs_per_day=3)}, cache_seconds=0, clock=lambda: now))
    fake = FakeLLM(default=THREE_CENTS)
    for n in range(2):
        with runtrace.run(f"other {n}", project="checkout"):
            fake.openai().chat.completions.create(model="gpt-5.5", messages=SHORT)
    runtrace.flush()
    runtrace.uninstrument()
    print(json.dumps({"requests": len(fake.requests)}))
""")


def test_another_processs_runs_count_once_the_store_holds_them(env: Env) -> None:
    clock = Frozen()
    child = subprocess.run([sys.executable, "-c", CHILD, str(env.store_path), repr(clock.now)],
                           capture_output=True, text=True, timeout=120, cwd=REPO,
                           env={**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO / 'tests'}"})
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout.strip().splitlines()[-1]) == {"requests": 2}
    fake, client = start(env, clock, 3)
    fourth: list[str] = []
    with runtrace.run("third of the day", project="checkout") as third:
        client.chat.completions.create(model="gpt-5.5", messages=SHORT)
        exc = refused(client, "fourth", fourth)
        client.chat.completions.create(model="gpt-5.5", messages=SHORT)  # the third run goes on
    assert len(fake.requests) == 2
    assert exc.breach.observed == 4.0
    assert (env.run_row(third.id)["llm_calls"], env.run_row(fourth[0])["stop_reason"]) == (2, "project_daily_runs")
