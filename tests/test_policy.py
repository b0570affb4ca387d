"""Policies (issue 16, items 1-3): caps across runs, approved tools and models, enforced in-process.

Every test makes real openai calls against FakeLLM's mock transport and counts
the requests that reached it; caps read a real SQLite store.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import runtrace
from llm_fakes import ChatUsage, FakeLLM, chat_completion, json_reply
from runtrace import semconv as sc
from runtrace.policy import Policy, PolicyError, Rules, window_bounds
from runtrace.store.db import Store
from runtrace.store.queries import get_run
from runtrace.store.records import SpanRecord

# gpt-5.5: 3,000 input tokens x $5/M = $0.015, 500 output x $30/M = $0.015: $0.03 a call
THREE_CENTS = json_reply(chat_completion(model="gpt-5.5", usage=ChatUsage(3000, 500)))
PROMPT_3000 = [{"role": "user", "content": "x" * 12_000}]  # 3,000 tokens by chars/4
SHORT = [{"role": "user", "content": "hi"}]
REPO = Path(__file__).resolve().parents[1]


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


class Clock:
    """An injected policy clock: the windows roll when the test says, nothing sleeps."""

    def __init__(self, at: str) -> None:
        self.now = utc(at)

    def set(self, at: str) -> None:
        self.now = utc(at)

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def chars_per_4(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin the token estimator, so projections do not depend on whether tiktoken is cached."""
    from runtrace import detect

    monkeypatch.setattr(detect, "_estimator", detect.CHARS_PER_4)


class Env:
    def __init__(self, tmp_path: Path) -> None:
        self.store_path = tmp_path / "runtrace.db"
        self.exporter = InMemorySpanExporter()

    def start(self, policy: Policy | str | None, *, store: bool = True) -> None:
        runtrace.uninstrument()
        runtrace.instrument(service_name="policy-test", store=self.store_path if store else False,
                            policies=policy, span_processors=(SimpleSpanProcessor(self.exporter),))

    def run_row(self, run_id: str) -> dict[str, Any]:
        runtrace.flush()
        with Store.open(self.store_path) as store:
            row = get_run(store, run_id)
        assert row is not None
        return dict(row)

    def budget_events(self, run_id: str) -> list[dict[str, Any]]:
        runtrace.flush()
        return [dict(e.attributes or {}) for s in self.exporter.get_finished_spans()
                if (s.attributes or {}).get(sc.SPAN_ROLE) == sc.ROLE_RUN
                and (s.attributes or {}).get(sc.RUN_ID) == run_id
                for e in s.events if e.name == sc.EVENT_BUDGET]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.delenv(sc.ENV_POLICY, raising=False)
    e = Env(tmp_path)
    try:
        yield e
    finally:
        runtrace.uninstrument()


def cap_policy(clock: Clock | None = None, **rules: Any) -> Policy:
    kw: dict[str, Any] = {"clock": clock} if clock is not None else {}
    return Policy(projects={"checkout": Rules(**rules)}, cache_seconds=0, **kw)


# --- caps across runs ------------------------------------------------------------------------

def test_project_daily_cap_lets_exactly_one_three_cent_call_through_across_runs(env: Env) -> None:
    env.start(cap_policy(daily_usd=0.05))
    fake = FakeLLM(default=THREE_CENTS)
    client = fake.openai()
    with pytest.raises(runtrace.BudgetExceeded) as info, runtrace.run("first", project="checkout") as first:
        for _ in range(3):
            client.chat.completions.create(model="gpt-5.5", messages=PROMPT_3000)
    assert len(fake.requests) == 1  # 0.03 spent + 0.03 projected > 0.05: the second never left
    assert info.value.limit == "project_daily_usd"
    assert (info.value.breach.observed, info.value.breach.projected) == (pytest.approx(0.03), pytest.approx(0.03))
    assert "project 'checkout' daily_usd = 0.05 would be crossed" in str(info.value)
    # A second run of the project, in the same process and before any flush: its spend is known at once.
    with pytest.raises(runtrace.BudgetExceeded), runtrace.run("second", project="checkout") as second:
        client.chat.completions.create(model="gpt-5.5", messages=PROMPT_3000)
    assert len(fake.requests) == 1
    # Another project is not held to checkout's cap.
    with runtrace.run("elsewhere", project="billing"):
        client.chat.completions.create(model="gpt-5.5", messages=PROMPT_3000)
    assert len(fake.requests) == 2
    for run in (first, second):
        row = env.run_row(run.id)
        assert (row["outcome"], row["stop_reason"]) == ("budget_stopped", "project_daily_usd")
    assert env.run_row(first.id)["cost_usd"] == pytest.approx(0.03, abs=1e-12)
    assert env.run_row(second.id)["llm_calls"] == 0


def test_owner_cap_and_spend_already_in_the_store(env: Env) -> None:
    clock = Clock("2026-06-03T10:00:00")
    seed(env.store_path, "old-run", at="2026-06-03T08:00:00", cost=0.04, owner="alice@example.com")
    env.start(Policy(owners={"alice@example.com": Rules(daily_usd=0.05)}, cache_seconds=0, clock=clock))
    fake = FakeLLM(default=THREE_CENTS)
    with pytest.raises(runtrace.BudgetExceeded) as info, \
            runtrace.run("alice's", project="any", owner="alice@example.com") as run:
        fake.openai().chat.completions.create(model="gpt-5.5", messages=PROMPT_3000)
    assert len(fake.requests) == 0  # 0.04 in the store + 0.03 projected > 0.05
    assert info.value.limit == "owner_daily_usd"
    assert info.value.breach.observed == pytest.approx(0.04)
    assert env.run_row(run.id)["stop_reason"] == "owner_daily_usd"
    with runtrace.run("bob's", project="any", owner="bob@example.com"):
        fake.openai().chat.completions.create(model="gpt-5.5", messages=PROMPT_3000)
    assert len(fake.requests) == 1


def test_runs_per_day_counts_the_run_about_to_call(env: Env) -> None:
    env.start(cap_policy(runs_per_day=2))
    fake = FakeLLM(default=THREE_CENTS)
    client = fake.openai()
    for n in range(2):
        with runtrace.run(f"run {n}", project="checkout"):
            client.chat.completions.create(model="gpt-5.5", messages=SHORT)
            client.chat.completions.create(model="gpt-5.5", messages=SHORT)  # a run counts once
    with pytest.raises(runtrace.BudgetExceeded) as info, runtrace.run("third", project="checkout"):
        client.chat.completions.create(model="gpt-5.5", messages=SHORT)
    assert len(fake.requests) == 4
    assert info.value.limit == "project_daily_runs"
    assert str(info.value).endswith("project 'checkout' started 3 runs today (UTC), over its runs_per_day = 2")


# --- UTC windows, with the clock injected -----------------------------------------------------

def seed(path: Path, run_id: str, *, at: str, cost: float, project: str | None = "checkout",
         owner: str | None = None, trace_id: str | None = None) -> None:
    """A finished run of ``cost`` USD that started at ``at`` (UTC), written through the store's ingest."""
    start = round(utc(at) * 1e9)
    attrs_run: dict[str, Any] = {sc.RUN_ID: run_id, sc.SPAN_ROLE: sc.ROLE_RUN, sc.RUN_NAME: run_id}
    if project is not None:
        attrs_run[sc.PROJECT] = project
    if owner is not None:
        attrs_run[sc.OWNER] = owner
    trace_id = trace_id or f"{abs(hash(run_id)):032x}"[-32:]
    common = dict(trace_id=trace_id, kind="INTERNAL", status_code="UNSET", status_message=None,
                  resource={sc.SERVICE_NAME: "seed"}, events=(), scope_name="runtrace", scope_version="0.1.0")
    run_span = SpanRecord(span_id="0" * 15 + "1", parent_span_id=None, name=f"run {run_id}",
                          start_ns=start, end_ns=start + 10**9, attributes=attrs_run, **common)  # type: ignore[arg-type]
    llm_attrs = {sc.RUN_ID: run_id, sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT, sc.GEN_AI_PROVIDER_NAME: "openai",
                 sc.GEN_AI_REQUEST_MODEL: "gpt-5.5", sc.GEN_AI_USAGE_INPUT_TOKENS: 100,
                 sc.GEN_AI_USAGE_OUTPUT_TOKENS: 10, sc.COST_USD: cost, sc.COST_SOURCE: sc.SOURCE_GENAI_PRICES}
    llm_span = SpanRecord(span_id="0" * 15 + "2", parent_span_id=run_span.span_id, name="chat gpt-5.5",
                          start_ns=start + 1000, end_ns=start + 2000, attributes=llm_attrs,
                          **{**common, "kind": "CLIENT"})  # type: ignore[arg-type]
    with Store.open(path) as store:
        store.ingest([run_span, llm_span])
        row = get_run(store, run_id)
    assert row is not None and row["cost_usd"] == pytest.approx(cost)


def test_window_bounds_are_utc_days_iso_weeks_and_months() -> None:
    at = utc("2026-05-31T23:59:59")  # a Sunday
    assert window_bounds("daily", at) == (round(utc("2026-05-31T00:00:00") * 1e9), round(utc("2026-06-01T00:00:00") * 1e9))
    assert window_bounds("weekly", at) == (round(utc("2026-05-25T00:00:00") * 1e9), round(utc("2026-06-01T00:00:00") * 1e9))
    assert window_bounds("monthly", at) == (round(utc("2026-05-01T00:00:00") * 1e9), round(utc("2026-06-01T00:00:00") * 1e9))
    assert window_bounds("monthly", utc("2026-12-15T12:00:00"))[1] == round(utc("2027-01-01T00:00:00") * 1e9)


@pytest.mark.parametrize("window", ["daily", "weekly", "monthly"])
def test_caps_roll_over_at_utc_midnight(env: Env, window: str) -> None:
    # Sunday 31 May 2026 23:59:00: the last minute of a day, an ISO week and a month.
    seed(env.store_path, "late-run", at="2026-05-31T23:59:00", cost=0.04)
    clock = Clock("2026-05-31T23:59:30")
    env.start(cap_policy(clock, **{f"{window}_usd": 0.05}))
    fake = FakeLLM(default=THREE_CENTS)
    client = fake.openai()
    with pytest.raises(runtrace.BudgetExceeded) as info, runtrace.run("before midnight", project="checkout"):
        client.chat.completions.create(model="gpt-5.5", messages=PROMPT_3000)
    assert (len(fake.requests), info.value.limit) == (0, f"project_{window}_usd")
    clock.set("2026-06-01T00:00:01")
    with runtrace.run("after midnight", project="checkout"):
        client.chat.completions.create(model="gpt-5.5", messages=PROMPT_3000)
    assert len(fake.requests) == 1


def test_a_week_starts_on_monday_and_spans_days(env: Env) -> None:
    seed(env.store_path, "saturday-run", at="2026-05-30T12:00:00", cost=0.04)
    clock = Clock("2026-05-31T12:00:00")  # Sunday: another day, the same week
    env.start(cap_policy(clock, daily_usd=0.05, weekly_usd=0.05))
    fake = FakeLLM(default=THREE_CENTS)
    with pytest.raises(runtrace.BudgetExceeded) as info, runtrace.run("sunday", project="checkout"):
        fake.openai().chat.completions.create(model="gpt-5.5", messages=PROMPT_3000)
    assert (len(fake.requests), info.value.limit) == (0, "project_weekly_usd")


# --- two processes sharing one store -------------------------------------------------------

WORKER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    sys.path[:0] = [sys.argv[3], sys.argv[4]]
    import runtrace
    from runtrace import detect
    from runtrace.policy import Policy, Rules
    from llm_fakes import ChatUsage, FakeLLM, chat_completion, json_reply

    detect._estimator = detect.CHARS_PER_4
    store, go = sys.argv[1], Path(sys.argv[2])
    runtrace.instrument(service_name="worker", store=store,
                        policies=Policy(projects={"checkout": Rules(daily_usd=0.05)}, cache_seconds=0))
    fake = FakeLLM(default=json_reply(chat_completion(model="gpt-5.5", usage=ChatUsage(3000, 500))))
    client = fake.openai()
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    stopped = None
    try:
        with runtrace.run("worker", project="checkout"):
            for _ in range(3):
                client.chat.completions.create(model="gpt-5.5", messages=[{"role": "user", "content": "x" * 12000}])
                runtrace.flush()  # the other process sees this call as soon as the export is done
    except runtrace.BudgetExceeded as exc:
        stopped = exc.limit
    runtrace.uninstrument()
    print(json.dumps({"sent": len(fake.requests), "stopped": stopped}))
""")


def start_worker(tmp_path: Path, store: Path, go: Path) -> subprocess.Popen[str]:
    script = tmp_path / "policy_worker.py"
    script.write_text(WORKER)
    return subprocess.Popen([sys.executable, str(script), str(store), str(go), str(REPO / "src"),
                             str(REPO / "tests")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"policy worker hung: {err[-2000:]}")
    assert proc.returncode == 0, err[-2000:]
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def test_two_processes_one_after_the_other_make_exactly_one_call(tmp_path: Path) -> None:
    store = tmp_path / "shared.db"
    Store.open(store).close()
    go = tmp_path / "go"
    go.touch()
    first = finish(start_worker(tmp_path, store, go))
    second = finish(start_worker(tmp_path, store, go))
    assert first == {"sent": 1, "stopped": "project_daily_usd"}
    assert second == {"sent": 0, "stopped": "project_daily_usd"}


def test_two_processes_at_once_stay_within_the_documented_lag(tmp_path: Path) -> None:
    # cache_seconds=0 and a flush after each call: the only lag left is a call in flight in the
    # other process (checked before the other's export landed), so at most 1 + 1 calls in all.
    store = tmp_path / "shared.db"
    Store.open(store).close()
    go = tmp_path / "go"
    procs = [start_worker(tmp_path, store, go) for _ in range(2)]
    go.touch()
    results = [finish(p) for p in procs]
    total = sum(r["sent"] for r in results)
    assert 1 <= total <= 2, results
    assert [r["stopped"] for r in results] == ["project_daily_usd", "project_daily_usd"]
    with Store.open(store) as s:
        spent = s.execute("SELECT SUM(cost_nusd) FROM runs WHERE project = 'checkout'")[0][0] / 1e9
    assert spent == pytest.approx(0.03 * total)


# --- approved tools -----------------------------------------------------------------------------

def test_a_tool_outside_the_policy_list_never_runs(env: Env) -> None:
    env.start(cap_policy(allowed_tools=["read_file", "search"]))
    ran: list[str] = []

    @runtrace.tool
    def read_file(path: str) -> str:
        ran.append("read_file")
        return "text"

    @runtrace.tool
    def delete_file(path: str) -> None:
        ran.append("delete_file")

    with pytest.raises(runtrace.BudgetExceeded) as info, runtrace.run("tools", project="checkout") as run:
        read_file("a.md")
        delete_file("a.md")
    assert ran == ["read_file"]
    assert info.value.limit == "tool_not_allowed"
    assert str(info.value) == (f"run {run.id} stopped: tool 'delete_file' is not in the allowed tools of "
                               "project 'checkout' (read_file, search)")
    row = env.run_row(run.id)
    assert (row["outcome"], row["stop_reason"], row["tool_calls"]) == ("budget_stopped", "tool_not_allowed", 1)


def test_budget_allowed_tools_without_a_policy(env: Env) -> None:
    env.start(None)
    ran: list[str] = []

    @runtrace.tool(name="shell")
    def shell(cmd: str) -> None:
        ran.append(cmd)

    with pytest.raises(runtrace.BudgetExceeded) as info, \
            runtrace.run("tools", budget=runtrace.Budget(allowed_tools={"read_file"})) as run:
        shell("rm -rf /")
    assert (ran, info.value.limit) == ([], "tool_not_allowed")
    assert "tool 'shell' is not in the run's allowed tools (read_file)" in str(info.value)
    assert env.run_row(run.id)["stop_reason"] == "tool_not_allowed"
    with pytest.raises(ValueError, match="allowed_tools must be a set of tool names"):
        runtrace.Budget(allowed_tools="read_file")  # type: ignore[arg-type]


def test_warn_lets_the_tool_run_and_records_the_warning(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    env.start(cap_policy(allowed_tools=["read_file"], on_exceed="warn"))
    ran: list[str] = []

    @runtrace.tool
    def search(q: str) -> str:
        ran.append(q)
        return "found"

    with caplog.at_level(logging.WARNING, logger="runtrace"), runtrace.run("warned", project="checkout") as run:
        search("a")
        search("b")
    assert ran == ["a", "b"]
    events = env.budget_events(run.id)
    assert [(e[sc.BUDGET_LIMIT], e[sc.BUDGET_ACTION]) for e in events] == [("tool_not_allowed", "continue")] * 2
    assert events[0][sc.BUDGET_REASON] == "tool 'search' is not in the allowed tools of project 'checkout' (read_file)"
    assert len([r for r in caplog.records if "tool_not_allowed" in r.getMessage()
                or "not in the allowed tools" in r.getMessage()]) == 1  # once per rule and run
    row = env.run_row(run.id)
    assert (row["outcome"], row["stop_reason"], row["tool_calls"]) != ("budget_stopped",)
    assert row["stop_reason"] is None and row["tool_calls"] == 2


# --- approved models and the small-call rule ----------------------------------------------

def test_a_model_outside_allowed_models_is_refused_before_the_request(env: Env) -> None:
    env.start(cap_policy(allowed_models=["gpt-5*", "claude-sonnet-*"]))
    fake = FakeLLM(default=THREE_CENTS)
    client = fake.openai()
    with runtrace.run("allowed", project="checkout"):
        client.chat.completions.create(model="gpt-5.5", messages=PROMPT_3000)
    assert len(fake.requests) == 1
    with pytest.raises(runtrace.BudgetExceeded) as info, runtrace.run("refused", project="checkout") as run:
        client.chat.completions.create(model="gpt-4o", messages=PROMPT_3000)
    assert len(fake.requests) == 1
    assert info.value.limit == "model_not_allowed"
    assert str(info.value).endswith("model 'gpt-4o' is not allowed for project 'checkout' "
                                    "(allowed_models: gpt-5*, claude-sonnet-*)")
    assert env.run_row(run.id)["stop_reason"] == "model_not_allowed"


def test_a_dear_model_is_refused_for_a_small_call_only(env: Env) -> None:
    env.start(cap_policy(small_call_max_input_tokens=2000, small_call_max_usd_per_mtok=3.0))
    fake = FakeLLM(default=THREE_CENTS)
    client = fake.openai()
    with pytest.raises(runtrace.BudgetExceeded) as info, runtrace.run("small", project="checkout") as run:
        client.chat.completions.create(model="gpt-5.5", messages=SHORT)  # $5 / MTok input, 1 token
    assert len(fake.requests) == 0
    assert info.value.limit == "model_too_dear_for_small_call"
    assert (info.value.breach.observed, info.value.breach.limit_value) == (pytest.approx(5.0), 3.0)
    assert "model 'gpt-5.5' costs $5 / MTok input, above the $3 that project 'checkout' allows for small " \
           "calls (this one: about 1 input token, fewer than 2000)" in str(info.value)
    assert env.run_row(run.id)["stop_reason"] == "model_too_dear_for_small_call"
    with runtrace.run("big and small", project="checkout"):
        client.chat.completions.create(model="gpt-5.5", messages=PROMPT_3000)  # 3,000 tokens: not small
        client.chat.completions.create(model="gpt-5-mini", messages=SHORT)  # $0.25 / MTok: cheap enough
    assert [body["model"] for _path, body in fake.requests] == ["gpt-5.5", "gpt-5-mini"]


def test_warn_lets_the_model_through_and_records_the_warning(env: Env) -> None:
    env.start(Policy(projects={"checkout": Rules(allowed_models=("claude-*",))}, on_exceed="warn"))
    fake = FakeLLM(default=THREE_CENTS)
    with runtrace.run("warned", project="checkout") as run:
        fake.openai().chat.completions.create(model="gpt-5.5", messages=SHORT)
    assert len(fake.requests) == 1
    events = env.budget_events(run.id)
    assert [(e[sc.BUDGET_LIMIT], e[sc.BUDGET_ACTION], e[sc.BUDGET_REASON]) for e in events] == [
        ("model_not_allowed", "continue",
         "model 'gpt-5.5' is not allowed for project 'checkout' (allowed_models: claude-*)")]
    row = env.run_row(run.id)
    assert (row["llm_calls"], row["stop_reason"]) == (1, None)


def test_calls_outside_a_run_or_of_other_projects_are_under_no_policy(env: Env) -> None:
    env.start(cap_policy(allowed_models=["claude-*"], daily_usd=0.0))
    fake = FakeLLM(default=THREE_CENTS)
    client = fake.openai()
    client.chat.completions.create(model="gpt-5.5", messages=SHORT)
    with runtrace.run("other", project="billing"):
        client.chat.completions.create(model="gpt-5.5", messages=SHORT)
    assert len(fake.requests) == 2


# --- the store requirement and configuration errors -----------------------------------------

def test_caps_without_a_store_say_so_and_lists_still_hold(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="runtrace"):
        env.start(cap_policy(daily_usd=0.01, allowed_models=["gpt-5*"]), store=False)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "caps need a store" in errors[0] and "project 'checkout'" in errors[0] \
        and "NOT enforced" in errors[0] and "Allowed tools and models still are" in errors[0]
    fake = FakeLLM(default=THREE_CENTS)
    client = fake.openai()
    with runtrace.run("no store", project="checkout"):
        client.chat.completions.create(model="gpt-5.5", messages=PROMPT_3000)
        client.chat.completions.create(model="gpt-5.5", messages=PROMPT_3000)  # the cap is not enforced
    with pytest.raises(runtrace.BudgetExceeded) as info, runtrace.run("listed", project="checkout"):
        client.chat.completions.create(model="o3", messages=SHORT)
    assert (len(fake.requests), info.value.limit) == (2, "model_not_allowed")


POLICY_TOML = """
[defaults]
on_exceed = "raise"
cache_seconds = 2

[project.checkout-agent]
daily_usd = 20.0
weekly_usd = 100.0
monthly_usd = 300.0
runs_per_day = 200
allowed_tools = ["read_file", "search"]
allowed_models = ["gpt-5*", "claude-sonnet-*"]
small_call_max_input_tokens = 2000
small_call_max_usd_per_mtok = 3.0
on_exceed = "warn"

[owner."alice@example.com"]
daily_usd = 5.0
"""


def test_the_documented_file_format(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY_TOML)
    policy = Policy.from_toml(path)
    assert (policy.on_exceed, policy.cache_seconds) == ("raise", 2.0)
    assert policy.projects["checkout-agent"] == Rules(
        daily_usd=20.0, weekly_usd=100.0, monthly_usd=300.0, runs_per_day=200,
        allowed_tools=frozenset({"read_file", "search"}), allowed_models=("gpt-5*", "claude-sonnet-*"),
        small_call_max_input_tokens=2000, small_call_max_usd_per_mtok=3.0, on_exceed="warn")
    assert policy.owners["alice@example.com"] == Rules(daily_usd=5.0)
    assert policy.action(policy.projects["checkout-agent"]) == "warn"
    assert policy.action(policy.owners["alice@example.com"]) == "raise"


@pytest.mark.parametrize(("text", "message"), [
    ("[project.x]\ndaily_usd = ", "not valid TOML"),
    ("[project.x]\ndaily_usd = \"20\"\n",
     "[project.x] daily_usd must be a non-negative number of US dollars, got '20'"),
    ("[project.x]\ndaily_usd = -1\n", "[project.x] daily_usd must be a non-negative number of US dollars, got -1"),
    ("[project.x]\ndialy_usd = 1\n", "[project.x] has an unknown key 'dialy_usd'"),
    ("[project.x]\nruns_per_day = 2.5\n", "[project.x] runs_per_day must be a non-negative whole number, got 2.5"),
    ("[project.x]\nallowed_tools = \"read_file\"\n",
     "[project.x] allowed_tools must be a list of non-empty strings, got 'read_file'"),
    ("[project.x]\non_exceed = \"stop\"\n", "[project.x] on_exceed must be \"raise\" or \"warn\", got 'stop'"),
    ("[owner.\"a@b.c\"]\nsmall_call_max_input_tokens = 10\n",
     "[owner.\"a@b.c\"] small_call_max_input_tokens needs small_call_max_usd_per_mtok too"),
    ("[defaults]\ncache_seconds = \"2s\"\n", "[defaults] cache_seconds must be a non-negative number, got '2s'"),
    ("[defaults]\ncache = 2\n", "[defaults] has an unknown key 'cache'"),
    ("[projects.x]\ndaily_usd = 1\n", "unknown table [projects]"),
])
def test_a_bad_policy_file_is_a_clear_error_from_instrument(env: Env, tmp_path: Path, text: str,
                                                              message: str) -> None:
    path = tmp_path / "bad-policy.toml"
    path.write_text(text)
    with pytest.raises(PolicyError) as info:
        env.start(str(path))
    assert str(info.value).startswith(f"policy file {path}: ")
    assert message in str(info.value)
    assert not runtrace._setup.is_instrumented()  # nothing was attached


def test_a_missing_policy_file_named_by_the_environment(env: Env, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sc.ENV_POLICY, str(tmp_path / "nope.toml"))
    with pytest.raises(PolicyError, match=f"policy file {tmp_path / 'nope.toml'}: no such file"):
        env.start(None)


def test_the_environment_names_the_policy_file(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[project.checkout]\nallowed_models = ["claude-*"]\n')
    monkeypatch.setenv(sc.ENV_POLICY, str(path))
    env.start(None)
    fake = FakeLLM(default=THREE_CENTS)
    with pytest.raises(runtrace.BudgetExceeded) as info, runtrace.run("env", project="checkout"):
        fake.openai().chat.completions.create(model="gpt-5.5", messages=SHORT)
    assert (len(fake.requests), info.value.limit) == (0, "model_not_allowed")
    runtrace.uninstrument()
    with runtrace.run("after uninstrument", project="checkout"):  # the policy went with instrument()
        pass


def test_the_rules_module_stays_pure() -> None:
    """policy.py is the rules and the file format: no OpenTelemetry, no store, no live runs."""
    import ast

    tree = ast.parse((REPO / "src" / "runtrace" / "policy.py").read_text(encoding="utf-8"))
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} \
        | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert {m for m in imported if m.startswith(("opentelemetry", "runtrace", "store", "runs"))} == set()
    relative = {(n.level, n.module) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level}
    assert relative == {(1, None)}  # from . import semconv


def test_spend_of_other_processes_is_seen_within_cache_seconds(tmp_path: Path) -> None:
    """The enforcement lag: a read of the store is reused for cache_seconds, never longer."""
    from runtrace.policy_spend import SpendBook

    path = tmp_path / "rt.db"
    seed(path, "a", at="2026-06-03T08:00:00", cost=0.01)
    mono = [100.0]
    book = SpendBook(str(path), cache_seconds=2.0, clock=Clock("2026-06-03T12:00:00"), monotonic=lambda: mono[0])
    try:
        assert book.figures("project", "checkout").usd["daily"] == pytest.approx(0.01)
        seed(path, "b", at="2026-06-03T09:00:00", cost=0.02)  # another process's run lands in the store
        mono[0] = 101.999
        assert book.figures("project", "checkout").usd["daily"] == pytest.approx(0.01)  # within the lag
        mono[0] = 102.0
        figures = book.figures("project", "checkout")
        assert figures.usd == {"daily": pytest.approx(0.03), "weekly": pytest.approx(0.03),
                               "monthly": pytest.approx(0.03)}
        assert figures.runs_today == 2
        # This process's own call counts at once, and once only when its span reaches the store.
        own = ("f" * 32, "0" * 15 + "2")  # (trace id, span id) of the call's span
        book.note_call(own, "own-run", "checkout", None, 0.005, 10)
        assert book.figures("project", "checkout").usd["daily"] == pytest.approx(0.035)
        assert book.figures("project", "checkout").runs_today == 3
        seed(path, "own-run", at="2026-06-03T11:00:00", cost=0.005, trace_id=own[0])  # its export lands
        mono[0] = 104.0
        figures = book.figures("project", "checkout")  # the store has it now: not counted twice
        assert (figures.usd["daily"], figures.runs_today) == (pytest.approx(0.035), 3)
        mono[0] = 105.0
        assert book.figures("project", "checkout").usd["daily"] == pytest.approx(0.035)
        mono[0] = 107.0  # past cache_seconds since the store held it: the ledger entry is gone
        assert book.figures("project", "checkout").usd["daily"] == pytest.approx(0.035)
        assert book._calls == {}
    finally:
        book.close()


@pytest.mark.parametrize("flush_between", [False, True])
def test_own_calls_count_once_before_and_after_they_reach_the_store(env: Env, flush_between: bool) -> None:
    env.start(cap_policy(daily_usd=0.09))
    fake = FakeLLM(default=THREE_CENTS)
    client = fake.openai()
    with pytest.raises(runtrace.BudgetExceeded) as info:
        for n in range(5):
            with runtrace.run(f"run {n}", project="checkout"):
                client.chat.completions.create(model="gpt-5.5", messages=PROMPT_3000)
            if flush_between:
                runtrace.flush()  # the ledger entry and the stored span must not both count
    assert len(fake.requests) == 3  # 0.03 x 3 = 0.09 is not over the cap; a fourth would be
    assert info.value.breach.observed == pytest.approx(0.09)


def test_rules_made_in_python_are_checked_like_a_file() -> None:
    policy = Policy(projects={"x": Rules(allowed_tools=["read_file"], allowed_models=["gpt-5*"])})  # type: ignore[arg-type]
    assert policy.projects["x"] == Rules(allowed_tools=frozenset({"read_file"}), allowed_models=("gpt-5*",))
    with pytest.raises(PolicyError, match=r"^Policy: \[project.x\] daily_usd must be a non-negative number of "
                                          r"US dollars, got -5$"):
        Policy(projects={"x": Rules(daily_usd=-5)})
    with pytest.raises(PolicyError, match=r"^Policy: \[owner.\"a b\"\] has an unknown key 'daily'"):
        Policy(owners={"a b": {"daily": 1}})
    with pytest.raises(PolicyError, match=r"^Policy: on_exceed must be one of \['raise', 'warn'\], got 'stop'$"):
        Policy(on_exceed="stop")


def test_threads_of_one_process_cannot_both_take_the_last_of_a_cap(env: Env) -> None:
    import threading
    import time

    env.start(cap_policy(daily_usd=0.05))

    def slow(_body: Any) -> Any:
        time.sleep(0.05)  # every call is still in flight while the other threads check
        return THREE_CENTS

    fake = FakeLLM(default=slow)
    client = fake.openai()
    gate = threading.Barrier(8)
    stops: list[str] = []

    def worker(n: int) -> None:
        gate.wait(timeout=30)
        try:
            with runtrace.run(f"thread {n}", project="checkout"):
                # An output cap makes the projection the call's real cost: 3,000 in + 500 out = $0.03.
                client.chat.completions.create(model="gpt-5.5", messages=PROMPT_3000, max_tokens=500)
        except runtrace.BudgetExceeded as exc:
            stops.append(exc.limit)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    # The first call counts at its projected cost while in flight: 0.03 reserved + 0.03 > 0.05.
    # (Without an output cap a run's first call is projected at its input only, $0.015, so three
    # would pass together: the projection's documented limit, not the reservation's.)
    assert (len(fake.requests), stops) == (1, ["project_daily_usd"] * 7)


def test_a_failed_call_gives_back_what_it_reserved(env: Env) -> None:
    from llm_fakes import openai_error

    env.start(cap_policy(daily_usd=0.05))
    fake = FakeLLM([json_reply(openai_error(500, "overloaded"), status=500), THREE_CENTS], default=THREE_CENTS)
    client = fake.openai()
    import openai

    with runtrace.run("retrying", project="checkout"):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-5.5", messages=PROMPT_3000, max_tokens=500)
        # Not billed, so nothing held back: 0 + $0.03 projected fits in $0.05 (0.03 still held would not).
        client.chat.completions.create(model="gpt-5.5", messages=PROMPT_3000, max_tokens=500)
    assert len(fake.requests) == 2


def test_warn_on_a_cap_lets_the_calls_through_and_records_each_warning(env: Env) -> None:
    env.start(Policy(projects={"checkout": Rules(daily_usd=0.05, on_exceed="warn")}, cache_seconds=0))
    fake = FakeLLM(default=THREE_CENTS)
    with runtrace.run("over the cap", project="checkout") as run:
        for _ in range(3):
            fake.openai().chat.completions.create(model="gpt-5.5", messages=PROMPT_3000)
    assert len(fake.requests) == 3
    events = env.budget_events(run.id)
    assert [(e[sc.BUDGET_LIMIT], e[sc.BUDGET_ACTION], e[sc.BUDGET_OBSERVED]) for e in events] == [
        ("project_daily_usd", "continue", pytest.approx(0.03)), ("project_daily_usd", "continue", pytest.approx(0.06))]
    assert events[1][sc.BUDGET_REASON] == "project 'checkout' daily_usd = 0.05 reached ($0.06 spent today, UTC)"
    row = env.run_row(run.id)
    assert (row["llm_calls"], row["stop_reason"], row["cost_usd"]) == (3, None, pytest.approx(0.09))
