"""Budgets on real LLM calls: checked before the request, per run, per thread and task."""

from __future__ import annotations

import asyncio
import threading

import pytest

import runtrace
from llm_fakes import ChatUsage, FakeLLM, chat_completion, json_reply

# gpt-5.5: 3,000 input tokens x $5/M = $0.015, 500 output x $30/M = $0.015: $0.03 a call
THREE_CENTS = json_reply(chat_completion(model="gpt-5.5", usage=ChatUsage(3000, 500)))


def ask(client) -> None:
    client.chat.completions.create(model="gpt-5.5", messages=[{"role": "user", "content": "go on"}])


# A prompt of exactly 3,000 tokens by chars/4 (the estimator is pinned below), as the usage reports.
PROMPT_3000 = [{"role": "user", "content": "x" * 12_000}]


@pytest.fixture
def chars_per_4(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin the token estimator, so projections do not depend on whether tiktoken is cached."""
    from runtrace import detect

    monkeypatch.setattr(detect, "_estimator", detect.CHARS_PER_4)


def test_five_cents_with_three_cent_calls_allows_exactly_one_request(instrumented, chars_per_4) -> None:
    # Before the projection (issue 9, item 14) two requests went out and the run ended at $0.06
    # on a $0.05 budget: the second call was started although the run could not afford it.
    fake = FakeLLM(default=THREE_CENTS)
    client = fake.openai()
    with pytest.raises(runtrace.BudgetExceeded) as info, \
            runtrace.run("capped", budget=runtrace.Budget(max_cost_usd=0.05)) as run:
        for _ in range(5):
            client.chat.completions.create(model="gpt-5.5", messages=PROMPT_3000)
    assert len(fake.requests) == 1  # the second request (0.03 spent + 0.03 projected) never left
    assert info.value.limit == "max_cost_usd"
    assert info.value.breach.observed == pytest.approx(0.03)
    assert info.value.breach.projected == pytest.approx(0.03)  # 3,000 in x $5/M + mean 500 out x $30/M
    assert info.value.figures["cost_usd"] == pytest.approx(0.03)
    assert info.value.figures["llm_calls"] == 1
    store = instrumented.open_store()
    from runtrace.store.queries import get_run

    row = get_run(store, run.id)
    assert (row["outcome"], row["stop_reason"], row["llm_calls"]) == ("budget_stopped", "max_cost_usd", 1)
    assert row["cost_usd"] == pytest.approx(0.03, abs=1e-12)
    assert row["cost_usd"] <= 0.05


def test_input_token_budget(instrumented) -> None:
    fake = FakeLLM(default=THREE_CENTS)
    client = fake.openai()
    with pytest.raises(runtrace.BudgetExceeded) as info, \
            runtrace.run("tokens", budget=runtrace.Budget(max_input_tokens=7000)):
        for _ in range(5):
            ask(client)
    assert (len(fake.requests), info.value.limit) == (3, "max_input_tokens")


def test_budgets_are_per_run_across_threads_and_tasks(instrumented) -> None:
    fake = FakeLLM(default=THREE_CENTS)
    client = fake.openai()
    sent: dict[str, int] = {}
    lock = threading.Lock()

    def worker(n: int) -> None:
        before = 0
        try:
            with runtrace.run(f"t{n}", budget=runtrace.Budget(max_llm_calls=n + 1)):
                for _ in range(10):
                    ask(client)
                    before += 1
        except runtrace.BudgetExceeded:
            pass
        with lock:
            sent[f"t{n}"] = before

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    async def task(n: int) -> tuple[str, int]:
        done = 0
        try:
            async with runtrace.run(f"a{n}", budget=runtrace.Budget(max_tool_calls=n + 1)):
                for _ in range(10):
                    await lookup(n)
                    done += 1
        except runtrace.BudgetExceeded:
            pass
        return f"a{n}", done

    @runtrace.tool
    async def lookup(n: int) -> int:
        await asyncio.sleep(0)
        return n

    async def main() -> list[tuple[str, int]]:
        return await asyncio.gather(*(task(n) for n in range(4)))

    sent.update(asyncio.run(main()))
    assert sent == {"t0": 1, "t1": 2, "t2": 3, "t3": 4, "a0": 1, "a1": 2, "a2": 3, "a3": 4}
    assert len(fake.requests) == 1 + 2 + 3 + 4


def test_a_cost_limit_says_once_that_it_cannot_count_unpriced_calls(instrumented, caplog) -> None:
    # A newcomer's run against a local server made 10 unpriced calls under max_cost_usd=0.003 and
    # ended accepted, with nothing saying the limit never applied.
    unknown = json_reply(chat_completion(model="no-such-model-2099", usage=ChatUsage(3000, 500)))
    client = FakeLLM(default=unknown).openai()
    with caplog.at_level("WARNING", logger="runtrace"), \
            runtrace.run("local", budget=runtrace.Budget(max_cost_usd=0.003)) as run:
        for _ in range(3):
            client.chat.completions.create(model="no-such-model-2099", messages=[{"role": "user", "content": "hi"}])
    assert (run.totals.llm_calls, run.totals.unpriced_calls, run.totals.cost_usd) == (3, 3, 0.0)
    warned = [r.getMessage() for r in caplog.records if "could not be priced" in r.getMessage()]
    assert warned == [f"runtrace: run {run.id} (local) has max_cost_usd=0.003 but a call could not be priced "
                      "(a local or unknown model): its cost is not counted, so the limit cannot stop it; price "
                      "the model with instrument(prices=...) or RUNTRACE_PRICES "
                      f"(runtrace show {run.id} says why)"]


def test_unpriced_calls_without_a_cost_limit_say_nothing(instrumented, caplog) -> None:
    unknown = json_reply(chat_completion(model="no-such-model-2099", usage=ChatUsage(3000, 500)))
    client = FakeLLM(default=unknown).openai()
    with caplog.at_level("WARNING", logger="runtrace"), \
            runtrace.run("local", budget=runtrace.Budget(max_llm_calls=10)):
        client.chat.completions.create(model="no-such-model-2099", messages=[{"role": "user", "content": "hi"}])
    assert [r for r in caplog.records if "could not be priced" in r.getMessage()] == []
